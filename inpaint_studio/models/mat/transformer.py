"""MAT's mask-aware transformer pieces: partial convolutions and shifted-window attention.

Differences from a textbook Swin block, all deliberate in MAT: no LayerNorm and no residual
inside the block; queries and keys come from the L2-normalised tokens, values from the raw ones;
the attention input and output are fused by concatenation and a linear layer; keys that are
still unknown (mask 0) get -100 before the softmax, and after the block a whole window becomes
known as soon as any of its tokens was (the dynamic mask update).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Conv2dLayer, FullyConnectedLayer

MASKED_LOGIT = -100.0


def token2feature(x: torch.Tensor, size: tuple[int, int], channels_last: bool = True) -> torch.Tensor:
    """(B, H*W, C) row-major tokens -> (B, C, H, W): a free channels-last view, or a contiguous copy."""
    b, _, c = x.shape
    out = x.reshape(b, size[0], size[1], c).permute(0, 3, 1, 2)
    return out if channels_last else out.contiguous()


def feature2token(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C) row-major tokens; free for channels-last maps."""
    b, c = x.shape[:2]
    return x.permute(0, 2, 3, 1).reshape(b, -1, c)


class PartialConv2d(nn.Module):
    """Mask-aware convolution: output rescaled by (window size / known pixels in the window).

    As in MAT, the rescaling is applied after bias and activation, and the mask is reduced with a
    plain k x k window (stride = down) while features use the FIR-filtered resampling path.
    Masks are 1 = known, 0 = hole; the new mask is 1 wherever the window saw a known pixel.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
    ) -> None:
        super().__init__()
        self.conv = Conv2dLayer(
            in_channels, out_channels, kernel_size, activation=activation, up=up, down=down
        )
        self.kernel_size = kernel_size
        self.down = down
        self.up = up

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if mask is None:
            return self.conv(x), None
        if self.up != 1:
            raise ValueError("MAT never passes a mask through an up-sampling partial convolution")
        ratio, new_mask = partial_conv_ratio(mask, self.kernel_size, self.down)
        return self.conv(x) * ratio.to(x.dtype), new_mask


def partial_conv_ratio(
    mask: torch.Tensor, kernel_size: int, stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rescaling ratio, updated mask) for a k x k window; computed in float32 for any model dtype."""
    mask = mask.float()
    ones = torch.ones(1, 1, kernel_size, kernel_size, device=mask.device)
    pad = kernel_size // 2 if kernel_size % 2 else 0
    count = F.conv2d(mask, ones, stride=stride, padding=pad)
    new_mask = count.clamp(0, 1)
    ratio = kernel_size**2 / (count + 1e-8) * new_mask
    return ratio, new_mask


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * windows, window * window, C), batch-major, windows row-major."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * windows, window * window, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.reshape(b, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def shift_region_mask(size: tuple[int, int], window: int, shift: int) -> torch.Tensor:
    """Additive mask (windows, N, N) that keeps a shifted window from mixing wrapped-around regions."""
    h, w = size
    labels = torch.zeros(1, h, w, 1)
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bands:
        for cols in bands:
            labels[:, rows, cols, :] = label
            label += 1
    ids = window_partition(labels, window).squeeze(-1)  # (windows, N)
    different = ids.unsqueeze(1) != ids.unsqueeze(2)
    return torch.zeros(different.shape).masked_fill(different, MASKED_LOGIT)


