"""Fetch one file: resumable (HTTP Range onto ``<name>.part``), verified, cancellable.

Nothing here runs unless a person asked for the download. Bytes go to ``dest.part``; an interrupted
or cancelled transfer leaves that file, and the next call continues from its end. A finished file is
checked (size, then sha256 or md5, whichever the publisher gives) before it is renamed into place;
a file that fails is removed and the error says so. Hugging Face files go through ``huggingface_hub``
for the address, headers and the Hub's own size/sha256, then through the same resumable transfer
(``hf_hub_download`` itself restarts from zero after an interruption and cannot be cancelled).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .catalogue import HubSource

ProgressFn = Callable[[int, int | None], None]  # bytes done, bytes total (None when unknown)
CancelFn = Callable[[], bool]

CHUNK = 1 << 20
TIMEOUT_S = 30.0
HF_ENDPOINT_ENV = "HF_ENDPOINT"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(Exception):
    """The transfer failed (network, HTTP status); any ``.part`` file is kept for a resume."""


class ChecksumError(DownloadError):
    """The finished file is not the published one; it has been removed."""


class DownloadCancelled(DownloadError):
    """The person cancelled; the ``.part`` file is kept for a resume."""


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str
    checks: tuple[str, ...]  # what was verified, e.g. ("size", "sha256"); empty = nothing published

    @property
    def checked_text(self) -> str:
        return ", ".join(self.checks) if self.checks else "nothing (no size or checksum published)"


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1000
    return f"{n} B"


def _hashers(md5: str | None) -> dict[str, hashlib._Hash]:
    found = {"sha256": hashlib.sha256()}
    if md5:
        found["md5"] = hashlib.md5(usedforsecurity=False)
    return found


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _verify(
    part: Path, got_size: int, hashes: dict, size: int | None, sha256: str | None, md5: str | None
) -> tuple[str, ...]:
    """Raise :class:`ChecksumError` (after removing ``part``) unless every published fact matches."""
    checks: list[str] = []
    problems: list[str] = []
    if size is not None:
        checks.append("size")
        if got_size != size:
            problems.append(f"it has {got_size} bytes, the publisher states {size}")
    if sha256 is not None:
        checks.append("sha256")
        if hashes["sha256"].hexdigest() != sha256:
            problems.append(f"sha256 {hashes['sha256'].hexdigest()} differs from the published {sha256}")
    if md5 is not None:
        checks.append("md5" if len(md5) == 32 else f"md5 prefix ({len(md5)} digits)")
        got = hashes["md5"].hexdigest()
        if not got.startswith(md5):
            problems.append(f"md5 {got} does not match the published {md5}")
    if problems:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{part.name.removesuffix('.part')} failed verification ({'; '.join(problems)}); "
            "the file was removed: download it again"
        )
    return tuple(checks)


def _open(url: str, start: int, headers: dict[str, str], timeout: float):
    req = urllib.request.Request(url, headers=dict(headers))
    req.add_header("Accept-Encoding", "identity")
    if start > 0:
        req.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(req, timeout=timeout)


def _where(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.netloc}{parts.path}"


def download_url(
    url: str,
    dest: str | Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    headers: dict[str, str] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    timeout: float = TIMEOUT_S,
    chunk_size: int = CHUNK,
) -> Downloaded:
    """Download ``url`` to ``dest``, resuming ``dest.part`` if present; return what was verified.

    Raises :class:`DownloadError` (network or HTTP failure, ``.part`` kept), :class:`DownloadCancelled`
    (``.part`` kept) or :class:`ChecksumError` (the bad file removed).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest):
        if dest.is_file():
            return verify_file(dest, size=size, sha256=sha256, md5=md5)
        return _download_locked(url, dest, size, sha256, md5, headers, progress, cancel, timeout, chunk_size)


