"""StyleGAN2 building blocks with equalized learning rate, as MAT uses them.

Weights are stored at unit variance and scaled at run time by ``1/sqrt(fan_in)`` (times a learning
rate multiplier), so that Adam sees every layer at the same scale. Parameter and buffer names match
the official MAT / StyleGAN2-ADA modules, so official state dicts load unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .resample import conv_resample, make_fir_filter, upsample2

if TYPE_CHECKING:
    from .window import Window

LRELU_GAIN = math.sqrt(2.0)
NOISE_MODES = ("const", "random", "none")

# Draws standard-normal noise of a given shape (batch first); None = the global torch RNG.
NoiseFn = Callable[[tuple[int, ...], torch.dtype, torch.device], torch.Tensor]


def finish(x: torch.Tensor, activation: str, gain: float = 1.0) -> torch.Tensor:
    """Activation then gain, as StyleGAN2's bias_act orders them; in place when autograd is off."""
    inplace = not torch.is_grad_enabled()
    if activation == "lrelu":
        x = F.leaky_relu_(x, 0.2) if inplace else F.leaky_relu(x, 0.2)
        gain = gain * LRELU_GAIN
    elif activation != "linear":
        raise ValueError(f"unknown activation {activation!r}")
    if gain == 1:
        return x
    return x.mul_(gain) if inplace else x * gain


def add_(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x + y``, in place into ``x`` when autograd is off and shapes allow."""
    if torch.is_grad_enabled() or x.shape != torch.broadcast_shapes(x.shape, y.shape):
        return x + y
    return x.add_(y)


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """Linear layer on the last dimension (so it also works on token tensors)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias
        if b is not None and self.bias_gain != 1:
            b = b * self.bias_gain
        x = x.matmul(w.t())
        if b is not None:
            x = x + b
        return finish(x, self.activation)


class Conv2dLayer(nn.Module):
    """Convolution with 'same' padding, optional 2x up/down FIR resampling, bias and activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
    ) -> None:
        super().__init__()
        if activation not in ("linear", "lrelu"):
            raise ValueError(f"unknown activation {activation!r}")
        self.activation = activation
        self.up = up
        self.down = down
        self.register_buffer("resample_filter", make_fir_filter())
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv_resample(x, w, self.resample_filter, up=self.up, down=self.down, bias=b)
        return finish(x, self.activation, gain)


class ModulatedConv2d(nn.Module):
    """Convolution whose input channels are scaled by a style vector, optionally demodulated.

    One sample: the style is folded into the weights, in StyleGAN2's order of operations (so the
    rounding, too, follows the official network). Several samples: scale the input, run one
    shared-weight convolution, scale the output; the same result up to float rounding, and on the
    CPU about twice as fast as one grouped convolution with a weight per sample.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        up: int = 1,
    ) -> None:
        super().__init__()
        self.demodulate = demodulate
        self.up = up
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.register_buffer("resample_filter", make_fir_filter())
        self.affine = FullyConnectedLayer(style_dim, in_channels, bias_init=1.0)

    def forward(self, x: torch.Tensor, style: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``conv(x) + bias``, modulated by ``style`` (B, style_dim)."""
        styles = self.affine(style)  # (B, in)
        b = bias.to(x.dtype) if bias is not None else None
        if styles.shape[0] == 1:
            w = self.weight * self.weight_gain * styles.view(1, 1, -1, 1, 1)
            if self.demodulate:
                w = w * (w.square().sum(dim=(2, 3, 4)) + 1e-8).rsqrt().view(1, -1, 1, 1, 1)
            return conv_resample(x, w[0].to(x.dtype), self.resample_filter, up=self.up, bias=b)
        w = self.weight[0] * self.weight_gain  # (out, in, k, k)
        out = conv_resample(
            x * styles.to(x.dtype)[:, :, None, None], w.to(x.dtype), self.resample_filter, up=self.up
        )
        if self.demodulate:
            scale = (styles.square() @ w.square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()  # (B, out)
            scale = scale.to(x.dtype)[:, :, None, None]
            out = out.mul_(scale) if not torch.is_grad_enabled() else out * scale
        return out if b is None else add_(out, b.view(1, -1, 1, 1))


class StyleConv(nn.Module):
    """Modulated 3x3 convolution + per-pixel noise + bias + leaky ReLU (StyleGAN2 synthesis layer)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        style_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        demodulate: bool = True,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, demodulate, up)
        self.use_noise = use_noise
        self.resolution = resolution
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(
        self,
        x: torch.Tensor,
        style: torch.Tensor,
        noise_mode: str = "random",
        noise_fn: NoiseFn | None = None,
        window: Window | None = None,
    ) -> torch.Tensor:
        """``window``: ``x`` is the window's crop of the map (noise is then cut from the whole map)."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, not {noise_mode!r}")
        if not self.use_noise or noise_mode == "none":
            return finish(self.conv(x, style, bias=self.bias), "lrelu")
        x = self.conv(x, style)  # official order: conv, + noise, + bias, activation
        x = add_(x, self._noise(x, noise_mode, noise_fn, window) * self.noise_strength.to(x.dtype))
        return finish(add_(x, self.bias.to(x.dtype).view(1, -1, 1, 1)), "lrelu")

    def _noise(
        self, x: torch.Tensor, noise_mode: str, noise_fn: NoiseFn | None, window: Window | None
    ) -> torch.Tensor:
        batch, _, h, w = x.shape
        cut = None
        if window is not None:  # draw (or tile) for the whole map, then cut the crop: same values
            crop = window.crop
            scale = (crop.y1 - crop.y0) // h
            cut = (slice(crop.y0 // scale, crop.y1 // scale), slice(crop.x0 // scale, crop.x1 // scale))
            h, w = window.height // scale, window.width // scale
        if noise_mode == "random":
            if noise_fn is None:
                noise = torch.randn(batch, 1, h, w, dtype=x.dtype, device=x.device)
            else:
                noise = noise_fn((batch, 1, h, w), x.dtype, x.device)
        else:
            noise = self.noise_const.to(x.dtype)
            if noise.shape != (h, w):
                # Larger inputs than the build size (official code fails here): tile the fixed pattern.
                reps = (-(-h // noise.shape[0]), -(-w // noise.shape[1]))
                noise = noise.repeat(reps)[:h, :w]
        return noise if cut is None else noise[..., cut[0], cut[1]]


class ToRGB(nn.Module):
    """1x1 modulated convolution (no demodulation) to RGB, plus the up-sampled RGB of the level below."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", make_fir_filter())

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style, bias=self.bias)
        if skip is not None:
            if skip.shape[-2:] != out.shape[-2:]:
                skip = upsample2(skip, self.resample_filter)
            out = out + skip
        return out


class MappingNetwork(nn.Module):
    """z -> w: 2nd-moment normalisation, then fully connected layers with a small learning rate.

    Keeps ``w_avg``, a running mean of w (updated only in training), used by truncation.
    """

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        num_ws: int,
        num_layers: int = 8,
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.995,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        features = [z_dim] + [w_dim] * num_layers
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation="lrelu", lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self, z: torch.Tensor, truncation_psi: float = 1.0, update_w_avg: bool | None = None
    ) -> torch.Tensor:
        """Return ws of shape (B, num_ws, w_dim): the same w on every row."""
        dtype = self.fc0.weight.dtype
        x = normalize_2nd_moment(z.to(dtype))
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if update_w_avg if update_w_avg is not None else self.training:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            ws = self.w_avg.to(ws.dtype).lerp(ws, truncation_psi)
        return ws
