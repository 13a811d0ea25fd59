"""Run an engine off the GUI thread: a worker on its own QThread iterates ``engine.run`` and
turns every event into a Qt signal (the superqt GeneratorWorker pattern).

The UI never waits on a model. Events carry numpy arrays across the thread boundary (cropped to
the part that can differ, so big images cost little); QImage conversion happens on the main
thread. Cancel sets a flag that the engine polls between steps, and the worker stops iterating
as soon as the flag is set, so a cancelled run ends within one step.
"""

from __future__ import annotations

import logging
import threading
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..core.geometry import Rect
from ..engines.base import Cancelled, Engine, EngineError, Preview, Progress, Request, Result, Variant

log = logging.getLogger(__name__)

# every runner thread ever started, so tests can fail on threads left running
LIVE_THREADS: weakref.WeakSet[QThread] = weakref.WeakSet()


@dataclass
class Task:
    """One engine run: what to run and the part of the image its outputs can change."""

    job_id: int
    engine: Engine
    request: Request
    crop: Rect  # the bounding box of the mask: outside it every output equals the input
    cancel_flag: threading.Event

    def is_cancelled(self) -> bool:
        return self.cancel_flag.is_set()


def crop_event(event: Any, crop: Rect) -> Any:
    """The event with its images cut to ``crop`` (a copy, so the full-size array can be freed)."""
    sl = crop.slices
    if isinstance(event, Preview):
        overlay = None if event.overlay is None else np.ascontiguousarray(event.overlay[sl])
        return replace(event, image=np.ascontiguousarray(event.image[sl]), overlay=overlay)
    if isinstance(event, (Variant, Result)):
        return replace(event, image=np.ascontiguousarray(event.image[sl]))
    return event


class _Worker(QObject):
    """Lives on the runner thread; ``run`` iterates one task's events."""

    event = Signal(int, object)  # job id, Progress / Preview / Variant / Result (cropped)
    finished = Signal(int, str, str)  # job id, "done" | "cancelled" | "failed", error text

    @Slot(object)
    def run(self, task: Task) -> None:
        status, error = "done", ""
        events = None
        try:
            if task.is_cancelled():
                raise Cancelled()
            events = task.engine.run(task.request, task.is_cancelled)
            for ev in events:
                if task.is_cancelled():
                    raise Cancelled()
                if isinstance(ev, (Preview, Variant, Result)):
                    ev = crop_event(ev, task.crop)
                elif not isinstance(ev, Progress):
                    continue
                self.event.emit(task.job_id, ev)
        except Cancelled:
            status = "cancelled"
        except EngineError as err:
            status, error = "failed", str(err)
        except MemoryError:
            status, error = "failed", "out of memory: try a smaller mask, fewer variants or another engine"
        except Exception as err:  # an engine bug must not take the app down
            log.error("engine %s failed:\n%s", task.engine.info.id, traceback.format_exc())
            status, error = "failed", f"{task.engine.info.title} failed: {type(err).__name__}: {err}"
        finally:
            if events is not None and hasattr(events, "close"):
                try:
                    events.close()  # let the engine's generator clean up now, on this thread
                except Exception:
                    log.exception("closing the engine's event stream failed")
        self.finished.emit(task.job_id, status, error)


class Runner(QObject):
    """One worker thread; runs one task at a time. ``shutdown()`` before the app quits."""

    event = Signal(int, object)
    finished = Signal(int, str, str)
    _start = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("inpaint-runner")
        self._worker = _Worker()
        self._worker.moveToThread(self._thread)
        self._start.connect(self._worker.run)
        self._worker.event.connect(self.event)
        self._worker.finished.connect(self._on_finished)
        self._current: Task | None = None
        self._thread.start()
        LIVE_THREADS.add(self._thread)

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def current(self) -> Task | None:
        return self._current

    def start(self, task: Task) -> None:
        if self._current is not None:
            raise RuntimeError("the runner is busy; cancel or wait for the current run first")
        if not self._thread.isRunning():
            raise RuntimeError("the runner was shut down")
        self._current = task
        self._start.emit(task)

    def cancel(self) -> None:
        if self._current is not None:
            self._current.cancel_flag.set()

    def _on_finished(self, job_id: int, status: str, error: str) -> None:
        self._current = None
        self.finished.emit(job_id, status, error)

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel what runs, stop the thread and wait for it. Returns whether it stopped."""
        self.cancel()
        self._thread.quit()
        stopped = self._thread.wait(timeout_ms)
        if not stopped:
            log.warning("the engine did not stop within %.0f s", timeout_ms / 1000)
        return bool(stopped)


def run_in_thread(
    fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]
) -> threading.Thread:
    """Run ``fn`` on a plain daemon thread and call ``done(result, error)`` on the GUI thread.

    For short background jobs that are not engine runs (autosave, importing weights).
    """
    from .threads import call_on_main_thread

    def target() -> None:
        try:
            result, error = fn(), None
        except BaseException as err:  # handed to the caller on the main thread
            result, error = None, err
        call_on_main_thread(lambda: done(result, error))

    thread = threading.Thread(target=target, name="inpaint-background", daemon=True)
    thread.start()
    return thread
