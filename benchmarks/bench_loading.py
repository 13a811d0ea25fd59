"""How long loading the SD-1.5 inpainting UNet takes, and its peak memory, with and without accelerate.

diffusers builds a model on the meta device and fills it straight from the file when ``accelerate`` is
installed (``low_cpu_mem_usage``); without it, it first builds the whole model with random weights and then
overwrites them. The full-size UNet (the shipped skeleton's config, random weights, fp16 on disk) is saved
once to a temporary folder; each load runs in a fresh process (so its peak resident memory is its own),
the two ways interleaved round by round::

    python benchmarks/bench_loading.py --rounds 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def save_unet(folder: Path) -> None:
    import torch
    from diffusers import UNet2DConditionModel

    config = UNet2DConditionModel.load_config(str(REPO / "resources" / "sd15"), subfolder="unet")
    UNet2DConditionModel.from_config(config).to(torch.float16).save_pretrained(folder / "unet")


def load_once(folder: str, low_memory: bool) -> dict:
    import torch
    from diffusers import UNet2DConditionModel

    start = time.perf_counter()
    UNet2DConditionModel.from_pretrained(
        folder, subfolder="unet", local_files_only=True, dtype=torch.float16, low_cpu_mem_usage=low_memory
    )
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {"seconds": seconds, "peak_gb": peak_gb}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", nargs=2, metavar=("FOLDER", "LOW_MEMORY"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(load_once(a.child[0], a.child[1] == "1")))
        return 0
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:
        print("accelerate is not installed: only the slow way can be measured", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        save_unet(Path(tmp))
        rows: dict[str, list[dict]] = {"random init, then load": [], "accelerate (meta init)": []}
        for _ in range(a.rounds):
            for name, flag in (("random init, then load", "0"), ("accelerate (meta init)", "1")):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", tmp, flag],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rows[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| load of the SD-1.5 inpainting UNet (fp16) | seconds per round | peak RSS |")
    print("| --- | ---: | ---: |")
    for name, got in rows.items():
        secs = " / ".join(f"{r['seconds']:.2f}" for r in got)
        print(f"| {name} | {secs} | {max(r['peak_gb'] for r in got):.2f} GB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
