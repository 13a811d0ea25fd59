"""UI test fixtures: a main window with the scripted engines, and a guard that fails a test
which leaves windows open or runner threads running (as napari's test suite does)."""

from __future__ import annotations

import gc

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QApplication  # noqa: E402
from ui_fakes import BuggyEngine, FailingEngine, NeedsWeightsEngine, ScriptedEngine, SlowEngine  # noqa: E402
from ui_helpers import photo  # noqa: E402

from inpaint_studio.ui import runner  # noqa: E402
from inpaint_studio.ui.threads import init_relay  # noqa: E402


@pytest.fixture(autouse=True)
def no_leaks(qapp):
    """Fail when a test leaves a visible window or a running runner thread behind."""
    init_relay()
    yield
    QApplication.processEvents()
    running = [t for t in list(runner.LIVE_THREADS) if t.isRunning()]
    left = [w for w in QApplication.topLevelWidgets() if w.isVisible()]
    for w in left:  # clean up so one failure does not cascade
        w.close()
    for t in running:
        t.quit()
        t.wait(5000)
    gc.collect()
    assert not running, f"runner threads still running after the test: {running}"
    assert not left, f"windows left open after the test: {[type(w).__name__ for w in left]}"


@pytest.fixture
def window(qtbot):
    """The main window on a 160x120 picture, with test engines added, shown offscreen."""
    from inpaint_studio.core.document import Document
    from inpaint_studio.session.catalog import EngineCatalog
    from inpaint_studio.ui.main_window import MainWindow

    catalog = EngineCatalog()
    for cls in (ScriptedEngine, SlowEngine, FailingEngine, BuggyEngine, NeedsWeightsEngine):
        catalog.add(cls)
    win = MainWindow(catalog=catalog)
    win.autosaver.set_interval(0)
    win.engine_panel.fast_remove.setChecked(False)  # on for classical by default; its own tests turn it on
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    win.set_document(Document.from_image(photo()))
    QApplication.processEvents()
    yield win
    if win.document is not None:
        win.document.history.mark_clean()  # nothing to ask about
    win.close()
    QApplication.processEvents()
    win.deleteLater()
    QApplication.processEvents()
