"""``inpaint-studio-train mta`` on the CPU with tiny random SD-1.5 parts (plumbing, not quality).

The base model is the suite's tiny 4-channel SD-1.5 (``tests/sd_tiny.py``) saved as a diffusers
folder; the style extractor is a two-conv latent VGG so that checkpoints stay small.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

pytest.importorskip("diffusers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import sd_tiny  # noqa: E402

from inpaint_studio.models.bundle import base_model_of, load_bundle  # noqa: E402
from inpaint_studio.models.diffusion.brushnet_import import load_branch  # noqa: E402
from trainers import cli  # noqa: E402
from trainers.config import TrainConfig  # noqa: E402
from trainers.data import Record  # noqa: E402
from trainers.loop import train  # noqa: E402
from trainers.tasks.mta import MtaOptions, MtaTask, brushnet_holes, drop_captions  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:no VGG weights")
TINY_STYLE = dict(style_net="8 M 16", style_layers=(1, 4), sample_steps=2)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return sd_tiny.save_folder(sd_tiny.tiny_parts(4), tmp_path_factory.mktemp("sd15") / "tiny")


@pytest.fixture
def manifest(tmp_path, make_photos) -> Path:
    """Six photos: two with their own mask and per-mask caption, three with a whole-image caption,
    one without a caption."""
    photos = make_photos(tmp_path / "photos", count=6, sizes=((64, 80), (72, 64)))
    rows = []
    for i, photo in enumerate(photos):
        row = {"image": str(photo)}
        if i < 2:
            h, w = np.asarray(Image.open(photo)).shape[:2]
            mask = np.zeros((h, w), np.uint8)
            mask[10:40, 12:44] = 255
            Image.fromarray(mask).save(tmp_path / f"mask{i}.png")
            row |= {"mask": str(tmp_path / f"mask{i}.png"), "caption": f"a red square {i}"}
        elif i < 5:
            row["caption"] = f"a gradient photo {i}"
        rows.append(row)
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(manifest, out, **kw) -> TrainConfig:
    base = dict(manifest=str(manifest), out=str(out), resolution=64, batch_size=2, steps=3, workers=0,
                val_fraction=0.3, log_every=1, val_every=100, sample_every=100, checkpoint_every=2,
                export_to_store=False, seed=3, lr_schedule="constant", lr=1e-3)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _task(base, config, **opts) -> MtaTask:
    return MtaTask(MtaOptions(base_model=str(base), **{**TINY_STYLE, **opts}), config)


def test_trains_with_all_three_losses_and_exports_what_the_engine_loads(base, manifest, tmp_path):
    config = _config(manifest, tmp_path / "run", sample_every=3)
    task = _task(base, config)
    result = train(task, config, show_progress=False)
    assert result.step == 3 and len(result.losses) == 3
    for entry in result.losses:
        assert {"main/noise", "main/edge", "main/style", "main/loss"} <= set(entry)
        assert all(np.isfinite(v) for v in entry.values()), entry
        assert entry["main/loss"] == pytest.approx(
            entry["main/noise"] + 0.1 * entry["main/edge"] + 100 * entry["main/style"], rel=1e-5
        )
    assert {"edge_error", "gram_distance", "latent_gram_distance", "hole_psnr", "hole_ssim"} <= set(
        result.validation
    )
    # the sample grid, and its prompts beside it
    assert (tmp_path / "run" / "samples" / "step-0000003.png").is_file()
    prompts = (tmp_path / "run" / "samples" / "step-0000003.txt").read_text()
    assert prompts.startswith("1. ")

    # two learning rates: branch at --lr, style extractor at --style-lr
    groups = task.build_optimizers(task.build_modules(), 1e-3)["main"].param_groups
    assert [g["lr"] for g in groups] == [1e-3, 1e-7]

    # the checkpoint holds the branch and the style extractor, never the frozen parts
    saved = load_file(str(result.checkpoint / "weights.safetensors"))
    assert {k.split(".")[0] for k in saved} == {"branch", "style"}
    assert not any(k.startswith(("unet", "vae", "text_encoder")) for k in saved)

    # the export: the mta engine's branch format, the base model by path, the trained residuals
    assert load_bundle(result.weights, engine="mta").extra["kind"] == "mta"
    assert base_model_of(result.weights) == (base.resolve(), "sd15")
    loaded = load_branch(result.weights)
    trained = MtaTask(task.options, config).build_modules()["branch"]
    trained.load_state_dict({k[len("branch.") :]: v for k, v in saved.items() if k.startswith("branch.")})
    g = torch.Generator().manual_seed(0)
    inputs = (
        torch.randn(2, 4, 8, 8, generator=g),
        torch.tensor([500, 20]),
        torch.randn(2, 4, 8, 8, generator=g),
    )
    keep = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()
    with torch.no_grad():
        a, b = trained.eval()(*inputs, keep), loaded(*inputs, keep)
    assert torch.equal(a.edge, b.edge)
    assert all(torch.equal(x, y) for x, y in zip(a.residuals.all(), b.residuals.all(), strict=True))
    assert any(x.abs().max() > 0 for x in b.residuals.all())  # the zero injections have learnt

    # the mta engine runs the export over the base model it names; outside the hole nothing changes
    from inpaint_studio.engines.base import Request, Result
    from inpaint_studio.engines.registry import create

    image = sd_tiny.gradient_image(64)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    request = Request(
        image,
        mask,
        prompt="a red square",
        seed=1,
        params={"steps": 2, "guidance": 1.0, "resolution": 64, "feather": 0},
    )
    result_event = next(
        e for e in create("mta", weights=result.weights).run(request) if isinstance(e, Result)
    )
    filled = result_event.composited(image)
    assert filled.shape == image.shape and np.array_equal(filled[mask == 0], image[mask == 0])


@pytest.mark.parametrize("kind", ["clean", "fresh"])
def test_the_other_style_pairs_are_what_the_task_trains_on_and_its_export_says_so(
    kind, base, manifest, tmp_path
):
    """``--style-latents clean`` / ``fresh``: the logged style term is that pair's Gram distance
    (recomputed here from the same batch), and the export records it. ``fresh`` draws its own
    noise last, so every other draw of the batch is the one the paper's pair would see."""
    from inpaint_studio.models.diffusion.latent_style import mta_style_loss, noised_latent

    config = _config(manifest, tmp_path / "run", steps=1)
    task = _task(base, config, style_latents=kind, edge_head=False)
    modules = task.build_modules()
    task.build_frozen()
    task.setup(modules, torch.device("cpu"))
    sample = {"image": torch.rand(2, 3, 64, 64) * 2 - 1, "mask": torch.zeros(2, 1, 64, 64),
              "mask_given": torch.tensor([False, False]), "caption": ["a mug", "a kitchen"]}  # fmt: skip
    batch = task.prepare_batch(sample, 0, np.random.default_rng(0))
    paper = _task(base, config, edge_head=False)
    paper.build_frozen()
    paper.setup(paper.build_modules(), torch.device("cpu"))
    paper = paper.prepare_batch(sample, 0, np.random.default_rng(0))
    for key in ("latent", "noise", "timestep", "mask", "masked_latent"):
        assert torch.equal(batch[key], paper[key]), key
    assert ("style_noise" in batch) == (kind == "fresh") and "style_noise" not in paper
    if kind == "fresh":
        assert not torch.equal(batch["style_noise"], batch["noise"])
    total, logs = task.loss("main", modules, batch, 0)
    x0, noise, t = batch["latent"], batch["noise"], batch["timestep"]
    noisy = noised_latent(x0, noise, t, task.alphas)
    with torch.no_grad():
        out = modules["branch"](noisy, t, batch["masked_latent"], batch["keep"], 1.0)
        eps = task._unet(noisy, t, batch["text"], out.residuals)
        want = mta_style_loss(
            modules["style"], noisy, eps, noise, x0, t, task.alphas, kind, batch.get("style_noise")
        )
    assert float(logs["style"].detach()) == pytest.approx(float(want), rel=1e-4)
    assert float(total.detach()) == pytest.approx(
        float(logs["noise"].detach()) + 100 * float(logs["style"].detach()), rel=1e-5
    )
    assert task.export(modules).extra["style_latents"] == kind
    with pytest.raises(ValueError, match="style-latents must be one of previous, clean, fresh"):
        MtaOptions(base_model=str(base), style_latents="x0")


