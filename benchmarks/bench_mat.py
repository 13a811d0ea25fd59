"""MAT speed on the CPU: one generator forward, and N variants of one image.

    python benchmarks/bench_mat.py [--threads 2] [--repeats 3] [--variants 1 4 8] [--batch 1 4] [--no-bf16]
    python benchmarks/bench_mat.py --memory [--batch 1 4]   # peak memory per variant batch size

Runs the official-size 512 generator with random weights (speed does not depend on the values)
on two masks:

* "golden": the input of ../shared/reference/mat (a 41.9 % irregular hole reaching every side),
  where every layer must run on the whole image (a synthetic large hole when that folder is absent);
* "framed": what the app usually sends: a 200x160 hole in a 512x512 frame (the crop framing keeps
  half the hole's size as context on each side), where the top levels run on a window around it.

Prints one forward (mapping + both stages, batch 1) for: glibc's default allocator (as the
official figure was measured), then with freed memory kept (what the engine does on the CPU),
in the official NCHW order (the parity tests) and the app's channels-last layout, fp32 and bf16.
The official implementation's time is quoted from the reference README (it is not run here).
Then N variants made the way the engine makes them (one shared encoding, then batches).

The machine may be shared: the load average is printed; compare ratios within one run.

``--memory`` runs, for each ``--batch`` size B, one child process that fills B variants of the golden
input in one batch the engine's way (freed memory kept) and reports its peak resident memory.
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from inpaint_studio.models.mat import KeepMaps, MatGenerator, SampleStreams, draw_keep_maps, variant_inputs
from inpaint_studio.models.mat.cpu_memory import keep_freed_memory

OFFICIAL_FORWARD_S = 6.1  # reference README: official generator, 512x512, CPU, 2 threads (median of 3)
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "mat"


def golden_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    golden = REFERENCE / "inputs.safetensors"
    if golden.is_file():
        from safetensors.torch import load_file

        data = load_file(str(golden))
        return data["image"], data["mask"]
    gen = torch.Generator().manual_seed(0)
    mask = torch.ones(1, 1, 512, 512)
    mask[:, :, 20:490, 30:480] = (torch.rand(1, 1, 470, 450, generator=gen) > 0.5).float()
    return torch.rand(1, 3, 512, 512, generator=gen) * 2 - 1, mask


def framed_mask() -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(512.0), torch.arange(512.0), indexing="ij")
    hole = ((yy - 250) / 80) ** 2 + ((xx - 260) / 100) ** 2 <= 1  # a 200x160 ellipse
    return (~hole).float()[None, None]


def interleaved(
    cases: dict[str, Callable[[], object]], repeats: int, warm_up: bool = True
) -> dict[str, list[tuple[float, float]]]:
    """(wall, process CPU) seconds per run; cases alternate so that load changes hit all alike."""
    if warm_up:
        for fn in cases.values():
            fn()  # oneDNN primitive caches, allocator
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            out[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return out


def forward(model: MatGenerator, image: torch.Tensor, mask: torch.Tensor, dtype: torch.dtype):
    keep = draw_keep_maps(model.synthesis.keep_map_shapes(1, 512, 512), torch.Generator().manual_seed(1))
    z = torch.randn(1, model.config.z_dim, generator=torch.Generator().manual_seed(2))

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return model(image.to(dtype), mask.to(dtype), z, 1.0, "const", keep).image.float()

    return run


def variants(model: MatGenerator, image: torch.Tensor, mask: torch.Tensor, count: int, batch: int):
    """The engine's loop: encode once, then per batch mapping + fill from per-variant seeds."""
    shapes = model.synthesis.keep_map_shapes(1, 512, 512)

    def run() -> None:
        with torch.inference_mode():
            enc = model.synthesis.encode(image, mask)
            for start in range(0, count, batch):
                picks = [
                    variant_inputs(7, i, model.config.z_dim, shapes)
                    for i in range(start, min(start + batch, count))
                ]
                ws = model.mapping(torch.cat([v.z for v in picks]))
                keep = KeepMaps.cat([v.keep_maps for v in picks])
                model.synthesis.fill(enc, ws, keep, "const", SampleStreams([v.stream for v in picks]).normal)

    return run


def medians(runs: list[tuple[float, float]], threads: int) -> tuple[float, float]:
    """Median wall seconds, and median CPU seconds / threads (about the wall time on idle cores)."""
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs) / threads


def line(name: str, runs: list[tuple[float, float]], threads: int) -> str:
    wall, cpu = medians(runs, threads)
    return (
        f"  {name:50s} {wall:6.2f} s {cpu:7.2f} s   x{OFFICIAL_FORWARD_S / wall:4.2f} / x{OFFICIAL_FORWARD_S / cpu:4.2f}"
        f"   (wall {', '.join(f'{r[0]:.1f}' for r in runs)})"
    )


def peak_memory(batch: int, threads: int) -> None:
    """Child process: B variants in one batch; prints the peak RSS in MB (Linux reports KB)."""
    torch.set_num_threads(threads)
    keep_freed_memory()
    torch.manual_seed(0)
    model = MatGenerator().eval().requires_grad_(False)
    image, golden = golden_inputs()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    variants(model, image, golden, batch, batch)()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{before:.0f} {after:.0f}")


