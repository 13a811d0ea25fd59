"""Helpers for the UI tests: a synthetic photo, mouse drags in image coordinates, waiting."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication


def photo(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    """A smooth synthetic picture (a gradient with a few shapes), reproducible."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack(
        [x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), (x + y) * 255 // max(1, w + h - 2)], -1
    )
    img = img.astype(np.uint8)
    for _ in range(4):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(5, 20)
        img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.integers(0, 255, 3)
    return img


def widget_point(canvas, x: float, y: float) -> QPoint:
    return canvas.map_from_image(x, y).toPoint()


def drag(qtbot, canvas, points, modifiers=Qt.KeyboardModifier.NoModifier, button=Qt.MouseButton.LeftButton):
    """Press at the first image point, move through the rest, release at the last."""
    wp = [widget_point(canvas, x, y) for x, y in points]
    qtbot.mousePress(canvas, button, modifiers, wp[0])
    for p in wp[1:]:
        qtbot.mouseMove(canvas, p)
    qtbot.mouseRelease(canvas, button, modifiers, wp[-1])
    QApplication.processEvents()


def wait_job(qtbot, window, timeout: int = 10000):
    """Wait until the window's fill controller is idle."""
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=timeout)
    QApplication.processEvents()


def wait_files(qtbot, window, op=None, timeout: int = 10000):
    """Wait until the window's background file operation (open, save, export) has ended;
    returns ``op`` so that a test can write ``assert wait_files(qtbot, w, w.save_to(p)).ok``."""
    qtbot.waitUntil(lambda: not window.file_ops.busy, timeout=timeout)
    QApplication.processEvents()
    return op
