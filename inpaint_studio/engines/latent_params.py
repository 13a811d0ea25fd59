"""The settings every latent-diffusion engine shares (sd15, asuka, mta), declared once.

Each engine lists its own knobs (guidance, strength, prior strength, conditioning scale...) and
takes these for the sampler and for how the fill is framed and pasted (``latent_compositor``).
"""

from __future__ import annotations

from ..models.diffusion.schedulers import SCHEDULER_NAMES
from .params import Param
from .runtime import runtime_params


def steps_param(default: int = 25) -> Param:
    return Param("steps", "int", default, minimum=1, maximum=150, help="denoising steps (20-30 is usual)")


def scheduler_param(default: str = "dpmpp_2m_karras") -> Param:
    return Param(
        "scheduler",
        "choice",
        default,
        choices=SCHEDULER_NAMES,
        help="sampler: DPM++ 2M Karras, DDIM, Euler ancestral or UniPC",
    )


def latent_fill_params(color_match: bool = True, color_help: str = "") -> tuple[Param, ...]:
    """Framing (resolution, context), paste-back (feather, colour match), previews, device, precision."""
    return (
        Param(
            "resolution",
            "int",
            512,
            minimum=64,
            maximum=1024,
            step=64,
            help="the crop around the mask is scaled so its long side is this many pixels (SD-1.5: 512)",
        ),
        Param(
            "context",
            "float",
            0.5,
            minimum=0.0,
            maximum=4.0,
            step=0.1,
            help="surrounding image kept around the mask, as a fraction of its size",
        ),
        Param("feather", "int", 4, minimum=0, maximum=64, help="soften the fill's edge inward (pixels)"),
        Param(
            "color_match",
            "bool",
            color_match,
            help=color_help
            or "shift the fill's colour by the model's colour drift on the ring around the mask",
        ),
        Param(
            "decode_every",
            "int",
            0,
            minimum=0,
            maximum=150,
            help="previews: a full decode every this many steps (0: the fast colour projection only)",
        ),
        *runtime_params(),
    )
