"""MaskGIT decode speed at 256x256: time per step and in total for T steps, and what previews cost.

Models have RANDOM weights (no trained MaskGIT exists offline); speed does not depend on the weight
values, except the lazy atlas's first-run cost, which grows with the number of distinct codes a run
shows (random weights show many, so that figure is pessimistic); bundles carry a pre-rendered atlas. Sizes are realistic: the public
taming ImageNet f16/1024 VQGAN (72M parameters) and a mid-sized transformer (512 wide, 12 layers,
39.5M); ``--transformer valeoai`` uses the released 174M configuration instead.

The machine may be shared: compare the figures as ratios within one run, not across runs.

    python benchmarks/bench_maskgit.py [--steps 4 8 12 16] [--modes off atlas crop] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from inpaint_studio.engines.base import Request, Result, at_full_size
from inpaint_studio.engines.maskgit import MaskGitEngine
from inpaint_studio.models.maskgit import MaskGitConfig, MaskGitTransformer
from inpaint_studio.models.vqgan import VQGAN, VQGANConfig
from inpaint_studio.models.vqgan.atlas import CodeAtlas

TRANSFORMERS = {
    "mid": dict(hidden_dim=512, depth=12, heads=8, mlp_dim=2048, num_classes=0),
    "valeoai": dict(hidden_dim=768, depth=24, heads=16, mlp_dim=3072, num_classes=1000),
}


def build(transformer: str) -> tuple[VQGAN, MaskGitTransformer]:
    torch.manual_seed(0)
    vqgan = VQGAN(VQGANConfig()).eval()  # ch 128, ch_mult 1,1,2,2,4, 1024 codes: the public f16 model
    tf = MaskGitTransformer(
        MaskGitConfig(codebook_size=1024, grid_size=16, dropout=0.0, **TRANSFORMERS[transformer])
    )
    return vqgan, tf.eval()


def scene() -> tuple[np.ndarray, np.ndarray]:
    """384x384 photo-like gradient with a centred 128x128 hole: the crop framing makes it 256x256
    at model size with the hole covering 8x8 of the 16x16 tokens (25 %)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:384, 0:384]
    img = np.stack([xx * 0.6, yy * 0.6, (xx + yy) * 0.3], -1) + rng.normal(0, 8, (384, 384, 3))
    mask = np.zeros((384, 384), np.uint8)
    mask[128:256, 128:256] = 255
    return np.clip(img, 0, 255).astype(np.uint8), mask


def timed(fn, repeat: int = 2) -> float:
    """Median of ``repeat`` runs after one warm-up; ``repeat=0`` times the single first run."""
    if repeat == 0:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


@torch.no_grad()
def components(vqgan: VQGAN, tf: MaskGitTransformer) -> dict[str, float]:
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    grid = torch.randint(0, 1024, (1, 16, 16))
    masked = torch.full((1, 256), 1024)
    return {
        "transformer step (batch 1)": timed(lambda: tf(masked), 3),
        "transformer step (batch 4)": timed(lambda: tf(masked.repeat(4, 1)), 2),
        "VQGAN encode 256": timed(lambda: vqgan.encode(x), 1),
        "VQGAN decode 16x16 (full / final result)": timed(lambda: vqgan.decode_indices(grid), 1),
        "VQGAN decode 12x12 (crop preview window)": timed(lambda: vqgan.decode_indices(grid[:, :12, :12]), 1),
        "VQGAN decode 64 codes alone (atlas fill)": timed(
            lambda: vqgan.decode_indices(grid.view(-1, 1, 1)[:64]), 1
        ),
        "full atlas, 1024 codes (once, at bundle save)": timed(
            lambda: CodeAtlas(vqgan).ensure(torch.arange(1024)), 0
        ),
    }


def run_once(
    engine: MaskGitEngine, steps: int, mode: str, variants: int = 1
) -> tuple[float, dict[str, float]]:
    img, mask = scene()
    request = Request(img, mask, seed=0, variants=variants, params={"steps": steps, "preview": mode})
    t0 = time.perf_counter()
    result = [at_full_size(e, request.image) for e in engine.run(request) if isinstance(e, Result)][0]
    return time.perf_counter() - t0, dict(result.meta["timing"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, nargs="+", default=[4, 8, 12, 16])
    p.add_argument(
        "--modes", nargs="+", default=["off", "atlas", "crop"], choices=["off", "atlas", "crop", "full"]
    )
    p.add_argument("--transformer", choices=sorted(TRANSFORMERS), default="mid")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--no-components", action="store_true", help="skip the per-component table")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    vqgan, tf = build(args.transformer)
    n_vq = sum(p.numel() for p in vqgan.parameters()) / 1e6
    n_tf = sum(p.numel() for p in tf.parameters()) / 1e6
    print(
        f"# MaskGIT CPU benchmark (random weights) — torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"VQGAN f16/1024: {n_vq:.1f}M params; transformer '{args.transformer}': {n_tf:.1f}M params\n")

    if not args.no_components:
        print("| component | seconds |\n| --- | ---: |")
        for name, sec in components(vqgan, tf).items():
            print(f"| {name} | {sec:.3f} |")

    engine = MaskGitEngine.from_models(vqgan, tf)
    full_atlas = CodeAtlas(vqgan)
    full_atlas.ensure(torch.arange(1024))
    run_once(engine, 2, "off")  # warm-up (allocator, first-call overheads)
    rows = []
    for steps in args.steps:
        for mode in args.modes:
            if mode == "atlas":
                engine._atlas = None  # lazy: a bundle saved without an atlas renders codes as they appear
                cold, cold_t = run_once(engine, steps, mode)
                rows.append((steps, "atlas (lazy, cold)", cold, cold_t))
                engine._atlas = full_atlas  # what a bundle with its atlas part loads
                warm, warm_t = run_once(engine, steps, mode)
                rows.append((steps, "atlas (from bundle)", warm, warm_t))
            else:
                total, timing = run_once(engine, steps, mode)
                rows.append((steps, mode, total, timing))

    print(
        "\n| T | previews | total s | transformer s/step | transformer s | preview s | encode+final decode s "
        "| previews add (same run) | transformer : preview |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for steps, mode, total, t in rows:
        # preview cost against the rest of the SAME run: robust when other processes share the CPU
        added = f"{t['preview'] / (total - t['preview']):+.0%}"
        busy = t["transformer"] + t["preview"]
        share = f"{t['transformer'] / busy:.0%} : {t['preview'] / busy:.0%}"
        print(
            f"| {steps} | {mode} | {total:.2f} | {t['transformer'] / steps:.3f} | {t['transformer']:.2f} | "
            f"{t['preview']:.2f} | {t['encode'] + t['decode']:.2f} | {added} | {share} |"
        )


if __name__ == "__main__":
    main()
