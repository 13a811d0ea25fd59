"""Pick the compute device: CUDA > MPS > CPU unless the person says otherwise."""

from __future__ import annotations

import os

DEVICE_ENV = "INPAINT_STUDIO_DEVICE"
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(preference: str | None = None) -> str:
    """Return a torch device string. ``preference`` (or $INPAINT_STUDIO_DEVICE) overrides 'auto'.

    Raises ValueError when the asked-for device is not present, rather than silently using another.
    """
    import torch

    wanted = (preference or os.environ.get(DEVICE_ENV) or "auto").lower()
    if wanted == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    kind = wanted.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for but no CUDA GPU is available; use --device cpu")
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("MPS was asked for but is not available on this machine; use --device cpu")
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {wanted!r}; use one of {', '.join(DEVICE_CHOICES)}")
    return wanted
