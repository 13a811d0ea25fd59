"""Cheap step previews: SD-1.5 latents projected to RGB by a fixed 4x3 matrix, no VAE decode.

The factors are the published SD-1.5 latent-to-RGB approximation (as ComfyUI ships it), for latents as
the denoising loop holds them (already multiplied by the VAE scaling factor).
"""

from __future__ import annotations

from typing import Any

import numpy as np

SD15_LATENT_RGB = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)


def latents_to_rgb(latents: Any) -> np.ndarray:
    """(B, 4, h, w) latents -> (B, h, w, 3) uint8 at latent resolution."""
    import torch

    factors = torch.tensor(SD15_LATENT_RGB, dtype=torch.float32, device=latents.device)
    rgb = torch.einsum("bchw,cr->bhwr", latents.float(), factors)
    rgb = ((rgb + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8)
    return rgb.cpu().numpy()
