"""One seed rule for every engine, the CLI and follow-ups.

Variant ``i`` of a request with seed ``s`` runs with :func:`variant_seed` ``(s, i)``, a proper mix
(SplitMix64), not ``s + i``: with ``s + i``, the next take (``s + 1``) would repeat N-1 fills of the
last one. ``Variant.seed`` is always that derived seed, and ``variant_seed(s, 0) == s``, so a variant
reproduces alone: a one-variant request with ``seed=variant.seed`` gives the same fill.
"""

from __future__ import annotations

_MASK64 = (1 << 64) - 1
SEED_MAX = (1 << 31) - 1  # fits every RNG we feed (numpy, torch, cv2) and a JSON int


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def variant_seed(seed: int, index: int) -> int:
    """The seed that reproduces variant ``index`` of a run with ``seed`` (index 0 included).

    Index 0 returns ``seed`` itself, so a one-variant run with seed S is the same fill as variant 0
    of an N-variant run with seed S, and a variant's own seed (``Variant.seed``) re-run alone gives it
    back. Other indices mix (seed, index) so that no two nearby seeds share variants.
    """
    if index == 0:
        return int(seed) & SEED_MAX
    mixed = _splitmix64((int(seed) & _MASK64) ^ _splitmix64(int(index)))
    return mixed & SEED_MAX


def next_take_seed(seed: int, take: int) -> int:
    """The request seed of the ``take``-th repeat of a run (follow-ups, "run again", CLI runs)."""
    return variant_seed(seed, 1_000_003 * (take + 1)) if take >= 0 else int(seed) & SEED_MAX
