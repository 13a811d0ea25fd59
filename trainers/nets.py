"""Training-only networks shared by tasks (the app never needs them)."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """A PatchGAN-style critic: strided 4x4 convs with LeakyReLU, one logit per image patch.

    ``in_channels`` is usually RGB + mask so that the critic knows where the fill is.
    """

    def __init__(self, in_channels: int = 4, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = channels
        for i in range(1, layers):
            nxt = min(channels * 2**i, 512)
            mods += [nn.Conv2d(ch, nxt, 4, 2, 1), nn.GroupNorm(min(32, nxt // 4), nxt), nn.LeakyReLU(0.2)]
            ch = nxt
        mods += [nn.Conv2d(ch, ch, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(ch, 1, 3, 1, 1)]
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
