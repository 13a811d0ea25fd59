"""Hole-only image quality: PSNR and SSIM measured inside the mask.

Images are (N, 3, H, W) in [0, 1] (use ``(x + 1) / 2`` for [-1, 1] tensors), masks (N, 1, H, W)
with 1 = hole. PSNR comes from the mean squared error over hole pixels of each image; SSIM uses
the usual 11x11 Gaussian window (sigma 1.5, K1 0.01, K2 0.03) computed everywhere with reflect
padding, then averaged over the hole pixels only. Both are returned per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def hole_psnr(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, eps: float = 1e-10
) -> torch.Tensor:
    """(N,) PSNR in dB over hole pixels; images without a hole give NaN."""
    m = mask.expand_as(pred).float()
    mse = ((pred.float() - target.float()).square() * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    return torch.where(
        m.flatten(1).sum(1) > 0, -10.0 * torch.log10(mse + eps), torch.full_like(mse, math.nan)
    )


def _gaussian_window(size: int = 11, sigma: float = 1.5, device: torch.device | None = None) -> torch.Tensor:
    ax = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_map(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel SSIM (N, C, H, W), same size as the input."""
    c = pred.shape[1]
    win = _gaussian_window(device=pred.device).expand(c, 1, -1, -1)
    pad = win.shape[-1] // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), win, groups=c)

    x, y = pred.float(), target.float()
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))


def hole_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) mean SSIM over hole pixels; images without a hole give NaN."""
    s = ssim_map(pred, target)
    m = mask.expand_as(s).float()
    total = m.flatten(1).sum(1)
    return torch.where(
        total > 0, (s * m).flatten(1).sum(1) / total.clamp_min(1), torch.full_like(total, math.nan)
    )
