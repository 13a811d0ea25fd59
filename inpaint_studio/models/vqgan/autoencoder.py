"""The convolutional encoder and decoder of the VQGAN.

Module nesting mirrors taming-transformers (``down.{level}.block.{i}``, ``mid.attn_1``,
``up.{level}.upsample``) so that public state dicts load without renaming. ``up`` is indexed by
resolution level (0 = full resolution) although it runs from the coarsest level upward.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import VQGANConfig
from .layers import AttnBlock, Downsample, ResnetBlock, Upsample, group_norm, swish


class _Level(nn.Module):
    """One resolution level: residual blocks, attention after each block where configured."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()
        self.downsample: nn.Module | None = None  # encoder levels but the last
        self.upsample: nn.Module | None = None  # decoder levels but level 0

    def run_blocks(self, h: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn) > 0:
                h = self.attn[i](h)
        return h


class _Middle(nn.Module):
    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels, dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class Encoder(nn.Module):
    """Image (B, in_channels, H, W) in [-1, 1] -> latent (B, z_channels, H/f, W/f)."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        widths = [cfg.ch * m for m in (1, *cfg.ch_mult)]
        res = cfg.resolution
        self.down = nn.ModuleList()
        for level in range(len(cfg.ch_mult)):
            stage = _Level()
            c_in, c_out = widths[level], widths[level + 1]
            for _ in range(cfg.num_res_blocks):
                stage.block.append(ResnetBlock(c_in, c_out, cfg.dropout))
                c_in = c_out
                if res in cfg.attn_resolutions:
                    stage.attn.append(AttnBlock(c_out))
            if level != len(cfg.ch_mult) - 1:
                stage.downsample = Downsample(c_out)
                res //= 2
            self.down.append(stage)
        top = widths[-1]
        self.mid = _Middle(top, cfg.dropout)
        self.norm_out = group_norm(top)
        self.conv_out = nn.Conv2d(top, 2 * cfg.z_channels if cfg.double_z else cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for stage in self.down:
            h = stage.run_blocks(h)
            if stage.downsample is not None:
                h = stage.downsample(h)
        h = self.mid(h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent (B, z_channels, h, w) -> image (B, out_ch, h*f, w*f), roughly in [-1, 1]."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        widths = [cfg.ch * m for m in cfg.ch_mult]
        top = widths[-1]
        res = cfg.resolution // cfg.factor
        self.conv_in = nn.Conv2d(cfg.z_channels, top, 3, padding=1)
        self.mid = _Middle(top, cfg.dropout)
        levels: list[_Level] = []
        c_in = top
        for level in reversed(range(len(cfg.ch_mult))):
            stage = _Level()
            c_out = widths[level]
            for _ in range(cfg.num_res_blocks + 1):
                stage.block.append(ResnetBlock(c_in, c_out, cfg.dropout))
                c_in = c_out
                if res in cfg.attn_resolutions:
                    stage.attn.append(AttnBlock(c_out))
            if level != 0:
                stage.upsample = Upsample(c_out)
                res *= 2
            levels.insert(0, stage)
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(c_in)
        self.conv_out = nn.Conv2d(c_in, cfg.out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for stage in reversed(self.up):
            h = stage.run_blocks(h)
            if stage.upsample is not None:
                h = stage.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))
