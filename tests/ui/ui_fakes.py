"""Scripted engines for the UI tests: they follow the engine contract without any model."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np

from inpaint_studio.engines.base import (
    Availability,
    CancelFn,
    Engine,
    EngineError,
    EngineInfo,
    Event,
    Preview,
    Progress,
    Request,
    Result,
    Variant,
    check_cancel,
)
from inpaint_studio.engines.params import Param

VARIANT_COLORS = [(230, 30, 30), (30, 200, 30), (30, 30, 230), (220, 220, 20), (200, 30, 200), (20, 200, 200)]


def paint_hole(request: Request, color) -> np.ndarray:
    out = request.image.copy()
    out[request.mask > 0] = color
    return out


class ScriptedEngine(Engine):
    """Yields 3 step previews (with an 'undecided' overlay), N variants of flat colours, a result."""

    info = EngineInfo(
        id="scripted",
        title="Scripted (test)",
        description="test engine with previews and variants",
        params=(Param("steps", "int", 3, minimum=1, maximum=10),),
        yields_variants=True,
        yields_previews=True,
        needs_weights=False,
    )

    def run(self, request: Request, cancel: CancelFn = lambda: False) -> Iterator[Event]:
        params = self.resolve(request)
        steps = params["steps"]
        hole = request.mask > 0
        for s in range(1, steps + 1):
            check_cancel(cancel)
            img = request.image.copy()
            img[hole] = (255 * s // steps, 0, 0)
            overlay = np.zeros_like(request.mask)
            ys, xs = np.nonzero(hole)
            keep = ys < ys.min() + (ys.max() - ys.min() + 1) * (steps - s) // steps
            overlay[ys[keep], xs[keep]] = 255
            yield Progress(s, steps + request.variants, f"step {s}")
            yield Preview(img, s, steps, overlay)
        for i in range(request.variants):
            check_cancel(cancel)
            yield Variant(
                paint_hole(request, VARIANT_COLORS[i % len(VARIANT_COLORS)]), i, request.seed + i, {"z": i}
            )
        yield Result(paint_hole(request, VARIANT_COLORS[0]))


class SlowEngine(Engine):
    """``steps`` steps of ``step_s`` seconds; records when each step began and whether cancel was seen."""

    info = EngineInfo(id="slow", title="Slow (test)", description="sleeps", needs_weights=False)
    steps = 60
    step_s = 0.05
    log: list[tuple[float, bool]] = []  # (start time, cancel already requested)
    started = threading.Event()

    def run(self, request: Request, cancel: CancelFn = lambda: False) -> Iterator[Event]:
        self.resolve(request)
        for i in range(self.steps):
            check_cancel(cancel)
            type(self).log.append((time.perf_counter(), cancel()))
            type(self).started.set()
            time.sleep(self.step_s)
            yield Progress(i + 1, self.steps, f"step {i + 1}")
        yield Result(paint_hole(request, (0, 0, 0)))


class FailingEngine(Engine):
    info = EngineInfo(id="failing", title="Failing (test)", description="raises", needs_weights=False)
    message = "ran out of memory at 4096x4096: use the crop strategy"

    def run(self, request: Request, cancel: CancelFn = lambda: False) -> Iterator[Event]:
        self.resolve(request)
        yield Progress(0, 2, "working")
        raise EngineError(self.message)


class BuggyEngine(Engine):
    info = EngineInfo(id="buggy", title="Buggy (test)", description="crashes", needs_weights=False)

    def run(self, request: Request, cancel: CancelFn = lambda: False) -> Iterator[Event]:
        self.resolve(request)
        yield Progress(0, 1)
        raise ZeroDivisionError("division by zero in the model")


class NeedsWeightsEngine(Engine):
    """Unavailable until given a folder that holds a file called ``weights.ok``."""

    info = EngineInfo(
        id="needsweights",
        title="Needs weights (test)",
        description="needs a weights folder",
        takes_prompt=True,
        training_hint="train it with `inpaint-studio-train needsweights`",
    )

    @classmethod
    def availability(cls, weights=None) -> Availability:
        from pathlib import Path

        from inpaint_studio.core import paths

        candidates = [Path(weights)] if weights else sorted(paths.engine_models_dir("needsweights").glob("*"))
        for folder in candidates:
            if (folder / "weights.ok").is_file():
                return Availability(True, weights=folder)
        return Availability(False, "no Needs-weights weights in the store; train or import them")

    @classmethod
    def import_weights(cls, source, dest):
        import time

        time.sleep(0.05)  # a little work, on the background thread
        if source.read_text() != "official checkpoint":
            raise EngineError(f"{source.name} is not a Needs-weights checkpoint")
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "weights.ok").write_text("ok")
        return dest

    def run(self, request: Request, cancel: CancelFn = lambda: False) -> Iterator[Event]:
        self.resolve(request)
        yield Result(paint_hole(request, (9, 9, 9)))


class FollowupEngine(Engine):
    """Offers follow-ups the way MAT and MaskGIT do: "More like this" on every variant (parameter
    overrides) and "Vary from this step" on every step but the last (a Request.meta entry).
    Records every request it gets."""

    info = EngineInfo(
        id="followups",
        title="Follow-ups (test)",
        description="offers follow-up runs",
        params=(
            Param("steps", "int", 3, minimum=1, maximum=10),
            Param("near_index", "int", -1, minimum=-1),
            Param("near_seed", "int", -1, minimum=-1),
        ),
        yields_variants=True,
        yields_previews=True,
        needs_weights=False,
    )
    requests: list[Request] = []

    def run(self, request: Request, cancel: CancelFn = lambda: False) -> Iterator[Event]:
        from inpaint_studio.engines.followup import FOLLOWUP_KEY, Followup

        params = self.resolve(request)
        type(self).requests.append(request)
        steps, first = params["steps"], int(request.meta.get("from_step", 0))
        for s in range(first + 1, steps + 1):
            check_cancel(cancel)
            offer = Followup("Vary from this step", meta={"from_step": s}, tip=f"re-roll after step {s}")
            meta = {FOLLOWUP_KEY: offer} if s < steps else {}
            yield Preview(paint_hole(request, (40 * s, 0, 0)), s, steps, meta=meta)
        shift = 3 if params["near_index"] >= 0 else 0  # near variants get other colours
        for i in range(request.variants):
            check_cancel(cancel)
            offer = Followup("More like this", params={"near_index": i, "near_seed": request.seed})
            color = VARIANT_COLORS[(i + shift) % len(VARIANT_COLORS)]
            yield Variant(paint_hole(request, color), i, request.seed + i, {"z": i, FOLLOWUP_KEY: offer})
        offer = Followup("More like this", params={"near_index": 0, "near_seed": request.seed})
        yield Result(paint_hole(request, VARIANT_COLORS[shift]), {"z": 0, FOLLOWUP_KEY: offer})
