"""Canvas tools: what a mouse gesture does to the document.

A tool gets :class:`ToolEvent` s from the canvas (widget and image positions, buttons, modifiers)
and edits the document only through its undoable API, so that every gesture is one undo step.
It may draw decorations (brush outline, lasso path) in widget coordinates.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen, QPixmap, QPolygonF

from ..core import masks as mask_ops
from ..core.document import MASK, Document, PixelEditSession
from ..core.geometry import Rect
from .brush import BrushSettings

if TYPE_CHECKING:
    from .canvas import Canvas

CLOSE_DISTANCE = 8.0  # screen px: a polygon click this near its first point closes it
DRAG_THRESHOLD = 4.0  # screen px: a press that moves less is a click


@dataclass(frozen=True)
class ToolEvent:
    pos: QPointF  # widget coordinates
    x: float  # image coordinates
    y: float
    button: Qt.MouseButton = Qt.MouseButton.NoButton
    buttons: Qt.MouseButton = Qt.MouseButton.NoButton
    modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier


def mode_for(modifiers: Qt.KeyboardModifier, default: mask_ops.Mode) -> mask_ops.Mode:
    """Shift adds, Alt (or Ctrl, for desktops that take Alt-drag) subtracts."""
    if modifiers & Qt.KeyboardModifier.ShiftModifier:
        return "add"
    if modifiers & (Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.ControlModifier):
        return "subtract"
    return default


class Tool:
    id = "tool"
    title = "Tool"
    cursor = Qt.CursorShape.ArrowCursor
    shows_brush = False

    def __init__(self) -> None:
        self.hover: QPointF | None = None

    @property
    def busy(self) -> bool:
        """A gesture is in progress (undo waits until it ends)."""
        return False

    def press(self, canvas: Canvas, ev: ToolEvent) -> None: ...
    def move(self, canvas: Canvas, ev: ToolEvent) -> None: ...
    def release(self, canvas: Canvas, ev: ToolEvent) -> None: ...
    def double_click(self, canvas: Canvas, ev: ToolEvent) -> None: ...

    def wants_key(self, key: int) -> bool:
        return False

    def key(self, canvas: Canvas, key: int) -> bool:
        return False

    def cancel(self, canvas: Canvas) -> None:
        """Abandon a gesture in progress (document replaced, tool switched, Esc)."""

    def paint(self, canvas: Canvas, painter: QPainter) -> None: ...

    def decoration_rect(self, canvas: Canvas) -> QRectF | None:
        return None


# ---------------------------------------------------------------------------------- brushes
OUTLINE_CACHE_RADIUS = 600.0


@functools.lru_cache(maxsize=8)
def _outline_pixmap(radius: float, dpr: float) -> QPixmap:
    """The brush outline (white circle in a dark rim, a cross when tiny), drawn once per size."""
    side = int(math.ceil(2 * radius + 16))
    pm = QPixmap(int(side * dpr), int(side * dpr))
    pm.setDevicePixelRatio(dpr)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    c = QPointF(side / 2, side / 2)
    p.setPen(QPen(QColor(0, 0, 0, 200), 3.0))
    p.drawEllipse(c, radius, radius)
    p.setPen(QPen(QColor(255, 255, 255, 235), 1.2))
    p.drawEllipse(c, radius, radius)
    if radius < 5:  # too small to aim with: add a cross
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            p.drawLine(QPointF(c.x() + 2 * dx, c.y() + 2 * dy), QPointF(c.x() + 6 * dx, c.y() + 6 * dy))
    p.end()
    return pm


class BrushTool(Tool):
    """Round dabs along the mouse path; one undo step per stroke. Shift-click draws a line."""

    shows_brush = True
    cursor = Qt.CursorShape.BlankCursor

    def __init__(self, brush: BrushSettings) -> None:
        super().__init__()
        self.brush = brush
        self._session: PixelEditSession | None = None
        self._last: tuple[float, float] | None = None
        self._carry = 0.0
        self._stroke_end: tuple[float, float] | None = None  # for shift-click lines
        self._fold_from: int | None = None

    @property
    def busy(self) -> bool:
        return self._session is not None

    # subclasses: which target and how one dab is stamped
    def begin(self, canvas: Canvas, doc: Document, ev: ToolEvent) -> PixelEditSession | None:
        raise NotImplementedError

    def dab(self, session: PixelEditSession, x: float, y: float) -> None:
        raise NotImplementedError

    def press(self, canvas: Canvas, ev: ToolEvent) -> None:
        doc = canvas.document
        if doc is None or ev.button != Qt.MouseButton.LeftButton or self._session is not None:
            return
        self._fold_from = None
        session = self.begin(canvas, doc, ev)
        if session is None:
            return
        self._session = session
        self._carry = 0.0
        if ev.modifiers & Qt.KeyboardModifier.ShiftModifier and self._stroke_end is not None:
            self._last = self._stroke_end
            self._line_to(ev.x, ev.y)
        else:
            self._last = (ev.x, ev.y)
            self.dab(session, ev.x, ev.y)

    def move(self, canvas: Canvas, ev: ToolEvent) -> None:
        if self._session is not None and ev.buttons & Qt.MouseButton.LeftButton:
            self._line_to(ev.x, ev.y)

    def release(self, canvas: Canvas, ev: ToolEvent) -> None:
        if self._session is None or ev.button != Qt.MouseButton.LeftButton:
            return
        session, self._session = self._session, None
        self._stroke_end = self._last
        changed = session.commit()
        if self._fold_from is not None and canvas.document is not None:
            canvas.document.history.fold_since(self._fold_from, session.label)
            self._fold_from = None
        if changed:
            self.finished(canvas)

    def finished(self, canvas: Canvas) -> None:
        """A stroke ended (committed); the mask tools say so to the window (fast remove)."""

    def cancel(self, canvas: Canvas) -> None:
        if self._session is not None:
            self._session.cancel()
            self._session = None
        self._stroke_end = None

    def _line_to(self, x: float, y: float) -> None:
        assert self._session is not None and self._last is not None
        points, self._carry = mask_ops.dab_positions(
            self._last, (x, y), self.brush.size, self.brush.spacing, self._carry
        )
        for px, py in points:
            self.dab(self._session, px, py)
        self._last = (x, y)

    def paint(self, canvas: Canvas, painter: QPainter) -> None:
        if self.hover is None:
            return
        r = self.brush.size * canvas.scale / 2.0
        if r <= OUTLINE_CACHE_RADIUS:
            pm = _outline_pixmap(round(r * 4) / 4, painter.device().devicePixelRatioF())
            half = pm.width() / pm.devicePixelRatioF() / 2
            painter.drawPixmap(QPointF(self.hover.x() - half, self.hover.y() - half), pm)
        else:  # huge outlines: drawn directly (a cached pixmap would be bigger than the screen)
            painter.save()
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(QColor(0, 0, 0, 200), 1.0))
            painter.drawEllipse(self.hover, r + 1, r + 1)
            painter.setPen(QPen(QColor(255, 255, 255, 230), 1.0))
            painter.drawEllipse(self.hover, r, r)
            painter.restore()

    def decoration_rect(self, canvas: Canvas) -> QRectF | None:
        if self.hover is None:
            return None
        r = max(self.brush.size * canvas.scale / 2.0, 7.0) + 3.0
        return QRectF(self.hover.x() - r, self.hover.y() - r, 2 * r, 2 * r)


class MaskBrushTool(BrushTool):
    id = "mask_brush"
    title = "Mask brush"
    mode: mask_ops.Mode = "add"

    def begin(self, canvas: Canvas, doc: Document, ev: ToolEvent) -> PixelEditSession | None:
        if not doc.mask_style.visible:
            doc.set_mask_style(visible=True)
        return doc.begin_edit(MASK, self.title)

    def dab(self, session: PixelEditSession, x: float, y: float) -> None:
        session.mask_dab(x, y, self.brush.size, self.brush.hardness, self.mode)

    def finished(self, canvas: Canvas) -> None:
        canvas.mask_stroke_finished.emit("subtract" if self.mode == "subtract" else "add")


class MaskEraserTool(MaskBrushTool):
    id = "mask_eraser"
    title = "Mask eraser"
    mode: mask_ops.Mode = "subtract"


class PaintBrushTool(BrushTool):
    """Paints colour on the active paint layer (making one when the active layer is not a paint
    layer, in the same undo step). Alt-click picks a colour from the picture."""

    id = "paint_brush"
    title = "Paint brush"

    def begin(self, canvas: Canvas, doc: Document, ev: ToolEvent) -> PixelEditSession | None:
        if ev.modifiers & Qt.KeyboardModifier.AltModifier:
            pick_color(canvas, ev.x, ev.y)
            return None
        layer = doc.active_layer
        if layer is None or layer.kind != "paint":
            self._fold_from = doc.history.index
            layer = doc.new_layer(_next_paint_name(doc), "paint")
            canvas.status_message.emit(f"Painting on a new layer, '{layer.name}'")
        return doc.begin_edit(layer.id, self.title)

    def dab(self, session: PixelEditSession, x: float, y: float) -> None:
        session.color_dab(x, y, self.brush.size, self.brush.hardness, self.brush.rgb)


def _next_paint_name(doc: Document) -> str:
    names = {ly.name for ly in doc.layers}
    n = 1
    while f"Paint {n}" in names:
        n += 1
    return f"Paint {n}"


def pick_color(canvas: Canvas, x: float, y: float) -> bool:
    doc = canvas.document
    if doc is None:
        return False
    ix, iy = int(math.floor(x)), int(math.floor(y))
    if not (0 <= ix < doc.width and 0 <= iy < doc.height):
        return False
    r, g, b = (int(v) for v in doc.composite(Rect(ix, iy, 1, 1))[0, 0])
    canvas.brush.color = QColor(r, g, b)
    canvas.status_message.emit(f"Picked colour #{r:02x}{g:02x}{b:02x}")
    return True


class EyedropperTool(Tool):
    id = "eyedropper"
    title = "Eyedropper"
    cursor = Qt.CursorShape.CrossCursor

    def press(self, canvas: Canvas, ev: ToolEvent) -> None:
        if ev.button == Qt.MouseButton.LeftButton:
            pick_color(canvas, ev.x, ev.y)

    def move(self, canvas: Canvas, ev: ToolEvent) -> None:
        if ev.buttons & Qt.MouseButton.LeftButton:
            pick_color(canvas, ev.x, ev.y)


class PanTool(Tool):
    id = "pan"
    title = "Pan"
    cursor = Qt.CursorShape.OpenHandCursor

    def __init__(self) -> None:
        super().__init__()
        self._from: QPointF | None = None

    def press(self, canvas: Canvas, ev: ToolEvent) -> None:
        if ev.button == Qt.MouseButton.LeftButton:
            self._from = ev.pos

    def move(self, canvas: Canvas, ev: ToolEvent) -> None:
        if self._from is not None:
            canvas.pan_by(ev.pos - self._from)
            self._from = ev.pos

    def release(self, canvas: Canvas, ev: ToolEvent) -> None:
        self._from = None


# ---------------------------------------------------------------------------------- shapes
class _ShapeTool(Tool):
    """Tools that turn a shape into a mask: plain = replace, Shift = add, Alt/Ctrl = subtract."""

    cursor = Qt.CursorShape.CrossCursor
    default_mode: mask_ops.Mode = "replace"

    def __init__(self) -> None:
        super().__init__()
        self.default_mode = "replace"

    def apply(self, canvas: Canvas, shape_mask, mode: mask_ops.Mode, what: str) -> None:
        doc = canvas.document
        if doc is None:
            return
        if not doc.mask_style.visible:
            doc.set_mask_style(visible=True)
        labels = {"replace": what, "add": f"{what} (add)", "subtract": f"{what} (subtract)"}
        if doc.combine_mask(shape_mask, mode, labels[mode]):
            canvas.mask_stroke_finished.emit("subtract" if mode == "subtract" else "add")


class LassoTool(_ShapeTool):
    """Drag for a freehand outline, or click corner after corner for a polygon (double-click,
    Enter or a click on the first corner closes it; Backspace removes a corner; Esc cancels)."""

    id = "lasso"
    title = "Lasso"

    def __init__(self) -> None:
        super().__init__()
        self.points: list[tuple[float, float]] = []
        self._mode: mask_ops.Mode = "replace"
        self._press: QPointF | None = None
        self._dragging = False
        self._polygon = False

    @property
    def busy(self) -> bool:
        return bool(self.points)

    def press(self, canvas: Canvas, ev: ToolEvent) -> None:
        if ev.button != Qt.MouseButton.LeftButton:
            return
        if self._polygon:
            if len(self.points) >= 3 and self._near_first(canvas, ev.pos):
                self._finish(canvas)
                return
            self.points.append((ev.x, ev.y))
            canvas.update_decoration()
            return
        self._mode = mode_for(ev.modifiers, self.default_mode)
        self.points = [(ev.x, ev.y)]
        self._press = ev.pos
        self._dragging = False
        canvas.update_decoration()

    def move(self, canvas: Canvas, ev: ToolEvent) -> None:
        if self._press is None or not ev.buttons & Qt.MouseButton.LeftButton:
            return
        if not self._dragging:
            d = ev.pos - self._press
            if math.hypot(d.x(), d.y()) < DRAG_THRESHOLD:
                return
            self._dragging = True
        last = self.points[-1]
        if math.hypot(ev.x - last[0], ev.y - last[1]) * canvas.scale >= 1.5:
            self.points.append((ev.x, ev.y))
            canvas.update_decoration()

    def release(self, canvas: Canvas, ev: ToolEvent) -> None:
        if ev.button != Qt.MouseButton.LeftButton or self._press is None:
            return
        self._press = None
        if self._dragging:
            self._dragging = False
            self.points.append((ev.x, ev.y))
            self._finish(canvas)
        else:
            self._polygon = True  # a click: keep adding corners

    def double_click(self, canvas: Canvas, ev: ToolEvent) -> None:
        if self._polygon:
            # the double-click's first press already added this corner
            self._finish(canvas)

    def wants_key(self, key: int) -> bool:
        return self.busy and key in (
            Qt.Key.Key_Return,
            Qt.Key.Key_Enter,
            Qt.Key.Key_Escape,
            Qt.Key.Key_Backspace,
        )

    def key(self, canvas: Canvas, key: int) -> bool:
        if not self.busy:
            return False
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._finish(canvas)
        elif key == Qt.Key.Key_Escape:
            self.cancel(canvas)
        elif key == Qt.Key.Key_Backspace:
            if len(self.points) > 1:
                self.points.pop()
            else:
                self.cancel(canvas)
            canvas.update_decoration()
        else:
            return False
        return True

    def cancel(self, canvas: Canvas) -> None:
        canvas.update_decoration()
        self.points = []
        self._polygon = False
        self._press = None
        self._dragging = False
        canvas.update_decoration()

    def _near_first(self, canvas: Canvas, pos: QPointF) -> bool:
        first = canvas.map_from_image(*self.points[0])
        return math.hypot(first.x() - pos.x(), first.y() - pos.y()) <= CLOSE_DISTANCE

    def _finish(self, canvas: Canvas) -> None:
        points, mode = self.points, self._mode
        self.cancel(canvas)
        doc = canvas.document
        if doc is None or len(points) < 3:
            return
        shape = mask_ops.polygon_mask(doc.shape, points)
        if shape.any():
            self.apply(canvas, shape, mode, "Lasso")

    def paint(self, canvas: Canvas, painter: QPainter) -> None:
        if not self.points:
            return
        poly = QPolygonF([canvas.map_from_image(x, y) for x, y in self.points])
        if self._polygon and self.hover is not None:
            poly.append(self.hover)
        path = QPainterPath()
        path.addPolygon(poly)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(QColor(0, 0, 0, 220), 3.0))
        painter.drawPath(path)
        painter.setPen(QPen(QColor(255, 255, 255), 1.2, Qt.PenStyle.DashLine))
        painter.drawPath(path)
        if self._polygon:
            first = poly[0]
            painter.setPen(QPen(QColor(255, 255, 255), 1.2))
            painter.drawEllipse(first, CLOSE_DISTANCE / 2, CLOSE_DISTANCE / 2)
        painter.restore()

    def decoration_rect(self, canvas: Canvas) -> QRectF | None:
        if not self.points:
            return None
        pts = [canvas.map_from_image(x, y) for x, y in self.points]
        if self.hover is not None:
            pts.append(self.hover)
        xs, ys = [p.x() for p in pts], [p.y() for p in pts]
        m = CLOSE_DISTANCE + 4
        return QRectF(min(xs) - m, min(ys) - m, max(xs) - min(xs) + 2 * m, max(ys) - min(ys) + 2 * m)


class RectangleTool(_ShapeTool):
    id = "rectangle"
    title = "Rectangle"

    def __init__(self) -> None:
        super().__init__()
        self._start: tuple[float, float] | None = None
        self._end: tuple[float, float] | None = None
        self._mode: mask_ops.Mode = "replace"

    @property
    def busy(self) -> bool:
        return self._start is not None

    def _rect(self) -> Rect | None:
        if self._start is None or self._end is None:
            return None
        x0, x1 = sorted((self._start[0], self._end[0]))
        y0, y1 = sorted((self._start[1], self._end[1]))
        ix0, iy0 = int(round(x0)), int(round(y0))
        return Rect(ix0, iy0, int(round(x1)) - ix0, int(round(y1)) - iy0)

    def press(self, canvas: Canvas, ev: ToolEvent) -> None:
        if ev.button == Qt.MouseButton.LeftButton:
            self._mode = mode_for(ev.modifiers, self.default_mode)
            self._start = self._end = (ev.x, ev.y)
            canvas.update_decoration()

    def move(self, canvas: Canvas, ev: ToolEvent) -> None:
        if self._start is not None:
            self._end = (ev.x, ev.y)
            canvas.update_decoration()

    def release(self, canvas: Canvas, ev: ToolEvent) -> None:
        if self._start is None or ev.button != Qt.MouseButton.LeftButton:
            return
        self._end = (ev.x, ev.y)
        rect, mode = self._rect(), self._mode
        self.cancel(canvas)
        doc = canvas.document
        if doc is None or rect is None or rect.clipped(doc.shape).empty:
            return
        self.apply(canvas, mask_ops.rect_mask(doc.shape, rect), mode, "Rectangle")

    def wants_key(self, key: int) -> bool:
        return self.busy and key == Qt.Key.Key_Escape

    def key(self, canvas: Canvas, key: int) -> bool:
        if self.busy and key == Qt.Key.Key_Escape:
            self.cancel(canvas)
            return True
        return False

    def cancel(self, canvas: Canvas) -> None:
        canvas.update_decoration()
        self._start = self._end = None
        canvas.update_decoration()

    def _widget_rect(self, canvas: Canvas) -> QRectF | None:
        rect = self._rect()
        if rect is None:
            return None
        a = canvas.map_from_image(rect.x, rect.y)
        b = canvas.map_from_image(rect.right, rect.bottom)
        return QRectF(a, b).normalized()

    def paint(self, canvas: Canvas, painter: QPainter) -> None:
        r = self._widget_rect(canvas)
        if r is None:
            return
        painter.save()
        painter.setPen(QPen(QColor(0, 0, 0, 220), 3.0))
        painter.drawRect(r)
        painter.setPen(QPen(QColor(255, 255, 255), 1.2, Qt.PenStyle.DashLine))
        painter.drawRect(r)
        painter.restore()

    def decoration_rect(self, canvas: Canvas) -> QRectF | None:
        r = self._widget_rect(canvas)
        return None if r is None else r.adjusted(-4, -4, 4, 4)
