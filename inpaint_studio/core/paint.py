"""Painting colour on RGBA layers with the same round dabs as the mask brush."""

from __future__ import annotations

import numpy as np

from .geometry import Rect
from .masks import dab_rect, stamp_dab


def stamp_color_dab(
    rgba: np.ndarray,
    x: float,
    y: float,
    size: float,
    hardness: float,
    color: tuple[int, int, int],
    opacity: float = 1.0,
    erase: bool = False,
) -> Rect:
    """Composite one dab of ``color`` over (or erase from) straight-alpha RGBA pixels in place."""
    rect = dab_rect(x, y, size, rgba.shape[:2])
    if rect.empty:
        return rect
    local = np.zeros((rect.h, rect.w), np.uint8)
    stamp_dab(local, x - rect.x, y - rect.y, size, hardness, "add")
    a = local.astype(np.float32)[..., None] * (float(np.clip(opacity, 0.0, 1.0)) / 255.0)
    view = rgba[rect.slices]
    dst_a = view[..., 3:4].astype(np.float32) / 255.0
    if erase:
        view[..., 3:4] = np.rint(dst_a * (1.0 - a) * 255.0).astype(np.uint8)
        return rect
    out_a = a + dst_a * (1.0 - a)
    src = np.asarray(color, np.float32)[None, None, :]
    rgb = (src * a + view[..., :3].astype(np.float32) * dst_a * (1.0 - a)) / np.where(out_a > 0, out_a, 1.0)
    touched = local > 0
    view[..., :3][touched] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)[touched]
    view[..., 3:4][touched] = np.rint(out_a * 255.0).astype(np.uint8)[touched]
    return rect
