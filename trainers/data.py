"""Folder datasets of a person's own photos: recursive listing, a fixed validation split, augmentation.

Images of any size are read with ``inpaint_studio.core.imageio`` (RGB uint8). Training samples are
resized so that the short side is ``resolution`` times a random zoom in [1, ``zoom``], randomly
cropped to ``resolution`` x ``resolution`` and flipped; validation samples are resized and centre
cropped, so they are the same every time. A file that cannot be read is skipped with a warning
(once per file) and another image takes its place, so one bad file never stops a run.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from inpaint_studio.core.imageio import OPEN_SUFFIXES, ImageError, load_image

IMAGE_SUFFIXES = tuple(s for s in OPEN_SUFFIXES if s != ".gif")


class DataError(ValueError):
    """The data folder cannot be used (missing, empty, unreadable)."""


def list_images(folders: Sequence[str | Path]) -> list[Path]:
    """Every image file under ``folders`` (recursive, sorted, hidden files skipped)."""
    if not folders:
        raise DataError("no data folder given: pass --data DIR")
    found: list[Path] = []
    for folder in map(Path, folders):
        folder = folder.expanduser()
        if not folder.exists():
            raise DataError(f"data folder {folder} does not exist")
        if folder.is_file():
            raise DataError(f"--data expects a folder of images, but {folder} is a file")
        try:
            files = [
                p
                for p in folder.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(folder).parts)
            ]
        except PermissionError as err:
            raise DataError(f"cannot read data folder {folder}: {err.strerror or err}") from None
        found.extend(sorted(files))
    if not found:
        where = ", ".join(str(Path(f)) for f in folders)
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {where}")
    return found


def split_validation(
    files: Sequence[Path], fraction: float, root: Sequence[str | Path] = ()
) -> tuple[list, list]:
    """A fixed split: a file goes to validation when the CRC32 of its relative path says so.

    Depends only on the file's own name, so adding photos later never moves old ones across.
    """
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"validation fraction must be in [0, 1), got {fraction}")
    roots = [Path(r).expanduser() for r in root]
    train, val = [], []
    for f in files:
        rel = _relative(f, roots)
        bucket = zlib.crc32(rel.encode("utf-8")) % 10_000
        (val if bucket < fraction * 10_000 else train).append(f)
    if fraction > 0 and not val and len(train) > 1:
        val.append(train.pop())  # tiny folders still get one validation image
    if not train:
        raise DataError("every image landed in the validation split; add images or lower the fraction")
    return train, val


def _relative(path: Path, roots: list[Path]) -> str:
    for r in roots:
        try:
            return path.relative_to(r).as_posix()
        except ValueError:
            continue
    return path.name


class ImageFolder(Dataset):
    """Images as float tensors (3, R, R) in [-1, 1].

    ``train=True`` draws the augmentation from ``seed`` + the sample position, so a run and its
    resumed continuation see the same crops; ``min_length`` repeats a tiny folder so that a
    batch can always be filled.
    """

    def __init__(
        self,
        files: Sequence[Path],
        resolution: int,
        train: bool = True,
        zoom: float = 1.25,
        flip: bool = True,
        seed: int = 0,
        min_length: int = 0,
    ) -> None:
        if not files:
            raise DataError("the dataset has no images")
        if resolution < 8:
            raise DataError(f"resolution must be at least 8, got {resolution}")
        if zoom < 1.0:
            raise DataError(f"zoom must be >= 1, got {zoom}")
        self.files = list(files)
        self.resolution = resolution
        self.train = train
        self.zoom = zoom
        self.flip = flip
        self.seed = seed
        self.length = max(len(self.files), min_length)
        self.epoch = 0
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> torch.Tensor:
        n = len(self.files)
        for attempt in range(n):
            i = (index + attempt) % n
            if i in self._bad:
                continue
            try:
                pixels = load_image(self.files[i])
            except (ImageError, OSError) as err:
                self._bad.add(i)
                warnings.warn(f"skipping unreadable image {self.files[i]}: {err}", stacklevel=2)
                continue
            rng = np.random.default_rng([self.seed, self.epoch, index])
            return to_tensor(self.augment(pixels, rng) if self.train else self.center(pixels))
        raise DataError(f"none of the {n} images could be read (first: {self.files[0]})")

    def augment(self, pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        short = self.resolution * rng.uniform(1.0, self.zoom)
        out = resize_short_side(pixels, short)
        h, w = out.shape[:2]
        y, x = int(rng.integers(0, h - self.resolution + 1)), int(rng.integers(0, w - self.resolution + 1))
        out = out[y : y + self.resolution, x : x + self.resolution]
        if self.flip and rng.random() < 0.5:
            out = out[:, ::-1]
        return out

    def center(self, pixels: np.ndarray) -> np.ndarray:
        return center_crop(pixels, self.resolution)


def resize_short_side(pixels: np.ndarray, short: float) -> np.ndarray:
    h, w = pixels.shape[:2]
    scale = short / min(h, w)
    size = (max(int(round(w * scale)), int(np.ceil(short))), max(int(round(h * scale)), int(np.ceil(short))))
    if size == (w, h):
        return pixels
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(pixels, size, interpolation=interp)


def center_crop(pixels: np.ndarray, resolution: int) -> np.ndarray:
    """Resize the short side to ``resolution`` and cut the centre square (uint8 RGB)."""
    out = resize_short_side(pixels, resolution)
    h, w = out.shape[:2]
    y, x = (h - resolution) // 2, (w - resolution) // 2
    return np.ascontiguousarray(out[y : y + resolution, x : x + resolution])


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """RGB uint8 HxWx3 -> float (3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) or (3, H, W) in [-1, 1] -> uint8 NHWC / HWC."""
    x = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).cpu()
    return (x.permute(0, 2, 3, 1) if x.ndim == 4 else x.permute(1, 2, 0)).numpy()
