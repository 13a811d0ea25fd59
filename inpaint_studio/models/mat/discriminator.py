"""MAT's two-headed discriminator: residual CNNs for the final and the first-stage output.

Key names match the official ``Discriminator`` (``Dis.*``, ``fc0``, ``fc1`` and the ``_stg1``
twins with half the channels), so official training checkpoints resume here. Only the
unconditional form (c_dim = 0) that every MAT release uses is supported.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import DiscriminatorConfig
from .layers import Conv2dLayer, FullyConnectedLayer

RESIDUAL_GAIN = math.sqrt(0.5)


class DisFromRGB(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = Conv2dLayer(in_channels, out_channels, 1, activation="lrelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class DisBlock(nn.Module):
    """3x3 conv, 3x3 stride-2 conv, plus a 1x1 stride-2 skip; both branches scaled by sqrt(1/2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, activation="lrelu", down=2)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(x, gain=RESIDUAL_GAIN)
        return skip + self.conv1(self.conv0(x), gain=RESIDUAL_GAIN)


class MinibatchStdLayer(nn.Module):
    """Appends the average standard deviation over groups of samples as extra channels."""

    def __init__(self, group_size: int, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor, sets: int = 1) -> torch.Tensor:
        """``sets`` > 1: the batch is that many equal sets (e.g. reals then fakes), never mixed."""
        if sets > 1:
            return torch.cat([self.forward(part) for part in x.chunk(sets)])
        n, c, h, w = x.shape
        group = min(self.group_size, n)
        if n % group:
            raise ValueError(f"batch {n} is not divisible by the minibatch-std group size {group}")
        f = self.num_channels
        y = x.reshape(group, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=(2, 3, 4))  # (n/group, F)
        y = y.reshape(-1, f, 1, 1).repeat(group, 1, h, w)
        return torch.cat([x, y], dim=1)


def _tower(config: DiscriminatorConfig, divisor: int) -> nn.Sequential:
    def ch(res: int) -> int:
        return config.channels(res) // divisor

    layers: list[nn.Module] = [DisFromRGB(config.img_channels + 1, ch(config.img_resolution))]
    for log2 in range(config.resolution_log2, 2, -1):
        layers.append(DisBlock(ch(2**log2), ch(2 ** (log2 - 1))))
    extra = 0
    if config.mbstd_num_channels > 0:
        layers.append(MinibatchStdLayer(config.mbstd_group_size, config.mbstd_num_channels))
        extra = config.mbstd_num_channels
    layers.append(Conv2dLayer(ch(4) + extra, ch(4), 3, activation="lrelu"))
    return nn.Sequential(*layers)


class MatDiscriminator(nn.Module):
    """D(image, mask, stage-1 image) -> (logit, stage-1 logit); mask 1 = known, 0 = hole."""

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiscriminatorConfig()
        top = self.config.channels(4)
        self.Dis = _tower(self.config, 1)
        self.fc0 = FullyConnectedLayer(top * 16, top, activation="lrelu")
        self.fc1 = FullyConnectedLayer(top, 1)
        self.Dis_stg1 = _tower(self.config, 2)
        self.fc0_stg1 = FullyConnectedLayer(top // 2 * 16, top // 2, activation="lrelu")
        self.fc1_stg1 = FullyConnectedLayer(top // 2, 1)

    def forward(
        self, image: torch.Tensor, mask: torch.Tensor, image_stage1: torch.Tensor, sets: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``sets``: the batch holds that many equal sets (reals and fakes in one call) whose
        minibatch-std groups must not mix; the logits are those of separate calls per set."""
        if len(image) % sets:
            raise ValueError(f"batch {len(image)} does not split into {sets} equal sets")
        x = _run_tower(self.Dis, torch.cat([mask - 0.5, image], dim=1), sets)
        logit = self.fc1(self.fc0(x.flatten(start_dim=1)))
        y = _run_tower(self.Dis_stg1, torch.cat([mask - 0.5, image_stage1], dim=1), sets)
        logit_stage1 = self.fc1_stg1(self.fc0_stg1(y.flatten(start_dim=1)))
        return logit, logit_stage1


def _run_tower(tower: nn.Sequential, x: torch.Tensor, sets: int) -> torch.Tensor:
    for layer in tower:
        x = layer(x, sets) if isinstance(layer, MinibatchStdLayer) else layer(x)
    return x
