"""Small synthetic photo folders for the trainer tests (made here, nothing from ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file


def make_images(
    folder: Path, count: int = 8, seed: int = 0, sizes=((40, 56), (64, 48), (36, 36))
) -> list[Path]:
    """Gradients with a coloured square, in nested folders, mixed formats and sizes."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        h, w = sizes[i % len(sizes)]
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([xx * 255 // w, yy * 255 // h, np.full((h, w), int(rng.integers(256)))], -1).astype(
            np.uint8
        )
        y, x = int(rng.integers(0, h - 10)), int(rng.integers(0, w - 10))
        img[y : y + 10, x : x + 10] = rng.integers(0, 256, 3)
        sub = folder / ("a" if i % 2 else "b") / ("deep" if i % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    make_images(folder)
    return folder


@pytest.fixture
def make_photos():
    """The :func:`make_images` helper, for tests that need more folders."""
    return make_images


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from more threads; on a shared machine they only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _straight_and_resumed(run, config, tmp_path: Path, **kw):
    """Four steps in one go, and two then two more resumed from the checkpoint: the resumed run's
    last checkpoint must hold the same tensors, bit for bit. Returns (straight, resumed, tensors)."""
    straight = run(config(tmp_path / "a", **kw))
    run(config(tmp_path / "b", steps=2, **kw))
    resumed = run(config(tmp_path / "b", steps=4, resume=str(tmp_path / "b"), **kw))
    assert straight.step == resumed.step == 4
    a = load_file(str(straight.checkpoint / "weights.safetensors"))
    b = load_file(str(resumed.checkpoint / "weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # same data order, masks, optimizer and EMA state
    return straight, resumed, a


@pytest.fixture
def straight_and_resumed():
    """:func:`_straight_and_resumed`, for the resume tests of every task."""
    return _straight_and_resumed
