"""Fill jobs as data (krita-ai-diffusion's job model): what was asked and what came back.

A :class:`FillJob` is a snapshot of the request (mask, settings and a copy of the visible
layers, taken when Fill was pressed) plus everything the run produced, cropped to the mask's
bounding box so that browsing previews and variants after the run costs little memory.

:func:`build_request` and :func:`prepare_event` run on the worker thread: flattening the layers,
cropping, premultiplying overlays and making thumbnails never block the window. Nothing here
touches Qt.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..core.compositing import composite_rgb
from ..core.document import Document
from ..core.geometry import Rect
from ..core.layers import Layer
from ..engines.base import EngineError, Preview, Request, Result, Variant
from ..engines.followup import Followup, followup_of
from .display import OverlayPixels

THUMB_PIXELS = 192  # thumbnails are made at this size (shown at half of it, crisp on HiDPI)

_ids = itertools.count(1)


@dataclass
class StepFrame:
    step: int
    steps: int
    image: np.ndarray  # RGB, the job's crop
    overlay: np.ndarray | None  # uint8, 255 = still undecided
    display: OverlayPixels | None = None  # ready to draw (with the undecided part tinted)
    followup: Followup | None = None  # a run the engine offers from this step
    alpha: np.ndarray | None = None  # uint8, the crop's paste weight (None: the mask)


@dataclass
class VariantFrame:
    index: int
    seed: int
    meta: Mapping[str, Any]
    image: np.ndarray  # RGB, the job's crop
    display: OverlayPixels | None = None
    thumb: np.ndarray | None = None  # small RGB
    alpha: np.ndarray | None = None  # uint8, the crop's paste weight (None: the mask)

    @property
    def followup(self) -> Followup | None:
        return followup_of(self.meta)


@dataclass
class ResultFrame:
    image: np.ndarray  # RGB, the job's crop
    meta: Mapping[str, Any]
    layer_pixels: np.ndarray | None = None  # the result layer's RGBA, made on the worker
    alpha: np.ndarray | None = None  # uint8, the crop's paste weight (None: the mask)


@dataclass
class FillJob:
    """One fill: what was asked (a snapshot of the mask and settings) and everything it yielded."""

    engine_id: str
    engine_title: str
    document: Document
    mask: np.ndarray
    crop: Rect
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = 0
    seeded: bool = True  # False: the engine ignores the seed (EngineInfo.seeded), so it is not shown
    variants_asked: int = 1
    params: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)  # Request.meta (e.g. from a follow-up)
    parent_id: int | None = None  # the job whose follow-up this one is
    id: int = field(default_factory=lambda: next(_ids))
    status: str = "queued"  # queued | running | done | failed | cancelled
    previews: list[StepFrame] = field(default_factory=list)
    variants: list[VariantFrame] = field(default_factory=list)
    result: ResultFrame | None = None
    progress: tuple[int, int, str] = (0, 0, "")
    error: str = ""
    landed: list[str] = field(default_factory=list)  # ids of result layers made from this job
    started_at: float = 0.0
    ended_at: float = 0.0
    cancel_flag: threading.Event = field(default_factory=threading.Event)
    snapshot: tuple[Layer, ...] = ()  # the visible layers when the fill was asked for
    # what the engine saw (flattened on the worker); kept while follow-ups may repeat the run
    image: np.ndarray | None = None
    image_ready: threading.Event = field(default_factory=threading.Event)  # set once ``image`` is built
    source: FillJob | None = None  # a follow-up repeats this job's very picture
    offers_followups: bool = False  # some preview or variant carried a follow-up
    followups_taken: dict[Any, int] = field(default_factory=dict)  # per offer: how often taken

    @property
    def mask_crop(self) -> np.ndarray:
        return self.mask[self.crop.slices]

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    def release_snapshot(self) -> None:
        self.snapshot = ()

    def layer_pixels(self, crop_rgb: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
        """The RGBA of a result layer: the fill inside the crop with its paste weight as alpha.

        The weight is the engine's placement (the mask with its soft edge, times any feather), so
        the layer blends the fill exactly once, as the CLI does when it writes a file.
        """
        rgba = np.zeros((*self.mask.shape, 4), np.uint8)
        rgba[self.crop.slices][..., :3] = crop_rgb
        rgba[self.crop.slices][..., 3] = self.mask_crop if alpha is None else alpha
        return rgba


def short_title(title: str) -> str:
    return title.split(" (")[0].strip()


def visible_layers_snapshot(doc: Document) -> tuple[Layer, ...]:
    """Copies of the visible layers' pixels (a memory copy; the blending happens on the worker)."""
    return tuple(
        Layer(ly.name, ly.kind, ly.pixels.copy(), True, ly.opacity, id=ly.id)
        for ly in doc.layers
        if ly.visible and ly.opacity > 0
    )


