"""``inpaint-studio``: open the app, or work headless (``fill``, ``engines``, ``import``).

Usage errors and bad input end with one line on stderr and exit code 2; an engine failure with
exit code 1; Ctrl+C cancels the running engine and exits with 130.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .core.imageio import OPEN_SUFFIXES, ImageError, load_image, load_mask, save_image
from .engines import registry
from .engines.base import BadRequest, Cancelled, EngineError, Preview, Progress, Request, Result, Variant
from .engines.params import Param
from .engines.seeds import next_take_seed
from .engines.weights import store_dir

COMMANDS = ("fill", "engines", "import")
EXIT_ENGINE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(Exception):
    """Bad command line or input: reported in one line, exit code 2."""


# ------------------------------------------------------------------------------------ parsers
def _fill_parser(engine_params: Sequence[Param] = ()) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inpaint-studio fill",
        description="Fill the masked region of an image (or of every image in a folder).",
        epilog="Engine parameters can be given as --NAME VALUE (see `inpaint-studio engines`) or --set NAME=VALUE.",
    )
    p.add_argument("image", type=Path, help="image file, or a folder of images for batch work")
    p.add_argument("--mask", type=Path, required=True, help="mask PNG (255 = fill), or a folder of masks")
    p.add_argument(
        "-o", "--out", type=Path, required=True, help="output image, or output folder for batch work"
    )
    p.add_argument(
        "--engine", default=registry.DEFAULT_ENGINE, help=f"engine id ({', '.join(registry.ENGINES)})"
    )
    p.add_argument(
        "--variants", type=int, default=1, metavar="N", help="write N fills as OUT_0 ... OUT_{N-1}"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same fill)")
    p.add_argument("--prompt", default="", help="text prompt for engines that take one")
    p.add_argument(
        "--negative-prompt",
        default="",
        metavar="TEXT",
        help="what the fill should avoid (engines with prompts)",
    )
    p.add_argument(
        "--save-steps", type=Path, metavar="DIR", help="write each step preview as DIR/step_XX.png"
    )
    p.add_argument("--weights", type=Path, help="weights folder (default: newest in the model store)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=None, help="compute device")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="set an engine parameter")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    for param in engine_params:
        if param.name == "device":  # the shared --device above sets it
            continue
        p.add_argument(
            f"--{param.name.replace('_', '-')}",
            dest=f"param_{param.name}",
            default=None,
            metavar=param.kind.upper() if param.kind != "choice" else "{" + ",".join(param.choices) + "}",
            help=f"{param.help} (default: {param.default})",
        )
    return p


def _collect_params(args: argparse.Namespace, schema: Sequence[Param]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--set expects NAME=VALUE, got {item!r}")
        values[name.strip().replace("-", "_")] = value
    for param in schema:
        given = getattr(args, f"param_{param.name}", None)
        if given is not None:
            values[param.name] = given
    known = {p.name: p for p in schema}
    for name, value in values.items():
        if name not in known:
            raise UsageError(
                f"unknown parameter {name!r} for this engine; it takes: {', '.join(known) or 'none'}"
            )
        try:
            values[name] = known[name].coerce(value)
        except ValueError as err:
            raise UsageError(str(err)) from None
    return values


# ------------------------------------------------------------------------------------ fill
@dataclass
class FillJob:
    image: Path
    mask: Path
    out: Path


@dataclass
class FillOptions:
    engine_id: str
    variants: int
    seed: int
    prompt: str
    negative_prompt: str
    params: dict[str, Any]
    save_steps: Path | None
    quiet: bool
    failures: list[tuple[Path, str]] = field(default_factory=list)


def cmd_fill(argv: Sequence[str]) -> int:
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--engine", default=registry.DEFAULT_ENGINE)
    known, _ = probe.parse_known_args(argv)
    try:
        cls = registry.engine_class(known.engine)
    except ValueError as err:
        raise UsageError(str(err)) from None
    args = _fill_parser(cls.info.params).parse_args(argv)
    if args.variants < 1:
        raise UsageError("--variants must be at least 1")
    params = _collect_params(args, cls.info.params)
    if cls.info.needs_weights:
        avail = cls.availability(args.weights)
        if not avail.ok:
            print(f"inpaint-studio: engine {cls.info.id} is not available: {avail.reason}", file=sys.stderr)
            return EXIT_ENGINE
    if (args.prompt or args.negative_prompt) and not cls.info.takes_prompt:
        print(f"inpaint-studio: note: {cls.info.title} ignores the prompt", file=sys.stderr)
    jobs, batch = _plan_jobs(args.image, args.mask, args.out)
    engine = registry.create(
        cls.info.id, weights=args.weights, device=None if args.device == "auto" else args.device
    )
    opts = FillOptions(
        cls.info.id,
        args.variants,
        args.seed,
        args.prompt,
        args.negative_prompt,
        params,
        args.save_steps,
        args.quiet or not sys.stderr.isatty(),
    )
    for job in jobs:
        try:
            written = _fill_one(engine, job, opts)
        except (ImageError, BadRequest) as err:
            if not batch:
                raise UsageError(str(err)) from None
            opts.failures.append((job.image, str(err)))
            continue
        except EngineError as err:
            if not batch:
                print(f"inpaint-studio: error: {err}", file=sys.stderr)
                return EXIT_ENGINE
            opts.failures.append((job.image, str(err)))
            continue
        for path in written:
            print(path)
    if opts.failures:
        print(f"inpaint-studio: {len(opts.failures)} of {len(jobs)} file(s) failed:", file=sys.stderr)
        for path, reason in opts.failures:
            print(
                f"  {reason if reason.startswith(path.name) else f'{path.name}: {reason}'}", file=sys.stderr
            )
        return EXIT_ENGINE
    return 0


def _plan_jobs(image: Path, mask: Path, out: Path) -> tuple[list[FillJob], bool]:
    if not image.exists():
        raise UsageError(f"{image}: no such file or folder")
    if not mask.exists():
        raise UsageError(f"{mask}: no such file or folder")
    if image.is_dir():
        if not mask.is_dir():
            raise UsageError("with an image folder, --mask must be a folder of masks too")
        if out.exists() and not out.is_dir():
            raise UsageError(f"{out} exists and is not a folder")
        masks = {p.stem: p for p in sorted(mask.iterdir()) if p.suffix.lower() in OPEN_SUFFIXES}
        jobs = []
        for img in sorted(image.iterdir()):
            if img.suffix.lower() not in OPEN_SUFFIXES or not img.is_file():
                continue
            m = masks.get(img.stem) or masks.get(f"{img.stem}_mask")
            if m is None:
                raise UsageError(
                    f"no mask for {img.name} in {mask} (expected {img.stem}.png or {img.stem}_mask.png)"
                )
            jobs.append(FillJob(img, m, out / f"{img.stem}.png"))
        if not jobs:
            raise UsageError(f"{image} holds no images ({', '.join(OPEN_SUFFIXES)})")
        return jobs, True
    if mask.is_dir():
        raise UsageError("--mask is a folder but IMAGE is a single file")
    return [FillJob(image, mask, out)], False


def _fill_one(engine, job: FillJob, opts: FillOptions) -> list[Path]:
    image = load_image(job.image)
    mask = load_mask(job.mask, shape=image.shape[:2])
    if not mask.any():
        raise BadRequest(f"mask {job.mask.name} is empty (all zero): nothing to fill")
    variants_native = engine.info.yields_variants
    runs = 1 if variants_native else opts.variants
    images: list = []
    for run in range(runs):
        request = Request(
            image=image,
            mask=mask,
            prompt=opts.prompt,
            negative_prompt=opts.negative_prompt,
            seed=opts.seed if run == 0 else next_take_seed(opts.seed, run),
            variants=opts.variants if variants_native else 1,
            params=opts.params,
        )
        images.extend(_iterate(engine, request, opts, job, run, runs))
    if opts.variants == 1:
        return [save_image(job.out, images[0])]
    stem, suffix = job.out.stem, job.out.suffix or ".png"
    return [
        save_image(job.out.with_name(f"{stem}_{i}{suffix}"), img)
        for i, img in enumerate(images[: opts.variants])
    ]


def _iterate(engine, request: Request, opts: FillOptions, job: FillJob, run: int, runs: int) -> list:
    """Run one request; return the variant images (or the single result)."""
    from tqdm import tqdm

    label = job.image.name if runs == 1 else f"{job.image.name} [{run + 1}/{runs}]"
    bar = tqdm(total=1, desc=label, disable=opts.quiet, leave=False, unit="step", file=sys.stderr)
    variants: dict[int, Any] = {}
    result = None
    try:
        for event in engine.run(request, lambda: False):
            if isinstance(event, Progress):
                bar.total = max(event.total, 1)
                bar.n = event.done
                bar.set_postfix_str(event.text, refresh=False)
                bar.refresh()
            elif isinstance(event, Preview) and opts.save_steps is not None:
                opts.save_steps.mkdir(parents=True, exist_ok=True)
                suffix = "" if runs == 1 else f"_run{run}"
                picture = event.composited(request.image)
                save_image(opts.save_steps / f"step_{event.step:02d}{suffix}.png", picture)
            elif isinstance(event, Variant):
                variants[event.index] = event.composited(request.image)
            elif isinstance(event, Result):
                result = event.composited(request.image)
    finally:
        bar.close()
    if variants and request.variants > 1:
        return [variants[i] for i in sorted(variants)]
    if result is None:
        raise EngineError(f"{engine.info.title} finished without a result")
    return [result]


# ------------------------------------------------------------------------------------ engines
def cmd_engines(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="inpaint-studio engines", description="List engines and their parameters."
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    entries = []
    for engine_id in registry.engine_ids():
        try:
            entry = registry.describe(engine_id)
        except Exception as err:  # a broken engine module must not hide the others
            entries.append(
                {"id": engine_id, "available": False, "reason": f"cannot load: {err}", "params": []}
            )
            continue
        info = entry.info
        entries.append(
            {
                "id": info.id,
                "title": info.title,
                "available": entry.availability.ok,
                "reason": entry.availability.reason,
                "weights": str(entry.availability.weights) if entry.availability.weights else None,
                "takes_prompt": info.takes_prompt,
                "variants": info.yields_variants,
                "previews": info.yields_previews,
                "description": info.description,
                "params": [
                    {
                        "name": prm.name,
                        "type": prm.kind,
                        "default": prm.default,
                        "min": prm.minimum,
                        "max": prm.maximum,
                        "choices": list(prm.choices),
                        "help": prm.help,
                    }
                    for prm in info.params
                ],
            }
        )
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for e in entries:
        status = "available" if e["available"] else f"unavailable: {e['reason']}"
        print(f"{e['id']:<10} {e.get('title', '')} — {status}")
        if e.get("description"):
            print(f"           {e['description']}")
        for prm in e["params"]:
            rng = ""
            if prm["choices"]:
                rng = " {" + ",".join(prm["choices"]) + "}"
            elif prm["min"] is not None or prm["max"] is not None:
                rng = f" [{prm['min']}..{prm['max']}]"
            print(
                f"    --{prm['name'].replace('_', '-'):<18} {prm['type']}{rng} = {prm['default']}  {prm['help']}"
            )
        print()
    return 0


# ------------------------------------------------------------------------------------ import
def cmd_import(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="inpaint-studio import",
        description="Convert a public checkpoint (official MAT .pkl/.pth, taming VQGAN .ckpt, MAE .pth) "
        "into the model store as safetensors. Pickles are read without executing anything.",
    )
    p.add_argument("engine", help="engine the weights are for")
    p.add_argument("checkpoint", type=Path, help="checkpoint file, or the folder a release unpacked into")
    p.add_argument("--name", help="name in the model store (default: the file's stem)")
    p.add_argument("--out", type=Path, help="write the weights folder here instead of the model store")
    args = p.parse_args(argv)
    try:
        cls = registry.engine_class(args.engine)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not args.checkpoint.exists():
        raise UsageError(f"{args.checkpoint}: no such file or folder")
    dest = args.out or store_dir(cls.info.id) / (args.name or args.checkpoint.stem)
    try:
        written = cls.import_weights(args.checkpoint, dest)
    except EngineError as err:
        print(f"inpaint-studio: error: {err}", file=sys.stderr)
        return EXIT_ENGINE
    print(written)
    return 0


# ------------------------------------------------------------------------------------ main
def _usage() -> str:
    return (
        "usage: inpaint-studio [IMAGE_OR_PROJECT ...]      open the app\n"
        "       inpaint-studio fill IMAGE --mask MASK -o OUT [options]\n"
        "       inpaint-studio engines [--json]\n"
        "       inpaint-studio import ENGINE CHECKPOINT [--name NAME]\n"
        "Run `inpaint-studio fill --help` for the fill options."
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv and argv[0] == "--version":
        print(f"inpaint-studio {__version__}")
        return 0
    try:
        if argv and argv[0] in COMMANDS:
            handler = {"fill": cmd_fill, "engines": cmd_engines, "import": cmd_import}[argv[0]]
            return handler(argv[1:])
        return _open_app(argv)
    except UsageError as err:
        print(f"inpaint-studio: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("inpaint-studio: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Cancelled:
        return EXIT_INTERRUPTED


def _open_app(argv: list[str]) -> int:
    try:
        from .app import main as app_main
    except ImportError as err:
        print(f"inpaint-studio: the desktop app cannot start ({err})", file=sys.stderr)
        return EXIT_ENGINE
    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main())
