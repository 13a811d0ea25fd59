"""SD-1.5 inpainting speed: our ``sd15`` engine against diffusers' StableDiffusionInpaintPipeline.

Full-size SD-1.5 inpainting architecture (the shipped skeleton's configs) with random weights, so no
download is needed; 512x512, one variant, classifier-free guidance on (a UNet batch of 2 per step). Both
run on the same module objects, interleaved round by round, and are timed the same way: seconds between
the first and the last step's end, divided by the steps in between (prompt encoding, VAE encode and
decode are left out). Each precision runs in its own process so that its peak resident memory is its own.

    python benchmarks/bench_diffusion.py --steps 3 --rounds 2            # fp32 and bf16 on the CPU
    python benchmarks/bench_diffusion.py --device cuda --precision fp16  # a GPU: fp16 it/s

Targets (issue 11): ours within 5 % of the pipeline per step; bf16 at most 0.5x fp32; peak RSS in bf16
under 6 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build_parts(precision: str, device: str) -> dict:
    """Random SD-1.5 inpainting parts, created directly in the benchmark's number format."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from inpaint_studio.models.diffusion.loading import DTYPES, skeleton_dir

    root = skeleton_dir()
    dtype = getattr(torch, DTYPES[precision])
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype if dtype != torch.float16 else torch.float32)
    try:
        torch.manual_seed(0)
        unet = UNet2DConditionModel.from_config(json.loads((root / "unet" / "config.json").read_text()))
        vae = AutoencoderKL.from_config(json.loads((root / "vae" / "config.json").read_text()))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(str(root / "text_encoder")))
    finally:
        torch.set_default_dtype(previous)
    ready = {
        n: m.to(device, dtype).eval().requires_grad_(False)
        for n, m in (("unet", unet), ("vae", vae), ("text_encoder", text))
    }
    ready["tokenizer"] = CLIPTokenizer.from_pretrained(
        str(root), subfolder="tokenizer", local_files_only=True
    )
    return ready


