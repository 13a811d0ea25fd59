"""The layer stack as Qt sees it: a list model adapting the Document (napari's pattern), and
the dock's widget. The model never changes pixels itself; it calls the document's undoable
operations and resets itself when the document says its layers changed.

Row 0 is the fill mask (shown on top, like a selection); rows 1.. are the layers, top first.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.document import MASK, Document
from ..core.geometry import Rect

MIME = "application/x-inpaint-studio-layer"
THUMB = 40
ID_ROLE = Qt.ItemDataRole.UserRole + 1
KIND_ROLE = Qt.ItemDataRole.UserRole + 2
OPACITY_ROLE = Qt.ItemDataRole.UserRole + 3

KIND_TITLES = {"image": "Image layer", "paint": "Paint layer", "result": "Fill result", MASK: "Fill mask"}


def thumbnail(pixels: np.ndarray, size: int = THUMB, tint: tuple[int, int, int] | None = None) -> QPixmap:
    """A small preview over a checkerboard (subsampled first: cheap even for 8000x6000).

    A mask (HxW) with ``tint`` is shown as that colour, as opaque as the mask."""
    h, w = pixels.shape[:2]
    step = max(1, max(h, w) // (size * 4))
    small = pixels[::step, ::step]
    if small.ndim == 2 and tint is not None:
        rgba = np.empty((*small.shape, 4), np.uint8)
        rgba[..., :3] = tint
        rgba[..., 3] = small
        small = rgba
    sh, sw = small.shape[:2]
    f = size / max(sh, sw)
    tw, th = max(1, round(sw * f)), max(1, round(sh * f))
    small = np.ascontiguousarray(cv2.resize(small, (tw, th), interpolation=cv2.INTER_AREA))
    if small.ndim == 2:
        img = QImage(small.data, tw, th, small.strides[0], QImage.Format.Format_Grayscale8).copy()
    else:
        img = QImage(small.data, tw, th, small.strides[0], QImage.Format.Format_RGBA8888).copy()
    pm = QPixmap(size, size)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    x0, y0 = (size - tw) // 2, (size - th) // 2
    cell = 5
    for yy in range(0, th, cell):
        for xx in range(0, tw, cell):
            c = QColor(204, 204, 204) if (xx // cell + yy // cell) % 2 == 0 else QColor(153, 153, 153)
            p.fillRect(x0 + xx, y0 + yy, min(cell, tw - xx), min(cell, th - yy), c)
    p.drawImage(x0, y0, img)
    p.setPen(QColor(0, 0, 0, 90))
    p.drawRect(x0, y0, tw - 1, th - 1)
    p.end()
    return pm


class LayersModel(QAbstractListModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._doc: Document | None = None
        self._thumbs: dict[str, QPixmap] = {}
        self._stale: set[str] = set()
        self._timer = QTimer(self, singleShot=True, interval=300)
        self._timer.timeout.connect(self._refresh_thumbnails)

    # ------------------------------------------------------------------ binding
    @property
    def document(self) -> Document | None:
        return self._doc

    def set_document(self, doc: Document | None) -> None:
        self.beginResetModel()
        if self._doc is not None:
            self._doc.layers_changed.disconnect(self._on_layers)
            self._doc.pixels_changed.disconnect(self._on_pixels)
            self._doc.mask_style_changed.disconnect(self._on_mask_style)
        self._doc = doc
        self._thumbs.clear()
        self._stale.clear()
        if doc is not None:
            doc.layers_changed.connect(self._on_layers)
            doc.pixels_changed.connect(self._on_pixels)
            doc.mask_style_changed.connect(self._on_mask_style)
        self.endResetModel()

    def _on_layers(self) -> None:
        self.beginResetModel()
        ids = {ly.id for ly in self._doc.layers} if self._doc else set()
        for lid in list(self._thumbs):
            if lid not in ids and lid != MASK:
                del self._thumbs[lid]
        self.endResetModel()

    def _on_pixels(self, target: str, rect: Rect) -> None:
        self._stale.add(target)
        if not self._timer.isActive():
            self._timer.start()

    def _on_mask_style(self) -> None:
        self._thumbs.pop(MASK, None)
        if self.rowCount():
            ix = self.index(0)
            self.dataChanged.emit(ix, ix)

    def _refresh_thumbnails(self) -> None:
        stale, self._stale = self._stale, set()
        for target in stale:
            self._thumbs.pop(target, None)
            row = self.row_of(target)
            if row is not None:
                ix = self.index(row)
                self.dataChanged.emit(ix, ix, [Qt.ItemDataRole.DecorationRole])

    # ------------------------------------------------------------------ rows
    def layer_at(self, row: int):
        doc = self._doc
        if doc is None or row < 1 or row > len(doc.layers):
            return None
        return doc.layers[len(doc.layers) - row]

    def id_at(self, row: int) -> str | None:
        if row == 0 and self._doc is not None:
            return MASK
        ly = self.layer_at(row)
        return ly.id if ly is not None else None

    def row_of(self, target: str | None) -> int | None:
        doc = self._doc
        if doc is None or target is None:
            return None
        if target == MASK:
            return 0
        try:
            return len(doc.layers) - doc.index_of(target)
        except KeyError:
            return None

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid() or self._doc is None:
            return 0
        return len(self._doc.layers) + 1

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        doc = self._doc
        if doc is None or not index.isValid():
            return None
        row = index.row()
        if row == 0:
            style = doc.mask_style
            if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
                return "Mask"
            if role == Qt.ItemDataRole.CheckStateRole:
                return Qt.CheckState.Checked if style.visible else Qt.CheckState.Unchecked
            if role == Qt.ItemDataRole.DecorationRole:
                return self._thumb(MASK)
            if role == Qt.ItemDataRole.ToolTipRole:
                return "The area to fill (paint it with the mask brush, lasso or rectangle)"
            if role == ID_ROLE:
                return MASK
            if role == KIND_ROLE:
                return MASK
            if role == OPACITY_ROLE:
                return style.opacity
            return None
        ly = self.layer_at(row)
        if ly is None:
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return ly.name
        if role == Qt.ItemDataRole.CheckStateRole:
            return Qt.CheckState.Checked if ly.visible else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.DecorationRole:
            return self._thumb(ly.id)
        if role == Qt.ItemDataRole.ToolTipRole:
            extra = f" · opacity {round(ly.opacity * 100)} %" if ly.opacity < 1 else ""
            engine = f" · {ly.meta['engine']}" if ly.meta.get("engine") else ""
            return f"{KIND_TITLES.get(ly.kind, ly.kind)}{engine}{extra}"
        if role == ID_ROLE:
            return ly.id
        if role == KIND_ROLE:
            return ly.kind
        if role == OPACITY_ROLE:
            return ly.opacity
        if role == Qt.ItemDataRole.FontRole and not ly.visible:
            from PySide6.QtGui import QFont

            f = QFont()
            f.setItalic(True)
            return f
        return None

    def _thumb(self, target: str) -> QPixmap | None:
        pm = self._thumbs.get(target)
        if pm is None and self._doc is not None:
            try:
                tint = self._doc.mask_style.color if target == MASK else None
                pm = thumbnail(self._doc.pixels(target), tint=tint)
            except KeyError:
                return None
            self._thumbs[target] = pm
        return pm

    def setData(self, index, value, role: int = Qt.ItemDataRole.EditRole) -> bool:
        doc = self._doc
        if doc is None or not index.isValid():
            return False
        row = index.row()
        if role == Qt.ItemDataRole.CheckStateRole:
            visible = Qt.CheckState(value) == Qt.CheckState.Checked
            if row == 0:
                doc.set_mask_style(visible=visible)
                self.dataChanged.emit(index, index)
            else:
                doc.set_layer_props(self.layer_at(row).id, visible=visible)
            return True
        if role == Qt.ItemDataRole.EditRole and row > 0:
            name = str(value).strip()
            if name:
                doc.set_layer_props(self.layer_at(row).id, name=name)
            return True
        return False

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled
        if index.row() == 0:
            return base
        return base | Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsDragEnabled

    # ------------------------------------------------------------------ drag to reorder
    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [MIME]

    def mimeData(self, indexes) -> QMimeData:
        data = QMimeData()
        ids = [self.id_at(ix.row()) for ix in indexes if ix.isValid() and ix.row() > 0]
        if ids:
            data.setData(MIME, QByteArray(ids[0].encode()))
        return data

    def canDropMimeData(self, data, action, row, column, parent) -> bool:
        return data.hasFormat(MIME)

    def dropMimeData(self, data: QMimeData, action, row: int, column: int, parent) -> bool:
        doc = self._doc
        if doc is None or not data.hasFormat(MIME):
            return False
        layer_id = bytes(data.data(MIME).data()).decode()
        source = self.row_of(layer_id)
        if source is None or source == 0:
            return False
        if row < 0:  # dropped onto an item: take its place
            row = parent.row() if parent.isValid() else self.rowCount()
        self.move_to_row(layer_id, row)
        return False  # the document moved it; the view must not remove the source row

    def move_to_row(self, layer_id: str, row: int) -> None:
        """Move a layer so it is shown before view row ``row`` (as a drop between rows does)."""
        doc = self._doc
        if doc is None:
            return
        n = len(doc.layers)
        source = self.row_of(layer_id)
        if source is None:
            return
        row = max(1, row)
        final = row if row <= source else row - 1
        final = max(1, min(n, final))
        doc.move_layer(layer_id, n - final)

    def removeRows(self, row: int, count: int, parent=QModelIndex()) -> bool:  # noqa: B008
        return False  # rows go away only through the document


class LayersPanel(QWidget):
    """The layers dock: the list, an opacity slider, and buttons for the layer actions."""

    current_changed = Signal(object)  # layer id or MASK

    def __init__(self, actions: list[QAction] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = LayersModel(self)
        self.view = QListView(self)
        self.view.setModel(self.model)
        self.view.setIconSize(QSize(THUMB, THUMB))
        self.view.setUniformItemSizes(True)
        self.view.setSpacing(1)
        self.view.setDragEnabled(True)
        self.view.setAcceptDrops(True)
        self.view.setDropIndicatorShown(True)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.view.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        self.view.selectionModel().currentChanged.connect(self._on_current)
        self.model.modelReset.connect(self._sync_selection)

        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setRange(0, 100)
        self.opacity.setToolTip("Opacity of the selected layer (or of the mask tint)")
        self.opacity.valueChanged.connect(self._on_opacity)
        self.opacity_label = QLabel("100 %", self)
        self.opacity_label.setMinimumWidth(44)
        self.mask_color = QToolButton(self)
        self.mask_color.setToolTip("Mask tint colour")
        self.mask_color.clicked.connect(self._pick_mask_color)

        row = QHBoxLayout()
        row.addWidget(QLabel("Opacity", self))
        row.addWidget(self.opacity, 1)
        row.addWidget(self.opacity_label)
        row.addWidget(self.mask_color)

        buttons = QHBoxLayout()
        buttons.setSpacing(2)
        for action in actions or []:
            b = QToolButton(self)
            b.setDefaultAction(action)
            b.setAutoRaise(True)
            buttons.addWidget(b)
        buttons.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.view, 1)
        layout.addLayout(row)
        layout.addLayout(buttons)
        self._syncing = False
        self._update_controls()

    @property
    def document(self) -> Document | None:
        return self.model.document

    def set_document(self, doc: Document | None) -> None:
        if self.document is not None:
            self.document.active_layer_changed.disconnect(self._on_active)
            self.document.layers_changed.disconnect(self._update_controls)
            self.document.mask_style_changed.disconnect(self._update_controls)
        self.model.set_document(doc)
        if doc is not None:
            doc.active_layer_changed.connect(self._on_active)
            doc.layers_changed.connect(self._update_controls)
            doc.mask_style_changed.connect(self._update_controls)
        self._sync_selection()

    def current_id(self) -> str | None:
        ix = self.view.currentIndex()
        return self.model.id_at(ix.row()) if ix.isValid() else None

    def select(self, target: str | None) -> None:
        row = self.model.row_of(target)
        if row is not None:
            self.view.setCurrentIndex(self.model.index(row))

    def _sync_selection(self) -> None:
        doc = self.document
        self._syncing = True
        try:
            if doc is not None:
                row = self.model.row_of(doc.active_layer_id)
                if row is not None:
                    self.view.setCurrentIndex(self.model.index(row))
        finally:
            self._syncing = False
        self._update_controls()

    def _on_active(self, layer_id) -> None:
        if self.current_id() not in (MASK, layer_id):
            self._sync_selection()

    def _on_current(self, current: QModelIndex, previous: QModelIndex) -> None:
        target = self.model.id_at(current.row()) if current.isValid() else None
        doc = self.document
        if doc is not None and target not in (None, MASK) and not self._syncing:
            doc.set_active_layer(target)
        self._update_controls()
        self.current_changed.emit(target)

    def _update_controls(self) -> None:
        doc = self.document
        target = self.current_id()
        self._syncing = True
        try:
            if doc is None or target is None:
                self.opacity.setEnabled(False)
            else:
                self.opacity.setEnabled(True)
                value = doc.mask_style.opacity if target == MASK else doc.layer(target).opacity
                self.opacity.setValue(round(value * 100))
                self.opacity_label.setText(f"{round(value * 100)} %")
        except KeyError:
            self.opacity.setEnabled(False)
        finally:
            self._syncing = False
        color = QColor(*doc.mask_style.color) if doc is not None else QColor(255, 40, 80)
        pm = QPixmap(16, 16)
        pm.fill(color)
        from PySide6.QtGui import QIcon

        self.mask_color.setIcon(QIcon(pm))
        self.mask_color.setEnabled(doc is not None)

    def _on_opacity(self, value: int) -> None:
        self.opacity_label.setText(f"{value} %")
        doc = self.document
        target = self.current_id()
        if self._syncing or doc is None or target is None:
            return
        if target == MASK:
            doc.set_mask_style(opacity=value / 100)
        else:
            doc.set_layer_props(target, opacity=value / 100)

    def _pick_mask_color(self) -> None:
        doc = self.document
        if doc is None:
            return
        dialog = QColorDialog(QColor(*doc.mask_style.color), self)
        dialog.setWindowTitle("Mask colour")
        dialog.colorSelected.connect(
            lambda c: (
                doc.set_mask_style(color=(c.red(), c.green(), c.blue())) if self.document is doc else None
            )
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
