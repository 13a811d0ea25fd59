"""The one import step: a public checkpoint -> a weights folder in the model store.

``inpaint-studio import``, ``inpaint-studio models`` and the Models dialog all call
:func:`import_checkpoint`. A target is an engine id (its ``import_weights``) or a model part that no
engine runs on its own but others build on (``mae``: the official MAE checkpoints).
"""

from __future__ import annotations

from pathlib import Path

from .engines import registry
from .engines.base import Engine, EngineError
from .hub.catalogue import builtin
from .hub.install import ImportFailed, NoImporter

PARTS = ("mae",)


def import_targets() -> list[str]:
    return [*registry.engine_ids(), *PARTS]


def has_importer(target: str) -> bool:
    if target in PARTS:
        return True
    try:
        cls = registry.engine_class(target)
    except ValueError:
        return False
    return getattr(cls.import_weights, "__func__", None) is not Engine.import_weights.__func__


def import_checkpoint(target: str, source: str | Path, dest: str | Path) -> Path:
    """Convert ``source`` for ``target`` into ``dest``; returns the written folder.

    Raises ``ValueError`` for an unknown target, :class:`NoImporter` when the target has no
    importer, :class:`ImportFailed` when the checkpoint is refused.
    """
    source, dest = Path(source), Path(dest)
    if target == "mae":
        from .models.mae.importer import import_mae

        try:
            return import_mae(source, dest)
        except (ValueError, KeyError, OSError) as err:
            raise ImportFailed(f"cannot import {source.name} as MAE weights: {err}") from None
    if target not in registry.ENGINES:
        if target in {e.import_target for e in builtin()}:  # a catalogue target whose engine is not here yet
            raise NoImporter(f"this build has no {target} engine yet")
        raise ValueError(f"unknown import target {target!r}; choose one of {', '.join(import_targets())}")
    if not has_importer(target):
        raise NoImporter(f"the {target} engine has no importer for outside checkpoints")
    cls = registry.engine_class(target)
    try:
        return Path(cls.import_weights(source, dest))
    except EngineError as err:
        raise ImportFailed(str(err)) from None
