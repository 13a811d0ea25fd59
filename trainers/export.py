"""Export trained weights as an app weights folder (safetensors + config.json, ``models/bundle.py``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from inpaint_studio.core import paths
from inpaint_studio.models.bundle import save_bundle

from .task import Task


def export_weights(task: Task, nets: Mapping[str, nn.Module], dest: Path, trained: dict[str, Any]) -> Path:
    """Write ``task.export(nets)`` to ``dest`` with a record of how it was trained."""
    spec = task.export(nets)
    extra = {**spec.extra, "trained": {**trained, "exported": time.strftime("%Y-%m-%d %H:%M:%S")}}
    return save_bundle(dest, task.engine_id, spec.arch, spec.parts, extra)


def store_destination(task: Task, run_name: str) -> Path:
    """``<model store>/<engine>/<run name>``: where the app looks for weights."""
    return paths.engine_models_dir(task.engine_id) / run_name
