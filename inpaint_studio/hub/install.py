"""Download a catalogue entry and turn it into store weights: the one flow the CLI and the Models
dialog share.

Every file goes to ``downloads/<id>/`` (resumable, verified); then the entry's import step runs
through the ``importer`` the caller passes in (the same function ``inpaint-studio import`` uses, so
this package never imports the engines). On success the raw download is deleted unless asked to keep
it; when no importer exists for the target yet, the verified download stays and the result says where.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .catalogue import CatalogueEntry, HubSource, ManualSource, UrlSource
from .download import (
    CHUNK,
    TIMEOUT_S,
    CancelFn,
    Downloaded,
    download_hub,
    download_url,
    human_size,
    verify_file,
)
from .store import ORIGIN_NAME, entry_download_dir, weights_dir, write_json

Importer = Callable[[str, Path, Path], Path]  # (import target, downloaded file or folder, dest) -> folder


class ImportFailed(Exception):
    """The import step refused the downloaded checkpoint (the download itself is kept)."""


class NoImporter(ImportFailed):
    """The target has no importer (yet); the download is kept for a later ``models import``."""


class ManualOnly(Exception):
    """The publisher shares the file only through a web page; a person has to fetch it."""


@dataclass(frozen=True)
class FileProgress:
    """Progress of one file of an entry (``index`` of ``count``)."""

    entry_id: str
    path: str
    index: int
    count: int
    done: int
    total: int | None


@dataclass(frozen=True)
class InstallResult:
    entry: CatalogueEntry
    downloads: tuple[Downloaded, ...]
    weights: Path | None  # the store folder written by the import step
    kept: Path | None  # the raw download folder, when it stays
    message: str


def manual_instructions(entry: CatalogueEntry) -> str:
    manual = [f for f in entry.files if isinstance(f.source, ManualSource)]
    pages = sorted({f.source.page for f in manual})  # type: ignore[union-attr]
    names = ", ".join(f.name for f in manual)
    step = (
        f"`inpaint-studio models import {entry.import_target} FILE`" if entry.import_target else "import it"
    )
    return f"{entry.id} cannot be downloaded automatically: fetch {names} from {' '.join(pages)}, then run {step}"


def download_entry(
    entry: CatalogueEntry,
    *,
    progress: Callable[[FileProgress], None] | None = None,
    cancel: CancelFn | None = None,
    endpoint: str | None = None,
    timeout: float = TIMEOUT_S,
    chunk_size: int = CHUNK,
) -> tuple[Path, tuple[Downloaded, ...]]:
    """Fetch (or resume, or re-verify) every file of ``entry`` into its download folder."""
    if not entry.downloadable:
        raise ManualOnly(manual_instructions(entry))
    folder = entry_download_dir(entry.id)
    write_json(
        folder / ORIGIN_NAME, {"catalogue_id": entry.id, "engine": entry.engine, "started": time.time()}
    )
    done: list[Downloaded] = []
    for index, remote in enumerate(entry.files):
        dest = folder / remote.path

        def report(n: int, total: int | None, _i: int = index, _p: str = remote.path) -> None:
            if progress is not None:
                progress(FileProgress(entry.id, _p, _i, len(entry.files), n, total))

        common = dict(
            size=remote.size,
            sha256=remote.sha256,
            md5=remote.md5,
            progress=report,
            cancel=cancel,
            timeout=timeout,
            chunk_size=chunk_size,
        )
        if dest.is_file():  # finished in an earlier run: re-verified here, not fetched again
            got = verify_file(dest, size=remote.size, sha256=remote.sha256, md5=remote.md5)
        elif isinstance(remote.source, HubSource):
            got = download_hub(remote.source, dest, endpoint=endpoint, **common)  # type: ignore[arg-type]
        elif isinstance(remote.source, UrlSource):
            got = download_url(remote.source.url, dest, **common)  # type: ignore[arg-type]
        else:  # pragma: no cover - excluded by entry.downloadable
            raise ManualOnly(manual_instructions(entry))
        done.append(got)
    return folder, tuple(done)


def install(
    entry: CatalogueEntry,
    *,
    importer: Importer | None = None,
    progress: Callable[[FileProgress], None] | None = None,
    cancel: CancelFn | None = None,
    endpoint: str | None = None,
    keep_download: bool = False,
    timeout: float = TIMEOUT_S,
    chunk_size: int = CHUNK,
) -> InstallResult:
    """Download ``entry`` and import it; raises the download errors, :class:`ManualOnly` or
    :class:`ImportFailed` (with the verified download kept)."""
    folder, downloads = download_entry(
        entry, progress=progress, cancel=cancel, endpoint=endpoint, timeout=timeout, chunk_size=chunk_size
    )
    size = human_size(sum(d.size for d in downloads))
    checked = "; ".join(f"{Path(d.path).name}: {d.checked_text}" for d in downloads)
    if importer is None or entry.import_target is None:
        return InstallResult(
            entry, downloads, None, folder, f"downloaded {entry.id} ({size}, checked {checked}) to {folder}"
        )
    source = folder if entry.import_from == "folder" else folder / entry.files[0].path
    dest = weights_dir(entry.import_target, entry.id)
    try:
        written = Path(importer(entry.import_target, source, dest))
    except NoImporter as err:
        return InstallResult(
            entry,
            downloads,
            None,
            folder,
            f"downloaded {entry.id} ({size}, checked {checked}) to {folder}; not imported: {err}. "
            f"Import it later with `inpaint-studio models import {entry.import_target} {source}`",
        )
    write_json(
        written / ORIGIN_NAME,
        {
            "catalogue_id": entry.id,
            "engine": entry.engine,
            "downloaded": [{"file": d.path.name, "size": d.size, "sha256": d.sha256} for d in downloads],
        },
    )
    if not keep_download:
        shutil.rmtree(folder, ignore_errors=True)
    return InstallResult(
        entry,
        downloads,
        written,
        folder if keep_download else None,
        f"installed {entry.id} as {entry.import_target}/{written.name} ({size} downloaded, checked {checked})",
    )
