"""MaskGIT trained with ``inpaint-studio-train``: tokenizer and fill quality, against the classical engine.

    python benchmarks/eval_maskgit.py --weights RUN/weights [--data DIR ...] [--steps 8] [--json FILE]

Every validation image is resized (short side) and centre-cropped to the bundle's native size
(grid x factor, e.g. 64 px). Reported:

* tokenizer: reconstruction PSNR / SSIM of the whole image through the VQGAN, and codebook usage
  over the whole set (distinct codes used, perplexity of the set's code histogram);
* per mask kind (masks from ``trainers/masks.py``, seeded by (seed, image index, kind), so every
  engine sees exactly the same holes and reruns give the same numbers): hole PSNR / SSIM of
  MaskGIT's iterative decode (``engine.run`` with the ``resize`` strategy at model size, ``--steps``
  steps, ``token_threshold`` 0, preview off) and of the classical engine on the same image and mask,
  measured on the pasted results inside the hole only (``trainers/metrics.py``); the "oracle" hole
  PSNR (the hole drawn from the image's own tokens: the tokenizer's ceiling for any transformer);
  the masked-token accuracy of one transformer pass (argmax at the hole's tokens, the rest given)
  and the share of the decode's final tokens that equal the image's own.
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
from inpaint_studio.models.maskgit import load_maskgit
from trainers import metrics
from trainers.data import center_crop, list_images
from trainers.masks import MaskMixture

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = [REPO.parent / "shared" / "data" / "grocery_store" / "val"]
DEFAULT_KINDS = ("box", "medium", "thick", "irregular", "strokes")


def _fill(engine, image: np.ndarray, mask: np.ndarray, params: dict, seed: int = 0) -> Result:
    events = engine.run(Request(image, mask, seed=seed, params=params))
    return [at_full_size(e, image) for e in events if isinstance(e, Result)][-1]


def _unit(pixels: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float() / 255.0


def _mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


@torch.no_grad()
def evaluate(
    weights: str | Path,
    data: list[Path],
    steps: int = 8,
    kinds: tuple[str, ...] = DEFAULT_KINDS,
    count: int = 0,
    seed: int = 0,
) -> dict:
    vqgan, transformer, _ = load_maskgit(weights)
    grid, factor = transformer.config.grid_size, vqgan.factor
    size, mask_id = grid * factor, transformer.config.mask_id
    files = list_images(data)
    if count:
        files = [files[i * len(files) // count] for i in range(min(count, len(files)))]
    maskgit = registry.create("maskgit", weights=weights, device="cpu")
    classical = registry.create("classical")
    params = {"steps": steps, "strategy": "resize", "token_threshold": 0.0, "preview": "off"}
    mixture = MaskMixture(",".join(kinds))
    rec_psnr, rec_ssim, histogram = [], [], torch.zeros(vqgan.config.n_embed)
    rows: dict[str, dict[str, list[float]]] = {k: {} for k in kinds}
    seconds = {"maskgit": 0.0, "classical": 0.0}
    for i, path in enumerate(files):
        image = center_crop(load_image(path), size)
        target = _unit(image)
        codes = vqgan.encode_indices(target * 2 - 1)  # (1, grid, grid), the image's own tokens
        histogram += torch.bincount(codes.flatten(), minlength=vqgan.config.n_embed).float()
        recon = (vqgan.decode_indices(codes).clamp(-1, 1) + 1) / 2
        whole = torch.ones_like(target[:, :1])
        rec_psnr.append(float(metrics.hole_psnr(recon, target, whole)[0]))
        rec_ssim.append(float(metrics.hole_ssim(recon, target, whole)[0]))
        for k, kind in enumerate(kinds):
            hole = mixture.make(kind, size, size, np.random.default_rng([seed, i, k]))
            if not hole.any():
                continue
            mask = hole.astype(np.uint8) * 255
            m = torch.from_numpy(hole)[None, None].float()
            row = rows[kind]
            t0 = time.perf_counter()
            result = _fill(maskgit, image, mask, params, seed=seed + i)
            seconds["maskgit"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            plain = _fill(classical, image, mask, {})
            seconds["classical"] += time.perf_counter() - t0
            for name, out in (("maskgit", result.image), ("classical", plain.image)):
                row.setdefault(f"{name}_psnr", []).append(float(metrics.hole_psnr(_unit(out), target, m)[0]))
                row.setdefault(f"{name}_ssim", []).append(float(metrics.hole_ssim(_unit(out), target, m)[0]))
            oracle = recon * m + target * (1 - m)
            row.setdefault("oracle_psnr", []).append(float(metrics.hole_psnr(oracle, target, m)[0]))
            unknown = torch.from_numpy(result.meta["unknown"]).flatten()
            own = codes.flatten()
            given = torch.where(unknown, torch.full_like(own, mask_id), own)
            guess = transformer(given[None])[0].argmax(-1)
            row.setdefault("token_acc", []).append(float((guess[unknown] == own[unknown]).float().mean()))
            decoded = torch.from_numpy(result.meta["tokens"].astype(np.int64)).flatten()
            row.setdefault("decode_token_match", []).append(
                float((decoded[unknown] == own[unknown]).float().mean())
            )
            row.setdefault("hole_ratio", []).append(float(hole.mean()))
            row.setdefault("maskgit_wins", []).append(
                float(row["maskgit_psnr"][-1] > row["classical_psnr"][-1])
            )
        if (i + 1) % 25 == 0:
            print(f"  {i + 1}/{len(files)} images", file=sys.stderr)
    probs = histogram / histogram.sum()
    fills = max(1, sum(len(r.get("hole_ratio", [])) for r in rows.values()))
    summary: dict = {
        "weights": str(weights),
        "data": [str(d) for d in data],
        "images": len(files),
        "resolution": size,
        "grid": grid,
        "steps": steps,
        "seed": seed,
        "tokenizer": {
            "rec_psnr": _mean(rec_psnr),
            "rec_ssim": _mean(rec_ssim),
            "codebook_size": vqgan.config.n_embed,
            "codes_used": int((histogram > 0).sum()),
            "perplexity": float(torch.exp(-(probs * torch.log(probs + 1e-12)).sum())),
        },
        "seconds_per_fill": {k: v / fills for k, v in seconds.items()},
        "kinds": {kind: {key: _mean(vals) for key, vals in row.items()} for kind, row in rows.items() if row},
    }
    keys = sorted({key for row in rows.values() for key in row})
    summary["all"] = {key: _mean([v for row in rows.values() for v in row.get(key, [])]) for key in keys}
    return summary


def print_table(summary: dict) -> None:
    tok = summary["tokenizer"]
    print(f"\n{summary['images']} images at {summary['resolution']} px ({summary['grid']}x{summary['grid']} tokens), "
          f"{summary['steps']} decode steps, weights {summary['weights']}")  # fmt: skip
    print(f"tokenizer: reconstruction PSNR {tok['rec_psnr']:.2f} dB, SSIM {tok['rec_ssim']:.4f}; codes used "
          f"{tok['codes_used']}/{tok['codebook_size']}, perplexity {tok['perplexity']:.1f}")  # fmt: skip
    head = ("mask kind", "hole %", "MaskGIT PSNR", "classical PSNR", "oracle PSNR", "MaskGIT SSIM",
            "classical SSIM", "token acc", "decode match", "MaskGIT wins")  # fmt: skip
    print("  ".join(f"{h:>14}" for h in head))
    for kind, e in [*summary["kinds"].items(), ("all", summary["all"])]:
        cells = [kind, f"{100 * e['hole_ratio']:.0f}", f"{e['maskgit_psnr']:.2f}", f"{e['classical_psnr']:.2f}",
                 f"{e['oracle_psnr']:.2f}", f"{e['maskgit_ssim']:.4f}", f"{e['classical_ssim']:.4f}",
                 f"{100 * e['token_acc']:.1f} %", f"{100 * e['decode_token_match']:.1f} %",
                 f"{100 * e['maskgit_wins']:.0f} %"]  # fmt: skip
        print("  ".join(f"{c:>14}" for c in cells))
    secs = summary["seconds_per_fill"]
    print(f"seconds per fill: MaskGIT {secs['maskgit']:.3f}, classical {secs['classical']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--weights", required=True, help="maskgit weights folder (RUN/weights of the stage-2 run)"
    )
    parser.add_argument("--data", nargs="+", type=Path, default=DEFAULT_DATA, help="validation image folders")
    parser.add_argument("--steps", type=int, default=8, help="MaskGIT decoding steps")
    parser.add_argument("--kinds", default=",".join(DEFAULT_KINDS), help="mask kinds (trainers/masks.py)")
    parser.add_argument("--count", type=int, default=0, help="evenly spaced subset of the images (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    summary = evaluate(args.weights, args.data, args.steps, kinds, args.count, args.seed)
    print_table(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
