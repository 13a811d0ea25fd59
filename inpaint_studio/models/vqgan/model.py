"""The VQGAN: encoder -> quant_conv -> quantizer; post_quant_conv -> decoder.

Images are float tensors in [-1, 1], shape (B, 3, H, W) with H, W multiples of ``factor``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from .autoencoder import Decoder, Encoder
from .config import VQGANConfig
from .quantizer import QuantizerOutput, VectorQuantizer

# State-dict prefixes of the autoencoder in public taming checkpoints (the rest is the loss).
AUTOENCODER_PREFIXES = ("encoder.", "decoder.", "quantize.", "quant_conv.", "post_quant_conv.")


class VQGANOutput(NamedTuple):
    reconstruction: torch.Tensor
    quant: QuantizerOutput


class VQGAN(nn.Module):
    """Taming-compatible VQGAN autoencoder; ``state_dict()`` keys equal the public checkpoints'."""

    def __init__(self, config: VQGANConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = VQGANConfig(**kwargs)
        elif kwargs:
            raise TypeError("pass either a VQGANConfig or keyword arguments, not both")
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantize = VectorQuantizer(
            config.n_embed,
            config.embed_dim,
            beta=config.beta,
            legacy_loss=config.legacy_loss,
            ema_decay=config.ema_decay,
            restart_threshold=config.restart_threshold,
        )
        z_out = 2 * config.z_channels if config.double_z else config.z_channels
        self.quant_conv = nn.Conv2d(z_out, config.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)

    @property
    def factor(self) -> int:
        return self.config.factor

    def encode(self, x: torch.Tensor) -> QuantizerOutput:
        """Image -> quantized latent, loss, code ids (B, H/f, W/f) and usage figures."""
        self._check_image(x)
        return self.quantize(self.quant_conv(self.encoder(x)))

    def encode_indices(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x).indices

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Quantized latent (B, embed_dim, h, w) -> image (B, 3, h*f, w*f)."""
        return self.decoder(self.post_quant_conv(z_q))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code ids (B, h, w) -> image. The path MaskGIT uses for previews and results."""
        if indices.min() < 0 or indices.max() >= self.config.n_embed:
            raise ValueError(
                f"code ids must lie in [0, {self.config.n_embed}), got {int(indices.min())}..{int(indices.max())}"
            )
        return self.decode(self.quantize.lookup(indices))

    def forward(self, x: torch.Tensor) -> VQGANOutput:
        quant = self.encode(x)
        return VQGANOutput(self.decode(quant.z_q), quant)

    def last_layer_weight(self) -> torch.Tensor:
        """The decoder's output conv weight: the adaptive GAN weight balances gradients there."""
        return self.decoder.conv_out.weight

    def _check_image(self, x: torch.Tensor) -> None:
        f = self.factor
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}"
            )
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"image sides must be multiples of {f}, got {x.shape[3]}x{x.shape[2]}")


def autoencoder_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep only the autoencoder's tensors (drops ``loss.*`` and anything else)."""
    return {k: v for k, v in state.items() if k.startswith(AUTOENCODER_PREFIXES)}
