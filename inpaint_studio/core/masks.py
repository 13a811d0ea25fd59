"""Mask operations. A mask is uint8 HxW: 255 = fill, 0 = keep, values between blend.

Brush dabs touch only their bounding rectangle (and return it), so painting on a 4000x3000
image costs what the brush covers, not the image size.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

from .geometry import Rect

Mode = Literal["add", "subtract", "replace"]
Point = tuple[float, float]


@functools.lru_cache(maxsize=256)
def _dab_profile(size: int, hardness_pct: int, frac_x: int, frac_y: int) -> np.ndarray:
    """Coverage (0..255, uint8) of a round dab of diameter ``size`` at a quarter-pixel offset."""
    radius = size / 2.0
    span = int(math.ceil(radius)) + 1
    ys, xs = np.mgrid[-span : span + 1, -span : span + 1].astype(np.float32)
    d = np.hypot(xs - frac_x / 4.0, ys - frac_y / 4.0)
    hard = hardness_pct / 100.0
    inner = radius * hard
    if radius - inner < 1.0:  # hard brush: 1 px anti-aliased rim
        cov = np.clip(radius + 0.5 - d, 0.0, 1.0)
    else:
        t = np.clip((d - inner) / (radius - inner), 0.0, 1.0)
        cov = 1.0 - t * t * (3.0 - 2.0 * t)  # smoothstep falloff
        cov[d > radius + 0.5] = 0.0
    return np.rint(cov * 255.0).astype(np.uint8)


def dab_rect(x: float, y: float, size: float, shape: tuple[int, int]) -> Rect:
    """The rectangle (clipped to ``shape``) a dab at (x, y) may touch."""
    span = int(math.ceil(max(size, 1.0) / 2.0)) + 1
    cx, cy = int(math.floor(x)), int(math.floor(y))
    return Rect(cx - span, cy - span, 2 * span + 1, 2 * span + 1).clipped(shape)


def stamp_dab(
    target: np.ndarray,
    x: float,
    y: float,
    size: float,
    hardness: float = 1.0,
    mode: Mode = "add",
    strength: int = 255,
) -> Rect:
    """Paint one round dab into ``target`` (uint8 HxW) in place; return the touched rectangle."""
    size_i = max(1, int(round(size)))
    cx, cy = int(math.floor(x)), int(math.floor(y))
    fx, fy = int((x - cx) * 4) % 4, int((y - cy) * 4) % 4
    prof = _dab_profile(size_i, int(round(np.clip(hardness, 0.0, 1.0) * 100)), fx, fy)
    span = prof.shape[0] // 2
    full = Rect(cx - span, cy - span, prof.shape[1], prof.shape[0])
    rect = full.clipped(target.shape[:2])
    if rect.empty:
        return rect
    sub = prof[rect.y - full.y : rect.y - full.y + rect.h, rect.x - full.x : rect.x - full.x + rect.w]
    if strength != 255:
        sub = ((sub.astype(np.uint16) * strength + 127) // 255).astype(np.uint8)
    view = target[rect.slices]
    if mode == "add":
        np.maximum(view, sub, out=view)
    elif mode == "subtract":
        np.minimum(view, 255 - sub, out=view)
    else:
        view[sub > 0] = sub[sub > 0]
    return rect


def dab_positions(
    p0: Point, p1: Point, size: float, spacing: float = 0.15, carry: float = 0.0
) -> tuple[list[Point], float]:
    """Dab centres from p0 (exclusive) to p1 every ``spacing * size`` px.

    ``carry`` is the distance already travelled since the last dab; the new carry is returned so a
    stroke made of many mouse moves keeps even spacing.
    """
    step = max(1.0, spacing * size)
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    dist = math.hypot(dx, dy)
    out: list[Point] = []
    t = step - carry
    while t <= dist:
        out.append((p0[0] + dx * t / dist, p0[1] + dy * t / dist))
        t += step
    return out, (carry + dist) % step if dist > 0 else carry


def polygon_mask(shape: tuple[int, int], points: Sequence[Point], antialias: bool = True) -> np.ndarray:
    """Rasterize a closed polygon (lasso) into a uint8 mask of ``shape``."""
    out = np.zeros(shape, np.uint8)
    if len(points) < 3:
        return out
    shift = 4
    pts = np.array([[round(x * (1 << shift)), round(y * (1 << shift))] for x, y in points], np.int32)
    cv2.fillPoly(out, [pts], 255, lineType=cv2.LINE_AA if antialias else cv2.LINE_8, shift=shift)
    return out


def rect_mask(shape: tuple[int, int], rect: Rect) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    out[rect.clipped(shape).slices] = 255
    return out


def combine(mask: np.ndarray, shape_mask: np.ndarray, mode: Mode) -> np.ndarray:
    """Add (union), subtract or replace with another mask of the same size."""
    if mask.shape != shape_mask.shape:
        raise ValueError(f"mask shapes differ: {mask.shape} vs {shape_mask.shape}")
    if mode == "add":
        return np.maximum(mask, shape_mask)
    if mode == "subtract":
        return np.minimum(mask, 255 - shape_mask)
    if mode == "replace":
        return shape_mask.copy()
    raise ValueError(f"unknown mask mode {mode!r}")


def invert(mask: np.ndarray) -> np.ndarray:
    return 255 - mask


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def grow(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius < 0:
        raise ValueError("grow radius must be >= 0; use shrink to make the mask smaller")
    return cv2.dilate(mask, _disk(radius)) if radius else mask.copy()


def shrink(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius < 0:
        raise ValueError("shrink radius must be >= 0; use grow to make the mask larger")
    return cv2.erode(mask, _disk(radius)) if radius else mask.copy()


def feather(mask: np.ndarray, radius: float) -> np.ndarray:
    """Soften the edge with a Gaussian of ``radius`` px (sigma = radius / 2)."""
    if radius < 0:
        raise ValueError("feather radius must be >= 0")
    if radius == 0:
        return mask.copy()
    sigma = radius / 2.0
    k = int(2 * math.ceil(3 * sigma) + 1)
    return cv2.GaussianBlur(mask, (k, k), sigma)


def from_alpha(alpha: np.ndarray, threshold: int | None = None) -> np.ndarray:
    """Transparent pixels become the area to fill; with ``threshold``, a hard mask."""
    mask = 255 - alpha
    if threshold is not None:
        mask = np.where(mask >= threshold, 255, 0).astype(np.uint8)
    return mask


def binarize(mask: np.ndarray, threshold: int = 1) -> np.ndarray:
    return np.where(mask >= threshold, 255, 0).astype(np.uint8)
