"""The Fills dock: the history of fills as a strip of thumbnails, grouped per fill.

Every fill's results stay here until the person presses Clear (or opens another picture): a new
fill adds a group on top and never throws away the earlier ones. A group's header names the
engine, seed and settings; its thumbnails appear one by one as the engine yields them, and a
follow-up ("More like this") adds its variants to the group it came from. Each result has one
name (``3.2``: fill 3, second result; see ``session/fill_history.py``) on its thumbnail, the
canvas badge, the tooltip, and the layer it becomes.

Hovering a thumbnail shows that fill on the canvas in place; clicking keeps it shown; the
check button on the hovered thumbnail, a double-click or Accept commits it as a new result
layer, so re-applying any earlier result is one click.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QFont, QIcon, QImage, QPalette, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..engines.base import EngineError
from ..session.display import OverlayPixels
from ..session.fill_history import RESULT, FillEntry, FillGroup, FillHistory
from ..session.jobs import FillJob, VariantFrame, short_title, thumbnail
from . import theme
from .canvas import Canvas
from .fill import FillController

THUMB = 96
HEADER_HEIGHT = 22
MIN_STRIP_HEIGHT = THUMB + HEADER_HEIGHT + 48  # one header and one full row of thumbnails
INDEX_ROLE = Qt.ItemDataRole.UserRole + 1
JOB_ROLE = Qt.ItemDataRole.UserRole + 2
GROUP_ROLE = Qt.ItemDataRole.UserRole + 3  # set on group headers only
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
        self.history = FillHistory()
        self.job: FillJob | None = None  # the latest run
        self._overlays: dict[tuple[int, int], OverlayPixels] = {}
        self._selected: tuple[int, int] | None = None  # (job id, index) kept on the canvas
        self._jobs: dict[int, FillJob] = {}

        self.info = QLabel(self)
        self.info.setWordWrap(True)
        self.list = QListWidget(self)
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setFlow(QListView.Flow.LeftToRight)
        self.list.setWrapping(True)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setSpacing(4)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setMouseTracking(True)
        self.list.setWordWrap(True)
        self.list.setMinimumHeight(MIN_STRIP_HEIGHT)
        self.list.itemEntered.connect(self._on_hover)
        self.list.itemClicked.connect(self._on_click)
        self.list.itemDoubleClicked.connect(self._on_double_click)
        self.list.currentItemChanged.connect(lambda cur, prev: self._update_buttons())
        self.list.viewport().installEventFilter(self)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._on_context_menu)
        # the one-click apply button, laid over the hovered thumbnail
        self.apply_button = QToolButton(self.list.viewport())
        theme.set_icon(self.apply_button, "mdi6.check-bold")
        self.apply_button.setToolTip("Apply this fill as a new layer")
        self.apply_button.setAutoRaise(False)
        self.apply_button.setFixedSize(24, 24)
        self.apply_button.hide()
        self.apply_button.clicked.connect(self._apply_hovered)
        self._hovered: QListWidgetItem | None = None

        self.accept_button = QPushButton("Accept", self)
        theme.set_icon(self.accept_button, "mdi6.check")
        self.accept_button.setToolTip("Keep the selected fill as a new layer (or double-click it)")
        self.accept_button.clicked.connect(self.accept_selected)
        self.hide_button = QPushButton("Hide", self)
        theme.set_icon(self.hide_button, "mdi6.eye-off")
        self.hide_button.setToolTip("Stop showing the fill on the canvas")
        self.hide_button.clicked.connect(self.hide_preview)
        self.more_button = QPushButton(MORE_LABEL, self)
        theme.set_icon(self.more_button, "mdi6.dice-multiple-outline")
        self.more_button.clicked.connect(self.follow_up_selected)
        self.clear_button = QPushButton("Clear", self)
        theme.set_icon(self.clear_button, "mdi6.delete-sweep-outline")
        self.clear_button.setToolTip("Forget every fill listed here (layers already made stay)")
        self.clear_button.clicked.connect(self.clear)
        buttons = QHBoxLayout()
        for b in (self.accept_button, self.more_button, self.hide_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.clear_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.info)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)

        controller.namer = self._layer_name
        controller.job_started.connect(self._on_job_started)
        controller.variant_added.connect(self._on_variant)
        controller.job_finished.connect(self._on_job_finished)
        controller.result_landed.connect(self._on_landed)
        self._set_info()
        self._update_buttons()

    # ------------------------------------------------------------------ what is listed
    @property
    def jobs(self) -> list[FillJob]:
        """Every run listed, oldest first."""
        return [j for g in self.history.groups for j in g.jobs]

    def thumb_items(self) -> list[QListWidgetItem]:
        """The thumbnails in the order shown (newest fill first), without the group headers."""
        items = (self.list.item(i) for i in range(self.list.count()))
        return [it for it in items if it.data(GROUP_ROLE) is None]

    def count(self) -> int:
        return len(self.thumb_items())

    def item_for(self, job: FillJob, index: int) -> QListWidgetItem | None:
        return next(
            (it for it in self.thumb_items() if it.data(JOB_ROLE) == job.id and it.data(INDEX_ROLE) == index),
            None,
        )

    def name_of(self, job: FillJob, index: int) -> str | None:
        """A result's one name (``"3.2"``), as the thumbnail, badge, tooltip and layer say it."""
        return self.history.name(job, index)

    # ------------------------------------------------------------------ controller events
    def _on_job_started(self, job: FillJob) -> None:
        if job.document is not self.canvas.document:
            return
        known = self.history.group_of(job) is not None
        group = self.history.add_job(job)
        self._jobs[job.id] = job
        if not known and group.root is job:
            self._add_header(group)
        self.canvas.clear_overlay(self)
        self._selected = None  # show the new run's first variant when it comes
        self.job = job
        self._set_info()
        self._update_buttons()

    def clear(self) -> None:
        """Forget every fill listed (the layers made from them stay)."""
        self.canvas.clear_overlay(self)
        self.list.clear()
        self.apply_button.hide()
        self._hovered = None
        self._overlays.clear()
        self._selected = None
        self.job = None
        self._jobs.clear()
        self.history.clear()
        self._set_info()
        self._update_buttons()

    def _add_header(self, group: FillGroup) -> None:
        item = QListWidgetItem(group.title)
        item.setData(GROUP_ROLE, group.number)
        item.setFlags(Qt.ItemFlag.NoItemFlags)
        item.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        font = QFont(self.font())
        font.setBold(True)
        item.setFont(font)
        item.setForeground(QBrush(self.palette().color(self.palette().ColorRole.WindowText)))
        settings = group.settings_text
        item.setToolTip(f"{group.title}\n{settings}" if settings else group.title)
        item.setSizeHint(self._header_size())
        self.list.insertItem(0, item)  # the newest fill on top

    def _mark_header(self, group: FillGroup, error: str) -> None:
        row = self._header_row(group)
        if row is None:
            return
        header = self.list.item(row)
        header.setText(group.title)
        header.setForeground(
            QBrush(self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText))
        )
        why = f"\n{group.outcome.capitalize()}: {error}" if error else ""
        header.setToolTip(f"{header.toolTip()}{why}")

    def _header_size(self) -> QSize:
        return QSize(max(THUMB, self.list.viewport().width() - 12), HEADER_HEIGHT)

    def _header_row(self, group: FillGroup) -> int | None:
        return next(
            (i for i in range(self.list.count()) if self.list.item(i).data(GROUP_ROLE) == group.number), None
        )

    def _group_end_row(self, group: FillGroup) -> int:
        """The row after the group's last thumbnail."""
        start = self._header_row(group)
        assert start is not None, "a group's entries come after its header"
        row = start + 1
        while row < self.list.count() and self.list.item(row).data(GROUP_ROLE) is None:
            row += 1
        return row

    def _add_entry(self, entry: FillEntry, image: np.ndarray, thumb: np.ndarray | None) -> QListWidgetItem:
        job = entry.job
        item = QListWidgetItem(
            QIcon(rgb_pixmap(thumb if thumb is not None else thumbnail(image))), entry.name
        )
        item.setData(INDEX_ROLE, entry.index)
        item.setData(JOB_ROLE, job.id)
        item.setSizeHint(QSize(THUMB + 10, THUMB + 24))
        origin = ""
        if job.parent_id is not None:
            origin = " · a follow-up"
        what = "Variant" if entry.index != RESULT else "Fill"
        seed = f" · seed {entry.seed}" if job.seeded else ""
        item.setToolTip(
            f"{what} {entry.name} · {short_title(job.engine_title)}{seed}{origin}\n"
            "Click to show it, the check button or a double-click to apply it"
        )
        self.list.insertItem(self._group_end_row(entry.group), item)
        return item

    def _on_variant(self, job: FillJob, frame: VariantFrame) -> None:
        if job.id not in self._jobs:
            return
        entry = self.history.add_result(job, frame.index)
        if entry is None:
            return
        item = self._add_entry(entry, frame.image, frame.thumb)
        if self._selected is None and job is self.job:  # show the first one as soon as it exists
            self.list.setCurrentItem(item)
            self.list.scrollToItem(item)
            self.show_variant(frame.index, keep=True, job=job)
        self._set_info()
        self._update_buttons()

    def _on_job_finished(self, job: FillJob) -> None:
        if job.id not in self._jobs:
            return
        if job.status == "done" and not job.variants and job.result is not None:
            entry = self.history.add_result(job, RESULT)
            if entry is not None and self.item_for(job, RESULT) is None:
                self._add_entry(entry, job.result.image, None)
        group = self.history.group_of(job)
        if group is not None and group.outcome:  # an empty header says why it stays empty
            self._mark_header(group, job.error)
        self._set_info()
        self._update_buttons()

    def _on_landed(self, job: FillJob, layer) -> None:
        if job.id in self._jobs:
            self.canvas.clear_overlay(self)
            self.canvas.rest_mask()  # the fill is on the canvas now; see it as it is
            self._selected = None
            self._update_buttons()

    def _set_info(self) -> None:
        job = self.job
        n = self.count()
        if not self.history.groups:
            self.info.setText(
                "Every fill's results collect here, newest on top. Hover to preview one on the "
                "canvas; click ✓ (or double-click) to apply it."
            )
        elif job is not None and not job.finished:
            self.info.setText(
                f"{short_title(job.engine_title)} is filling… ({n} result{'s' if n != 1 else ''} so far)"
            )
        else:
            fills = len(self.history.groups)
            self.info.setText(
                f"{n} result{'s' if n != 1 else ''} from {fills} fill{'s' if fills != 1 else ''}. "
                "Hover to compare; ✓ or a double-click applies one."
            )

    def _update_buttons(self) -> None:
        item = self.list.currentItem()
        job, frame = self._item_frame(item)
        self.accept_button.setEnabled(job is not None)
        self.hide_button.setEnabled(self.canvas.overlay_owner is self)
        self.clear_button.setEnabled(bool(self.history.groups))
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
        return self._jobs.get(job_id) if job_id is not None else None

    def _frame(self, index: int, job: FillJob | None = None) -> VariantFrame | None:
        job = job or self.job
        if job is None:
            return None
        return next((v for v in job.variants if v.index == index), None)

    def _item_frame(self, item: QListWidgetItem | None) -> tuple[FillJob | None, VariantFrame | None]:
        if item is None or item.data(GROUP_ROLE) is not None:
            return None, None
        job = self._job(item.data(JOB_ROLE))
        return job, self._frame(item.data(INDEX_ROLE), job) if job is not None else None

    def show_variant(self, index: int, keep: bool = False, job: FillJob | None = None) -> bool:
        """Show a result on the canvas in place; ``keep``: it stays after the mouse leaves.
        ``job``: which run's (default: the latest); ``index`` RESULT: a fill's single result."""
        job = job or self.job
        if job is None or job.document is not self.canvas.document:
            return False
        entry = self.history.entry(job, index)
        image = entry.image if entry is not None else None
        if image is None:
            frame = self._frame(index, job)
            image = frame.image if frame is not None else None
        if image is None:
            return False
        frame = self._frame(index, job) if index != RESULT else None
        overlay = (frame.display if frame is not None else None) or self._overlays.get((job.id, index))
        if overlay is None:
            alpha = frame.alpha if frame is not None else None
            if index == RESULT and job.result is not None:
                alpha = job.result.alpha
            overlay = OverlayPixels(
                job.document.shape, job.crop, image, job.mask_crop if alpha is None else alpha
            )
            self._overlays[(job.id, index)] = overlay
        name = entry.name if entry is not None else str(index + 1)
        self.canvas.set_overlay(overlay, f"{'Fill' if index == RESULT else 'Variant'} {name}", owner=self)
        if keep:
            self._selected = (job.id, index)
        self._update_buttons()
        return True

    def hide_preview(self) -> None:
        self._selected = None
        self.canvas.clear_overlay(self)
        self._update_buttons()

    def _on_hover(self, item: QListWidgetItem) -> None:
        if item.data(GROUP_ROLE) is not None:
            return
        self.show_variant(item.data(INDEX_ROLE), job=self._job(item.data(JOB_ROLE)))
        self._hovered = item
        rect = self.list.visualItemRect(item)
        self.apply_button.move(rect.right() - self.apply_button.width() - 2, rect.top() + 2)
        self.apply_button.show()
        self.apply_button.raise_()

    def _on_click(self, item: QListWidgetItem) -> None:
        if item.data(GROUP_ROLE) is None:
            self.show_variant(item.data(INDEX_ROLE), keep=True, job=self._job(item.data(JOB_ROLE)))

    def _on_double_click(self, item: QListWidgetItem) -> None:
        if item.data(GROUP_ROLE) is None:
            self.list.setCurrentItem(item)
            self.accept_selected()

    def _apply_hovered(self) -> None:
        item = self._hovered
        if item is not None and self.list.row(item) >= 0:
            self.list.setCurrentItem(item)
            self.accept_selected()

    def apply_button_for(self, item: QListWidgetItem) -> QToolButton:
        """The one-click apply button, placed over ``item`` (as hovering it does)."""
        self._on_hover(item)
        return self.apply_button

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.list.viewport():
            if event.type() == QEvent.Type.Leave:
                self.apply_button.hide()
                self._restore()
            elif event.type() == QEvent.Type.Resize:
                size = self._header_size()
                for i in range(self.list.count()):
                    if self.list.item(i).data(GROUP_ROLE) is not None:
                        self.list.item(i).setSizeHint(size)
        return super().eventFilter(watched, event)

    def _restore(self) -> None:
        """After hovering: back to the clicked result, or to the plain canvas."""
        if self._selected is not None:
            job_id, index = self._selected
            self.show_variant(index, keep=True, job=self._job(job_id))
        else:
            self.canvas.clear_overlay(self)
            self._update_buttons()

    # ------------------------------------------------------------------ accepting
    def accept_selected(self):
        item = self.list.currentItem()
        if item is None or item.data(GROUP_ROLE) is not None:
            return None
        return self.accept(item.data(INDEX_ROLE), self._job(item.data(JOB_ROLE)))

    def _layer_name(self, job: FillJob, variant: int | None) -> str | None:
        """A result layer's name from the result's one name: ``"MAT variant 3.2"``."""
        if job.id not in self._jobs:
            return None
        entry = self.history.add_result(job, RESULT if variant is None else variant)
        if entry is None:
            return None
        kind = "fill" if variant is None else "variant"
        return f"{short_title(job.engine_title)} {kind} {entry.name}"

    def accept(self, index: int, job: FillJob | None = None):
        """Commit result ``index`` of ``job`` (default: the latest run; RESULT: its single
        result) as a result layer, named by the result's one name (``"MAT variant 3.2"``)."""
        job = job or self.job
        if job is None:
            return None
        try:
            return self.controller.land(job, None if index == RESULT else index)
        except EngineError as err:
            self.error.emit(str(err))
            return None

    # ------------------------------------------------------------------ follow-ups
    def follow_up_selected(self) -> FillJob | None:
        """Run the selected variant's follow-up ("More like this"); its variants join its group."""
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
        menu.addAction("Apply as a layer", self.accept_selected)
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
        if item is not None and item.data(GROUP_ROLE) is None:
            self.context_menu(item).popup(self.list.viewport().mapToGlobal(pos))
