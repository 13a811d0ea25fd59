"""MTA training at real size: seconds per step and peak memory of ``inpaint-studio-train mta``.

The full SD-1.5 text-to-image architecture (the shipped skeleton's configs, ``resources/sd15`` with the
4-channel ``unet_base``) with random weights stands in for a person's base model, so nothing is
downloaded; the branch is MTA's (self-attention, edge head) with the style loss on, as a real run trains
it. Each setting runs the real trainer command in a process of its own on a few photos (512 px, batch
1), so its peak memory is its own: resident set on the CPU, ``torch.cuda.max_memory_allocated`` on a
GPU. A step's time is the mean gap between logged steps after the first (which pays for warm-up).

    python benchmarks/bench_mta_train.py                                   # the CPU, 3 steps a setting
    python benchmarks/bench_mta_train.py --device cuda --settings bf16,bf16+ckpt,fp16 --steps 12

Settings: the frozen parts' precision (``fp32``, ``bf16``, ``fp16``), ``+ckpt`` for gradient
checkpointing of the branch. Random weights make the losses meaningless: this measures cost only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CHILD = "--child"  # argv[1] of the per-setting process: the trainer's argv (JSON) and the report file follow
PHOTOS = REPO.parent / "shared" / "data" / "grocery_store" / "train"


def build_base(folder: Path) -> Path:
    """A diffusers folder of random full-size SD-1.5 text-to-image parts, in fp16 (as released)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from inpaint_studio.models.diffusion.loading import skeleton_dir

    if (folder / "model_index.json").is_file():
        return folder
    root = skeleton_dir()
    torch.manual_seed(0)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    unet = UNet2DConditionModel.from_config(json.loads((root / "unet_base" / "config.json").read_text()))
    unet.half().save_pretrained(tmp / "unet")
    del unet
    AutoencoderKL.from_config(json.loads((root / "vae" / "config.json").read_text())).half().save_pretrained(
        tmp / "vae"
    )
    CLIPTextModel(CLIPTextConfig.from_pretrained(str(root / "text_encoder"))).half().save_pretrained(
        tmp / "text_encoder"
    )
    for name in ("tokenizer", "scheduler"):
        shutil.copytree(root / name, tmp / name)
    index = json.loads((root / "model_index.json").read_text())
    (tmp / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableDiffusionPipeline"}))
    tmp.rename(folder)
    return folder


def write_manifest(folder: Path, count: int) -> Path:
    """``count`` photos at 512 px (grocery photos when ``../shared`` is here, else gradients)."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    every = sorted(PHOTOS.rglob("*.jpg"))
    found = every[:: max(1, len(every) // count)][:count]
    rows = []
    for i in range(count):
        if i < len(found):
            image = cv2.resize(cv2.imread(str(found[i])), (512, 512), interpolation=cv2.INTER_CUBIC)
            caption = found[i].parent.name.replace("-", " ").lower()
        else:
            yy, xx = np.mgrid[0:512, 0:512]
            image = np.dstack([xx // 2, yy // 2, (xx + yy + 40 * i) % 256]).astype(np.uint8)
            caption = "a gradient"
        cv2.imwrite(str(folder / f"{i}.png"), image)
        rows.append({"image": str(folder / f"{i}.png"), "caption": caption})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def child(argv: list[str], report: Path) -> None:
    """Run the trainer here and write this process's peak memory to ``report``: over the whole run,
    and up to the last checkpoint and export (``Run.finish``), which can have a peak of their own."""
    import torch

    from trainers import loop
    from trainers.cli import main

    peak: dict = {}
    finish = loop.Run.finish

    def measured_finish(run: loop.Run) -> None:
        peak["rss_gb_steps"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        finish(run)

    loop.Run.finish = measured_finish  # type: ignore[method-assign]
    code = main(argv)
    peak.update(rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, code=code)
    if torch.cuda.is_available():
        peak["cuda_gb"] = torch.cuda.max_memory_allocated() / 2**30
    report.write_text(json.dumps(peak))


def run_setting(setting: str, args: argparse.Namespace, base: Path, manifest: Path, work: Path) -> dict:
    precision, _, extra = setting.partition("+")
    run = work / f"run-{setting}"
    shutil.rmtree(run, ignore_errors=True)
    argv = [
        "mta",
        *("--manifest", str(manifest), "--val-data", str(manifest), "--val-images", "1"),
        *("--base-model", str(base), "--out", str(run), "--resolution", "512"),
        *("--steps", str(args.steps), "--batch-size", "1", "--device", args.device, "--workers", "0"),
        *("--log-every", "1", "--sample-every", "1000000", "--val-every", "1000000", "--sample-steps", "1"),
        *("--checkpoint-every", "1000000", "--no-export-to-store", "--frozen-precision", precision),
        "--gradient-checkpointing" if extra == "ckpt" else "--no-gradient-checkpointing",
        *("--branch", "mta", "--edge-head", "--style-loss"),
    ]
    report = work / f"peak-{setting}.json"
    report.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(
        [sys.executable, __file__, CHILD, json.dumps(argv), str(report)],
        env=env,
        capture_output=True,
        text=True,
    )
    row = {"setting": setting}
    if not report.is_file():
        tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        row["error"] = "killed (out of memory?)" if proc.returncode in (-9, 137) else tail[:120]
        return row
    row.update(json.loads(report.read_text()))
    times = [
        json.loads(line)["time"]
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if json.loads(line).get("group") == "train"
    ]
    row["s_per_step"] = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None
    shutil.rmtree(run, ignore_errors=True)  # checkpoints of random weights: gigabytes of nothing
    return row


def main() -> None:
    if sys.argv[1:2] == [CHILD]:
        child(json.loads(sys.argv[2]), Path(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--settings", default="fp32,bf16,bf16+ckpt")
    ap.add_argument("--steps", type=int, default=3, help="trainer steps per setting (the first is warm-up)")
    ap.add_argument("--photos", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_mta_train")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    base = build_base(args.work / "sd15-random")
    manifest = write_manifest(args.work / "photos", args.photos)
    rows = [run_setting(s, args, base, manifest, args.work) for s in args.settings.split(",")]
    print(
        f"\nMTA training step at 512 px, batch 1, {args.device}, {args.threads} threads, edge head + style loss on"
    )
    cuda = args.device.startswith("cuda")
    mem = (
        "peak CUDA GiB | peak RSS GiB" if cuda else "peak RSS GiB, steps | peak RSS GiB, with the final save"
    )
    print(f"| setting | s / step | {mem} |\n| --- | ---: | ---: | ---: |")
    for r in rows:
        if "error" in r:
            print(f"| {r['setting']} | {r['error']} | | |")
            continue
        first = f"{r['cuda_gb']:.2f}" if cuda else f"{r['rss_gb_steps']:.2f}"
        step = f"{r['s_per_step']:.2f}" if r.get("s_per_step") is not None else "n/a"
        print(f"| {r['setting']} | {step} | {first} | {r['rss_gb']:.2f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
