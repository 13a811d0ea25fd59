"""Atomic file writes: write a temp file beside the target, fsync, then rename over it.

A crash or a full disk mid-save leaves the previous file intact instead of a half-written one.
The result looks like a normal save: a new file gets the mode the umask gives, a replaced file
keeps its mode, and a target that is a symlink is written through (the link stays a link).

Temp files are named ``.<target>.<random>.istmp`` and held under an ``flock`` while written, so
the next save into the same folder can tell a temp file whose writer died (unlocked) from one
being written right now (locked) and removes the dead ones. :func:`sigterm_cleanup`
also removes the temp files of this process when it is terminated.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: no flock; stale temp files are swept by age instead
    fcntl = None  # type: ignore[assignment]

TEMP_SUFFIX = ".istmp"
_TEMP_RE = re.compile(r"^\..+\.[0-9a-f]{12}\.istmp$")
_LEGACY_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # mkstemp names of earlier versions
_STALE_AGE_S = 3600.0  # unlockable temp files (legacy names, no flock) older than this are orphans
_GRACE_S = 10.0  # an unlocked temp file of ours younger than this may be one just being created

_active: set[str] = set()
_active_lock = threading.Lock()


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """Yield a binary file; on success it replaces ``path`` atomically, on error nothing changes."""
    target = Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(target.parent, target.name)
    try:
        keep_mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        keep_mode = None
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
    # 0o666 filtered by the umask, as for any new file; O_EXCL so we never write into someone else's file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    with _active_lock:
        _active.add(str(tmp))
    try:
        with os.fdopen(fd, "wb") as f:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            if keep_mode is not None:
                os.chmod(tmp, keep_mode)
            yield f
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, target)  # still holding the lock: a sweeper never sees it unlocked
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        with _active_lock:
            _active.discard(str(tmp))
    _fsync_dir(target.parent)


def sweep_stale_temps(folder: str | Path, target: str | None = None) -> list[Path]:
    """Remove temp files of our naming in ``folder`` whose writer is gone; return what was removed.

    Old-style names (``mkstemp``'s ``.<target>.XXXXXXXX.tmp``, no lock) are only removed for the
    ``target`` being saved now and when older than an hour, so that nobody else's file goes.
    """
    removed: list[Path] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        ours = bool(_TEMP_RE.match(name))
        legacy = target is not None and name.startswith(f".{target}.") and bool(_LEGACY_RE.match(name))
        if not (ours or legacy):
            continue
        path = Path(folder) / name
        with _active_lock:
            if str(path) in _active:
                continue
        try:
            age = now - path.lstat().st_mtime
            if ours and fcntl is not None:
                # a writer locks its file right after creating it: a few seconds' grace covers that gap
                if age < _GRACE_S or not _unlocked(path):
                    continue
            elif age < _STALE_AGE_S:
                continue
            if not path.is_file() or path.is_symlink():
                continue
            path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed


def _unlocked(path: Path) -> bool:
    """True when nobody holds the flock of ``path`` (its writer finished or died)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def remove_active_temps() -> None:
    """Delete the temp files this process is writing (called on termination)."""
    with _active_lock:
        pending = list(_active)
    for name in pending:
        with contextlib.suppress(OSError):
            os.unlink(name)


@contextlib.contextmanager
def sigterm_cleanup() -> Iterator[None]:
    """While inside, SIGTERM removes this process's temp files, then exits with 143 (128 + 15).

    The previous handler comes back on leaving. Only from the main thread (Python delivers
    signals there); elsewhere it changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: object) -> None:
        remove_active_temps()
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
