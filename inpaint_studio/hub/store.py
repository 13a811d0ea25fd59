"""What is installed: the weights folders of the model store (``models/<engine>/<name>/``) and the
raw downloads not (yet) imported (``downloads/<catalogue id>/``), each with its files' sizes and
sha256; removing either.

sha256 of a multi-GB file takes seconds, so digests are cached beside the files
(``.checksums.json``, keyed by name, size and modification time) and recomputed only when a file changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..core import paths
from .catalogue import Catalogue, CatalogueEntry
from .download import file_digest

CONFIG_NAME = "config.json"  # what makes a folder a weights folder (models/bundle.py writes it)
ORIGIN_NAME = "origin.json"  # which catalogue entry a folder came from
CHECKSUMS_NAME = ".checksums.json"
_SIDECARS = {ORIGIN_NAME, CHECKSUMS_NAME}


def store_dir() -> Path:
    return paths.models_dir()


def downloads_dir() -> Path:
    return paths.data_dir() / "downloads"


def entry_download_dir(entry_id: str) -> Path:
    return downloads_dir() / _safe_name(entry_id)


def weights_dir(target: str, name: str) -> Path:
    return store_dir() / _safe_name(target) / _safe_name(name)


def _safe_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"{name!r} is not a valid name: use letters, digits, '-', '_' and '.' (no path)")
    return name


@dataclass(frozen=True)
class InstalledFile:
    name: str  # relative to the folder
    size: int
    sha256: str | None


@dataclass(frozen=True)
class Installed:
    engine: str
    name: str
    path: Path
    kind: Literal["weights", "download", "partial"]
    files: tuple[InstalledFile, ...]
    catalogue_id: str | None

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any], *, make_folder: bool = True) -> None:
    if make_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.name not in _SIDECARS and not p.name.startswith(".")
    )


def folder_files(folder: Path, sha256: bool = True) -> tuple[InstalledFile, ...]:
    """Every file under ``folder`` with its size and (cached) sha256; ``.part`` files get no digest."""
    cache_path = folder / CHECKSUMS_NAME
    cache = read_json(cache_path) if sha256 else {}
    out, changed = [], False
    for path in _files(folder):
        rel = path.relative_to(folder).as_posix()
        stat = path.stat()
        digest = None
        if sha256 and not path.name.endswith(".part"):
            key = f"{stat.st_size}:{stat.st_mtime_ns}"
            hit = cache.get(rel)
            if isinstance(hit, dict) and hit.get("key") == key:
                digest = hit.get("sha256")
            else:
                digest = file_digest(path)
                cache[rel] = {"key": key, "sha256": digest}
                changed = True
        out.append(InstalledFile(rel, stat.st_size, digest))
    if changed:
        # a read-only store still lists; a folder removed meanwhile is not brought back by its cache
        with contextlib.suppress(OSError):
            write_json(cache_path, cache, make_folder=False)
    return tuple(out)


def list_installed(engine: str | None = None, *, sha256: bool = True) -> list[Installed]:
    """Weights folders in the store and raw downloads, optionally of one engine only."""
    found: list[Installed] = []
    root = store_dir()
    if root.is_dir():
        for engine_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            if engine is not None and engine_dir.name != engine:
                continue
            for folder in sorted(
                p
                for p in engine_dir.iterdir()
                if p.is_dir() and not p.name.startswith(".") and (p / CONFIG_NAME).is_file()
            ):
                origin = read_json(folder / ORIGIN_NAME)
                found.append(
                    Installed(
                        engine_dir.name,
                        folder.name,
                        folder,
                        "weights",
                        folder_files(folder, sha256),
                        origin.get("catalogue_id"),
                    )
                )
    droot = downloads_dir()
    if droot.is_dir():
        for folder in sorted(p for p in droot.iterdir() if p.is_dir() and not p.name.startswith(".")):
            origin = read_json(folder / ORIGIN_NAME)
            owner = str(origin.get("engine") or "?")
            if engine is not None and owner != engine:
                continue
            files = folder_files(folder, sha256)
            if not files:
                continue
            kind: Literal["download", "partial"] = (
                "partial" if any(f.name.endswith(".part") for f in files) else "download"
            )
            found.append(Installed(owner, folder.name, folder, kind, files, origin.get("catalogue_id")))
    return found


def section_of(item: Installed, catalogue: Catalogue) -> str:
    """The engine an installed item is shown under: its catalogue entry's engine when it came from one
    (ASUKA's prior lives in ``models/asuka-prior`` but belongs to ASUKA), else its store folder."""
    if item.catalogue_id:
        try:
            return catalogue.get(item.catalogue_id).engine
        except KeyError:
            pass
    return item.engine


def remove(engine: str, name: str) -> list[Path]:
    """Delete ``models/<engine>/<name>`` and, when ``name`` is a catalogue id, its raw download too."""
    removed = []
    for folder in (weights_dir(engine, name), entry_download_dir(name)):
        if not folder.is_dir():
            continue
        if folder.parent == downloads_dir() and read_json(folder / ORIGIN_NAME).get("engine") not in (
            engine,
            None,
        ):
            continue
        _remove_tree(folder)
        removed.append(folder)
    if not removed:
        raise FileNotFoundError(
            f"nothing named {name!r} is installed for {engine} (see `inpaint-studio models`)"
        )
    return removed


@dataclass(frozen=True)
class EntryStatus:
    state: Literal["installed", "downloaded", "partial", "missing"]
    text: str
    path: Path | None = None


def entry_status(entry: CatalogueEntry, installed: Iterable[Installed] | None = None) -> EntryStatus:
    """Where a catalogue entry stands: imported, downloaded but not imported, half-downloaded, or absent."""
    items = list(installed) if installed is not None else list_installed(sha256=False)
    for item in items:
        if item.catalogue_id == entry.id and item.kind == "weights":
            return EntryStatus("installed", f"installed as {item.engine}/{item.name}", item.path)
    for item in items:
        if item.catalogue_id != entry.id or item.kind == "weights":
            continue
        if all((item.path / f.path).is_file() for f in entry.files):
            return EntryStatus("downloaded", f"downloaded, not imported ({item.path})", item.path)
        whole = entry.size
        pct = f" ({100 * item.size / whole:.0f} %)" if whole else ""
        return EntryStatus("partial", f"partly downloaded{pct}: download again to resume", item.path)
    return EntryStatus("missing", "not installed")


def _remove_tree(folder: Path, tries: int = 5) -> None:
    """Delete a weights folder even while the Models dialog's background pass writes its checksum cache.

    The folder is first renamed to a hidden name beside it, so nothing can create a file in it any more
    (the cache write goes to the old path and fails) and listings stop showing it at once; only then is
    it deleted. Deleting in place raced that write: a ``.tmp`` file renamed mid-walk made ``rmtree``
    stop with ``FileNotFoundError`` and leave ``config.json`` behind.
    """
    trash = folder.with_name(f".{folder.name}.removing-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(folder, trash)
    except FileNotFoundError:
        return
    for attempt in range(tries):
        try:
            shutil.rmtree(trash)
            return
        except OSError:
            if not trash.exists():
                return
            if attempt == tries - 1:
                raise
            time.sleep(0.05)
