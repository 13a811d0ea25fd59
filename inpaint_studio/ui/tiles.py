"""A zoom pyramid of display tiles, rendered on demand and re-rendered only where pixels changed.

The canvas keeps one :class:`TileCache` per thing it draws (the layer composite, the mask tint,
an overlay). A tile is 256x256 screen-ready pixels at one level of detail; level ``L`` covers
``256 * 2**L`` image pixels per side. Changes mark the affected part of every cached tile dirty;
the next paint re-renders just that part. Tiles out of view are dropped oldest-first once the
cache exceeds its memory budget.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage

from ..core.geometry import Rect
from ..session.display import align, level_shape

TILE = 256
MAX_LEVEL = 8

RenderFn = Callable[[Rect, int], "np.ndarray | None"]


def level_for_scale(scale: float) -> int:
    """The coarsest level whose resolution is still at least the screen's."""
    if scale >= 1.0:
        return 0
    return max(0, min(MAX_LEVEL, int(math.floor(math.log2(1.0 / scale) + 1e-9))))


class _Tile:
    __slots__ = ("buf", "image", "dirty", "frame", "opaque")

    def __init__(self) -> None:
        self.buf: np.ndarray | None = None  # None: fully transparent
        self.image: QImage | None = None
        self.dirty: Rect | None = None  # image-space part to re-render
        self.frame = 0
        self.opaque = False  # every pixel fully opaque: nothing below it shows