class WindowAttention(nn.Module):
    """Multi-head attention inside windows with L2-normalised q/k and mask-aware logits."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = FullyConnectedLayer(dim, dim)
        self.k = FullyConnectedLayer(dim, dim)
        self.v = FullyConnectedLayer(dim, dim)
        self.proj = FullyConnectedLayer(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        mask_windows: torch.Tensor | None = None,
        region_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B_, N, C); mask_windows: (B_, N, 1) of 0/1; region_mask: (windows, N, N) or None."""
        bw, n, c = x.shape
        heads = self.num_heads
        normed = F.normalize(x, p=2.0, dim=-1)
        q = self.q(normed).view(bw, n, heads, c // heads).transpose(1, 2)
        k = self.k(normed).view(bw, n, heads, c // heads).permute(0, 2, 3, 1)
        v = self.v(x).view(bw, n, heads, c // heads).transpose(1, 2)
        logits = (q @ k) * self.scale  # (B_, heads, N, N)
        if region_mask is not None:
            windows = region_mask.shape[0]
            logits = (
                logits.view(bw // windows, windows, heads, n, n) + region_mask.to(logits.dtype)[None, :, None]
            )
            logits = logits.view(bw, heads, n, n)
        if mask_windows is not None:
            keys = mask_windows.squeeze(-1)[:, None, None, :].to(logits.dtype)  # (B_, 1, 1, N)
            # 0 (unknown) -> -100, 1 (known) -> 0; fractional mask values are added as they are.
            bias = torch.where(
                keys == 0, torch.full_like(keys, MASKED_LOGIT), torch.where(keys == 1, 0.0, keys)
            )
            logits = logits + bias
            mask_windows = mask_windows.sum(dim=1, keepdim=True).clamp(0, 1).expand(bw, n, 1)
        attn = logits.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out), mask_windows


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = FullyConnectedLayer(dim, hidden, activation="lrelu")
        self.fc2 = FullyConnectedLayer(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class SwinBlock(nn.Module):
    """One (shifted-)window attention block of MAT; returns the MLP output, no residual."""

    def __init__(
        self, dim: int, resolution: tuple[int, int], num_heads: int, window: int, shift: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.resolution = tuple(resolution)
        if min(resolution) <= window:  # one window covers the map: nothing to shift
            shift, window = 0, min(resolution)
        self.window = window
        self.shift = shift
        self.attn = WindowAttention(dim, num_heads)
        self.fuse = FullyConnectedLayer(dim * 2, dim, activation="lrelu")
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        region = shift_region_mask(self.resolution, window, shift) if shift > 0 else None
        self.register_buffer("attn_mask", region)

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h, w = size
        b, n, c = x.shape
        shortcut = x
        grid = x.view(b, h, w, c)
        mask_grid = mask.view(b, h, w, 1) if mask is not None else None
        if self.shift:
            grid = torch.roll(grid, shifts=(-self.shift, -self.shift), dims=(1, 2))
            if mask_grid is not None:
                mask_grid = torch.roll(mask_grid, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = window_partition(grid, self.window)
        mask_windows = window_partition(mask_grid, self.window) if mask_grid is not None else None
        region = None
        if self.shift:
            region = self.attn_mask if tuple(size) == self.resolution else None
            if region is None:
                region = shift_region_mask(tuple(size), self.window, self.shift).to(x.device)
        out, mask_windows = self.attn(windows, mask_windows, region)
        grid = window_reverse(out, self.window, h, w)
        if mask_windows is not None:
            mask_grid = window_reverse(mask_windows, self.window, h, w)
        if self.shift:
            grid = torch.roll(grid, shifts=(self.shift, self.shift), dims=(1, 2))
            if mask_grid is not None:
                mask_grid = torch.roll(mask_grid, shifts=(self.shift, self.shift), dims=(1, 2))
        x = grid.reshape(b, n, c)
        if mask_grid is not None:
            mask = mask_grid.reshape(b, n, 1)
        x = self.fuse(torch.cat([shortcut, x], dim=-1))
        return self.mlp(x), mask


class PatchResample(nn.Module):
    """Token-grid down- or up-sampling by a 3x3 partial convolution (MAT's PatchMerging/Upsampling)."""

    def __init__(self, dim: int, up: int = 1, down: int = 1) -> None:
        super().__init__()
        self.conv = PartialConv2d(dim, dim, 3, activation="lrelu", up=up, down=down)
        self.up = up
        self.down = down

    def forward(
        self,
        x: torch.Tensor,
        size: tuple[int, int],
        mask: torch.Tensor | None = None,
        channels_last: bool = True,
    ) -> tuple[torch.Tensor, tuple[int, int], torch.Tensor | None]:
        feat = token2feature(x, size, channels_last)
        mask_map = token2feature(mask, size) if mask is not None else None
        feat, mask_map = self.conv(feat, mask_map)
        size = (feat.shape[2], feat.shape[3])
        return feature2token(feat), size, feature2token(mask_map) if mask_map is not None else None


class TransformerLayer(nn.Module):
    """Optional resampling, then blocks, then a partial conv added to the post-resampling tokens.

    Mirrors the official BasicLayer (attribute names ``downsample``, ``blocks``, ``conv``).
    """

    def __init__(
        self,
        dim: int,
        resolution: int,
        depth: int,
        num_heads: int,
        window: int,
        mlp_ratio: float,
        downsample: PatchResample | None = None,
    ) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim, (resolution, resolution), num_heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio
            )
            for i in range(depth)
        )
        self.conv = PartialConv2d(dim, dim, 3, activation="lrelu")

    def forward(
        self,
        x: torch.Tensor,
        size: tuple[int, int],
        mask: torch.Tensor | None = None,
        channels_last: bool = True,
    ) -> tuple[torch.Tensor, tuple[int, int], torch.Tensor | None]:
        if self.downsample is not None:
            x, size, mask = self.downsample(x, size, mask, channels_last)
        identity = x
        for block in self.blocks:
            x, mask = block(x, size, mask)
        mask_map = token2feature(mask, size) if mask is not None else None
        feat, mask_map = self.conv(token2feature(x, size, channels_last), mask_map)
        x = feature2token(feat) + identity
        return x, size, feature2token(mask_map) if mask_map is not None else None
