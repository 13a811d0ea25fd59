"""The measured effect of MTA's two new loss terms, at small scale (issue 13's acceptance).

    PYTHONPATH=. python benchmarks/eval_mta_losses.py all --out /tmp/mta_study --steps 500 --seeds 0 1
    PYTHONPATH=. python benchmarks/eval_mta_losses.py base --out DIR      # or stage by stage
    PYTHONPATH=. python benchmarks/eval_mta_losses.py study --out DIR --steps 500 --seeds 0 1
    PYTHONPATH=. python benchmarks/eval_mta_losses.py study --out DIR --seeds 0 1 --vgg train --variants "+ style loss"
    PYTHONPATH=. python benchmarks/eval_mta_losses.py judge --out DIR --judge-images 128 [--vgg train] [--seeds 0]
    PYTHONPATH=. python benchmarks/eval_mta_losses.py pool --out DIR --judge-images 128   # the --seeds judges together
    PYTHONPATH=. python benchmarks/eval_mta_losses.py study --out DIR --seeds 0 1 --variants "+ style loss" --style-latents clean

``base``: a random base shows nothing (every fill is noise), so a tiny SD-1.5-shaped base is
trained first on ``../shared/data/grocery_store/train`` (``benchmarks/mta_tiny_base.py``: a
3-level KL VAE, 64 px photos -> 16 x 16 latents, then a 32/64-channel text-to-image UNet; the
tiny CLIP text encoder keeps its random weights). ``--base random`` uses the test suite's random
parts instead (``tests/sd_tiny.py``), as the first version of this study did.

``study``: trains the same small MTA branch once per variant, same steps, data order, masks and
seed, with the edge head on / off and the style loss on / off at the paper's weights (eta 0.1,
delta 100), beside the frozen base. Training rows: grocery product photos captioned with their
product name; held back: photos of ``grocery_store/val``. Each run then fills the held-back
images' holes (masks from a fixed seed per image, DDIM with ``--sample-steps``) and reports,
inside the hole:

* ``edge_error``: mean squared difference of the Sobel edge maps of fill and target;
* ``gram_distance``: Gram-matrix distance of fill and target through a fixed random RGB network
  (``trainers.tasks.mta.fixed_judge``: the same in every run, never trained);
* ``latent_gram_distance`` (``judge``): the same on the VAE latents of fill and target, through a
  fixed draw of the style extractor's own construction (He-normal VGG-16), the style loss's
  statistic;
* hole PSNR / SSIM, for reference.

These are the task's own validation metrics (``MtaTask.fill_metrics``). Each term should lower
its own measure: the table prints what came out, whatever it is, as mean and spread (min..max)
over the seeds, the paired change against the same seed's noise-only run (same data order, masks
and sampling noise), and each run's final weighted style term over its noise term (``style
share``, the last 100 steps). Without a VGG file the latent style extractor starts from scratch
(He-normal, ``MtaTask``). ``--lr`` is raised above the paper's 1e-5 (same for every run) so that a
few hundred steps move the branch at all. ``--diag-delta D [D ...]`` adds diagnostic rows, the
style loss at delta D: at delta 100 the term is a ~3e-5..8e-5 share of the loss (see
``latent_style``'s docstring: x_{t-1} from the prediction and from the ground truth differ by
only one DDPM step's coefficient, about 0.003 times the noise error), so these rows show what the
term does when it carries weight; they are not the paper's setting.

``--vgg FILE`` (a torchvision ``vgg16``) or ``--vgg train`` (``grocery_vgg.py`` trains one on the
grocery photos, no file being here): the style runs' extractor starts from it, its first conv moved
onto the base VAE's latents through that VAE's own fitted latent-to-RGB map (not SD-1.5's); those
variants are named ``..., trained VGG``. With ``judge`` it adds two fixed judges: the VGG's Gram
distance on the RGB fills (``vgg_gram_distance``, relu1_2..relu4_3, the usual style statistic) and
on their latents through the moved VGG (``latent_vgg_gram_distance``).

``--style-latents clean``: the style runs compare the predicted x_0 with x_0 (weighted by a_t^2,
``latent_style.style_sample_weight``) instead of the paper's x_{t-1} pair, whose two sides share
the noise and differ by one step's coefficient only; those variants are named ``..., clean x0``.
``--style-latents fresh``: the paper's x_{t-1} pair with the ground truth noised by a draw of its
own (the paper's other reading), named ``..., fresh noise``.

``judge``: every finished run (``results.jsonl``) fills ``--judge-images`` held-back photos (its
own seed draws masks and noise, so the variants of a seed stay paired image by image; the fills
are kept in the run's folder), also scores the training objective's one-step terms on them
(``step_noise``, ``step_style``: ``one_step_terms``), and the table gives each measure's mean and
its paired change against the same seed's noise-only run on the same images: mean, 95 %
interval, share of images lowered. ``judge --seeds S`` judges only seed S's runs (one judge per
core, seeds in parallel); ``pool`` prints those per-seed reports as one table, the same as one
judge over every seed would (each score depends on its run and seed alone). Runs live in
``runs/<base>-<N>steps/`` and judge reports carry the image count, base and step count in their
names, so studies of several step counts share one ``--out`` without mixing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GROCERY = REPO.parent / "shared" / "data" / "grocery_store"
PAPER_DELTA = 100.0
VARIANTS = {  # name -> (edge head, style loss)
    "noise only": (False, False),
    "+ edge head": (True, False),
    "+ style loss": (False, True),
    "+ edge + style": (True, True),
}
DIAG = "+ style loss, delta {delta:g} (diagnostic)"


def _manifest(split: Path, count: int, out: Path) -> Path:
    """``count`` photos of ``split``, spread over the products, captioned with the product's name."""
    from mta_tiny_base import caption_of

    files = sorted(split.rglob("*.jpg"))
    step = max(1, len(files) // count)
    rows = [{"image": str(f), "caption": caption_of(f)} for f in files[::step][:count]]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if not out.is_file() or out.read_text(encoding="utf-8") != text:  # a parallel stage may be reading it
        out.write_text(text, encoding="utf-8")
    return out


def _random_base(folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    try:
        import sd_tiny
    finally:
        sys.path.pop(0)
    if not (folder / "model_index.json").is_file():
        sd_tiny.save_folder(sd_tiny.tiny_parts(in_channels=4), folder)
    return folder


def base_stage(args: argparse.Namespace) -> Path:
    """The base model folder: trained here (skipped when done) or the random test parts."""
    if args.base == "random":
        return _random_base(args.out / "tiny-sd15")
    from mta_tiny_base import build_base

    start = time.perf_counter()
    folder = build_base(
        args.out / "base", GROCERY / "train", size=args.resolution, vae_steps=args.vae_steps,
        unet_steps=args.unet_steps, batch=args.base_batch, seed=0,
    )  # fmt: skip
    print(f"base: {folder} ({time.perf_counter() - start:.0f}s)", flush=True)
    return folder


def _tag(name: str, seed: int) -> str:
    return "".join(c for c in name if c.isalnum()) + f"-s{seed}"


def _config(name: str, seed: int, args: argparse.Namespace, paths: dict, val: str = "val"):
    from trainers.config import TrainConfig

    return TrainConfig(
        manifest=str(paths["train"]),
        val_data=(str(paths[val]),),
        val_images=args.val_images if val == "val" else args.judge_images,
        out=str(args.out / "runs" / f"{args.base}-{args.steps}steps" / _tag(name, seed)),  # kept apart
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


def _options(edge: bool, style: bool, delta: float, args: argparse.Namespace, paths: dict, vgg: bool = False):
    """The run's task options; ``vgg``: the style extractor from the VGG file, moved onto the base
    VAE's latents through its fitted latent-to-RGB map."""
    from trainers.tasks.mta import MtaOptions

    return MtaOptions(
        base_model=str(paths["base"]),
        edge_head=edge,
        style_loss=style,
        style_weight=delta,
        style_net="vgg16" if vgg else args.style_net,
        style_layers=() if vgg else tuple(args.style_layers),
        vgg_weights=str(paths["vgg"]) if vgg else None,
        vgg_latent_factors=paths["factors"] if vgg else (),
        style_latents=args.style_latents,
        sample_steps=args.sample_steps,
        guidance=args.guidance,
    )


def run_variant(
    name: str, edge: bool, style: bool, delta: float, seed: int, args: argparse.Namespace, paths: dict,
    vgg: bool = False,
) -> dict:  # fmt: skip
    from trainers.loop import train
    from trainers.tasks.mta import MtaTask

    config = _config(name, seed, args, paths)
    start = time.perf_counter()
    options = _options(edge, style, delta, args, paths, vgg)
    result = train(MtaTask(options, config), config, show_progress=False)
    tail = result.losses[-4:]  # the last 100 steps' logs
    final = {
        k: sum(r[k] for r in tail) / len(tail) for k in (tail[0] if tail else {}) if k.startswith("main/")
    }
    return {
        "variant": name,
        "seed": seed,
        "edge": edge,
        "vgg": vgg,
        "delta": delta,
        "style_latents": args.style_latents if style else None,
        "base": args.base,
        "steps": args.steps,
        "seconds": round(time.perf_counter() - start, 1),
        **{k: result.validation[k] for k in ("edge_error", "gram_distance", "hole_psnr", "hole_ssim")},
        "final_losses": final,
        "style_share": delta * final["main/style"] / final["main/noise"] if "main/style" in final else None,
    }


JUDGED = (
    "edge_error", "gram_distance", "latent_gram_distance", "hole_psnr", "step_noise", "step_style",
    "step_style_clean", "step_style_fresh",
)  # fmt: skip
VGG_JUDGED = (
    "vgg_gram_distance", "latent_vgg_gram_distance", "step_vgg_style", "step_vgg_style_clean",
    "step_vgg_style_fresh",
)  # fmt: skip
OWN = "own_extractor_gram"  # the fill's latent Gram distance through the run's own trained extractor
ON_BASELINE = "@noise only"  # a key's value on the same seed's noise-only fills, scored by this run
STEP_DRAWS = 4  # timesteps per held-back image for the one-step measures


def one_step_terms(task, branch, batch: dict, judges: dict, rng) -> dict:
    """Per image, over ``STEP_DRAWS`` timesteps (the same for every run): the training objective's
    own one-step quantities, the noise MSE and ``L_style`` through each fixed latent judge, of both
    pairs (``latent_style.style_latents``: x_{t-1} against the ground truth noised to t-1;
    ``..._clean``, the predicted x_0 against x_0 with its a_t^2 weight; ``..._fresh``, x_{t-1}
    against the ground truth noised with a draw of its own). What the loss lowers in
    training, measured on held-back images, beside what it does to the finished fill."""
    import torch

    from inpaint_studio.models.diffusion.latent_style import noised_latent, style_latents, style_sample_weight
    from trainers.tasks.mta import gram_distance

    x0 = batch["latent"]
    pairs = (("previous", ""), ("clean", "_clean"), ("fresh", "_fresh"))
    sums = {"step_noise": 0.0, **{k + end: 0.0 for k in judges for _, end in pairs}}
    for _ in range(STEP_DRAWS):
        t = torch.from_numpy(rng.integers(0, task.noise_scheduler.config.num_train_timesteps, len(x0))).long()
        noise = torch.from_numpy(rng.standard_normal(x0.shape).astype("float32"))
        other = torch.from_numpy(rng.standard_normal(x0.shape).astype("float32"))
        noisy = noised_latent(x0, noise, t, task.alphas)
        eps = task._unet(
            noisy, t, batch["text"], branch(noisy, t, batch["masked_latent"], batch["keep"]).residuals
        )
        sums["step_noise"] = sums["step_noise"] + (eps - noise).pow(2).flatten(1).mean(1)
        for kind, end in pairs:
            predicted, target = style_latents(noisy, eps, noise, x0, t, task.alphas, kind, other)
            weight = style_sample_weight(t, task.alphas, kind)
            for k, judge in judges.items():
                got = gram_distance(judge, predicted, target)
                sums[k + end] = sums[k + end] + (got if weight is None else got * weight)
    return {k: v / STEP_DRAWS for k, v in sums.items()}


def _vgg_judges(paths: dict):
    """The trained VGG twice, fixed: on ImageNet-normalised RGB fills (the usual style statistic,
    relu1_2..relu4_3) and moved onto latents (the VGG style loss's own statistic, before training)."""
    from grocery_vgg import imagenet_normalised
    from safetensors.torch import load_file

    from inpaint_studio.models.diffusion.latent_style import LatentVGG, build_latent_vgg

    rgb = LatentVGG("vgg16", in_channels=3)
    state = load_file(str(paths["vgg"]))
    rgb.load_state_dict({k: state[k] for k in rgb.state_dict()})  # up to relu4_3, every tensor there
    factors = [paths["factors"][3 * k : 3 * k + 3] for k in range(4)]
    latent = build_latent_vgg(paths["vgg"], "vgg16", None, factors)
    rgb.eval().requires_grad_(False)
    latent.eval().requires_grad_(False)

    def normalised(image):
        return imagenet_normalised((image + 1) / 2)

    return rgb, latent, normalised


def _own_extractor(run_dir: Path, config):
    """The style extractor a run trained (its last checkpoint's ``style.*`` tensors, built from the
    run's saved options), or None for a run without the style loss."""
    from safetensors.torch import load_file

    from trainers.config import build
    from trainers.tasks.mta import MtaOptions, MtaTask

    saved = sorted(run_dir.glob("checkpoints/step-*/weights.safetensors"))
    state = load_file(str(saved[-1])) if saved else {}
    own = {k.removeprefix("style."): v for k, v in state.items() if k.startswith("style.")}
    if not own:
        return None
    options = json.loads((run_dir / "options.json").read_text(encoding="utf-8"))["model_options"]
    extractor = MtaTask(build(MtaOptions, options), config)._style_extractor(warn=False)
    extractor.load_state_dict(own)
    return extractor.eval().requires_grad_(False)


def _fills_file(run_dir: Path, count: int) -> Path:
    return run_dir / f"judge-fills-{count}.safetensors"


def _cached_fills(run_dir: Path, count: int):
    from safetensors.torch import load_file

    cached = _fills_file(run_dir, count)
    return load_file(str(cached))["fills"].float() if cached.is_file() else None


def judge_run(row: dict, args: argparse.Namespace, paths: dict) -> dict[str, list[float]]:
    """A finished run's exported branch, scored per image on the ``judge`` photos (the run's own seed
    draws the masks and the sampling noise, as in its validation: variants of a seed stay paired).
    The fills are kept in the run's folder, so another judge re-scores them without sampling.

    A style run also scores ``OWN``: its fills' latent Gram distance through the extractor it
    trained, the term's own statistic on the finished fill, and (``OWN + ON_BASELINE``) the same
    seed's noise-only fills through that same extractor, its paired baseline."""
    import numpy as np
    import torch
    from safetensors.torch import load_file, save_file

    from trainers.data import ImageDataset, records_from
    from trainers.tasks.mta import MtaTask, gram_distance
    from trainers.validation import val_batches

    name, seed = row["variant"], row["seed"]
    edge = row.get("edge", VARIANTS.get(name, (False, True))[0])
    config = _config(name, seed, args, paths, val="judge")
    task = MtaTask(_options(edge, False, 0.0, args, paths), config)  # the same latent judge for all
    modules = task.build_modules()
    run_dir = Path(config.out)
    task.build_frozen()
    device = torch.device("cpu")
    task.setup(modules, device)
    cached = _fills_file(run_dir, args.judge_images)
    fills = _cached_fills(run_dir, args.judge_images)
    own = _own_extractor(run_dir, config)
    baseline = _cached_fills(run_dir.parent / _tag("noise only", seed), args.judge_images) if own else None
    branch = modules["branch"].eval()
    branch.load_state_dict(load_file(str(run_dir / "weights" / "model.safetensors")))
    vgg = _vgg_judges(paths) if "vgg" in paths else None
    step_judges = {"step_style": task.latent_judge, **({"step_vgg_style": vgg[1]} if vgg else {})}
    val_set = ImageDataset(records_from(config.val_data, None, None), config.resolution, train=False)
    owned = (OWN,) + ((OWN + ON_BASELINE,) if baseline is not None else ()) if own else ()
    scores: dict[str, list[float]] = {k: [] for k in JUDGED + (VGG_JUDGED if vgg else ()) + owned}
    made, done = [], 0
    for batch in val_batches(task, val_set, list(range(len(val_set))), config, device):
        n = batch["image"].shape[0]
        if fills is None:
            fill = task.inpaint({"branch": branch}, batch)
            made.append(fill)
        else:
            fill = fills[done : done + n]
        done += n
        got = task.fill_metrics(batch, fill)
        with torch.no_grad():
            got |= one_step_terms(task, branch, batch, step_judges, np.random.default_rng([seed, 99, done]))
        if vgg or own is not None:
            fill_latent, target = task.latent_of(fill), task.latent_of(batch["image"])
        if vgg:
            rgb, latent, normalised = vgg
            got["vgg_gram_distance"] = gram_distance(rgb, normalised(fill), normalised(batch["image"]))
            got["latent_vgg_gram_distance"] = gram_distance(latent, fill_latent, target)
        if own is not None:
            got[OWN] = gram_distance(own, fill_latent, target)
            if baseline is not None:
                theirs = baseline[done - n : done]
                got[OWN + ON_BASELINE] = gram_distance(own, task.latent_of(theirs), target)
        for k in scores:
            scores[k] += got[k].tolist()
    if made:
        save_file(
            {"fills": torch.cat(made).contiguous()}, str(cached)
        )  # float32: later judges score the same fills
    return scores


def _baseline(judged: dict, name: str, seed: int, key: str) -> list[float]:
    """The paired baseline of ``key``: what the run scored on the noise-only fills itself, else
    the noise-only run's own score (empty when neither has it)."""
    run = judged[(name, seed)]
    return run.get(key + ON_BASELINE) or judged[("noise only", seed)].get(key, [])


def _wanted(variant: str, judge_only: list[str]) -> bool:
    """``--judge-only``: the noise-only baseline and the variants naming one of its texts (all without)."""
    return not judge_only or variant == "noise only" or any(text in variant for text in judge_only)


def judge_stage(args: argparse.Namespace, base: Path) -> None:
    """Every finished run scored per image; the table pairs each variant with the same seed's
    noise-only run image by image (pooled over seeds)."""
    paths = _paths(args, base)
    judged: dict[tuple[str, int], dict[str, list[float]]] = {}
    for row in sorted(_finished(args), key=lambda r: r["variant"] != "noise only"):  # its fills first
        if not _wanted(row["variant"], args.judge_only) or (args.seeds and row["seed"] not in args.seeds):
            continue
        start = time.perf_counter()
        judged[(row["variant"], row["seed"])] = judge_run(row, args, paths)
        print(f"judged {row['variant']} seed {row['seed']} ({time.perf_counter() - start:.0f}s)", flush=True)
    if not judged:
        print(f"no finished runs in {args.out / 'results.jsonl'} (base {args.base}, {args.steps} steps)")
        return
    report = args.out / report_name(args, args.judge_only, args.seeds)
    report.write_text(json.dumps({f"{v}|{s}": r for (v, s), r in judged.items()}), encoding="utf-8")
    print("\n" + judged_table(judged, args.judge_images))


def report_name(args: argparse.Namespace, judge_only: list[str], seeds: list[int] | None) -> str:
    """A judge report's file name: its image count, base and step count (so one ``--out`` can hold
    several studies), then its ``--judge-only`` texts and ``--seeds``, if any."""
    only = "-" + "".join(c for c in "".join(judge_only) if c.isalnum()) if judge_only else ""
    only += "-seeds" + "-".join(map(str, seeds)) if seeds else ""
    return f"judged-{args.judge_images}-{args.base}-{args.steps}steps{only}.json"


def pool_stage(args: argparse.Namespace) -> None:
    """The table of the per-seed reports of ``judge --seeds S`` with this image count, base and
    step count, together."""
    judged: dict[tuple[str, int], dict[str, list[float]]] = {}
    for report in sorted(args.out.glob(report_name(args, [], None).replace(".json", "*-seeds*.json"))):
        for key, scores in json.loads(report.read_text(encoding="utf-8")).items():
            name, seed = key.rsplit("|", 1)
            if _wanted(name, args.judge_only):
                judged[(name, int(seed))] = scores
    print(judged_table(judged, args.judge_images) if judged else f"no per-seed reports in {args.out}")


def judged_table(judged: dict[tuple[str, int], dict[str, list[float]]], images: int) -> str:
    """Markdown: per variant and measure the mean, then the paired change against the same seed's
    noise-only run on the same images (pooled over seeds: 95 % interval, share lowered)."""
    from paired import paired_difference

    keys = [k for k in dict.fromkeys(k for r in judged.values() for k in r) if ON_BASELINE not in k]
    seeds = sorted({s for _, s in judged})
    names = list(dict.fromkeys(v for v, _ in judged))
    lines = [
        f"{images} held-back photos per seed, seeds {seeds}; per measure the mean, then the paired",
        "change against the same seed's noise-only run on the same images (95 % CI), and the share it lowers",
        "| variant | " + " | ".join(f"{k} | vs noise only" for k in keys) + " |",
        "|---" * (1 + 2 * len(keys)) + "|",
    ]
    for name in names:
        cells = []
        have = [s for s in seeds if (name, s) in judged and ("noise only", s) in judged]
        for k in keys:
            ours = [v for s in have for v in judged[(name, s)].get(k, [])]
            base_values = [v for s in have for v in _baseline(judged, name, s, k)]
            if not ours or len(ours) != len(base_values):  # a measure this run (or its baseline) lacks
                cells += ["-", "-"]
                continue
            scale = sum(base_values) / len(base_values)
            d = paired_difference(ours, base_values)
            cells += [
                f"{sum(ours) / len(ours):.4g}",
                f"{100 * d['mean'] / scale:+.2f} % (±{100 * d['ci95'] / scale:.2f}), {100 * d['ours_lower']:.0f} %",
            ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(values: list[float], fmt: str) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return format(mean, fmt)
    return f"{format(mean, fmt)} ({format(min(values), fmt)}..{format(max(values), fmt)})"


def _change(rows: list[dict], got: list[dict], key: str) -> str:
    """Per seed, the relative change of ``key`` against the same seed's noise-only run (paired: the
    same data order, masks and sampling noise), as mean (min..max) in percent."""
    base = {r["seed"]: r[key] for r in rows if r["variant"] == "noise only"}
    changes = [100 * (r[key] / base[r["seed"]] - 1) for r in got if r["seed"] in base]
    return _cell(changes, "+.2f") + " %" if changes else "-"


def table(rows: list[dict]) -> str:
    """Markdown: per variant the mean over seeds, with (min..max) when there are several, and the
    paired change of both measures against noise only."""
    lines = [
        "| variant | edge-map error (hole) | vs noise only | Gram distance (hole) | vs noise only | hole PSNR "
        "| hole SSIM | style share | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = list(dict.fromkeys(r["variant"] for r in rows))
    for name in sorted(names, key=lambda n: list(VARIANTS).index(n) if n in VARIANTS else len(VARIANTS)):
        got = [r for r in rows if r["variant"] == name]
        shares = [r["style_share"] for r in got if r.get("style_share") is not None]
        lines.append(
            f"| {name} | {_cell([r['edge_error'] for r in got], '.5f')} | {_change(rows, got, 'edge_error')} | "
            f"{_cell([r['gram_distance'] for r in got], '.4e')} | {_change(rows, got, 'gram_distance')} | "
            f"{_cell([r['hole_psnr'] for r in got], '.3f')} | {_cell([r['hole_ssim'] for r in got], '.4f')} | "
            f"{_cell(shares, '.1e') if shares else '-'} | {','.join(str(r['seed']) for r in got)} |"
        )
    return "\n".join(lines)


def _paths(args: argparse.Namespace, base: Path) -> dict:
    paths = {
        "base": base,
        "train": _manifest(GROCERY / "train", args.train_images, args.out / "train.jsonl"),
        "val": _manifest(GROCERY / "val", args.val_images, args.out / "val.jsonl"),
    }
    if args.stage == "judge":
        paths["judge"] = _manifest(
            GROCERY / "val", args.judge_images, args.out / f"judge-{args.judge_images}.jsonl"
        )
    if args.vgg:
        paths["vgg"], paths["factors"] = _vgg(args, base)
    return paths


def _vgg(args: argparse.Namespace, base: Path) -> tuple[Path, tuple[float, ...]]:
    """The VGG file (``--vgg train``: trained here, ``grocery_vgg.py``) and the base VAE's fitted
    latent-to-RGB map (12 numbers), both kept in ``--out``."""
    from grocery_vgg import fit_latent_rgb_factors, train_vgg

    if args.vgg == "train":
        path = train_vgg(args.out / "vgg", GROCERY / "train", GROCERY / "val")
    else:
        path = Path(args.vgg)
    saved = args.out / "vgg" / "latent_rgb_factors.json"
    if not saved.is_file():
        from diffusers import AutoencoderKL
        from mta_tiny_base import load_photos

        vae = AutoencoderKL.from_pretrained(str(base / "vae")).eval()
        factors, r2 = fit_latent_rgb_factors(vae, load_photos(GROCERY / "train", args.resolution)[0][:512])
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps({"factors": factors.ravel().tolist(), "r2": r2}), encoding="utf-8")
        print(f"latent-to-RGB map of the base VAE: R^2 {r2:.3f}", flush=True)
    return path, tuple(json.loads(saved.read_text())["factors"])


def _finished(args: argparse.Namespace) -> list[dict]:
    """The runs of ``results.jsonl`` with this base and step count."""
    results_file = args.out / "results.jsonl"
    rows = (
        [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.is_file() else []
    )
    return [r for r in rows if r.get("base") == args.base and r.get("steps") == args.steps]


def study_stage(args: argparse.Namespace, base: Path) -> list[dict]:
    paths = _paths(args, base)
    suffix = ", trained VGG" if args.vgg == "train" else ", VGG file" if args.vgg else ""
    suffix += {"clean": ", clean x0", "fresh": ", fresh noise"}.get(args.style_latents, "")
    variants = {
        name + (suffix if style else ""): (edge, style, PAPER_DELTA)
        for name, (edge, style) in ((n, VARIANTS[n]) for n in args.variants)
    }
    for delta in args.diag_delta:
        variants[DIAG.format(delta=delta).replace(",", suffix + ",", 1)] = (False, True, delta)
    results_file = args.out / "results.jsonl"
    rows = _finished(args)
    done = {(r["variant"], r["seed"]) for r in rows}
    for seed in args.seeds or [0]:
        for name, (edge, style, delta) in variants.items():
            if (name, seed) in done:
                continue
            row = run_variant(name, edge, style, delta, seed, args, paths, vgg=bool(args.vgg and style))
            rows.append(row)
            with results_file.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    text = table(rows)
    (args.out / "table.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return rows


def main(argv: list[str] | None = None) -> int:
    from inpaint_studio.models.diffusion.latent_style import STYLE_LATENTS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=("base", "study", "all", "judge", "pool"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base", choices=("trained", "random"), default="trained")
    parser.add_argument("--vae-steps", type=int, default=800)
    parser.add_argument("--unet-steps", type=int, default=1500)
    parser.add_argument("--base-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="study: the seeds to train (0); judge: only these"
    )
    parser.add_argument("--train-images", type=int, default=512)
    parser.add_argument("--val-images", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--sample-steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=1.0)
    parser.add_argument("--style-net", default="vgg16")
    parser.add_argument("--style-layers", type=int, nargs="*", default=[])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--style-latents",
        choices=STYLE_LATENTS,
        default="previous",
        help="the style runs' pair: x_{t-1} (the paper), the same with the ground truth noised by a draw of "
        "its own (named ', fresh noise'), or the predicted x_0 against x_0 (named ', clean x0')",
    )
    parser.add_argument(
        "--diag-delta", type=float, nargs="*", default=[], help="add the style loss at these deltas"
    )
    parser.add_argument(
        "--vgg",
        default=None,
        help="a torchvision vgg16 file for the style runs and judges, or 'train' (grocery_vgg.py)",
    )
    parser.add_argument("--judge-images", type=int, default=128, help="judge: held-back photos per run")
    parser.add_argument(
        "--judge-only",
        nargs="*",
        default=[],
        help="judge: only the runs whose variant contains one of these (and noise only)",
    )
    args = parser.parse_args(argv)
    if not GROCERY.is_dir():
        print(f"no photos at {GROCERY}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # mta_tiny_base, beside this file
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage == "pool":
        pool_stage(args)
        return 0
    base = base_stage(args)
    if args.stage in ("study", "all"):
        study_stage(args, base)
    if args.stage == "judge":
        judge_stage(args, base)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
