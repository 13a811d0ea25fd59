"""FIR resampling around convolutions, StyleGAN2 style, in plain PyTorch.

All resampling uses the 4x4 low-pass filter ``outer([1,3,3,1], [1,3,3,1]) / 64``. The layouts
(which side gets how much padding, the gain of 4 after up-sampling) follow StyleGAN2-ADA's
``conv2d_resample``, so that checkpoints trained with it give the same numbers here:

* down by 2: pad 2, low-pass, then a stride-2 convolution (3x3) or a stride-2 pick (1x1);
* up by 2: a stride-2 transposed convolution with the flipped kernel, then the low-pass with
  gain 4 and one pixel of padding, giving exactly twice the size;
* up by 2 without a convolution (the RGB skip): zero insertion, then the low-pass with gain 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FIR_TAPS = (1.0, 3.0, 3.0, 1.0)


def make_fir_filter() -> torch.Tensor:
    """The normalised 4x4 low-pass filter kept (as a buffer) by every resampling layer."""
    taps = torch.tensor(FIR_TAPS, dtype=torch.float32)
    f = torch.outer(taps, taps)
    return f / f.sum()


def fir(x: torch.Tensor, f: torch.Tensor, pad: int, gain: float = 1.0) -> torch.Tensor:
    """Depthwise-filter every channel with ``f`` after ``pad`` pixels of zero padding on each side.

    The filter is symmetric, so convolution and correlation agree. Keeps the memory format of
    ``x`` (channels-last inputs are filtered about twice as fast on the CPU).
    """
    channels = x.shape[1]
    kernel = (f * gain).to(dtype=x.dtype, device=x.device)
    kernel = kernel[None, None].expand(channels, 1, *f.shape)
    return F.conv2d(x, kernel, padding=pad, groups=channels)


def conv_down2(
    x: torch.Tensor, weight: torch.Tensor, f: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """Low-pass then convolve with stride 2: (H, W) -> (H/2, W/2) for 1x1 and 3x3 kernels."""
    k = weight.shape[-1]
    if k == 1:
        return F.conv2d(fir(x, f, 1)[:, :, ::2, ::2], weight, bias)
    return F.conv2d(fir(x, f, k // 2 + 1), weight, bias, stride=2)


def conv_up2(x: torch.Tensor, weight: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Transposed stride-2 3x3 convolution then low-pass (gain 4): (H, W) -> (2H, 2W)."""
    if weight.shape[-1] != 3:
        raise ValueError("up-sampling convolutions are 3x3 in MAT")
    w = weight.transpose(0, 1).flip([2, 3])
    x = F.conv_transpose2d(x, w, stride=2)  # 2H + 1
    return fir(x, f, 1, gain=4.0)


def upsample2(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Zero-insertion up-sampling by 2 followed by the low-pass with gain 4 (the RGB skip path)."""
    channels = x.shape[1]
    kernel = (f * 4.0).to(dtype=x.dtype, device=x.device)[None, None].expand(channels, 1, *f.shape)
    # A stride-2 transposed depthwise convolution with padding 1 is exactly
    # "insert zeros, pad (2, 1), filter" for a symmetric 4-tap filter.
    return F.conv_transpose2d(x, kernel, stride=2, padding=1, groups=channels)


def conv_resample(
    x: torch.Tensor,
    weight: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    down: int = 1,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Convolution with 'same' padding, optional 2x up- or down-sampling, then optional bias."""
    if up == 2 and down == 1:
        out = conv_up2(x, weight, f)
        return out if bias is None else out + bias.view(1, -1, 1, 1)
    if down == 2 and up == 1:
        return conv_down2(x, weight, f, bias)
    if up == 1 and down == 1:
        return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2)
    raise ValueError(f"unsupported resampling up={up} down={down}: MAT uses factors 1 and 2")
