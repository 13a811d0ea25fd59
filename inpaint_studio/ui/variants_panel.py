"""The variants dock: thumbnails appear one by one as an engine yields Variant events.

Hovering a thumbnail shows that fill on the canvas in place; clicking keeps it shown; Accept
(or a double-click) commits it as a new result layer. When the engine offers a follow-up on a
variant (MAT's "More like this"), a button and the context menu run it; its variants join the
list (numbered 2.1, 2.2, ...) after the earlier ones. The fills stay browsable, accepted or not,
until the next plain Fill starts.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..engines.base import EngineError
from ..session.display import OverlayPixels
from ..session.jobs import FillJob, VariantFrame, short_title
from . import theme
from .canvas import Canvas
from .fill import FillController

THUMB = 96
INDEX_ROLE = Qt.ItemDataRole.UserRole + 1
JOB_ROLE = Qt.ItemDataRole.UserRole + 2
MORE_LABEL = "More like this"


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
        self.job: FillJob | None = None  # the latest run shown
        self.jobs: list[FillJob] = []  # every run shown: a fill and its follow-ups
        self._overlays: dict[tuple[int, int], OverlayPixels] = {}
        self._selected: tuple[int, int] | None = None  # (job id, variant index) kept on the canvas

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
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._on_context_menu)

        self.accept_button = QPushButton("Accept", self)
        theme.set_icon(self.accept_button, "mdi6.check")
        self.accept_button.setToolTip("Keep the selected variant as a new layer (or double-click it)")
        self.accept_button.clicked.connect(self.accept_selected)
        self.hide_button = QPushButton("Hide", self)
        theme.set_icon(self.hide_button, "mdi6.eye-off")
        self.hide_button.setToolTip("Stop showing the variant on the canvas")
        self.hide_button.clicked.connect(self.hide_preview)
        self.more_button = QPushButton(MORE_LABEL, self)
        theme.set_icon(self.more_button, "mdi6.dice-multiple-outline")
        self.more_button.clicked.connect(self.follow_up_selected)
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.more_button)
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
        if job.parent_id is None or all(j.id != job.parent_id for j in self.jobs):
            self.clear()  # a new fill starts a fresh list; a follow-up adds to it
        self.canvas.clear_overlay(self)
        self._selected = None  # show the follow-up's first variant when it comes
        self.jobs.append(job)
        self.job = job
        self._set_info()
        self._update_buttons()

    def clear(self) -> None:
        self.canvas.clear_overlay(self)
        self.list.clear()
        self._overlays.clear()
        self._selected = None
        self.job = None
        self.jobs = []
        self._set_info()
        self._update_buttons()

    def _on_variant(self, job: FillJob, frame: VariantFrame) -> None:
        if job not in self.jobs:
            return
        thumb = frame.thumb if frame.thumb is not None else frame.image
        round_ = self.jobs.index(job)
        label = f"{frame.index + 1}" if round_ == 0 else f"{round_ + 1}.{frame.index + 1}"
        item = QListWidgetItem(QIcon(rgb_pixmap(thumb)), label)
        item.setData(INDEX_ROLE, frame.index)
        item.setData(JOB_ROLE, job.id)
        item.setToolTip(f"Variant {label} · seed {frame.seed}")
        self.list.addItem(item)
        if self._selected is None:  # show the first one as soon as it exists
            self.list.setCurrentItem(item)
            self.list.scrollToItem(item)
            self.show_variant(frame.index, keep=True, job=job)
        self._set_info()
        self._update_buttons()

    def _on_job_finished(self, job: FillJob) -> None:
        if job in self.jobs:
            self._set_info()
            self._update_buttons()

    def _on_landed(self, job: FillJob, layer) -> None:
        if job in self.jobs:
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
        job, frame = self._item_frame(item)
        offer = frame.followup if frame is not None else None
        self.more_button.setText(offer.label if offer else MORE_LABEL)
        self.more_button.setToolTip(
            offer.tip or offer.label
            if offer
            else "Pick a variant of an engine that offers more like it (such as MAT)"
        )
        self.more_button.setEnabled(offer is not None and job is not None and job.image is not None)
        self.more_button.setVisible(any(f.followup is not None for j in self.jobs for f in j.variants))

    # ------------------------------------------------------------------ showing
    def _job(self, job_id: int | None) -> FillJob | None:
        return next((j for j in self.jobs if j.id == job_id), None)

    def _frame(self, index: int, job: FillJob | None = None) -> VariantFrame | None:
        job = job or self.job
        if job is None:
            return None
        return next((v for v in job.variants if v.index == index), None)

    def _item_frame(self, item: QListWidgetItem | None) -> tuple[FillJob | None, VariantFrame | None]:
        if item is None:
            return None, None
        job = self._job(item.data(JOB_ROLE))
        return job, self._frame(item.data(INDEX_ROLE), job) if job is not None else None

    def show_variant(self, index: int, keep: bool = False, job: FillJob | None = None) -> bool:
        """Show a variant on the canvas in place; ``keep``: it stays after the mouse leaves.
        ``job``: which run's variant (default: the latest)."""
        job = job or self.job
        frame = self._frame(index, job)
        if job is None or frame is None or job.document is not self.canvas.document:
            return False
        overlay = frame.display or self._overlays.get((job.id, index))
        if overlay is None:
            overlay = OverlayPixels(
                job.document.shape,
                job.crop,
                frame.image,
                job.mask_crop if frame.alpha is None else frame.alpha,
            )
            self._overlays[(job.id, index)] = overlay
        self.canvas.set_overlay(overlay, f"Variant {index + 1}", owner=self)
        if keep:
            self._selected = (job.id, index)
        self._update_buttons()
        return True

    def hide_preview(self) -> None:
        self._selected = None
        self.canvas.clear_overlay(self)
        self._update_buttons()

    def _on_hover(self, item: QListWidgetItem) -> None:
        self.show_variant(item.data(INDEX_ROLE), job=self._job(item.data(JOB_ROLE)))

    def _on_click(self, item: QListWidgetItem) -> None:
        self.show_variant(item.data(INDEX_ROLE), keep=True, job=self._job(item.data(JOB_ROLE)))

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
            job_id, index = self._selected
            self.show_variant(index, keep=True, job=self._job(job_id))
        else:
            self.canvas.clear_overlay(self)
            self._update_buttons()

    # ------------------------------------------------------------------ accepting
    def accept_selected(self):
        item = self.list.currentItem()
        if item is None or self.job is None:
            return None
        return self.accept(item.data(INDEX_ROLE), self._job(item.data(JOB_ROLE)))

    def accept(self, index: int, job: FillJob | None = None):
        """Commit variant ``index`` of ``job`` (default: the latest run) as a result layer."""
        job = job or self.job
        if job is None:
            return None
        try:
            return self.controller.land(job, index)
        except EngineError as err:
            self.error.emit(str(err))
            return None

    # ------------------------------------------------------------------ follow-ups
    def follow_up_selected(self) -> FillJob | None:
        """Run the selected variant's follow-up ("More like this"); its variants join the list."""
        job, frame = self._item_frame(self.list.currentItem())
        if job is None or frame is None or frame.followup is None:
            return None
        try:
            return self.controller.follow_up(job, frame.followup, key=("variant", frame.index))
        except EngineError as err:
            self.error.emit(str(err))
            return None

    def context_menu(self, item: QListWidgetItem) -> QMenu:
        """Accept, and the engine's follow-up, for one thumbnail."""
        self.list.setCurrentItem(item)
        menu = QMenu(self)
        menu.addAction("Accept as a layer", self.accept_selected)
        job, frame = self._item_frame(item)
        offer = frame.followup if frame is not None else None
        if offer is not None:
            action = menu.addAction(offer.label, self.follow_up_selected)
            action.setToolTip(offer.tip)
            action.setEnabled(job is not None and job.image is not None)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        return menu

    def _on_context_menu(self, pos: QPoint) -> None:
        item = self.list.itemAt(pos)
        if item is not None:
            self.context_menu(item).popup(self.list.viewport().mapToGlobal(pos))
