"""Options of a training run: the shared ones (:class:`TrainConfig`) and each model's own.

A task declares its own options as a frozen dataclass (``Task.Options``), beside the task, and
inherits the small groups below that several tasks share (VGG weights, a mask folder); the CLI
shows them under the model's subcommand only.

Both are frozen dataclasses whose fields carry their help text in ``metadata["help"]``; the CLI
builds its flags from them, a ``--config`` file (JSON, or TOML on Python 3.11+) fills them, and a
run folder saves them as JSON so a run can be repeated and resumed.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def opt(default: Any, help: str, **extra: Any) -> Any:  # noqa: A002 - mirrors argparse's name
    """A dataclass field with help text (and optional ``choices``)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for sequence defaults")
    return field(default=default, metadata={"help": help, **extra})


def check_choices(options: Any) -> None:
    """Refuse a value outside a field's ``choices``, as the CLI would, for options built in code."""
    for f in fields(options):
        allowed = f.metadata.get("choices")
        if allowed is not None and getattr(options, f.name) not in allowed:
            name = f.name.replace("_", "-")
            raise ValueError(
                f"{name} must be one of {', '.join(map(str, allowed))}, got {getattr(options, f.name)!r}"
            )


@dataclass(frozen=True)
class TrainConfig:
    """Options every model shares. Model-specific options live in each task's ``Options``."""

    data: tuple[str, ...] = opt((), "folder(s) of training images, searched recursively")
    manifest: str | None = opt(
        None, "instead of --data: a .jsonl or .csv listing image, optional mask and caption per row"
    )
    catalogue: str | None = opt(
        None,
        "instead of --data: product photos as ROOT/<product name>/*.jpg or a CSV of file,name "
        "(the name becomes the caption; the run saves the rows as manifest.jsonl)",
    )
    val_data: tuple[str, ...] = opt(
        (), "folder(s) of validation images, or one manifest (default: a fixed split of the training rows)"
    )
    val_fraction: float = opt(0.02, "share of the training rows held out for validation without --val-data")
    val_images: int = opt(64, "at most this many validation images are scored")
    out: str | None = opt(None, "run folder (checkpoints, logs, samples); exported weights go to OUT/weights")
    name: str | None = opt(None, "run name (default: MODEL-YYYYmmdd-HHMMSS); names the model-store entry")
    resolution: int = opt(256, "training crop size in pixels")
    steps: int = opt(10_000, "total optimizer steps (a resumed run continues up to this)")
    batch_size: int = opt(8, "images per optimizer step on each process")
    accumulate: int = opt(1, "split each batch into this many micro-batches (same result, less memory)")
    lr: float | None = opt(None, "learning rate (default: the model's own)")
    lr_schedule: str = opt("cosine", "learning-rate schedule after warm-up", choices=("constant", "cosine"))
    warmup_steps: int = opt(0, "linear learning-rate warm-up steps")
    grad_clip: float = opt(0.0, "clip each optimizer's gradient norm to this (0: off)")
    ema_decay: float = opt(0.999, "decay of the EMA weights that get exported (0: no EMA)")
    seed: int = opt(0, "seed for data order, augmentation, masks and initialisation")
    device: str = opt("auto", "auto, cpu, cuda, cuda:N or mps")
    amp: bool = opt(True, "mixed precision on CUDA (bf16 when supported, else fp16 with loss scaling)")
    workers: int = opt(-1, "data-loading worker processes (-1: min(4, CPUs - 1))")
    zoom: float = opt(
        1.25, "training augmentation: short side resized to resolution x U(1, zoom) before cropping"
    )
    flip: bool = opt(True, "training augmentation: random horizontal flips")
    log_every: int = opt(20, "steps between loss lines in TensorBoard")
    sample_every: int = opt(500, "steps between sample grids (input / mask / output / target)")
    val_every: int = opt(500, "steps between validation runs (hole PSNR / SSIM)")
    checkpoint_every: int = opt(1000, "steps between checkpoints")
    keep_checkpoints: int = opt(3, "how many recent checkpoints to keep")
    export_to_store: bool = opt(True, "also export the final weights to the app's model store")
    init_from: str | None = opt(
        None,
        "fine-tune: start from these weights (exported folder or checkpoint); new layers keep their init",
    )
    resume: str | None = opt(
        None, "checkpoint folder, or run folder (its latest checkpoint), to continue from"
    )

    def __post_init__(self) -> None:
        check_choices(self)
        sources = [name for name in ("data", "manifest", "catalogue") if getattr(self, name)]
        checks = [
            (
                len(sources) <= 1,
                "give one of --data, --manifest, --catalogue, not " + " and ".join(f"--{s}" for s in sources),
            ),
            (self.resolution >= 8, f"resolution must be >= 8, got {self.resolution}"),
            (self.steps >= 0, f"steps must be >= 0, got {self.steps}"),
            (self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}"),
            (self.accumulate >= 1, f"accumulate must be >= 1, got {self.accumulate}"),
            (self.batch_size % self.accumulate == 0, "batch size must be divisible by accumulate"),
            (self.lr is None or self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.warmup_steps >= 0 and self.grad_clip >= 0, "warmup_steps and grad_clip must be >= 0"),
            (0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), got {self.ema_decay}"),
            (0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}"),
            (self.zoom >= 1, f"zoom must be >= 1, got {self.zoom}"),
            (self.keep_checkpoints >= 1, "keep_checkpoints must be >= 1"),
            (
                min(self.log_every, self.sample_every, self.val_every, self.checkpoint_every) >= 1,
                "the *_every intervals must be >= 1",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def has_data(self) -> bool:
        return bool(self.data or self.manifest or self.catalogue)

    @property
    def data_sources(self) -> list[str]:
        """What the rows came from, as the export records it."""
        return [str(Path(d)) for d in self.data] + [s for s in (self.manifest, self.catalogue) if s]


# ---------------------------------------------------------------------- option groups tasks share
# A task's ``Options`` inherits the groups it uses, so each flag shows only under the models it serves.
@dataclass(frozen=True)
class PerceptualOptions:
    vgg_weights: str | None = opt(None, "local VGG16/19 weights (torchvision .pth) for the perceptual loss")


@dataclass(frozen=True)
class MaskFolderOptions:
    mask_dir: str | None = opt(None, "folder of object-shaped mask PNGs (enables the 'object' mask kind)")


def field_type(cls: type, f: dataclasses.Field) -> tuple[Any, bool, bool]:
    """(base type, is_tuple, is_optional) of a dataclass field."""
    hint = typing.get_type_hints(cls)[f.name]
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0]
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0], True, optional
    return hint, False, optional


