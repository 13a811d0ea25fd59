"""Autosave and crash recovery.

While a document is open the app saves it now and then to ``autosave/<document id>.isproj``
with a small JSON record, and holds an ``flock`` on ``<document id>.lock`` for as long as it owns
the document. A clean close removes all three. At start-up, autosaves whose lock nobody holds are
offered for recovery: the OS drops the lock when its process dies, so neither a reused PID nor
the app running as PID 1 in a container hides a crashed session's work.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .atomic import atomic_write
from .document import Document
from .project import ProjectError, load_project, save_project

try:
    import fcntl
except ImportError:  # Windows: fall back to the PID check
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class RecoveryEntry:
    document_id: str
    project: Path
    record: Path
    title: str
    source: str | None
    saved_at: float

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.saved_at))
        return f"{self.title} (autosaved {when})"


class AutosaveStore:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder else paths.autosave_dir()
        self._locks: dict[str, int] = {}  # document id -> fd holding its flock

    def _paths(self, document_id: str) -> tuple[Path, Path]:
        return self.folder / f"{document_id}.isproj", self.folder / f"{document_id}.json"

    def _lock_path(self, document_id: str) -> Path:
        return self.folder / f"{document_id}.lock"

    def _hold(self, document_id: str) -> None:
        """Take (once) the lock that marks ``document_id`` as owned by this process."""
        if fcntl is None or document_id in self._locks:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path(document_id), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return  # another live process owns it (the same document open twice): leave it be
        self._locks[document_id] = fd

    def _release(self, document_id: str) -> None:
        fd = self._locks.pop(document_id, None)
        if fd is not None:
            os.close(fd)  # closing drops the flock

    def save(self, doc: Document, title: str = "Untitled", source: str | Path | None = None) -> Path:
        """Write the autosave copy of ``doc`` (atomic) and its ownership record."""
        project, record = self._paths(doc.id)
        self._hold(doc.id)
        save_project(doc, project, compress_level=1)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "title": title,
            "source": str(source) if source else None,
            "saved_at": time.time(),
        }
        with atomic_write(record) as f:
            f.write(json.dumps(info).encode("utf-8"))
        return project

    def discard(self, document_id: str) -> None:
        for p in self._paths(document_id):
            p.unlink(missing_ok=True)
        if document_id in self._locks or self._lock_free(document_id):
            self._lock_path(document_id).unlink(missing_ok=True)
        self._release(document_id)

    def release_all(self) -> None:
        """Give up every lock (the autosaves stay and will be offered as crashed work)."""
        for document_id in list(self._locks):
            self._release(document_id)

    def _lock_free(self, document_id: str) -> bool:
        """Whether no live process holds the lock of ``document_id``."""
        if document_id in self._locks:
            return False
        try:
            fd = os.open(self._lock_path(document_id), os.O_RDWR)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        finally:
            os.close(fd)
        return True

    def recoverable(self) -> list[RecoveryEntry]:
        """Autosaves left behind by processes that are no longer running (newest first)."""
        if not self.folder.is_dir():
            return []
        out = []
        for record in self.folder.glob("*.json"):
            project = record.with_suffix(".isproj")
            try:
                info = json.loads(record.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if not project.is_file() or not isinstance(info, dict) or self._owned(record.stem, info):
                continue
            out.append(
                RecoveryEntry(
                    document_id=record.stem,
                    project=project,
                    record=record,
                    title=str(info.get("title") or "Untitled"),
                    source=info.get("source"),
                    saved_at=_saved_at(info, project),
                )
            )
        return sorted(out, key=lambda e: e.saved_at, reverse=True)

    def recover(self, entry: RecoveryEntry) -> Document:
        """Load a recovered document. The autosave stays until the caller discards it."""
        try:
            doc = load_project(entry.project)
        except ProjectError as err:
            raise ProjectError(f"cannot recover {entry.title}: {err}") from None
        doc.history.clear()
        doc.history.mark_dirty()  # recovered work is not saved anywhere yet
        return doc

    def _owned(self, document_id: str, info: dict) -> bool:
        """A live process still owns this autosave: flock where the OS has it, else the PID."""
        if fcntl is not None:
            return not self._lock_free(document_id)
        return _owner_alive(info)


def _saved_at(info: dict, project: Path) -> float:
    with contextlib.suppress(TypeError, ValueError):
        return float(info.get("saved_at"))
    return project.stat().st_mtime


def _owner_alive(info: dict) -> bool:
    if info.get("host") != socket.gethostname():
        return False  # cannot tell; a record from another host is offered for recovery
    pid = info.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return pid == os.getpid()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
