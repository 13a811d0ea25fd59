"""``inpaint-studio``: open the app, or work headless (``fill``, ``engines``, ``import``, ``models``).

Usage errors and bad input end with one line on stderr and exit code 2; an engine failure with
exit code 1; Ctrl+C cancels the running engine and exits with 130, SIGTERM with 143 (temp files
removed). A batch reports every failed file and exits 2 when all failures were bad input, 1 when
any was an engine failure or the disk filled up. Outputs never replace an input file.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import pickle
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .core.atomic import sigterm_cleanup
from .core.imageio import (
    LOSSY_FORMATS,
    OPEN_SUFFIXES,
    ImageError,
    LoadedImage,
    flatten_alpha,
    mask_from_loaded,
    max_pixels,
    read_image,
    save_format,
    save_image,
    transpose_like_exif,
)
from .core.keep import describe, fit_format, place_fill
from .engines import registry
from .engines.base import BadRequest, Cancelled, EngineError, Preview, Progress, Request, Result, Variant
from .engines.params import Param
from .engines.seeds import next_take_seed

COMMANDS = ("fill", "engines", "import", "models")
EXIT_ENGINE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
MAX_VARIANTS = 64  # each variant is a full-size image written to disk; more is a typo, not a wish
DEBUG_ENV = "INPAINT_STUDIO_DEBUG"  # set to 1 to see the traceback of an unexpected error


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
    p.add_argument(
        "--mask",
        type=Path,
        required=True,
        help="mask image, or a folder of masks: its alpha when it has transparency, else its brightest "
        "channel; 255 = fill, values in between blend",
    )
    p.add_argument(
        "-o", "--out", type=Path, required=True, help="output image, or output folder for batch work"
    )
    p.add_argument(
        "--engine", default=registry.DEFAULT_ENGINE, help=f"engine id ({', '.join(registry.ENGINES)})"
    )
    p.add_argument(
        "--variants",
        type=int,
        default=1,
        metavar="N",
        help=f"write N fills as OUT_0 ... OUT_{{N-1}} (at most {MAX_VARIANTS})",
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
    p.add_argument(
        "--quality",
        type=int,
        default=95,
        metavar="Q",
        help="JPEG/WebP quality 1-100 (WebP 100 is lossless); .png and .tif are always lossless",
    )
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="leave images whose output already exists (resume an interrupted batch)",
    )
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
        if isinstance(values[name], float) and not math.isfinite(values[name]):
            raise UsageError(f"{name} must be a finite number, got {value!r}")
    return values


# ------------------------------------------------------------------------------------ fill
class BadInput(Exception):
    """One file of a batch cannot be used (counts as bad input in the exit code)."""


class DiskFull(Exception):
    """Writing failed for lack of space: the batch stops and reports what it did."""


@dataclass
class FillJob:
    image: Path
    mask: Path | None  # None: no mask found for this image (reported, skipped)
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
    quality: int = 95
    inputs: frozenset[str] = frozenset()
    failures: list[tuple[Path, str, bool]] = field(default_factory=list)  # (file, reason, bad input?)
    notes: set[str] = field(default_factory=set)


def cmd_fill(argv: Sequence[str]) -> int:
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--engine", default=registry.DEFAULT_ENGINE)
    known, _ = probe.parse_known_args(argv)
    try:
        cls = registry.engine_class(known.engine)
    except ValueError as err:
        raise UsageError(str(err)) from None
    args = _fill_parser(cls.info.params).parse_args(argv)
    if not 1 <= args.variants <= MAX_VARIANTS:
        raise UsageError(f"--variants must be between 1 and {MAX_VARIANTS}, got {args.variants}")
    if not 1 <= args.quality <= 100:
        raise UsageError(f"--quality must be between 1 and 100, got {args.quality}")
    _check_environment()
    params = _collect_params(args, cls.info.params)
    if cls.info.needs_weights:
        avail = cls.availability(args.weights)
        if not avail.ok:
            print(f"inpaint-studio: engine {cls.info.id} is not available: {avail.reason}", file=sys.stderr)
            return EXIT_ENGINE
    if (args.prompt or args.negative_prompt) and not cls.info.takes_prompt:
        print(f"inpaint-studio: note: {cls.info.title} ignores the prompt", file=sys.stderr)
    if args.device not in (None, "auto", "cpu") and not cls.info.needs_weights:
        print(f"inpaint-studio: note: {cls.info.title} runs on the CPU; --device is ignored", file=sys.stderr)
    jobs, batch, inputs = _plan_jobs(args.image, args.mask, args.out, args.variants)
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
        quality=args.quality,
        inputs=inputs,
    )
    fmt = save_format(jobs[0].out)
    if fmt in LOSSY_FORMATS:
        lossless = fmt == "WEBP" and args.quality >= 100
        if not lossless:
            _note(
                opts,
                f"{fmt} is lossy: pixels outside the mask change slightly (quality {args.quality}); "
                "use .png to keep them exact",
            )
    with sigterm_cleanup():
        return _run_jobs(engine, jobs, batch, opts, args.skip_existing)


def _run_jobs(engine, jobs: list[FillJob], batch: bool, opts: FillOptions, skip_existing: bool) -> int:
    from tqdm import tqdm

    counter = tqdm(
        total=len(jobs),
        desc="images",
        unit="img",
        disable=opts.quiet or not batch,
        file=sys.stderr,
        position=0,
    )
    done = skipped = 0
    stopped = ""
    try:
        for job in jobs:
            counter.set_postfix_str(job.image.name, refresh=False)
            try:
                if skip_existing and all(p.exists() for p in _outputs(job, opts.variants)):
                    skipped += 1
                    continue
                if job.mask is None:
                    raise BadInput(
                        f"no mask for {job.image.name} (expected {job.image.stem}.png or "
                        f"{job.image.stem}_mask.png in the mask folder); skipped"
                    )
                for path in _fill_one(engine, job, opts, batch):
                    print(path, flush=True)
                done += 1
            except (ImageError, BadRequest, BadInput) as err:
                if not batch:
                    raise UsageError(str(err)) from None
                opts.failures.append((job.image, str(err), True))
            except DiskFull as err:
                if not batch:
                    print(f"inpaint-studio: error: {err}", file=sys.stderr)
                    return EXIT_ENGINE
                opts.failures.append((job.image, str(err), False))
                stopped = str(err)
                break
            except EngineError as err:
                if not batch:
                    print(f"inpaint-studio: error: {err}", file=sys.stderr)
                    return EXIT_ENGINE
                opts.failures.append((job.image, str(err), False))
            finally:
                counter.update(1)
    finally:
        counter.close()
    if batch and (skipped or stopped):
        left = len(jobs) - done - skipped - len(opts.failures)
        parts = [f"{done} written"]
        if skipped:
            parts.append(f"{skipped} skipped (output exists)")
        if stopped:
            parts.append(f"stopped with {left} not started")
        print(f"inpaint-studio: {', '.join(parts)}", file=sys.stderr)
    if opts.failures:
        print(f"inpaint-studio: {len(opts.failures)} of {len(jobs)} file(s) failed:", file=sys.stderr)
        for path, reason, _bad in opts.failures:
            print(
                f"  {reason if reason.startswith(path.name) else f'{path.name}: {reason}'}", file=sys.stderr
            )
        return EXIT_USAGE if all(bad for _p, _r, bad in opts.failures) else EXIT_ENGINE
    return 0


def _check_environment() -> None:
    """Settings from the environment that are wrong are a usage error before any work."""
    try:
        max_pixels()
    except ImageError as err:
        raise UsageError(str(err)) from None
    home = os.environ.get("INPAINT_STUDIO_HOME")
    if home:
        for parent in (Path(home).expanduser(), *Path(home).expanduser().parents):
            if parent.exists():
                if not parent.is_dir():
                    raise UsageError(f"INPAINT_STUDIO_HOME={home} lies under {parent}, which is a file")
                break


def _note(opts: FillOptions, text: str) -> None:
    """Say ``text`` once per run (one line on stderr)."""
    if text not in opts.notes:
        opts.notes.add(text)
        print(f"inpaint-studio: note: {text}", file=sys.stderr)


def _real(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def _plan_jobs(
    image: Path, mask: Path, out: Path, variants: int = 1
) -> tuple[list[FillJob], bool, frozenset[str]]:
    """The (image, mask, output) triples, whether this is a batch, and the inputs never to overwrite."""
    for given, what in ((image, "IMAGE"), (mask, "--mask")):
        if not given.exists():
            raise UsageError(f"{given}: no such file or folder")
        if not given.is_dir() and not given.is_file():
            raise UsageError(f"{given} ({what}) is not a regular file (a pipe or device)")
    if image.is_dir():
        if not mask.is_dir():
            raise UsageError("with an image folder, --mask must be a folder of masks too")
        if out.exists() and not out.is_dir():
            raise UsageError(f"{out} exists and is not a folder")
        jobs = _batch_jobs(image, mask, out)
        batch = True
    else:
        if mask.is_dir():
            raise UsageError("--mask is a folder but IMAGE is a single file")
        _save_format_or_usage(out)
        jobs, batch = [FillJob(image, mask, out)], False
    inputs = frozenset(_real(p) for j in jobs for p in (j.image, j.mask) if p is not None)
    clobbered = sorted({p.name for j in jobs for p in _outputs(j, variants) if _real(p) in inputs})
    if clobbered:
        raise UsageError(
            f"the output would replace input file(s) {', '.join(clobbered[:5])}; choose another -o"
        )
    return jobs, batch, inputs


def _save_format_or_usage(out: Path) -> str:
    try:
        return save_format(out)
    except ImageError as err:
        raise UsageError(str(err)) from None


def _batch_jobs(image: Path, mask: Path, out: Path) -> list[FillJob]:
    masks = {p.stem: p for p in sorted(mask.iterdir()) if p.suffix.lower() in OPEN_SUFFIXES and p.is_file()}
    mask_files = {_real(p) for p in masks.values()}
    pairs: list[tuple[Path, Path | None]] = []
    for img in sorted(image.iterdir()):
        if img.suffix.lower() not in OPEN_SUFFIXES or not img.is_file() or _real(img) in mask_files:
            continue
        pairs.append((img, masks.get(img.stem) or masks.get(f"{img.stem}_mask")))
    if not pairs:
        raise UsageError(f"{image} holds no images ({', '.join(OPEN_SUFFIXES)})")
    by_stem: dict[str, list[Path]] = {}
    for img, _m in pairs:
        by_stem.setdefault(img.stem.lower(), []).append(img)
    jobs, names = [], set()
    for img, m in pairs:
        clash = len(by_stem[img.stem.lower()]) > 1
        name = f"{img.stem}_{img.suffix.lstrip('.').lower()}.png" if clash else f"{img.stem}.png"
        if name.lower() in names:
            raise UsageError(f"two images in {image} would both be written as {name}; rename one")
        names.add(name.lower())
        jobs.append(FillJob(img, m, out / name))
    for stem, imgs in by_stem.items():
        if len(imgs) > 1:
            written = ", ".join(f"{p.name} -> {p.stem}_{p.suffix.lstrip('.').lower()}.png" for p in imgs)
            print(f"inpaint-studio: note: images share the name {stem!r}: {written}", file=sys.stderr)
    return jobs


def _outputs(job: FillJob, variants: int) -> list[Path]:
    if variants == 1:
        return [job.out]
    stem, suffix = job.out.stem, job.out.suffix or ".png"
    return [job.out.with_name(f"{stem}_{i}{suffix}") for i in range(variants)]


def _read_mask(job: FillJob, loaded: LoadedImage, opts: FillOptions) -> Any:
    """The job's mask at the image's upright size; a mask drawn on the stored (pre-EXIF-rotation)
    orientation is turned the same way, and that is said once."""
    mask = mask_from_loaded(read_image(job.mask))
    shape = loaded.rgb.shape[:2]
    if mask.shape != shape and loaded.orientation != 1 and mask.shape == loaded.stored_shape:
        mask = transpose_like_exif(mask, loaded.orientation)
        _note(
            opts, f"mask {job.mask.name} matches the photo before its EXIF rotation; rotated it the same way"
        )
    if mask.shape != shape:
        hint = ""
        if loaded.orientation != 1:
            hint = f" (the photo is shown EXIF-rotated; stored it is {loaded.stored_shape[1]}x{loaded.stored_shape[0]})"
        raise ImageError(
            f"mask {job.mask.name} is {mask.shape[1]}x{mask.shape[0]} but the image is "
            f"{shape[1]}x{shape[0]}{hint}"
        )
    if not mask.any():
        raise BadRequest(f"mask {job.mask.name} is empty (all zero): nothing to fill")
    if (mask == 255).all():
        _note(opts, f"mask {job.mask.name} covers the whole image: nothing is left to fill from")
    return mask


def _fill_one(engine, job: FillJob, opts: FillOptions, batch: bool = False) -> list[Path]:
    loaded = read_image(job.image)
    image = loaded.rgb if loaded.alpha is None else flatten_alpha(loaded.rgb, loaded.alpha)
    mask = _read_mask(job, loaded, opts)
    variants_native = engine.info.yields_variants
    runs = 1 if variants_native else opts.variants
    written: list[Path] = []

    def sink(index: int, fill: Any) -> None:
        if index < opts.variants and len(written) < opts.variants:
            written.append(_write_output(job, index, loaded, fill, mask, opts))

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
        _iterate(engine, request, opts, job, run, runs, sink, batch)
    return written


def _write_output(
    job: FillJob, index: int, loaded: LoadedImage, fill: Any, mask: Any, opts: FillOptions
) -> Path:
    """Write one fill, keeping the file's alpha and depth outside the hole where the format can."""
    path = _outputs(job, opts.variants)[index] if opts.variants > 1 else job.out
    if _real(path) in opts.inputs:  # planned outputs were checked; this guards every other write
        raise BadInput(f"refusing to overwrite the input {path}")
    kept = place_fill(loaded, fill, mask)
    pixels, dropped = fit_format(kept, save_format(path))
    if dropped:
        _note(opts, f"{job.image.name} is {describe(kept)}: {dropped}")
    if loaded.source_mode in ("I", "F"):
        depth = "float" if loaded.source_mode == "F" else "32-bit"
        _note(
            opts,
            f"{job.image.name} is {depth} grey: written as 8 bits (outputs keep at most 16-bit integers)",
        )
    return _save(path, pixels, opts.quality)


