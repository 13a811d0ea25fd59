"""Where ASUKA's four parts are: the person's SD-1.5 inpainting model, a prior, an alignment module and
a decoder.

Cheap (reads ``config.json`` files only, no torch): availability and the model manager use it. An ASUKA
weights folder (``config.json`` with ``"engine": "asuka"``, in the model store's ``models/asuka/<name>/`` or
given by ``--weights``) holds or names its parts:

* the SD-1.5 inpainting model by path (``base_model``, :func:`models.bundle.base_model_reference`), never a
  copy of its gigabytes;
* each ASUKA part as a weights folder written by ``models/asuka/importer.py`` ``save_part``: named in
  ``asuka_parts`` (``{"asuka-prior": "prior", ...}``, relative to the folder or absolute), or found as a
  sub-folder whose ``config.json`` says that part's engine id.

A part the folder does not provide comes from that part's own store (``models/asuka-prior/`` etc., where
``inpaint-studio-train asuka-prior|asuka-align|asuka-decoder`` exports), newest first; the base model from
the parts' ``base_model`` entries (what they were trained on), else the ``sd15`` engine's store. So trained
parts plus an SD-1.5 model in the store are enough, with no ASUKA folder at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models.bundle import (
    BundleError,
    base_model_of,
    base_model_reference,
    is_bundle,
    list_bundles,
    read_config,
)
from .base import WeightsMissing
from .weights import store_dir

ENGINE_ID = "asuka"
PRIOR, ALIGN, DECODER = "asuka-prior", "asuka-align", "asuka-decoder"  # = models/asuka/importer.py's ids
PART_IDS: tuple[str, ...] = (PRIOR, ALIGN, DECODER)
BASE = "base"
BASE_KIND = "sd15-inpainting"
PARTS_KEY = "asuka_parts"

TITLES: dict[str, str] = {
    BASE: "the Stable Diffusion 1.5 inpainting model",
    PRIOR: "the MAE prior",
    ALIGN: "the alignment module",
    DECODER: "the inpainting decoder",
}
HINTS: dict[str, str] = {
    BASE: "point the ASUKA folder's config.json 'base_model' at a local SD-1.5 inpainting diffusers folder "
    "or "
    ".safetensors/.ckpt file, or put one in the sd15 model store (`inpaint-studio import sd15 PATH`)",
    PRIOR: "import the released one (`inpaint-studio import asuka-prior mae_300.pth`, from the "
    "ASUKA-FLUX.1-Fill "
    "release) or train one with `inpaint-studio-train asuka-prior`",
    ALIGN: "train one with `inpaint-studio-train asuka-align` (the released alignment modules are FLUX's "
    "and do not fit SD-1.5)",
    DECODER: "train one with `inpaint-studio-train asuka-decoder`, or set decoder=vanilla to use the "
    "model's own VAE decoder",
}


@dataclass(frozen=True)
class AsukaWeights:
    """What was found: ``folder`` (the ASUKA folder, None when assembled from the stores), ``base`` (a
    :class:`models.diffusion.source.ModelSource`), ``parts`` (part id -> weights folder) and ``problems``
    (``"base"`` or a part id -> why it is missing and how to get it)."""

    folder: Path | None
    base: Any
    parts: Mapping[str, Path] = field(default_factory=dict)
    problems: Mapping[str, str] = field(default_factory=dict)

    def missing(self, decoder: bool = True) -> list[str]:
        """The missing parts, in the order a person gets them (the decoder only if ``decoder``)."""
        wanted = (BASE, PRIOR, ALIGN) + ((DECODER,) if decoder else ())
        return [p for p in wanted if p in self.problems]

    def explain(self, decoder: bool = True) -> str:
        """One line naming every missing part, why, and how to get it."""
        return "ASUKA needs " + "; ".join(self.problems[p] for p in self.missing(decoder))

    def inventory(self) -> list[tuple[str, str, Path | None]]:
        """(part, title, where it is or None) for the four parts: what ASUKA needs and what is there."""
        base_path = self.base.path if self.base is not None else None
        rows = [(BASE, TITLES[BASE], base_path)]
        return rows + [(p, TITLES[p], self.parts.get(p)) for p in PART_IDS]


class AsukaFolderError(ValueError):
    """``--weights`` is not an ASUKA weights folder."""


def find_asuka(weights: str | Path | None = None) -> AsukaWeights:
    """Locate the four parts (see the module docstring); raises :class:`AsukaFolderError` only when
    ``weights`` is given and is not an ASUKA folder. Missing parts are reported, not raised."""
    folder = _asuka_folder(weights)
    config = read_config(folder) if folder is not None else {}
    named = config.get(PARTS_KEY) or {}
    parts: dict[str, Path] = {}
    problems: dict[str, str] = {}
    for part in PART_IDS:
        where, why = _find_part(part, folder, named.get(part))
        if where is not None:
            parts[part] = where
        else:
            problems[part] = f"{TITLES[part]} ({why}): {HINTS[part]}"
    base, why = _find_base(folder, parts)
    if base is None:
        problems[BASE] = f"{TITLES[BASE]} ({why}): {HINTS[BASE]}"
    return AsukaWeights(folder, base, parts, problems)


def write_asuka_folder(
    dest: str | Path,
    base_model: str | Path | None = None,
    parts: Mapping[str, str | Path] | None = None,
) -> Path:
    """An ASUKA folder at ``dest`` that names ``base_model`` and the part folders by path (nothing is copied;
    parts inside ``dest`` are stored relative to it, so the folder can move as a whole)."""
    from ..models.bundle import save_bundle

    dest = Path(dest).expanduser().resolve()
    named: dict[str, str] = {}
    for part, where in (parts or {}).items():
        if part not in PART_IDS:
            raise ValueError(f"{part!r} is not an ASUKA part ({', '.join(PART_IDS)})")
        path = Path(where).expanduser().resolve()
        named[part] = str(path.relative_to(dest)) if path.is_relative_to(dest) else str(path)
    extra: dict[str, Any] = {PARTS_KEY: named}
    if base_model is not None:
        extra["base_model"] = base_model_reference(base_model, BASE_KIND)
    return save_bundle(dest, ENGINE_ID, {}, {}, extra)


# ------------------------------------------------------------------------------------- helpers
def _asuka_folder(weights: str | Path | None) -> Path | None:
    if weights:
        folder = Path(weights).expanduser()
        if not folder.exists():
            raise AsukaFolderError(f"weights path {folder} does not exist")
        if not is_bundle(folder) or _engine_of(folder) != ENGINE_ID:
            raise AsukaFolderError(
                f'{folder} is not an ASUKA weights folder (a config.json with "engine": "asuka", its '
                '"base_model" and "asuka_parts"); point --weights at one, or leave it out to use the parts '
                "in the model store"
            )
        return folder
    found = [p for p in list_bundles(store_dir(ENGINE_ID)) if _engine_of(p) == ENGINE_ID]
    return found[0] if found else None


def _find_part(part: str, folder: Path | None, named: str | None) -> tuple[Path | None, str]:
    if named:
        path = Path(named).expanduser()
        path = path if path.is_absolute() or folder is None else folder / path
        if not is_bundle(path):
            return None, f"{folder} names {path}, which is not a weights folder"
        if _engine_of(path) != part:
            return None, f"{path} holds '{_engine_of(path)}' weights, not '{part}'"
        return path, ""
    if folder is not None:
        inside = [p for p in sorted(folder.iterdir()) if is_bundle(p) and _engine_of(p) == part]
        if inside:
            return inside[0], ""
    stored = [p for p in list_bundles(store_dir(part)) if _engine_of(p) == part]
    if stored:
        return stored[0], ""
    place = f"not in {folder} nor in {store_dir(part)}" if folder else f"none in {store_dir(part)}"
    return None, place


def _find_base(folder: Path | None, parts: Mapping[str, Path]) -> tuple[Any, str]:
    from ..models.diffusion.source import ModelSourceError, model_source

    for holder in ([folder] if folder is not None else []) + [parts[p] for p in PART_IDS if p in parts]:
        try:
            ref = base_model_of(holder)
        except BundleError as err:
            return None, str(err)
        if ref is not None:
            try:
                return model_source(ref[0]), ""
            except ModelSourceError as err:
                return None, f"{holder} names {ref[0]}: {err}"
    from .sd15 import find_model

    try:
        return find_model(None), ""
    except WeightsMissing as err:
        first = str(err).split(";")[0]
        return None, f"none named by the ASUKA parts, and {first}"


def _engine_of(folder: Path) -> str | None:
    try:
        return read_config(folder).get("engine")
    except (BundleError, OSError):
        return None
