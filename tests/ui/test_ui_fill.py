"""Fills through the real worker thread: classical, scripted variants and steps, errors, cancel."""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from ui_fakes import VARIANT_COLORS, FailingEngine, SlowEngine
from ui_helpers import drag, wait_files, wait_job

from inpaint_studio.core.project import load_project


def paint_square(window, y0=40, y1=80, x0=50, x1=100):
    m = np.zeros(window.document.shape, np.uint8)
    m[y0:y1, x0:x1] = 255
    window.document.set_mask(m)
    return m


def test_classical_fill_lands_as_a_layer_and_the_project_reopens_identical(window, qtbot, tmp_path):
    doc, canvas = window.document, window.canvas
    original = doc.layers[0].pixels.copy()
    window.set_tool("lasso")
    drag(qtbot, canvas, [(50, 40), (100, 40), (100, 80), (50, 80)])
    mask = doc.mask.copy()
    assert mask.any()
    window.engine_panel.select("classical")
    with qtbot.waitSignal(window.controller.result_landed, timeout=15000):
        qtbot.keyClick(canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    wait_job(qtbot, window)
    assert [ly.kind for ly in doc.layers] == ["image", "result"]
    result = doc.layers[1]
    assert result.meta["engine"] == "classical"
    assert np.array_equal(result.pixels[..., 3], mask), "the result covers exactly the mask"
    assert np.array_equal(doc.layers[0].pixels, original), "the picture layer is untouched"
    comp = doc.composite()
    hole = mask == 255
    assert not np.array_equal(comp[hole], original[..., :3][hole]), "the hole changed"
    assert np.array_equal(comp[mask == 0], original[..., :3][mask == 0]), "nothing else did"
    assert doc.history.labels[-1] == "Fill: Classical fill 1", "the fill's one name (as in the Fills strip)"
    assert window.act_undo.isEnabled()

    path = tmp_path / "work.isproj"
    assert wait_files(qtbot, window, window.save_to(path)).ok
    assert not doc.modified
    reopened = load_project(path)
    assert [ly.kind for ly in reopened.layers] == ["image", "result"]
    for a, b in zip(doc.layers, reopened.layers, strict=True):
        assert np.array_equal(a.pixels, b.pixels)
    assert np.array_equal(reopened.mask, doc.mask)
    # and through the window, from the recent list
    window.set_document(None)
    assert wait_files(qtbot, window, window.open_path(str(path))).ok
    assert np.array_equal(window.document.composite(), comp)
    assert str(path.resolve()) == window.settings.recent_files()[0]


def test_an_engine_error_is_shown_and_the_document_stays_intact(window, qtbot):
    doc = window.document
    paint_square(window)
    layers = [ly.pixels.copy() for ly in doc.layers]
    labels = list(doc.history.labels)
    for engine_id, expect in (("failing", FailingEngine.message), ("buggy", "ZeroDivisionError")):
        window.engine_panel.select(engine_id)
        with qtbot.waitSignal(window.controller.job_finished, timeout=10000) as blocker:
            window.act_fill.trigger()
        job = blocker.args[0]
        assert job.status == "failed"
        assert expect in window.banner.message, window.banner.message
        assert window.banner.isVisible(), "the error is on screen"
        assert not QApplication.activeModalWidget(), "and it is not a modal dialog"
        assert doc.history.labels == labels
        assert len(doc.layers) == len(layers)
        assert all(np.array_equal(a, b.pixels) for a, b in zip(layers, doc.layers, strict=True))
    assert not window.controller.busy and not window.act_cancel.isEnabled()


def test_empty_mask_and_unavailable_engine_give_clear_messages(window, qtbot):
    window.engine_panel.select("classical")
    window.act_fill.trigger()
    assert "Nothing to fill" in window.banner.message
    panel = window.engine_panel
    panel.select("needsweights")
    assert not window.act_fill.isEnabled()
    assert panel.fix_box.isVisibleTo(panel)
    assert "train or import" in panel.reason.text()
    model = panel.combo.model()
    row = next(
        i
        for i in range(model.rowCount())
        if model.item(i).data(Qt.ItemDataRole.UserRole + 1) == "needsweights"
    )
    assert "no Needs-weights weights" in model.item(row).toolTip()
    assert panel.prompt.isEnabled(), "this engine takes a prompt"
    panel.select("classical")
    assert not panel.prompt.isEnabled()


def test_choosing_a_weights_folder_makes_an_engine_available(window, qtbot, tmp_path):
    panel = window.engine_panel
    panel.select("needsweights")
    (tmp_path / "weights.ok").write_text("ok")
    panel.set_weights_folder("needsweights", str(tmp_path))
    assert panel.engine_id == "needsweights"
    assert not panel.fix_box.isVisibleTo(panel)
    assert window.act_fill.isEnabled()
    assert window.settings.get_json("engine/weights")["needsweights"] == str(tmp_path)


def test_cancel_stops_a_slow_engine_within_one_step(window, qtbot):
    paint_square(window)
    SlowEngine.log.clear()
    SlowEngine.started.clear()
    window.engine_panel.select("slow")
    window.act_fill.trigger()
    assert window.controller.busy and window.act_cancel.isEnabled()
    assert window.status.cancel.isVisibleTo(window.status)
    qtbot.waitUntil(lambda: len(SlowEngine.log) >= 3, timeout=10000)
    with qtbot.waitSignal(window.controller.job_finished, timeout=5000) as blocker:
        t_cancel = time.perf_counter()
        window.status.cancel.click()
    took = time.perf_counter() - t_cancel
    job = blocker.args[0]
    assert job.status == "cancelled"
    assert all(not seen for _, seen in SlowEngine.log), "no step starts after the cancel was seen"
    started_after = [t for t, _ in SlowEngine.log if t > t_cancel]
    assert len(started_after) <= 1
    assert took < SlowEngine.step_s * 2 + 1.0
    assert len(SlowEngine.log) < SlowEngine.steps
    assert [ly.kind for ly in window.document.layers] == ["image"], "a cancelled fill leaves nothing"
    assert not window.status.cancel.isVisibleTo(window.status)


def test_a_second_fill_while_one_runs_is_queued(window, qtbot):
    paint_square(window)
    SlowEngine.log.clear()
    window.engine_panel.select("slow")
    SlowEngine.steps = 6
    try:
        first = window.fill()
        window.engine_panel.select("classical")
        second = window.fill()
        assert first.status == "running" and second.status == "queued"
        qtbot.waitUntil(lambda: second.status == "done", timeout=15000)
        wait_job(qtbot, window)
    finally:
        SlowEngine.steps = 60
    assert first.status == "done"
    assert [ly.name for ly in window.document.layers] == ["Background", "Slow fill 1", "Classical fill 2"]


def test_variants_arrive_as_thumbnails_show_in_place_and_accept_as_a_layer(window, qtbot):
    doc, canvas = window.document, window.canvas
    mask = paint_square(window)
    panel = window.engine_panel
    panel.select("scripted")
    assert panel.variants.isEnabled()
    panel.variants.setValue(3)
    panel.new_seed.setChecked(False)
    panel.seed.setValue(100)
    vp = window.variants_panel
    arrived = []
    window.controller.variant_added.connect(lambda job, frame: arrived.append(vp.count()))
    window.act_fill.trigger()
    wait_job(qtbot, window)
    assert arrived == [1, 2, 3], "thumbnails appear one by one as the events arrive"
    assert vp.count() == 3
    assert [ly.kind for ly in doc.layers] == ["image"], "with variants nothing lands until one is picked"
    # the first one is shown on the canvas in place
    assert canvas.overlay_owner is vp
    img = canvas.grab().toImage()
    p = canvas.map_from_image(75.2, 60.2).toPoint()
    c = img.pixelColor(p)
    assert (c.red(), c.green(), c.blue()) == VARIANT_COLORS[0]
    # hovering another shows it; leaving the list goes back to the clicked one
    vp._on_hover(vp.thumb_items()[2])
    c = canvas.grab().toImage().pixelColor(p)
    assert (c.red(), c.green(), c.blue()) == VARIANT_COLORS[2]
    vp._restore()
    c = canvas.grab().toImage().pixelColor(p)
    assert (c.red(), c.green(), c.blue()) == VARIANT_COLORS[0]
    # double-click accepts as a result layer
    item = vp.thumb_items()[1]
    vp.list.scrollToItem(item)
    QApplication.processEvents()
    rect = vp.list.visualItemRect(item)
    qtbot.mouseClick(
        vp.list.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center()
    )
    qtbot.mouseDClick(
        vp.list.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center()
    )
    assert [ly.kind for ly in doc.layers] == ["image", "result"]
    layer = doc.layers[1]
    assert layer.name == "Scripted variant 1.2"
    assert layer.meta["seed"] == 101 and layer.meta["variant"] == 1 and layer.meta["z"] == 1
    assert tuple(layer.pixels[60, 75]) == (*VARIANT_COLORS[1], 255)
    assert np.array_equal(layer.pixels[..., 3], mask)
    assert canvas.overlay_owner is None
    # the rejected ones stay browsable; Accept adds another
    assert vp.count() == 3
    vp.list.setCurrentItem(vp.thumb_items()[2])
    vp.accept_button.click()
    assert len(doc.layers) == 3
    window.act_undo.trigger()
    assert len(doc.layers) == 2
    # the next run adds a group on top and keeps the earlier one's variants
    panel.variants.setValue(2)
    window.act_fill.trigger()
    wait_job(qtbot, window)
    assert [it.text() for it in vp.thumb_items()] == ["2.1", "2.2", "1.1", "1.2", "1.3"]


def test_step_previews_show_live_and_scrub_after_the_run(window, qtbot):
    canvas = window.canvas
    paint_square(window)
    window.engine_panel.select("scripted")
    window.engine_panel.variants.setValue(1)
    window.engine_panel.form.set_values({"steps": 4})
    sp = window.steps_panel
    live = []

    def on_preview(job, frame):
        live.append((canvas.overlay_owner is sp, frame.step))

    window.controller.preview_added.connect(on_preview)
    window.act_fill.trigger()
    wait_job(qtbot, window)
    assert live == [(True, 1), (True, 2), (True, 3), (True, 4)], "each step is shown as it arrives"
    job = sp.job
    assert [f.step for f in job.previews] == [1, 2, 3, 4]
    assert sp.slider.isEnabled() and sp.slider.maximum() == 4
    assert sp.step_label.text() == "Result"
    assert canvas.overlay_owner is None, "after the run the canvas shows the result"
    assert [ly.kind for ly in window.document.layers] == ["image", "result"], "one variant lands directly"

    p = canvas.map_from_image(75.2, 75.2).toPoint()  # bottom of the hole: decided from step 1
    q = canvas.map_from_image(75.2, 41.2).toPoint()  # top of the hole: undecided until the end
    sp.slider.setValue(0)
    assert canvas.overlay_owner is sp and sp.step_label.text() == "Step 1 / 4"
    img = canvas.grab().toImage()
    c = img.pixelColor(p)
    assert (c.red(), c.green(), c.blue()) == (255 * 1 // 4, 0, 0)
    tinted = img.pixelColor(q)
    assert tinted.blue() > 60, "the undecided part of the preview is tinted"
    sp.slider.setValue(2)
    c = canvas.grab().toImage().pixelColor(p)
    assert (c.red(), c.green(), c.blue()) == (255 * 3 // 4, 0, 0)
    sp.slider.setValue(4)
    assert canvas.overlay_owner is None


def test_settings_form_values_reach_the_request_and_are_remembered(window, qtbot):
    panel = window.engine_panel
    panel.select("classical")
    panel.form.set_values({"radius": 9, "method": "ns"})
    panel.form.changed.emit()
    values = panel.request_values()
    assert values["params"]["radius"] == 9 and values["params"]["method"] == "ns"
    assert window.settings.get_json("engine/params/classical")["radius"] == 9
    panel.select("scripted")  # an engine that draws from its seed (classical's dice is off)
    seen = {panel.seed.value()}
    for _ in range(4):
        panel.dice.click()
        assert 0 <= panel.seed.value() < 2**31
        seen.add(panel.seed.value())
    assert len(seen) >= 3, "the dice draws new seeds (five equal draws of 2**31 would be a broken dice)"
    panel.select("classical")
    assert panel.form.values()["radius"] == 9  # remembered across the switch
    paint_square(window)
    job = window.fill()
    wait_job(qtbot, window)
    assert job.params["radius"] == 9 and job.params["method"] == "ns"
    assert window.document.layers[-1].meta["params"]["radius"] == 9


def test_importing_a_checkpoint_runs_in_the_background_and_enables_the_engine(window, qtbot, tmp_path):
    panel = window.engine_panel
    panel.select("needsweights")
    bad = tmp_path / "other.pth"
    bad.write_text("something else")
    panel.run_import(panel.entry, bad)
    qtbot.waitUntil(lambda: panel.import_button.isEnabled(), timeout=5000)
    assert "Import failed" in panel.reason.text() and "not a Needs-weights checkpoint" in panel.reason.text()
    good = tmp_path / "official.pth"
    good.write_text("official checkpoint")
    panel.run_import(panel.entry, good)
    assert not panel.import_button.isEnabled(), "the import runs off the GUI thread"
    qtbot.waitUntil(lambda: window.act_fill.isEnabled(), timeout=5000)
    assert panel.engine_id == "needsweights" and not panel.fix_box.isVisibleTo(panel)


def test_weights_trained_elsewhere_import_as_a_folder_under_the_run_name(
    window, qtbot, tmp_path, monkeypatch
):
    import os
    import shutil

    from PySide6.QtWidgets import QFileDialog, QMessageBox

    from inpaint_studio.core import paths

    panel = window.engine_panel
    panel.select("needsweights")
    opened = []
    monkeypatch.setattr(QFileDialog, "open", lambda self, *a: opened.append(self.fileMode()))
    actions = panel.import_button.menu().actions()
    assert [a.text() for a in actions] == [
        "Checkpoint file…",
        "Folder (a release, or a trained RUN/weights)…",
    ]
    for action in actions:
        action.trigger()
    assert opened == [QFileDialog.FileMode.ExistingFile, QFileDialog.FileMode.Directory]
    export = tmp_path / "shop-gpu-run" / "weights"  # what inpaint-studio-train wrote on another computer
    export.mkdir(parents=True)
    (export / "config.json").write_text('{"engine": "needsweights", "format": 1, "arch": {}, "parts": []}')
    (export / "weights.ok").write_text("ok")
    panel.run_import(panel.entry, export)
    qtbot.waitUntil(lambda: window.act_fill.isEnabled(), timeout=5000)
    assert (paths.engine_models_dir("needsweights") / "shop-gpu-run" / "weights.ok").is_file()
    # the engine runs now: more weights come in through the button beside the weights picker
    assert panel.import_more.isVisibleTo(panel) and panel.import_more.menu() is panel.import_button.menu()
    older = paths.engine_models_dir("needsweights") / "older"
    older.mkdir()
    (older / "weights.ok").write_text("ok")
    (older / "config.json").write_text("{}")
    os.utime(older / "config.json", (time.time() - 5,) * 2)
    taken = shutil.copytree(export, tmp_path / "elsewhere" / "shop-gpu-run")
    panel.run_import(panel.entry, taken)  # the name is taken: nothing is replaced, and a box says so
    assert panel.note.isVisibleTo(panel) and "Importing shop-gpu-run" in panel.note.text()
    qtbot.waitUntil(lambda: panel.import_more.isEnabled(), timeout=5000)
    boxes = [b for b in panel.findChildren(QMessageBox) if b.isVisible()]
    assert len(boxes) == 1 and "already holds weights" in boxes[0].text()
    boxes[0].close()
    assert (paths.engine_models_dir("needsweights") / "shop-gpu-run" / "weights.ok").read_text() == "ok"
    again = shutil.copytree(export, tmp_path / "again" / "weights")
    os.utime(again / "config.json", (1e9, 1e9))  # trained long ago, imported now: the newest arrival
    panel.run_import(panel.entry, again)
    qtbot.waitUntil(lambda: panel.import_more.isEnabled(), timeout=5000)
    assert window.catalog.weights_choices("needsweights")[0].name == "again"


def test_an_engine_that_runs_with_a_note_shows_it(window, monkeypatch):
    from ui_fakes import NeedsWeightsEngine

    from inpaint_studio.engines.base import Availability

    note = "the base model /gpu-box/sd15 that the branch names is not on this computer: set base_model"
    monkeypatch.setattr(
        NeedsWeightsEngine, "availability", classmethod(lambda cls, weights=None: Availability(True, note))
    )
    panel = window.engine_panel
    panel.refresh(select="needsweights")
    assert window.act_fill.isEnabled() and not panel.fix_box.isVisibleTo(panel)
    assert panel.note.isVisibleTo(panel) and "not on this computer" in panel.note.text()
    opened = []
    panel.set_model_manager(opened.append)  # the note links to where missing parts come from
    assert 'href="models"' in panel.note.text()
    panel.note.linkActivated.emit("models")
    assert opened == ["needsweights"]
    panel.select("classical")
    assert not panel.note.isVisibleTo(panel)


def test_opening_another_picture_cancels_the_running_fill(window, qtbot):
    from ui_helpers import photo

    from inpaint_studio.core.document import Document

    paint_square(window)
    SlowEngine.log.clear()
    window.engine_panel.select("slow")
    job = window.fill()
    qtbot.waitUntil(lambda: len(SlowEngine.log) >= 1, timeout=5000)
    window.document.history.mark_clean()
    other = Document.from_image(photo(seed=5))
    window.set_document(other)
    qtbot.waitUntil(lambda: job.finished, timeout=5000)
    wait_job(qtbot, window)
    assert job.status == "cancelled"
    assert len(other.layers) == 1 and not other.history.labels


def test_closing_the_window_stops_a_running_fill(window, qtbot):
    paint_square(window)
    SlowEngine.log.clear()
    window.engine_panel.select("slow")
    job = window.fill()
    qtbot.waitUntil(lambda: len(SlowEngine.log) >= 1, timeout=5000)
    window.document.history.mark_clean()
    t = time.perf_counter()
    window.close()
    assert time.perf_counter() - t < 2.0
    assert not window.controller.runner._thread.isRunning()
    assert job.cancel_flag.is_set()


def test_a_soft_mask_gives_the_same_pixels_in_the_app_and_the_cli(window, qtbot, tmp_path):
    """The fill is blended once: the app's result layer over the photo, flattened, equals the file
    `inpaint-studio fill` writes for the same image and soft mask (the brush's default hardness
    0.8 gives every brushed mask such a rim)."""
    from inpaint_studio.cli import main
    from inpaint_studio.core.imageio import save_image

    doc = window.document
    image = doc.layers[0].pixels[..., :3].copy()
    yy, xx = np.mgrid[0 : doc.shape[0], 0 : doc.shape[1]]
    dist = np.hypot(yy - 60.0, xx - 75.0)
    soft = np.clip((30.0 - dist) * 255.0 / 12.0, 0, 255).astype(np.uint8)  # a 12 px soft rim
    assert ((soft > 0) & (soft < 255)).sum() > 500
    doc.set_mask(soft)
    window.engine_panel.select("classical")
    window.engine_panel.form.set_values({"radius": 4})
    with qtbot.waitSignal(window.controller.result_landed, timeout=15000):
        window.fill()
    wait_job(qtbot, window)
    doc.flatten()
    app_pixels = doc.composite()

    save_image(tmp_path / "in.png", image)
    save_image(tmp_path / "mask.png", soft)
    out = tmp_path / "out.png"
    argv = ["fill", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"), "-o", str(out)]
    assert main([*argv, "--engine", "classical", "--radius", "4", "-q"]) == 0
    from inpaint_studio.core.imageio import load_image

    cli_pixels = load_image(out)
    rim = (soft > 0) & (soft < 255)
    assert np.array_equal(cli_pixels[soft == 0], image[soft == 0])
    assert not np.array_equal(cli_pixels[rim], image[rim]), "the rim is partly filled"
    assert np.array_equal(app_pixels, cli_pixels)


def test_prompt_engines_show_and_send_a_negative_prompt(window, qtbot):
    from dataclasses import replace

    from ui_fakes import ScriptedEngine

    seen = []

    class PromptEngine(ScriptedEngine):
        info = replace(ScriptedEngine.info, id="prompted", title="Prompted (test)", takes_prompt=True)

        def run(self, request, cancel=lambda: False):
            seen.append(request)
            yield from super().run(request, cancel)

    window.catalog.add(PromptEngine)
    panel = window.engine_panel
    panel.refresh(select="scripted")
    assert panel.negative_prompt.isHidden(), "engines without prompts show no negative prompt"
    panel.refresh(select="prompted")
    assert not panel.negative_prompt.isHidden()
    panel.prompt.setPlainText("a blue ceramic mug")
    panel.negative_prompt.setPlainText("text, watermark")
    panel.variants.setValue(1)
    paint_square(window)
    window.fill()
    wait_job(qtbot, window)
    assert seen[-1].prompt == "a blue ceramic mug" and seen[-1].negative_prompt == "text, watermark"
    layer = window.document.layers[-1]
    assert layer.meta["negative_prompt"] == "text, watermark"
