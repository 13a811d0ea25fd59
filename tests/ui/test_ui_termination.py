"""SIGTERM / SIGINT / SIGHUP while the window is up: the unsaved work is autosaved and kept for recovery,
the app exits with 128 + the signal's number, and nobody is asked "Save?"."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from inpaint_studio.ui.termination import SignalRelay

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="no POSIX signals here")


def test_a_real_sigterm_reaches_the_gui_thread_and_the_old_handler_comes_back(qtbot):
    before = signal.getsignal(signal.SIGTERM)
    relay = SignalRelay((signal.SIGTERM,))
    try:
        with qtbot.waitSignal(relay.received, timeout=5000) as got:
            os.kill(os.getpid(), signal.SIGTERM)
        assert got.args == [signal.SIGTERM]
    finally:
        relay.close()
    assert signal.getsignal(signal.SIGTERM) is before


def test_end_session_keeps_the_unsaved_work_for_recovery_without_asking(window, monkeypatch):
    doc = window.document
    doc.set_mask(np.full(doc.shape, 255, np.uint8))
    monkeypatch.setattr(window, "ask_unsaved", lambda: pytest.fail("asked Save? while the session ends"))
    window.end_session()
    store = window.autosaver.store
    record = store.folder / f"{doc.id}.json"
    assert record.is_file() and (store.folder / f"{doc.id}.isproj").is_file()
    assert json.loads(record.read_text())["pid"] == os.getpid()
    window.close()  # already shut down: closes without a question and keeps the autosave
    assert record.is_file(), "the autosave must outlive the window, to be offered at the next launch"
    store.release_all()
    store.discard(doc.id)


def test_sigterm_during_app_main_exits_143_and_leaves_the_work_recoverable(qtbot, monkeypatch):
    from inpaint_studio import app as app_module
    from inpaint_studio.core.autosave import AutosaveStore

    codes: list[int] = []
    monkeypatch.setattr(QApplication, "exit", lambda *args: codes.append(args[-1]))

    def fake_exec(self=None) -> int:
        [win] = app_module.main_windows()
        qtbot.waitUntil(lambda: win.document is not None and win.file_ops.current is None, timeout=10000)
        win.document.set_mask(np.full(win.document.shape, 255, np.uint8))
        os.kill(os.getpid(), signal.SIGTERM)
        qtbot.waitUntil(lambda: bool(codes), timeout=5000)
        win.close()
        return codes[0]

    monkeypatch.setattr(QApplication, "exec", fake_exec)
    assert app_module.main(["--sample", "--no-recovery"]) == 128 + signal.SIGTERM
    store = AutosaveStore()
    store.release_all()
    saved = list(store.folder.glob("*.isproj"))
    assert len(saved) == 1, "the sample with its painted mask is kept for recovery"
    assert signal.getsignal(signal.SIGTERM) is not None
