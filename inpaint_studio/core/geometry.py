"""Integer rectangles in image coordinates (x, y = top-left; w, h = size)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int

    @property
    def empty(self) -> bool:
        return self.w <= 0 or self.h <= 0

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)

    @property
    def area(self) -> int:
        return 0 if self.empty else self.w * self.h

    def clipped(self, shape: tuple[int, ...]) -> Rect:
        """Intersect with an image of ``shape`` (h, w, ...)."""
        h, w = shape[0], shape[1]
        x0, y0 = max(self.x, 0), max(self.y, 0)
        x1, y1 = min(self.right, w), min(self.bottom, h)
        return Rect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    def union(self, other: Rect) -> Rect:
        if self.empty:
            return other
        if other.empty:
            return self
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1, y1 = max(self.right, other.right), max(self.bottom, other.bottom)
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def intersects(self, other: Rect) -> bool:
        return not (
            self.empty
            or other.empty
            or other.x >= self.right
            or other.right <= self.x
            or other.y >= self.bottom
            or other.bottom <= self.y
        )

    @staticmethod
    def full(shape: tuple[int, ...]) -> Rect:
        return Rect(0, 0, shape[1], shape[0])


def nonzero_box(a: np.ndarray) -> Rect:
    """The bounding box of a 2-D array's non-zero entries (an empty Rect when there are none).

    The one bounding-box rule: masks (the hole a fill covers) and alpha channels (what a layer
    covers) both go through it.
    """
    rows = np.flatnonzero(a.any(axis=1))
    if rows.size == 0:
        return Rect(0, 0, 0, 0)
    cols = np.flatnonzero(a[rows[0] : rows[-1] + 1].any(axis=0))
    return Rect(int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
