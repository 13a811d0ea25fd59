"""The measured effect of MTA's two new loss terms, at small scale (issue 13's acceptance).

    PYTHONPATH=. python benchmarks/eval_mta_losses.py all --out /tmp/mta_study --steps 500 --seeds 0 1
    PYTHONPATH=. python benchmarks/eval_mta_losses.py base --out DIR      # or stage by stage
    PYTHONPATH=. python benchmarks/eval_mta_losses.py study --out DIR --steps 500 --seeds 0 1

``base``: a random base shows nothing (every fill is noise), so a tiny SD-1.5-shaped base is
trained first on ``../shared/data/grocery_store/train`` (``benchmarks/mta_tiny_base.py``: a
3-level KL VAE, 64 px photos -> 16 x 16 latents, then a 32/64-channel text-to-image UNet; the
tiny CLIP text encoder keeps its random weights). ``--base random`` uses the test suite's random
parts instead (``tests/sd_tiny.py``), as the first version of this study did.

``study``: trains the same small MTA branch once per variant, same steps, data order, masks and
seed, with the edge head on / off and the style loss on / off at the paper's weights (eta 0.1,
delta 100), beside the frozen base. Training rows: grocery product photos captioned with their
product name; held back: photos of ``grocery_store/val``. Each run then fills the held-back
images' holes (masks from a fixed seed per image, DDIM with ``--sample-steps``) and reports,
inside the hole:

* ``edge_error``: mean squared difference of the Sobel edge maps of fill and target;
* ``gram_distance``: Gram-matrix distance of fill and target through a fixed random RGB network
  (``trainers.tasks.mta.fixed_judge``: the same in every run, never trained);
* hole PSNR / SSIM, for reference.

These are the task's own validation metrics (``MtaTask.validation_metrics``). Each term should
lower its own measure: the table prints what came out, whatever it is, as mean and spread
(min..max) over the seeds, the paired change against the same seed's noise-only run (same data
order, masks and sampling noise), and each run's final weighted style term over its noise term
(``style share``, the last 100 steps). There is no VGG file here, so the latent style extractor starts from scratch
(He-normal, ``MtaTask``). ``--lr`` is raised above the paper's 1e-5 (same for every run) so
that a few hundred steps move the branch at all. ``--diag-delta D`` adds a diagnostic row, the
style loss at delta D: at delta 100 the term is a ~3e-5..8e-5 share of the loss (see
``latent_style``'s docstring: x_{t-1} from the prediction and from the ground truth differ by
only one DDPM step's coefficient, about 0.003 times the noise error), so this row shows what the
term does when it carries weight; it is not the paper's setting.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GROCERY = REPO.parent / "shared" / "data" / "grocery_store"
PAPER_DELTA = 100.0
VARIANTS = {  # name -> (edge head, style loss)
    "noise only": (False, False),
    "+ edge head": (True, False),
    "+ style loss": (False, True),
    "+ edge + style": (True, True),
}
DIAG = "+ style loss, delta {delta:g} (diagnostic)"


def _manifest(split: Path, count: int, out: Path) -> Path:
    """``count`` photos of ``split``, spread over the products, captioned with the product's name."""
    from mta_tiny_base import caption_of

    files = sorted(split.rglob("*.jpg"))
    step = max(1, len(files) // count)
    rows = [{"image": str(f), "caption": caption_of(f)} for f in files[::step][:count]]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return out


def _random_base(folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    try:
        import sd_tiny
    finally:
        sys.path.pop(0)
    if not (folder / "model_index.json").is_file():
        sd_tiny.save_folder(sd_tiny.tiny_parts(in_channels=4), folder)
    return folder


def base_stage(args: argparse.Namespace) -> Path:
    """The base model folder: trained here (skipped when done) or the random test parts."""
    if args.base == "random":
        return _random_base(args.out / "tiny-sd15")
    from mta_tiny_base import build_base

    start = time.perf_counter()
    folder = build_base(
        args.out / "base", GROCERY / "train", size=args.resolution, vae_steps=args.vae_steps,
        unet_steps=args.unet_steps, batch=args.base_batch, seed=0,
    )  # fmt: skip
    print(f"base: {folder} ({time.perf_counter() - start:.0f}s)", flush=True)
    return folder


def run_variant(
    name: str, edge: bool, style: bool, delta: float, seed: int, args: argparse.Namespace, paths: dict
) -> dict:
    from trainers.config import TrainConfig
    from trainers.loop import train
    from trainers.tasks.mta import MtaOptions, MtaTask

    tag = "".join(c for c in name if c.isalnum())
    config = TrainConfig(
        manifest=str(paths["train"]),
        val_data=(str(paths["val"]),),
        val_images=args.val_images,
        out=str(args.out / "runs" / f"{tag}-s{seed}"),
        resolution=args.resolution,
        batch_size=args.batch_size,
        steps=args.steps,
        lr=args.lr,
        lr_schedule="constant",
        workers=0,
        seed=seed,
        log_every=25,
        val_every=10**9,  # only at the end
        sample_every=10**9,
        checkpoint_every=10**9,
        keep_checkpoints=1,
        export_to_store=False,
        ema_decay=0.0,
    )
    options = MtaOptions(
        base_model=str(paths["base"]),
        edge_head=edge,
        style_loss=style,
        style_weight=delta,
        style_net=args.style_net,
        style_layers=tuple(args.style_layers),
        sample_steps=args.sample_steps,
        guidance=args.guidance,
    )
    start = time.perf_counter()
    result = train(MtaTask(options, config), config, show_progress=False)
    tail = result.losses[-4:]  # the last 100 steps' logs
    final = {
        k: sum(r[k] for r in tail) / len(tail) for k in (tail[0] if tail else {}) if k.startswith("main/")
    }
    return {
        "variant": name,
        "seed": seed,
        "delta": delta,
        "base": args.base,
        "steps": args.steps,
        "seconds": round(time.perf_counter() - start, 1),
        **{k: result.validation[k] for k in ("edge_error", "gram_distance", "hole_psnr", "hole_ssim")},
        "final_losses": final,
        "style_share": delta * final["main/style"] / final["main/noise"] if "main/style" in final else None,
    }


def _cell(values: list[float], fmt: str) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return format(mean, fmt)
    return f"{format(mean, fmt)} ({format(min(values), fmt)}..{format(max(values), fmt)})"


def _change(rows: list[dict], got: list[dict], key: str) -> str:
    """Per seed, the relative change of ``key`` against the same seed's noise-only run (paired: the
    same data order, masks and sampling noise), as mean (min..max) in percent."""
    base = {r["seed"]: r[key] for r in rows if r["variant"] == "noise only"}
    changes = [100 * (r[key] / base[r["seed"]] - 1) for r in got if r["seed"] in base]
    return _cell(changes, "+.2f") + " %" if changes else "-"


def table(rows: list[dict]) -> str:
    """Markdown: per variant the mean over seeds, with (min..max) when there are several, and the
    paired change of both measures against noise only."""
    lines = [
        "| variant | edge-map error (hole) | vs noise only | Gram distance (hole) | vs noise only | hole PSNR "
        "| hole SSIM | style share | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = list(dict.fromkeys(r["variant"] for r in rows))
    for name in sorted(names, key=lambda n: list(VARIANTS).index(n) if n in VARIANTS else len(VARIANTS)):
        got = [r for r in rows if r["variant"] == name]
        shares = [r["style_share"] for r in got if r.get("style_share") is not None]
        lines.append(
            f"| {name} | {_cell([r['edge_error'] for r in got], '.5f')} | {_change(rows, got, 'edge_error')} | "
            f"{_cell([r['gram_distance'] for r in got], '.4e')} | {_change(rows, got, 'gram_distance')} | "
            f"{_cell([r['hole_psnr'] for r in got], '.3f')} | {_cell([r['hole_ssim'] for r in got], '.4f')} | "
            f"{_cell(shares, '.1e') if shares else '-'} | {','.join(str(r['seed']) for r in got)} |"
        )
    return "\n".join(lines)


def study_stage(args: argparse.Namespace, base: Path) -> list[dict]:
    paths = {
        "base": base,
        "train": _manifest(GROCERY / "train", args.train_images, args.out / "train.jsonl"),
        "val": _manifest(GROCERY / "val", args.val_images, args.out / "val.jsonl"),
    }
    variants = {name: (*VARIANTS[name], PAPER_DELTA) for name in args.variants}
    if args.diag_delta:
        variants[DIAG.format(delta=args.diag_delta)] = (False, True, args.diag_delta)
    results_file = args.out / "results.jsonl"
    rows = (
        [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.is_file() else []
    )
    rows = [r for r in rows if r.get("base") == args.base and r.get("steps") == args.steps]
    done = {(r["variant"], r["seed"]) for r in rows}
    for seed in args.seeds:
        for name, (edge, style, delta) in variants.items():
            if (name, seed) in done:
                continue
            row = run_variant(name, edge, style, delta, seed, args, paths)
            rows.append(row)
            with results_file.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    text = table(rows)
    (args.out / "table.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=("base", "study", "all"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base", choices=("trained", "random"), default="trained")
    parser.add_argument("--vae-steps", type=int, default=800)
    parser.add_argument("--unet-steps", type=int, default=1500)
    parser.add_argument("--base-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--train-images", type=int, default=512)
    parser.add_argument("--val-images", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--sample-steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=1.0)
    parser.add_argument("--style-net", default="vgg16")
    parser.add_argument("--style-layers", type=int, nargs="*", default=[])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--diag-delta", type=float, default=0.0, help="add the style loss at this delta")
    args = parser.parse_args(argv)
    if not GROCERY.is_dir():
        print(f"no photos at {GROCERY}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # mta_tiny_base, beside this file
    args.out.mkdir(parents=True, exist_ok=True)
    base = base_stage(args)
    if args.stage != "base":
        study_stage(args, base)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
