"""MAT's second stage: a conv U-Net refining the coarse fill, its decoder style-modulated.

Module and attribute names follow the official code (``EncConv_Block_512x512``, ``Dec_16x16``...)
so that checkpoints load; the decoder's layers read their own rows of ws, which only matter when
the rows differ (style mixing in training).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import MatConfig
from .layers import Conv2dLayer, FullyConnectedLayer, NoiseFn, StyleConv, ToRGB, add_
from .window import WINDOWED_LEVELS, Window

BOTTLENECK = 16  # the encoder stops (and the noise mix happens) at 16x16 for the build size


class EncFromRGB(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, out_channels, 1, activation="lrelu")
        self.conv1 = Conv2dLayer(out_channels, out_channels, 3, activation="lrelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv0(x))


class ConvBlockDown(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, out_channels, 3, activation="lrelu", down=2)
        self.conv1 = Conv2dLayer(out_channels, out_channels, 3, activation="lrelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv0(x))


class Encoder(nn.Module):
    """Plain conv encoder from the build resolution down to 16x16; features keyed by log2(res)."""

    def __init__(self, config: MatConfig) -> None:
        super().__init__()
        self.levels = list(range(config.resolution_log2, BOTTLENECK.bit_length() - 2, -1))
        for log2 in self.levels:
            res = 2**log2
            if log2 == config.resolution_log2:
                block: nn.Module = EncFromRGB(config.img_channels * 2 + 1, config.channels(res))
            else:
                block = ConvBlockDown(config.channels(res * 2), config.channels(res))
            setattr(self, f"EncConv_Block_{res}x{res}", block)

    def block(self, log2: int) -> nn.Module:
        return getattr(self, f"EncConv_Block_{2**log2}x{2**log2}")

    def forward(
        self, x: torch.Tensor, start: int = 0, out: dict[int, torch.Tensor] | None = None
    ) -> dict[int, torch.Tensor]:
        """Features of every level; with ``start`` > 0, ``x`` is the output of level ``levels[start - 1]``."""
        out = dict(out or {})
        for log2 in self.levels[start:]:
            x = self.block(log2)(x)
            out[log2] = x
        return out


class ToStyle(nn.Module):
    """Global style vector from the mixed 16x16 map: three stride-2 convs, average pool, FC."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            *(Conv2dLayer(in_channels, in_channels, 3, activation="lrelu", down=2) for _ in range(3))
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = FullyConnectedLayer(in_channels, out_channels, activation="lrelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv(x)).flatten(start_dim=1))


def style_code(ws_row: torch.Tensor, gs: torch.Tensor) -> torch.Tensor:
    return torch.cat([ws_row, gs], dim=1)


class DecBlockFirst(nn.Module):
    """The 16x16 decoder block: plain conv on the mixed map, + encoder feature, StyleConv, ToRGB."""

    def __init__(self, config: MatConfig, style_dim: int) -> None:
        super().__init__()
        ch = config.channels(BOTTLENECK)
        self.conv0 = Conv2dLayer(ch, ch, 3, activation="lrelu")
        self.conv1 = StyleConv(ch, ch, style_dim, BOTTLENECK, use_noise=config.use_noise)
        self.toRGB = ToRGB(ch, config.img_channels, style_dim)

    def forward(
        self,
        x: torch.Tensor,
        ws: torch.Tensor,
        gs: torch.Tensor,
        skip: torch.Tensor,
        noise_mode: str,
        noise_fn: NoiseFn | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv0(x) + skip
        x = self.conv1(x, style_code(ws[:, 0], gs), noise_mode, noise_fn)
        return x, self.toRGB(x, style_code(ws[:, 1], gs))


class DecBlock(nn.Module):
    """Decoder block at 2**log2: up-sampling StyleConv, + encoder feature, StyleConv, ToRGB."""

    def __init__(self, config: MatConfig, log2: int, style_dim: int) -> None:
        super().__init__()
        self.log2 = log2
        res = 2**log2
        cin, cout = config.channels(res // 2), config.channels(res)
        self.conv0 = StyleConv(cin, cout, style_dim, res, up=2, use_noise=config.use_noise)
        self.conv1 = StyleConv(cout, cout, style_dim, res, use_noise=config.use_noise)
        self.toRGB = ToRGB(cout, config.img_channels, style_dim)

    def forward(
        self,
        x: torch.Tensor,
        img: torch.Tensor,
        ws: torch.Tensor,
        gs: torch.Tensor,
        skip: torch.Tensor,
        noise_mode: str,
        noise_fn: NoiseFn | None,
        window: Window | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        row = self.log2 * 2 - 9
        x = add_(self.conv0(x, style_code(ws[:, row], gs), noise_mode, noise_fn, window), skip)
        x = self.conv1(x, style_code(ws[:, row + 1], gs), noise_mode, noise_fn, window)
        return x, self.toRGB(x, style_code(ws[:, row + 2], gs), skip=img)


class Decoder(nn.Module):
    def __init__(self, config: MatConfig, style_dim: int) -> None:
        super().__init__()
        self.Dec_16x16 = DecBlockFirst(config, style_dim)
        self.levels = list(range(BOTTLENECK.bit_length(), config.resolution_log2 + 1))
        for log2 in self.levels:
            setattr(self, f"Dec_{2**log2}x{2**log2}", DecBlock(config, log2, style_dim))

    def forward(
        self,
        x: torch.Tensor,
        ws: torch.Tensor,
        gs: torch.Tensor,
        feats: dict[int, torch.Tensor],
        noise_mode: str,
        noise_fn: NoiseFn | None,
        window: Window | None = None,
    ) -> torch.Tensor:
        """RGB for the whole map, or with a ``window``: its top two levels run on the window's crop
        (``feats`` there may be whole maps or already crops) and the RGB is zero outside it."""
        first = BOTTLENECK.bit_length() - 1
        x, img = self.Dec_16x16(x, ws, gs, feats[first], noise_mode, noise_fn)
        windowed_from = len(self.levels) - WINDOWED_LEVELS if window is not None else len(self.levels)
        for j, log2 in enumerate(self.levels):
            block = getattr(self, f"Dec_{2**log2}x{2**log2}")
            skip = feats[log2]
            if j >= windowed_from:
                if j == windowed_from:
                    x, img = window.crop_of(x), window.crop_of(img)
                if skip.shape[-2] != 2 * x.shape[-2]:
                    skip = window.crop_of(skip)
            x, img = block(x, img, ws, gs, skip, noise_mode, noise_fn, window if j >= windowed_from else None)
        return window.expand(img) if window is not None else img
