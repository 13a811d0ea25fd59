"""The shared component cache: one load per part, LRU release under a budget, unload, thread safety."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from inpaint_studio.models.components import ComponentCache, ComponentKey, object_bytes, shared_cache


def _key(part: str, source: str = "/models/sd15", device: str = "cpu") -> ComponentKey:
    return ComponentKey(source, part, "fp32", device)


class _Loader:
    """Counts calls and builds a module of a known size (``floats`` fp32 parameters = 4 bytes each)."""

    def __init__(self, floats: int = 256, delay: float = 0.0) -> None:
        self.calls = 0
        self.floats = floats
        self.delay = delay

    def __call__(self) -> torch.nn.Module:
        self.calls += 1
        time.sleep(self.delay)
        return torch.nn.Linear(self.floats, 1, bias=False)


class _FakeEngine:
    """Stands in for an engine: asks the cache for its UNet at every run, keeps nothing."""

    def __init__(self, cache: ComponentCache, loader: _Loader) -> None:
        self.cache, self.loader = cache, loader

    def run(self) -> torch.nn.Module:
        return self.cache.get(_key("unet"), self.loader)


def test_two_engines_asking_for_the_same_part_cause_one_load():
    cache, loader = ComponentCache(), _Loader()
    first, second = _FakeEngine(cache, loader), _FakeEngine(cache, loader)
    a, b = first.run(), second.run()
    assert a is b
    assert loader.calls == 1 and cache.loads == 1 and cache.hits == 1
    other = cache.get(_key("unet", device="cuda:0"), loader)  # another device is another part
    assert other is not a and loader.calls == 2


def test_key_is_hashable_and_compares_by_value():
    assert _key("vae") == _key("vae") and len({_key("vae"), _key("vae"), _key("unet")}) == 2


def test_module_bytes_count_parameters_and_buffers_once():
    net = torch.nn.BatchNorm2d(8)  # weight, bias (8 each) + running mean/var (8 each) + a step counter
    assert object_bytes(net) == 4 * 8 * 4 + 8
    tied = torch.nn.Sequential(torch.nn.Linear(4, 4, bias=False))
    tied.append(tied[0])
    assert object_bytes(tied) == 16 * 4
    assert object_bytes("a tokenizer") == 0


def test_budget_releases_the_least_recently_used_other_parts():
    size = 256 * 4
    cache = ComponentCache(budget_bytes=2 * size)
    loaders = {name: _Loader() for name in ("unet", "vae", "text_encoder")}
    cache.get(_key("unet"), loaders["unet"])
    cache.get(_key("vae"), loaders["vae"])
    cache.get(_key("unet"), loaders["unet"])  # unet is now the most recent; vae the least
    cache.get(_key("text_encoder"), loaders["text_encoder"])
    assert [e.key.part for e in cache.entries()] == ["unet", "text_encoder"]
    assert cache.evictions == 1
    # a part bigger than the whole budget is still returned (never evicts itself), the others go
    big = cache.get(_key("big"), _Loader(floats=1024))
    assert [e.key.part for e in cache.entries()] == ["big"] and isinstance(big, torch.nn.Linear)
    assert cache.evictions == 3


def test_budget_is_per_device():
    size = 256 * 4
    cache = ComponentCache(budget_bytes=size, budgets={"cuda": 2 * size})
    cache.get(_key("unet", device="cuda:0"), _Loader())
    cache.get(_key("vae", device="cuda:0"), _Loader())
    cache.get(_key("unet"), _Loader())  # the CPU has its own budget: nothing on the GPU goes
    assert cache.evictions == 0 and len(cache.entries()) == 3
    cache.get(_key("vae"), _Loader())
    assert cache.evictions == 1 and cache.total_bytes("cpu") == size and cache.total_bytes("cuda") == 2 * size


def test_unload_frees_and_reloads_on_next_use():
    cache, loader = ComponentCache(), _Loader()
    cache.get(_key("unet"), loader)
    cache.get(_key("vae", source="/other"), _Loader())
    assert cache.unload("/models/sd15") == 1
    assert _key("unet") not in cache and _key("vae", source="/other") in cache
    cache.get(_key("unet"), loader)
    assert loader.calls == 2
    assert cache.unload() == 2 and cache.entries() == [] and cache.total_bytes() == 0


def test_concurrent_callers_of_one_key_wait_for_one_load():
    cache, loader = ComponentCache(), _Loader(delay=0.2)
    results: list[object] = []
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        results.append(cache.get(_key("unet"), loader))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert loader.calls == 1 and len(results) == 4 and all(r is results[0] for r in results)
    assert cache.loads == 1 and cache.hits == 3


def test_a_failed_load_is_not_cached_and_reaches_every_waiter():
    cache = ComponentCache()

    def broken() -> None:
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        cache.get(_key("unet"), broken)
    assert cache.entries() == [] and cache.loads == 0
    assert isinstance(cache.get(_key("unet"), _Loader()), torch.nn.Linear)


def test_shared_cache_reads_its_budget_from_the_environment(monkeypatch):
    import inpaint_studio.models.components as components

    monkeypatch.setattr(components, "_SHARED", None)
    monkeypatch.setenv(components.MEMORY_ENV, "1.5")
    cache = shared_cache()
    assert cache is shared_cache() and cache.budget_for("cpu") == int(1.5 * 1024**3)
    monkeypatch.setattr(components, "_SHARED", None)
    monkeypatch.delenv(components.MEMORY_ENV)
    budget = shared_cache().budget_for("cpu")
    assert budget is None or budget > 0
    monkeypatch.setattr(components, "_SHARED", None)
    monkeypatch.setenv(components.MEMORY_ENV, "lots")
    with pytest.raises(ValueError, match="number of gigabytes"):
        shared_cache()
    monkeypatch.setattr(components, "_SHARED", None)


def test_unload_releases_the_cache_reference():
    import gc
    import weakref

    cache = ComponentCache()
    ref = weakref.ref(cache.get(_key("unet"), _Loader()))
    gc.collect()
    assert ref() is not None  # the cache keeps it alive between runs
    cache.unload()
    gc.collect()
    assert ref() is None  # nothing else held it: its memory is back
