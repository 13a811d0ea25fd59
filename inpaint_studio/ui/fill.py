"""Fill jobs: build a request from the document, run it on the runner, keep what it yields.

A :class:`FillJob` holds everything one run produced (step previews, variants, the result), all
cropped to the mask's bounding box, so panels can browse them after the run. The controller
runs one job at a time per document; a fill asked for while one runs waits in a one-place queue
(a newer request replaces an older waiting one). What a fill sees is ``doc.composite()``, the
visible layers flattened, under a snapshot of the mask taken when it was asked for; the result
lands as a new result layer above everything, as one undo step.

A follow-up (an engine's offer on a variant or a step, see ``engines/followup.py``) repeats a
finished job on the same image, mask and settings, with the offer's overrides; its variants
join the earlier ones in the Variants panel.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from PySide6.QtCore import QObject, Signal

from ..core.document import Document
from ..core.geometry import nonzero_box
from ..core.layers import Layer
from ..engines.base import BadRequest, EngineError, Progress
from ..engines.followup import Followup, without_followup
from ..engines.seeds import next_take_seed
from ..session.catalog import EngineCatalog
from ..session.jobs import (
    FillJob,
    ResultFrame,
    StepFrame,
    VariantFrame,
    build_request,
    prepare_event,
    short_title,
    visible_layers_snapshot,
)
from .runner import Runner, Task

__all__ = ["FillController", "FillJob", "StepFrame", "VariantFrame", "short_title"]


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
        # names a result layer (job, variant index or None for the result); None: the default name
        self.namer: Callable[[FillJob, int | None], str | None] | None = None

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
        negative_prompt: str = "",
    ) -> FillJob:
        """Start (or queue) a fill of the document's mask. Raises EngineError when it cannot run."""
        doc = self._doc
        if doc is None:
            raise EngineError("open a picture first")
        entry = self.catalog.entry(engine_id)
        if not entry.availability.ok or entry.info is None:
            raise EngineError(entry.availability.reason or f"{engine_id} is not available")
        mask = doc.mask.copy()
        crop = nonzero_box(mask)
        if crop.empty:
            raise BadRequest("the mask is empty: paint the region to fill first")
        job = FillJob(
            engine_id,
            entry.info.title,
            doc,
            mask,
            crop,
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=int(seed),
            seeded=entry.info.seeded,
            variants_asked=max(1, int(variants)) if entry.info.yields_variants else 1,
            params=dict(params or {}),
        )
        job.snapshot = visible_layers_snapshot(doc)
        return self._submit(job)

    def follow_up(self, job: FillJob, followup: Followup, key: object = None) -> FillJob:
        """Run ``followup`` from the finished-or-running ``job``: the same image, mask, prompt,
        settings and variant count, with the follow-up's overrides.

        Each take of an offer (``key``) runs with a new seed (``engines.seeds.next_take_seed``:
        never the parent's or an earlier take's variants), so the person gets new samples around
        the same reference (which the overrides pin on
        their own). The picture is the parent's, read when the follow-up starts (the parent may
        not have built it yet).
        """
        if job.document is not self._doc or self._doc is None:
            raise EngineError("that fill belongs to a document that is no longer open")
        if job.image is None and (job.finished or job.status == "queued"):
            raise EngineError("that fill can no longer be repeated: run a new fill")
        entry = self.catalog.entry(job.engine_id)
        if not entry.availability.ok:
            raise EngineError(entry.availability.reason or f"{job.engine_id} is not available")
        taken = job.followups_taken.get(key, 0)
        job.followups_taken[key] = taken + 1
        child = FillJob(
            job.engine_id,
            job.engine_title,
            job.document,
            job.mask,
            job.crop,
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            seed=next_take_seed(job.seed, taken),
            seeded=job.seeded,
            variants_asked=job.variants_asked,
            params={**job.params, **followup.params},
            meta={**job.meta, **followup.meta},
            parent_id=job.id,
        )
        child.image = job.image  # the very picture the parent filled, not what the document is now
        if child.image is None:
            child.source = job  # the parent is still running: its picture is read when this starts
        return self._submit(child)

    def _submit(self, job: FillJob) -> FillJob:
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
    def land(self, job: FillJob, variant: int | None = None, name: str | None = None) -> Layer:
        """Commit the job's result (or one of its variants) as a new result layer, called
        ``name`` (default: what :attr:`namer` says, else the engine's title and the variant)."""
        if job.document is not self._doc:
            raise EngineError("that fill belongs to a document that is no longer open")
        title = short_title(job.engine_title)
        meta: dict[str, Any] = {"engine": job.engine_id, "params": dict(job.params)}
        if job.seeded:
            meta["seed"] = job.seed
        if job.prompt:
            meta["prompt"] = job.prompt
        if job.negative_prompt:
            meta["negative_prompt"] = job.negative_prompt
        if variant is None:
            if job.result is None:
                raise EngineError("this fill has no result")
            name = name or (self.namer(job, None) if self.namer else None) or f"{title} fill"
            meta.update(without_followup(job.result.meta))
            pixels = job.result.layer_pixels
            if pixels is None:
                pixels = job.layer_pixels(job.result.image, job.result.alpha)
        else:
            frame = next((v for v in job.variants if v.index == variant), None)
            if frame is None:
                raise EngineError(f"this fill has no variant {variant}")
            name = name or (self.namer(job, frame.index) if self.namer else None)
            name = name or f"{title} variant {frame.index + 1}"
            meta.update(without_followup(frame.meta), variant=frame.index, seed=frame.seed)
            pixels = job.layer_pixels(frame.image, frame.alpha)
        # the same layer Document.add_result_layer makes, with its pixels built off the GUI thread
        layer = job.document.add_layer(Layer(name, "result", pixels, meta=meta), label=f"Fill: {name}")
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
        task = Task(job.id, engine, partial(build_request, job), partial(prepare_event, job), job.cancel_flag)
        self.runner.start(task)
        self.job_started.emit(job)
        self.busy_changed.emit(True)

    def _on_event(self, job_id: int, ev: object) -> None:
        job = self.current
        if job is None or job.id != job_id or job.cancel_flag.is_set():
            return  # a late event of a cancelled run
        if isinstance(ev, Progress):
            job.progress = (ev.done, ev.total, ev.text)
            self.progress.emit(job)
        elif isinstance(ev, StepFrame):
            job.offers_followups |= ev.followup is not None
            job.previews.append(ev)
            self.preview_added.emit(job, ev)
        elif isinstance(ev, VariantFrame):
            job.offers_followups |= ev.followup is not None
            job.variants.append(ev)
            self.variant_added.emit(job, ev)
        elif isinstance(ev, ResultFrame):
            job.result = ev

    def _on_finished(self, job_id: int, status: str, error: str) -> None:
        job = self.current
        if job is None or job.id != job_id:
            return
        self.current = None
        if not job.offers_followups:
            job.image = None  # nothing will repeat this run: free the picture
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
        job.release_snapshot()
        job.status = status
        job.ended_at = time.perf_counter()
        self.job_finished.emit(job)
