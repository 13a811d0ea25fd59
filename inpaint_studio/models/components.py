"""Placeholder of the shared component cache (the sd-foundation branch brings the full one)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ComponentKey:
    source: str
    part: str
    dtype: str
    device: str


class ComponentCache:
    def __init__(self, budget_bytes: int | None = None) -> None:
        self._items: dict[ComponentKey, Any] = {}
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, key: ComponentKey, loader: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._items:
                self._items[key] = loader()
                self.loads += 1
            return self._items[key]

    def unload(self, source: str | None = None) -> int:
        with self._lock:
            gone = [k for k in self._items if source is None or k.source == source]
            for k in gone:
                del self._items[k]
            return len(gone)


_SHARED = ComponentCache()


def shared_cache() -> ComponentCache:
    return _SHARED