# ------------------------------------------------------------------------ worker thread side
def build_request(job: FillJob) -> Request:
    """What the engine sees: the visible layers flattened over white (``Document.composite``)
    with the mask as it was when Fill was pressed. The layer copies are dropped afterwards.

    A follow-up reuses its source job's picture. The source may still be running when the follow-up
    is asked for, so its picture is read here, on the worker, when this job starts (jobs run one at
    a time, so the source has built it by then); a source that never built one is an error.
    """
    if job.image is None and job.source is not None:
        job.source.image_ready.wait(timeout=60.0)
        job.image = job.source.image
        if job.image is None:
            raise EngineError("that fill can no longer be repeated: run a new fill")
        job.source = None
    if job.image is None:
        job.image = composite_rgb(job.snapshot, job.mask.shape)
    job.image_ready.set()
    job.release_snapshot()
    return Request(
        image=job.image,
        mask=job.mask,
        prompt=job.prompt,
        negative_prompt=job.negative_prompt,
        seed=job.seed,
        variants=job.variants_asked,
        params=dict(job.params),
        meta=dict(job.meta),
    )


def thumbnail(rgb: np.ndarray, size: int = THUMB_PIXELS) -> np.ndarray:
    h, w = rgb.shape[:2]
    f = min(1.0, size / max(h, w))
    if f >= 1.0:
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def _crop_of(job: FillJob, ev: Preview | Variant | Result) -> tuple[np.ndarray, np.ndarray]:
    """An event's picture at the job's crop and its paste weight there.

    A placed event already is the fill at the mask's box with its weight; a whole picture (an
    engine that blends itself) is cut to the crop and shown at full weight inside the mask, so it
    is not blended a second time.
    """
    if ev.placement is not None:
        x0, y0, x1, y1 = ev.placement.box
        if (x0, y0, x1 - x0, y1 - y0) != (job.crop.x, job.crop.y, job.crop.w, job.crop.h):
            raise ValueError("the engine placed its fill outside the mask's bounding box")
        return np.ascontiguousarray(ev.image), ev.placement.alpha
    image = np.ascontiguousarray(ev.image[job.crop.slices])
    return image, np.where(job.mask_crop > 0, 255, 0).astype(np.uint8)


def prepare_event(job: FillJob, ev: object) -> object:
    """Turn an engine event into what the panels use, on the worker: crops, overlays, thumbs."""
    shape = job.mask.shape
    if isinstance(ev, Preview):
        image, alpha = _crop_of(job, ev)
        overlay = None
        if ev.overlay is not None:
            overlay = ev.overlay if ev.placement is not None else ev.overlay[job.crop.slices]
            overlay = np.ascontiguousarray(overlay)
        display = OverlayPixels(shape, job.crop, image, alpha, tint=overlay)
        return StepFrame(ev.step, ev.steps, image, overlay, display, followup_of(ev.meta), alpha)
    if isinstance(ev, Variant):
        image, alpha = _crop_of(job, ev)
        display = OverlayPixels(shape, job.crop, image, alpha)
        return VariantFrame(ev.index, ev.seed, dict(ev.meta), image, display, thumbnail(image), alpha)
    if isinstance(ev, Result):
        image, alpha = _crop_of(job, ev)
        pixels = job.layer_pixels(image, alpha) if job.variants_asked <= 1 else None
        return ResultFrame(image, dict(ev.meta), pixels, alpha)
    return ev
