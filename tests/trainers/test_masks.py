"""Mask generators: shapes, determinism, sizes that follow the recipes, the warm-up, the mixture."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from trainers import masks as M


@pytest.mark.parametrize("kind", [k for k in M.KINDS if k != "object"])
def test_every_kind_gives_a_reproducible_non_empty_bool_mask(kind):
    mix = M.MaskMixture(kind, patch=8)
    a = mix.make(kind, 64, 96, np.random.default_rng(3))
    b = mix.make(kind, 64, 96, np.random.default_rng(3))
    assert a.shape == (64, 96) and a.dtype == bool
    assert np.array_equal(a, b)
    assert a.any() or kind in ("patch", "structured")


def test_patch_mask_drops_exactly_the_ratio_on_the_patch_grid():
    hole = M.patch_mask(64, 64, np.random.default_rng(0), patch=8, ratio=0.5)
    grid = hole.reshape(8, 8, 8, 8).transpose(0, 2, 1, 3).reshape(64, 64)
    assert grid.sum(1).tolist().count(64) == 32  # 32 of 64 patches fully dropped
    assert set(grid.sum(1).tolist()) <= {0, 64}
    assert not M.patch_mask(64, 64, np.random.default_rng(0), 8, 0.0).any()


def test_structured_masks_sit_at_the_nine_anchors():
    assert len(M.CENTER_DICT) == 9
    for anchor, (cy, cx) in M.CENTER_DICT.items():
        hole = M.structured_mask(128, 128, anchor, ratio=0.0625, patch=8)  # a 32 px square
        ys, xs = np.nonzero(hole)
        assert hole.sum() == 32 * 32, anchor
        assert abs(ys.mean() + 0.5 - cy * 128) <= 8 and abs(xs.mean() + 0.5 - cx * 128) <= 8, anchor
        assert ys.min() % 8 == 0 and xs.min() % 8 == 0
    with pytest.raises(ValueError, match="unknown anchor"):
        M.structured_mask(64, 64, "middle_earth", 0.3)


def test_box_complement_keeps_one_rectangle():
    hole = M.box_complement(60, 80, np.random.default_rng(1))
    ys, xs = np.nonzero(~hole)
    assert (~hole).sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1)  # the kept part is a solid box
    assert 0.3 * 60 - 1 <= np.ptp(ys) + 1 <= 0.7 * 60 + 1


def test_mat_mask_stays_inside_the_hole_range():
    rng = np.random.default_rng(0)
    ratios = [M.mat_mask(64, 64, rng, hole_range=(0.2, 0.6)).mean() for _ in range(10)]
    assert all(0.2 < r < 0.6 for r in ratios)


def test_stroke_width_scales_with_resolution():
    small = np.mean([M.brush_strokes(128, 128, np.random.default_rng(i)).mean() for i in range(20)])
    large = np.mean([M.brush_strokes(512, 512, np.random.default_rng(i)).mean() for i in range(20)])
    assert abs(small - large) < 0.1  # the same share of the image at any size


def test_ratio_warmup_grows_the_largest_ratio():
    warm = M.RatioWarmup(0.2, 0.8, 100)
    assert warm.max_ratio(0) == pytest.approx(0.2)
    assert warm.max_ratio(50) == pytest.approx(0.5)
    assert warm.max_ratio(1000) == warm.max_ratio(None) == pytest.approx(0.8)
    mix = M.MaskMixture("patch", patch=8, ratio_range=(0.0, 0.8), warmup=warm)
    early = max(mix(64, 64, np.random.default_rng(i), step=0).mean() for i in range(30))
    late = max(mix(64, 64, np.random.default_rng(i), step=100).mean() for i in range(30))
    assert early <= 0.21 and late > 0.5


def test_mixture_follows_its_weights_and_rejects_unknown_kinds():
    mix = M.MaskMixture("box:3,patch:1")
    rng = np.random.default_rng(0)
    kinds = [mix.draw(32, 32, rng)[1] for _ in range(400)]
    assert 0.65 < kinds.count("box") / 400 < 0.85
    with pytest.raises(ValueError, match="unknown mask kind"):
        M.MaskMixture("blob:1")
    with pytest.raises(ValueError, match="positive weight"):
        M.MaskMixture("box:0")
    with pytest.raises(ValueError, match="mask-dir"):
        M.MaskMixture("object")


def test_object_masks_come_from_a_folder_and_skip_bad_files(tmp_path):
    shape = np.zeros((40, 30), np.uint8)
    shape[5:35, 10:20] = 255
    (tmp_path / "nested").mkdir()
    Image.fromarray(shape).save(tmp_path / "nested" / "bottle.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    mix = M.MaskMixture("object", mask_dir=tmp_path)
    with pytest.warns(UserWarning, match="skipping mask"):
        holes = [mix(64, 64, np.random.default_rng(i)) for i in range(6)]
    for hole in holes:
        ys, xs = np.nonzero(hole)
        assert hole.any() and hole.sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1)  # a scaled solid bar
    with pytest.raises(ValueError, match="no mask images"):
        M.ObjectMasks((tmp_path / "empty").mkdir() or tmp_path / "empty")
