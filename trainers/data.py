"""Training data: folders of a person's own photos or a manifest of (image, mask, caption) rows.

A sample is a dict: ``image`` (float (3, R, R) in [-1, 1]), ``mask`` (float (1, R, R), 1 = hole)
when its row names a mask, ``caption`` (str) when it names one. Three sources give the rows
(:class:`Record`): ``--data DIR`` (every image below the folders, recursively), ``--manifest FILE``
(JSON lines or CSV with the columns ``image``, optional ``mask``, optional ``caption``; paths
relative to the manifest) and ``--catalogue DIR|CSV`` (product photos: ``<root>/<product
name>/*.jpg`` or a CSV of ``file,name``, the product name becoming the caption).

Images of any size are read with ``inpaint_studio.core.imageio`` (RGB uint8). Training samples are
resized so that the short side is ``resolution`` times a random zoom in [1, ``zoom``], randomly
cropped to ``resolution`` x ``resolution`` and flipped, the mask with the same crop and flip;
validation samples are resized and centre cropped, so they are the same every time. A file that
cannot be read (or a mask of another size than its image) is skipped with a warning (once per
row) and another row takes its place, so one bad file never stops a run.
"""

from __future__ import annotations

import csv
import json
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from inpaint_studio.core.imageio import OPEN_SUFFIXES, ImageError, load_image, load_mask

IMAGE_SUFFIXES = tuple(s for s in OPEN_SUFFIXES if s != ".gif")
MANIFEST_SUFFIXES = (".jsonl", ".csv")
Sample = dict[str, Any]  # "image" / "mask" tensors, "caption" str (a list of them once batched)


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


@dataclass(frozen=True)
class Record:
    """One training row: an image, and optionally its hole mask (255 = fill) and its caption."""

    image: Path
    mask: Path | None = None
    caption: str | None = None


def folder_records(folders: Sequence[str | Path]) -> list[Record]:
    return [Record(p) for p in list_images(folders)]


