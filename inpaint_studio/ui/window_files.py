"""The main window's file commands: open (dialog, recent list, drag and drop), save, export,
close with a question when work is unsaved, and recovery of autosaved work. A mixin of
:class:`MainWindow`."""

from __future__ import annotations

import logging
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
from . import files
from .autosave import RecoveryDialog

log = logging.getLogger(__name__)


SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "samples" / "coffee.png"


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

    def open_sample(self) -> bool:
        return self.open_path(SAMPLE, remember=False)

    def open_path(self, path: str | Path, remember: bool = True) -> bool:
        """Open a picture or project in place of the current document (asking to save first)."""
        path = Path(path)
        if not self.maybe_save():
            return False
        try:
            with busy_cursor():
                opened = files.open_document(path)
        except (ImageError, ProjectError, OSError) as err:
            self.show_error(str(err))
            if remember and not path.exists():
                self.settings.remove_recent(str(path.resolve()))
            return False
        self.set_document(opened.document, opened.project, opened.source)
        if remember:
            self.settings.add_recent(path)
            self.settings.set("files/last_dir", str(path.resolve().parent))
        self.banner.hide()
        self.statusBar().showMessage(f"Opened {path.name}", 3000)
        return True

    def save(self) -> bool:
        if self._doc is None:
            return False
        if self.project_path is None:
            return self.save_as_dialog()
        return self.save_to(self.project_path)

    def save_as_dialog(self) -> bool:
        if self._doc is None:
            return False
        base = self.project_path or (
            self.source_path.with_suffix(".isproj") if self.source_path else Path.home() / "untitled.isproj"
        )
        path, _ = QFileDialog.getSaveFileName(self, "Save project", str(base), files.PROJECT_FILTER)
        return bool(path) and self.save_to(path)

    def save_to(self, path: str | Path) -> bool:
        doc = self._doc
        if doc is None:
            return False
        try:
            with busy_cursor():
                saved = files.save_document(doc, path)
        except (ProjectError, OSError, ValueError) as err:
            self.show_error(f"Could not save {Path(path).name}: {err}")
            return False
        self.project_path = saved
        self.settings.add_recent(saved)
        self.autosaver.set_title(self.document_title, str(saved))
        self.autosaver.discard()
        self._update_title()
        self.statusBar().showMessage(f"Saved {saved.name}", 3000)
        return True

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
        start = Path(self.settings.get("files/export_dir", str(Path.home()))) / f"{stem}.png"
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export", str(start), ";;".join(files.EXPORT_FILTERS)
        )
        if path:
            self.export_to(files.with_suffix_for_filter(path, chosen), target)

    def export_layer_dialog(self) -> None:
        target = self.layers_panel.current_id() or (self._doc.active_layer_id if self._doc else None)
        if target is not None:
            self.export_dialog(target)

    def export_to(self, path: str | Path, target: str | None = None) -> bool:
        doc = self._doc
        if doc is None:
            return False
        try:
            with busy_cursor():
                saved = files.export(doc, path, target)
        except (ImageError, OSError, KeyError) as err:
            self.show_error(f"Could not export: {err}")
            return False
        self.settings.set("files/export_dir", str(Path(saved).resolve().parent))
        self.statusBar().showMessage(f"Exported {Path(saved).name}", 3000)
        return True

    def close_document(self) -> bool:
        if not self.maybe_save():
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

    def maybe_save(self) -> bool:
        """Whether it is fine to drop the current document (asks when it has unsaved work)."""
        doc = self._doc
        if doc is None or not doc.modified:
            return True
        answer = self.ask_unsaved()
        if answer == "save":
            return self.save()
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

    def recover(self, entry: RecoveryEntry) -> bool:
        if not self.maybe_save():
            return False
        try:
            with busy_cursor():
                doc = self.autosaver.store.recover(entry)
        except (ProjectError, OSError) as err:
            self.show_error(str(err))
            return False
        source = Path(entry.source) if entry.source else None
        project = source if source is not None and source.suffix == ".isproj" else None
        self.set_document(doc, project, None if project else source)
        self.autosaver.tick()  # take ownership of the autosave right away
        self.banner.show_message(f"Recovered {entry.title}. Save it to keep it.", "info")
        return True

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
