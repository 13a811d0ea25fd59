"""The engines the app knows, loaded lazily so that listing them imports no model code."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from .base import Availability, Engine, EngineInfo

# id -> "module:Class". Add one line per engine; the module is imported on first use only.
ENGINES: dict[str, str] = {
    "classical": "inpaint_studio.engines.classical:ClassicalEngine",
    "inpnet": "inpaint_studio.engines.inpnet:InpNetEngine",
    "maskgit": "inpaint_studio.engines.maskgit:MaskGitEngine",
    "mat": "inpaint_studio.engines.mat:MatEngine",
    "mta": "inpaint_studio.engines.mta:MtaEngine",
    "sd15": "inpaint_studio.engines.sd15:SD15Engine",
    "asuka": "inpaint_studio.engines.asuka:AsukaEngine",
}

DEFAULT_ENGINE = "classical"


@dataclass(frozen=True)
class EngineEntry:
    info: EngineInfo
    availability: Availability
    engine_class: type[Engine]


def engine_ids() -> list[str]:
    return list(ENGINES)


def engine_class(engine_id: str) -> type[Engine]:
    try:
        target = ENGINES[engine_id]
    except KeyError:
        raise ValueError(f"unknown engine {engine_id!r}; choose one of {', '.join(ENGINES)}") from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def describe(engine_id: str, weights: str | Path | None = None) -> EngineEntry:
    cls = engine_class(engine_id)
    return EngineEntry(cls.info, cls.availability(weights), cls)


def describe_all() -> list[EngineEntry]:
    return [describe(i) for i in ENGINES]


def create(engine_id: str, weights: str | Path | None = None, device: str | None = None) -> Engine:
    return engine_class(engine_id)(weights=weights, device=device)