@contextlib.contextmanager
def _exclusive(dest: Path):
    """One download per file at a time (the CLI and the app may both be asked): a second is refused."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; nothing else changes
        yield
        return
    lock_path = dest.with_name(f".{dest.name}.lock")
    lock = open(lock_path, "a+b")  # noqa: SIM115 - held for the whole transfer
    try:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DownloadError(
                f"{dest.name} is already being downloaded by another window or command"
            ) from None
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)  # removed while still held
    finally:
        lock.close()


def _download_locked(
    url: str,
    dest: Path,
    size: int | None,
    sha256: str | None,
    md5: str | None,
    headers: dict[str, str] | None,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
    timeout: float,
    chunk_size: int,
) -> Downloaded:
    part = part_path(dest)
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    hashes = _hashers(md5)
    total = size
    if size is None or have < size:
        have, total = _transfer(
            url, part, have, size, hashes, headers or {}, progress, cancel, timeout, chunk_size
        )
    else:
        _hash_existing(part, hashes)
    checks = _verify(part, have, hashes, size if size is not None else total, sha256, md5)
    os.replace(part, dest)
    return Downloaded(dest, have, hashes["sha256"].hexdigest(), checks)


def verify_file(
    path: str | Path, *, size: int | None = None, sha256: str | None = None, md5: str | None = None
) -> Downloaded:
    """Check a finished file against the published facts; a file that fails is removed."""
    path = Path(path)
    hashes = _hashers(md5)
    _hash_existing(path, hashes)
    try:
        checks = _verify(path, path.stat().st_size, hashes, size, sha256, md5)
    except ChecksumError as err:
        raise ChecksumError(
            str(err).replace(f"{path.name} failed", f"{path.name} (already on disk) failed")
        ) from None
    return Downloaded(path, path.stat().st_size, hashes["sha256"].hexdigest(), checks)


def _hash_existing(part: Path, hashes: dict) -> None:
    with open(part, "rb") as f:
        while block := f.read(CHUNK):
            for h in hashes.values():
                h.update(block)


def _transfer(
    url: str,
    part: Path,
    have: int,
    size: int | None,
    hashes: dict,
    headers: dict[str, str],
    progress: ProgressFn | None,
    cancel: CancelFn | None,
    timeout: float,
    chunk_size: int,
) -> tuple[int, int | None]:
    """Append the rest of ``url`` to ``part``; returns (bytes in part, total the server stated)."""
    where = _where(url)
    try:
        resp = _open(url, have, headers, timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have > 0:  # the part already holds the whole file (size unpublished)
            match = re.match(r"bytes \*/(\d+)", err.headers.get("Content-Range", "") or "")
            if match and int(match.group(1)) == have:
                _hash_existing(part, hashes)
                return have, have
            part.unlink()
            return _transfer(url, part, 0, size, hashes, headers, progress, cancel, timeout, chunk_size)
        raise DownloadError(f"{where}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"cannot reach {where}: {reason}") from None
    with resp:
        start, total = _range_of(resp, have)
        if size is not None and total is not None and total != size:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{where} serves {total} bytes but the publisher states {size}: the file has changed upstream"
            )
        if start == 0:
            have = 0
        else:
            _hash_existing(part, hashes)
        done = have
        with open(part, "ab" if start else "wb") as out:
            if progress:
                progress(done, total)
            while True:
                if cancel is not None and cancel():
                    raise DownloadCancelled(
                        f"cancelled after {human_size(done)} of {human_size(total)}; {part.name} is kept: "
                        "download again to resume"
                    )
                try:
                    block = resp.read(chunk_size)
                except (http.client.IncompleteRead, OSError) as err:
                    out.flush()
                    raise DownloadError(
                        f"the connection to {where} broke after {human_size(done)} of {human_size(total)} "
                        f"({type(err).__name__}); {part.name} is kept: download again to resume"
                    ) from None
                if not block:
                    break
                try:
                    out.write(block)
                except OSError as err:  # a full or read-only disk
                    raise DownloadError(
                        f"cannot write {part}: {err.strerror or err}; {human_size(done)} kept: free space "
                        "and download again to resume"
                    ) from None
                for h in hashes.values():
                    h.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
    if total is not None and done < total:
        raise DownloadError(
            f"the connection to {where} closed after {human_size(done)} of {human_size(total)}; "
            f"{part.name} is kept: download again to resume"
        )
    return done, total


def _range_of(resp, have: int) -> tuple[int, int | None]:
    """(offset the body starts at, full size of the file) from a 200 or 206 answer."""
    length = resp.headers.get("Content-Length")
    if resp.status == 206:
        match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == have:
            full = match.group(3)
            return have, int(full) if full != "*" else None
        raise DownloadError(
            f"{_where(resp.url)} answered a resume with an unexpected range; delete the .part file"
        )
    # 200: the whole file (a server that ignores Range starts over)
    return 0, int(length) if length is not None and length.isdigit() else None


# ------------------------------------------------------------------------------------ Hugging Face
def hub_endpoint(endpoint: str | None = None) -> str | None:
    """The Hub address: the argument, else ``$HF_ENDPOINT`` read now, else huggingface_hub's default."""
    return endpoint or os.environ.get(HF_ENDPOINT_ENV) or None


def download_hub(
    source: HubSource,
    dest: str | Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    timeout: float = TIMEOUT_S,
    chunk_size: int = CHUNK,
) -> Downloaded:
    """A file of a Hugging Face repository: the Hub's metadata first (its size and, for LFS files, its
    sha256 stand in for what the catalogue leaves open), then the resumable transfer."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    endpoint = hub_endpoint(endpoint)
    url = hf_hub_url(
        source.repo_id,
        source.filename,
        revision=source.revision,
        repo_type=None if source.repo_type == "model" else source.repo_type,
        endpoint=endpoint,
    )
    try:
        meta = get_hf_file_metadata(url, token=token, endpoint=endpoint, timeout=timeout)
    except Exception as err:  # huggingface_hub / httpx errors: one line for the person
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DownloadError(f"{source.describe()}: {first}") from None
    hub_sha = meta.etag if meta.etag and _SHA256.match(meta.etag) else None
    if sha256 and hub_sha and hub_sha != sha256:
        raise ChecksumError(
            f"{source.describe()}: the Hub now serves sha256 {hub_sha}, not the published {sha256}; "
            "nothing was downloaded"
        )
    if size is not None and meta.size is not None and meta.size != size:
        raise DownloadError(
            f"{source.describe()}: the Hub states {meta.size} bytes, the catalogue {size}; nothing was downloaded"
        )
    location = meta.location or url
    same_host = urllib.parse.urlsplit(location).netloc == urllib.parse.urlsplit(url).netloc
    headers = dict(build_hf_headers(token=token)) if same_host else {}
    got = download_url(
        location,
        dest,
        size=size if size is not None else meta.size,
        sha256=sha256 or hub_sha,
        md5=md5,
        headers=headers,
        progress=progress,
        cancel=cancel,
        timeout=timeout,
        chunk_size=chunk_size,
    )
    if sha256 is None and hub_sha is not None:
        checks = tuple("sha256 (as the Hub reports it)" if c == "sha256" else c for c in got.checks)
        got = Downloaded(got.path, got.size, got.sha256, checks)
    return got
