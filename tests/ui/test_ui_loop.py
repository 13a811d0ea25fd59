"""The loop people expect from IOPaint, Krita and Photoshop: fast remove, a history of fills,
a split before/after, and where to get an engine's weights."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from ui_fakes import VARIANT_COLORS, FailingEngine
from ui_helpers import drag, wait_job

from inpaint_studio.session.fill_history import RESULT, FillHistory


def pixel(canvas, x: float, y: float) -> tuple[int, int, int]:
    c = canvas.grab().toImage().pixelColor(canvas.map_from_image(x, y).toPoint())
    return c.red(), c.green(), c.blue()


def square_mask(window, y0=40, y1=80, x0=50, x1=100):
    m = np.zeros(window.document.shape, np.uint8)
    m[y0:y1, x0:x1] = 255
    window.document.set_mask(m)
    return m


def fill(window, qtbot, engine: str, variants: int = 1, seed: int = 100):
    panel = window.engine_panel
    panel.select(engine)
    panel.variants.setValue(variants)
    panel.new_seed.setChecked(False)
    panel.seed.setValue(seed)
    job = window.fill()
    wait_job(qtbot, window)
    return job


# ------------------------------------------------------------------------------ fast remove
def test_fast_remove_is_on_by_default_for_the_classical_engine_and_fast_engines(window):
    panel = window.engine_panel
    window.settings.qsettings.remove("engine/fast_remove/classical")  # the fixture turned it off
    assert panel.fast_remove_default("classical")
    assert not panel.fast_remove_default("scripted"), "unknown speed: off"
    panel.record_fill_time("scripted", 0.4)
    assert panel.fast_remove_default("scripted")
    panel.record_fill_time("slow", 9.0)
    assert not panel.fast_remove_default("slow")
    panel.select("scripted")
    panel.fast_remove.setChecked(False)  # the person's choice wins over the measurement
    assert not panel.fast_remove_default("scripted")


def test_fast_remove_fills_when_the_stroke_ends_then_clears_the_mask_in_one_undo_step(window, qtbot):
    doc, canvas = window.document, window.canvas
    panel = window.engine_panel
    panel.select("classical")
    panel.fast_remove.setChecked(True)
    original = doc.composite().copy()
    window.set_tool("mask_brush")
    window.brush.size = 14
    steps_before = len(doc.history.labels)
    with qtbot.waitSignal(window.controller.result_landed, timeout=15000):
        drag(qtbot, canvas, [(40, 60), (60, 60), (80, 60)])
    wait_job(qtbot, window)
    assert [ly.kind for ly in doc.layers] == ["image", "result"]
    assert not doc.mask.any(), "the mask is cleared after the fill"
    assert not np.array_equal(doc.composite()[60, 45:75], original[60, 45:75]), "the stroke was filled"
    assert doc.history.labels[-1] == "Remove (Classical)"
    assert len(doc.history.labels) == steps_before + 2, "the stroke, then the fill and clearing as one"
    window.act_undo.trigger()
    assert [ly.kind for ly in doc.layers] == ["image"] and doc.mask[60, 60] == 255, "undo: the mask is back"
    assert np.array_equal(doc.composite(), original)
    # an eraser stroke never fills
    window.set_tool("mask_eraser")
    drag(qtbot, canvas, [(40, 60), (44, 60)])
    QApplication.processEvents()
    assert not window.controller.busy and len(doc.layers) == 1


def test_fast_remove_fills_one_result_even_when_variants_are_asked(window, qtbot):
    panel = window.engine_panel
    panel.select("scripted")
    panel.variants.setValue(4)
    panel.fast_remove.setChecked(True)
    window.set_tool("rectangle")
    with qtbot.waitSignal(window.controller.job_finished, timeout=15000) as blocker:
        drag(qtbot, window.canvas, [(50, 40), (100, 80)])
    wait_job(qtbot, window)
    assert blocker.args[0].variants_asked == 1
    assert [ly.kind for ly in window.document.layers] == [
        "image",
        "result",
    ] and not window.document.mask.any()


# ------------------------------------------------------------------------------ history strip
def test_a_prompted_fill_is_titled_by_its_prompt_and_a_failed_one_says_so(window, qtbot):
    from dataclasses import replace

    vp = window.variants_panel
    square_mask(window)
    failed = fill(window, qtbot, "failing", seed=5)
    header = next(vp.list.item(i) for i in range(vp.list.count()) if vp.list.item(i) not in vp.thumb_items())
    assert header.text() == "Fill 1 · Failing · failed"  # it takes no seed
    assert FailingEngine.message in header.toolTip()
    done = fill(window, qtbot, "scripted", variants=1, seed=6)
    assert vp.history.groups[-1].outcome == "" and vp.history.groups[0].outcome == "failed"
    history = FillHistory()  # the title, Qt-free: a prompt tells prompted fills apart
    prompted = replace(
        done, id=10**6, prompt="a ceramic mug\nwith a blue glaze, steam rising, soft window light"
    )
    assert (
        history.add_job(prompted).title == "Fill 1 · Scripted · “a ceramic mug with a blue glaze…” · seed 6"
    )
    assert failed.prompt == ""


def test_every_fill_stays_in_the_strip_grouped_with_engine_seed_and_settings(window, qtbot):
    vp, doc = window.variants_panel, window.document
    square_mask(window)
    first = fill(window, qtbot, "scripted", variants=3, seed=100)
    second = fill(window, qtbot, "classical", seed=7)
    third = fill(window, qtbot, "scripted", variants=2, seed=200)
    assert [it.text() for it in vp.thumb_items()] == ["3.1", "3.2", "2", "1.1", "1.2", "1.3"]
    titles = [g.title for g in vp.history.groups]
    assert titles == [
        "Fill 1 · Scripted · seed 100",
        "Fill 2 · Classical",  # deterministic: no seed to show
        "Fill 3 · Scripted · seed 200",
    ]
    header_items = [
        vp.list.item(i) for i in range(vp.list.count()) if vp.list.item(i) not in vp.thumb_items()
    ]
    assert [h.text() for h in header_items] == list(reversed(titles)), "newest fill on top"
    assert "steps=3" in header_items[-1].toolTip(), "the settings are with the group"
    assert all(not (h.flags() & Qt.ItemFlag.ItemIsSelectable) for h in header_items)
    # re-applying an earlier fill's variant is one click on its apply button
    item = vp.item_for(first, 2)
    button = vp.apply_button_for(item)
    assert button.isVisible()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    layer = doc.layers[-1]
    assert layer.name == "Scripted variant 1.3" and layer.meta["seed"] == 102
    assert tuple(layer.pixels[60, 75]) == (*VARIANT_COLORS[2], 255)
    # and the earlier single fill too
    qtbot.mouseClick(vp.apply_button_for(vp.item_for(second, RESULT)), Qt.MouseButton.LeftButton)
    assert doc.layers[-1].name == "Classical fill 2" and doc.layers[-1].meta["engine"] == "classical"
    assert "seed" not in doc.layers[-1].meta  # a seed it ignored is not recorded as if it mattered
    assert third.status == "done"
    # until the person clears it
    vp.clear_button.click()
    assert vp.count() == 0 and vp.list.count() == 0 and not vp.history.groups
    fill(window, qtbot, "classical")
    assert [it.text() for it in vp.thumb_items()] == ["1"], "numbering starts again"


def test_the_seed_row_is_for_engines_that_draw_from_a_seed(window):
    panel = window.engine_panel
    panel.select("classical")
    seed = panel.seed.value()
    assert not panel.seed.isEnabled() and not panel.dice.isEnabled() and not panel.new_seed.isEnabled()
    panel.new_seed.setChecked(True)
    assert panel.request_values()["seed"] == seed  # not rolled for an engine that ignores it
    panel.select("scripted")
    assert panel.seed.isEnabled() and panel.dice.isEnabled() and panel.new_seed.isEnabled()


def test_hovering_an_earlier_fill_shows_it_on_the_canvas(window, qtbot):
    vp, canvas = window.variants_panel, window.canvas
    square_mask(window)
    first = fill(window, qtbot, "scripted", variants=2)
    fill(window, qtbot, "scripted", variants=2, seed=300)
    vp._on_hover(vp.item_for(first, 1))
    window.set_tool("pan")
    assert pixel(canvas, 75, 60) == VARIANT_COLORS[1]
    assert canvas._overlay_label == "Variant 1.2"


def test_fill_history_model_names_and_groups_without_qt():
    from inpaint_studio.core.document import Document
    from inpaint_studio.core.geometry import Rect
    from inpaint_studio.session.jobs import FillJob

    doc = Document(8, 8)
    mask = np.zeros((8, 8), np.uint8)

    def job(parent=None):
        return FillJob("e", "Engine (x)", doc, mask, Rect(0, 0, 1, 1), parent_id=parent)

    history = FillHistory()
    a = job()
    history.add_job(a)
    for i in range(2):
        history.add_result(a, i)
    child = job(a.id)
    grandchild = job(child.id)
    history.add_job(child)
    history.add_job(grandchild)
    history.add_result(child, 0)
    history.add_result(grandchild, 0)
    assert [e.name for e in history.entries()] == ["1.1", "1.2", "1.3", "1.4"]
    assert len(history.groups) == 1, "follow-ups of follow-ups join the first fill's group"
    b = job()
    history.add_job(b)
    history.add_result(b, RESULT)
    assert history.name(b, RESULT) == "2" and history.add_result(b, RESULT).name == "2"
    history.clear()
    assert len(history) == 0 and history.name(a, 0) is None


# ------------------------------------------------------------------------------ split compare
def test_split_compare_shows_before_left_of_a_divider_that_drags(window, qtbot):
    canvas, doc = window.canvas, window.document
    square_mask(window, 40, 80, 10, 150)  # a band across the picture
    fill(window, qtbot, "scripted", variants=1)
    window.set_tool("pan")
    before = doc.layers[0].pixels
    after = tuple(int(v) for v in doc.composite()[60, 40])
    assert after == VARIANT_COLORS[0]
    window.act_split.trigger()
    assert canvas.split == 0.5 and window.act_split.isChecked()
    divider_x = canvas.map_to_image(canvas.rect().center().toPointF())[0]
    assert 40 < divider_x < 140, "image x 40 lies left of the divider, x 140 right of it"
    assert pixel(canvas, 40, 60) == tuple(int(v) for v in before[60, 40, :3]), "before, left of the divider"
    assert pixel(canvas, 140, 60) == VARIANT_COLORS[0], "after, right of it"
    # drag the divider to the picture's right edge
    mid = canvas.rect().center()
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=mid)
    far = canvas.map_from_image(150, 60).toPoint()
    qtbot.mouseMove(canvas, far)
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=far)
    assert canvas.split == far.x() / canvas.width()
    assert pixel(canvas, 120, 60) == tuple(int(v) for v in before[60, 120, :3]), "x 120 is now left of it"
    assert len(doc.layers) == 2 and doc.history.labels[-1].startswith("Fill"), "the drag was not a tool's"
    # the toggle and the split exclude each other
    window.act_compare.trigger()
    assert canvas.compare and canvas.split is None and not window.act_split.isChecked()
    window.act_compare.trigger()


# ------------------------------------------------------------------------------ where to get weights
def test_a_disabled_engine_says_where_its_public_checkpoint_comes_from(window, qtbot):
    panel = window.engine_panel
    panel.refresh(select="mat")
    entry = panel.entry
    assert entry is not None and not entry.availability.ok
    row = next(
        i
        for i in range(panel.combo.count())
        if panel.combo.itemData(i, Qt.ItemDataRole.UserRole + 1) == "mat"
    )
    tip = panel.combo.itemData(row, Qt.ItemDataRole.ToolTipRole)
    assert "fenglinglwb/MAT" in tip and "Import…" in tip and "Models…" in tip
    assert panel.source_label.isVisibleTo(panel) and "fenglinglwb/MAT" in panel.source_label.text().replace(
        "\u200b", ""
    )
    assert panel.import_button.isVisibleTo(panel)
    assert panel.models_button.isVisibleTo(panel), "the Models dialog is offered beside Import"
    from inpaint_studio.ui.models_dialog import ModelsDialog

    panel.models_button.click()
    dialogs = [w for w in window.findChildren(ModelsDialog) if w.isVisible()]
    assert len(dialogs) == 1
    dialogs[0].close()
    QApplication.processEvents()
    asked = []
    panel.set_model_manager(asked.append)
    assert panel.models_button.isVisibleTo(panel)
    panel.models_button.click()
    assert asked == ["mat"]
