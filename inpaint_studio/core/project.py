"""Project files (``.isproj``): a zip holding ``manifest.json`` and one PNG per layer + the mask.

Saved atomically, so an interrupted save never destroys the previous version. PNG is lossless,
so a project reopens with identical pixels.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .atomic import atomic_write
from .document import Document, MaskStyle
from .imageio import MAX_PIXELS_ENV, encode_png, max_pixels
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


MAX_LAYERS = 256  # a manifest listing more is refused before any pixels are decoded
MAX_MANIFEST_BYTES = 16 << 20
_MAX_NESTING = 64  # JSON deeper than this (in meta) is refused rather than recursed into


def load_project(path: str | Path) -> Document:
    """Read a project, or raise one :class:`ProjectError` whose message says why in one line.

    Nothing is trusted: sizes are checked against the manifest and :func:`max_pixels` before any
    entry is decompressed, and every manifest field is type-checked.
    """
    path = Path(path)
    if not path.exists():
        raise ProjectError(f"{path}: no such file")
    if not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file (a pipe or device)"
        raise ProjectError(f"{path} is {what}, not a project file")
    try:
        with zipfile.ZipFile(path) as zf:
            return _load(zf, path)
    except ProjectError:
        raise
    except zipfile.BadZipFile as err:
        raise ProjectError(f"{path.name}: not a project file, or it is damaged ({_reason(err)})") from None
    except RuntimeError as err:  # an encrypted member
        raise ProjectError(f"{path.name}: damaged project ({_reason(err)})") from None
    except NotImplementedError as err:  # a compression method zipfile does not know
        raise ProjectError(f"{path.name}: unsupported zip compression ({_reason(err)})") from None
    except MemoryError:
        raise ProjectError(f"{path.name}: not enough memory to open this project") from None
    except RecursionError:
        raise ProjectError(f"{path.name}: manifest.json nests too deeply") from None
    except (KeyError, TypeError, ValueError, AttributeError, OSError, EOFError, zlib.error) as err:
        raise ProjectError(f"{path.name}: damaged project ({_reason(err)})") from None


def _load(zf: zipfile.ZipFile, path: Path) -> Document:
    manifest = _read_manifest(zf, path)
    width = _int(manifest.get("width"), "width", path)
    height = _int(manifest.get("height"), "height", path)
    limit = max_pixels()
    if width < 1 or height < 1 or width * height > limit:
        raise ProjectError(
            f"{path.name}: manifest declares a {width}x{height} canvas (limit {limit:,} pixels, "
            f"{MAX_PIXELS_ENV})"
        )
    doc = Document(width, height)
    doc.id = str(manifest.get("document_id") or doc.id)
    doc.meta = _dict(manifest.get("meta"), "meta", path)
    mask_info = _dict(manifest.get("mask"), "mask", path)
    if mask_info.get("file"):
        doc.mask = _read_array(zf, _str(mask_info["file"], "mask file", path), doc.shape, None, path)
    doc.mask_style = MaskStyle(
        color=_colour(mask_info.get("color", MaskStyle.color), path),
        opacity=_fraction(mask_info.get("opacity", MaskStyle.opacity), "mask opacity", path),
        visible=bool(mask_info.get("visible", True)),
    )
    entries = manifest.get("layers", [])
    if not isinstance(entries, list):
        raise ProjectError(f"{path.name}: manifest 'layers' is not a list")
    if len(entries) > MAX_LAYERS:
        raise ProjectError(
            f"{path.name}: manifest lists {len(entries)} layers, more than the {MAX_LAYERS} allowed"
        )
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            raise ProjectError(f"{path.name}: a layer entry is not an object")
        kind = entry.get("kind", "image")
        if kind not in LAYER_KINDS:
            raise ProjectError(f"{path.name}: layer {entry.get('name')!r} has unknown kind {kind!r}")
        name = _str(entry.get("file"), "layer file", path)
        if name in seen:
            raise ProjectError(f"{path.name}: two layers share the file {name}")
        seen.add(name)
        pixels = _read_array(zf, name, doc.shape, 4, path)
        doc._layers.append(
            Layer(
                name=str(entry.get("name", "Layer")),
                kind=kind,
                pixels=pixels,
                visible=bool(entry.get("visible", True)),
                opacity=_fraction(entry.get("opacity", 1.0), "layer opacity", path),
                id=str(entry.get("id")),
                meta=_dict(entry.get("meta"), "layer meta", path),
            )
        )
    active = manifest.get("active_layer")
    ids = {ly.id for ly in doc.layers}
    doc.active_layer_id = (
        active if isinstance(active, str) and active in ids else (doc.layers[-1].id if doc.layers else None)
    )
    return doc


def _read_manifest(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    try:
        info = zf.getinfo("manifest.json")
    except KeyError:
        raise ProjectError(f"{path.name}: no manifest.json inside; not an inpaint-studio project") from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise ProjectError(f"{path.name}: manifest.json declares {info.file_size:,} bytes; damaged project")
    try:
        text = zf.read(info).decode("utf-8")
        manifest = json.loads(text)
    except UnicodeDecodeError:
        raise ProjectError(f"{path.name}: manifest.json is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ProjectError(f"{path.name}: manifest.json is damaged ({err.msg})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ProjectError(f"{path.name}: not an inpaint-studio project")
    if _depth(manifest) > _MAX_NESTING:
        raise ProjectError(f"{path.name}: manifest.json nests too deeply")
    version = _int(manifest.get("version", 0), "version", path)
    if version > VERSION:
        raise ProjectError(
            f"{path.name} was saved by a newer inpaint-studio (format {version}); update the app"
        )
    return manifest


def _read_array(
    zf: zipfile.ZipFile, name: str, shape: tuple[int, int], channels: int | None, path: Path
) -> np.ndarray:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ProjectError(f"{path.name}: {name} is missing from the project") from None
    want = shape if channels is None else (*shape, channels)
    budget = int(np.prod(want)) * 2 + (1 << 20)  # a PNG is never twice its raw pixels
    if info.file_size > budget:
        raise ProjectError(
            f"{path.name}: {name} declares {info.file_size:,} bytes, far more than a "
            f"{shape[1]}x{shape[0]} image needs; damaged project"
        )
    data = zf.read(info)
    mode = "L" if channels is None else "RGBA"
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            if im.size != (shape[1], shape[0]) or im.mode != mode:
                raise ProjectError(
                    f"{path.name}: {name} is a {im.size[0]}x{im.size[1]} {im.mode} image, "
                    f"expected {shape[1]}x{shape[0]} {mode}"
                )
            im.load()
            arr = np.asarray(im).copy()
    except ProjectError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        raise ProjectError(f"{path.name}: {name} is not a readable PNG image") from None
    if arr.shape != want or arr.dtype != np.uint8:
        raise ProjectError(f"{path.name}: {name} has shape {arr.shape} {arr.dtype}, expected {want} uint8")
    return np.ascontiguousarray(arr)


def _reason(err: BaseException) -> str:
    text = str(err).strip().strip("'\"")
    return text.splitlines()[0][:120] if text else type(err).__name__


def _int(value: Any, what: str, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise ProjectError(f"{path.name}: manifest {what} is {value!r}, not a whole number")
    return int(value)


def _str(value: Any, what: str, path: Path) -> str:
    if not isinstance(value, str) or not value:
        raise ProjectError(f"{path.name}: manifest {what} is {value!r}, not a file name")
    return value


def _dict(value: Any, what: str, path: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProjectError(f"{path.name}: manifest {what} is not an object")
    return dict(value)


def _colour(value: Any, path: Path) -> tuple[int, int, int]:
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == 3
        and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)
    )
    if not ok:
        raise ProjectError(f"{path.name}: mask colour {value!r} is not three numbers 0-255")
    return tuple(value)  # type: ignore[return-value]


def _fraction(value: Any, what: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ProjectError(f"{path.name}: {what} {value!r} is not a number between 0 and 1")
    return float(value)


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (a deep document must not blow the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > _MAX_NESTING:
            return deepest
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a project manifest")
