"""Blend the visible layers (normal 'over' mode with layer opacity) into one image."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .geometry import Rect
from .layers import Layer


def composite_rgba(layers: Sequence[Layer], shape: tuple[int, int], rect: Rect | None = None) -> np.ndarray:
    """Straight RGBA uint8 of the visible layers (bottom first) over transparency, within ``rect``."""
    rect = (rect or Rect.full(shape)).clipped(shape)
    visible = [ly for ly in layers if ly.visible and ly.opacity > 0]
    if not visible:
        return np.zeros((rect.h, rect.w, 4), np.uint8)
    # fast path: a single fully opaque layer at full opacity is its own composite
    if len(visible) == 1 and visible[0].opacity >= 1.0:
        return visible[0].pixels[rect.slices].copy()
    acc_rgb = np.zeros((rect.h, rect.w, 3), np.float32)  # premultiplied
    acc_a = np.zeros((rect.h, rect.w, 1), np.float32)
    start = 0
    for i in range(len(visible) - 1, -1, -1):  # skip layers hidden under an opaque one
        ly = visible[i]
        if ly.opacity >= 1.0 and ly.pixels[rect.slices][..., 3].min() == 255:
            start = i
            break
    for ly in visible[start:]:
        px = ly.pixels[rect.slices]
        a = px[..., 3:4].astype(np.float32) * (ly.opacity / 255.0)
        acc_rgb *= 1.0 - a
        acc_rgb += px[..., :3].astype(np.float32) * a
        acc_a *= 1.0 - a
        acc_a += a
    out = np.empty((rect.h, rect.w, 4), np.uint8)
    safe = np.where(acc_a > 0, acc_a, 1.0)
    out[..., :3] = np.clip(np.rint(acc_rgb / safe), 0, 255)
    out[..., 3:] = np.clip(np.rint(acc_a * 255.0), 0, 255)
    return out


def composite_rgb(
    layers: Sequence[Layer], shape: tuple[int, int], rect: Rect | None = None, background: int = 255
) -> np.ndarray:
    """RGB uint8 of the visible layers flattened over a plain ``background`` grey level."""
    rgba = composite_rgba(layers, shape, rect)
    a = rgba[..., 3:4].astype(np.uint16)
    return ((rgba[..., :3].astype(np.uint16) * a + background * (255 - a) + 127) // 255).astype(np.uint8)
