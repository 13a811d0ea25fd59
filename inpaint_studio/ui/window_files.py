"""The main window's file commands: open (dialog, recent list, drag and drop), save, export,
close with a question when work is unsaved, and recovery of autosaved work. A mixin of
:class:`MainWindow`.

Reading and writing files runs in the background (``file_ops.py``): the commands return the
started :class:`FileOp` (None when nothing started) and finish on the GUI thread when it ends.
Saving writes a snapshot; a change made while it is written keeps the document modified.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import (
    QDragEnterEvent,
    QDropEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QMessageBox,
)

from ..core.autosave import RecoveryEntry
from ..core.document import MASK
from ..core.imageio import ImageError
from ..core.project import ProjectError
from ..core.resources import resource
from ..session import files
from .autosave import RecoveryDialog, snapshot
from .file_ops import EditWatch, FileOp

log = logging.getLogger(__name__)


SAMPLE = resource("samples", "coffee.png")


@contextmanager
def busy_cursor():
    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        yield
    finally:
        QApplication.restoreOverrideCursor()


class FileCommands:
    """Open, save, export, close and recover documents (a mixin of MainWindow)."""

    def open_dialog(self) -> None:
        start = self.settings.get("files/last_dir", str(Path.home()))
        dialog = QFileDialog(self, "Open a picture or project", start, files.OPEN_FILTER)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(self.open_path)
        dialog.open()

    def open_sample(self) -> FileOp | None:
        return self.open_path(SAMPLE, remember=False)

    def _refuse_while_busy(self) -> bool:
        """One file operation at a time: say so (without a dialog) when one is running."""
        op = self.file_ops.current
        if op is None:
            return False
        self.show_error(
            f"{op.text.rstrip('…')} is still in progress: try again when it has finished.", "warning"
        )
        return True

    def open_path(self, path: str | Path, remember: bool = True) -> FileOp | None:
        """Open a picture or project in place of the current document (asking to save first).

        The file is decoded in the background; the document changes when that has finished.
        """
        path = Path(path)
        if self._refuse_while_busy() or not self.maybe_save(lambda: self.open_path(path, remember)):
            return None
        watch = EditWatch(self._doc) if self._doc is not None else None
        op = FileOp("open", path, f"Opening {path.name}…")
        return self.file_ops.start(
            op,
            lambda: files.open_document(path),
            lambda op: self._opened(op, remember, watch),
            (ImageError, ProjectError, OSError),
        )

    def _opened(self, op: FileOp, remember: bool, watch: EditWatch | None) -> None:
        path = op.path
        assert path is not None
        changed = watch.stop() if watch is not None else False
        if self._closing:
            return
        if not op.ok:
            self.show_error(op.error)
            if remember and not path.exists():
                self.settings.remove_recent(str(path.resolve()))
            return
        if changed and not self.maybe_save(lambda: self._set_opened(op, remember)):
            return  # the person edited while it loaded: their answer decides
        self._set_opened(op, remember)

    def _set_opened(self, op: FileOp, remember: bool) -> None:
        opened, path = op.result, op.path
        self.set_document(opened.document, opened.project, opened.source)
        if remember:
            self.settings.add_recent(path)
            self.settings.set("files/last_dir", str(path.resolve().parent))
        self.banner.hide()
        if opened.note:
            self.statusBar().showMessage(opened.note, 12000)
        else:
            self.statusBar().showMessage(f"Opened {path.name}", 3000)

    def save(self, then: Callable[[], object] | None = None) -> FileOp | None:
        """Save to the project file (asking where the first time); ``then`` runs after success."""
        if self._doc is None:
            return None
        if self.project_path is None:
            return self.save_as_dialog(then)
        return self.save_to(self.project_path, then)

    def save_as_dialog(self, then: Callable[[], object] | None = None) -> FileOp | None:
        if self._doc is None or self._refuse_while_busy():
            return None
        base = self.project_path or (
            self.source_path.with_suffix(".isproj") if self.source_path else Path.home() / "untitled.isproj"
        )
        path, _ = QFileDialog.getSaveFileName(self, "Save project", str(base), files.PROJECT_FILTER)
        return self.save_to(path, then) if path else None

    def save_to(self, path: str | Path, then: Callable[[], object] | None = None) -> FileOp | None:
        """Write the document as it is now to ``path`` in the background.

        It is marked saved when the write succeeds, unless it changed meanwhile; ``then`` runs
        after a successful save of everything (e.g. the open or close that asked for it).
        """
        doc = self._doc
        if doc is None or self._refuse_while_busy():
            return None
        target = files.project_path(path)
        copy = snapshot(doc)  # a memory copy; the encoding and writing happen off this thread
        watch = EditWatch(doc)
        op = FileOp("save", target, f"Saving {target.name}…")
        return self.file_ops.start(
            op,
            lambda: files.save_document(copy, target),
            lambda op: self._saved(op, doc, watch, then),
            (ProjectError, OSError, ValueError),
        )

    def _saved(self, op: FileOp, doc, watch: EditWatch, then: Callable[[], object] | None) -> None:
        changed = watch.stop()
        saved = op.path
        assert saved is not None
        if not op.ok:
            self.show_error(f"Could not save {saved.name}: {op.error}")
            return
        self.settings.add_recent(saved)
        if doc is not self._doc:
            return
        self.project_path = saved
        self.autosaver.set_title(self.document_title, str(saved))
        if changed:
            self.statusBar().showMessage(
                f"Saved {saved.name}; the changes made while it was saving are not in it yet", 8000
            )
            self._update_title()
            return
        doc.history.mark_clean()
        self.autosaver.discard()
        self._update_title()
        self.statusBar().showMessage(f"Saved {saved.name}", 3000)
        if then is not None:
            then()

    def export_dialog(self, target: str | None) -> None:
        doc = self._doc
        if doc is None:
            return
        stem = (self.project_path or self.source_path or Path("untitled")).stem
        if target == MASK:
            stem += "_mask"
        elif target is not None:
            stem += "_" + doc.layer(target).name.replace(" ", "_")
        else:
            stem += "_filled"
        start = self.export_folder() / f"{stem}.png"
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export", str(start), ";;".join(files.EXPORT_FILTERS)
        )
        if path:
            self.export_to(files.with_suffix_for_filter(path, chosen), target)

    def export_folder(self) -> Path:
        """Where Export starts: the photo's (or project's) folder, as Save does; for a picture
        without a file, the last export folder, else home."""
        path = self.source_path or self.project_path
        if path is not None and path.parent.is_dir():
            return path.parent
        return Path(self.settings.get("files/export_dir", str(Path.home())))

    def export_layer_dialog(self) -> None:
        target = self.layers_panel.current_id() or (self._doc.active_layer_id if self._doc else None)
        if target is not None:
            self.export_dialog(target)

    def export_to(self, path: str | Path, target: str | None = None) -> FileOp | None:
        """Write the composite, one layer or the mask as an image, in the background."""
        doc = self._doc
        if doc is None or self._refuse_while_busy():
            return None
        if target is not None and target != MASK:
            try:
                doc.layer(target)
            except KeyError as err:
                self.show_error(f"Could not export: {err}")
                return None
        copy = snapshot(doc)
        op = FileOp("export", Path(path), f"Exporting {Path(path).name}…")
        return self.file_ops.start(
            op, lambda: files.export(copy, path, target), self._exported, (ImageError, OSError, KeyError)
        )

    def _exported(self, op: FileOp) -> None:
        if not op.ok:
            self.show_error(f"Could not export: {op.error}")
            return
        saved = Path(op.result)
        self.settings.set("files/export_dir", str(saved.resolve().parent))
        self.statusBar().showMessage(f"Exported {saved.name}", 3000)

    def close_document(self) -> bool:
        if self._refuse_while_busy() or not self.maybe_save(self.close_document):
            return False
        self.set_document(None)
        return True

    def ask_unsaved(self) -> str:
        """'save', 'discard' or 'cancel' for a document with unsaved changes."""
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Unsaved changes")
        box.setText(f"Save the changes to {self.document_title}?")
        box.setInformativeText("Your changes will be lost if you don't save them.")
        box.setStandardButtons(
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel
        )
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        answer = box.exec()
        return {
            QMessageBox.StandardButton.Save: "save",
            QMessageBox.StandardButton.Discard: "discard",
        }.get(QMessageBox.StandardButton(answer), "cancel")

    def maybe_save(self, then: Callable[[], object] | None = None) -> bool:
        """Whether the current document may be dropped now (asks when it has unsaved work).

        When the person chooses Save, the save starts in the background and this returns
        False; ``then`` (typically the command that asked) runs again once the save succeeded.
        """
        doc = self._doc
        if doc is None or not doc.modified:
            return True
        answer = self.ask_unsaved()
        if answer == "save":
            self.save(then)
            return False
        return answer == "discard"

    # recovery ----------------------------------------------------------------------

    def offer_recovery(self) -> RecoveryDialog | None:
        try:
            entries = [
                e
                for e in self.autosaver.store.recoverable()
                if not self._doc or e.document_id != self._doc.id
            ]
        except OSError as err:
            log.warning("cannot look for autosaves: %s", err)
            return None
        if not entries:
            return None
        dialog = RecoveryDialog(entries, self)
        dialog.recover_requested.connect(self.recover)
        dialog.discard_requested.connect(lambda e: self.autosaver.store.discard(e.document_id))
        dialog.open()
        self._recovery_dialog = dialog
        return dialog

    def recover(self, entry: RecoveryEntry) -> FileOp | None:
        if self._refuse_while_busy() or not self.maybe_save(lambda: self.recover(entry)):
            return None
        op = FileOp("recover", entry.project, f"Recovering {entry.title}…")
        return self.file_ops.start(
            op,
            lambda: self.autosaver.store.recover(entry),
            lambda op: self._recovered(op, entry),
            (ProjectError, OSError),
        )

    def _recovered(self, op: FileOp, entry: RecoveryEntry) -> None:
        if self._closing:
            return
        if not op.ok:
            self.show_error(op.error)
            return
        doc = op.result
        source = Path(entry.source) if entry.source else None
        project = source if source is not None and source.suffix == ".isproj" else None
        self.set_document(doc, project, None if project else source)
        self.autosaver.tick()  # take ownership of the autosave right away
        self.banner.show_message(f"Recovered {entry.title}. Save it to keep it.", "info")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls()
        if any(u.isLocalFile() and files.can_open(u.toLocalFile()) for u in urls):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        for u in event.mimeData().urls():
            path = u.toLocalFile() if isinstance(u, QUrl) and u.isLocalFile() else ""
            if path and files.can_open(path):
                event.acceptProposedAction()
                # open after the drop finishes, so a question dialog does not block the drag
                QTimer.singleShot(0, lambda p=path: self.open_path(p))
                return
