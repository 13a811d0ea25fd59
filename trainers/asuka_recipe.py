"""The pure pieces of ASUKA's alignment and decoder training recipes (paper, Sec. 3.2, 3.3 and 5).

* Alignment: with probability p the MAE's *reconstructed* prior (computed with nothing masked, so it has
  seen everything SD is asked to recreate) replaces the predicted prior; p falls linearly from 100 % to
  10 % over the first 2K steps, then stays.
* Decoder: colour jitter of the image the latent is made from (brightness 0.15, contrast 0.2,
  saturation 0.1, hue 0.03, in torchvision's ColorJitter sense: a random order of the four adjustments,
  factors drawn uniformly), the one-step SD estimate of z0 for latent augmentation (t in [500, 1000),
  on 50 % of the samples), and the pretrained parameters at 0.1x the learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# ----------------------------------------------------------------------------- alignment
SUBSTITUTION_START, SUBSTITUTION_END, SUBSTITUTION_STEPS = 1.0, 0.1, 2000


def substitution_probability(
    step: int,
    start: float = SUBSTITUTION_START,
    end: float = SUBSTITUTION_END,
    steps: int = SUBSTITUTION_STEPS,
) -> float:
    """p at ``step`` (0-based): linear from ``start`` to ``end`` over ``steps``, then fixed at ``end``."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if steps <= 0 or step >= steps:
        return end
    return start + (end - start) * step / steps


def draw_substitution(step: int, n: int, rng: np.random.Generator, **schedule: float) -> np.ndarray:
    """For each of ``n`` samples: True = train on the reconstructed prior instead of the predicted one."""
    return rng.random(n) < substitution_probability(step, **schedule)


# ----------------------------------------------------------------------------- colour jitter
@dataclass(frozen=True)
class ColorJitter:
    """Random brightness / contrast / saturation / hue for (N, 3, H, W) RGB in [0, 1], per sample.

    ``brightness=b`` draws a factor in [1-b, 1+b] (likewise contrast and saturation); ``hue=h`` a shift
    in [-h, h] of a full turn. The four are applied in a random order, as torchvision does.
    """

    brightness: float = 0.15
    contrast: float = 0.2
    saturation: float = 0.1
    hue: float = 0.03

    def __post_init__(self) -> None:
        if min(self.brightness, self.contrast, self.saturation, self.hue) < 0 or self.hue > 0.5:
            raise ValueError("jitter strengths must be >= 0 (hue <= 0.5)")

    def draw(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Factors (n, 4): brightness, contrast, saturation, hue shift; and each sample's order (n, 4)."""
        u = torch.rand(n, 4, generator=generator) * 2 - 1
        spread = torch.tensor([self.brightness, self.contrast, self.saturation, self.hue])
        factors = u * spread + torch.tensor([1.0, 1.0, 1.0, 0.0])
        order = torch.stack([torch.randperm(4, generator=generator) for _ in range(n)])
        return factors, order

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        factors, order = self.draw(images.shape[0], generator)
        return self.apply(images, factors.to(images.device), order)

    @staticmethod
    def apply(images: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        ops = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
        out = []
        for i in range(images.shape[0]):
            x = images[i : i + 1]
            for k in order[i].tolist():
                x = ops[k](x, factors[i, k])
            out.append(x)
        return torch.cat(out)


def _gray(x: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor([0.2989, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    return (x * factor).clamp(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Blend with the mean grey level of each image."""
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return (factor * x + (1 - factor) * mean).clamp(0, 1)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Blend with the image's grey version."""
    return (factor * x + (1 - factor) * _gray(x)).clamp(0, 1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor | float) -> torch.Tensor:
    """Rotate the hue by ``shift`` of a full turn (through HSV)."""
    h, s, v = _rgb_to_hsv(x)
    return _hsv_to_rgb((h + shift) % 1.0, s, v)


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r, g, b = x.unbind(dim=1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    d = delta.clamp_min(1e-12)
    h = torch.where(maxc == r, ((g - b) / d) % 6, torch.where(maxc == g, (b - r) / d + 2, (r - g) / d + 4))
    h = torch.where(delta > 0, h / 6.0, torch.zeros_like(h))
    return h, s, maxc


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.long() % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = torch.stack(
        [
            torch.stack([v, t, p], 1),
            torch.stack([q, v, p], 1),
            torch.stack([p, v, t], 1),
            torch.stack([p, q, v], 1),
            torch.stack([t, p, v], 1),
            torch.stack([v, p, q], 1),
        ],
        dim=0,
    )  # (6, N, 3, H, W)
    index = i[None, :, None].expand(1, -1, 3, -1, -1)
    return table.gather(0, index)[0]


# ----------------------------------------------------------------------------- latent augmentation
LATENT_AUG_T = (500, 1000)
LATENT_AUG_P = 0.5


def sample_timesteps(
    n: int, generator: torch.Generator | None = None, low_high: tuple[int, int] = LATENT_AUG_T
):
    """Integer timesteps uniform in [low, high)."""
    return torch.randint(low_high[0], low_high[1], (n,), generator=generator)


def one_step_z0(
    z_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """``(z_t - sqrt(1 - a_t) * eps) / sqrt(a_t)``: SD's estimate of z0 from one noise prediction."""
    a = alphas_cumprod.to(z_t.device, torch.float32)[t.to(z_t.device)].view(-1, *([1] * (z_t.ndim - 1)))
    return ((z_t.float() - (1 - a).sqrt() * eps.float()) / a.sqrt()).to(z_t.dtype)


# ----------------------------------------------------------------------------- decoder optimiser
PRETRAINED_LR_SCALE = 0.1


def decoder_param_groups(model: nn.Module, lr: float, scale: float = PRETRAINED_LR_SCALE) -> list[dict]:
    """Optimiser groups for an :class:`~inpaint_studio.models.asuka.decoder.AsukaDecoder`: the VAE decoder's
    pretrained parameters at ``scale * lr``, the new condition encoder at ``lr``."""
    pretrained = [p for n, p in model.named_parameters() if n.startswith("decoder.") and p.requires_grad]
    new = [p for n, p in model.named_parameters() if not n.startswith("decoder.") and p.requires_grad]
    return [
        {"params": pretrained, "lr": lr * scale, "name": "pretrained"},
        {"params": new, "lr": lr, "name": "condition"},
    ]
