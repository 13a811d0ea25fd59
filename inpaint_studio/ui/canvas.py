"""The canvas: the document drawn from cached tiles, zoom and pan, and the active tool's input.

Image coordinates map to the widget by ``widget = image * scale + offset``. Pixel changes in the
document mark only the touched tiles dirty and repaint only their part of the widget; panning
and zooming redraw cached tiles (nearest-neighbour while moving, smooth once still).
"""

from __future__ import annotations

import logging
import math
from time import perf_counter

from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from ..core.document import MASK, Document
from ..core.geometry import Rect
from ..session.damage import LayerDamage
from ..session.display import OverlayPixels, mask_lut, render_layers, render_mask
from .brush import BrushSettings
from .tiles import TileCache, level_for_scale
from .tools import Tool, ToolEvent

log = logging.getLogger(__name__)

MIN_SCALE, MAX_SCALE = 0.01, 64.0
SMOOTH_BELOW = 2.0
SPLIT_GRAB_PX = 8  # how near the split compare's divider a press grabs it
RENDER_BUDGET_S = 0.03  # rendering per paint before coarser cached tiles stand in for the rest  # scales under this are drawn with bilinear filtering (when not moving)


class Canvas(QWidget):
    view_changed = Signal()  # zoom or position changed
    cursor_moved = Signal(object)  # (x, y) image pixel under the mouse, or None
    status_message = Signal(str)
    mask_stroke_finished = Signal(str)  # a stroke or shape that added to the mask ended ("add" / "subtract")

    def __init__(self, brush: BrushSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setMinimumSize(200, 150)
        self.brush = brush or BrushSettings()
        self.brush.changed.connect(self.update_decoration)
        self._doc: Document | None = None
        self._scale = 1.0
        self._offset = QPointF(0, 0)
        self._fit_mode = True  # follow the widget size until the person zooms or pans
        self._tool: Tool | None = None
        self._composite: TileCache | None = None
        self._before: TileCache | None = None
        self._mask: TileCache | None = None
        self._overlay: TileCache | None = None
        self._overlay_label = ""
        self._overlay_owner: object = None
        self._compare = False
        self._split: float | None = None  # split compare: the divider's place, a fraction of the width
        self._dragging_split = False
        self._mask_rested = False  # the mask's tint is hidden while a fill is looked at
        self._pan_from: QPointF | None = None
        self._space = False
        self._moving = False
        self._still_timer = QTimer(self, singleShot=True, interval=150, timeout=self._become_still)
        self._deco_rect: QRectF | None = None
        self.background = QColor(60, 60, 60)
        self._checker = _checker_brush()
        self.empty_text = ""
        self.paint_ms = 0.0  # last paint time, for the benchmark
        self._deadline = 0.0
        self._pending = False
        self.last_paint_rect = QRect()  # what the last paint covered, for tests

    # ------------------------------------------------------------------ document
    @property
    def document(self) -> Document | None:
        return self._doc

    def set_document(self, doc: Document | None) -> None:
        if self._tool is not None:
            self._tool.cancel(self)
        if self._doc is not None:
            self._doc.pixels_changed.disconnect(self._on_pixels)
            self._doc.layers_changed.disconnect(self._on_layers)
            self._doc.mask_style_changed.disconnect(self._on_mask_style)
        self._doc = doc
        self._overlay = None
        self._before = None
        self._compare = False
        self._split = None
        self._mask_rested = False
        if doc is None:
            self._composite = self._mask = None
        else:
            doc.pixels_changed.connect(self._on_pixels)
            doc.layers_changed.connect(self._on_layers)
            doc.mask_style_changed.connect(self._on_mask_style)
            self._damage = LayerDamage(doc)
            self._composite = TileCache(doc.width, doc.height, self._render_composite)
            self._mask = TileCache(doc.width, doc.height, self._render_mask)
            self._lut = mask_lut(doc.mask_style.color, doc.mask_style.opacity)
            self._fit_mode = True
            self.fit(limit_to_100=True)
        self.update()

    def _render_composite(self, rect: Rect, level: int):
        assert self._doc is not None
        return render_layers(self._doc.layers, rect, level)

    def _render_before(self, rect: Rect, level: int):
        assert self._doc is not None
        return render_layers([ly for ly in self._doc.layers if ly.kind == "image"], rect, level)

    def _render_mask(self, rect: Rect, level: int):
        assert self._doc is not None
        return render_mask(self._doc.mask, rect, level, self._lut)

    def _on_pixels(self, target: str, rect: Rect) -> None:
        doc = self._doc
        if doc is None:
            return
        if target == MASK:
            if self._mask is not None:
                self._mask.invalidate(rect)
            if self._mask_rested:  # the person edits the mask again: show all of it
                self._mask_rested = False
                self.update()
                return
            if not doc.mask_style.visible or self._compare:
                return
        else:
            rect = self._damage.pixels_changed(target, rect)
            if rect.empty:
                return
            if self._composite is not None:
                self._composite.invalidate(rect)
            if self._before is not None:
                self._before.invalidate(rect)
        self.update(self.widget_rect(rect).adjusted(-1, -1, 1, 1))

    def _on_layers(self) -> None:
        area = self._damage.stack_changed() if self._doc is not None else None
        if area is None:
            return
        if self._composite is not None:
            self._composite.invalidate(area)
        if self._before is not None:
            self._before.invalidate(area)
        self.update(self.widget_rect(area).adjusted(-1, -1, 1, 1))

    def _on_mask_style(self) -> None:
        if self._doc is None or self._mask is None:
            return
        style = self._doc.mask_style
        self._lut = mask_lut(style.color, style.opacity)
        self._mask.invalidate(None)
        self.update()

    # ------------------------------------------------------------------ overlays
    def set_overlay(self, overlay: OverlayPixels | None, label: str = "", owner: object = None) -> None:
        """Show an image over the document (a variant, a step), or none; ``owner`` is who set it.
        The mask's tint rests while a fill is shown (see :meth:`rest_mask`)."""
        doc = self._doc
        if overlay is None or doc is None:
            self._overlay = None
            self._overlay_label = ""
            self._overlay_owner = None
        else:
            self._overlay = TileCache(doc.width, doc.height, overlay.render, budget_bytes=128 << 20)
            self._overlay_label = label
            self._overlay_owner = owner
            if not self.busy:  # mid-stroke the mask being painted stays in sight
                self._mask_rested = True
        self.update()

    def rest_mask(self) -> None:
        """Hide the mask's tint so that a fill just made (or shown) is seen as it is; the tint
        comes back by itself as soon as the mask changes (a new stroke, clear, undo)."""
        if self._doc is not None and not self._mask_rested:
            self._mask_rested = True
            self.update()

    def wake_mask(self) -> None:
        """Show the mask's tint again (a fill failed or was cancelled: nothing to look at)."""
        if self._mask_rested:
            self._mask_rested = False
            self.update()

    @property
    def mask_shown(self) -> bool:
        """Whether the mask's tint is drawn now."""
        doc = self._doc
        return bool(
            doc is not None and doc.mask_style.visible and not self._mask_rested and not self._compare
        )

    def clear_overlay(self, owner: object = None) -> None:
        """Remove the overlay if ``owner`` set it (any overlay when ``owner`` is None)."""
        if self._overlay is not None and (owner is None or owner is self._overlay_owner):
            self.set_overlay(None)

    @property
    def overlay_owner(self) -> object:
        return self._overlay_owner if self._overlay is not None else None

    @property
    def has_overlay(self) -> bool:
        return self._overlay is not None

    @property
    def compare(self) -> bool:
        return self._compare

    def set_compare(self, on: bool) -> None:
        """Show the picture as it was (image layers only), without fills, paint or mask."""
        if self._doc is None:
            on = False
        if on:
            self._ensure_before()
            self._split = None
        self._compare = bool(on)
        self.update()

    def _ensure_before(self) -> None:
        if self._before is None and self._doc is not None:
            self._before = TileCache(self._doc.width, self._doc.height, self._render_before)

    @property
    def split(self) -> float | None:
        """The split compare's divider as a fraction of the width (before on the left), or None."""
        return self._split

    def set_split(self, fraction: float | None) -> None:
        """Split compare: the picture as it was left of a divider, as it is now right of it.
        ``None`` turns it off. The divider is dragged with the mouse."""
        if self._doc is None:
            fraction = None
        if fraction is not None:
            self._ensure_before()
            self._compare = False
            fraction = min(1.0, max(0.0, float(fraction)))
        self._split = fraction
        self.update()

    def _split_x(self) -> int:
        return round((self._split or 0.0) * self.width())

    def _near_divider(self, pos: QPointF) -> bool:
        return self._split is not None and abs(pos.x() - self._split_x()) <= SPLIT_GRAB_PX

    # ------------------------------------------------------------------ tools
    @property
    def tool(self) -> Tool | None:
        return self._tool

    def set_tool(self, tool: Tool | None) -> None:
        if tool is self._tool:
            return
        if self._tool is not None:
            self._tool.cancel(self)
            self.update_decoration()
            self._tool.hover = None
        self._tool = tool
        self._update_cursor()
        self.update_decoration()

    @property
    def busy(self) -> bool:
        return self._tool is not None and self._tool.busy

    def update_decoration(self) -> None:
        """Repaint where the tool's decoration was and where it is now."""
        old = self._deco_rect
        new = self._tool.decoration_rect(self) if self._tool is not None else None
        for r in (old, new):
            if r is not None:
                self.update(r.toAlignedRect().adjusted(-2, -2, 2, 2))
        self._deco_rect = new

    def _update_cursor(self) -> None:
        if self._pan_from is not None:
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self._space:
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        elif self._tool is not None:
            self.setCursor(self._tool.cursor)
        else:
            self.setCursor(Qt.CursorShape.ArrowCursor)

    # ------------------------------------------------------------------ view
    @property
    def scale(self) -> float:
        return self._scale

    @property
    def offset(self) -> QPointF:
        return QPointF(self._offset)

    def map_to_image(self, pos: QPointF) -> tuple[float, float]:
        return (pos.x() - self._offset.x()) / self._scale, (pos.y() - self._offset.y()) / self._scale

    def map_from_image(self, x: float, y: float) -> QPointF:
        return QPointF(x * self._scale + self._offset.x(), y * self._scale + self._offset.y())

    def widget_rect(self, rect: Rect) -> QRect:
        """The widget pixels an image rectangle covers (rounded the way tiles are drawn)."""
        s, ox, oy = self._scale, self._offset.x(), self._offset.y()
        x0, y0 = math.floor(ox + rect.x * s), math.floor(oy + rect.y * s)
        x1, y1 = math.ceil(ox + rect.right * s), math.ceil(oy + rect.bottom * s)
        return QRect(x0, y0, x1 - x0, y1 - y0)

    def _snap_rect(self, rect: Rect) -> QRect:
        s, ox, oy = self._scale, self._offset.x(), self._offset.y()
        x0, y0 = round(ox + rect.x * s), round(oy + rect.y * s)
        x1, y1 = round(ox + rect.right * s), round(oy + rect.bottom * s)
        return QRect(x0, y0, x1 - x0, y1 - y0)

    def image_rect_in(self, widget_rect: QRect) -> Rect:
        doc = self._doc
        if doc is None:
            return Rect(0, 0, 0, 0)
        x0, y0 = self.map_to_image(QPointF(widget_rect.left(), widget_rect.top()))
        x1, y1 = self.map_to_image(QPointF(widget_rect.right() + 1, widget_rect.bottom() + 1))
        ix0, iy0 = math.floor(x0) - 1, math.floor(y0) - 1
        return Rect(ix0, iy0, math.ceil(x1) + 1 - ix0, math.ceil(y1) + 1 - iy0).clipped(doc.shape)

    def set_view(self, scale: float, offset: QPointF) -> None:
        self._scale = float(min(MAX_SCALE, max(MIN_SCALE, scale)))
        self._offset = QPointF(offset)
        self._deco_rect = None
        self.update()
        self.view_changed.emit()

    def fit(self, limit_to_100: bool = False) -> None:
        """The whole picture in view (not magnified past 100 % when ``limit_to_100``)."""
        doc = self._doc
        if doc is None:
            return
        margin = 16
        w, h = max(1, self.width() - 2 * margin), max(1, self.height() - 2 * margin)
        scale = min(w / doc.width, h / doc.height)
        if limit_to_100:
            scale = min(scale, 1.0)
        self._fit_mode = True
        self._center_at(scale)

    def zoom_100(self) -> None:
        self._fit_mode = False
        self.zoom_to(1.0, QPointF(self.width() / 2, self.height() / 2))

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        self.zoom_to(self._scale * factor, anchor)

    def zoom_to(self, scale: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the image point under ``anchor`` (the cursor) where it is."""
        if anchor is None:
            anchor = QPointF(self.width() / 2, self.height() / 2)
        scale = float(min(MAX_SCALE, max(MIN_SCALE, scale)))
        ix, iy = self.map_to_image(anchor)
        self._fit_mode = False
        offset = QPointF(anchor.x() - ix * scale, anchor.y() - iy * scale)
        if scale >= 1.0 and scale.is_integer():  # whole pixels land on whole screen pixels: crisp
            offset = QPointF(round(offset.x()), round(offset.y()))
        self.set_view(scale, offset)
        self._moved()

    def pan_by(self, delta: QPointF) -> None:
        self._fit_mode = False
        self.set_view(self._scale, self._offset + delta)
        self._moved()

    def _center_at(self, scale: float) -> None:
        doc = self._doc
        if doc is None:
            return
        ox = (self.width() - doc.width * scale) / 2
        oy = (self.height() - doc.height * scale) / 2
        self.set_view(scale, QPointF(round(ox), round(oy)))

    def _moved(self) -> None:
        self._moving = True
        self._still_timer.start()

    def _become_still(self) -> None:
        self._moving = False
        self.update()

    # ------------------------------------------------------------------ painting
    def sizeHint(self) -> QSize:
        return QSize(900, 650)

    def paintEvent(self, event: QPaintEvent) -> None:
        t0 = perf_counter()
        area = event.rect()
        self.last_paint_rect = QRect(area)
        painter = QPainter(self)
        try:
            self._paint(painter, area)
        except Exception:  # an exception escaping a paint event takes the process down
            log.exception("painting the canvas failed")
        finally:
            if painter.isActive():
                painter.end()
        self.paint_ms = (perf_counter() - t0) * 1000.0

    def _paint(self, painter: QPainter, area: QRect) -> None:
        self._deadline = perf_counter() + RENDER_BUDGET_S
        self._pending = False
        doc = self._doc
        if doc is None or self._composite is None:
            painter.fillRect(area, self.background)
            if self.empty_text:
                painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
                painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.empty_text)
            return
        picture = self._snap_rect(Rect(0, 0, doc.width, doc.height))
        visible = area.intersected(picture)
        if visible != area:  # the margin around the picture
            for band in _bands_around(area, visible):
                painter.fillRect(band, self.background)
        if not visible.isEmpty():
            painter.save()
            painter.setClipRect(visible)
            painter.setBrushOrigin(picture.topLeft())
            smooth = self._scale < SMOOTH_BELOW and self._scale != 1.0 and not self._moving
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
            level = level_for_scale(self._scale * self.devicePixelRatioF())
            image_area = self.image_rect_in(visible)
            caches = self._layers_to_draw(doc)
            self._draw_base(painter, caches[0], level, image_area, visible, smooth)
            for cache in caches[1:]:
                self._draw_cache(painter, cache, level, image_area, visible, smooth)
            if self._split is not None and self._before is not None:
                left = visible.intersected(QRect(0, 0, self._split_x(), self.height()))
                if not left.isEmpty():
                    painter.setClipRect(left)
                    self._draw_base(painter, self._before, level, self.image_rect_in(left), left, smooth)
            painter.restore()
            painter.setPen(QPen(QColor(0, 0, 0, 110), 1))
            painter.drawRect(picture.adjusted(-1, -1, 0, 0))
        if self._split is not None:
            self._draw_divider(painter)
        elif self._compare or self._overlay_label:
            self._draw_badge(painter, "Before" if self._compare else self._overlay_label)
        if self._tool is not None and not self._space and self._pan_from is None:
            self._tool.paint(self, painter)
        if self._pending:  # some tiles showed a coarser stand-in: render more on the next paint
            QTimer.singleShot(0, self.update)

    def _layers_to_draw(self, doc: Document) -> list[TileCache]:
        if self._compare and self._before is not None:
            return [self._before]
        out = [self._composite] if self._composite is not None else []
        if self._overlay is not None:
            out.append(self._overlay)
        if self.mask_shown and self._mask is not None:
            out.append(self._mask)
        return out

    def _draw_base(
        self, painter: QPainter, cache: TileCache, level: int, image_area: Rect, clip: QRect, smooth: bool
    ) -> None:
        """The bottom source, with the checkerboard only behind tiles that have transparency."""
        self._draw_tiles(painter, cache, level, image_area, clip, smooth, base=True)

    def _draw_cache(
        self, painter: QPainter, cache: TileCache, level: int, image_area: Rect, clip: QRect, smooth: bool
    ) -> None:
        self._draw_tiles(painter, cache, level, image_area, clip, smooth, base=False)

    def _draw_tiles(
        self,
        painter: QPainter,
        cache: TileCache,
        level: int,
        image_area: Rect,
        clip: QRect,
        smooth: bool,
        base: bool,
    ) -> None:
        """Draw the tiles in view. Tiles that need rendering are rendered until this paint's time
        budget is spent; after that a coarser cached tile stands in and another paint follows."""
        cache.begin_frame()
        for tx, ty in cache.tiles_in(level, image_area):
            target = self._snap_rect(cache.tile_region(level, tx, ty))
            if not cache.ready(level, tx, ty) and perf_counter() > self._deadline:
                stand_in = cache.stand_in(level, tx, ty)
                if stand_in is not None:
                    self._pending = True
                    if base:
                        painter.fillRect(target.intersected(clip), self._checker)
                    image, source = stand_in
                    if image is not None:
                        painter.drawImage(QRectF(target), image, source)
                    continue
            image = cache.image(level, tx, ty)
            if base and not cache.is_opaque(level, tx, ty):
                painter.fillRect(target.intersected(clip), self._checker)
            if image is not None:
                _blit(painter, target, image, clip, smooth)

    def _draw_divider(self, painter: QPainter) -> None:
        """The split compare's divider with a grip, and what each side shows."""
        x = self._split_x()
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(QColor(0, 0, 0, 120), 3))
        painter.drawLine(x, 0, x, self.height())
        painter.setPen(QPen(QColor(255, 255, 255), 1))
        painter.drawLine(x, 0, x, self.height())
        grip = QRectF(x - 9, self.height() / 2 - 18, 18, 36)
        painter.setBrush(QColor(255, 255, 255))
        painter.setPen(QPen(QColor(0, 0, 0, 140), 1))
        painter.drawRoundedRect(grip, 6, 6)
        painter.restore()
        self._draw_badge(painter, "Before", QPointF(max(12, x - 90), 12))
        self._draw_badge(painter, "After", QPointF(min(self.width() - 70, x + 12), 12))

    def _draw_badge(self, painter: QPainter, text: str, at: QPointF | None = None) -> None:
        painter.save()
        font = painter.font()
        font.setBold(True)
        painter.setFont(font)
        fm = painter.fontMetrics()
        origin = (at or QPointF(12, 12)).toPoint()
        r = QRect(origin.x(), origin.y(), fm.horizontalAdvance(text) + 20, fm.height() + 10)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 160))
        painter.drawRoundedRect(r, 6, 6)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(r, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()

    def resizeEvent(self, event: QResizeEvent) -> None:
        doc = self._doc
        if doc is not None:
            if self._fit_mode:
                self.fit(limit_to_100=self._scale <= 1.0)
            else:  # keep the centre of the view where it was
                old, new = event.oldSize(), event.size()
                if old.isValid():
                    d = QPointF((new.width() - old.width()) / 2, (new.height() - old.height()) / 2)
                    self.set_view(self._scale, self._offset + d)
        super().resizeEvent(event)

    # ------------------------------------------------------------------ input
    def _tool_event(self, ev: QMouseEvent) -> ToolEvent:
        pos = ev.position()
        x, y = self.map_to_image(pos)
        return ToolEvent(pos, x, y, ev.button(), ev.buttons(), ev.modifiers())

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if ev.button() == Qt.MouseButton.LeftButton and self._near_divider(ev.position()):
            self._dragging_split = True
            return
        if ev.button() == Qt.MouseButton.MiddleButton or (
            self._space and ev.button() == Qt.MouseButton.LeftButton
        ):
            self._pan_from = ev.position()
            self._update_cursor()
            self.update_decoration()
            return
        if self._tool is not None and self._doc is not None:
            self._tool.press(self, self._tool_event(ev))
            self.update_decoration()

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        pos = ev.position()
        if self._doc is not None:
            x, y = self.map_to_image(pos)
            inside = 0 <= x < self._doc.width and 0 <= y < self._doc.height
            self.cursor_moved.emit((int(math.floor(x)), int(math.floor(y))) if inside else None)
        if self._dragging_split:
            self.set_split(pos.x() / max(1, self.width()))
            return
        if self._split is not None and not ev.buttons():
            if self._near_divider(pos):
                self.setCursor(Qt.CursorShape.SplitHCursor)
            else:
                self._update_cursor()
        if self._pan_from is not None:
            self.pan_by(pos - self._pan_from)
            self._pan_from = pos
            return
        if self._tool is not None:
            self._tool.hover = pos
            if self._doc is not None and ev.buttons() & Qt.MouseButton.LeftButton:
                self._tool.move(self, self._tool_event(ev))
            self.update_decoration()

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        if self._dragging_split:
            self._dragging_split = False
            return
        if self._pan_from is not None and ev.button() in (
            Qt.MouseButton.MiddleButton,
            Qt.MouseButton.LeftButton,
        ):
            self._pan_from = None
            self._update_cursor()
            return
        if self._tool is not None and self._doc is not None:
            self._tool.release(self, self._tool_event(ev))
            self.update_decoration()

    def mouseDoubleClickEvent(self, ev: QMouseEvent) -> None:
        if self._tool is not None and self._doc is not None and ev.button() == Qt.MouseButton.LeftButton:
            self._tool.double_click(self, self._tool_event(ev))
            self.update_decoration()
            return
        super().mouseDoubleClickEvent(ev)

    def leaveEvent(self, event) -> None:
        if self._tool is not None:
            self._tool.hover = None
            self.update_decoration()
        self.cursor_moved.emit(None)
        super().leaveEvent(event)

    def wheelEvent(self, ev: QWheelEvent) -> None:
        if self._doc is None:
            return
        pixel = ev.pixelDelta()
        ctrl = bool(ev.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if not pixel.isNull() and not ctrl:  # a touchpad scroll pans
            self.pan_by(QPointF(pixel))
            return
        steps = ev.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(2.0 ** (steps / 3.0), ev.position())

    def event(self, ev) -> bool:
        from PySide6.QtCore import QEvent

        if (
            ev.type() == QEvent.Type.ShortcutOverride
            and self._tool is not None
            and self._tool.wants_key(ev.key())
        ):
            ev.accept()  # the tool's Esc / Enter / Backspace, not the window's shortcuts
            return True
        return super().event(ev)

    def set_space_held(self, held: bool) -> None:
        """Space held: a left drag pans (whichever widget of the window has the keyboard)."""
        if held != self._space:
            self._space = held
            self._update_cursor()
            self.update_decoration()

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        if ev.key() == Qt.Key.Key_Space and not ev.isAutoRepeat():
            self.set_space_held(True)
            return
        if self._tool is not None and self._tool.key(self, ev.key()):
            self.update_decoration()
            return
        super().keyPressEvent(ev)

    def keyReleaseEvent(self, ev: QKeyEvent) -> None:
        if ev.key() == Qt.Key.Key_Space and not ev.isAutoRepeat():
            self.set_space_held(False)
            return
        super().keyReleaseEvent(ev)

    def focusOutEvent(self, event) -> None:
        self._space = False
        self._update_cursor()
        super().focusOutEvent(event)


def _bands_around(area: QRect, inner: QRect) -> list[QRect]:
    """``area`` minus ``inner`` (which lies inside it, or is empty) as up to four rectangles."""
    if inner.isEmpty():
        return [area]
    top = QRect(area.left(), area.top(), area.width(), inner.top() - area.top())
    bottom = QRect(area.left(), inner.bottom() + 1, area.width(), area.bottom() - inner.bottom())
    left = QRect(area.left(), inner.top(), inner.left() - area.left(), inner.height())
    right = QRect(inner.right() + 1, inner.top(), area.right() - inner.right(), inner.height())
    return [r for r in (top, bottom, left, right) if not r.isEmpty()]


def _blit(painter: QPainter, target: QRect, image: QImage, clip: QRect, smooth: bool) -> None:
    """Draw ``image`` into ``target``, reading only the part of it inside ``clip``.

    Without filtering the cut is exact; with bilinear filtering the whole tile is drawn (and
    clipped by the painter) so that partial repaints match full ones pixel for pixel.
    """
    part = target.intersected(clip)
    if part.isEmpty():
        return
    if smooth or part == target:
        painter.drawImage(target, image)
        return
    sx, sy = image.width() / target.width(), image.height() / target.height()
    source = QRectF(
        (part.x() - target.x()) * sx, (part.y() - target.y()) * sy, part.width() * sx, part.height() * sy
    )
    painter.drawImage(QRectF(part), image, source)


def _checker_brush(cell: int = 8) -> QBrush:
    pm = QPixmap(2 * cell, 2 * cell)
    pm.fill(QColor(204, 204, 204))
    p = QPainter(pm)
    p.fillRect(0, 0, cell, cell, QColor(153, 153, 153))
    p.fillRect(cell, cell, cell, cell, QColor(153, 153, 153))
    p.end()
    return QBrush(pm)
