"""One owner for every loaded network part, so engines share them instead of holding private copies.

ASUKA, MTA and ``sd15`` all run on the same Stable Diffusion UNet / VAE / text encoder (2-4 GB each
set). An engine asks :func:`shared_cache` for a part by :class:`ComponentKey` (where it came from, which
part, number format, device) and a loader; the first call loads, every later call with the same key gets
the same object. When a new part would push the parts on its device past the memory budget, the least
recently used other parts are released (the cache drops its reference; an engine that still runs with
one keeps it alive until it finishes). Engines therefore ask the cache at each run and do not keep parts.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

MEMORY_ENV = "INPAINT_STUDIO_MODEL_MEMORY_GB"
RAM_FRACTION = 0.5  # default budget for parts in main memory: half the machine's RAM
GPU_FRACTION = 0.8  # default budget for parts on a GPU: most of its memory, the rest is activations


@dataclass(frozen=True)
class ComponentKey:
    """What identifies one loaded part: ``source`` (a resolved path or an id), ``part`` ("unet",
    "vae", ...), ``dtype`` ("fp32", "bf16", "fp16") and ``device`` ("cpu", "cuda:0", ...)."""

    source: str
    part: str
    dtype: str
    device: str

    @property
    def device_kind(self) -> str:
        return self.device.split(":")[0]


@dataclass(frozen=True)
class CacheEntry:
    key: ComponentKey
    bytes: int
    last_use: float  # time.monotonic() of the last get


def object_bytes(obj: Any) -> int:
    """Memory held by a part: parameters + buffers of an ``nn.Module`` (shared tensors once), a tensor's
    storage, 0 for anything else (tokenizers, configs)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if not isinstance(obj, torch.nn.Module):
        return 0
    seen: set[tuple[int, int]] = set()
    total = 0
    for tensor in [*obj.parameters(), *obj.buffers()]:
        ident = (tensor.data_ptr(), tensor.numel())
        if ident in seen:
            continue
        seen.add(ident)
        total += tensor.numel() * tensor.element_size()
    return total


class ComponentCache:
    """Loads each :class:`ComponentKey` once and shares it; see the module docstring.

    ``budget_bytes``: the most bytes of parts kept on one device (None: no limit); ``budgets`` may set
    another limit per device kind ("cpu", "cuda", "mps"). Thread-safe: concurrent callers of one key
    wait for a single load; different keys load in parallel.
    """

    def __init__(
        self,
        budget_bytes: int | None = None,
        *,
        budgets: Mapping[str, int | None] | None = None,
        sizer: Callable[[Any], int] = object_bytes,
    ) -> None:
        self.budget_bytes = budget_bytes
        self.budgets = dict(budgets or {})
        self._sizer = sizer
        self._lock = threading.Lock()
        self._items: OrderedDict[ComponentKey, tuple[Any, int, float]] = OrderedDict()  # LRU first
        self._pending: dict[ComponentKey, Future] = {}
        self.loads = 0
        self.hits = 0
        self.evictions = 0

    # ------------------------------------------------------------------ queries
    def budget_for(self, device_kind: str) -> int | None:
        return self.budgets.get(device_kind, self.budget_bytes)

    def entries(self) -> list[CacheEntry]:
        """What is loaded, least recently used first."""
        with self._lock:
            return [CacheEntry(k, size, used) for k, (_, size, used) in self._items.items()]

    def __contains__(self, key: ComponentKey) -> bool:
        with self._lock:
            return key in self._items

    def total_bytes(self, device_kind: str | None = None) -> int:
        with self._lock:
            return sum(
                size for k, (_, size, _) in self._items.items() if device_kind in (None, k.device_kind)
            )

    # ------------------------------------------------------------------ get / unload
    def get(self, key: ComponentKey, loader: Callable[[], Any]) -> Any:
        """The part for ``key``, loading it with ``loader()`` the first time."""
        with self._lock:
            if key in self._items:
                value, size, _ = self._items.pop(key)
                self._items[key] = (value, size, time.monotonic())
                self.hits += 1
                return value
            future = self._pending.get(key)
            owner = future is None
            if owner:
                future = self._pending[key] = Future()
        if not owner:
            value = future.result()  # another thread is loading it; its error is ours too
            with self._lock:
                self.hits += 1
            return value
        try:
            value = loader()
            size = int(self._sizer(value))
        except BaseException as err:
            with self._lock:
                self._pending.pop(key, None)
            future.set_exception(err)
            raise
        with self._lock:
            self._make_room(key, size)
            self._items[key] = (value, size, time.monotonic())
            self._pending.pop(key, None)
            self.loads += 1
        future.set_result(value)
        return value

    def unload(self, source: str | None = None) -> int:
        """Release every part (``source`` None) or the parts of one source; returns how many."""
        with self._lock:
            doomed = [k for k in self._items if source is None or k.source == source]
            for k in doomed:
                del self._items[k]
        if doomed:
            _release_memory()
        return len(doomed)

    def _make_room(self, key: ComponentKey, size: int) -> None:
        """Drop least recently used parts on ``key``'s device until ``size`` more bytes fit (lock held)."""
        budget = self.budget_for(key.device_kind)
        if budget is None:
            return
        same_device = [k for k in self._items if k.device_kind == key.device_kind]
        used = sum(self._items[k][1] for k in same_device)
        for victim in same_device:  # OrderedDict order: least recently used first
            if used + size <= budget:
                break
            used -= self._items.pop(victim)[1]
            self.evictions += 1


def _release_memory() -> None:
    """Return freed GPU blocks to the driver, if torch and CUDA are already in use."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def default_budgets() -> tuple[int | None, dict[str, int | None]]:
    """``(budget_bytes, budgets)`` for :func:`shared_cache`: ``$INPAINT_STUDIO_MODEL_MEMORY_GB`` for every
    device, else half the RAM for the CPU and 80 % of the first GPU's memory for CUDA."""
    override = os.environ.get(MEMORY_ENV)
    if override:
        try:
            gb = float(override)
        except ValueError:
            raise ValueError(f"{MEMORY_ENV} must be a number of gigabytes, not {override!r}") from None
        return int(gb * 1024**3), {}
    budgets: dict[str, int | None] = {"cpu": _ram_bytes(RAM_FRACTION)}
    gpu = _cuda_bytes(GPU_FRACTION)
    if gpu is not None:
        budgets["cuda"] = gpu
    return None, budgets


def _ram_bytes(fraction: float) -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * fraction)
    except (AttributeError, ValueError, OSError):  # not POSIX: no limit rather than a wrong one
        return None


def _cuda_bytes(fraction: float) -> int | None:
    try:
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.get_device_properties(0).total_memory * fraction)
    except Exception:  # noqa: BLE001 - a broken driver must not stop the app from starting
        return None
    return None


_SHARED: ComponentCache | None = None
_SHARED_LOCK = threading.Lock()


def shared_cache() -> ComponentCache:
    """The process-wide cache every engine asks for its parts."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            budget, budgets = default_budgets()
            _SHARED = ComponentCache(budget, budgets=budgets)
        return _SHARED