def test_the_latent_judge_is_one_fixed_draw_of_the_style_extractor_whatever_the_run(base, manifest, tmp_path):
    judges = []
    for seed, style in ((3, True), (4, False)):
        task = _task(base, _config(manifest, tmp_path / f"run{seed}", seed=seed), style_loss=style)
        torch.manual_seed(seed)
        modules = task.build_modules()
        task.setup(modules, torch.device("cpu"))
        judges.append(task.latent_judge)
        assert "latent_judge" not in modules and not any(
            p.requires_grad for p in task.latent_judge.parameters()
        )
        if style:  # the run's own extractor has the same construction but is another draw
            assert [p.shape for p in modules["style"].parameters()] == [
                p.shape for p in task.latent_judge.parameters()
            ]
            assert not torch.equal(modules["style"].features[0].weight, task.latent_judge.features[0].weight)
    for a, b in zip(judges[0].state_dict().values(), judges[1].state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resume_continues_the_same_steps(base, manifest, tmp_path, straight_and_resumed):
    def run(config):
        return train(_task(base, config), config, show_progress=False)

    def config(out, **kw):
        return _config(manifest, out, **{"steps": 4, **kw})

    straight, resumed, tensors = straight_and_resumed(run, config, tmp_path)
    assert resumed.losses[0]["step"] == 3
    for a, b in zip(straight.losses[2:], resumed.losses, strict=True):
        assert {k: v for k, v in a.items() if k != "images_per_s"} == {
            k: v for k, v in b.items() if k != "images_per_s"
        }
    assert not any(k.startswith(("unet", "vae", "text_encoder")) for k in tensors)


def test_switches_leave_out_their_terms_and_plain_brushnet_trains(base, manifest, tmp_path):
    config = _config(manifest, tmp_path / "run", steps=1, val_fraction=0.0)
    result = train(_task(base, config, branch="brushnet", style_loss=False), config, show_progress=False)
    assert set(k for k in result.losses[0] if k.startswith("main/")) == {"main/loss", "main/noise"}
    assert load_bundle(result.weights, engine="mta").extra["kind"] == "brushnet"
    assert not load_branch(result.weights).config.self_attention


def test_cfg_prompt_dropout_is_ten_percent():
    rng = np.random.default_rng(0)
    captions = [f"object {i}" for i in range(400)]
    dropped = sum(c == "" for _ in range(5) for c in drop_captions(captions, rng, 0.1))
    assert 0.08 < dropped / 2000 < 0.12
    kept = drop_captions(captions, rng, 0.1)
    assert all(c in ("", f"object {i}") for i, c in enumerate(kept))


def test_mask_recipe_opens_thirty_and_inverts_half_of_the_random_masks():
    rng = np.random.default_rng(1)
    holes = np.zeros((400, 64, 64), bool)
    holes[:, 16:48, 16:48] = True
    holes[:, 5, :] = True  # a one-pixel line: an opening removes it
    invertible = np.arange(400) % 2 == 0  # odd rows stand for masks given with their own caption
    out = brushnet_holes(holes, invertible, rng, 0.3, 4, 0.5)
    inverted = out[:, 32, 32] == 0
    opened = out[:, 5, 0] == out[:, 32, 0]  # the line went the way of the background
    assert not inverted[~invertible].any()
    assert 0.42 < inverted[invertible].mean() < 0.58
    assert 0.24 < opened.mean() < 0.36
    # an opening never changes the square (only the line), an inversion flips every pixel
    square = out[:, 16:48, 16:48]
    assert np.all(square == ~inverted[:, None, None])


def test_prepare_batch_follows_brushnet_conventions(base, manifest, tmp_path):
    """keep = 1 on known latent cells; the masked image latent is the image with its hole black;
    the given masks keep their captions and orientation."""
    config = _config(manifest, tmp_path / "run")
    task = _task(base, config, open_prob=0.0, invert_prob=1.0, empty_prompt=0.0)
    task.build_frozen()
    task.setup(task.build_modules(), torch.device("cpu"))
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    given = torch.zeros(2, 1, 64, 64)
    given[0, :, 8:40, 8:40] = 1
    sample = {"image": images, "mask": given, "mask_given": torch.tensor([True, False]),
              "caption": ["a mug", "a kitchen"]}  # fmt: skip
    batch = task.prepare_batch(sample, 0, np.random.default_rng(0))
    assert torch.equal(batch["mask"][0], given[0])  # given: not inverted (invert_prob 1)
    assert batch["caption"] == ["a mug", "a kitchen"]
    hole_cells = torch.nn.functional.interpolate(batch["mask"], size=(8, 8), mode="nearest")
    assert torch.equal(batch["keep"], 1 - hole_cells)
    assert batch["text"].shape == (2, 77, 32) and batch["latent"].shape == (2, 4, 8, 8)
    again = task.prepare_batch(sample, 0, np.random.default_rng(0))
    assert all(torch.equal(batch[k], again[k]) for k in ("latent", "masked_latent", "noise", "timestep"))


def test_caption_command_fills_rows_without_a_caption(base, tmp_path):
    script = tmp_path / "caption.py"
    script.write_text(
        "import sys, pathlib\nprint('a photo of', pathlib.Path(sys.argv[1]).stem, len(sys.argv) - 1)\n"
    )
    config = _config(tmp_path / "none.jsonl", tmp_path / "run")
    task = _task(base, config, caption_command=f"{sys.executable} {script}")
    rows = [
        Record(tmp_path / "a.png"),
        Record(tmp_path / "b.png", tmp_path / "m.png"),
        Record(tmp_path / "c.png", caption="kept"),
    ]
    out = task.prepare_records(rows)
    assert [r.caption for r in out] == ["a photo of a 1", "a photo of b 2", "kept"]
    failing = _task(base, config, caption_command=f"{sys.executable} -c 'import sys; sys.exit(3)'")
    with pytest.warns(UserWarning, match="exit code 3"):
        assert failing.prepare_records(rows[:1])[0].caption is None


def test_cli_says_what_is_missing(tmp_path, manifest, capsys):
    args = f"mta --manifest {manifest} --out {tmp_path / 'run'} --steps 1 --workers 0 --no-export-to-store"
    assert cli.main(args.split()) == 2
    assert "--base-model" in capsys.readouterr().err
    assert cli.main([*args.split(), "--base-model", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_without_base_model_the_model_stores_base_is_used(base, manifest, tmp_path):
    from inpaint_studio.core import paths
    from inpaint_studio.model_import import import_checkpoint

    config = _config(manifest, tmp_path / "run")
    with pytest.raises(ValueError, match="--base-model.*models download sd15-base"):
        MtaTask(MtaOptions(**TINY_STYLE), config)
    store = import_checkpoint("sd15-base", base, paths.engine_models_dir("sd15-base") / "mine")
    task = MtaTask(MtaOptions(**TINY_STYLE), config)
    assert task.options.base_model == str(store)  # recorded, so a resume and the export name it
    assert not task._base().inpainting


DDP_SCRIPT = """
import hashlib, json, os, sys
sys.path.insert(0, sys.argv[4])
import torch
from trainers.config import TrainConfig
from trainers.loop import train
from trainers.tasks.mta import MtaOptions, MtaTask

manifest, out, base = sys.argv[1], sys.argv[2], sys.argv[3]
modules = {}

class Recording(MtaTask):
    def build_modules(self):
        modules.update(super().build_modules())
        return modules

config = TrainConfig(manifest=manifest, out=out, resolution=64, batch_size=1, steps=2, workers=0,
                     val_fraction=0.3, checkpoint_every=100, sample_every=100, log_every=1,
                     export_to_store=False, lr=1e-3)
options = MtaOptions(base_model=base, style_net="8 M 16", style_layers=(1, 4), sample_steps=1, style_lr=1e-3)
result = train(Recording(options, config), config, show_progress=False)
digest = hashlib.sha256()
for m, net in sorted(modules.items()):
    for k, p in sorted(net.named_parameters()):
        digest.update(f"{m}.{k}".encode() + p.detach().cpu().numpy().tobytes())
with open(os.path.join(out, f"rank{os.environ['RANK']}.json"), "w") as f:
    json.dump({"weights": digest.hexdigest(), "validation": result.validation}, f)
"""


@pytest.mark.slow
def test_two_process_gloo_job_keeps_branch_and_extractor_in_sync(base, manifest, tmp_path):
    import os
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "ddp_job.py"
    script.write_text(DDP_SCRIPT)
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(port), str(script), str(manifest),
           str(tmp_path / "run"), str(base), str(repo)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads((tmp_path / "run" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["weights"] == reports[1]["weights"]  # gradients of both modules averaged
    assert reports[0]["validation"] == reports[1]["validation"]
    assert (tmp_path / "run" / "weights" / "model.safetensors").is_file()
