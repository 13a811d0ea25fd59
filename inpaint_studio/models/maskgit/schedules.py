"""Mask schedules gamma(r): the fraction of tokens still masked at progress r in [0, 1].

gamma(0) = 1 (everything masked) and gamma(1) = 0. The same function drives training (mask
``ceil(gamma(r) * N)`` tokens for r ~ U(0, 1)) and decoding (after step t of T, keep
``floor(N * gamma((t + 1) / T))`` tokens masked), as in the official JAX code.
"""

from __future__ import annotations

import math

import torch

SCHEDULES: tuple[str, ...] = ("cosine", "linear", "square", "arccos")
_ALIASES = {"uniform": "linear", "pow2": "square"}


def _canonical(name: str) -> tuple[str, float | None]:
    """Name -> (kind, exponent). ``powP`` (e.g. ``pow2.5``) is the family ``1 - r**P``."""
    name = _ALIASES.get(name, name)
    if name.startswith("pow") and name != "pow":
        try:
            return "pow", float(name[3:])
        except ValueError:
            pass
    if name == "square":
        return "pow", 2.0
    if name in SCHEDULES:
        return name, None
    raise ValueError(f"unknown mask schedule {name!r}; use one of {', '.join(SCHEDULES)} or powP")


def mask_ratio(name: str, r: float | torch.Tensor) -> float | torch.Tensor:
    """gamma(r) clipped to [1e-6, 1], for a float or a tensor of progress values."""
    kind, p = _canonical(name)
    if isinstance(r, torch.Tensor):
        if kind == "cosine":
            out = torch.cos(r * (math.pi / 2))
        elif kind == "linear":
            out = 1 - r
        elif kind == "pow":
            out = 1 - r**p
        else:
            out = torch.arccos(r) / (math.pi / 2)
        return out.clamp(1e-6, 1.0)
    if kind == "cosine":
        val = math.cos(r * math.pi / 2)
    elif kind == "linear":
        val = 1 - r
    elif kind == "pow":
        val = 1 - r**p
    else:
        val = math.acos(min(max(r, -1.0), 1.0)) / (math.pi / 2)
    return min(max(val, 1e-6), 1.0)


def masked_after_step(num_unknown: int, step: int, steps: int, name: str, still_masked: int) -> int:
    """Tokens to leave masked after ``step`` (0-based), exactly as the JAX decoder computes it.

    ``floor(num_unknown * gamma((step + 1) / steps))`` clamped to ``[1, still_masked - 1]``,
    where ``still_masked`` is the count before this step. The value of the last step is never
    applied: the decoder returns that step's sampled tokens complete.
    """
    target = math.floor(num_unknown * mask_ratio(name, (step + 1) / steps))
    return max(1, min(still_masked - 1, target))


def jax_masked_counts(num_unknown: int, steps: int, name: str = "cosine") -> list[int]:
    """The masked count after each step of a full decode (what ``schedules.json`` tabulates)."""
    out, masked = [], num_unknown
    for t in range(steps):
        masked = masked_after_step(num_unknown, t, steps, name, masked)
        out.append(masked)
    return out


def valeoai_reveal_counts(num_tokens: int, steps: int, mode: str = "arccos") -> list[int]:
    """Tokens revealed per step by the valeoai port's ``adap_sche`` (float32 arithmetic as there).

    Its progress runs ``linspace(1, 0, steps)``; the shape is normalised to ``num_tokens``,
    rounded, zeros bumped to 1, and the rounding remainder added to the last step.
    """
    r = torch.linspace(1, 0, steps)
    if mode == "root":
        share = 1 - r**0.5
    elif mode == "linear":
        share = 1 - r
    elif mode == "square":
        share = 1 - r**2
    elif mode == "cosine":
        share = torch.cos(r * math.pi * 0.5)
    elif mode == "arccos":
        share = torch.arccos(r) / (math.pi * 0.5)
    else:
        raise ValueError(f"unknown valeoai schedule {mode!r}; use root, linear, square, cosine or arccos")
    counts = (share / share.sum() * num_tokens).round()
    counts[counts == 0] = 1
    counts[-1] += num_tokens - counts.sum()
    return [int(c) for c in counts]