def coerce(cls: type, name: str, value: Any) -> Any:
    """Convert a config-file or CLI value to the field's type (tuples from lists or 'a,b')."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise ValueError(f"unknown option {name!r}")
    base, is_tuple, optional = field_type(cls, fields[name])
    if value is None:
        if optional:
            return None
        raise ValueError(f"option {name} cannot be empty")
    if is_tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(_scalar(base, name, v) for v in items if not (isinstance(v, str) and not v.strip()))
    return _scalar(base, name, value)


def _scalar(base: Any, name: str, value: Any) -> Any:
    if base is bool:
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"option {name} expects true/false, got {value!r}")
        return bool(value)
    try:
        if base is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return base(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"option {name} expects {base.__name__}, got {value!r}") from None


def build(cls: type[T], values: dict[str, Any]) -> T:
    """Instantiate ``cls`` from loosely typed values, with one clear error per bad key."""
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}")
    return cls(**{k: coerce(cls, k, v) for k, v in values.items()})


def to_json_dict(obj: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(obj).items()}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A flat mapping of option names (dashes or underscores) to values, from JSON or TOML."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        if sys.version_info < (3, 11):
            raise ValueError("TOML config files need Python 3.11+; use JSON")
        import tomllib

        data = tomllib.loads(text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of option names to values")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):  # allow [model] / {"model": {...}} sections
            flat.update({k.replace("-", "_"): v for k, v in value.items()})
        else:
            flat[key.replace("-", "_")] = value
    return flat
