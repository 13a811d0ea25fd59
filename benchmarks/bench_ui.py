"""UI responsiveness benchmark (not a test): prints a table of measured numbers.

1. Event-loop stalls while a CPU model runs in the runner thread: a 5 ms QTimer records how late
   each of its ticks comes; the worst lateness is the longest freeze a person would feel. Measured
   with the window idle, and while a brush stroke is painted at the same time.
2. Brush dabs on a 4000x3000 picture, including the canvas update (the dab, the tile refresh and
   the repaint of the changed region), at fit-to-window and at 100 %.
3. Repaint times on an 8000x6000 picture (first view, a full repaint while panning, at fit and 100 %).

Run: ``QT_QPA_PLATFORM=offscreen python benchmarks/bench_ui.py [--quick]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Iterator

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QElapsedTimer, QEventLoop, QPoint, Qt, QTimer  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from inpaint_studio.core.document import Document  # noqa: E402
from inpaint_studio.engines.base import (  # noqa: E402
    CancelFn,
    EngineInfo,
    Event,
    Preview,
    Progress,
    Request,
    Result,
    check_cancel,
)
from inpaint_studio.engines.framed import FramedEngine  # noqa: E402
from inpaint_studio.engines.framing import framing_params  # noqa: E402


class TorchLoopEngine(FramedEngine):
    """A stand-in CPU model run the way the real engines run (through the shared framing: crop
    around the mask, resize to 512, paste back): per step a stack of four 64-channel 3x3
    convolutions on a 128x128 feature map, and a step preview every 4 steps (as MaskGIT sends)."""

    info = EngineInfo(
        id="torchloop",
        title="Torch loop (bench)",
        description="conv loop",
        params=framing_params("crop", default_context=0.25),
        needs_weights=False,
        native_size=512,
        pad_multiple=8,
    )
    steps = 120

    def fill(self, work, request: Request, params, cancel: CancelFn) -> Iterator[Event]:
        import torch

        image, mask = work.image, work.mask
        torch.manual_seed(0)
        x = torch.randn(1, 64, 128, 128)
        convs = [torch.nn.Conv2d(64, 64, 3, padding=1) for _ in range(4)]
        hole = mask > 0
        with torch.no_grad():
            for step in range(self.steps):
                check_cancel(cancel)
                y = x
                for c in convs:
                    y = torch.relu(c(y))
                x = y / (y.std() + 1e-6)
                yield Progress(step + 1, self.steps, f"step {step + 1}")
                if step % 4 == 3:
                    img = image.copy()
                    img[hole] = (step * 6) % 255
                    yield Preview(img, step + 1, self.steps)
        out = image.copy()
        out[hole] = 128
        yield Result(out)


def photo(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // w), (y * 255 // h), ((x ^ y) & 255)], -1).astype(np.uint8)
    return img


class LatenessProbe:
    """A 5 ms timer; ``worst`` is the largest delay of a tick beyond its 5 ms period."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        self.clock = QElapsedTimer()
        self.late: list[float] = []

    def start(self) -> None:
        self.late.clear()
        self.clock.start()
        self._last = self.clock.nsecsElapsed()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed()
        self.late.append(max(0.0, (now - self._last) / 1e6 - 5.0))
        self._last = now

    @property
    def worst(self) -> float:
        return max(self.late) if self.late else float("nan")

    def pct(self, q: float) -> float:
        return float(np.percentile(self.late, q)) if self.late else float("nan")


def make_window(w: int, h: int):
    from inpaint_studio.session.catalog import EngineCatalog
    from inpaint_studio.ui.main_window import MainWindow
    from inpaint_studio.ui.settings import AppSettings

    catalog = EngineCatalog()
    catalog.add(TorchLoopEngine)
    import tempfile

    settings = AppSettings(os.path.join(tempfile.mkdtemp(), "bench.ini"))
    win = MainWindow(settings=settings, catalog=catalog)
    win.autosaver.set_interval(0)
    win.engine_panel.fast_remove.setChecked(False)  # the strokes here measure painting, not filling
    win.resize(1500, 950)
    win.show()
    QApplication.processEvents()
    win.set_document(Document.from_image(photo(h, w)))
    QApplication.processEvents()
    return win


