"""The variants dock: thumbnails appear one by one as an engine yields Variant events.

Hovering a thumbnail shows that fill on the canvas in place; clicking keeps it shown; Accept
(or a double-click) commits it as a new result layer. The fills stay browsable, accepted or
not, until the next run starts.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..engines.base import EngineError
from . import theme
from .canvas import Canvas
from .display import OverlayPixels
from .fill import FillController
from .jobs import FillJob, VariantFrame, short_title

THUMB = 96
INDEX_ROLE = Qt.ItemDataRole.UserRole + 1


def rgb_pixmap(rgb: np.ndarray, size: int = THUMB) -> QPixmap:
    """A thumbnail of an RGB crop, fitted in ``size`` x ``size``."""
    h, w = rgb.shape[:2]
    data = np.ascontiguousarray(rgb)
    img = QImage(data.data, w, h, data.strides[0], QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(
        img.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    )


class VariantsPanel(QWidget):
    error = Signal(str)

    def __init__(self, controller: FillController, canvas: Canvas, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.canvas = canvas
        self.job: FillJob | None = None
        self._overlays: dict[int, OverlayPixels] = {}
        self._selected: int | None = None

        self.info = QLabel(self)
        self.info.setWordWrap(True)
        self.list = QListWidget(self)
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setGridSize(QSize(THUMB + 14, THUMB + 26))
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setUniformItemSizes(True)
        self.list.setMouseTracking(True)
        self.list.setWordWrap(True)
        self.list.itemEntered.connect(self._on_hover)
        self.list.itemClicked.connect(self._on_click)
        self.list.itemDoubleClicked.connect(self._on_double_click)
        self.list.currentItemChanged.connect(lambda cur, prev: self._update_buttons())
        self.list.viewport().installEventFilter(self)

        self.accept_button = QPushButton("Accept", self)
        theme.set_icon(self.accept_button, "mdi6.check")
        self.accept_button.setToolTip("Keep the selected variant as a new layer (or double-click it)")
        self.accept_button.clicked.connect(self.accept_selected)
        self.hide_button = QPushButton("Hide", self)
        theme.set_icon(self.hide_button, "mdi6.eye-off")
        self.hide_button.setToolTip("Stop showing the variant on the canvas")
        self.hide_button.clicked.connect(self.hide_preview)
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.hide_button)
        buttons.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.info)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)

        controller.job_started.connect(self._on_job_started)
        controller.variant_added.connect(self._on_variant)
        controller.job_finished.connect(self._on_job_finished)
        controller.result_landed.connect(self._on_landed)
        self._set_info()
        self._update_buttons()

    # ------------------------------------------------------------------ controller events
    def _on_job_started(self, job: FillJob) -> None:
        self.clear()
        self.job = job
        self._set_info()

    def clear(self) -> None:
        self.canvas.clear_overlay(self)
        self.list.clear()
        self._overlays.clear()
        self._selected = None
        self.job = None
        self._set_info()
        self._update_buttons()

    def _on_variant(self, job: FillJob, frame: VariantFrame) -> None:
        if job is not self.job:
            return
        thumb = frame.thumb if frame.thumb is not None else frame.image
        item = QListWidgetItem(QIcon(rgb_pixmap(thumb)), f"{frame.index + 1}")
        item.setData(INDEX_ROLE, frame.index)
        item.setToolTip(f"Variant {frame.index + 1} · seed {frame.seed}")
        self.list.addItem(item)
        if self._selected is None:  # show the first one as soon as it exists
            self.list.setCurrentItem(item)
            self.show_variant(frame.index, keep=True)
        self._set_info()
        self._update_buttons()

    def _on_job_finished(self, job: FillJob) -> None:
        if job is self.job:
            self._set_info()
            self._update_buttons()

    def _on_landed(self, job: FillJob, layer) -> None:
        if job is self.job:
            self.canvas.clear_overlay(self)
            self._selected = None
            self._update_buttons()

    def _set_info(self) -> None:
        job = self.job
        n = self.list.count()
        if job is None:
            self.info.setText(
                "Engines that make several fills (such as MAT) show them here. Hover to preview one "
                "on the canvas, double-click to keep it."
            )
        elif not n:
            self.info.setText(
                "Waiting for variants…"
                if not job.finished
                else "This fill made a single result (see Layers)."
            )
        else:
            state = "" if job.finished else " (more coming)"
            self.info.setText(
                f"{n} variant{'s' if n != 1 else ''} from {short_title(job.engine_title)}{state}. "
                "Hover to compare, double-click or Accept to keep one."
            )

    def _update_buttons(self) -> None:
        item = self.list.currentItem()
        self.accept_button.setEnabled(item is not None and self.job is not None)
        self.hide_button.setEnabled(self.canvas.overlay_owner is self)

    # ------------------------------------------------------------------ showing
    def _frame(self, index: int) -> VariantFrame | None:
        if self.job is None:
            return None
        return next((v for v in self.job.variants if v.index == index), None)

    def show_variant(self, index: int, keep: bool = False) -> bool:
        """Show a variant on the canvas in place; ``keep``: it stays after the mouse leaves."""
        job, frame = self.job, self._frame(index)
        if job is None or frame is None or job.document is not self.canvas.document:
            return False
        overlay = frame.display or self._overlays.get(index)
        if overlay is None:
            overlay = OverlayPixels(job.document.shape, job.crop, frame.image, job.mask_crop)
            self._overlays[index] = overlay
        self.canvas.set_overlay(overlay, f"Variant {index + 1}", owner=self)
        if keep:
            self._selected = index
        self._update_buttons()
        return True

    def hide_preview(self) -> None:
        self._selected = None
        self.canvas.clear_overlay(self)
        self._update_buttons()

    def _on_hover(self, item: QListWidgetItem) -> None:
        self.show_variant(item.data(INDEX_ROLE))

    def _on_click(self, item: QListWidgetItem) -> None:
        self.show_variant(item.data(INDEX_ROLE), keep=True)

    def _on_double_click(self, item: QListWidgetItem) -> None:
        self.list.setCurrentItem(item)
        self.accept_selected()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.list.viewport() and event.type() == QEvent.Type.Leave:
            self._restore()
        return super().eventFilter(watched, event)

    def _restore(self) -> None:
        """After hovering: back to the clicked variant, or to the plain canvas."""
        if self._selected is not None:
            self.show_variant(self._selected, keep=True)
        else:
            self.canvas.clear_overlay(self)
            self._update_buttons()

    # ------------------------------------------------------------------ accepting
    def accept_selected(self):
        item = self.list.currentItem()
        if item is None or self.job is None:
            return None
        return self.accept(item.data(INDEX_ROLE))

    def accept(self, index: int):
        """Commit variant ``index`` as a result layer (one undo step)."""
        if self.job is None:
            return None
        try:
            return self.controller.land(self.job, index)
        except EngineError as err:
            self.error.emit(str(err))
            return None