def memory_table(batches: list[int], threads: int) -> None:
    print("Peak resident memory, golden input, fp32, B variants in one batch (child process each)")
    print(f"  {'B':>3} {'model loaded':>13} {'after the fill':>15} {'fill cost':>10} {'per variant':>12}")
    for batch in batches:
        out = subprocess.run(
            [sys.executable, __file__, "--peak-child", str(batch), "--threads", str(threads)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        before, after = float(out[-2]), float(out[-1])
        print(
            f"  {batch:>3} {before:10.0f} MB {after:12.0f} MB {after - before:7.0f} MB "
            f"{(after - before) / batch:9.0f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", type=int, nargs="*", default=[1, 4, 8])
    parser.add_argument(
        "--batch", type=int, nargs="*", default=[1, 4], help="batch sizes for the variant runs"
    )
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--memory", action="store_true", help="peak memory per --batch size instead of speed")
    parser.add_argument("--peak-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_child:
        peak_memory(args.peak_child, args.threads)
        return
    if args.memory:
        memory_table(args.batch, args.threads)
        return

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MatGenerator().eval().requires_grad_(False)
    image, golden = golden_inputs()
    framed = framed_mask()
    syn = model.synthesis
    threads = args.threads
    print(f"MAT generator 512x512, random weights, torch {torch.__version__}, {threads} threads")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes share these cores)\n")
    head = f"{'wall':>8} {'cpu/thr':>9}   vs official {OFFICIAL_FORWARD_S} s (README)"
    print(f"One forward (batch 1){'':30s}{head}")

    def layout(channels_last: bool, fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            syn.channels_last = channels_last
            return fn()

        return run

    base = {
        "golden, NCHW official order, glibc default malloc": layout(
            False, forward(model, image, golden, torch.float32)
        )
    }
    for name, runs in interleaved(base, args.repeats).items():
        print(line(name, runs, threads))
    tuned = keep_freed_memory()
    note = "freed memory kept" if tuned else "(malloc tuning unavailable)"
    cases = {
        f"golden, NCHW official order, {note}": layout(False, forward(model, image, golden, torch.float32)),
        "golden, channels-last (app)": layout(True, forward(model, image, golden, torch.float32)),
        "framed, channels-last, window around the hole": layout(
            True, forward(model, image, framed, torch.float32)
        ),
    }
    results = interleaved(cases, args.repeats)
    for name, runs in results.items():
        print(line(name, runs, threads))
    syn.channels_last = True
    single = {
        "golden": medians(results["golden, channels-last (app)"], threads),
        "framed": medians(results["framed, channels-last, window around the hole"], threads),
    }
    if not args.no_bf16:
        reference = forward(model, image, golden, torch.float32)()
        bf_model = copy.deepcopy(model).to(torch.bfloat16)
        bf16 = forward(bf_model, image, golden, torch.bfloat16)
        cases = {
            "golden, channels-last (app), fp32 again": forward(model, image, golden, torch.float32),
            "golden, channels-last, bf16": bf16,
            "framed, channels-last, bf16, window": forward(bf_model, image, framed, torch.bfloat16),
        }
        for name, runs in interleaved(cases, args.repeats).items():
            print(line(name, runs, threads))
        hole = (golden < 1).expand_as(reference)
        low = bf16()
        diff = (low - reference)[hole]
        spread = reference[hole].std()
        to_u8 = lambda t: (t * 127.5 + 127.5).round().clamp(0, 255)  # noqa: E731
        u8 = (to_u8(low) - to_u8(reference)).abs()[hole]
        print(
            f"  bf16 vs fp32 in the hole: mean |diff| {diff.abs().mean():.3f} = {diff.abs().mean() / spread:.1%} of the "
            f"output's spread; {u8.mean():.2f} uint8 levels on average (random weights: not a quality measure)"
        )
        del bf_model

    print("\nVariants of one image (fp32, channels-last, one shared encoding, then batches)")
    print("  speed-up = N x (time of one variant alone, i.e. one engine run) / time of the N variants")
    print(
        f"  {'mask':7s} {'N':>3} {'batch':>5} {'wall':>8} {'per variant':>12} {'speed-up':>9}"
        f" {'cpu/thr':>8} {'per variant':>12} {'speed-up':>9}"
    )
    for name, mask in (("framed", framed), ("golden", golden)):
        print(
            f"  ({name}: one plain forward took {single[name][0]:.2f} s wall, {single[name][1]:.2f} s cpu/thr)"
        )
        one: tuple[float, float] | None = None
        for count in args.variants:
            for batch in args.batch:
                if batch > count or (batch > 1 and count == 1):
                    continue
                fn = variants(model, image, mask, count, batch)
                runs = interleaved({"v": fn}, 1, warm_up=one is None)["v"]
                wall, cpu = medians(runs, threads)
                one = one or (wall / count, cpu / count)
                print(
                    f"  {name:7s} {count:>3} {batch:>5} {wall:7.2f}s {wall / count:11.2f}s {count * one[0] / wall:8.2f}x"
                    f" {cpu:7.2f}s {cpu / count:11.2f}s {count * one[1] / cpu:8.2f}x"
                )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
