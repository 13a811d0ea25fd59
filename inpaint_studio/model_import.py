"""The one import step: a public checkpoint -> a weights folder in the model store.

``inpaint-studio import``, ``inpaint-studio models`` and the Models dialog all call
:func:`import_checkpoint`. A target is an engine id (the engine's own ``import_weights``) or a model
part that engines build on and whose bundle lives under the same name in the store: ``mae`` (the
official MAE checkpoints), ``asuka-prior`` (ASUKA's ``mae_300.pth``), ``mta`` (a BrushNet branch),
``sd15`` (a Stable Diffusion 1.5 inpainting checkpoint, placed where the sd15 engine looks) and
``sd15-base`` (a text-to-image SD-1.5, the base MTA's branch fills over when the branch names none).
An engine's own importer wins over a part importer of the same name.

A weights folder that inpaint-studio itself wrote (``RUN/weights`` from ``inpaint-studio-train`` on
another machine, or a folder copied out of someone's model store) is not converted but checked and
copied, under the engine it names: the trained-on-a-GPU-box, used-on-the-laptop case.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .engines import registry
from .engines.base import Engine, EngineError
from .hub.catalogue import builtin
from .hub.install import ImportFailed, NoImporter
from .hub.store import CHECKSUMS_NAME, weights_dir
from .models.bundle import BASE_MODEL_KEY, CONFIG_NAME, BundleError, is_bundle, read_config

if TYPE_CHECKING:
    from .models.diffusion.source import ModelSource

EXPORT_FOLDER = "weights"  # what the trainer calls a run's export: RUN/weights
GENERIC_STEMS = ("model", "diffusion_pytorch_model", "pytorch_model")  # weight files named by their folder


class WeightsFolderRefused(ImportFailed, ValueError):
    """An inpaint-studio weights folder that cannot go into the store as it is: the input's fault
    (another engine's, incomplete, damaged, or its name taken), so the CLI exits 2."""


def _mae(source: Path, dest: Path) -> Path:
    from .models.mae.importer import import_mae

    return import_mae(source, dest)


def _asuka_prior(source: Path, dest: Path) -> Path:
    from .models.asuka.importer import import_prior

    return import_prior(source, dest)


def _brushnet(source: Path, dest: Path) -> Path:
    from .models.diffusion.brushnet_import import import_brushnet

    return import_brushnet(source, dest)


UNET_CHANNELS_KEY = "model.diffusion_model.input_blocks.0.0.weight"  # an LDM checkpoint's first UNet conv
SD15_KINDS = {
    9: "an inpainting model (9 UNet input channels)",
    4: "a text-to-image model (4 UNet input channels)",
}


def _unet_channels(found: ModelSource) -> int | None:
    """The UNet's input channels where that is cheap to read (a diffusers folder's config, a safetensors
    header); None for a pickled ``.ckpt``, which would have to be loaded whole (the engine checks it)."""
    if found.kind == "folder":
        config = found.path / "unet" / "config.json"
        return int(json.loads(config.read_text(encoding="utf-8")).get("in_channels", 4))
    if found.path.suffix.lower() != ".safetensors":
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(found.path), framework="pt") as f:
            keys = set(f.keys())
            shape = f.get_slice(UNET_CHANNELS_KEY).get_shape() if UNET_CHANNELS_KEY in keys else None
    except Exception as err:  # safetensors' own error type for a damaged or foreign file
        raise ValueError(f"it is not a readable safetensors file ({err})") from None
    if shape is None:
        raise ValueError("it holds no Stable Diffusion UNet (no model.diffusion_model.* weights)")
    return int(shape[1])


