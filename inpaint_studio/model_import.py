"""The one import step: a public checkpoint -> a weights folder in the model store.

``inpaint-studio import``, ``inpaint-studio models`` and the Models dialog all call
:func:`import_checkpoint`. A target is an engine id (the engine's own ``import_weights``) or a model
part that engines build on and whose bundle lives under the same name in the store: ``mae`` (the
official MAE checkpoints), ``asuka-prior`` (ASUKA's ``mae_300.pth``), ``mta`` (a BrushNet branch),
``sd15`` (a Stable Diffusion 1.5 checkpoint, placed where the sd15 engine looks).
An engine's own importer wins over a part importer of the same name.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

from .engines import registry
from .engines.base import Engine, EngineError
from .hub.catalogue import builtin
from .hub.install import ImportFailed, NoImporter


def _mae(source: Path, dest: Path) -> Path:
    from .models.mae.importer import import_mae

    return import_mae(source, dest)


def _asuka_prior(source: Path, dest: Path) -> Path:
    from .models.asuka.importer import import_prior

    return import_prior(source, dest)


def _brushnet(source: Path, dest: Path) -> Path:
    from .models.diffusion.brushnet_import import import_brushnet

    return import_brushnet(source, dest)


def _sd15(source: Path, dest: Path) -> Path:
    """The sd15 engine reads a store folder whose ``config.json`` names the model (``base_model``), so a
    checkpoint file is linked into the folder (a hard link: no second copy of 4 GB; a copy across
    disks) and a diffusers folder is referred to where it is."""
    from .models.diffusion.source import BASE_MODEL_KEY, BUNDLE_CONFIG, model_source

    found = model_source(source)
    dest.mkdir(parents=True, exist_ok=True)
    if found.kind == "single_file":
        target = dest / found.path.name
        if not target.exists():
            try:
                os.link(found.path, target)
            except OSError:
                shutil.copy2(found.path, target)
        base = found.path.name
    else:
        base = str(found.path)
    config = {"engine": "sd15", BASE_MODEL_KEY: base, "format": 1}
    (dest / BUNDLE_CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")
    return dest


PARTS: dict[str, tuple[str, Callable[[Path, Path], Path]]] = {
    "mae": ("MAE", _mae),
    "asuka-prior": ("ASUKA MAE prior", _asuka_prior),
    "mta": ("BrushNet branch", _brushnet),
    "sd15": ("Stable Diffusion 1.5", _sd15),
}


def import_targets() -> list[str]:
    return list(dict.fromkeys([*registry.engine_ids(), *PARTS]))


def _engine_importer(target: str) -> type[Engine] | None:
    """The engine class when ``target`` is an engine that overrides ``import_weights``."""
    if target not in registry.ENGINES:
        return None
    cls = registry.engine_class(target)
    own = getattr(cls.import_weights, "__func__", None) is not Engine.import_weights.__func__
    return cls if own else None


def import_checkpoint(target: str, source: str | Path, dest: str | Path) -> Path:
    """Convert ``source`` for ``target`` into ``dest``; returns the written folder.

    Raises ``ValueError`` for an unknown target, :class:`NoImporter` when the target has no
    importer (yet), :class:`ImportFailed` when the checkpoint is refused.
    """
    source, dest = Path(source), Path(dest)
    cls = _engine_importer(target)
    if cls is not None:
        try:
            return Path(cls.import_weights(source, dest))
        except EngineError as err:
            raise ImportFailed(str(err)) from err
    if target in PARTS:
        title, fn = PARTS[target]
        try:
            return Path(fn(source, dest))
        except (ValueError, KeyError, OSError, RuntimeError, pickle.UnpicklingError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ImportFailed(f"cannot import {source.name} as {title} weights: {first}") from err
    if target in registry.ENGINES:
        raise NoImporter(f"the {target} engine has no importer for outside checkpoints")
    if target in {e.import_target for e in builtin()}:  # a catalogue target whose engine is not built yet
        raise NoImporter(f"this build has no {target} engine yet")
    raise ValueError(f"unknown import target {target!r}; choose one of {', '.join(import_targets())}")
