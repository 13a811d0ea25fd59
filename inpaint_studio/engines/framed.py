"""Base for engines whose model sees a framed (cropped, resized, padded) view of the request."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from .base import CancelFn, Engine, EngineError, Event, Preview, Request, Result, Variant
from .framing import Frame, plan_frame


class FramedEngine(Engine):
    """Subclasses implement :meth:`fill` on model-sized arrays; framing and paste-back happen here.

    ``fill`` receives the RGB uint8 image and the binary uint8 mask (255 = hole) at the padded
    model size and yields events whose images are at that same size; this class maps every
    Preview / Variant / Result back to the full image, untouched outside the mask.
    """

    @abc.abstractmethod
    def fill(
        self, image: np.ndarray, mask: np.ndarray, request: Request, params: dict[str, Any], cancel: CancelFn
    ) -> Iterator[Event]:
        """Yield events at model resolution."""

    def run(self, request: Request, cancel: CancelFn = lambda: False) -> Iterator[Event]:
        params = self.resolve(request)
        frame = plan_frame(
            request.image.shape[:2],
            request.mask,
            self.info.native_size,
            self.info.pad_multiple,
            params.get("strategy", "crop"),
            params.get("context", 0.5),
        )
        image = frame.image_to_model(request.image)
        mask = frame.mask_to_model(request.mask)
        feather = int(params.get("feather", 0))
        try:
            for event in self.fill(image, mask, request, params, cancel):
                yield self._to_full(event, frame, request, feather)
        except (MemoryError, RuntimeError) as err:
            if isinstance(err, EngineError) or not _is_out_of_memory(err):
                raise
            raise EngineError(
                f"{self.info.title} ran out of memory at {frame.padded_size[0]}x{frame.padded_size[1]}: "
                "use the crop strategy with less context, fewer variants, or another device"
            ) from err

    @staticmethod
    def _to_full(event: Event, frame: Frame, request: Request, feather: int) -> Event:
        if isinstance(event, (Preview, Variant, Result)):
            full = frame.paste(event.image, request.image, request.mask, feather)
            if isinstance(event, Preview) and event.overlay is not None:
                overlay = frame.overlay_to_full(event.overlay, request.mask.shape)
                return replace(event, image=full, overlay=overlay)
            return replace(event, image=full)
        return event


def _is_out_of_memory(err: BaseException) -> bool:
    return (
        isinstance(err, MemoryError)
        or type(err).__name__ == "OutOfMemoryError"
        or "out of memory" in str(err)
    )
