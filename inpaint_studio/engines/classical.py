"""Classical fill with OpenCV (Telea's fast marching, Navier-Stokes). Needs no weights."""

from __future__ import annotations

from collections.abc import Iterator

import cv2

from .base import CancelFn, EngineInfo, Event, Progress, Request, Result, check_cancel
from .framed import FramedEngine, ModelInput, Params
from .framing import framing_params
from .params import Param

_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


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
        yield Progress(0, 1, "filling")
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        out = cv2.inpaint(bgr, mask, float(params["radius"]), _METHODS[params["method"]])
        check_cancel(cancel)
        yield Progress(1, 1, "done")
        yield Result(cv2.cvtColor(out, cv2.COLOR_BGR2RGB))
