"""Hole PSNR / SSIM of InP-Net against the classical engine, on the same images and masks.

    python benchmarks/eval_inpnet.py --weights RUN/weights [--data DIR ...] [--resolution 128]

Every validation image is resized (short side) and centre-cropped to ``--resolution``; for each
mask kind a mask is drawn from ``trainers/masks.py`` with a generator seeded by (seed, image
index, kind), so every engine sees exactly the same holes and a rerun gives the same numbers.
Both engines run through their public ``engine.run(Request)`` (InP-Net with the ``resize``
strategy, i.e. at the resolution it was trained at); the metrics are measured on the pasted
results, inside the hole only (``trainers/metrics.py``), and averaged per image.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from inpaint_studio.core.imageio import load_image
from inpaint_studio.engines import registry
from inpaint_studio.engines.base import Request, Result, at_full_size
from trainers import metrics
from trainers.data import center_crop, list_images
from trainers.masks import MaskMixture

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = [REPO.parent / "shared" / "data" / s / "val" for s in ("grocery_store", "bsds500")]
DEFAULT_KINDS = ("strokes", "medium", "thick", "irregular", "box")


def _fill(engine, image: np.ndarray, mask: np.ndarray, params: dict) -> np.ndarray:
    result = [
        at_full_size(e, image)
        for e in engine.run(Request(image, mask, params=params))
        if isinstance(e, Result)
    ]
    return result[-1].image


def _to_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255.0


def evaluate(
    weights: str | Path | None,
    data: list[Path],
    resolution: int = 128,
    kinds: tuple[str, ...] = DEFAULT_KINDS,
    count: int = 0,
    seed: int = 0,
    device: str = "cpu",
    hole_threshold: float = 0.25,
) -> dict:
    files = list_images(data)
    if count:
        files = [files[i * len(files) // count] for i in range(min(count, len(files)))]
    engines = {
        "inpnet": (
            registry.create("inpnet", weights=weights, device=device),
            {"strategy": "resize", "hole_threshold": hole_threshold},
        ),
        "classical": (registry.create("classical"), {}),
    }
    mixture = MaskMixture(",".join(kinds), patch=8)
    scores: dict[str, dict[str, dict[str, list[float]]]] = {
        k: {e: {"psnr": [], "ssim": []} for e in engines} for k in kinds
    }
    ratios: dict[str, list[float]] = {k: [] for k in kinds}
    seconds = {e: 0.0 for e in engines}
    for i, path in enumerate(files):
        image = center_crop(load_image(path), resolution)
        target = _to_tensor(image)
        for k_index, kind in enumerate(kinds):
            hole = mixture.make(kind, resolution, resolution, np.random.default_rng([seed, i, k_index]))
            mask = hole.astype(np.uint8) * 255
            ratios[kind].append(float(hole.mean()))
            m = torch.from_numpy(hole)[None, None].float()
            for name, (engine, params) in engines.items():
                t0 = time.perf_counter()
                out = _fill(engine, image, mask, params)
                seconds[name] += time.perf_counter() - t0
                pred = _to_tensor(out)
                scores[kind][name]["psnr"].append(float(metrics.hole_psnr(pred, target, m)[0]))
                scores[kind][name]["ssim"].append(float(metrics.hole_ssim(pred, target, m)[0]))
        if (i + 1) % 25 == 0:
            print(f"  {i + 1}/{len(files)} images", file=sys.stderr)
    summary: dict = {
        "images": len(files),
        "resolution": resolution,
        "seed": seed,
        "weights": str(weights),
        "hole_threshold": hole_threshold,
        "data": [str(d) for d in data],
        "seconds_per_fill": {e: s / max(1, len(files) * len(kinds)) for e, s in seconds.items()},
        "kinds": {},
    }
    for kind in kinds:
        entry = {"hole_ratio": float(np.mean(ratios[kind]))}
        for name in engines:
            entry[name] = {m: float(np.mean(v)) for m, v in scores[kind][name].items()}
        entry["inpnet_wins"] = float(
            np.mean(np.array(scores[kind]["inpnet"]["psnr"]) > np.array(scores[kind]["classical"]["psnr"]))
        )
        summary["kinds"][kind] = entry
    summary["all"] = {
        name: {m: float(np.mean([x for k in kinds for x in scores[k][name][m]])) for m in ("psnr", "ssim")}
        for name in engines
    }
    return summary


def print_table(summary: dict) -> None:
    print(f"\n{summary['images']} images at {summary['resolution']} px, weights {summary['weights']}")
    print(f"{'mask kind':<11} {'hole %':>6}  {'InP-Net PSNR':>12} {'classical PSNR':>14}  "
          f"{'InP-Net SSIM':>12} {'classical SSIM':>14}  {'InP-Net wins':>12}")  # fmt: skip
    rows = list(summary["kinds"].items()) + [("all", {**summary["all"], "hole_ratio": float("nan")})]
    for kind, e in rows:
        wins = f"{100 * e['inpnet_wins']:.0f} %" if "inpnet_wins" in e else ""
        ratio = f"{100 * e['hole_ratio']:.0f}" if e["hole_ratio"] == e["hole_ratio"] else ""
        print(f"{kind:<11} {ratio:>6}  {e['inpnet']['psnr']:>12.2f} {e['classical']['psnr']:>14.2f}  "
              f"{e['inpnet']['ssim']:>12.4f} {e['classical']['ssim']:>14.4f}  {wins:>12}")  # fmt: skip
    secs = summary["seconds_per_fill"]
    print(f"seconds per fill: InP-Net {secs['inpnet']:.3f}, classical {secs['classical']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", help="InP-Net weights folder (default: newest in the model store)")
    parser.add_argument("--data", nargs="+", type=Path, default=DEFAULT_DATA, help="validation image folders")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--kinds", default=",".join(DEFAULT_KINDS), help="mask kinds (trainers/masks.py)")
    parser.add_argument("--count", type=int, default=0, help="evenly spaced subset of the images (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hole-threshold", type=float, default=0.25, help="InP-Net's patch-drop threshold")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    summary = evaluate(
        args.weights,
        args.data,
        args.resolution,
        kinds,
        args.count,
        args.seed,
        args.device,
        args.hole_threshold,
    )
    print_table(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