def stroke(win, n_moves: int, step_px: float) -> tuple[int, float, list[float]]:
    """Paint a stroke of ``n_moves`` mouse moves; returns (dabs, seconds, paint ms per frame)."""
    canvas = win.canvas
    doc = win.document
    cx, cy = doc.width / 2, doc.height / 2
    start = canvas.map_from_image(cx - n_moves * step_px / 2, cy).toPoint()
    dabs = [0]
    orig = doc.mask.copy()

    def count(target, rect):
        dabs[0] += 1

    doc.pixels_changed.connect(count)
    paints: list[float] = []
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QApplication.processEvents()
    t0 = time.perf_counter()
    for i in range(1, n_moves + 1):
        p = canvas.map_from_image(cx - n_moves * step_px / 2 + i * step_px, cy + 20 * np.sin(i / 9)).toPoint()
        QTest.mouseMove(canvas, p)
        QApplication.processEvents()  # the repaint of the changed region happens here
        paints.append(canvas.paint_ms)
    dt = time.perf_counter() - t0
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p)
    doc.pixels_changed.disconnect(count)
    doc.history.jump_to(doc, 0)
    assert np.array_equal(doc.mask, orig)
    return dabs[0], dt, paints


def bench_dabs(quick: bool) -> list[tuple[str, str]]:
    rows = []
    win = make_window(4000, 3000)
    win.set_tool("mask_brush")
    for size in (40, 150):
        win.brush.size = size
        step_widget = None
        for label, zoom in (("fit", None), ("100 %", 1.0)):
            if zoom is None:
                win.canvas.fit()
            else:
                win.canvas.zoom_to(zoom)
            QApplication.processEvents()
            time.sleep(0.2)
            QApplication.processEvents()
            step_img = win.brush.spacing * size  # one dab per mouse move
            step_widget = step_img
            n = 60 if quick else 200
            dabs, dt, paints = stroke(win, n, step_widget)
            rows.append(
                (
                    f"dab, 4000x3000, brush {size}px, {label} (scale {win.canvas.scale:.2f})",
                    f"{dt / max(1, dabs) * 1000:.2f} ms per dab incl. repaint ({dabs} dabs, "
                    f"repaint median {statistics.median(paints):.2f} ms)",
                )
            )
    win.document.history.mark_clean()
    win.close()
    return rows


def bench_big_view() -> list[tuple[str, str]]:
    rows = []
    win = make_window(64, 48)
    doc = Document.from_image(photo(6000, 8000))
    canvas = win.canvas
    t = time.perf_counter()
    win.set_document(doc)
    canvas.repaint()
    rows.append(
        ("8000x6000: set as the document + first view (fit)", f"{(time.perf_counter() - t) * 1000:.0f} ms")
    )
    for label, zoom in (("fit", None), ("100 %", 1.0), ("33 %", 0.33)):
        if zoom is None:
            canvas.fit()
        else:
            canvas.zoom_to(zoom)
        canvas._become_still()
        t = time.perf_counter()
        canvas.repaint()
        first_frame = (time.perf_counter() - t) * 1000
        while canvas._pending:  # coarser stand-ins were shown: let the refining paints finish
            QApplication.processEvents()
        first = (time.perf_counter() - t) * 1000
        times = []
        for i in range(20):  # panning: every frame is a full repaint from cached tiles
            canvas.pan_by(QPoint(7, 3) if i % 2 else QPoint(-7, -3))
            t = time.perf_counter()
            canvas.repaint()
            times.append((time.perf_counter() - t) * 1000)
        canvas._become_still()
        t = time.perf_counter()
        canvas.repaint()
        smooth = (time.perf_counter() - t) * 1000
        zooms = []
        for i in range(10):  # wheel zoom steps around the current scale (each frame on its own)
            canvas.zoom_by(2 ** (1 / 3) if i % 2 == 0 else 2 ** (-1 / 3))
            t = time.perf_counter()
            canvas.repaint()
            zooms.append((time.perf_counter() - t) * 1000)
            while canvas._pending:
                t = time.perf_counter()
                QApplication.processEvents()
                zooms.append((time.perf_counter() - t) * 1000)
        rows.append(
            (
                f"8000x6000 at {label} (scale {canvas.scale:.3f}), {canvas.width()}x{canvas.height()} view",
                f"first view sharp after {first:.0f} ms (first frame {first_frame:.0f} ms); pan frame median {statistics.median(times):.1f} / max "
                f"{max(times):.1f} ms; still (smooth) {smooth:.1f} ms; wheel-zoom frame max {max(zooms):.0f} ms",
            )
        )
    win.document.history.mark_clean()
    win.close()
    return rows


