"""Opening and saving run in the background: the window keeps running its event loop, shows
that a file operation is busy, refuses a second one with a message, loses no edit, and closes
only after a running save has ended."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from ui_helpers import photo, wait_files

from inpaint_studio.core.imageio import save_image
from inpaint_studio.core.project import load_project
from inpaint_studio.session import files


@pytest.fixture
def gate(monkeypatch):
    """Slow writers and readers: they start, then wait until the test opens the gate."""
    opened, entered = threading.Event(), threading.Event()

    def held(fn):
        def slow(*args, **kwargs):
            entered.set()
            opened.wait(20)
            return fn(*args, **kwargs)

        return slow

    monkeypatch.setattr(files, "save_project", held(files.save_project))
    monkeypatch.setattr(files, "open_document", held(files.open_document))
    yield opened, entered
    opened.set()


def ticking(window):
    """A timer that counts while the event loop runs."""
    ticks = []
    timer = QTimer(window)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    return ticks, timer


def mask_square(doc, y0=10, y1=30):
    m = np.zeros(doc.shape, np.uint8)
    m[y0:y1, 20:60] = 255
    doc.set_mask(m)
    return m


def test_a_slow_save_keeps_the_window_running_and_closing_waits_for_it(
    window, qtbot, tmp_path, gate, monkeypatch
):
    opened, entered = gate
    doc = window.document
    mask = mask_square(doc)
    asked = []
    monkeypatch.setattr(window, "ask_unsaved", lambda: asked.append(1) or "cancel")
    path = tmp_path / "slow.isproj"
    op = window.save_to(path)
    assert op is not None and not op.finished and window.file_ops.busy
    qtbot.waitUntil(entered.is_set, timeout=5000)  # the writer runs, held at the gate
    ticks, timer = ticking(window)
    qtbot.waitUntil(lambda: len(ticks) >= 3, timeout=5000)
    assert not opened.is_set() and window.file_ops.busy, "the event loop ran while the save was held"
    assert window.status.file_text.isVisible() and window.status.file_busy.isVisible()
    assert window.status.file_text.text() == "Saving slow.isproj…"
    # a second save is refused with a message, not queued behind a dialog
    assert window.save_to(tmp_path / "other.isproj") is None
    assert "still in progress" in window.banner.message and window.banner.level == "warning"
    assert not QApplication.activeModalWidget()
    # closing waits for the save instead of dropping it
    window.close()
    assert window.isVisible() and not asked
    opened.set()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10000)
    timer.stop()
    assert op.ok and not asked, "the saved document closed without a question"
    assert not doc.modified and window.project_path == path
    assert np.array_equal(load_project(path).mask, mask)
    assert not (tmp_path / "other.isproj").exists()
    assert not window.status.file_text.isVisible()


def test_edits_made_while_saving_stay_unsaved(window, qtbot, tmp_path, gate):
    opened, entered = gate
    doc = window.document
    before = mask_square(doc)
    path = tmp_path / "edit.isproj"
    op = window.save_to(path)
    qtbot.waitUntil(entered.is_set, timeout=5000)
    after = mask_square(doc, 50, 90)  # the person keeps working
    opened.set()
    wait_files(qtbot, window)
    assert op.ok and np.array_equal(load_project(path).mask, before), "the file holds what was saved"
    assert doc.modified and window.isWindowModified(), "the later edit is not marked saved"
    assert "not in it yet" in window.statusBar().currentMessage()
    assert np.array_equal(doc.mask, after)


def test_opening_happens_in_the_background(window, qtbot, tmp_path, gate):
    opened, entered = gate
    src = tmp_path / "big.png"
    save_image(src, photo(70, 90, seed=4))
    old = window.document
    op = window.open_path(src)
    qtbot.waitUntil(entered.is_set, timeout=5000)
    ticks, timer = ticking(window)
    qtbot.waitUntil(lambda: len(ticks) >= 3, timeout=5000)
    timer.stop()
    assert window.document is old and not op.finished
    assert window.status.file_text.text() == "Opening big.png…"
    opened.set()
    wait_files(qtbot, window)
    assert op.ok and window.document is not old and window.document.width == 90


def test_a_failed_save_is_a_message_and_save_then_close_works(window, qtbot, tmp_path, monkeypatch):
    doc = window.document
    mask = mask_square(doc)

    def broken(*args, **kwargs):
        raise OSError("no space left on device")

    real = files.save_project
    monkeypatch.setattr(files, "save_project", broken)
    op = wait_files(qtbot, window, window.save_to(tmp_path / "full.isproj"))
    assert not op.ok and doc.modified
    assert "Could not save full.isproj: no space left on device" in window.banner.message
    assert not QApplication.activeModalWidget()
    # Ctrl+S to the project's file
    monkeypatch.setattr(files, "save_project", real)
    window.project_path = tmp_path / "kept.isproj"
    window.act_save.trigger()
    wait_files(qtbot, window)
    assert not doc.modified and not window.isWindowModified()
    # closing with unsaved work, answering Save: the window closes once the save has succeeded
    mask = mask_square(doc, 60, 70)
    monkeypatch.setattr(window, "ask_unsaved", lambda: "save")
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10000)
    assert np.array_equal(load_project(tmp_path / "kept.isproj").mask, mask)
