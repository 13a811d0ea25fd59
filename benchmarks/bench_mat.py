"""MAT speed on the CPU: one generator forward, and N variants of one image.

    python benchmarks/bench_mat.py [--threads 2] [--repeats 3] [--variants 1 4 8] [--batch 1 4] [--no-bf16]
        [--official DIR]   # DIR: a checkout of the official MAT code, outside this repo
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
With ``--official DIR`` the official generator (its ``networks/mat.py``, random weights) runs in the
same rounds, interleaved with ours, and every line gets the same-run ratio; without it no ratio is
printed (a quoted figure from another day is no reference). Then N variants made the way the engine
makes them (one shared encoding, then batches), and the time to the first and the last variant.

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

from inpaint_studio.engines.seeds import variant_seed
from inpaint_studio.models.mat import KeepMaps, MatGenerator, SampleStreams, draw_keep_maps, variant_inputs
from inpaint_studio.models.mat.cpu_memory import keep_freed_memory

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
                    variant_inputs(variant_seed(7, i), model.config.z_dim, shapes)
                    for i in range(start, min(start + batch, count))
                ]
                ws = model.mapping(torch.cat([v.z for v in picks]))
                keep = KeepMaps.cat([v.keep_maps for v in picks])
                model.synthesis.fill(enc, ws, keep, "const", SampleStreams([v.stream for v in picks]).normal)

    return run


def medians(runs: list[tuple[float, float]], threads: int) -> tuple[float, float]:
    """Median wall seconds, and median CPU seconds / threads (about the wall time on idle cores)."""
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs) / threads


def line(name: str, runs: list[tuple[float, float]], threads: int, official: float | None = None) -> str:
    """One row; ``official``: the official forward's median wall time measured in the same run."""
    wall, cpu = medians(runs, threads)
    ratio = f"   x{official / wall:4.2f}" if official else ""
    return f"  {name:50s} {wall:6.2f} s {cpu:7.2f} s{ratio}   (wall {', '.join(f'{r[0]:.1f}' for r in runs)})"


def official_forward(folder: Path, image: torch.Tensor, mask: torch.Tensor) -> Callable[[], object]:
    """The official MAT generator (``networks/mat.py`` of a checkout in ``folder``), random weights.

    Imported from outside the repository, never copied into it; same inputs as ours (mask 1 = keep).
    """
    sys.path.insert(0, str(folder))
    try:
        from networks.mat import Generator  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    torch.manual_seed(0)
    gen = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=512, img_channels=3).eval()
    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(2))
    c = torch.zeros(1, 0)

    def run() -> object:
        with torch.no_grad():
            return gen(image, mask, z, c, truncation_psi=1.0, noise_mode="const")

    return run


def first_and_last(
    model: MatGenerator, image: torch.Tensor, mask: torch.Tensor, count: int, batches: list[range]
):
    """Seconds from the start to the first and to the last variant, batching as ``batches`` says."""
    shapes = model.synthesis.keep_map_shapes(1, 512, 512)
    with torch.inference_mode():
        start = time.perf_counter()
        enc = model.synthesis.encode(image, mask)
        first = None
        for rows in batches:
            picks = [variant_inputs(variant_seed(7, i), model.config.z_dim, shapes) for i in rows]
            ws = model.mapping(torch.cat([v.z for v in picks]))
            keep = KeepMaps.cat([v.keep_maps for v in picks])
            model.synthesis.fill(enc, ws, keep, "const", SampleStreams([v.stream for v in picks]).normal)
            first = first or time.perf_counter() - start
        return first, time.perf_counter() - start


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
    parser.add_argument(
        "--official",
        type=Path,
        metavar="DIR",
        help="official MAT checkout (outside the repo) to time in the same run",
    )
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
    head = f"{'wall':>8} {'cpu/thr':>9}" + ("   official/ours (same run)" if args.official else "")
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
    if args.official:
        base["official MAT (networks/mat.py), glibc default malloc"] = official_forward(
            args.official, image, golden
        )
    measured = interleaved(base, args.repeats)
    official = None
    if args.official:
        official = medians(measured["official MAT (networks/mat.py), glibc default malloc"], threads)[0]
    for name, runs in measured.items():
        print(line(name, runs, threads, official))
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
        print(line(name, runs, threads, official))
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
            print(line(name, runs, threads, official))
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
    print("\nTime to the first and the last of 4 variants (framed hole, fp32): what the person waits for")
    print(f"  {'plan':34s} {'first':>8} {'last':>8}")
    plans = {
        "one batch of 4 (before)": [range(0, 4)],
        "the first alone, then 3 together (engine)": [range(0, 1), range(1, 4)],
        "one at a time": [range(i, i + 1) for i in range(4)],
    }
    for _ in range(max(1, args.repeats // 2)):
        for name, plan in plans.items():
            first, last = first_and_last(model, image, framed, 4, plan)
            print(f"  {name:34s} {first:7.2f}s {last:7.2f}s")
    print(f"  (a single fill took {single['framed'][0]:.2f} s wall)")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
