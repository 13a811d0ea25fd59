"""File work off the GUI thread: decoding a picture or project, encoding and writing a project
or an export, reading an autosave. The window hands over copies (a document snapshot) and gets
the outcome back on the GUI thread, so a big file never freezes it.

One operation at a time: two writes of one project would race, and a document opened while
the old one is still being saved would blur which one the save belongs to. A second request
while one runs is refused with a message; the window closes only after a running save ends.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from ..core.document import Document
from .runner import run_in_thread

log = logging.getLogger(__name__)


@dataclass
class FileOp:
    """One file operation and, once it has ended, its outcome."""

    kind: str  # "open" | "save" | "export" | "recover"
    path: Path | None
    text: str  # what the status bar shows while it runs, e.g. "Saving shelf.isproj…"
    status: str = "running"  # running | done | failed
    result: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "done"

    @property
    def finished(self) -> bool:
        return self.status != "running"


class FileOps(QObject):
    """Runs one :class:`FileOp` at a time on a background thread."""

    started = Signal(object)  # FileOp
    finished = Signal(object)  # FileOp, after its own handler ran
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.current: FileOp | None = None
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self.current is not None

    def start(
        self,
        op: FileOp,
        work: Callable[[], Any],
        done: Callable[[FileOp], None],
        expected: tuple[type[BaseException], ...] = (OSError, ValueError),
    ) -> FileOp | None:
        """Run ``work`` in the background, then ``done(op)`` on the GUI thread.

        Errors of the ``expected`` kinds become ``op.error`` as they are (they are written for
        people); anything else is logged and reported with its type. Returns None when busy.
        """
        if self.current is not None:
            return None
        self.current = op

        def finish(result: Any, error: BaseException | None) -> None:
            if error is None:
                op.status, op.result = "done", result
            else:
                op.status = "failed"
                if isinstance(error, expected):
                    op.error = str(error)
                else:
                    log.error("%s failed:\n%s", op.text, "".join(traceback.format_exception(error)))
                    op.error = f"{type(error).__name__}: {error}"
            self.current = None
            try:
                done(op)
            finally:
                self.busy_changed.emit(False)
                self.finished.emit(op)

        self.started.emit(op)
        self.busy_changed.emit(True)
        self._thread = run_in_thread(work, finish)
        return op

    def wait(self, timeout_s: float = 60.0) -> bool:
        """Block until the background work has ended (for shutdown); whether it did."""
        if self._thread is not None:
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        return True


class EditWatch:
    """Whether a document changed after a moment (e.g. while a copy of it is being saved)."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.changed = False
        doc.history.changed.connect(self._on_changed)

    def _on_changed(self) -> None:
        self.changed = True

    def stop(self) -> bool:
        self.doc.history.changed.disconnect(self._on_changed)
        return self.changed
