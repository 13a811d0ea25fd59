"""The branch's conditioning from pixels, with BrushNet's conventions (what its pipeline does).

* The mask the app holds is 1 (255) = fill; BrushNet's mask channel is **1 = keep**, 0 = hole.
* The masked image has its hole painted black: 0 in uint8, -1 in the VAE's [-1, 1] range.
* The masked-image latent is ``vae.encode(masked).latent_dist.sample() * scaling_factor`` (the
  pipeline samples; ``sample=False`` takes the mode, reproducible without a generator).
* The mask reaches latent size by nearest resizing (``mode="nearest"``, BrushNet's pipeline) or by
  max-pooling the hole (``mode="max"``: a latent cell touched by any hole pixel is hole, the rule
  of our latent compositor, which keeps the 8-pixel grid from showing at the mask edge).

    masked_latent, keep = brush_condition(vae, image, mask_fill, generator=g)
    out = branch(noisy, t, masked_latent, keep)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F


def masked_image(image: torch.Tensor, mask_fill: torch.Tensor) -> torch.Tensor:
    """``image`` (B, 3, H, W) in [-1, 1] with the hole (``mask_fill`` > 0.5) painted black (-1)."""
    hole = mask_fill.to(image.dtype) > 0.5
    return torch.where(hole, torch.full_like(image, -1.0), image)


def keep_mask(mask_fill: torch.Tensor, size: Sequence[int], mode: str = "nearest") -> torch.Tensor:
    """BrushNet's mask channel (B, 1, *size): 1 = keep, 0 = hole, from a (B, 1, H, W) fill mask."""
    hole = (mask_fill > 0.5).float()
    if mode == "nearest":
        small = F.interpolate(hole, size=tuple(size), mode="nearest")
    elif mode == "max":
        small = F.adaptive_max_pool2d(hole, tuple(size))
    else:
        raise ValueError(f"mask mode {mode!r}: use 'nearest' (BrushNet) or 'max' (any hole pixel)")
    return 1.0 - small


def brush_condition(
    vae: Any,
    image: torch.Tensor,
    mask_fill: torch.Tensor,
    generator: torch.Generator | None = None,
    sample: bool = True,
    mode: str = "nearest",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked-image latent, keep mask at latent size) for a diffusers ``AutoencoderKL``."""
    dist = vae.encode(masked_image(image, mask_fill).to(vae.dtype)).latent_dist
    latent = dist.sample(generator=generator) if sample else dist.mode()
    latent = latent * vae.config.scaling_factor
    return latent, keep_mask(mask_fill, latent.shape[-2:], mode).to(latent)
