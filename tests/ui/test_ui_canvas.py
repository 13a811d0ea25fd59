"""The canvas and its tools, driven with simulated mouse and keyboard input."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication
from ui_helpers import drag, widget_point

from inpaint_studio.core import masks as mask_ops
from inpaint_studio.core.document import Document
from inpaint_studio.core.geometry import Rect
from inpaint_studio.core.layers import Layer
from inpaint_studio.session.display import premultiply, render_layers, to_bgra
from inpaint_studio.ui.tiles import TileCache, level_for_scale


def test_mask_brush_drag_paints_one_undo_step_and_undo_redo_restore(window, qtbot):
    doc, canvas = window.document, window.canvas
    window.set_tool("mask_brush")
    window.brush.size, window.brush.hardness = 12, 1.0
    before_steps = len(doc.history.labels)
    drag(qtbot, canvas, [(20, 60), (50, 60), (80, 62), (120, 60)])
    assert doc.mask[60, 20:121].min() == 255, "the stroke must cover the whole path"
    assert doc.mask[60, 10] == 0 and doc.mask[30, 60] == 0, "and nothing far from it"
    assert doc.history.labels[before_steps:] == ["Mask brush"]
    painted = doc.mask.copy()

    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not doc.mask.any()
    qtbot.keyClick(
        canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    assert np.array_equal(doc.mask, painted)
    # the history panel shows the step and can jump back over it
    assert window.history_panel.model.rowCount() == len(doc.history.labels) + 1
    window.history_panel.jump_to(0)
    assert not doc.mask.any()


def test_mask_eraser_and_shift_click_line(window, qtbot):
    doc, canvas = window.document, window.canvas
    window.set_tool("mask_brush")
    window.brush.size, window.brush.hardness = 10, 1.0
    drag(qtbot, canvas, [(20, 40), (20, 40)])
    # shift-click draws a straight stroke from the end of the last one
    qtbot.mouseClick(
        canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, widget_point(canvas, 100, 40)
    )
    assert doc.mask[40, 20:101].min() == 255
    window.set_tool("mask_eraser")
    drag(qtbot, canvas, [(60, 40), (60, 41)])
    assert doc.mask[40, 60] == 0 and doc.mask[40, 30] == 255
    assert doc.history.labels[-3:] == ["Mask brush", "Mask brush", "Mask eraser"]


def test_freehand_lasso_replaces_and_polygon_clicks_add_or_subtract(window, qtbot):
    doc, canvas = window.document, window.canvas
    window.set_tool("lasso")
    square = [(20, 20), (60, 20), (60, 60), (20, 60), (20, 22)]
    drag(qtbot, canvas, square)
    expected = mask_ops.polygon_mask(
        doc.shape, [canvas.map_to_image(QPointF(widget_point(canvas, x, y))) for x, y in square]
    )
    assert doc.mask[40, 40] == 255 and doc.mask[80, 100] == 0
    assert np.abs(doc.mask.astype(int) - expected).max() <= 255 and (doc.mask > 127).sum() == pytest.approx(
        1600, rel=0.15
    )
    assert doc.history.labels[-1] == "Lasso"

    # polygon by clicks with Shift: adds a triangle; Enter closes it
    shift = Qt.KeyboardModifier.ShiftModifier
    for x, y in [(100, 20), (140, 20), (120, 60)]:
        qtbot.mouseClick(
            canvas,
            Qt.MouseButton.LeftButton,
            shift if (x, y) == (100, 20) else Qt.KeyboardModifier.NoModifier,
            widget_point(canvas, x, y),
        )
    assert window.tools["lasso"].busy
    qtbot.keyClick(canvas, Qt.Key.Key_Return)
    assert not window.tools["lasso"].busy
    assert doc.mask[40, 40] == 255, "Shift adds: the square stays"
    assert doc.mask[30, 120] == 255
    assert doc.history.labels[-1] == "Lasso (add)"

    # Alt-drag subtracts
    drag(qtbot, canvas, [(30, 30), (50, 30), (50, 50), (30, 50)], Qt.KeyboardModifier.AltModifier)
    assert doc.mask[40, 40] == 0 and doc.mask[22, 22] == 255
    assert doc.history.labels[-1] == "Lasso (subtract)"

    # Esc abandons a polygon in progress without touching the mask
    before = doc.mask.copy()
    qtbot.mouseClick(
        canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, widget_point(canvas, 5, 5)
    )
    qtbot.mouseClick(
        canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, widget_point(canvas, 15, 5)
    )
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert not window.tools["lasso"].busy and np.array_equal(doc.mask, before)


def test_polygon_closes_on_first_point(window, qtbot):
    doc, canvas = window.document, window.canvas
    window.set_tool("lasso")
    for x, y in [(10, 10), (50, 10), (50, 50), (10, 50), (10, 10)]:
        qtbot.mouseClick(
            canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, widget_point(canvas, x, y)
        )
    assert not window.tools["lasso"].busy
    assert doc.mask[30, 30] == 255 and doc.mask[70, 70] == 0


def test_rectangle_tool(window, qtbot):
    doc, canvas = window.document, window.canvas
    window.set_tool("rectangle")
    drag(qtbot, canvas, [(30, 20), (60, 40), (90, 70)])
    assert doc.mask[20:70, 30:90].min() == 255
    assert doc.mask.sum() // 255 == 50 * 60
    assert doc.history.labels[-1] == "Rectangle"


def test_mask_menu_operations_are_undo_steps(window, qtbot):
    doc = window.document
    m = np.zeros(doc.shape, np.uint8)
    m[40:80, 40:80] = 255
    doc.set_mask(m)
    window.radius_spin.setValue(5)
    window.act_grow.trigger()
    assert doc.mask[37, 60] == 255
    window.act_shrink.trigger()
    window.act_feather.trigger()
    assert 0 < doc.mask[40, 60] < 255
    window.act_invert.trigger()
    assert doc.mask[5, 5] == 255
    window.act_clear.trigger()
    assert not doc.mask.any()
    assert doc.history.labels[-5:] == [
        "Grow mask 5px",
        "Shrink mask 5px",
        "Feather mask 5px",
        "Invert mask",
        "Clear mask",
    ]
    for _ in range(5):
        window.act_undo.trigger()
    assert np.array_equal(doc.mask, m)


def test_brush_size_keys(window, qtbot):
    window.brush.size = 40
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_BracketRight)
    assert window.brush.size == 46
    qtbot.keyClick(window.canvas, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(window.canvas, Qt.Key.Key_BracketLeft)
    assert window.brush.size < 40
    assert window.size_spin.value() == round(window.brush.size)


def test_paint_brush_makes_a_paint_layer_in_one_step_and_eyedropper_picks(window, qtbot):
    doc, canvas = window.document, window.canvas
    window.set_tool("paint_brush")
    window.brush.size, window.brush.hardness = 8, 1.0
    from PySide6.QtGui import QColor

    window.brush.color = QColor(10, 200, 30)
    steps = len(doc.history.labels)
    drag(qtbot, canvas, [(30, 30), (70, 30)])
    assert [ly.kind for ly in doc.layers] == ["image", "paint"]
    paint = doc.layers[1]
    assert tuple(paint.pixels[30, 50]) == (10, 200, 30, 255)
    assert len(doc.history.labels) == steps + 1, "new layer + stroke are one undo step"
    assert tuple(doc.composite(Rect(50, 30, 1, 1))[0, 0]) == (10, 200, 30)
    # a second stroke goes on the same paint layer
    drag(qtbot, canvas, [(30, 50), (70, 50)])
    assert len(doc.layers) == 2
    window.act_undo.trigger()
    window.act_undo.trigger()
    assert len(doc.layers) == 1

    window.set_tool("eyedropper")
    qtbot.mouseClick(
        canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, widget_point(canvas, 5.5, 5.5)
    )
    r, g, b = doc.composite(Rect(5, 5, 1, 1))[0, 0]
    assert window.brush.rgb == (int(r), int(g), int(b))


def test_zoom_to_cursor_fit_and_100(window, qtbot):
    canvas = window.canvas
    window.act_100.trigger()
    assert canvas.scale == 1.0
    anchor = QPointF(300, 200)
    before = canvas.map_to_image(anchor)
    ev = QWheelEvent(
        anchor,
        canvas.mapToGlobal(anchor),
        QPoint(0, 0),
        QPoint(0, 360),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(canvas, ev)
    assert canvas.scale == pytest.approx(2.0)
    after = canvas.map_to_image(anchor)
    assert after == pytest.approx(before), "the point under the cursor stays put"
    window.act_fit.trigger()
    doc = window.document
    r = canvas.widget_rect(Rect(0, 0, doc.width, doc.height))
    assert canvas.rect().contains(r)
    assert max(r.width() / canvas.width(), r.height() / canvas.height()) > 0.9


def test_middle_button_and_space_pan(window, qtbot):
    canvas = window.canvas
    off = canvas.offset
    qtbot.mousePress(canvas, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, QPoint(100, 100))
    qtbot.mouseMove(canvas, QPoint(140, 130))
    qtbot.mouseRelease(canvas, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, QPoint(140, 130))
    assert canvas.offset - off == QPointF(40, 30)
    window.set_tool("mask_brush")
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(100, 100))
    qtbot.mouseMove(canvas, QPoint(90, 95))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(90, 95))
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert canvas.offset - off == QPointF(30, 25)
    assert not window.document.mask.any(), "space-drag pans instead of painting"


def test_a_dab_repaints_only_its_neighbourhood(window, qtbot):
    canvas = window.canvas
    window.set_tool("mask_brush")
    window.brush.size = 6
    canvas.repaint()
    qtbot.mousePress(
        canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, widget_point(canvas, 80, 60)
    )
    QApplication.processEvents()
    r = canvas.last_paint_rect
    assert 0 < r.width() * r.height() < canvas.width() * canvas.height() / 50
    qtbot.mouseRelease(
        canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, widget_point(canvas, 80, 60)
    )


def test_mask_is_shown_tinted_and_compare_shows_the_original(window, qtbot):
    doc, canvas = window.document, window.canvas
    window.act_100.trigger()
    doc.set_mask_style(color=(0, 0, 255), opacity=1.0)
    m = np.zeros(doc.shape, np.uint8)
    m[40:80, 40:80] = 255
    doc.set_mask(m)
    # a paint layer with red over part of the picture
    px = np.zeros((*doc.shape, 4), np.uint8)
    px[0:20, 0:20] = (255, 0, 0, 255)
    doc.add_layer(Layer("Paint", "paint", px))
    img = canvas.grab().toImage()
    p = widget_point(canvas, 60.2, 60.2)
    c = img.pixelColor(p)
    assert (c.red(), c.green(), c.blue()) == (0, 0, 255)
    q = img.pixelColor(widget_point(canvas, 10.2, 10.2))
    assert (q.red(), q.green(), q.blue()) == (255, 0, 0)
    window.act_compare.trigger()
    img = canvas.grab().toImage()
    orig = doc.layers[0].pixels
    for x, y in [(60, 60), (10, 10)]:
        c = img.pixelColor(widget_point(canvas, x + 0.2, y + 0.2))
        assert (c.red(), c.green(), c.blue()) == tuple(int(v) for v in orig[y, x, :3])
    window.act_compare.trigger()
    assert not canvas.compare


def test_display_composite_matches_the_document_at_full_size():
    rng = np.random.default_rng(1)
    doc = Document.from_image(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8))
    top = rng.integers(0, 255, (70, 90, 4), dtype=np.uint8)
    doc.add_layer(Layer("top", "paint", top, opacity=0.7))
    rect = Rect(5, 7, 60, 50)
    shown = render_layers(doc.layers, rect, 0)
    expect = to_bgra(premultiply(doc.composite_rgba(rect)))
    assert np.abs(shown.astype(int) - expect.astype(int)).max() <= 2


def test_tile_cache_rerenders_only_dirty_parts():
    calls = []
    data = np.zeros((600, 700), np.uint8)

    def render(rect, level):
        calls.append((rect, level))
        out = np.zeros((-(-rect.h // (1 << level)), -(-rect.w // (1 << level)), 4), np.uint8)
        out[..., 3] = 255
        return out

    cache = TileCache(700, 600, render)
    cache.begin_frame()
    for tx, ty in cache.tiles_in(0, Rect(0, 0, 700, 600)):
        assert cache.image(0, tx, ty) is not None
    assert len(calls) == 9
    calls.clear()
    cache.invalidate(Rect(300, 300, 10, 10))
    for tx, ty in cache.tiles_in(0, Rect(0, 0, 700, 600)):
        cache.image(0, tx, ty)
    assert calls == [(Rect(300, 300, 10, 10), 0)]
    assert data.sum() == 0
    assert level_for_scale(1.0) == 0 and level_for_scale(0.5) == 1 and level_for_scale(0.3) == 1
    assert level_for_scale(0.2) == 2 and level_for_scale(4.0) == 0


def test_zooming_shows_coarser_tiles_first_then_refines(window, qtbot, monkeypatch):
    import inpaint_studio.ui.canvas as canvas_module

    canvas = window.canvas
    canvas._composite.clear()
    canvas.zoom_to(0.2)
    canvas.repaint()  # only level 2 tiles are cached now
    monkeypatch.setattr(canvas_module, "RENDER_BUDGET_S", -1.0)
    canvas.zoom_to(1.0)
    canvas.repaint()
    assert canvas._pending, "no time budget left: the coarse tiles stand in"
    monkeypatch.setattr(canvas_module, "RENDER_BUDGET_S", 0.03)
    qtbot.waitUntil(lambda: not canvas._pending, timeout=3000)
    doc = window.document
    c = canvas.grab().toImage().pixelColor(widget_point(canvas, 50.2, 50.2))
    assert (c.red(), c.green(), c.blue()) == tuple(int(v) for v in doc.layers[0].pixels[50, 50, :3])
