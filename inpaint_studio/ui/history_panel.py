"""The undo history as a list (like QUndoView): the first row is the opened picture, each next
row one undoable step; undone steps are greyed; clicking a row goes back or forward to it."""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import QAbstractItemView, QApplication, QListView, QVBoxLayout, QWidget

from ..core.document import Document


class HistoryModel(QAbstractListModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._doc: Document | None = None

    def set_document(self, doc: Document | None) -> None:
        self.beginResetModel()
        if self._doc is not None:
            self._doc.history.changed.disconnect(self._on_changed)
        self._doc = doc
        if doc is not None:
            doc.history.changed.connect(self._on_changed)
        self.endResetModel()

    @property
    def document(self) -> Document | None:
        return self._doc

    def _on_changed(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        if parent.isValid() or self._doc is None:
            return 0
        return len(self._doc.history.labels) + 1

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        doc = self._doc
        if doc is None or not index.isValid():
            return None
        row = index.row()
        applied = row <= doc.history.index
        if role == Qt.ItemDataRole.DisplayRole:
            return "Opened" if row == 0 else doc.history.labels[row - 1]
        if role == Qt.ItemDataRole.ForegroundRole and not applied:
            return QApplication.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        if role == Qt.ItemDataRole.FontRole and not applied:
            f = QFont()
            f.setItalic(True)
            return f
        if role == Qt.ItemDataRole.ToolTipRole:
            return "Click to go back to this step" if applied else "Undone: click to redo up to here"
        return None


class HistoryPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = HistoryModel(self)
        self.view = QListView(self)
        self.view.setModel(self.model)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.clicked.connect(self._on_clicked)
        self.model.modelReset.connect(self._select_current)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.view)

    def set_document(self, doc: Document | None) -> None:
        self.model.set_document(doc)

    def _select_current(self) -> None:
        doc = self.model.document
        if doc is None:
            return
        ix = self.model.index(doc.history.index)
        self.view.setCurrentIndex(ix)
        self.view.scrollTo(ix)

    def _on_clicked(self, index: QModelIndex) -> None:
        doc = self.model.document
        if doc is None or not index.isValid():
            return
        self.jump_to(index.row())

    def jump_to(self, row: int) -> None:
        doc = self.model.document
        if doc is not None:
            doc.history.jump_to(doc, row)