def _save(path: Path, pixels: Any, quality: int) -> Path:
    try:
        return save_image(path, pixels, quality=quality)
    except OSError as err:
        if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise DiskFull(f"no space left on the device writing {path}") from None
        raise BadInput(f"cannot write {path}: {err.strerror or err}") from None


def _iterate(
    engine, request: Request, opts: FillOptions, job: FillJob, run: int, runs: int, sink, batch: bool = False
) -> None:
    """Run one request; hand each variant (or the single result) to ``sink`` as it arrives."""
    from tqdm import tqdm

    label = job.image.name if runs == 1 else f"{job.image.name} [{run + 1}/{runs}]"
    bar = tqdm(
        total=1,
        desc=label,
        disable=opts.quiet,
        leave=False,
        unit="step",
        file=sys.stderr,
        position=int(batch),
    )
    result = None
    got_variant = False
    try:
        for event in engine.run(request, lambda: False):
            if isinstance(event, Progress):
                bar.total = max(event.total, 1)
                bar.n = event.done
                bar.set_postfix_str(event.text, refresh=False)
                bar.refresh()
            elif isinstance(event, Preview) and opts.save_steps is not None:
                suffix = "" if runs == 1 else f"_run{run}"
                picture = event.composited(request.image)
                _save_step(opts, opts.save_steps / f"step_{event.step:02d}{suffix}.png", picture)
            elif isinstance(event, Variant) and request.variants > 1:
                got_variant = True
                sink(event.index, event.composited(request.image))
            elif isinstance(event, Result):
                result = event.composited(request.image)
    except (EngineError, Cancelled, KeyboardInterrupt, BadInput, DiskFull, SystemExit):
        raise
    except ValueError as err:  # e.g. a device that is not there: the person asked for something impossible
        raise BadInput(f"{engine.info.title}: {_first_line(err)}") from None
    except Exception as err:  # noqa: BLE001  an engine failure is one line, never a traceback
        if os.environ.get(DEBUG_ENV):
            raise
        raise EngineError(f"{engine.info.title} failed: {type(err).__name__}: {_first_line(err)}") from None
    finally:
        bar.close()
    if got_variant:
        return
    if result is None:
        raise EngineError(f"{engine.info.title} finished without a result")
    sink(run, result)


