"""Mask rasterization and morphology."""

from __future__ import annotations

import numpy as np
import pytest

from inpaint_studio.core import masks
from inpaint_studio.core.geometry import Rect


def test_dab_touches_only_its_rectangle():
    m = np.zeros((300, 400), np.uint8)
    rect = masks.stamp_dab(m, 100.0, 50.0, 20, hardness=1.0)
    ys, xs = np.nonzero(m)
    assert rect.x <= xs.min() and xs.max() < rect.right and rect.y <= ys.min() and ys.max() < rect.bottom
    assert m[50, 100] == 255 and m[50, 115] == 0
    assert abs(np.count_nonzero(m > 127) - np.pi * 10**2) < 0.1 * np.pi * 10**2


def test_soft_brush_falls_off():
    m = np.zeros((100, 100), np.uint8)
    masks.stamp_dab(m, 50, 50, 40, hardness=0.0)
    assert m[50, 50] == 255 and 0 < m[50, 62] < 255 and m[50, 72] == 0


def test_dab_at_edge_is_clipped_and_subtract_erases():
    m = np.zeros((50, 50), np.uint8)
    rect = masks.stamp_dab(m, 0, 0, 30)
    assert rect.x == 0 and rect.y == 0 and m[0, 0] == 255
    masks.stamp_dab(m, 0, 0, 40, mode="subtract")
    assert m.max() == 0
    assert masks.stamp_dab(m, -100, -100, 10).empty


def test_dab_positions_keep_even_spacing_across_segments():
    pts, carry = masks.dab_positions((0, 0), (7, 0), size=10, spacing=0.3)  # step 3
    assert [round(p[0]) for p in pts] == [3, 6]
    pts2, _ = masks.dab_positions((7, 0), (13, 0), size=10, spacing=0.3, carry=carry)
    assert [round(p[0]) for p in pts2] == [9, 12]


def test_polygon_and_rect():
    poly = masks.polygon_mask((100, 100), [(10, 10), (90, 10), (90, 90), (10, 90)])
    assert poly[50, 50] == 255 and poly[5, 5] == 0
    assert 6200 < np.count_nonzero(poly > 127) < 6700  # 80x80 square
    assert not masks.polygon_mask((10, 10), [(1, 1), (5, 5)]).any()
    r = masks.rect_mask((10, 10), Rect(2, 3, 4, 5))
    assert np.count_nonzero(r) == 20


def test_combine_grow_shrink_feather_invert_alpha():
    a = masks.rect_mask((50, 50), Rect(10, 10, 20, 20))
    b = masks.rect_mask((50, 50), Rect(20, 20, 20, 20))
    assert np.count_nonzero(masks.combine(a, b, "add")) == 400 + 400 - 100
    assert np.count_nonzero(masks.combine(a, b, "subtract")) == 300
    grown = masks.grow(a, 3)
    shrunk = masks.shrink(a, 3)
    assert np.count_nonzero(shrunk) < 400 < np.count_nonzero(grown)
    assert (grown >= a).all() and (shrunk <= a).all()
    soft = masks.feather(a, 4)
    assert soft[20, 20] == 255 and 0 < soft[10, 20] < 255
    assert np.array_equal(masks.invert(masks.invert(a)), a)
    alpha = np.full((5, 5), 255, np.uint8)
    alpha[0, 0] = 0
    assert masks.from_alpha(alpha)[0, 0] == 255 and masks.from_alpha(alpha)[1, 1] == 0
    with pytest.raises(ValueError):
        masks.grow(a, -1)
    with pytest.raises(ValueError):
        masks.combine(a, b[:10], "add")
