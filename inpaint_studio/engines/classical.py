"""Classical fill with OpenCV (Telea's fast marching, Navier-Stokes). Needs no weights.

Both methods cost about the number of hole pixels times the radius, so a very large hole would
take minutes. Holes above :data:`DIRECT_LIMIT` pixels are filled through a pyramid instead: the
hole is filled at half size (recursively), that fill is scaled up into the hole, and only a band
along the hole's edge is filled again at full resolution, where detail from the known pixels
matters. The work is then about the hole's perimeter, not its area.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from .base import CancelFn, EngineInfo, Event, Progress, Request, Result, check_cancel
from .framed import FramedEngine
from .framing import framing_params
from .params import Param

_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
DIRECT_LIMIT = 250_000  # hole pixels filled directly; larger holes go through the pyramid
EDGE_BAND = 12  # px along the hole's edge refilled at each finer level


class ClassicalEngine(FramedEngine):
    info = EngineInfo(
        id="classical",
        title="Classical (OpenCV)",
        description="Diffuses surrounding colours into the hole. Instant, needs no weights; best for "
        "thin scratches, wires and small blemishes.",
        params=(
            Param(
                "method",
                "choice",
                "telea",
                choices=tuple(_METHODS),
                help="telea: fast marching; ns: Navier-Stokes",
            ),
            Param("radius", "int", 5, minimum=1, maximum=64, help="neighbourhood radius in pixels"),
            *framing_params("crop", default_context=0.25),
        ),
        needs_weights=False,
    )

    def fill(
        self, image: np.ndarray, mask: np.ndarray, request: Request, params: dict[str, Any], cancel: CancelFn
    ) -> Iterator[Event]:
        check_cancel(cancel)
        levels = _levels(int(np.count_nonzero(mask)))
        yield Progress(0, levels + 1, "filling")
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        hole = np.where(mask > 0, 255, 0).astype(np.uint8)
        out = bgr
        fills = _pyramid_fill(bgr, hole, float(params["radius"]), _METHODS[params["method"]], cancel)
        for done, level_fill in enumerate(fills, start=1):
            out = level_fill
            yield Progress(done, levels + 1, "filling" if done <= levels else "done")
        yield Result(cv2.cvtColor(out, cv2.COLOR_BGR2RGB))


def _levels(hole_pixels: int) -> int:
    """How many times the hole is halved before it is small enough to fill directly."""
    levels = 0
    while hole_pixels > DIRECT_LIMIT:
        hole_pixels //= 4
        levels += 1
    return levels


def _pyramid_fill(
    bgr: np.ndarray, hole: np.ndarray, radius: float, method: int, cancel: CancelFn
) -> Iterator[np.ndarray]:
    """Yield the fill of each level, coarsest first; the last one is the full-size fill."""
    if np.count_nonzero(hole) <= DIRECT_LIMIT or min(hole.shape) < 16:
        yield cv2.inpaint(bgr, hole, radius, method)
        return
    h, w = hole.shape
    small_size = ((w + 1) // 2, (h + 1) // 2)
    small_bgr = cv2.resize(bgr, small_size, interpolation=cv2.INTER_AREA)
    small_hole = np.where(cv2.resize(hole, small_size, interpolation=cv2.INTER_AREA) > 0, 255, 0).astype(
        np.uint8
    )
    coarse = None
    for coarse in _pyramid_fill(small_bgr, small_hole, radius, method, cancel):
        yield coarse
    check_cancel(cancel)
    guess = bgr.copy()
    inside = hole > 0
    guess[inside] = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)[inside]
    core = cv2.erode(hole, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * EDGE_BAND + 1, 2 * EDGE_BAND + 1)))
    band = cv2.subtract(hole, core)
    yield cv2.inpaint(guess, band, radius, method) if band.any() else guess
