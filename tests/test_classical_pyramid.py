"""The classical engine on a very large hole fills through a pyramid and stays interactive."""

from __future__ import annotations

import time

import numpy as np

from inpaint_studio.engines import classical
from inpaint_studio.engines.base import Progress, Request, Result
from inpaint_studio.engines.classical import ClassicalEngine


def _gradient(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.dstack([xx / w * 255, yy / h * 255, (xx + yy) / (h + w) * 255]).astype(np.uint8)


def test_large_hole_goes_through_the_pyramid_quickly_and_fills_smoothly(monkeypatch):
    monkeypatch.setattr(classical, "DIRECT_LIMIT", 20_000)  # the same path as a 6000x6000 hole, smaller
    img = _gradient(600, 640)
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[100:500, 120:520] = 255  # 160,000 hole pixels: halved twice to 10,000
    start = time.perf_counter()
    events = list(ClassicalEngine().run(Request(image=img, mask=mask)))
    elapsed = time.perf_counter() - start
    result = next(e.composited(img) for e in events if isinstance(e, Result))
    steps = [e for e in events if isinstance(e, Progress)]
    assert steps[-1].total == 3 and steps[-1].done == 3  # 2 coarser levels + the full-size edge band
    assert np.array_equal(result[mask == 0], img[mask == 0])
    error = np.abs(result.astype(int) - img.astype(int))[mask > 0].mean()
    monkeypatch.setattr(classical, "DIRECT_LIMIT", 10**9)
    direct = next(
        e.composited(img)
        for e in ClassicalEngine().run(Request(image=img, mask=mask))
        if isinstance(e, Result)
    )
    direct_error = np.abs(direct.astype(int) - img.astype(int))[mask > 0].mean()
    assert error <= 1.1 * direct_error, (error, direct_error)  # as good as filling it all at full size
    assert elapsed < 10


def test_small_holes_are_filled_directly():
    img = _gradient(64, 64)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:30, 20:30] = 255
    events = list(ClassicalEngine().run(Request(image=img, mask=mask)))
    assert [e.total for e in events if isinstance(e, Progress)][-1] == 1


def test_the_edge_band_filled_in_tiles_matches_one_call():
    import cv2

    img = cv2.cvtColor(_gradient(1300, 1200), cv2.COLOR_RGB2BGR)
    hole = np.zeros((1300, 1200), np.uint8)
    hole[200:1100, 150:1050] = 255
    core = cv2.erode(hole, np.ones((25, 25), np.uint8))
    band = cv2.subtract(hole, core)
    tiled = classical._inpaint_tiles(img, band, 5.0, cv2.INPAINT_TELEA)
    whole = cv2.inpaint(img, band, 5.0, cv2.INPAINT_TELEA)
    assert np.array_equal(tiled[band == 0], img[band == 0])
    assert np.abs(tiled.astype(int) - whole.astype(int))[band > 0].mean() < 1.0
