"""Architecture settings of the MAT generator and discriminator.

The defaults are the official 512x512 model (Places / CelebA-HQ checkpoints). Every width is a
field so that tests and CPU smoke runs can build a tiny network with the same topology.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config_io import SavedConfig


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


@dataclass(frozen=True)
class MatConfig(SavedConfig):
    """Constructor arguments of :class:`~inpaint_studio.models.mat.generator.MatGenerator`.

    ``channel_base`` / ``channel_max`` give the second stage's width at resolution r as
    ``min(channel_base // r, channel_max)`` (official: 64 channels at 512, 512 at 64 and below).
    ``use_noise=False`` builds the second-stage decoder without noise inputs, the layout of
    IOPaint's converted checkpoint.
    """

    z_dim: int = 512
    w_dim: int = 512
    img_resolution: int = 512
    img_channels: int = 3
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float = 0.995
    stage1_dim: int = 180
    stage1_heads: int = 6
    stage1_depths: tuple[int, ...] = (2, 3, 4, 3, 2)
    stage1_windows: tuple[int, ...] = (8, 16, 16, 16, 8)
    stage1_mlp_ratio: float = 2.0
    channel_base: int = 32768
    channel_max: int = 512
    use_noise: bool = True

    config_name = "MAT"

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; keep the dataclass hashable and comparable.
        object.__setattr__(self, "stage1_depths", tuple(int(d) for d in self.stage1_depths))
        object.__setattr__(self, "stage1_windows", tuple(int(w) for w in self.stage1_windows))
        if not _power_of_two(self.img_resolution) or self.img_resolution < 128:
            raise ValueError(f"img_resolution must be a power of two >= 128, got {self.img_resolution}")
        for name in ("z_dim", "w_dim", "img_channels", "mapping_layers", "stage1_dim", "stage1_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.stage1_dim % self.stage1_heads:
            raise ValueError(
                f"stage1_dim ({self.stage1_dim}) must be divisible by stage1_heads ({self.stage1_heads})"
            )
        if len(self.stage1_depths) != 5 or len(self.stage1_windows) != 5:
            raise ValueError("stage1_depths and stage1_windows need five entries (64, 32, 16, 32, 64 tokens)")
        if any(d < 1 for d in self.stage1_depths) or any(w < 1 for w in self.stage1_windows):
            raise ValueError("stage1 depths and window sizes must be positive")
        if self.channel_max < 1 or self.channel_base < self.img_resolution:
            raise ValueError("channel_base must be >= img_resolution and channel_max >= 1")
        if not 0.0 < self.mapping_lr_multiplier <= 1.0:
            raise ValueError("mapping_lr_multiplier must be in (0, 1]")
        if not 0.0 <= self.w_avg_beta < 1.0:
            raise ValueError("w_avg_beta must be in [0, 1)")

    @property
    def resolution_log2(self) -> int:
        return self.img_resolution.bit_length() - 1

    @property
    def num_ws(self) -> int:
        """Rows of the broadcast latent: two per decoder resolution from 16 up, as official."""
        return 2 * self.resolution_log2 - 6

    def channels(self, resolution: int) -> int:
        """Width of the second stage (and the discriminator) at ``resolution``."""
        return max(1, min(self.channel_base // resolution, self.channel_max))

    @classmethod
    def tiny(cls, **overrides: Any) -> MatConfig:
        """Same topology (six heads, as official checkpoints), a few channels wide: CPU tests, smoke runs."""
        base = dict(z_dim=16, w_dim=16, stage1_dim=12, stage1_heads=6, channel_base=2048, channel_max=16)
        base.update(overrides)
        return cls(**base)


@dataclass(frozen=True)
class DiscriminatorConfig(SavedConfig):
    """Constructor arguments of :class:`~inpaint_studio.models.mat.discriminator.MatDiscriminator`.

    Official training uses ``mbstd_group_size`` 8 for the 512 configurations (constructor default 4).
    """

    img_resolution: int = 512
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1

    config_name = "MAT discriminator"

    def __post_init__(self) -> None:
        if not _power_of_two(self.img_resolution) or self.img_resolution < 8:
            raise ValueError(f"img_resolution must be a power of two >= 8, got {self.img_resolution}")
        if self.channel_max < 2 or self.channel_base < self.img_resolution:
            raise ValueError("channel_base must be >= img_resolution and channel_max >= 2")
        if self.mbstd_group_size < 1 or self.mbstd_num_channels < 0:
            raise ValueError("mbstd_group_size must be >= 1 and mbstd_num_channels >= 0")

    @property
    def resolution_log2(self) -> int:
        return self.img_resolution.bit_length() - 1

    def channels(self, resolution: int) -> int:
        return max(2, min(self.channel_base // resolution, self.channel_max))
