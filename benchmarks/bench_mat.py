"""MAT speed on the CPU: one generator forward, and N variants of one image.

    python benchmarks/bench_mat.py [--threads 2] [--repeats 3] [--variants 1 4 8] [--no-bf16]

Runs the official-size 512 generator with random weights (speed does not depend on the values)
on the golden input of ../shared/reference/mat when present (a 41.9 % irregular hole), else on a
synthetic image with a large box hole. Prints:

* one forward (mapping + both stages, batch 1): ours in the app's channels-last layout, ours in
  the official NCHW order of operations (what the parity tests run), bf16 if the CPU has it;
  the official implementation's figure is quoted from the reference README (not measured here);
* N variants the way the engine makes them (one shared encoding, then batches): total, per
  variant, and the speed-up over N separate forwards.

The machine is shared: the load average before and after is printed; compare ratios within one
run rather than absolute seconds across runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from inpaint_studio.models.mat import KeepMaps, MatGenerator, SampleStreams, draw_keep_maps, variant_inputs
from inpaint_studio.models.mat.cpu_memory import keep_freed_memory

OFFICIAL_FORWARD_S = 6.1  # reference README: official generator, 512x512, CPU, 2 threads (median of 3)
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "mat"


def load_inputs(size: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    golden = REFERENCE / "inputs.safetensors"
    if size == 512 and golden.is_file():
        from safetensors.torch import load_file

        data = load_file(str(golden))
        return data["image"], data["mask"], "golden input (41.9 % irregular hole)"
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=gen) * 2 - 1
    mask = torch.ones(1, 1, size, size)
    mask[:, :, size // 4 : size * 3 // 4, size // 5 : size * 4 // 5] = 0
    return image, mask, "synthetic input (30 % box hole)"


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm-up (oneDNN primitive caches, allocator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def forward_fn(model: MatGenerator, image: torch.Tensor, mask: torch.Tensor, dtype: torch.dtype):
    keep = draw_keep_maps(model.synthesis.keep_map_shapes(1, image.shape[2], image.shape[3]))
    z = torch.randn(1, model.config.z_dim)

    def run() -> object:
        with torch.inference_mode():
            return model(image.to(dtype), mask.to(dtype), z, 1.0, "const", keep)

    return run


def variants_fn(model: MatGenerator, image: torch.Tensor, mask: torch.Tensor, count: int, batch: int):
    """The engine's loop: encode once, then per batch mapping + fill from per-variant seeds."""
    shapes = model.synthesis.keep_map_shapes(1, image.shape[2], image.shape[3])

    def run() -> None:
        with torch.inference_mode():
            enc = model.synthesis.encode(image, mask)
            for start in range(0, count, batch):
                inputs = [
                    variant_inputs(7, i, model.config.z_dim, shapes)
                    for i in range(start, min(start + batch, count))
                ]
                ws = model.mapping(torch.cat([v.z for v in inputs]))
                keep = KeepMaps.cat([v.keep_maps for v in inputs])
                model.synthesis.fill(enc, ws, keep, "const", SampleStreams([v.stream for v in inputs]).normal)

    return run


def fmt(times: list[float]) -> str:
    return f"{statistics.median(times):7.2f} s  (runs {', '.join(f'{t:.2f}' for t in times)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--variants", type=int, nargs="*", default=[1, 4, 8])
    parser.add_argument(
        "--batch", type=int, nargs="*", default=[1, 4], help="batch sizes for the variant runs"
    )
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--no-memory-tuning", action="store_true", help="leave glibc's malloc as it is")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    tuned = False if args.no_memory_tuning else keep_freed_memory()
    torch.manual_seed(0)
    model = MatGenerator().eval().requires_grad_(False)
    image, mask, what = load_inputs(args.size)
    print(
        f"MAT generator, {args.size}x{args.size}, {what}, torch {torch.__version__}, {args.threads} threads, "
        f"glibc keep-freed-memory {'on' if tuned else 'off'}"
    )
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes share these cores)\n")

    rows: list[tuple[str, list[float]]] = []
    model.synthesis.channels_last = True
    rows.append(
        ("ours fp32, channels-last (app)", timed(forward_fn(model, image, mask, torch.float32), args.repeats))
    )
    model.synthesis.channels_last = False
    rows.append(
        (
            "ours fp32, NCHW (official order)",
            timed(forward_fn(model, image, mask, torch.float32), args.repeats),
        )
    )
    model.synthesis.channels_last = True
    if not args.no_bf16:
        model.to(torch.bfloat16)
        rows.append(
            ("ours bf16, channels-last", timed(forward_fn(model, image, mask, torch.bfloat16), args.repeats))
        )
        model.to(torch.float32)
    single = statistics.median(rows[0][1])
    print("One forward (batch 1)")
    print(f"  {'official (reference README, not run here)':42s} {OFFICIAL_FORWARD_S:7.2f} s")
    for name, times in rows:
        print(f"  {name:42s} {fmt(times)}   x{OFFICIAL_FORWARD_S / statistics.median(times):.2f} vs official")

    print("\nVariants of one image (fp32, channels-last, shared encoding)")
    print(f"  {'N':>3} {'batch':>5} {'total':>9} {'per variant':>12} {'vs N forwards':>14}")
    for count in args.variants:
        for batch in args.batch:
            if batch > count or (batch > 1 and count == 1):
                continue
            times = timed(variants_fn(model, image, mask, count, batch), max(1, args.repeats - 1))
            total = statistics.median(times)
            print(
                f"  {count:>3} {batch:>5} {total:8.2f}s {total / count:11.2f}s {count * single / total:13.2f}x"
            )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
