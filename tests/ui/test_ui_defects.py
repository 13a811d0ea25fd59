"""The defects found by driving the real window as a product photographer (issue 15): each test
failed before its fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog
from ui_fakes import FollowupEngine
from ui_helpers import drag, photo, wait_files, wait_job

from inpaint_studio.core import paths
from inpaint_studio.engines.base import CancelFn, Engine, EngineInfo, Request, Result
from inpaint_studio.engines.params import Param
from inpaint_studio.ui.variants_panel import THUMB


def square_mask(window, y0=40, y1=80, x0=50, x1=100):
    m = np.zeros(window.document.shape, np.uint8)
    m[y0:y1, x0:x1] = 255
    window.document.set_mask(m)
    return m


def pixel(canvas, x: float, y: float) -> tuple[int, int, int]:
    c = canvas.grab().toImage().pixelColor(canvas.map_from_image(x, y).toPoint())
    return c.red(), c.green(), c.blue()


def variants_fill(window, qtbot, engine="scripted", n=3):
    window.engine_panel.select(engine)
    window.engine_panel.variants.setValue(n)
    window.engine_panel.new_seed.setChecked(False)
    window.engine_panel.seed.setValue(100)
    window.act_fill.trigger()
    wait_job(qtbot, window)


# 1 ------------------------------------------------------------------------------------------
def test_strokes_painted_while_a_variant_is_shown_are_visible(window, qtbot):
    canvas = window.canvas
    square_mask(window)
    variants_fill(window, qtbot)
    assert canvas.overlay_owner is window.variants_panel, "the first variant is on the canvas"
    window.set_tool("pan")
    before = pixel(canvas, 20, 20)
    window.set_tool("mask_brush")
    window.brush.size = 12
    drag(qtbot, canvas, [(15, 20), (25, 20)])
    window.set_tool("pan")  # no brush outline in the way of the pixel read
    assert window.document.mask[20, 20] == 255
    assert pixel(canvas, 20, 20) != before, "the new stroke shows over the variant preview"
    assert canvas.overlay_owner is window.variants_panel, "the variant stays shown under the stroke"


# 2 ------------------------------------------------------------------------------------------
class ManyParamsEngine(Engine):
    """As many settings as MAT and more: the list that squeezed the Variants panel."""

    info = EngineInfo(
        id="manyparams",
        title="Many settings (test)",
        description="a long settings list",
        params=tuple(Param(f"knob_{i}", "float", 0.5, minimum=0.0, maximum=1.0) for i in range(16)),
        yields_variants=True,
        needs_weights=False,
    )

    def run(self, request: Request, cancel: CancelFn = lambda: False):
        self.resolve(request)
        yield Result(request.image.copy())


def test_a_long_settings_list_scrolls_and_the_fills_strip_keeps_a_row_of_thumbnails(window, qtbot):
    window.catalog.add(ManyParamsEngine)
    window.resize(1600, 1000)
    window.engine_panel.refresh(select="manyparams")
    QApplication.processEvents()
    qtbot.wait(50)
    strip = window.variants_panel.list
    assert strip.height() >= THUMB + 24, f"the strip shows a full row of thumbnails ({strip.height()} px)"
    assert strip.minimumHeight() >= THUMB + 24, "and keeps it however the docks are dragged"
    bar = window.engine_panel.scroll.verticalScrollBar()
    assert bar.maximum() > 0, "the settings scroll instead of pushing the docks below down"


# 3 ------------------------------------------------------------------------------------------
def test_one_name_per_variant_on_thumbnail_badge_tooltip_layer_and_history(window, qtbot):
    FollowupEngine.requests.clear()
    window.catalog.add(FollowupEngine)
    window.engine_panel.refresh(select="followups")
    square_mask(window)
    vp, canvas, doc = window.variants_panel, window.canvas, window.document
    variants_fill(window, qtbot, "followups", 2)
    vp.list.setCurrentItem(vp.thumb_items()[1])  # 1.2
    with qtbot.waitSignal(window.controller.job_finished, timeout=10000):
        vp.follow_up_selected()
    names = [it.text() for it in vp.thumb_items()]
    assert names == ["1.1", "1.2", "1.3", "1.4"]
    item = vp.thumb_items()[3]
    vp._on_hover(item)
    assert canvas._overlay_label == "Variant 1.4", "the badge says the thumbnail's name"
    assert item.toolTip().startswith("Variant 1.4 ")
    vp.list.setCurrentItem(item)
    layer = vp.accept_selected()
    assert layer.name == "Follow-ups variant 1.4"
    assert doc.history.labels[-1] == "Fill: Follow-ups variant 1.4"
    # "More like this" on a variant that itself came from "More like this"
    vp.list.setCurrentItem(vp.thumb_items()[3])
    assert vp.more_button.isEnabled()
    with qtbot.waitSignal(window.controller.job_finished, timeout=10000) as blocker:
        vp.follow_up_selected()
    assert blocker.args[0].status == "done"
    assert FollowupEngine.requests[-1].params["near_index"] == 1
    assert [it.text() for it in vp.thumb_items()] == ["1.1", "1.2", "1.3", "1.4", "1.5", "1.6"]


# 4 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("engine", "variants"), [("classical", 1), ("scripted", 3)])
def test_after_a_fill_the_result_shows_without_the_mask_tint(window, qtbot, engine, variants):
    canvas, doc = window.canvas, window.document
    square_mask(window)
    tinted = pixel(canvas, 75, 60)
    variants_fill(window, qtbot, engine, variants)
    shown = pixel(canvas, 75, 60)
    assert doc.mask_style.visible and doc.mask.any(), "the mask itself is kept for another try"
    assert not canvas.mask_shown
    doc.set_mask_style(visible=False)  # what the canvas shows without any tint
    assert pixel(canvas, 75, 60) == shown != tinted
    doc.set_mask_style(visible=True)
    # the next stroke brings the whole mask back
    window.set_tool("mask_brush")
    drag(qtbot, canvas, [(10, 10), (14, 10)])
    assert canvas.mask_shown


# 5 ------------------------------------------------------------------------------------------
def test_space_drag_pans_while_the_layer_list_has_the_focus(window, qtbot):
    canvas, doc = window.canvas, window.document
    canvas.zoom_to(4.0)
    view = window.layers_panel.view
    view.setFocus()
    view.setCurrentIndex(view.model().index(0, 0))
    QApplication.processEvents()
    assert QApplication.focusWidget() is view
    visible = [ly.visible for ly in doc.layers]
    qtbot.keyPress(view, Qt.Key.Key_Space)
    start = canvas.offset
    drag(qtbot, canvas, [(40, 40), (30, 30)])
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert canvas.offset != start, "the drag panned"
    assert [ly.visible for ly in doc.layers] == visible, "Space did not toggle a layer"
    assert not doc.mask.any(), "the drag did not paint"


# 6 ------------------------------------------------------------------------------------------
def test_every_picture_on_the_command_line_opens(qtbot, tmp_path):
    from inpaint_studio import app
    from inpaint_studio.core.imageio import save_image

    names = []
    for i in range(3):
        path = tmp_path / f"photo{i}.png"
        save_image(path, photo(40 + i, 50, seed=i))
        names.append(path)
    windows = app.open_windows(app.parse_args([*map(str, names), "--no-recovery"]))
    try:
        qtbot.waitUntil(lambda: all(w.document is not None for w in windows), timeout=10000)
        opened = {w.source_path.name: w.document.shape for w in windows}
        assert opened == {p.name: (40 + i, 50) for i, p in enumerate(names)}, "one window per picture"
        assert len({(w.x(), w.y()) for w in windows}) == 3, "the windows do not sit on top of each other"
    finally:
        for w in windows:
            w.close()
        app._OPEN.clear()
        QApplication.processEvents()


# 8 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "words"), [("I;16", "16-bit"), ("L", "greyscale")])
def test_a_16_bit_or_greyscale_picture_is_said_once_in_the_status_bar(window, qtbot, tmp_path, mode, words):
    from PIL import Image

    path = tmp_path / "deep.png"
    if mode == "I;16":
        Image.fromarray(np.arange(60 * 80, dtype=np.uint16).reshape(60, 80) * 13).save(path)
    else:
        Image.fromarray(photo(60, 80)[..., 0]).save(path)
    assert Image.open(path).mode == mode
    wait_files(qtbot, window, window.open_path(path))
    message = window.statusBar().currentMessage()
    assert words in message and "8-bit RGB" in message
    plain = tmp_path / "plain.png"
    Image.fromarray(photo(60, 80)).save(plain)
    wait_files(qtbot, window, window.open_path(plain))
    assert "8-bit" not in window.statusBar().currentMessage(), "said only for pictures that lost something"


# 10 -----------------------------------------------------------------------------------------
def _write_weights(name: str):
    folder = paths.engine_models_dir("needsweights") / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.ok").write_text("ok")
    return folder


def test_weights_written_while_the_app_runs_appear_without_refresh(window, qtbot):
    panel = window.engine_panel
    panel.select("needsweights")
    assert not window.act_fill.isEnabled()
    _write_weights("trained-now")
    qtbot.waitUntil(lambda: window.act_fill.isEnabled(), timeout=5000)
    assert panel.entry.availability.ok


def test_a_picker_beside_the_engine_chooses_the_weights_newest_by_default(window, qtbot):
    import os
    import time

    old = _write_weights("older")
    os.utime(old, (time.time() - 100, time.time() - 100))
    _write_weights("newer")
    panel = window.engine_panel
    panel.refresh(select="needsweights")
    assert panel.weights_row.isVisibleTo(panel)
    combo = panel.weights_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["Newest: newer", "newer", "older"]
    assert combo.currentIndex() == 0 and "needsweights" not in window.catalog.weights
    combo.setCurrentIndex(2)
    combo.activated.emit(2)
    assert window.catalog.weights["needsweights"] == str(old)
    assert panel.weights_combo.currentText() == "older"


def test_internal_settings_sit_under_advanced(qtbot):
    from inpaint_studio.engines.mat import MatEngine
    from inpaint_studio.ui.param_form import ParamForm

    form = ParamForm()
    qtbot.addWidget(form)
    form.set_schema(MatEngine.info.params)
    form.show()
    assert set(form.advanced_names()) == {"start_index", "batch_size"}
    assert form.advanced_toggle.isVisible() and not form.advanced_box.isVisible()
    assert not form.editor("batch_size").isVisible() and form.editor("truncation_psi").isVisible()
    form.advanced_toggle.click()
    assert form.editor("batch_size").isVisible()
    assert set(form.values()) == {p.name for p in MatEngine.info.params}, (
        "every value still goes to the engine"
    )
    form.close()


def test_every_kind_of_setting_is_remembered_when_changed(window):
    """Choices, flags and text used to reach the form's ``changed`` with their value and raise there
    (``changed() only accepts 0 arguments``): only numbers were saved."""
    panel = window.engine_panel
    panel.select("mta")
    form = panel.form
    form.editor("scheduler").setCurrentText("ddim")
    form.editor("color_match").setChecked(not form.values()["color_match"])
    form.editor("base_model").setText("/models/sd15")
    form.editor("steps").setValue(31)
    saved = window.settings.get_json("engine/params/mta", {})
    assert saved["scheduler"] == "ddim" and saved["color_match"] == form.values()["color_match"]
    assert saved["base_model"] == "/models/sd15" and saved["steps"] == 31
    panel.select("classical")
    panel.select("mta")
    assert form.values()["scheduler"] == "ddim" and form.values()["base_model"] == "/models/sd15"


def test_a_path_setting_is_browsed_for_as_a_file_or_a_folder(qtbot, tmp_path, monkeypatch):
    from inpaint_studio.engines.mta import MtaEngine
    from inpaint_studio.ui.param_form import ParamForm

    form = ParamForm()
    qtbot.addWidget(form)
    form.set_schema(MtaEngine.info.params)
    changes = []
    form.changed.connect(lambda: changes.append(form.values()["base_model"]))
    field = form._fields["base_model"]
    folder, file = tmp_path / "sd15-diffusers", tmp_path / "v1-5-pruned-emaonly.safetensors"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(file), ""))
    assert form.editor("base_model").placeholderText() == "the one the branch names"  # what empty means
    browse = field.browse.menu().actions()
    assert [a.text() for a in browse] == ["File…", "Folder…"]
    browse[1].trigger()
    assert form.values()["base_model"] == str(folder) and changes[-1] == str(folder)
    browse[0].trigger()
    assert form.values()["base_model"] == str(file)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: ("", ""))  # cancelled
    browse[0].trigger()
    assert form.values()["base_model"] == str(file)
    form.editor("base_model").setText(f"  {folder}\n")  # pasted with a stray space and newline
    assert form.values()["base_model"] == str(folder)
    form.close()


# 11 -----------------------------------------------------------------------------------------
def test_export_starts_in_the_photos_folder_like_save(window, qtbot, tmp_path, monkeypatch):
    from inpaint_studio.core.imageio import save_image

    folder = tmp_path / "shoot"
    folder.mkdir()
    save_image(folder / "bag.png", photo())
    wait_files(qtbot, window, window.open_path(folder / "bag.png"))
    window.settings.set("files/export_dir", str(tmp_path))  # an earlier export elsewhere
    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (asked.append(a[2]), ("", ""))[1])
    window.export_dialog(None)
    window.save_as_dialog()
    assert [str(Path(p).parent) for p in asked] == [str(folder), str(folder)]


def test_x_swaps_the_mask_brush_and_the_eraser(window, qtbot):
    window.set_tool("mask_brush")
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_X)
    assert window.canvas.tool.id == "mask_eraser"
    qtbot.keyClick(window.canvas, Qt.Key.Key_X)
    assert window.canvas.tool.id == "mask_brush"
    window.set_tool("lasso")
    qtbot.keyClick(window.canvas, Qt.Key.Key_X)
    assert window.canvas.tool.id == "mask_brush"
