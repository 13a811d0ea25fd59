"""The engines the app offers: the registry's, plus any added at run time (tests, plug-ins).

Availability is re-checked on demand (it is cheap by contract) with the weights folder a
person picked for an engine, if any. An engine module that fails to import is listed as
unavailable with the error as its reason rather than breaking the panel. Engine objects are
kept between runs so that a model loaded once stays loaded.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ..engines import registry
from ..engines.base import Availability, Engine, EngineInfo

log = logging.getLogger(__name__)

KEEP_ENGINES = 2  # loaded models kept in memory at once


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    info: EngineInfo | None  # None when the engine's module cannot be imported
    availability: Availability
    engine_class: type[Engine] | None

    @property
    def title(self) -> str:
        return self.info.title if self.info else self.id


class EngineCatalog:
    def __init__(self) -> None:
        self._extra: dict[str, type[Engine]] = {}
        self.weights: dict[str, str] = {}  # engine id -> weights folder the person chose
        self.device: str | None = None  # None: automatic (CUDA > MPS > CPU)
        self._instances: OrderedDict[tuple, Engine] = OrderedDict()

    def add(self, engine_class: type[Engine]) -> None:
        """Offer an engine class that is not in the registry (tests use scripted fakes)."""
        self._extra[engine_class.info.id] = engine_class

    def ids(self) -> list[str]:
        return [*registry.engine_ids(), *(i for i in self._extra if i not in registry.ENGINES)]

    def entry(self, engine_id: str) -> CatalogEntry:
        weights = self.weights.get(engine_id) or None
        try:
            cls = self._extra.get(engine_id) or registry.engine_class(engine_id)
        except Exception as err:  # a half-written or broken engine module
            log.warning("engine %s cannot be loaded: %s", engine_id, err)
            reason = f"the {engine_id} engine cannot be loaded: {type(err).__name__}: {err}"
            return CatalogEntry(engine_id, None, Availability(False, reason), None)
        try:
            avail = cls.availability(weights)
        except Exception as err:
            avail = Availability(False, f"checking {engine_id} failed: {err}")
        return CatalogEntry(engine_id, cls.info, avail, cls)

    def entries(self) -> list[CatalogEntry]:
        return [self.entry(i) for i in self.ids()]

    def engine(self, engine_id: str) -> Engine:
        """The engine object for a run (reused while its weights and device stay the same)."""
        entry = self.entry(engine_id)
        if entry.engine_class is None:
            raise RuntimeError(entry.availability.reason)
        weights = self.weights.get(engine_id) or None
        key = (engine_id, weights, self.device)
        engine = self._instances.get(key)
        if engine is None:
            engine = entry.engine_class(weights=weights, device=self.device)
            self._instances[key] = engine
            while len(self._instances) > KEEP_ENGINES:
                self._instances.popitem(last=False)
        else:
            self._instances.move_to_end(key)
        return engine

    def set_weights(self, engine_id: str, folder: str | Path | None) -> None:
        if folder:
            self.weights[engine_id] = str(folder)
        else:
            self.weights.pop(engine_id, None)
        self.forget(engine_id)

    def weights_choices(self, engine_id: str) -> list[Path]:
        """The weights folders in the model store for an engine, newest first (the one used
        when the person picked none)."""
        from ..engines.weights import store_dir
        from ..models.bundle import newest_first

        folder = store_dir(engine_id)
        if not folder.is_dir():
            return []
        return newest_first(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def forget(self, engine_id: str | None = None) -> None:
        """Drop cached engine objects (and their models), of one engine or all."""
        for key in [k for k in self._instances if engine_id is None or k[0] == engine_id]:
            del self._instances[key]
