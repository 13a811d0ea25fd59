"""The random inputs of one MAT fill, drawn per sample from seeded generators.

A MAT fill depends on a latent z, two {0,1} "keep" maps (the dropout that official MAT draws even
in eval mode) and, in 'random' noise mode, per-layer noise. Each sample draws all of them, in that
order, from its own ``torch.Generator`` on the CPU, so a variant's own seed gives the same fill
whatever the batch it runs in and whatever the device. (Which seed a variant gets is the engines'
one rule, ``engines/seeds.py``; here a seed only becomes generator state.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

SEED_MASK = (1 << 63) - 1


NearChain = tuple[tuple[int, float], ...]  # (root variant seed, 0.0), then (step seed, spread)...


def generator_seed(seed: int, salt: str = "") -> int:
    """A 63-bit generator seed from a variant seed (stable across platforms and versions)."""
    digest = hashlib.sha256(f"mat-variant:{salt}:{int(seed)}".encode()).digest()
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
    z_dim: int,
    keep_shapes: tuple[tuple[int, ...], tuple[int, ...]],
    near: NearChain = (),
    spread: float = 0.0,
) -> VariantInputs:
    """z, keep maps and noise stream of the variant whose own seed is ``seed``.

    With ``near`` (a reference variant: its root seed, then the steps that led to it) the variant
    is one more small step from that reference ("more like this"): it keeps the root's keep maps
    and noise stream and moves z by ``spread`` times a fresh direction drawn from ``seed``,
    rescaled so that z stays at unit variance (spread 0 gives the reference back exactly). A chain
    of steps reproduces a variant made "more like" a variant that was itself made that way.
    """
    root = near[0][0] if near else seed
    stream = seeded_generator(generator_seed(root))
    z = torch.randn(1, z_dim, generator=stream)
    maps = draw_keep_maps(keep_shapes, stream)
    if not near:
        return VariantInputs(z, maps, stream)
    for step_seed, step_spread in (*near[1:], (seed, spread)):
        if step_spread:
            direction = torch.randn(1, z_dim, generator=seeded_generator(generator_seed(step_seed, "near")))
            z = (z + step_spread * direction) / (1.0 + step_spread * step_spread) ** 0.5
    return VariantInputs(z, maps, stream)
