"""Project files (``.isproj``): a zip holding ``manifest.json`` and one PNG per layer + the mask.

Saved atomically, so an interrupted save never destroys the previous version. PNG is lossless,
so a project reopens with identical pixels.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .document import Document, MaskStyle
from .imageio import decode_png, encode_png
from .layers import LAYER_KINDS, Layer

FORMAT = "inpaint-studio-project"
VERSION = 1
SUFFIX = ".isproj"


class ProjectError(ValueError):
    """The project file cannot be read; the message says why in one line."""


def save_project(doc: Document, path: str | Path, compress_level: int = 3) -> Path:
    path = Path(path)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "width": doc.width,
        "height": doc.height,
        "document_id": doc.id,
        "active_layer": doc.active_layer_id,
        "meta": doc.meta,
        "mask": {
            "file": "mask.png",
            "color": list(doc.mask_style.color),
            "opacity": doc.mask_style.opacity,
            "visible": doc.mask_style.visible,
        },
        "layers": [
            {
                "id": ly.id,
                "name": ly.name,
                "kind": ly.kind,
                "visible": ly.visible,
                "opacity": ly.opacity,
                "file": f"layers/{ly.id}.png",
                "meta": ly.meta,
            }
            for ly in doc.layers
        ],
    }
    with atomic_write(path) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, default=_json_default))
        zf.writestr("mask.png", encode_png(doc.mask, compress_level))
        for ly in doc.layers:
            zf.writestr(f"layers/{ly.id}.png", encode_png(ly.pixels, compress_level))
    return path


def load_project(path: str | Path) -> Document:
    path = Path(path)
    if not path.is_file():
        raise ProjectError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = _read_manifest(zf, path)
            doc = Document(int(manifest["width"]), int(manifest["height"]))
            doc.id = str(manifest.get("document_id") or doc.id)
            doc.meta = dict(manifest.get("meta") or {})
            mask_info = manifest.get("mask") or {}
            if mask_info.get("file"):
                doc.mask = _read_array(zf, mask_info["file"], doc.shape, channels=None, path=path)
            doc.mask_style = MaskStyle(
                color=tuple(mask_info.get("color", MaskStyle.color)),
                opacity=float(mask_info.get("opacity", MaskStyle.opacity)),
                visible=bool(mask_info.get("visible", True)),
            )
            for entry in manifest.get("layers", []):
                kind = entry.get("kind", "image")
                if kind not in LAYER_KINDS:
                    raise ProjectError(f"{path.name}: layer {entry.get('name')!r} has unknown kind {kind!r}")
                pixels = _read_array(zf, entry["file"], doc.shape, channels=4, path=path)
                doc._layers.append(
                    Layer(
                        name=str(entry.get("name", "Layer")),
                        kind=kind,
                        pixels=pixels,
                        visible=bool(entry.get("visible", True)),
                        opacity=float(entry.get("opacity", 1.0)),
                        id=str(entry.get("id")),
                        meta=dict(entry.get("meta") or {}),
                    )
                )
            active = manifest.get("active_layer")
            ids = {ly.id for ly in doc.layers}
            doc.active_layer_id = active if active in ids else (doc.layers[-1].id if doc.layers else None)
            return doc
    except ProjectError:
        raise
    except zipfile.BadZipFile:
        raise ProjectError(f"{path.name}: not a project file, or it is damaged") from None
    except (KeyError, TypeError, ValueError, OSError, EOFError) as err:
        raise ProjectError(f"{path.name}: damaged project ({err})") from None


def _read_manifest(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(zf.read("manifest.json"))
    except KeyError:
        raise ProjectError(f"{path.name}: no manifest.json inside; not an inpaint-studio project") from None
    except json.JSONDecodeError as err:
        raise ProjectError(f"{path.name}: manifest.json is damaged ({err.msg})") from None
    if manifest.get("format") != FORMAT:
        raise ProjectError(f"{path.name}: not an inpaint-studio project")
    if int(manifest.get("version", 0)) > VERSION:
        raise ProjectError(
            f"{path.name} was saved by a newer inpaint-studio (format {manifest['version']}); update the app"
        )
    return manifest


def _read_array(
    zf: zipfile.ZipFile, name: str, shape: tuple[int, int], channels: int | None, path: Path
) -> np.ndarray:
    try:
        data = zf.read(name)
    except KeyError:
        raise ProjectError(f"{path.name}: {name} is missing from the project") from None
    arr = decode_png(data)
    want = shape if channels is None else (*shape, channels)
    if arr.shape != want or arr.dtype != np.uint8:
        raise ProjectError(f"{path.name}: {name} has shape {arr.shape}, expected {want}")
    return np.ascontiguousarray(arr)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a project manifest")
