"""``inpaint-studio-train MODEL --data DIR [options]``: fit a model to your own photos (or to the
rows of ``--manifest FILE`` / ``--catalogue DIR``).

Options come, in rising priority, from the checkpoint being resumed, a ``--config`` file (JSON or
TOML, keys as in ``--help`` with dashes or underscores), and the command line. Under torchrun
(``torchrun --nproc_per_node N -m trainers MODEL ...``) each process trains on its share of the
data and rank 0 logs, saves and exports.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

from inpaint_studio.models.bundle import BundleError

from . import checkpoint
from .config import TrainConfig, build, field_type, read_config_file
from .data import DataError
from .tasks import task_class, task_names

EXIT_ERROR, EXIT_INTERRUPTED = 2, 130


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_fields(group: argparse._ArgumentGroup, cls: type) -> None:
    for f in dataclasses.fields(cls):
        base, is_tuple, _ = field_type(cls, f)
        help_text = f.metadata.get("help", "")
        default = f.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": f"{help_text} (default: {shown})"}
        if base is bool and not is_tuple:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif f.name in ("data", "val_data"):
            kwargs.update(nargs="+", metavar="DIR", help=help_text)
        elif f.name in ("manifest", "catalogue"):
            kwargs.update(metavar="FILE" if f.name == "manifest" else "DIR|CSV", help=help_text)
        else:
            kwargs["metavar"] = f.name.split("_")[-1].upper() if not is_tuple else "A,B,..."
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
                kwargs.pop("metavar")
        group.add_argument(_flag(f.name), dest=f.name, **kwargs)


def _load_tasks() -> tuple[dict[str, type], dict[str, str]]:
    """Task classes by name, and the one-line reason for any that cannot be imported here."""
    tasks, broken = {}, {}
    for name in task_names():
        try:
            tasks[name] = task_class(name)
        except ImportError as err:  # one model's missing piece must not take the others down
            broken[name] = f"{type(err).__name__}: {err}"
    return tasks, broken


def _models_epilog(tasks: dict[str, type], broken: dict[str, str]) -> str:
    lines = ["models and their own options (see `inpaint-studio-train MODEL --help`):"]
    for name, reason in broken.items():
        lines.append(f"\n  {name}: unavailable ({reason})")
    for name, cls in tasks.items():
        lines.append(f"\n  {name}: {cls.description}")
        for f in dataclasses.fields(cls.Options):
            default = f.default
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            lines.append(f"    {_flag(f.name):<26} {f.metadata.get('help', '')} (default: {shown})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    tasks, broken = _load_tasks()
    parser = argparse.ArgumentParser(
        prog="inpaint-studio-train",
        usage="inpaint-studio-train MODEL (--data DIR | --manifest FILE | --catalogue DIR|CSV) "
        "[--out DIR] [--resolution R] [--steps N] [--batch-size B] [--lr LR] [--resume CKPT] "
        "[--config FILE] [--device DEV] [model options]",
        description="Train an inpainting model on a folder of your own images (or a manifest of images, "
        "masks and captions). Exported weights appear in "
        "the app's model store (and in OUT/weights), ready for `inpaint-studio fill --engine MODEL`.",
        epilog=_models_epilog(tasks, broken),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subs = parser.add_subparsers(dest="model", metavar="MODEL", title="models")
    for name, reason in broken.items():
        broken_sub = subs.add_parser(name, help=f"unavailable: {reason}")
        broken_sub.set_defaults(unavailable=reason)
    for name, cls in tasks.items():
        sub = subs.add_parser(
            name,
            help=cls.description,
            description=f"{cls.description}\n\n{(sys.modules[cls.__module__].__doc__ or '').strip()}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("--config", metavar="FILE", default=None, help="JSON/TOML file of options")
        _add_fields(sub.add_argument_group("training options (every model)"), TrainConfig)
        _add_fields(sub.add_argument_group(f"{name} options"), cls.Options)
    return parser


def resolve_options(model: str, given: dict[str, Any], config_file: str | None) -> tuple[TrainConfig, Any]:
    """Merge checkpoint < config file < command line into (TrainConfig, model Options)."""
    cls = task_class(model)
    common_names = {f.name for f in dataclasses.fields(TrainConfig)}
    model_names = {f.name for f in dataclasses.fields(cls.Options)}
    from_file = read_config_file(config_file) if config_file else {}
    from_file.pop("model", None)
    unknown = sorted(set(from_file) - common_names - model_names)
    if unknown:
        raise ValueError(f"{config_file}: unknown option(s) {', '.join(unknown)} for {model}")
    merged = {**from_file, **given}
    common = {k: v for k, v in merged.items() if k in common_names}
    options = {k: v for k, v in merged.items() if k in model_names}
    if common.get("resume"):
        saved = checkpoint.read_state(common["resume"])
        if saved.get("model") != model:
            raise ValueError(f"{common['resume']} is a {saved.get('model')!r} checkpoint, not {model!r}")
        saved_train = saved.get("train", {})
        base_common = {k: v for k, v in saved_train.items() if k in common_names and k != "resume"}
        # options that moved from TrainConfig to the task (vgg_weights, mask_dir) come along too
        base_options = {
            k: v for k, v in {**saved_train, **saved.get("model_options", {})}.items() if k in model_names
        }
        common = {**base_common, **common}
        options = {**base_options, **options}
    config = build(TrainConfig, common)
    if not config.has_data:
        raise DataError(
            "no training data: pass --data DIR (a folder of your images), --manifest FILE or --catalogue DIR"
        )
    return config, build(cls.Options, options)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    namespace, unknown = parser.parse_known_args(argv)
    args = vars(namespace)
    if unknown and "unavailable" not in args:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    model = args.pop("model")
    if not model:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    if "unavailable" in args:
        print(f"error: the {model} trainer cannot be loaded ({args['unavailable']})", file=sys.stderr)
        return EXIT_ERROR
    config_file = args.pop("config", None)
    from .loop import Interrupted, train

    try:
        config, options = resolve_options(model, args, config_file)
        task = task_class(model)(options, config)
        result = train(task, config)
    except Interrupted:
        return EXIT_INTERRUPTED
    except (DataError, checkpoint.CheckpointError, BundleError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except FloatingPointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if result.weights is not None:  # rank 0
        print(f"trained {model} to step {result.step} in {result.run_dir}", file=sys.stderr)
        if result.validation:
            print(
                "validation: " + ", ".join(f"{k} {v:.4f}" for k, v in result.validation.items()),
                file=sys.stderr,
            )
        print(f"checkpoint: {result.checkpoint}", file=sys.stderr)
        print(f"weights:    {result.weights}", file=sys.stderr)
        if result.store_weights is not None:
            print(f"model store: {result.store_weights}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