def _save_step(opts: FillOptions, path: Path, image: Any) -> None:
    if _real(path) in opts.inputs:
        raise BadInput(f"refusing to overwrite the input {path} with a step preview")
    try:
        opts.save_steps.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BadInput(f"cannot create {opts.save_steps}: {err.strerror or err}") from None
    _save(path, image, 95)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:160]


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
def _bad_input_cause(err: BaseException) -> bool:
    """Whether a refused import was the file's fault (not a checkpoint we take), through the chain."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, (ValueError, pickle.UnpicklingError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def cmd_import(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="inpaint-studio import",
        description="Convert a public checkpoint (official MAT .pkl/.pth, taming VQGAN .ckpt, MAE .pth) "
        "into the model store as safetensors. Pickles are read without executing anything.",
    )
    p.add_argument("engine", help="engine the weights are for")
    p.add_argument("checkpoint", type=Path, help="checkpoint file, or the folder a release unpacked into")
    p.add_argument(
        "--name",
        help="name in the model store (default: the file's stem; a trained RUN/weights: the run's name)",
    )
    p.add_argument("--out", type=Path, help="write the weights folder here instead of the model store")
    args = p.parse_args(argv)
    try:
        cls = registry.engine_class(args.engine)
    except ValueError as err:
        raise UsageError(str(err)) from None
    source = args.checkpoint
    if not source.exists():
        raise UsageError(f"{source}: no such file or folder")
    if source.is_dir():
        if not any(p.is_file() for p in source.rglob("*")):
            raise UsageError(
                f"{source} is an empty folder: give the checkpoint file, or the folder it unpacked into"
            )
    elif not source.is_file():
        raise UsageError(f"{source} is not a regular file (a pipe or device)")
    _check_environment()
    from .hub.install import ImportFailed
    from .model_import import destination, import_checkpoint, weights_folder_engine

    try:
        dest = args.out or destination(cls.info.id, source, args.name)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} exists and is not a folder")

    try:
        with sigterm_cleanup():
            written = import_checkpoint(cls.info.id, source, dest)
    except ImportFailed as err:
        print(f"inpaint-studio: error: {err}", file=sys.stderr)
        return EXIT_USAGE if _bad_input_cause(err) else EXIT_ENGINE
    except (pickle.UnpicklingError, ValueError, KeyError, EOFError, RuntimeError, MemoryError) as err:
        # UnsafeCheckpointError and CheckpointFileError land here: the file is not a checkpoint we take
        if os.environ.get(DEBUG_ENV):
            raise
        raise UsageError(f"cannot import {source.name}: {_first_line(err)}") from None
    print(written)
    part = weights_folder_engine(written)  # a part (asuka-decoder) is judged with the engine's other parts
    avail = cls.availability(None if part not in (None, cls.info.id) else written)
    if avail.reason:  # what the engine still needs, e.g. a trained branch's base model on this computer
        print(f"inpaint-studio: note: {avail.reason}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------ models
def cmd_models(argv: Sequence[str]) -> int:
    from .cli_models import main as models_main

    return models_main(argv)


# ------------------------------------------------------------------------------------ main
def _usage() -> str:
    return (
        "usage: inpaint-studio [IMAGE_OR_PROJECT ...]      open the app\n"
        "       inpaint-studio fill IMAGE --mask MASK -o OUT [options]\n"
        "       inpaint-studio engines [--json]\n"
        "       inpaint-studio import ENGINE CHECKPOINT [--name NAME]\n"
        "       inpaint-studio models [download ID | import ENGINE FILE | remove ENGINE NAME]\n"
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
            handler = {"fill": cmd_fill, "engines": cmd_engines, "import": cmd_import, "models": cmd_models}[
                argv[0]
            ]
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
    except OSError as err:  # the output or home folder cannot be written (under a file, read-only, full)
        if os.environ.get(DEBUG_ENV):
            raise
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        full = err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
        print(f"inpaint-studio: error: {err.strerror or err}{where}", file=sys.stderr)
        return EXIT_ENGINE if full else EXIT_USAGE
    except Exception as err:  # noqa: BLE001  last guard: one line, never a traceback
        if os.environ.get(DEBUG_ENV):
            raise
        print(
            f"inpaint-studio: internal error: {type(err).__name__}: {_first_line(err)} "
            f"(set {DEBUG_ENV}=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_ENGINE


def _open_app(argv: list[str]) -> int:
    try:
        from .app import main as app_main
    except ImportError as err:
        print(f"inpaint-studio: the desktop app cannot start ({err})", file=sys.stderr)
        return EXIT_ENGINE
    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main())
