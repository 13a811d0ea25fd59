"""MAT's first stage: a mask-aware transformer U-Net that produces the coarse fill.

Split in two so that many variants can share the work that does not depend on the latent:
:meth:`FirstStage.encode` (partial-conv encoder and the transformer down to the 16x16
bottleneck) runs once per image; :meth:`FirstStage.decode` (the stochastic bottleneck mix, the
transformer back up, and the style-modulated conv decoder) runs once per variant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import MatConfig
from .layers import Conv2dLayer, FullyConnectedLayer, StyleConv, ToRGB
from .transformer import PartialConv2d, PatchResample, TransformerLayer, feature2token, token2feature
from .window import WINDOWED_LEVELS, Window

TOKEN_RESOLUTION = 64  # the transformer starts at a 64x64 token grid for the build resolution
SQUARE = 16  # the bottleneck noise map is 16x16 values


@dataclass
class Stage1Encoding:
    """Everything of the first stage that depends on the image and mask only (batch as encoded)."""

    conv_skips: list[torch.Tensor]  # encoder features at full, 1/2, 1/4 ... resolution
    token_skips: list[torch.Tensor]  # outputs of the transformer layers above the bottleneck
    tokens: torch.Tensor  # (B, N, C) bottleneck layer output, before the noise mix
    size: tuple[int, int]  # bottleneck token grid (H, W)
    channels_last: bool  # memory format of the feature maps (follows the input image)


class DecStyleBlock(nn.Module):
    """Up-sampling StyleConv + encoder skip + StyleConv + ToRGB, all with the same style vector."""

    def __init__(self, resolution: int, channels: int, style_dim: int, img_channels: int) -> None:
        super().__init__()
        self.conv0 = StyleConv(channels, channels, style_dim, resolution, up=2, use_noise=False)
        self.conv1 = StyleConv(channels, channels, style_dim, resolution, use_noise=False)
        self.toRGB = ToRGB(channels, img_channels, style_dim)

    def forward(
        self, x: torch.Tensor, img: torch.Tensor | None, style: torch.Tensor, skip: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv0(x, style, noise_mode="none") + skip
        x = self.conv1(x, style, noise_mode="none")
        return x, self.toRGB(x, style, skip=img)


class FirstStage(nn.Module):
    def __init__(self, config: MatConfig) -> None:
        super().__init__()
        dim = config.stage1_dim
        channels = config.img_channels
        self.conv_first = PartialConv2d(channels + 1, dim, 3, activation="lrelu")
        down_steps = config.resolution_log2 - (TOKEN_RESOLUTION.bit_length() - 1)
        self.enc_conv = nn.ModuleList(
            PartialConv2d(dim, dim, 3, activation="lrelu", down=2) for _ in range(down_steps)
        )

        ratios = (1, 2, 2, 0.5, 0.5)  # token-grid divisor per layer: 64 -> 64, 32, 16, 32, 64
        res = TOKEN_RESOLUTION
        self.tran = nn.ModuleList()
        for i, ratio in enumerate(ratios):
            resample = None
            if ratio == 2:
                resample = PatchResample(dim, down=2)
            elif ratio == 0.5:
                resample = PatchResample(dim, up=2)
            res = int(res / ratio)
            self.tran.append(
                TransformerLayer(
                    dim,
                    res,
                    config.stage1_depths[i],
                    config.stage1_heads,
                    config.stage1_windows[i],
                    config.stage1_mlp_ratio,
                    downsample=resample,
                )
            )

        down_conv: list[nn.Module] = [
            Conv2dLayer(dim, dim, 3, activation="lrelu", down=2) for _ in range(SQUARE.bit_length() - 1)
        ]
        self.down_conv = nn.Sequential(*down_conv, nn.AdaptiveAvgPool2d((1, 1)))
        self.to_style = FullyConnectedLayer(dim, dim * 2, activation="lrelu")
        self.ws_style = FullyConnectedLayer(config.w_dim, dim, activation="lrelu")
        self.to_square = FullyConnectedLayer(dim, SQUARE * SQUARE, activation="lrelu")

        style_dim = dim * 3
        self.dec_conv = nn.ModuleList()
        for _ in range(down_steps):
            res *= 2
            self.dec_conv.append(DecStyleBlock(res, dim, style_dim, channels))

    @property
    def mid(self) -> int:
        return len(self.tran) // 2

    def encode(self, image: torch.Tensor, mask: torch.Tensor) -> Stage1Encoding:
        """Image in [-1, 1] and mask (1 = known) -> the latent-independent part of the stage."""
        channels_last = not image.is_contiguous()
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        # (cat falls back to NCHW because of the one-channel mask: restore the layout)
        x = torch.cat([mask - 0.5, image * mask], dim=1).contiguous(memory_format=fmt)
        x, feat_mask = self.conv_first(x, mask)
        conv_skips = [x]
        for i, block in enumerate(self.enc_conv):
            x, feat_mask = block(x, feat_mask)
            if i != len(self.enc_conv) - 1:
                conv_skips.append(x)
        size = (x.shape[2], x.shape[3])
        tokens = feature2token(x)
        token_mask = feature2token(feat_mask)
        token_skips = []
        for i in range(self.mid):
            tokens, size, token_mask = self.tran[i](tokens, size, token_mask, channels_last)
            token_skips.append(tokens)
        tokens, size, _ = self.tran[self.mid](tokens, size, None, channels_last)
        return Stage1Encoding(conv_skips, token_skips, tokens, size, channels_last)

    def decode(
        self,
        enc: Stage1Encoding,
        ws: torch.Tensor,
        keep_map: torch.Tensor,
        trace: dict[str, torch.Tensor] | None = None,
        window: Window | None = None,
    ) -> torch.Tensor:
        """The coarse RGB (not yet composited) for each row of ``ws`` (B, num_ws, w_dim).

        With a ``window``, the top levels run only there and the RGB is zero outside it.

        ``keep_map`` (B, N, C) of 0/1 picks, per bottleneck element, the transformer feature (1) or
        the latent's noise map (0): the dropout map that official MAT draws even in eval mode.
        """
        tokens = enc.tokens
        ws_style = self.ws_style(ws[:, -1])
        noise = self.to_square(ws_style).unsqueeze(1)  # (B, 1, 256)
        if noise.shape[-1] != tokens.shape[1]:  # larger inputs: stretched along the token sequence
            noise = F.interpolate(noise, size=tokens.shape[1], mode="linear", align_corners=False)
        noise = noise.squeeze(1).unsqueeze(-1)  # (B, N, 1)
        keep_map = keep_map.to(tokens.dtype)
        x = tokens * keep_map + noise * (1 - keep_map)
        size = enc.size
        gs = self.to_style(self.down_conv(token2feature(x, size, enc.channels_last)).flatten(start_dim=1))
        style = torch.cat([gs, ws_style], dim=1)
        if trace is not None:
            trace.update(stg1_tran_mid_tokens=tokens, stg1_ws_style=ws_style, stg1_gs=gs)

        for i in range(self.mid + 1, len(self.tran)):
            x, size, _ = self.tran[i](x, size, None, enc.channels_last)
            if trace is not None and i == len(self.tran) - 1:
                trace["stg1_tran_out_tokens"] = x
            x = x + enc.token_skips[self.mid - i]

        x = token2feature(x, size, enc.channels_last)
        img = None
        blocks = len(self.dec_conv)
        windowed_from = blocks - min(WINDOWED_LEVELS, blocks) if window is not None else blocks
        for i, block in enumerate(self.dec_conv):
            skip = enc.conv_skips[blocks - i - 1]
            if i >= windowed_from:  # the top levels run on the crop around the hole
                if i == windowed_from:
                    x = window.crop_of(x)
                    img = window.crop_of(img) if img is not None else None
                skip = window.crop_of(skip)
            x, img = block(x, img, style, skip)
        assert img is not None
        return window.expand(img) if window is not None else img
