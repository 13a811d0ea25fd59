"""Where a person's SD-1.5 model is: a diffusers folder, or one file in the original LDM layout.

Cheap to call (no torch, no diffusers): the engine's availability check uses it. A weights folder of
the model store (``config.json`` with ``"engine": "sd15"``) may point at the model by path
(``"base_model"``) instead of holding a copy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ...core import paths
from ..bundle import newest_first

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")
BUNDLE_CONFIG = "config.json"
BASE_MODEL_KEY = "base_model"
STORE_BASE = "sd15-base"  # the model store's text-to-image SD-1.5 (catalogue entry and import target)


class ModelSourceError(ValueError):
    """The path is not an SD-1.5 model we can read; the message says what to point at instead."""


@dataclass(frozen=True)
class ModelSource:
    path: Path
    kind: Literal["folder", "single_file"]

    @property
    def id(self) -> str:
        """The component cache's ``source``: one id per model file or folder."""
        return str(self.path)


def store_base_model() -> Path | None:
    """The newest text-to-image SD-1.5 in the model store (``models/sd15-base``): what a BrushNet
    branch, which names no base model, fills over, and what MTA training starts from by default."""
    root = paths.engine_models_dir(STORE_BASE)
    if not root.is_dir():
        return None
    found = newest_first(
        p for p in root.iterdir() if not p.name.startswith(".") and (p / BUNDLE_CONFIG).is_file()
    )
    return found[0] if found else None


def is_diffusers_folder(path: Path) -> bool:
    return path.is_dir() and (
        (path / "model_index.json").is_file() or (path / "unet" / "config.json").is_file()
    )


def model_source(path: str | Path) -> ModelSource:
    """Classify ``path`` (a diffusers folder, a single checkpoint file, or a store folder naming one)."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise ModelSourceError(f"{path} does not exist")
    if path.is_file():
        if path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
            raise ModelSourceError(
                f"{path.name} is not a Stable Diffusion checkpoint ({', '.join(SINGLE_FILE_SUFFIXES)})"
            )
        return ModelSource(path, "single_file")
    if is_diffusers_folder(path):
        return ModelSource(path, "folder")
    if (path / BUNDLE_CONFIG).is_file():
        return _from_bundle(path)
    files = [p for p in sorted(path.iterdir()) if p.suffix.lower() in SINGLE_FILE_SUFFIXES]
    if len(files) == 1:
        return ModelSource(files[0], "single_file")
    raise ModelSourceError(
        f"{path} holds no Stable Diffusion 1.5 model: point at a diffusers folder (model_index.json, unet/, "
        "vae/, text_encoder/, tokenizer/) or at one .safetensors / .ckpt file"
    )


def _from_bundle(folder: Path) -> ModelSource:
    try:
        config: dict[str, Any] = json.loads((folder / BUNDLE_CONFIG).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ModelSourceError(f"{folder / BUNDLE_CONFIG} cannot be read: {err}") from None
    base = config.get(BASE_MODEL_KEY)
    if not base:
        raise ModelSourceError(f"{folder} is a weights folder without a {BASE_MODEL_KEY!r} entry")
    base_path = Path(base).expanduser()
    source = model_source(base_path if base_path.is_absolute() else folder / base_path)
    if source.path == folder:
        raise ModelSourceError(f"{folder} names itself as its base model")
    return source


def unet_in_channels(checkpoint: dict[str, Any]) -> int:
    """9 for an inpainting UNet, 4 for a text-to-image one (from the first conv of an LDM state dict)."""
    weight = checkpoint.get("model.diffusion_model.input_blocks.0.0.weight")
    if weight is None:
        raise ModelSourceError("the checkpoint holds no UNet (no model.diffusion_model.* weights)")
    return int(weight.shape[1])
