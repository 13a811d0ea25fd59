"""Device and precision: parameters every model engine shares, resolved by one rule.

The person picks them in the engine panel or with ``--device`` / ``--set precision=bf16``; an engine
calls :func:`resolve_runtime` once per load. A device that cannot be used is a
:class:`DeviceUnavailable`, an :class:`EngineError` (one line, exit 1 in the CLI: it is the machine,
not the input, that cannot do it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..models.device import DEVICE_CHOICES, pick_device
from .base import EngineError
from .params import Param

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")


class DeviceUnavailable(EngineError):
    """The asked-for device or precision cannot be used on this machine."""


def runtime_params(default_precision: str = "auto") -> tuple[Param, ...]:
    """The ``device`` and ``precision`` parameters, shown for every engine that runs a model."""
    return (
        Param(
            "device",
            "choice",
            "auto",
            choices=DEVICE_CHOICES,
            help="where the model runs: auto picks CUDA, then MPS, then the CPU",
        ),
        Param(
            "precision",
            "choice",
            default_precision,
            choices=PRECISIONS,
            help="auto: fp16 on a GPU, fp32 on the CPU; bf16 is about twice as fast on CPUs that support it",
        ),
    )


@dataclass(frozen=True)
class Runtime:
    """Where and in which number format a model runs."""

    device: str
    precision: str  # fp32 / bf16 / fp16, never auto

    @property
    def dtype(self) -> Any:
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]


def resolve_runtime(params: Mapping[str, Any], preference: str | None = None) -> Runtime:
    """Turn the ``device`` / ``precision`` parameters into a usable :class:`Runtime`.

    ``preference`` is the engine's constructor device (``--device``, settings); a ``device``
    parameter other than ``auto`` wins over it. Raises :class:`DeviceUnavailable` with one line.
    """
    wanted = params.get("device", "auto")
    if wanted in (None, "", "auto"):
        wanted = preference
    try:
        device = pick_device(wanted)
    except ValueError as err:
        raise DeviceUnavailable(str(err)) from None
    precision = params.get("precision", "auto")
    kind = device.split(":")[0]
    if precision == "auto":
        precision = "fp16" if kind in ("cuda", "mps") else "fp32"
    if precision == "fp16" and kind == "cpu":
        raise DeviceUnavailable("fp16 needs a GPU; on the CPU use precision fp32 or bf16")
    if precision not in PRECISIONS:
        raise DeviceUnavailable(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return Runtime(device, precision)
