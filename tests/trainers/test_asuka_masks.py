"""ASUKA's training mask mix, counted over a few hundred draws."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from PIL import Image

from trainers import masks as M
from trainers.asuka_masks import AsukaMasks, enlarge_to_patch_ratio

N = 400
SIZE = 64


@pytest.fixture(scope="module")
def draws():
    masks = AsukaMasks()
    rng = np.random.default_rng(0)
    return [masks.draw(SIZE, SIZE, rng) for _ in range(N)]


def test_basis_mix_is_50_40_10(draws):
    labels = Counter(label for _, label in draws)
    objects = labels["object"] + labels["object+irregular"]
    regular = labels["rectangle"] + labels["complement"]
    assert set(labels) <= {"object", "object+irregular", "irregular", "rectangle", "complement"}
    # binomial sd at n=400 is <= 0.025: 3 sd either side
    assert abs(objects / N - 0.5) < 0.075
    assert abs(labels["irregular"] / N - 0.4) < 0.075
    assert abs(regular / N - 0.1) < 0.045
    assert abs(labels["object+irregular"] / max(objects, 1) - 0.5) < 0.11  # half the objects get lines
    assert labels["rectangle"] > 0 and labels["complement"] > 0


def test_every_hole_ratio_is_within_range(draws):
    ratios = np.array([hole.mean() for hole, _ in draws])
    assert all(hole.dtype == bool and hole.shape == (SIZE, SIZE) for hole, _ in draws)
    assert ratios.min() >= 0.1 and ratios.max() <= 0.75
    assert ratios.std() > 0.1  # a spread of sizes, not one shape


def test_draws_are_reproducible():
    a = AsukaMasks().draw(48, 80, np.random.default_rng(7))
    b = AsukaMasks().draw(48, 80, np.random.default_rng(7))
    assert a[1] == b[1] and np.array_equal(a[0], b[0])


def test_object_shapes_come_from_the_mask_folder(tmp_path):
    star = np.zeros((40, 40), np.uint8)
    star[5:35, 18:22] = 255
    star[18:22, 5:35] = 255  # a plus sign: a shape no synthetic silhouette draws
    Image.fromarray(star).save(tmp_path / "plus.png")
    masks = AsukaMasks(mask_dir=tmp_path, mix={"object": 1.0}, combine=0.0, hole_range=(0.01, 0.75))
    rng = np.random.default_rng(1)
    for _ in range(20):
        hole, label = masks.draw(64, 64, rng)
        assert label == "object"
        ys, xs = np.nonzero(hole)
        box = hole[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        assert box.mean() < 0.5  # a plus fills far less of its box than a blob
        assert box[0, 0] == box[0, -1] == box[-1, 0] == box[-1, -1] == False  # noqa: E712


def test_synthetic_silhouettes_without_a_folder():
    rng = np.random.default_rng(2)
    holes = [M.silhouette(64, 64, rng) for _ in range(50)]
    assert all(h.any() for h in holes)
    assert 0.03 < np.mean([h.mean() for h in holes]) < 0.6


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="weights"):
        AsukaMasks(mix={"strokes": 1.0})
    with pytest.raises(ValueError, match="hole range"):
        AsukaMasks(hole_range=(0.8, 0.2))


def test_enlargement_reaches_75_percent_of_the_patches_with_whole_patches():
    rng = np.random.default_rng(3)
    hole = np.zeros((64, 64), bool)
    hole[10:23, 5:30] = True  # 13 x 25 px, off the 4 px grid
    grown = enlarge_to_patch_ratio(hole, 4, rng)
    cells = grown.reshape(16, 4, 16, 4).transpose(0, 2, 1, 3).reshape(256, 16)
    touched = cells.any(1)
    assert touched.sum() == 256 - int(256 * 0.25) == 192
    assert np.array_equal(grown & hole, hole)  # the original hole is kept as it is
    added = grown & ~hole
    added_cells = added.reshape(16, 4, 16, 4).transpose(0, 2, 1, 3).reshape(256, 16)
    assert set(added_cells.sum(1).tolist()) <= {0, 16}  # whole patches only
    assert enlarge_to_patch_ratio(hole, 4, np.random.default_rng(4)).tolist() != grown.tolist()  # random
    big = np.ones((64, 64), bool)
    assert np.array_equal(enlarge_to_patch_ratio(big, 4, rng), big)
    with pytest.raises(ValueError, match="multiple of the patch"):
        enlarge_to_patch_ratio(np.zeros((30, 30), bool), 4, rng)