def run_one(args: argparse.Namespace) -> dict:
    """One precision, in this process: rounds of (ours, pipeline) interleaved."""
    import numpy as np
    import torch
    from diffusers import StableDiffusionInpaintPipeline
    from PIL import Image

    from inpaint_studio.engines.base import Progress, Request
    from inpaint_studio.engines.sd15 import SD15Engine
    from inpaint_studio.models.components import ComponentKey, shared_cache
    from inpaint_studio.models.diffusion.schedulers import make_scheduler
    from inpaint_studio.models.diffusion.source import model_source

    t0 = time.perf_counter()
    parts = build_parts(args.precision, args.device)
    build_s = time.perf_counter() - t0
    folder = Path(tempfile.mkdtemp(prefix="bench-sd15-"))
    (folder / "model_index.json").write_text("{}")  # a model whose parts are already in the cache
    source = model_source(folder)
    cache = shared_cache()
    for name in ("unet", "vae", "text_encoder"):
        cache.get(ComponentKey(source.id, name, args.precision, args.device), lambda n=name: parts[n])
    cache.get(ComponentKey(source.id, "tokenizer", "-", "-"), lambda: parts["tokenizer"])

    size = 512
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[128:384, 128:384] = 255  # with context 0.5 the crop is the whole 512x512 image: no resize
    prompt, guidance = "a wooden chair", 7.5
    params = {
        "steps": args.steps,
        "guidance": guidance,
        "scheduler": args.scheduler,
        "device": args.device,
        "precision": args.precision,
        "color_match": False,
    }
    engine = SD15Engine(weights=folder)
    pipe = StableDiffusionInpaintPipeline(
        vae=parts["vae"],
        text_encoder=parts["text_encoder"],
        tokenizer=parts["tokenizer"],
        unet=parts["unet"],
        scheduler=make_scheduler(args.scheduler),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)

    def ours() -> float:
        stamps = []
        for event in engine.run(Request(image, mask, prompt=prompt, seed=1, params=params)):
            if isinstance(event, Progress) and event.text.startswith("step"):
                stamps.append(time.perf_counter())
        return (stamps[-1] - stamps[0]) / (len(stamps) - 1)

    def theirs() -> float:
        stamps = []

        def on_step(pipeline, i, t, kwargs):  # noqa: ANN001
            stamps.append(time.perf_counter())
            return kwargs

        pipe.scheduler = make_scheduler(args.scheduler)
        pipe(
            prompt=prompt,
            image=Image.fromarray(image),
            mask_image=Image.fromarray(mask),
            height=size,
            width=size,
            num_inference_steps=args.steps,
            guidance_scale=guidance,
            strength=1.0,
            generator=torch.Generator("cpu").manual_seed(1),
            callback_on_step_end=on_step,
            output_type="np",
        )
        return (stamps[-1] - stamps[0]) / (len(stamps) - 1)

    ours_s, pipe_s = [], []
    for r in range(args.rounds):
        first, second = (ours, theirs) if r % 2 == 0 else (theirs, ours)
        a, b = first(), second()
        (ours_s if first is ours else pipe_s).append(a)
        (pipe_s if first is ours else ours_s).append(b)
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB
    peak_gpu = None
    if args.device.startswith("cuda"):
        peak_gpu = torch.cuda.max_memory_allocated() / 1024**3
    return {
        "precision": args.precision,
        "device": args.device,
        "steps": args.steps,
        "rounds": args.rounds,
        "ours_s": ours_s,
        "pipe_s": pipe_s,
        "peak_rss_gb": rss_gb,
        "peak_gpu_gb": peak_gpu,
        "build_s": build_s,
        "threads": torch.get_num_threads(),
        "load": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="denoising steps per run (at least 2)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of ours / the pipeline")
    parser.add_argument("--precision", default="both", choices=("both", "fp32", "bf16", "fp16"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scheduler", default="dpmpp_2m_karras")
    parser.add_argument("--json", action="store_true", help="(internal) run one precision, print JSON")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (time per step is measured between steps)")
    if args.json:
        print("RESULT " + json.dumps(run_one(args)), flush=True)
        return 0
    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    rows = []
    for precision in precisions:
        cmd = [
            sys.executable,
            __file__,
            "--json",
            "--precision",
            precision,
            "--device",
            args.device,
            "--steps",
            str(args.steps),
            "--rounds",
            str(args.rounds),
            "--scheduler",
            args.scheduler,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        rows.append(json.loads(line[len("RESULT ") :]))
    print(
        f"SD-1.5 inpainting, 512x512, CFG 7.5, {args.scheduler}, {args.steps} steps x {args.rounds} rounds, "
        f"random weights, device {args.device}"
    )
    print(
        f"{'precision':<9} {'ours s/step':>12} {'pipeline s/step':>16} {'ours/pipe':>10} {'peak RSS GB':>12} "
        f"{'threads':>8} {'load avg':>9}"
    )
    best = {}
    for row in rows:
        ours, pipe = min(row["ours_s"]), min(row["pipe_s"])
        best[row["precision"]] = ours
        print(
            f"{row['precision']:<9} {ours:>12.3f} {pipe:>16.3f} {ours / pipe:>10.3f} {row['peak_rss_gb']:>12.2f} "
            f"{row['threads']:>8} {row['load']:>9.1f}"
        )
        if row["peak_gpu_gb"] is not None:
            print(
                f"          GPU: {1 / ours:.2f} it/s ours, {1 / pipe:.2f} it/s pipeline, "
                f"peak allocated {row['peak_gpu_gb']:.2f} GB"
            )
    if "fp32" in best and "bf16" in best:
        print(f"bf16 / fp32 time per step (ours): {best['bf16'] / best['fp32']:.3f}")
    print(
        "all rounds (s/step): "
        + "; ".join(
            f"{r['precision']} ours {[round(x, 3) for x in r['ours_s']]} pipeline {[round(x, 3) for x in r['pipe_s']]}"
            for r in rows
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
