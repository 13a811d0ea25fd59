"""Weights on disk: a folder with ``config.json`` + ``model.safetensors`` (never pickle).

One format for everything the app loads and the trainer exports. ``config.json`` holds
``{"engine": ..., "arch": {...constructor kwargs...}, "format": 1, ...extra}``; a model class
is rebuilt as ``Class(**config["arch"])`` and its state dict loaded from the safetensors file.
A bundle may hold several named modules (``<name>.safetensors``), e.g. MaskGIT's VQGAN and
transformer travel together.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported lazily so that listing weights stays cheap
    import torch

CONFIG_NAME = "config.json"
DEFAULT_PART = "model"
FORMAT_VERSION = 1


class BundleError(ValueError):
    """A weights folder is missing, incomplete or for another engine."""


@dataclass
class Bundle:
    """Configuration and tensors of one saved model (possibly several parts)."""

    engine: str
    arch: dict[str, Any]
    parts: dict[str, dict[str, torch.Tensor]]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.parts[DEFAULT_PART]


def is_bundle(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / CONFIG_NAME).is_file()


def save_bundle(
    folder: str | Path,
    engine: str,
    arch: dict[str, Any],
    parts: dict[str, dict[str, torch.Tensor]] | dict[str, torch.Tensor],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a bundle atomically enough that a half-written folder is never picked up.

    ``parts`` is either one state dict (saved as ``model.safetensors``) or ``{name: state_dict}``.
    """
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if parts and all(isinstance(v, torch.Tensor) for v in parts.values()):
        parts = {DEFAULT_PART: parts}  # type: ignore[dict-item]
    for name, state in parts.items():
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}  # type: ignore[union-attr]
        tmp = folder / f".{name}.safetensors.tmp"
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, folder / f"{name}.safetensors")
    config = {
        "engine": engine,
        "format": FORMAT_VERSION,
        "arch": arch,
        "parts": sorted(parts),
        **(extra or {}),
    }
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".config.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp_name, folder / CONFIG_NAME)
    return folder


BASE_MODEL_KEY = "base_model"


def base_model_reference(path: str | Path, kind: str) -> dict[str, Any]:
    """What a bundle's config stores (``extra={"base_model": ...}``) to use a model the person
    already has (a local Stable Diffusion folder or file) by path, instead of copying gigabytes.

    ``kind`` says what the path must be (e.g. ``"sd15-inpainting"``, ``"sd15"``).
    """
    return {"path": str(Path(path).expanduser().resolve()), "kind": kind}


def base_model_of(folder: str | Path) -> tuple[Path, str] | None:
    """The base model a bundle refers to, as (path, kind), or None when it stands alone.

    A relative path is taken relative to the bundle. Raises :class:`BundleError` naming the path
    when the base model is no longer where the bundle says.
    """
    folder = Path(folder)
    named = named_base_model(folder)
    if named is None:
        return None
    path = named[0]
    if not path.exists():
        raise BundleError(
            f"{folder} uses the base model {path}, which is not there any more: put it back or point "
            f"the bundle's {CONFIG_NAME} '{BASE_MODEL_KEY}' at its new place"
        )
    return named


def named_base_model(folder: str | Path) -> tuple[Path, str] | None:
    """The base model a bundle names, as (path, kind), whether or not it is there; None when it names none."""
    folder = Path(folder)
    ref = read_config(folder).get(BASE_MODEL_KEY)
    if not ref:
        return None
    if not isinstance(ref, dict) or not isinstance(ref.get("path"), str):
        raise BundleError(f"{folder / CONFIG_NAME}: {BASE_MODEL_KEY} must be {{'path': ..., 'kind': ...}}")
    path = Path(ref["path"]).expanduser()
    return (path if path.is_absolute() else folder / path), str(ref.get("kind", ""))


def read_config(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    cfg_path = folder / CONFIG_NAME
    if not cfg_path.is_file():
        raise BundleError(f"{folder} holds no {CONFIG_NAME}: not an inpaint-studio weights folder")
    try:
        return json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BundleError(f"{cfg_path} is not valid JSON ({err.msg})") from err


def load_bundle(folder: str | Path, engine: str | None = None, device: str | torch.device = "cpu") -> Bundle:
    """Read a bundle; with ``engine`` given, refuse weights made for another engine."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = read_config(folder)
    if engine is not None and config.get("engine") != engine:
        raise BundleError(f"{folder} holds weights for '{config.get('engine')}', not '{engine}'")
    names = config.get("parts") or [DEFAULT_PART]
    parts = {}
    for name in names:
        file = folder / f"{name}.safetensors"
        if not file.is_file():
            raise BundleError(f"{folder} is incomplete: {file.name} is missing")
        parts[name] = load_file(str(file), device=str(device))
    extra = {k: v for k, v in config.items() if k not in ("engine", "format", "arch", "parts")}
    return Bundle(
        engine=config.get("engine", ""), arch=dict(config.get("arch", {})), parts=parts, extra=extra
    )


def list_bundles(root: str | Path) -> list[Path]:
    """Weights folders directly under ``root``, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return newest_first(p for p in root.iterdir() if is_bundle(p))


def newest_first(folders: Iterable[Path]) -> list[Path]:
    """Weights folders by arrival, newest first: when their ``config.json`` was written (the last file
    of a bundle, and what an import stamps), else the folder's own time. The engines' "newest" and the
    app's weights picker both sort this way, so the picker's "Newest" is the folder the engine uses."""

    def arrived(folder: Path) -> tuple[float, str]:
        config = folder / CONFIG_NAME
        return ((config if config.is_file() else folder).stat().st_mtime, folder.name)

    return sorted(folders, key=arrived, reverse=True)