class TileCache:
    def __init__(self, width: int, height: int, render: RenderFn, budget_bytes: int = 256 << 20) -> None:
        self.width, self.height = width, height
        self.shape = (height, width)
        self._render = render
        self._tiles: OrderedDict[tuple[int, int, int], _Tile] = OrderedDict()
        self._bytes = 0
        self.budget = budget_bytes
        self._frame = 0
        self.renders = 0  # pixels rendered, for tests and benchmarks

    # ------------------------------------------------------------------ geometry
    @staticmethod
    def span(level: int) -> int:
        return TILE << level

    def tile_region(self, level: int, tx: int, ty: int) -> Rect:
        s = self.span(level)
        return Rect(tx * s, ty * s, s, s).clipped(self.shape)

    def tiles_in(self, level: int, rect: Rect) -> Iterator[tuple[int, int]]:
        rect = rect.clipped(self.shape)
        if rect.empty:
            return
        s = self.span(level)
        for ty in range(rect.y // s, (rect.bottom - 1) // s + 1):
            for tx in range(rect.x // s, (rect.right - 1) // s + 1):
                yield tx, ty

    # ------------------------------------------------------------------ use
    def begin_frame(self) -> None:
        self._frame += 1

    def image(self, level: int, tx: int, ty: int) -> QImage | None:
        """The tile ready to draw (None when it is fully transparent)."""
        return self.tile(level, tx, ty).image

    def ready(self, level: int, tx: int, ty: int) -> bool:
        """Whether the tile can be drawn without rendering anything."""
        tile = self._tiles.get((level, tx, ty))
        return tile is not None and tile.dirty is None

    def stand_in(
        self, level: int, tx: int, ty: int, levels_up: int = 4
    ) -> tuple[QImage | None, QRectF] | None:
        """A cached coarser tile covering this one, and the part of it that does: something to
        show at once while the sharp tile waits its turn (None when there is nothing)."""
        region = self.tile_region(level, tx, ty)
        for k in range(1, levels_up + 1):
            up = level + k
            if up > MAX_LEVEL:
                break
            tile = self._tiles.get((up, tx >> k, ty >> k))
            if tile is None:
                continue
            tile.frame = self._frame
            parent = self.tile_region(up, tx >> k, ty >> k)
            f = float(1 << up)
            source = QRectF((region.x - parent.x) / f, (region.y - parent.y) / f, region.w / f, region.h / f)
            return tile.image, source
        return None

    def is_opaque(self, level: int, tx: int, ty: int) -> bool:
        """Whether the tile (already fetched this frame) covers everything below it."""
        tile = self._tiles.get((level, tx, ty))
        return tile is not None and tile.opaque

    def tile(self, level: int, tx: int, ty: int) -> _Tile:
        key = (level, tx, ty)
        tile = self._tiles.get(key)
        if tile is None:
            tile = _Tile()
            tile.frame = self._frame
            self._fill(tile, level, self.tile_region(level, tx, ty))
            self._tiles[key] = tile
            self._evict()
        else:
            self._tiles.move_to_end(key)
            if tile.dirty is not None:
                self._refresh(tile, level, self.tile_region(level, tx, ty))
        tile.frame = self._frame
        return tile

    def invalidate(self, rect: Rect | None = None) -> None:
        """Mark ``rect`` (None: everything) as changed; cached tiles re-render it when next drawn."""
        if rect is None:
            self._tiles.clear()
            self._bytes = 0
            return
        rect = rect.clipped(self.shape)
        if rect.empty or not self._tiles:
            return
        levels = {k[0] for k in self._tiles}
        for level in levels:
            part_rect = align(rect, level, self.shape)
            for tx, ty in self.tiles_in(level, rect):
                tile = self._tiles.get((level, tx, ty))
                if tile is None:
                    continue
                region = self.tile_region(level, tx, ty)
                part = _intersect(part_rect, region)
                tile.dirty = part if tile.dirty is None else tile.dirty.union(part)

    def clear(self) -> None:
        self.invalidate(None)

    @property
    def nbytes(self) -> int:
        return self._bytes

    # ------------------------------------------------------------------ internals
    def _fill(self, tile: _Tile, level: int, region: Rect) -> None:
        out = self._render(region, level)
        self.renders += region.area
        tile.dirty = None
        if out is None:
            self._set_buffer(tile, None)
            return
        self._set_buffer(tile, np.ascontiguousarray(out))

    def _refresh(self, tile: _Tile, level: int, region: Rect) -> None:
        part = tile.dirty
        tile.dirty = None
        if part is None or part.empty:
            return
        if part.area * 2 > region.area:  # most of it changed: one render is cheaper
            self._fill(tile, level, region)
            return
        out = self._render(part, level)
        self.renders += part.area
        f = 1 << level
        oy, ox = (part.y - region.y) // f, (part.x - region.x) // f
        if tile.buf is None:
            if out is None:
                return
            h, w = level_shape(region, level)
            self._set_buffer(tile, np.zeros((h, w, 4), np.uint8))
        assert tile.buf is not None
        h, w = level_shape(part, level)
        view = tile.buf[oy : oy + h, ox : ox + w]
        if out is None:
            view[...] = 0
            tile.opaque = False
        else:
            view[...] = out[: view.shape[0], : view.shape[1]]
            if tile.opaque:
                tile.opaque = bool(view[..., 3].min() == 255)
            elif out[..., 3].min() == 255:
                tile.opaque = bool(tile.buf[..., 3].min() == 255)

    def _set_buffer(self, tile: _Tile, buf: np.ndarray | None) -> None:
        if tile.buf is not None:
            self._bytes -= tile.buf.nbytes
        tile.buf = buf
        if buf is None:
            tile.image = None
            tile.opaque = False
            return
        tile.opaque = bool(buf[..., 3].min() == 255)
        self._bytes += buf.nbytes
        h, w = buf.shape[:2]
        # the QImage shares the numpy buffer: in-place updates of ``buf`` show without a copy
        tile.image = QImage(buf.data, w, h, buf.strides[0], QImage.Format.Format_ARGB32_Premultiplied)

    def _evict(self) -> None:
        while self._bytes > self.budget and self._tiles:
            key, tile = next(iter(self._tiles.items()))
            if tile.frame == self._frame:
                break  # everything older is in view right now
            del self._tiles[key]
            if tile.buf is not None:
                self._bytes -= tile.buf.nbytes


def _intersect(a: Rect, b: Rect) -> Rect:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.right, b.right), min(a.bottom, b.bottom)
    return Rect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))