def bench_stalls(quick: bool) -> list[tuple[str, str]]:
    import torch

    rows = []
    win = make_window(4000, 3000)
    doc = win.document
    m = np.zeros(doc.shape, np.uint8)
    m[1000:1600, 1500:2300] = 255
    doc.set_mask(m)
    win.engine_panel.refresh()
    win.engine_panel.select("torchloop")
    TorchLoopEngine.steps = 40 if quick else 120
    probe = LatenessProbe()

    # idle baseline
    probe.start()
    t_end = time.perf_counter() + 1.0
    while time.perf_counter() < t_end:
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
    probe.stop()
    rows.append(("event loop idle, 1 s", f"worst tick lateness {probe.worst:.1f} ms"))

    for painting in (False, True):
        t0 = time.perf_counter()
        job = win.fill()
        assert job is not None
        QApplication.processEvents()  # the click's own work: snapshot, status bar, first repaint
        click_ms = (time.perf_counter() - t0) * 1000
        probe.start()
        win.set_tool("mask_brush")
        win.brush.size = 60
        canvas = win.canvas
        i = 0
        pressed = False
        while win.controller.busy:
            if painting:
                p = canvas.map_from_image(500 + (i * 7) % 3000, 2500 + 30 * np.sin(i / 7)).toPoint()
                if not pressed:
                    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p)
                    pressed = True
                else:
                    QTest.mouseMove(canvas, p)
                i += 1
                QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 16)
                time.sleep(0.012)  # a mouse sends ~60 moves a second
            else:
                QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        if pressed:
            QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p)
        run_s = time.perf_counter() - t0
        probe.stop()
        what = "while painting a stroke" if painting else "window idle"
        rows.append(
            (
                f"event loop during a {TorchLoopEngine.steps}-step CPU model run ({what})",
                f"worst tick lateness {probe.worst:.1f} ms, p99 {probe.pct(99):.1f} ms, "
                f"{len(probe.late)} ticks over {run_s:.1f} s, job {job.status}; the Fill click itself "
                f"took {click_ms:.0f} ms",
            )
        )
        doc.history.jump_to(doc, 1)
        if job.landed:
            pass
    rows.append(("torch threads", str(torch.get_num_threads())))
    win.document.history.mark_clean()
    win.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from inpaint_studio.ui.threads import init_relay

    init_relay()
    rows = []
    rows += bench_dabs(args.quick)
    rows += bench_big_view()
    rows += bench_stalls(args.quick)
    print(f"\nplatform {app.platformName()}, {os.cpu_count()} CPUs\n")
    w = max(len(r[0]) for r in rows)
    print(f"| {'measurement'.ljust(w)} | result |")
    print(f"| {'-' * w} | --- |")
    for name, value in rows:
        print(f"| {name.ljust(w)} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
