"""Pixels for the screen: premultiplied BGRA (Qt's ARGB32_Premultiplied byte order) at any zoom level.

Level ``L`` shows the image downsampled by ``2**L``. Every function here takes a rectangle of the
image aligned to ``2**L`` (except at the right and bottom edges) and returns the level-sized array
for it, or ``None`` when that part is fully transparent, so the tile cache can skip it.
These are plain numpy/OpenCV functions: the Qt side only wraps their buffers in QImages.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..core.compositing import contributing_layers
from ..core.geometry import Rect
from ..core.layers import Layer


def level_shape(rect: Rect, level: int) -> tuple[int, int]:
    """(h, w) of ``rect`` at ``level`` (sizes round up so edge pixels are never lost)."""
    f = 1 << level
    return -(-rect.h // f), -(-rect.w // f)


def align(rect: Rect, level: int, shape: tuple[int, int]) -> Rect:
    """Grow ``rect`` outwards to multiples of ``2**level`` and clip it to the image."""
    f = 1 << level
    x0, y0 = (rect.x // f) * f, (rect.y // f) * f
    x1, y1 = -(-rect.right // f) * f, -(-rect.bottom // f) * f
    return Rect(x0, y0, x1 - x0, y1 - y0).clipped(shape)


def downsample(arr: np.ndarray, level: int) -> np.ndarray:
    """Box-filter ``arr`` by ``2**level`` (area average; integer factors take OpenCV's fast path)."""
    if level == 0:
        return arr
    f = 1 << level
    h, w = arr.shape[:2]
    oh, ow = -(-h // f), -(-w // f)
    if oh * f != h or ow * f != w:  # an edge region: pad by replication to keep the factor integral
        arr = cv2.copyMakeBorder(arr, 0, oh * f - h, 0, ow * f - w, cv2.BORDER_REPLICATE)
    out = cv2.resize(arr, (ow, oh), interpolation=cv2.INTER_AREA)
    if out.ndim == 2 and arr.ndim == 3:  # OpenCV drops a single channel axis
        out = out[..., None]
    return out


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """Straight RGBA uint8 -> premultiplied RGBA uint8 (rounded; OpenCV's SIMD multiply)."""
    a = np.ascontiguousarray(rgba[..., 3])
    factor = cv2.merge([a, a, a, np.full_like(a, 255)])
    return cv2.multiply(np.ascontiguousarray(rgba), factor, scale=1 / 255)


def to_bgra(rgba_premultiplied: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgba_premultiplied), cv2.COLOR_RGBA2BGRA)


def render_layers(layers: Sequence[Layer], rect: Rect, level: int) -> np.ndarray | None:
    """The visible layers blended (normal mode, layer opacity) as premultiplied BGRA at ``level``.

    Layers hidden under a fully opaque one are skipped, and so are layers that are transparent
    inside ``rect`` (a result layer only covers its fill), so most tiles cost one layer.
    """
    if rect.empty:
        return None
    acc: np.ndarray | None = None  # premultiplied RGBA, uint8 while a plain copy, float32 once blended
    for ly in contributing_layers(layers, rect):
        px = ly.pixels[rect.slices]
        alpha = px[..., 3]
        if not alpha.any():
            continue
        opaque = bool(alpha.min() == 255)
        small = downsample(px if opaque else premultiply(px), level)
        if acc is None and ly.opacity >= 1.0:
            acc = small
            continue
        src = small.astype(np.float32)
        if ly.opacity < 1.0:
            src *= ly.opacity
        if acc is None:
            acc = src
            continue
        if acc.dtype != np.float32:
            acc = acc.astype(np.float32)
        acc *= 1.0 - src[..., 3:4] * (1.0 / 255.0)
        acc += src
    if acc is None:
        return None
    if acc.dtype != np.uint8:
        acc = np.clip(np.rint(acc), 0, 255).astype(np.uint8)
    return to_bgra(acc)


def mask_lut(color: tuple[int, int, int], opacity: float) -> np.ndarray:
    """256 x 4 table: mask value -> premultiplied BGRA of the tint."""
    v = np.arange(256, dtype=np.float32)
    a = np.rint(v * float(opacity))
    lut = np.empty((256, 4), np.uint8)
    for i, c in enumerate((color[2], color[1], color[0])):
        lut[:, i] = np.rint(a * c / 255.0).astype(np.uint8)
    lut[:, 3] = a.astype(np.uint8)
    return lut


def render_mask(mask: np.ndarray, rect: Rect, level: int, lut: np.ndarray) -> np.ndarray | None:
    """The mask tinted through ``lut`` (see :func:`mask_lut`) at ``level``; None where it is empty."""
    region = mask[rect.slices]
    if rect.empty or not region.any():
        return None
    return lut[downsample(region, level)]


class OverlayPixels:
    """An image shown over part of the canvas (a variant, a step preview), ready for any level.

    ``rgb``/``alpha`` cover ``rect`` of the document; ``tint`` (optional, uint8, 255 = fully
    tinted) marks an area drawn in ``tint_color`` over it, e.g. a preview's undecided tokens.
    The premultiplied BGRA is built once, on a copy of ``rect`` grown to 64-pixel alignment so
    every level up to 6 downsamples it on the same grid as the document tiles.
    """

    ALIGN_LEVEL = 6

    def __init__(
        self,
        doc_shape: tuple[int, int],
        rect: Rect,
        rgb: np.ndarray,
        alpha: np.ndarray,
        tint: np.ndarray | None = None,
        tint_color: tuple[int, int, int] = (60, 150, 255),
        tint_opacity: float = 0.45,
    ) -> None:
        if rgb.shape[:2] != (rect.h, rect.w) or alpha.shape != (rect.h, rect.w):
            raise ValueError("overlay arrays must match its rectangle")
        self.rect = rect
        self.area = align(rect, self.ALIGN_LEVEL, doc_shape)
        rgba = np.zeros((self.area.h, self.area.w, 4), np.uint8)
        oy, ox = rect.y - self.area.y, rect.x - self.area.x
        view = rgba[oy : oy + rect.h, ox : ox + rect.w]
        view[..., :3] = rgb
        view[..., 3] = alpha
        pm = premultiply(rgba)
        if tint is not None and tint.any():
            t = np.zeros((self.area.h, self.area.w), np.float32)
            t[oy : oy + rect.h, ox : ox + rect.w] = tint.astype(np.float32) * (alpha / 255.0)
            t *= tint_opacity / 255.0
            f = pm.astype(np.float32)
            tint_rgb = np.asarray(tint_color, np.float32)
            f[..., :3] = f[..., :3] * (1.0 - t[..., None]) + tint_rgb * t[..., None]
            pm = np.clip(np.rint(f), 0, 255).astype(np.uint8)
        self._bgra = to_bgra(pm)

    def render(self, rect: Rect, level: int) -> np.ndarray | None:
        inter = _intersect(rect, self.area)
        if inter.empty:
            return None
        f = 1 << level
        h, w = level_shape(rect, level)
        out = np.zeros((h, w, 4), np.uint8)
        src = self._bgra[
            inter.y - self.area.y : inter.bottom - self.area.y,
            inter.x - self.area.x : inter.right - self.area.x,
        ]
        small = downsample(src, level)
        oy, ox = (inter.y - rect.y) // f, (inter.x - rect.x) // f
        sh, sw = min(small.shape[0], h - oy), min(small.shape[1], w - ox)
        out[oy : oy + sh, ox : ox + sw] = small[:sh, :sw]
        return out


def _intersect(a: Rect, b: Rect) -> Rect:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.right, b.right), min(a.bottom, b.bottom)
    return Rect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))
