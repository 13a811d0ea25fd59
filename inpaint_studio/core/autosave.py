"""Autosave and crash recovery.

While a document is open the app saves it now and then to ``autosave/<document id>.isproj``
with a small JSON record of the owning process. A clean close removes both. At start-up, records
whose process is gone are offered for recovery.
"""

from __future__ import annotations

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

    def _paths(self, document_id: str) -> tuple[Path, Path]:
        return self.folder / f"{document_id}.isproj", self.folder / f"{document_id}.json"

    def save(self, doc: Document, title: str = "Untitled", source: str | Path | None = None) -> Path:
        """Write the autosave copy of ``doc`` (atomic) and its ownership record."""
        project, record = self._paths(doc.id)
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
            if not project.is_file() or _owner_alive(info):
                continue
            out.append(
                RecoveryEntry(
                    document_id=record.stem,
                    project=project,
                    record=record,
                    title=str(info.get("title") or "Untitled"),
                    source=info.get("source"),
                    saved_at=float(info.get("saved_at") or project.stat().st_mtime),
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
