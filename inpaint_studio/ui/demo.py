"""A scripted walk-through of the app, used for the README screenshot and as a smoke test.

``python -m inpaint_studio.ui.demo`` opens the sample photo, paints a mask over the spoon with
the real mask brush (simulated mouse strokes), fills it with the classical engine, then draws
a second, not yet filled mask with the lasso, and leaves the window open.
"""

from __future__ import annotations

import argparse
import sys

from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

SPOON_HANDLE = [(414, 66), (411, 100), (407, 140), (402, 180), (394, 210), (383, 236), (376, 250)]
SPOON_BOWL = [(342, 262), (388, 262), (396, 298), (352, 312), (338, 288), (366, 284), (372, 320)]
SCRATCHES = [(8, 226), (70, 214), (86, 236), (30, 262), (6, 252)]


def _stroke(window, points, size: float) -> None:
    canvas = window.canvas
    window.set_tool("mask_brush")
    window.brush.size = size
    window.brush.hardness = 0.85
    pts = [canvas.map_from_image(x, y).toPoint() for x, y in points]
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pts[0])
    for p in pts[1:]:
        QTest.mouseMove(canvas, p)
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pts[-1])


def _lasso(window, points, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    canvas = window.canvas
    window.set_tool("lasso")
    pts = [canvas.map_from_image(x, y).toPoint() for x, y in points]
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, modifier, pts[0])
    for a, b in zip(pts, pts[1:] + pts[:1], strict=True):
        for t in range(1, 9):
            QTest.mouseMove(canvas, a + (b - a) * t / 8)
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, modifier, pts[0])


def run_demo(window, done=None) -> None:
    """Drive ``window`` through the walk-through; ``done()`` is called at the end."""

    def paint_spoon() -> None:
        window.canvas.zoom_to(1.6)
        window.canvas.pan_by(window.canvas.map_from_image(300, 200) * -1 + _center(window))
        _stroke(window, SPOON_HANDLE, 22)
        _stroke(window, SPOON_BOWL, 56)
        window.radius_spin.setValue(5)
        window.act_grow.trigger()
        window.engine_panel.select("classical")
        window.engine_panel.form.set_values({"radius": 3, "method": "ns"})
        window.controller.job_finished.connect(after_fill)
        window.fill()

    def after_fill(job) -> None:
        window.controller.job_finished.disconnect(after_fill)
        window.act_clear.trigger()
        _lasso(window, SCRATCHES)
        window.set_tool("mask_brush")
        window.canvas.tool.hover = window.canvas.map_from_image(250, 330)
        window.canvas.update()
        if done is not None:
            QTimer.singleShot(200, done)

    def start() -> None:
        if window.file_ops.busy or window.document is None:  # the sample is still opening
            QTimer.singleShot(100, start)
            return
        paint_spoon()

    QTimer.singleShot(300, start)


def _center(window):
    c = window.canvas
    return QPoint(c.width() // 2, c.height() // 2).toPointF()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--theme", default="dark", choices=("light", "dark", "system"))
    ap.add_argument("--quit", action="store_true", help="quit when the walk-through is done")
    ap.add_argument("--size", default="1600x1000", help="window size WxH")
    args = ap.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("inpaint-studio")
    from .compat import binding_problem
    from .main_window import MainWindow
    from .threads import init_relay

    problem = binding_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    init_relay()
    window = MainWindow()
    window.set_theme(args.theme, save=False)
    w, h = (int(v) for v in args.size.split("x"))
    window.setGeometry(0, 0, w, h)
    window.show()
    window.open_sample()

    def finish() -> None:
        if args.quit:
            window.document.history.mark_clean()
            window.close()

    run_demo(window, finish)
    return int(app.exec())


if __name__ == "__main__":
    raise SystemExit(main())
