"""The step preview dock: an engine's Preview events shown live on the canvas as they arrive
(the fill forming step by step), and a slider to scrub back through them after the run.

A preview's ``overlay`` (the part still undecided) is tinted. The slider's last position,
"Result", shows the document as it is (with the landed fill) instead of a step. When the
engine offers a follow-up on a step (MaskGIT's "Vary from this step"), a button under the
slider runs it for the step shown.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from ..engines.base import EngineError
from ..session.display import OverlayPixels
from ..session.jobs import FillJob, StepFrame, short_title
from . import theme
from .canvas import Canvas
from .fill import FillController

VARY_LABEL = "Vary from this step"


class StepsPanel(QWidget):
    error = Signal(str)

    def __init__(self, controller: FillController, canvas: Canvas, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.canvas = canvas
        self.job: FillJob | None = None
        self._cache: dict[int, OverlayPixels] = {}

        self.info = QLabel(self)
        self.info.setWordWrap(True)
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, 0)
        self.slider.setPageStep(1)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.valueChanged.connect(self._on_slider)
        self.step_label = QLabel("", self)
        self.step_label.setMinimumWidth(90)
        self.live = QCheckBox("Show steps live on the canvas", self)
        self.live.setChecked(True)
        self.show_tint = QCheckBox("Tint the undecided part", self)
        self.show_tint.setChecked(True)
        self.show_tint.toggled.connect(self._retint)
        self.vary_button = QPushButton(VARY_LABEL, self)
        theme.set_icon(self.vary_button, "mdi6.source-branch")
        self.vary_button.clicked.connect(self.follow_up_current)
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.step_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.info)
        layout.addLayout(row)
        layout.addWidget(self.vary_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.live)
        layout.addWidget(self.show_tint)
        layout.addStretch(1)

        controller.job_started.connect(self._on_job_started)
        controller.preview_added.connect(self._on_preview)
        controller.job_finished.connect(self._on_job_finished)
        self._update()

    # ------------------------------------------------------------------ controller events
    def _on_job_started(self, job: FillJob) -> None:
        self.canvas.clear_overlay(self)
        self.job = job
        self._cache.clear()
        self._set_range(0)
        self._update()

    def _on_preview(self, job: FillJob, frame: StepFrame) -> None:
        if job is not self.job:
            return
        n = len(job.previews)
        following = self.slider.value() >= self.slider.maximum() - 1 or n == 1
        self._set_range(n)  # positions 0..n-1 are steps, n is "Result"
        if following:
            self.slider.blockSignals(True)
            self.slider.setValue(n - 1)
            self.slider.blockSignals(False)
            if self.live.isChecked():
                self.show_step(n - 1)
        self._update()

    def _on_job_finished(self, job: FillJob) -> None:
        if job is not self.job:
            return
        if job.previews:  # the run is over: show what it left, and let the person scrub
            self.slider.blockSignals(True)
            self.slider.setValue(self.slider.maximum())
            self.slider.blockSignals(False)
            self.canvas.clear_overlay(self)
        self._update()

    # ------------------------------------------------------------------ scrubbing
    def _set_range(self, n: int) -> None:
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, n))
        self.slider.blockSignals(False)
        self.slider.setEnabled(n > 0)

    def _on_slider(self, value: int) -> None:
        job = self.job
        if job is None:
            return
        if value >= len(job.previews):
            self.canvas.clear_overlay(self)
        else:
            self.show_step(value)
        self._update()

    def show_step(self, position: int) -> bool:
        job = self.job
        if job is None or not 0 <= position < len(job.previews) or job.document is not self.canvas.document:
            return False
        frame = job.previews[position]
        overlay = frame.display if self.show_tint.isChecked() or frame.overlay is None else None
        if overlay is None:
            overlay = self._cache.get(position)
        if overlay is None:  # the plain (untinted) version is made here, on request
            overlay = OverlayPixels(
                job.document.shape,
                job.crop,
                frame.image,
                job.mask_crop if frame.alpha is None else frame.alpha,
            )
            self._cache[position] = overlay
        self.canvas.set_overlay(overlay, f"Step {frame.step} of {frame.steps}", owner=self)
        return True

    def _retint(self) -> None:
        self._cache.clear()
        if self.canvas.overlay_owner is self:
            self._on_slider(self.slider.value())

    def current_frame(self) -> StepFrame | None:
        """The step the slider is on (None on "Result" or before any step)."""
        job, pos = self.job, self.slider.value()
        return job.previews[pos] if job is not None and 0 <= pos < len(job.previews) else None

    def follow_up_current(self) -> FillJob | None:
        """Run the shown step's follow-up (e.g. keep what that step decided, decode the rest)."""
        job, frame = self.job, self.current_frame()
        if job is None or frame is None or frame.followup is None:
            return None
        try:
            return self.controller.follow_up(job, frame.followup, key=("step", frame.step))
        except EngineError as err:
            self.error.emit(str(err))
            return None

    def _update_vary(self) -> None:
        job, frame = self.job, self.current_frame()
        offer = frame.followup if frame is not None else None
        self.vary_button.setVisible(job is not None and any(f.followup is not None for f in job.previews))
        self.vary_button.setText(offer.label if offer else VARY_LABEL)
        self.vary_button.setToolTip(
            (offer.tip or offer.label) if offer else "Move the slider to a step this engine can vary from"
        )
        self.vary_button.setEnabled(
            offer is not None and job is not None and job.finished and job.image is not None
        )

    def _update(self) -> None:
        self._update_vary()
        job = self.job
        n = len(job.previews) if job else 0
        pos = self.slider.value()
        if job is None:
            self.info.setText(
                "Engines that decode step by step (such as MaskGIT) show each step here while they run."
            )
            self.step_label.setText("")
            return
        if not n:
            self.info.setText("Waiting for steps…" if not job.finished else "This fill had no step previews.")
            self.step_label.setText("")
            return
        title = short_title(job.engine_title)
        self.info.setText(
            f"{title}: {n} step{'s' if n != 1 else ''}"
            + (" so far." if not job.finished else ". Drag the slider to look back through them.")
        )
        if pos >= n:
            self.step_label.setText("Result")
        else:
            f = job.previews[pos]
            self.step_label.setText(f"Step {f.step} / {f.steps}")
