"""Exponential moving average of a module's weights (what gets exported and validated)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class Ema:
    """Keeps ``module``'s EMA copy; buffers (BatchNorm statistics) are copied, not averaged.

    The decay ramps up early (``min(decay, (1 + step) / (10 + step))``) so the copy does not
    linger at the random initialisation during short runs.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        beta = min(self.decay, (1.0 + step) / (10.0 + step))
        for ema_p, p in zip(self.module.parameters(), module.parameters(), strict=True):
            ema_p.lerp_(p.detach().to(ema_p.dtype), 1.0 - beta)
        for ema_b, b in zip(self.module.buffers(), module.buffers(), strict=True):
            ema_b.copy_(b)
