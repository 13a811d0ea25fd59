"""Paired comparisons for the evaluation scripts: two methods scored on the same images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def paired_difference(ours: Sequence[float], base: Sequence[float]) -> dict[str, float]:
    """Ours minus base on the same images: the mean, its 95 % interval (normal), the share ours is lower."""
    d = np.asarray(ours, np.float64) - np.asarray(base, np.float64)
    d = d[np.isfinite(d)]
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    return {"mean": float(d.mean()), "ci95": float(half), "ours_lower": float((d < 0).mean())}