def _sd15_model(engine: str, channels: int) -> Callable[[Path, Path], Path]:
    """The placement for one kind of SD-1.5 model: the sd15 engine's inpainting model, or the
    text-to-image base (``sd15-base``) that MTA's branch fills over. A store folder's ``config.json``
    names the model (``base_model``); a checkpoint file is linked into the folder (a hard link: no
    second copy of 4 GB; a copy across disks) and a diffusers folder is referred to where it is."""

    def place(source: Path, dest: Path) -> Path:
        from .models.diffusion.source import BASE_MODEL_KEY, BUNDLE_CONFIG, model_source

        found = model_source(source)
        got = _unet_channels(found)
        if got is not None and got != channels:
            raise ValueError(
                f"it is {SD15_KINDS.get(got, f'a {got}-channel model')}, not {SD15_KINDS[channels]}"
            )
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
        config = {"engine": engine, BASE_MODEL_KEY: base, "format": 1}
        (dest / BUNDLE_CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")
        return dest

    return place


PARTS: dict[str, tuple[str, Callable[[Path, Path], Path]]] = {
    "mae": ("MAE", _mae),
    "asuka-prior": ("ASUKA MAE prior", _asuka_prior),
    "mta": ("BrushNet branch", _brushnet),
    "sd15": ("Stable Diffusion 1.5 inpainting", _sd15_model("sd15", 9)),
    "sd15-base": ("Stable Diffusion 1.5 base", _sd15_model("sd15-base", 4)),
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
        return import_engine_weights(cls, source, dest)
    if weights_folder_engine(source) is not None:
        return copy_weights_folder(target, source, dest)
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


def import_engine_weights(cls: type[Engine], source: str | Path, dest: str | Path) -> Path:
    """An engine's import (the engine panel's Import…, and ``import_checkpoint`` for an engine with an
    importer): an inpaint-studio weights folder is copied, anything else goes to the engine's own importer."""
    source, dest = Path(source), Path(dest)
    if weights_folder_engine(source) is not None:
        return copy_weights_folder(cls.info.id, source, dest)
    try:
        return Path(cls.import_weights(source, dest))
    except EngineError as err:
        raise ImportFailed(str(err)) from err


# ------------------------------------------------------------------ inpaint-studio's own weights folders
def weights_folder_engine(source: Path) -> str | None:
    """The engine an inpaint-studio weights folder is for; None for anything else (a public
    checkpoint folder's ``config.json`` names no engine and no format)."""
    if not is_bundle(source):
        return None
    try:
        config = read_config(source)
    except BundleError:
        return None
    engine = config.get("engine")
    return engine if isinstance(engine, str) and engine and "format" in config else None


def store_name(source: Path) -> str:
    """The default name in the model store: a file's stem, a folder's name; a trainer's export
    ``RUN/weights`` is named after its run, a weight file with a generic name after its folder."""
    source = Path(source).absolute()
    if source.is_dir():
        return source.parent.name if source.name == EXPORT_FOLDER and source.parent.name else source.name
    return source.parent.name if source.stem in GENERIC_STEMS and source.parent.name else source.stem


def destination(target: str, source: Path, name: str | None = None) -> Path:
    """Where ``import`` writes ``source``: ``models/<engine>/<name>``, the engine being the one an
    inpaint-studio weights folder names when it belongs to ``target`` (a part such as
    ``asuka-decoder`` lives under its own name), else ``target``."""
    engine = weights_folder_engine(Path(source))
    section = engine if engine is not None and _belongs_to(engine, target) else target
    return weights_dir(section, name or store_name(Path(source)))


def _belongs_to(engine: str, target: str) -> bool:
    """``asuka-prior`` belongs to ``asuka``, ``maskgit-vqgan`` to ``maskgit``: the store's naming."""
    return engine == target or engine.startswith(f"{target}-")


def copy_weights_folder(target: str, source: Path, dest: Path) -> Path:
    """Check an inpaint-studio weights folder made for ``target`` and copy it to ``dest``.

    Every ``.safetensors`` file is opened (a truncated copy is refused, not installed); the copy is
    written beside ``dest`` and renamed into place, so the app never sees half a folder; an existing
    non-empty ``dest`` is never replaced. A base model named by a relative path is rewritten as an
    absolute one, so the copy still finds it.
    """
    from safetensors import SafetensorError, safe_open

    engine = weights_folder_engine(source)
    if engine is None or not _belongs_to(engine, target):
        raise WeightsFolderRefused(
            f"{source} holds weights for {engine}, not {target}: "
            f"import it with `inpaint-studio models import {engine} {source}`"
        )
    source, dest = source.absolute(), dest.absolute()
    if source.resolve() == dest.resolve():
        return dest  # already where it belongs
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise WeightsFolderRefused(
            f"{dest} already holds weights: give another name (--name) or remove it with "
            f"`inpaint-studio models remove {dest.parent.name} {dest.name}`"
        )
    config = read_config(source)
    parts = config.get("parts")
    files = [source / f"{p}.safetensors" for p in parts] if isinstance(parts, list) else []
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise WeightsFolderRefused(f"{source} is incomplete: {', '.join(missing)} missing")
    for file in sorted({*files, *source.glob("*.safetensors")}):
        try:
            with safe_open(str(file), "pt") as handle:
                handle.keys()
        except (SafetensorError, OSError) as err:
            raise WeightsFolderRefused(f"{file} is damaged ({err}): copy it again") from None
    tmp = dest.parent / f".{dest.name}.importing"
    shutil.rmtree(tmp, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(CHECKSUMS_NAME, ".*.tmp"))
        _absolute_base_model(config, source, tmp)
        os.utime(tmp / CONFIG_NAME)  # the store's "newest" is the latest to arrive, not the oldest trained
        if dest.exists():
            dest.rmdir()  # empty: checked above
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _absolute_base_model(config: dict, source: Path, copy: Path) -> None:
    ref = config.get(BASE_MODEL_KEY)
    if not isinstance(ref, dict) or not isinstance(ref.get("path"), str):
        return
    named = Path(ref["path"]).expanduser()
    if named.is_absolute():
        return
    resolved = (source / named).resolve()
    config = {**config, BASE_MODEL_KEY: {**ref, "path": str(resolved)}}
    (copy / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
