"""The Models dialog against a loopback server: download with progress, cancel and resume, remove,
manual-only entries, and the main window's Models… entry. No socket leaves the machine."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from loopback import LoopbackServer, guard_sockets
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from inpaint_studio.hub import store
from inpaint_studio.hub.catalogue import (
    Catalogue,
    CatalogueEntry,
    HubSource,
    ManualSource,
    RemoteFile,
    UrlSource,
)
from inpaint_studio.ui.models_dialog import ModelsDialog

DATA = os.urandom(400_000)
SMALL = os.urandom(30_000)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    guard_sockets(monkeypatch)


@pytest.fixture
def server():
    with LoopbackServer() as srv:
        srv.state.files["/big.pth"] = DATA
        srv.state.hub[("org/repo", "main", "small.bin")] = SMALL
        yield srv


def _catalogue(server) -> Catalogue:
    return Catalogue(
        [
            CatalogueEntry(
                id="toy-big",
                engine="toy",
                title="Toy checkpoint",
                files=(
                    RemoteFile(
                        "big.pth", UrlSource(server.url("/big.pth")), sha256=hashlib.sha256(DATA).hexdigest()
                    ),
                ),
                license="MIT",
                homepage="https://example.invalid",
                import_target="toy",
            ),
            CatalogueEntry(
                id="toy-hub",
                engine="toy",
                title="Toy checkpoint on the Hub",
                files=(RemoteFile("small.bin", HubSource("org/repo", "small.bin")),),
                license=None,
                homepage="https://example.invalid",
                import_target=None,
            ),
            CatalogueEntry(
                id="toy-manual",
                engine="other",
                title="Toy checkpoint shared in a browser folder",
                files=(RemoteFile("x.pkl", ManualSource("https://example.invalid/folder")),),
                license="research only",
                homepage="https://example.invalid",
                import_target="other",
            ),
        ]
    )


def _importer(target, source, dest):
    dest.mkdir(parents=True)
    (dest / "config.json").write_text(json.dumps({"engine": target}))
    (dest / "model.safetensors").write_bytes(source.read_bytes()[:100])
    return dest


@pytest.fixture
def dialog(qtbot, server):
    dlg = ModelsDialog(_catalogue(server), importer=_importer, endpoint=server.base, chunk_size=4096)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    yield dlg
    dlg.cancel_download()
    if dlg._active is not None:
        qtbot.waitUntil(lambda: dlg._active is None or not dlg._alive, timeout=10_000)
    dlg.close()


def _status_of(dlg: ModelsDialog, entry_id: str) -> str:
    dlg.select(entry_id)
    return dlg.tree.currentItem().text(5)


def test_download_shows_progress_imports_and_stays_responsive(qtbot, dialog, server):
    server.state.delay_per_kib = 0.0015  # about 0.6 s for the file: long enough to see progress
    values, ticks = [], []
    dialog.progress.valueChanged.connect(values.append)
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    dialog.select("toy-big")
    assert dialog.download_btn.isEnabled() and not dialog.cancel_btn.isEnabled()
    with qtbot.waitSignal(dialog.download_finished, timeout=15_000) as blocker:
        qtbot.mouseClick(dialog.download_btn, Qt.MouseButton.LeftButton)
        assert dialog.cancel_btn.isEnabled() and not dialog.download_btn.isEnabled()
    timer.stop()
    assert blocker.args == ["toy-big", "done"]
    assert any(0 < v < 1000 for v in values) and values[-1] == 1000  # intermediate progress was shown
    assert len(ticks) >= 5  # the event loop kept running during the download (a blocked one gives 0-1)
    assert "installed toy-big as toy/toy-big" in dialog.status.text()
    assert _status_of(dialog, "toy-big") == "installed"
    assert "model.safetensors" in dialog.details.text()
    digest = hashlib.sha256(DATA[:100]).hexdigest()  # what the fake importer wrote
    qtbot.waitUntil(lambda: f"sha256 {digest}" in dialog.details.text(), timeout=10_000)  # hashed off-thread


def test_cancel_mid_way_then_download_resumes(qtbot, dialog, server):
    server.state.delay_per_kib = 0.004
    dialog.select("toy-big")
    with qtbot.waitSignal(dialog.download_finished, timeout=15_000) as blocker:
        qtbot.mouseClick(dialog.download_btn, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: 50 < dialog.progress.value() < 900, timeout=10_000)
        qtbot.mouseClick(dialog.cancel_btn, Qt.MouseButton.LeftButton)
    assert blocker.args == ["toy-big", "cancelled"]
    assert "resume" in dialog.status.text()
    part = store.entry_download_dir("toy-big") / "big.pth.part"
    kept = part.stat().st_size
    assert 0 < kept < len(DATA)
    assert _status_of(dialog, "toy-big") == "partly downloaded"
    server.state.delay_per_kib = 0.0
    with qtbot.waitSignal(dialog.download_finished, timeout=15_000) as blocker:
        qtbot.mouseClick(dialog.download_btn, Qt.MouseButton.LeftButton)
    assert blocker.args == ["toy-big", "done"]
    assert server.state.requests[-1][2] == f"bytes={kept}-"


def test_closing_the_dialog_stops_the_download_and_keeps_the_part(qtbot, dialog, server):
    server.state.delay_per_kib = 0.004
    dialog.select("toy-big")
    dialog.download_selected()
    qtbot.waitUntil(lambda: dialog.progress.value() > 50, timeout=10_000)
    dialog.close()
    dialog._thread.join(10)
    assert not dialog._thread.is_alive()
    folder = store.entry_download_dir("toy-big")
    assert (folder / "big.pth.part").is_file() and not (folder / "big.pth").exists()


def test_hub_entry_without_an_import_step_is_kept_as_a_download(qtbot, dialog):
    dialog.select("toy-hub")
    with qtbot.waitSignal(dialog.download_finished, timeout=15_000) as blocker:
        dialog.download_selected()
    assert blocker.args == ["toy-hub", "done"]
    assert _status_of(dialog, "toy-hub") == "downloaded, not imported"
    assert "sha256 (as the Hub reports it)" in dialog.status.text()


def test_failed_download_says_why(qtbot, dialog, server):
    del server.state.files["/big.pth"]
    dialog.select("toy-big")
    with qtbot.waitSignal(dialog.download_finished, timeout=15_000) as blocker:
        dialog.download_selected()
    assert blocker.args == ["toy-big", "failed"]
    assert "HTTP 404" in dialog.status.text()


def test_manual_entries_cannot_be_downloaded_and_say_how(dialog):
    dialog.select("toy-manual")
    assert not dialog.download_btn.isEnabled()
    assert "models import other FILE" in dialog.details.text()
    assert dialog.tree.currentItem().text(5) == "manual download"


def test_a_manual_entry_is_imported_from_a_file_the_person_chose(qtbot, dialog, tmp_path):
    src = tmp_path / "x.pkl"
    src.write_bytes(SMALL)
    dialog.select("toy-manual")
    assert dialog.import_btn.isEnabled()
    dialog.choose_file = lambda entry: src
    with qtbot.waitSignal(dialog.download_finished, timeout=15_000) as blocker:
        qtbot.mouseClick(dialog.import_btn, Qt.MouseButton.LeftButton)
    assert blocker.args == ["toy-manual", "done"]
    assert _status_of(dialog, "toy-manual") == "installed"
    [item] = store.list_installed("other")
    assert item.catalogue_id == "toy-manual"


def test_remove_asks_and_deletes(qtbot, dialog):
    dialog.select("toy-big")
    with qtbot.waitSignal(dialog.download_finished, timeout=15_000):
        dialog.download_selected()
    dialog.select("toy-big")
    asked = []
    dialog.confirm = lambda q: asked.append(q) or False
    dialog.remove_selected()
    assert asked and store.list_installed("toy")  # said no: nothing removed
    dialog.confirm = lambda q: True
    dialog.select("toy-big")
    dialog.remove_selected()
    assert store.list_installed("toy") == []
    assert _status_of(dialog, "toy-big") == "not installed"


def test_main_window_has_a_models_entry(qtbot, window):
    action = window.act_models
    assert action.text() == "&Models…"
    menus = [a.menu() for a in window.menuBar().actions() if a.menu() is not None]
    assert any(action in m.actions() for m in menus)
    action.trigger()
    QApplication.processEvents()
    dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, ModelsDialog) and w.isVisible()]
    assert len(dialogs) == 1
    assert dialogs[0].tree.topLevelItemCount() >= 5  # the built-in catalogue, per engine
    dialogs[0].close()
