"""Masked visual token modelling (MVTM): how training hides tokens, and the loss on them.

Per sample draw r ~ U(0, 1) and hide ``ceil(gamma(r) * N)`` tokens at random positions (the
paper's rule), or, as an option, hide each token independently with a fixed probability (the
Bernoulli mode of the seed lab report). The loss is cross-entropy on the hidden positions only.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from .schedules import mask_ratio

MaskMode = Literal["schedule", "bernoulli"]


class MaskedTokens(NamedTuple):
    tokens: torch.Tensor  # input ids with hidden positions set to the mask id
    mask: torch.Tensor  # bool, True where hidden (the positions the loss is taken on)


def mvtm_mask(
    tokens: torch.Tensor,
    mask_id: int,
    schedule: str = "cosine",
    mode: MaskMode = "schedule",
    ratio: float | None = None,
    generator: torch.Generator | None = None,
) -> MaskedTokens:
    """Hide tokens of ``tokens`` (B, ...) for one training step.

    ``mode="schedule"``: exactly ``ceil(gamma(r) * N)`` tokens per sample, r ~ U(0, 1), at least one.
    ``mode="bernoulli"``: each token hidden with probability ``ratio`` (fixed), or with the
    per-sample rate gamma(r) when ``ratio`` is None (the valeoai port's training rule).
    """
    b = tokens.shape[0]
    flat = tokens.reshape(b, -1)
    n = flat.shape[1]
    device = tokens.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=generator.device if generator else device).to(
            device
        )

    if mode == "schedule":
        if ratio is not None:
            raise ValueError("ratio applies to mode='bernoulli' only; the schedule mode draws it")
        gamma = mask_ratio(schedule, rand(b))
        count = torch.ceil(gamma * n).clamp(1, n).long()
        ranks = rand(b, n).argsort(dim=1).argsort(dim=1)  # a random permutation's ranks
        hidden = ranks < count.unsqueeze(1)
    elif mode == "bernoulli":
        if ratio is None:
            rate = mask_ratio(schedule, rand(b)).unsqueeze(1)
        elif not 0.0 < ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        else:
            rate = torch.full((b, 1), ratio, device=device)
        hidden = rand(b, n) < rate
    else:
        raise ValueError(f"unknown masking mode {mode!r}; use 'schedule' or 'bernoulli'")
    masked = torch.where(hidden, torch.full_like(flat, mask_id), flat)
    return MaskedTokens(masked.view_as(tokens), hidden.view(tokens.shape))


def expected_masked_fraction(schedule: str, samples: int = 10_000) -> float:
    """E[gamma(r)] for r ~ U(0, 1) (midpoint rule): how much of the image training hides on average."""
    return sum(float(mask_ratio(schedule, (i + 0.5) / samples)) for i in range(samples)) / samples


def masked_token_loss(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy over hidden positions only. ``logits`` (B, N, K), ``targets``/``mask`` (B, N...)."""
    k = logits.shape[-1]
    sel = mask.reshape(-1)
    if not bool(sel.any()):
        return logits.sum() * 0.0  # keeps the graph (DDP needs every parameter to get a gradient)
    return F.cross_entropy(
        logits.reshape(-1, k)[sel], targets.reshape(-1)[sel], label_smoothing=label_smoothing
    )


@torch.no_grad()
def masked_token_accuracy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> float:
    """Share of hidden positions whose argmax equals the true code (NaN when none is hidden)."""
    sel = mask.reshape(-1)
    if not bool(sel.any()):
        return math.nan
    pred = logits.reshape(-1, logits.shape[-1])[sel].argmax(-1)
    return float((pred == targets.reshape(-1)[sel]).float().mean())