def read_manifest(path: str | Path) -> list[Record]:
    """Rows of a JSON-lines or CSV manifest; relative paths are relative to the manifest's folder."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"manifest {path} does not exist")
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise DataError(f"manifest {path} must be .jsonl (JSON lines) or .csv")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read manifest {path}: {err}") from None
    rows: list[tuple[int, Any]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if "image" not in (reader.fieldnames or []):
            raise DataError(f"{path}: the CSV needs a header with an 'image' column")
        rows = [(i + 2, row) for i, row in enumerate(reader)]
    else:
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((i, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}, line {i}: not valid JSON ({err.msg})") from None
    records = [_record(path, line, row) for line, row in rows]
    if not records:
        raise DataError(f"manifest {path} lists no images")
    return records


def _record(manifest: Path, line: int, row: Any) -> Record:
    where = f"{manifest}, line {line}"
    if not isinstance(row, dict) or not row.get("image"):
        raise DataError(f"{where}: every row needs an 'image'")
    unknown = sorted(set(row) - {"image", "mask", "caption"})
    if unknown:
        raise DataError(f"{where}: unknown column(s) {', '.join(unknown)} (image, mask, caption)")

    def located(value: str) -> Path:
        file = (manifest.parent / Path(value).expanduser()).resolve()
        if not file.is_file():
            raise DataError(f"{where}: {value} does not exist")
        return file

    caption = row.get("caption")
    return Record(
        located(str(row["image"])),
        located(str(row["mask"])) if row.get("mask") else None,
        None if caption is None or caption == "" else str(caption),
    )


def catalogue_records(source: str | Path) -> list[Record]:
    """Product photos captioned with their product's name.

    ``source`` is a folder laid out ``<root>/<product name>/<photos>`` (photos below a product's
    folder, at any depth) or a CSV with the columns ``file,name`` (files relative to the CSV).
    """
    source = Path(source).expanduser()
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise DataError(f"--catalogue takes a folder or a CSV of file,name; {source} is neither")
        text = source.read_text(encoding="utf-8-sig").splitlines()
        reader = csv.DictReader(text)
        if not {"file", "name"} <= set(reader.fieldnames or []):
            raise DataError(f"{source}: the catalogue CSV needs the columns file,name")
        return [
            _record(source, i + 2, {"image": row["file"], "caption": row["name"]})
            for i, row in enumerate(reader)
        ]
    if not source.is_dir():
        raise DataError(f"catalogue {source} does not exist")
    products = sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    records = []
    for product in products:
        try:
            records += [Record(f, caption=product.name) for f in list_images([product])]
        except DataError:
            continue  # a product folder without photos
    if not records:
        raise DataError(
            f"no product folders with images in {source} (expected {source}/<product name>/*.jpg)"
        )
    return records


def write_manifest(records: Sequence[Record], path: Path) -> Path:
    """The rows as JSON lines, paths relative to ``path``'s folder where they lie below it."""

    def rel(file: Path) -> str:
        try:
            return file.resolve().relative_to(path.parent.resolve()).as_posix()
        except ValueError:
            return str(file.resolve())

    lines = []
    for r in records:
        row: dict[str, str] = {"image": rel(r.image)}
        if r.mask is not None:
            row["mask"] = rel(r.mask)
        if r.caption is not None:
            row["caption"] = r.caption
        lines.append(json.dumps(row, ensure_ascii=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def records_from(folders: Sequence[str | Path], manifest: str | None, catalogue: str | None) -> list[Record]:
    """The rows of whichever source was given (folders, a manifest, or a catalogue)."""
    if manifest:
        return read_manifest(manifest)
    if catalogue:
        return catalogue_records(catalogue)
    if (
        len(folders) == 1
        and Path(folders[0]).suffix.lower() in MANIFEST_SUFFIXES
        and Path(folders[0]).is_file()
    ):
        return read_manifest(folders[0])  # --val-data may name a manifest too
    return folder_records(folders)


def split_roots(folders: Sequence[str | Path], manifest: str | None, catalogue: str | None) -> list[Path]:
    """The folders that rows' paths are taken relative to for the validation split: the data folders,
    or where the manifest / catalogue lies (so 'Mug/0.jpg' and 'Shoe/0.jpg' are told apart)."""
    if folders:
        return [Path(f) for f in folders]
    source = Path(manifest or catalogue or ".").expanduser().resolve()
    return [source if source.is_dir() else source.parent]


def split_validation(
    files: Sequence[Any], fraction: float, root: Sequence[str | Path] = ()
) -> tuple[list, list]:
    """A fixed split: a file (or :class:`Record`) goes to validation when the CRC32 of its image's
    relative path says so.

    Depends only on the file's own name, so adding photos later never moves old ones across.
    """
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"validation fraction must be in [0, 1), got {fraction}")
    roots = [Path(r).expanduser() for r in root]
    train, val = [], []
    for f in files:
        rel = _relative(f.image if isinstance(f, Record) else Path(f), roots)
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


class ImageDataset(Dataset):
    """Samples (see the module docstring) of :class:`Record` rows (or plain image paths).

    ``train=True`` draws the augmentation from ``seed`` + the sample position, so a run and its
    resumed continuation see the same crops; ``min_length`` repeats a tiny set so that a batch can
    always be filled.
    """

    def __init__(
        self,
        records: Sequence[Record | Path],
        resolution: int,
        train: bool = True,
        zoom: float = 1.25,
        flip: bool = True,
        seed: int = 0,
        min_length: int = 0,
    ) -> None:
        if not records:
            raise DataError("the dataset has no images")
        if resolution < 8:
            raise DataError(f"resolution must be at least 8, got {resolution}")
        if zoom < 1.0:
            raise DataError(f"zoom must be >= 1, got {zoom}")
        self.records = [r if isinstance(r, Record) else Record(Path(r)) for r in records]
        self.resolution = resolution
        self.train = train
        self.zoom = zoom
        self.flip = flip
        self.seed = seed
        self.length = max(len(self.records), min_length)
        self.epoch = 0
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> Sample:
        n = len(self.records)
        for attempt in range(n):
            i = (index + attempt) % n
            if i in self._bad:
                continue
            record = self.records[i]
            try:
                pixels = load_image(record.image)
                mask = load_mask(record.mask, pixels.shape[:2]) if record.mask is not None else None
            except (ImageError, OSError) as err:
                self._bad.add(i)
                warnings.warn(f"skipping unreadable image {record.image}: {err}", stacklevel=2)
                continue
            rng = np.random.default_rng([self.seed, self.epoch, index])
            pixels, mask = self.augment(pixels, mask, rng) if self.train else self.center(pixels, mask)
            sample: Sample = {"image": to_tensor(pixels)}
            if mask is not None:
                sample["mask"] = torch.from_numpy(np.ascontiguousarray(mask > 127)).float()[None]
            if record.caption is not None:
                sample["caption"] = record.caption
            return sample
        raise DataError(f"none of the {n} images could be read (first: {self.records[0].image})")

    def augment(
        self, pixels: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        short = self.resolution * rng.uniform(1.0, self.zoom)
        out = resize_short_side(pixels, short)
        h, w = out.shape[:2]
        y, x = int(rng.integers(0, h - self.resolution + 1)), int(rng.integers(0, w - self.resolution + 1))
        flip = self.flip and rng.random() < 0.5

        def crop(a: np.ndarray) -> np.ndarray:
            a = a[y : y + self.resolution, x : x + self.resolution]
            return a[:, ::-1] if flip else a

        return crop(out), None if mask is None else crop(resize_short_side(mask, short))

    def center(self, pixels: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        return center_crop(pixels, self.resolution), None if mask is None else center_crop(
            mask, self.resolution
        )


def collate(samples: Sequence[Sample]) -> Sample:
    """A batch of samples: tensors stacked, captions listed (``""`` where a row has none).

    When only some rows have a mask, the others get an empty one and ``mask_given`` (N,) says
    which are real, so a task can draw its own holes for the rest.
    """
    batch: Sample = {"image": torch.stack([s["image"] for s in samples])}
    with_mask = [("mask" in s) for s in samples]
    if any(with_mask):
        empty = torch.zeros_like(samples[0]["image"][:1])
        batch["mask"] = torch.stack([s.get("mask", empty) for s in samples])
        batch["mask_given"] = torch.tensor(with_mask)
    if any("caption" in s for s in samples):
        batch["caption"] = [s.get("caption", "") for s in samples]
    return batch


def to_device(batch: Sample, device: torch.device) -> Sample:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
    }


def resize_short_side(pixels: np.ndarray, short: float) -> np.ndarray:
    """An image (or a mask of its size: the same size comes out) with its short side at ``short``."""
    h, w = pixels.shape[:2]
    scale = short / min(h, w)
    size = (max(int(round(w * scale)), int(np.ceil(short))), max(int(round(h * scale)), int(np.ceil(short))))
    if size == (w, h):
        return pixels
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(pixels, size, interpolation=interp)


def center_crop(pixels: np.ndarray, resolution: int) -> np.ndarray:
    """Resize the short side to ``resolution`` and cut the centre square (uint8 RGB or a mask)."""
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
