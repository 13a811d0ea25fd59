"""Small synthetic photo folders for the trainer tests (made here, nothing from ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


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
