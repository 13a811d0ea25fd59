"""Run an engine off the GUI thread: a worker on its own QThread iterates ``engine.run`` and
turns every event into a Qt signal (the superqt GeneratorWorker pattern).

The UI never waits on a model. Events carry numpy arrays across the thread boundary (cropped to
the part that can differ, so big images cost little); QImage conversion happens on the main
thread. Cancel sets a flag that the engine polls between steps, and the worker stops iterating
as soon as the flag is set, so a cancelled run ends within one step.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..engines.base import Cancelled, Engine, EngineError, Preview, Progress, Request, Result, Variant

log = logging.getLogger(__name__)

THREADS_ENV = "INPAINT_STUDIO_THREADS"

# every runner thread ever started, so tests can fail on threads left running
LIVE_THREADS: weakref.WeakSet[QThread] = weakref.WeakSet()


@dataclass
class Task:
    """One engine run. ``make_request`` and ``prepare`` run on the worker thread, so heavy
    work (flattening the layers, cropping and converting outputs) never blocks the GUI."""

    job_id: int
    engine: Engine
    make_request: Callable[[], Request]
    prepare: Callable[[Any], Any]  # event -> what is sent to the GUI thread (e.g. a cropped copy)
    cancel_flag: threading.Event

    def is_cancelled(self) -> bool:
        return self.cancel_flag.is_set()


def ui_threads() -> int:
    """Compute threads for models: all cores but one, which stays free for the window."""
    env = os.environ.get(THREADS_ENV)
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 2) - 1)


def configure_threads() -> None:
    """Limit torch's CPU threads (when torch is loaded) so painting stays fluid during a run."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != ui_threads():
        torch.set_num_threads(ui_threads())


class _Worker(QObject):
    """Lives on the runner thread; ``run`` iterates one task's events."""

    event = Signal(int, object)  # job id, Progress / Preview / Variant / Result (cropped)
    finished = Signal(int, str, str)  # job id, "done" | "cancelled" | "failed", error text

    @Slot()
    def warm_up(self) -> None:
        """Load torch on this thread ahead of the first fill, while the person is not busy yet."""
        try:
            import torch  # noqa: F401
        except ImportError:
            return
        configure_threads()

    @Slot(object)
    def run(self, task: Task) -> None:
        status, error = "done", ""
        events = None
        try:
            if task.is_cancelled():
                raise Cancelled()
            configure_threads()
            events = task.engine.run(task.make_request(), task.is_cancelled)
            for ev in events:
                if task.is_cancelled():
                    raise Cancelled()
                if not isinstance(ev, (Progress, Preview, Variant, Result)):
                    continue
                self.event.emit(task.job_id, task.prepare(ev))
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
    _warm = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("inpaint-runner")
        self._worker = _Worker()
        self._worker.moveToThread(self._thread)
        self._start.connect(self._worker.run)
        self._warm.connect(self._worker.warm_up)
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

    def warm_up(self) -> None:
        """Import the model library on the worker thread now rather than at the first fill."""
        if self._thread.isRunning():
            self._warm.emit()

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
