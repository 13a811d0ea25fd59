"""The random inputs of one MAT fill, drawn per sample from seeded generators.

A MAT fill depends on a latent z, two {0,1} "keep" maps (the dropout that official MAT draws even
in eval mode) and, in 'random' noise mode, per-layer noise. Each sample draws all of them, in that
order, from its own ``torch.Generator`` on the CPU, so a (seed, index) pair gives the same fill
whatever the batch it runs in and whatever the device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

SEED_MASK = (1 << 63) - 1


def variant_seed(seed: int, index: int, salt: str = "") -> int:
    """A 63-bit generator seed for variant ``index`` of request ``seed`` (stable across platforms)."""
    digest = hashlib.sha256(f"mat-variant:{salt}:{int(seed)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & SEED_MASK


def seeded_generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


@dataclass(frozen=True)
class KeepMaps:
    """The two bottleneck keep maps: 1 keeps the network feature, 0 takes the latent's noise map.

    ``stage1``: (B, tokens, stage1_dim); ``stage2``: (B, channels, h, w).
    """

    stage1: torch.Tensor
    stage2: torch.Tensor

    @staticmethod
    def cat(maps: Sequence[KeepMaps]) -> KeepMaps:
        return KeepMaps(torch.cat([m.stage1 for m in maps]), torch.cat([m.stage2 for m in maps]))

    def to(self, device: torch.device | str) -> KeepMaps:
        return KeepMaps(self.stage1.to(device), self.stage2.to(device))


def draw_keep_maps(
    shapes: tuple[tuple[int, ...], tuple[int, ...]], generator: torch.Generator | None = None
) -> KeepMaps:
    """Bernoulli(0.5) maps of the given per-batch shapes (global RNG when ``generator`` is None)."""
    first, second = ((torch.rand(shape, generator=generator) < 0.5).to(torch.float32) for shape in shapes)
    return KeepMaps(first, second)


class SampleStreams:
    """Per-sample random streams: row i of every draw comes from ``generators[i]``."""

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        self.generators = list(generators)

    def normal(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Standard-normal noise of ``shape`` (batch first); drawn on the CPU in float32."""
        if shape[0] != len(self.generators):
            raise ValueError(f"noise batch {shape[0]} does not match {len(self.generators)} sample streams")
        rows = [torch.randn(shape[1:], generator=g) for g in self.generators]
        return torch.stack(rows).to(device=device, dtype=dtype)


@dataclass(frozen=True)
class VariantInputs:
    """The random inputs of one variant; ``stream`` continues with its 'random'-mode noise."""

    z: torch.Tensor  # (1, z_dim)
    keep_maps: KeepMaps  # batch 1
    stream: torch.Generator


def variant_inputs(
    seed: int,
    index: int,
    z_dim: int,
    keep_shapes: tuple[tuple[int, ...], tuple[int, ...]],
    near: tuple[int, int, float] | None = None,
) -> VariantInputs:
    """z, keep maps and noise stream of variant ``index`` of ``seed``.

    With ``near = (ref_seed, ref_index, spread)`` the variant is a small step from that reference
    variant ("more like this"): it keeps the reference's keep maps and noise stream and moves its
    z by ``spread`` times a fresh direction, rescaled so that z stays at unit variance (spread 0
    gives the reference back exactly).
    """
    if near is None:
        stream = seeded_generator(variant_seed(seed, index))
        z = torch.randn(1, z_dim, generator=stream)
        return VariantInputs(z, draw_keep_maps(keep_shapes, stream), stream)
    ref_seed, ref_index, spread = near
    stream = seeded_generator(variant_seed(ref_seed, ref_index))
    z_ref = torch.randn(1, z_dim, generator=stream)
    maps = draw_keep_maps(keep_shapes, stream)
    if spread == 0:
        return VariantInputs(z_ref, maps, stream)
    step = seeded_generator(variant_seed(seed, index, salt=f"near:{ref_seed}:{ref_index}"))
    direction = torch.randn(1, z_dim, generator=step)
    z = (z_ref + spread * direction) / (1.0 + spread * spread) ** 0.5
    return VariantInputs(z, maps, stream)
