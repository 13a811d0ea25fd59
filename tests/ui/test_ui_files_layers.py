"""Files (open, drop, export, recent, close), autosave + recovery, the layers and history panels."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication
from ui_helpers import photo, wait_files

from inpaint_studio.core.document import MASK
from inpaint_studio.core.imageio import read_image, save_image
from inpaint_studio.ui.main_window import SAMPLE


def test_open_export_and_recent(window, qtbot, tmp_path):
    src = tmp_path / "shelf.png"
    save_image(src, photo(90, 130, seed=3))
    assert wait_files(qtbot, window, window.open_path(src)).ok
    doc = window.document
    assert (doc.width, doc.height) == (130, 90)
    assert "shelf.png" in window.windowTitle()
    assert window.status.size_label.text() == "130 × 90 px"
    assert window.settings.recent_files()[0] == str(src.resolve())
    for suffix in (".png", ".jpg", ".webp"):
        out = tmp_path / f"out{suffix}"
        assert wait_files(qtbot, window, window.export_to(out)).ok
        loaded = read_image(out)
        assert loaded.rgb.shape == (90, 130, 3)
    assert np.array_equal(read_image(tmp_path / "out.png").rgb, doc.composite())
    # one layer, and the mask
    m = np.zeros(doc.shape, np.uint8)
    m[10:20, 10:30] = 255
    doc.set_mask(m)
    assert wait_files(qtbot, window, window.export_to(tmp_path / "mask.png", MASK)).ok
    assert np.array_equal(read_image(tmp_path / "mask.png").rgb[..., 0], m)
    assert wait_files(qtbot, window, window.export_to(tmp_path / "layer.png", doc.layers[0].id)).ok
    # a broken file is a message, not a crash, and the open document stays
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    doc.history.mark_clean()
    op = wait_files(qtbot, window, window.open_path(bad))
    assert not op.ok and window.document is doc
    assert "broken.png" in window.banner.message


def test_drop_a_file_opens_it(window, qtbot, tmp_path):
    src = tmp_path / "dropped.png"
    save_image(src, photo(50, 60))
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(src))])
    ev = QDropEvent(
        QPointF(200, 200),
        Qt.DropAction.CopyAction,
        data,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(ev)
    qtbot.waitUntil(lambda: window.document.width == 60, timeout=3000)
    assert window.source_path == src


def test_closing_with_unsaved_work_asks_first(window, qtbot, monkeypatch):
    doc = window.document
    doc.set_mask(np.full(doc.shape, 255, np.uint8))
    assert doc.modified and window.isWindowModified()
    asked = []
    monkeypatch.setattr(window, "ask_unsaved", lambda: asked.append(1) or "cancel")
    window.close()
    assert asked and window.isVisible(), "Cancel keeps the window open"
    monkeypatch.setattr(window, "ask_unsaved", lambda: "discard")
    window.close()
    assert not window.isVisible()


def test_autosave_then_recovery_after_a_crash(window, qtbot, tmp_path):
    doc = window.document
    doc.set_mask(np.full(doc.shape, 255, np.uint8))
    window.autosaver.tick()
    window.autosaver.wait()
    store = window.autosaver.store
    record = store.folder / f"{doc.id}.json"
    assert record.is_file() and (store.folder / f"{doc.id}.isproj").is_file()
    # pretend the process that wrote it died
    info = json.loads(record.read_text())
    info["pid"] = 2**22 + 12345
    record.write_text(json.dumps(info))
    expected = [ly.pixels.copy() for ly in doc.layers], doc.mask.copy()
    doc.history.mark_clean()
    window.set_document(None)
    # set_document(None) discards the autosave of the closed document: put it back as a crash would
    assert not record.exists()
    from inpaint_studio.core.document import Document
    from inpaint_studio.core.layers import Layer

    crashed = Document(expected[1].shape[1], expected[1].shape[0])
    crashed.id = info_id = record.stem
    for px in expected[0]:
        crashed.add_layer(Layer("Background", "image", px))
    crashed.mask = expected[1].copy()
    store.save(crashed, "shelf.png")
    store.release_all()  # what a crash does: the OS drops the autosave's flock (the PID no longer matters)

    dialog = window.offer_recovery()
    assert dialog is not None and dialog.list.count() == 1
    dialog.recover_button.click()
    wait_files(qtbot, window)
    rec = window.document
    assert rec.id == info_id and rec.modified, "recovered work counts as unsaved"
    assert np.array_equal(rec.mask, expected[1])
    assert np.array_equal(rec.layers[0].pixels, expected[0][0])
    assert "Recovered" in window.banner.message
    window.autosaver.wait()
    rec.history.mark_clean()


def test_layers_panel_show_hide_rename_reorder_opacity(window, qtbot):
    doc = window.document
    panel = window.layers_panel
    model = panel.model
    window.act_new_layer.trigger()
    window.act_duplicate.trigger()
    names = [ly.name for ly in doc.layers]
    assert names == ["Background", "Paint 1", "Paint 1 copy"]
    assert model.rowCount() == 4 and model.data(model.index(0)) == "Mask"
    assert model.data(model.index(1)) == "Paint 1 copy", "top layer first"
    # show / hide through the check box
    model.setData(model.index(3), Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    assert not doc.layers[0].visible
    model.setData(model.index(0), Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    assert not doc.mask_style.visible and not window.act_show_mask.isChecked()
    # rename
    model.setData(model.index(2), "Rough colours", Qt.ItemDataRole.EditRole)
    assert doc.layers[1].name == "Rough colours"
    # drag the bottom layer to the top (a drop before row 1)
    bottom = doc.layers[0].id
    mime = model.mimeData([model.index(3)])
    model.dropMimeData(mime, Qt.DropAction.MoveAction, 1, 0, model.index(-1))
    assert doc.layers[-1].id == bottom
    window.act_undo.trigger()
    assert doc.layers[0].id == bottom
    # an opacity drag is one undo step
    panel.select(doc.layers[2].id)
    steps = doc.history.index
    for v in (90, 70, 50):
        panel.opacity.setValue(v)
    assert doc.layers[2].opacity == pytest.approx(0.5)
    assert doc.history.index == steps + 1
    # the mask row's slider sets the tint opacity
    panel.select(MASK)
    panel.opacity.setValue(30)
    assert doc.mask_style.opacity == pytest.approx(0.3)


def test_layer_actions_merge_flatten_delete(window, qtbot):
    doc = window.document
    px = np.zeros((*doc.shape, 4), np.uint8)
    px[:10, :10] = (0, 0, 255, 255)
    from inpaint_studio.core.layers import Layer

    doc.add_layer(Layer("Blue", "paint", px))
    composite = doc.composite()
    window.act_merge_down.trigger()
    assert len(doc.layers) == 1 and np.array_equal(doc.composite(), composite)
    window.act_undo.trigger()
    assert len(doc.layers) == 2
    window.act_flatten.trigger()
    assert len(doc.layers) == 1 and np.array_equal(doc.composite(), composite)
    window.act_undo.trigger()
    window.layers_panel.select(doc.layers[1].id)
    window.act_delete_layer.trigger()
    assert [ly.name for ly in doc.layers] == ["Background"]
    assert not window.act_delete_layer.isEnabled(), "the last layer cannot be deleted"


def test_settings_are_remembered_between_windows(window, qtbot):
    from inpaint_studio.ui.main_window import MainWindow

    window.brush.size = 77
    window.set_tool("lasso")
    window.engine_panel.select("classical")
    window.set_theme("dark")
    window.document.history.mark_clean()
    window.close()
    second = MainWindow(catalog=window.catalog)
    try:
        assert second.brush.size == 77
        assert second.canvas.tool is second.tools["lasso"]
        assert second.engine_panel.engine_id == "classical"
        assert second.settings.get("view/theme") == "dark"
    finally:
        second.set_theme("light")
        second.close()


def test_app_main_opens_the_sample_and_exits(qtbot, monkeypatch):
    from inpaint_studio import app as app_module

    assert SAMPLE.is_file() and (SAMPLE.parent / "SOURCE.md").is_file()
    monkeypatch.setattr(QApplication, "exec", lambda self=None: _close_all_and_return(qtbot))
    assert app_module.main(["--sample", "--no-recovery", "--theme", "light"]) == 0


def _close_all_and_return(qtbot) -> int:
    from inpaint_studio.ui.main_window import MainWindow

    wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
    assert len(wins) == 1
    win = wins[0]
    wait_files(qtbot, win)  # the sample opens in the background
    assert win.document is not None and win.document.width == 600, "the sample photo is open"
    win.close()
    return 0


def test_parse_args():
    from inpaint_studio.app import parse_args

    a = parse_args(["photo.jpg"])
    assert a.paths == ["photo.jpg"] and not a.sample
    assert parse_args(["--sample"]).sample


del QPoint, QTimer, os


def test_the_screenshot_walkthrough_runs(window, qtbot):
    from inpaint_studio.ui.demo import run_demo

    assert window.open_sample()
    finished = []
    run_demo(window, lambda: finished.append(True))
    qtbot.waitUntil(lambda: bool(finished), timeout=15000)
    doc = window.document
    assert [ly.kind for ly in doc.layers] == ["image", "result"]
    assert doc.layers[1].pixels[283, 366, 3] == 255, "the spoon's bowl was filled"
    assert doc.mask[240, 40] == 255 and doc.mask[283, 366] == 0, "a second mask waits on the table"


def test_float_fields_show_their_default_precisely(window):
    window.engine_panel.select("classical")
    assert window.engine_panel.form.editor("context").text() == "0.25"
