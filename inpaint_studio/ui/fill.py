"""Fill jobs: build a request from the document, run it on the runner, keep what it yields.

A :class:`FillJob` holds everything one run produced (step previews, variants, the result), all
cropped to the mask's bounding box, so panels can browse them after the run. The controller
runs one job at a time per document; a fill asked for while one runs waits in a one-place queue
(a newer request replaces an older waiting one). What a fill sees is ``doc.composite()``, the
visible layers flattened, under a snapshot of the mask taken when it was asked for; the result
lands as a new result layer above everything, as one undo step.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from ..core.document import Document
from ..core.geometry import Rect
from ..core.layers import Layer
from ..engines.base import EngineError, Preview, Progress, Request, Result, Variant
from .catalog import EngineCatalog
from .runner import Runner, Task

_ids = itertools.count(1)


@dataclass
class StepFrame:
    step: int
    steps: int
    image: np.ndarray  # RGB, the job's crop
    overlay: np.ndarray | None  # uint8, 255 = still undecided


@dataclass
class VariantFrame:
    index: int
    seed: int
    meta: Mapping[str, Any]
    image: np.ndarray  # RGB, the job's crop


@dataclass
class FillJob:
    engine_id: str
    engine_title: str
    document: Document
    request: Request
    crop: Rect
    id: int = field(default_factory=lambda: next(_ids))
    status: str = "queued"  # queued | running | done | failed | cancelled
    previews: list[StepFrame] = field(default_factory=list)
    variants: list[VariantFrame] = field(default_factory=list)
    result: np.ndarray | None = None
    result_meta: Mapping[str, Any] = field(default_factory=dict)
    progress: tuple[int, int, str] = (0, 0, "")
    error: str = ""
    landed: list[str] = field(default_factory=list)  # ids of result layers made from this job
    started_at: float = 0.0
    ended_at: float = 0.0
    cancel_flag: threading.Event = field(default_factory=threading.Event)

    @property
    def mask_crop(self) -> np.ndarray:
        return self.request.mask[self.crop.slices]

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    def full_size(self, crop_rgb: np.ndarray) -> np.ndarray:
        """A document-sized RGB with ``crop_rgb`` in place (outside the mask it is never shown)."""
        full = np.zeros((*self.request.mask.shape, 3), np.uint8)
        full[self.crop.slices] = crop_rgb
        return full


def mask_bbox(mask: np.ndarray) -> Rect:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return Rect(0, 0, 0, 0)
    return Rect(int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def short_title(title: str) -> str:
    return title.split(" (")[0].strip()


class FillController(QObject):
    job_queued = Signal(object)  # FillJob
    job_started = Signal(object)
    progress = Signal(object)  # FillJob (see job.progress)
    preview_added = Signal(object, object)  # FillJob, StepFrame
    variant_added = Signal(object, object)  # FillJob, VariantFrame
    result_landed = Signal(object, object)  # FillJob, Layer
    job_finished = Signal(object)  # FillJob (status done / failed / cancelled)
    busy_changed = Signal(bool)

    def __init__(self, catalog: EngineCatalog, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.catalog = catalog
        self.runner = Runner(self)
        self.runner.event.connect(self._on_event)
        self.runner.finished.connect(self._on_finished)
        self._doc: Document | None = None
        self.current: FillJob | None = None
        self.queued: FillJob | None = None
        self.last: FillJob | None = None  # the most recent job that started

    # ------------------------------------------------------------------ state
    @property
    def busy(self) -> bool:
        return self.current is not None

    def set_document(self, doc: Document | None) -> None:
        if doc is not self._doc:
            self.cancel()
            self._doc = doc
            self.last = None

    # ------------------------------------------------------------------ requests
    def fill(
        self,
        engine_id: str,
        prompt: str = "",
        seed: int = 0,
        variants: int = 1,
        params: Mapping[str, Any] | None = None,
    ) -> FillJob:
        """Start (or queue) a fill of the document's mask. Raises EngineError when it cannot run."""
        doc = self._doc
        if doc is None:
            raise EngineError("open a picture first")
        entry = self.catalog.entry(engine_id)
        if not entry.availability.ok or entry.info is None:
            raise EngineError(entry.availability.reason or f"{engine_id} is not available")
        mask = doc.mask.copy()
        crop = mask_bbox(mask)
        request = Request(
            image=doc.composite(),
            mask=mask,
            prompt=prompt,
            seed=int(seed),
            variants=max(1, int(variants)) if entry.info.yields_variants else 1,
            params=dict(params or {}),
        )
        request.validate()
        job = FillJob(engine_id, entry.info.title, doc, request, crop)
        if self.current is not None:
            if self.queued is not None:
                self._end(self.queued, "cancelled")
            self.queued = job
            self.job_queued.emit(job)
            return job
        self._start(job)
        return job

    def cancel(self) -> None:
        """Stop the running fill (within one engine step) and drop the waiting one."""
        if self.queued is not None:
            job, self.queued = self.queued, None
            self._end(job, "cancelled")
        if self.current is not None:
            self.current.cancel_flag.set()
            self.runner.cancel()

    def shutdown(self) -> None:
        self.cancel()
        self.runner.shutdown()

    # ------------------------------------------------------------------ results
    def land(self, job: FillJob, variant: int | None = None) -> Layer:
        """Commit the job's result (or one of its variants) as a new result layer."""
        if job.document is not self._doc:
            raise EngineError("that fill belongs to a document that is no longer open")
        title = short_title(job.engine_title)
        meta: dict[str, Any] = {
            "engine": job.engine_id,
            "seed": job.request.seed,
            "params": dict(job.request.params),
        }
        if job.request.prompt:
            meta["prompt"] = job.request.prompt
        if variant is None:
            if job.result is None:
                raise EngineError("this fill has no result")
            rgb, name = job.result, f"{title} fill"
            meta.update(dict(job.result_meta))
        else:
            frame = next((v for v in job.variants if v.index == variant), None)
            if frame is None:
                raise EngineError(f"this fill has no variant {variant}")
            rgb, name = frame.image, f"{title} variant {frame.index + 1}"
            meta.update(dict(frame.meta), variant=frame.index, seed=frame.seed)
        layer = job.document.add_result_layer(job.full_size(rgb), job.request.mask, name, meta)
        job.landed.append(layer.id)
        self.result_landed.emit(job, layer)
        return layer

    # ------------------------------------------------------------------ runner
    def _start(self, job: FillJob) -> None:
        try:
            engine = self.catalog.engine(job.engine_id)
        except Exception as err:
            job.error = str(err)
            self._end(job, "failed")
            return
        job.status = "running"
        job.started_at = time.perf_counter()
        self.current = self.last = job
        self.runner.start(Task(job.id, engine, job.request, job.crop, job.cancel_flag))
        self.job_started.emit(job)
        self.busy_changed.emit(True)

    def _on_event(self, job_id: int, ev: object) -> None:
        job = self.current
        if job is None or job.id != job_id or job.cancel_flag.is_set():
            return  # a late event of a cancelled run
        if isinstance(ev, Progress):
            job.progress = (ev.done, ev.total, ev.text)
            self.progress.emit(job)
        elif isinstance(ev, Preview):
            frame = StepFrame(ev.step, ev.steps, ev.image, ev.overlay)
            job.previews.append(frame)
            self.preview_added.emit(job, frame)
        elif isinstance(ev, Variant):
            frame = VariantFrame(ev.index, ev.seed, dict(ev.meta), ev.image)
            job.variants.append(frame)
            self.variant_added.emit(job, frame)
        elif isinstance(ev, Result):
            job.result, job.result_meta = ev.image, dict(ev.meta)

    def _on_finished(self, job_id: int, status: str, error: str) -> None:
        job = self.current
        if job is None or job.id != job_id:
            return
        self.current = None
        if job.cancel_flag.is_set() and status == "done":
            status = "cancelled"
        job.error = error
        if status == "done":
            if job.result is None and not job.variants:
                job.error, status = f"{job.engine_title} finished without a result", "failed"
            elif len(job.variants) <= 1 and job.document is self._doc:
                try:
                    if job.result is not None:
                        self.land(job)
                    else:
                        self.land(job, job.variants[0].index)
                except (EngineError, ValueError) as err:
                    job.error, status = str(err), "failed"
        self._end(job, status)
        nxt, self.queued = self.queued, None
        if nxt is not None and nxt.document is self._doc:
            self._start(nxt)
        if self.current is None:
            self.busy_changed.emit(False)

    def _end(self, job: FillJob, status: str) -> None:
        job.status = status
        job.ended_at = time.perf_counter()
        self.job_finished.emit(job)
