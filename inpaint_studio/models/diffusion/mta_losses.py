"""MTA's edge target and structure loss, and the weights of its three loss terms.

The paper's total loss is ``L = gamma * L_noise + delta * L_style + eta * L_structure`` with
``gamma = 1``, ``delta = 100``, ``eta = 0.1`` (:data:`PAPER_WEIGHTS`). ``L_noise`` is the usual
epsilon MSE; ``L_style`` lives in ``latent_style.py``; ``L_structure`` is here:

    target = sobel_edge_target(image, size=latent.shape[-2:])    # image in [-1, 1]
    loss = edge_loss(branch_output.edge, target)                  # (1/B) sum_i ||s_i - s~_i||_F^2

The target is the Sobel gradient magnitude of the image's luma, scaled to [0, 1] (a Sobel kernel
answers at most 4 per axis on a [0, 1] image, so the magnitude is divided by 4 * sqrt(2)) and
area-downsampled to latent size. As in the paper the structure loss sums over pixels and averages
over the batch; ``per_pixel=True`` divides by the pixel count instead (a scale choice for other
latent sizes, not the paper's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_LUMA = (0.299, 0.587, 0.114)
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
_SOBEL_MAX = 4.0 * 2.0**0.5


@dataclass(frozen=True)
class LossWeights:
    """Weights of the noise, style and structure (edge) terms."""

    noise: float = 1.0  # gamma
    style: float = 100.0  # delta
    edge: float = 0.1  # eta

    def total(
        self, noise: torch.Tensor, style: torch.Tensor | None = None, edge: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The weighted sum; a term left out (None) counts as switched off."""
        loss = self.noise * noise
        if style is not None:
            loss = loss + self.style * style
        if edge is not None:
            loss = loss + self.edge * edge
        return loss


PAPER_WEIGHTS = LossWeights()


def sobel_edge_target(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Edge map (B, 1, *size) in [0, 1] of an RGB image batch (B, 3, H, W) in [-1, 1]."""
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected an RGB batch (B, 3, H, W), got {tuple(image.shape)}")
    rgb = (image.float().clamp(-1, 1) + 1) / 2
    luma = (rgb * torch.tensor(_LUMA, device=rgb.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    kx = torch.tensor(_SOBEL_X, device=rgb.device)
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1)  # (2, 1, 3, 3): d/dx, d/dy
    grad = F.conv2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), kernels)
    magnitude = torch.linalg.vector_norm(grad, dim=1, keepdim=True) / _SOBEL_MAX
    return F.interpolate(magnitude, size=tuple(size), mode="area").to(image.dtype)


def edge_loss(pred: torch.Tensor, target: torch.Tensor, per_pixel: bool = False) -> torch.Tensor:
    """The paper's structure loss: squared Frobenius norm per sample, averaged over the batch."""
    if pred.shape != target.shape:
        raise ValueError(f"edge prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    per_sample = (pred.float() - target.float()).pow(2).flatten(1).sum(1)
    if per_pixel:
        per_sample = per_sample / pred[0].numel()
    return per_sample.mean()
