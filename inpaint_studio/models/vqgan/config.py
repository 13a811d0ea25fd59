"""VQGAN configuration: the constructor arguments of the autoencoder and its quantizer.

Field names follow taming-transformers' ``ddconfig`` (``ch``, ``ch_mult``, ``z_channels`` ...)
so that a public ``model.yaml`` maps onto this class one to one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..config_io import SavedConfig

GROUPS = 32  # GroupNorm groups used throughout the autoencoder


@dataclass(frozen=True)
class VQGANConfig(SavedConfig):
    """Shape of a VQGAN (taming "VQModel" autoencoder part).

    ``ch_mult`` has one entry per resolution level; the image is downsampled ``len(ch_mult) - 1``
    times, so the token grid side is ``image_side / factor``. ``attn_resolutions`` lists the
    feature-map sides (counted from ``resolution``) at which attention blocks sit.
    Quantizer options: ``beta`` weighs the commitment term; ``ema_decay`` > 0 switches the
    codebook to exponential-moving-average updates (no codebook gradient); ``restart_threshold``
    > 0 lets training re-seed codes whose running usage fell below it.
    """

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    z_channels: int = 256
    resolution: int = 256
    in_channels: int = 3
    out_ch: int = 3
    dropout: float = 0.0
    double_z: bool = False
    n_embed: int = 1024
    embed_dim: int = 256
    beta: float = 0.25
    legacy_loss: bool = True
    ema_decay: float = 0.0
    restart_threshold: float = 0.0

    config_name = "VQGAN"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ch_mult", tuple(int(m) for m in self.ch_mult))
        object.__setattr__(self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions))
        if not self.ch_mult or any(m < 1 for m in self.ch_mult):
            raise ValueError(f"ch_mult must be a non-empty list of positive ints, got {self.ch_mult}")
        for width in [self.ch * m for m in (1, *self.ch_mult)]:
            if width % GROUPS:
                raise ValueError(
                    f"every channel width must be a multiple of {GROUPS} (GroupNorm); got {width}"
                )
        positive = (
            "ch",
            "num_res_blocks",
            "z_channels",
            "resolution",
            "in_channels",
            "out_ch",
            "n_embed",
            "embed_dim",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.resolution % self.factor:
            raise ValueError(
                f"resolution {self.resolution} is not divisible by the downsampling factor {self.factor}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(
                f"ema_decay must be in [0, 1) (0 = gradient-trained codebook), got {self.ema_decay}"
            )
        if self.restart_threshold < 0:
            raise ValueError(f"restart_threshold must be >= 0, got {self.restart_threshold}")

    @property
    def factor(self) -> int:
        """Pixels per token along each side."""
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def grid_size(self) -> int:
        """Token grid side at the configured ``resolution``."""
        return self.resolution // self.factor

    def with_resolution(self, resolution: int) -> VQGANConfig:
        """The same network labelled for another image size (attention stays at the same levels)."""
        scale = resolution / self.resolution
        attn = tuple(int(round(r * scale)) for r in self.attn_resolutions)
        return replace(self, resolution=resolution, attn_resolutions=attn)

    @classmethod
    def from_taming(
        cls, ddconfig: Mapping[str, Any], n_embed: int, embed_dim: int, **quantizer: Any
    ) -> VQGANConfig:
        """From taming's ``model.params`` pieces (``ddconfig``, ``n_embed``, ``embed_dim``)."""
        keys = ("ch", "ch_mult", "num_res_blocks", "attn_resolutions", "z_channels", "resolution")
        keys += ("in_channels", "out_ch", "dropout", "double_z")
        args = {k: ddconfig[k] for k in keys if k in ddconfig}
        return cls(**args, n_embed=n_embed, embed_dim=embed_dim, **quantizer)
