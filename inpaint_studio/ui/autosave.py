"""Autosave on a timer, off the GUI thread, and the recovery offer after a crash.

Every ``interval`` seconds, if the document changed since the last autosave, its layers are
copied (fast, on the GUI thread) and the copy is written by a background thread, so a big
picture never freezes the window. A clean close removes the autosave; at the next start,
autosaves whose process is gone are offered for recovery.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.autosave import AutosaveStore, RecoveryEntry
from ..core.document import Document
from ..core.layers import Layer
from .runner import run_in_thread

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 60


def snapshot(doc: Document) -> Document:
    """An independent copy of the document's pixels and properties (not its history)."""
    snap = Document(doc.width, doc.height)
    snap.id = doc.id
    snap.meta = copy.deepcopy(doc.meta)
    snap.mask = doc.mask.copy()
    snap.mask_style = dataclasses.replace(doc.mask_style)
    for ly in doc.layers:
        snap.add_layer(
            Layer(
                ly.name,
                ly.kind,
                ly.pixels.copy(),
                ly.visible,
                ly.opacity,
                id=ly.id,
                meta=copy.deepcopy(ly.meta),
            )
        )
    if doc.active_layer_id is not None:
        snap.set_active_layer(doc.active_layer_id)
    snap.history.clear()
    return snap


class Autosaver(QObject):
    saved = Signal(str)
    failed = Signal(str)

    def __init__(
        self, store: AutosaveStore | None = None, interval_s: int = DEFAULT_INTERVAL_S, parent=None
    ) -> None:
        super().__init__(parent)
        self.store = store or AutosaveStore()
        self._doc: Document | None = None
        self._title = "Untitled"
        self._source: str | None = None
        self._dirty = False
        self._thread: threading.Thread | None = None
        self._has_file = False
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.tick)
        self.set_interval(interval_s)

    def set_interval(self, seconds: int) -> None:
        if seconds > 0:
            self.timer.start(int(seconds * 1000))
        else:
            self.timer.stop()

    def set_document(self, doc: Document | None, title: str = "Untitled", source: str | None = None) -> None:
        if self._doc is not None:
            self._doc.history.changed.disconnect(self._on_changed)
        self._doc = doc
        self._title, self._source = title, source
        self._dirty = doc is not None and doc.modified
        self._has_file = False
        if doc is not None:
            doc.history.changed.connect(self._on_changed)

    def set_title(self, title: str, source: str | None = None) -> None:
        self._title, self._source = title, source

    def _on_changed(self) -> None:
        self._dirty = True

    @property
    def saving(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def tick(self) -> None:
        """Autosave now if there is unsaved work (called by the timer)."""
        doc = self._doc
        if doc is None or self.saving:
            return
        if not doc.modified:
            if self._has_file:  # saved by the person: the autosave is no longer needed
                self.store.discard(doc.id)
                self._has_file = False
            return
        if not self._dirty:
            return
        self._dirty = False
        snap = snapshot(doc)
        title, source = self._title, self._source

        def done(path, error) -> None:
            if error is not None:
                self._dirty = True
                log.warning("autosave failed: %s", error)
                self.failed.emit(f"Autosave failed: {error}")
            else:
                self._has_file = True
                self.saved.emit(str(path))

        self._thread = run_in_thread(lambda: self.store.save(snap, title, source), done)

    def wait(self, timeout_s: float = 30.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def flush(self) -> None:
        """Write the unsaved work's autosave now and wait for it (the app is about to end)."""
        self.wait()
        self.tick()
        self.wait()

    def discard(self) -> None:
        """The work is saved or deliberately thrown away: remove its autosave."""
        self.wait()
        if self._doc is not None:
            self.store.discard(self._doc.id)
            self._has_file = False

    def shutdown(self) -> None:
        self.timer.stop()
        self.wait()


class RecoveryDialog(QDialog):
    """Offers the autosaves of crashed sessions: recover one, discard them, or decide later."""

    recover_requested = Signal(object)  # RecoveryEntry
    discard_requested = Signal(object)

    def __init__(self, entries: list[RecoveryEntry], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Recover unsaved work")
        self.entries = entries
        label = QLabel(
            "inpaint-studio did not close properly last time. This work was autosaved and can be recovered:",
            self,
        )
        label.setWordWrap(True)
        self.list = QListWidget(self)
        for e in entries:
            item = QListWidgetItem(e.describe())
            item.setToolTip(e.source or str(e.project))
            self.list.addItem(item)
        self.list.setCurrentRow(0)
        self.list.itemDoubleClicked.connect(lambda _: self._recover())
        buttons = QDialogButtonBox(self)
        self.recover_button = QPushButton("Recover", self)
        self.recover_button.setDefault(True)
        self.discard_button = QPushButton("Discard", self)
        self.later_button = QPushButton("Later", self)
        buttons.addButton(self.recover_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.discard_button, QDialogButtonBox.ButtonRole.DestructiveRole)
        buttons.addButton(self.later_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.recover_button.clicked.connect(self._recover)
        self.discard_button.clicked.connect(self._discard)
        self.later_button.clicked.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(self.list)
        layout.addWidget(buttons)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def _current(self) -> RecoveryEntry | None:
        row = self.list.currentRow()
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def _recover(self) -> None:
        entry = self._current()
        if entry is not None:
            self.recover_requested.emit(entry)
        self.accept()

    def _discard(self) -> None:
        entry = self._current()
        if entry is not None:
            self.discard_requested.emit(entry)
            row = self.list.currentRow()
            self.list.takeItem(row)
            del self.entries[row]
        if not self.entries:
            self.accept()
