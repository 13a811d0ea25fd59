"""The measured effect of MTA's two new loss terms, at small scale (issue 13's acceptance).

    PYTHONPATH=. python benchmarks/eval_mta_losses.py --out /tmp/mta_losses [--steps 200] [--seeds 0]

Trains the same small MTA branch four times, same steps, data order, masks and seed, with the edge
head on / off and the style loss on / off, beside a tiny random SD-1.5-shaped base model (the test
suite's ``tests/sd_tiny.py``: UNet 32/64 channels, 4-level VAE, 2-layer CLIP; random weights, since
there was no time to train a tiny VAE and UNet on ../shared/data). Training rows: grocery-store
product photos from ``../shared/data/grocery_store/train`` captioned with their product name;
held back: images from ``grocery_store/val``. Each run then fills the held-back images' holes
(masks from a fixed seed per image, DDIM with the run's ``--sample-steps``) and reports, inside the
hole:

* ``edge_error``: mean squared difference of the Sobel edge maps of fill and target;
* ``gram_distance``: Gram-matrix distance of fill and target through a fixed random RGB network
  (``trainers.tasks.mta.fixed_judge``: the same in every run, never trained);
* hole PSNR / SSIM, for reference.

These are the task's own validation metrics (``MtaTask.validation_metrics``). Each term should
lower its own measure: the table prints what came out, whatever it is. ``--lr`` is raised above
the paper's 1e-5 (same for every run) so that a few hundred steps move the branch at all. There is
no VGG file here, so the latent style extractor is random (He-normal, ``MtaTask``); the extra row
with delta 1e8 shows the style term at a weight where it moves the branch at all.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GROCERY = REPO.parent / "shared" / "data" / "grocery_store"
VARIANTS = {  # name -> (edge head, style loss, style weight delta)
    "noise only": (False, False, 100.0),
    "+ edge head": (True, False, 100.0),
    "+ style loss": (False, True, 100.0),
    "+ edge + style": (True, True, 100.0),
    # a random extractor's Gram matrices on latents are ~1e-9, so the paper's delta = 100 gives the
    # term no weight at all; this row scales delta until it is of the noise term's order
    "+ style loss, delta 1e8": (False, True, 1e8),
}


def _manifest(split: Path, count: int, out: Path) -> Path:
    """``count`` photos of ``split``, spread over the products, captioned with the product's name."""
    files = sorted(split.rglob("*.jpg"))
    step = max(1, len(files) // count)
    rows = [
        {"image": str(f), "caption": f.parent.name.replace("-", " ").lower()} for f in files[::step][:count]
    ]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return out


def _tiny_base(folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    try:
        import sd_tiny
    finally:
        sys.path.pop(0)
    if not (folder / "model_index.json").is_file():
        sd_tiny.save_folder(sd_tiny.tiny_parts(in_channels=4), folder)
    return folder


def run_variant(
    name: str, edge: bool, style: bool, delta: float, seed: int, args: argparse.Namespace, paths: dict
) -> dict:
    from trainers.config import TrainConfig
    from trainers.loop import train
    from trainers.tasks.mta import MtaOptions, MtaTask

    config = TrainConfig(
        manifest=str(paths["train"]),
        val_data=(str(paths["val"]),),
        val_images=args.val_images,
        out=str(args.out / "runs" / f"{''.join(c for c in name if c.isalnum())}-s{seed}"),
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
    last = result.losses[-1] if result.losses else {}
    return {
        "variant": name,
        "seed": seed,
        "seconds": round(time.perf_counter() - start, 1),
        **{k: result.validation[k] for k in ("edge_error", "gram_distance", "hole_psnr", "hole_ssim")},
        "final_losses": {k: v for k, v in last.items() if k.startswith("main/")},
    }


def table(rows: list[dict]) -> str:
    """Markdown: mean over seeds per variant."""
    lines = [
        "| variant | edge-map error (hole) | Gram distance (hole) | hole PSNR | hole SSIM | runs |",
        "|---|---|---|---|---|---|",
    ]
    for name in VARIANTS:
        got = [r for r in rows if r["variant"] == name]
        if not got:
            continue

        def mean(key: str, got: list[dict] = got) -> float:
            return sum(r[key] for r in got) / len(got)

        lines.append(
            f"| {name} | {mean('edge_error'):.6f} | {mean('gram_distance'):.4e} | {mean('hole_psnr'):.3f} | "
            f"{mean('hole_ssim'):.4f} | {len(got)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--train-images", type=int, default=256)
    parser.add_argument("--val-images", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--sample-steps", type=int, default=10)
    parser.add_argument("--guidance", type=float, default=1.0)
    parser.add_argument("--style-net", default="vgg16")
    parser.add_argument("--style-layers", type=int, nargs="*", default=[])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args(argv)
    if not GROCERY.is_dir():
        print(f"no photos at {GROCERY}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = {
        "base": _tiny_base(args.out / "tiny-sd15"),
        "train": _manifest(GROCERY / "train", args.train_images, args.out / "train.jsonl"),
        "val": _manifest(GROCERY / "val", args.val_images, args.out / "val.jsonl"),
    }
    results_file = args.out / "results.jsonl"
    rows = (
        [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.is_file() else []
    )
    done = {(r["variant"], r["seed"]) for r in rows}
    for seed in args.seeds:
        for name in args.variants:
            if (name, seed) in done:
                continue
            edge, style, delta = VARIANTS[name]
            row = run_variant(name, edge, style, delta, seed, args, paths)
            rows.append(row)
            with results_file.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    text = table(rows)
    (args.out / "table.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
