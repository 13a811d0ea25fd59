"""The samplers a person can pick, each built from the model's own scheduler config (SD-1.5's betas)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# name -> (diffusers class, overrides on top of the model's scheduler config)
_SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "dpmpp_2m_karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "ddim": ("DDIMScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
}
SCHEDULER_NAMES: tuple[str, ...] = tuple(_SCHEDULERS)
SCHEDULER_TITLES: dict[str, str] = {
    "dpmpp_2m_karras": "DPM++ 2M Karras",
    "ddim": "DDIM",
    "euler_a": "Euler ancestral",
    "unipc": "UniPC",
}

# SD-1.5's training noise schedule, used when a model brings no scheduler config of its own
SD15_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "prediction_type": "epsilon",
}


def make_scheduler(name: str, config: Mapping[str, Any] | None = None) -> Any:
    """A fresh scheduler ``name`` over ``config`` (the model's scheduler_config.json; SD-1.5's if None).

    Fresh per run: multistep schedulers keep state between steps.
    """
    import diffusers

    try:
        class_name, overrides = _SCHEDULERS[name]
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r}; use one of {', '.join(SCHEDULER_NAMES)}") from None
    base = {k: v for k, v in (config or SD15_SCHEDULE).items() if not k.startswith("_")}
    return getattr(diffusers, class_name).from_config({**base, **overrides})
