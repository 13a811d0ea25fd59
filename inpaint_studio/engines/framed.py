"""Base for engines whose model sees a framed (cropped, resized, padded) view of the request.

The one straight line a fill takes: the request is resolved once (validation, the empty-mask
check and the mask's bounding box included), the engine loads and says its model's geometry,
the frame is planned once and passed into :meth:`FramedEngine.fill`, and every image event comes
back at the mask's bounding box with a :class:`~.base.Placement`, to be pasted once where it lands.
Out-of-memory errors become one message here, for every engine.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .base import (
    CancelFn,
    Engine,
    EngineError,
    Event,
    Placement,
    Preview,
    Progress,
    Request,
    Result,
    Variant,
    check_cancel,
)
from .framing import Frame, feathered_placement, plan_frame

Params = dict[str, Any]  # a request's resolved parameters


@dataclass(frozen=True)
class ModelInput:
    """The request's image and binary mask (255 = hole) at the model's padded size, and the frame
    that made them (where they sit in the full image)."""

    image: np.ndarray
    mask: np.ndarray
    frame: Frame


@dataclass(frozen=True)
class Geometry:
    """What framing needs to know of a loaded model: the side it works at and its pad multiple."""

    native_size: int | None
    pad_multiple: int = 1


class FramedEngine(Engine):
    """Subclasses implement :meth:`fill` on model-sized arrays and may override :meth:`load`.

    ``fill`` receives a :class:`ModelInput` (the RGB uint8 image and the binary uint8 mask at the
    padded model size, and the :class:`Frame` that made them) and yields events whose images are
    at that same size. This class maps every Preview / Variant / Result to the mask's bounding box and
    attaches the placement (the paste weight), untouched outside the mask.
    """

    def load(self, params: Params, cancel: CancelFn) -> Geometry:
        """Load what the model needs (lazily, once) and return its geometry.

        Called on the worker before framing; the default is the class's static geometry. Raise
        :class:`EngineError` (e.g. ``runtime.DeviceUnavailable``) with one line when it cannot.
        """
        return Geometry(self.info.native_size, self.info.pad_multiple)

    @abc.abstractmethod
    def fill(self, work: ModelInput, request: Request, params: Params, cancel: CancelFn) -> Iterator[Event]:
        """Yield events at model resolution (the size of ``work.image``)."""

    def run(self, request: Request, cancel: CancelFn = lambda: False) -> Iterator[Event]:
        params = self.resolve(request)  # the one validation: bad input is refused before loading
        check_cancel(cancel)
        if self.info.needs_weights:
            yield Progress(0, 1, f"loading {self.info.title}")
        try:
            geometry = self.load(params, cancel)
            check_cancel(cancel)
            frame = plan_frame(
                request.image.shape[:2],
                request.mask,
                geometry.native_size,
                geometry.pad_multiple,
                params.get("strategy", "crop"),
                params.get("context", 0.5),
                bbox=request.mask_box,
            )
            work = ModelInput(frame.image_to_model(request.image), frame.mask_to_model(request.mask), frame)
            placement = feathered_placement(request.mask, request.mask_box, int(params.get("feather", 0)))
            for event in self.fill(work, request, params, cancel):
                yield _place(event, frame, placement)
        except (MemoryError, RuntimeError) as err:
            if isinstance(err, EngineError) or not _is_out_of_memory(err):
                raise
            raise EngineError(
                f"{self.info.title} ran out of memory: use the crop strategy with less context, fewer "
                "variants, a lower precision or another device"
            ) from err


def _place(event: Event, frame: Frame, placement: Placement) -> Event:
    """A model-size event -> the fill at the mask's bounding box, with its placement."""
    if not isinstance(event, (Preview, Variant, Result)):
        return event
    fill = frame.output_to_box(event.image, placement.box)
    if isinstance(event, Preview) and event.overlay is not None:
        overlay = frame.overlay_to_box(event.overlay, placement.box)
        return replace(event, image=fill, overlay=overlay, placement=placement)
    return replace(event, image=fill, placement=placement)


def _is_out_of_memory(err: BaseException) -> bool:
    return (
        isinstance(err, MemoryError)
        or type(err).__name__ == "OutOfMemoryError"
        or "out of memory" in str(err)
    )
