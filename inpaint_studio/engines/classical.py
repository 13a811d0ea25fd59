"""Classical fill with OpenCV (Telea's fast marching, Navier-Stokes). Needs no weights.

Both methods cost about the number of hole pixels times the radius, so a very large hole would
take minutes. Holes above :data:`DIRECT_LIMIT` pixels are filled through a pyramid instead: the
hole is filled at half size (recursively), that fill is scaled up into the hole, and only a band
along the hole's edge is filled again at full resolution, where detail from the known pixels
matters. The work is then about the hole's perimeter, not its area.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from .base import CancelFn, EngineInfo, Event, Progress, Request, Result, check_cancel
from .framed import FramedEngine, ModelInput, Params
from .framing import framing_params
from .params import Param

_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
DIRECT_LIMIT = 250_000  # hole pixels filled directly; larger holes go through the pyramid
EDGE_BAND = 12  # px along the hole's edge refilled at each finer level
TILE = 512  # the edge band is refilled in tiles of this side (plus a margin)


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

    def fill(self, work: ModelInput, request: Request, params: Params, cancel: CancelFn) -> Iterator[Event]:
        image, mask = work.image, work.mask
        check_cancel(cancel)
        hole = cv2.threshold(mask, 0, 255, cv2.THRESH_BINARY)[1]  # (framing hands a 0/255 mask already)
        levels = _levels(cv2.countNonZero(hole))
        yield Progress(0, levels + 1, "filling")
        out = image  # both methods treat channels alike, so RGB needs no round trip through BGR
        fills = _pyramid_fill(image, hole, float(params["radius"]), _METHODS[params["method"]], cancel)
        for done, level_fill in enumerate(fills, start=1):
            out = level_fill
            yield Progress(done, levels + 1, "filling" if done <= levels else "done")
        yield Result(out)


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
    if cv2.countNonZero(hole) <= DIRECT_LIMIT or min(hole.shape) < 16:
        yield cv2.inpaint(bgr, hole, radius, method)
        return
    h, w = hole.shape
    small_size = ((w + 1) // 2, (h + 1) // 2)
    small_bgr = cv2.resize(bgr, small_size, interpolation=cv2.INTER_AREA)
    small_hole = cv2.threshold(
        cv2.resize(hole, small_size, interpolation=cv2.INTER_AREA), 0, 255, cv2.THRESH_BINARY
    )[1]
    coarse = small_bgr
    for coarse in _pyramid_fill(small_bgr, small_hole, radius, method, cancel):
        yield coarse
    check_cancel(cancel)
    guess = bgr.copy()
    cv2.copyTo(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR), hole, guess)
    core = cv2.erode(hole, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * EDGE_BAND + 1, 2 * EDGE_BAND + 1)))
    band = cv2.subtract(hole, core)
    yield _inpaint_tiles(guess, band, radius, method)


def _inpaint_tiles(bgr: np.ndarray, mask: np.ndarray, radius: float, method: int) -> np.ndarray:
    """``cv2.inpaint`` of a thin ``mask`` (the edge band), tile by tile.

    OpenCV prepares the whole image for every call, so one call on a big picture costs its area even
    when the band is thin; tiles that hold band pixels (with a margin wider than the band) cost the
    band's area instead.
    """
    h, w = mask.shape
    if h * w <= 4 * TILE * TILE:
        return cv2.inpaint(bgr, mask, radius, method) if cv2.countNonZero(mask) else bgr
    out = bgr.copy()
    margin = 2 * EDGE_BAND + int(radius) + 2
    for y in range(0, h, TILE):
        for x in range(0, w, TILE):
            tile_mask = mask[y : y + TILE, x : x + TILE]
            if not cv2.countNonZero(tile_mask):
                continue
            y0, x0 = max(0, y - margin), max(0, x - margin)
            y1, x1 = min(h, y + TILE + margin), min(w, x + TILE + margin)
            filled = cv2.inpaint(bgr[y0:y1, x0:x1], mask[y0:y1, x0:x1], radius, method)
            th, tw = tile_mask.shape
            cv2.copyTo(
                filled[y - y0 : y - y0 + th, x - x0 : x - x0 + tw], tile_mask, out[y : y + th, x : x + tw]
            )
    return out
