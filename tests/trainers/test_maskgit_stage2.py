"""MaskGIT stage 2 (``inpaint-studio-train maskgit``) end to end on the CPU: MVTM training over a
frozen tiny VQGAN, validation through the real decode, ONE exported bundle the engine runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from inpaint_studio import cli as app_cli
from inpaint_studio.engines.base import Preview, Request, Result, at_full_size
from inpaint_studio.engines.maskgit import MaskGitEngine
from inpaint_studio.models.bundle import load_bundle, read_config
from trainers import cli
from trainers.config import TrainConfig
from trainers.loop import train
from trainers.tasks.maskgit import MaskGitOptions, MaskGitTask
from trainers.tasks.maskgit_vqgan import MaskGitVQGANTask, VQGANOptions

TINY_VQ = dict(ch=32, ch_mult=(1, 1, 2), z_channels=32, n_embed=32, embed_dim=8, gan_weight=0.0)  # f = 4
TINY = dict(hidden_dim=32, depth=2, heads=2, mlp_dim=64, val_steps=3)
TINY_FLAGS = "--hidden-dim 32 --depth 2 --heads 2 --mlp-dim 64 --val-steps 3"


def _photos(folder: Path, count: int = 8) -> Path:
    """Gradients with a coloured square (as the trainer tests' photos), 40-48 px."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(count):
        h, w = (40, 48) if i % 2 else (48, 40)
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([xx * 5, yy * 5, np.full((h, w), int(rng.integers(256)))], -1).astype(np.uint8)
        y, x = rng.integers(0, h - 12), rng.integers(0, w - 12)
        img[y : y + 12, x : x + 12] = rng.integers(0, 256, 3)
        Image.fromarray(img).save(folder / f"p{i}.png")
    return folder


@pytest.fixture(scope="module")
def stage1(tmp_path_factory) -> tuple[Path, Path]:
    """(photo folder, exported tiny tokenizer), trained once for this module."""
    root = tmp_path_factory.mktemp("maskgit")
    photos = _photos(root / "photos")
    config = TrainConfig(data=(str(photos),), out=str(root / "vq"), resolution=32, batch_size=4, steps=3,
                         workers=0, val_fraction=0.0, lr=2e-3, export_to_store=False)  # fmt: skip
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    result = train(MaskGitVQGANTask(VQGANOptions(**TINY_VQ), config), config, show_progress=False)
    torch.set_num_threads(before)
    return photos, result.weights


def _config(photos, out, **kw):
    base = dict(data=(str(photos),), out=str(out), resolution=32, batch_size=4, steps=4, workers=0,
                val_fraction=0.25, log_every=1, val_every=2, sample_every=2, checkpoint_every=2, lr=3e-3,
                export_to_store=False, seed=2)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _run(config, vqgan, **opts):
    return train(
        MaskGitTask(MaskGitOptions(vqgan=str(vqgan), **{**TINY, **opts}), config), config, show_progress=False
    )


def _hole_image() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:50, 0:70]
    image = np.stack([xx * 3, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)
    mask = np.zeros((50, 70), np.uint8)
    mask[15:30, 20:45] = 255
    return image, mask


def test_needs_the_stage1_tokenizer(stage1, tmp_path, capsys):
    photos, _ = stage1
    base = ["maskgit", "--data", str(photos), "--workers", "0", "--steps", "1"]
    assert cli.main(base) == 2
    assert "--vqgan" in (err := capsys.readouterr().err) and "maskgit-vqgan" in err
    assert cli.main([*base, "--vqgan", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in (err := capsys.readouterr().err) and "maskgit-vqgan" in err
    assert cli.main([*base, "--vqgan", str(photos)]) == 2  # a folder, but no tokenizer in it
    assert "error:" in capsys.readouterr().err


def test_trains_validates_by_decoding_and_exports_one_bundle(stage1, tmp_path):
    photos, vqgan = stage1
    result = _run(_config(photos, tmp_path / "run"), vqgan)
    assert result.step == 4
    for entry in result.losses:
        assert {"G/loss", "G/ce", "G/token_acc", "G/mask_ratio"} <= set(entry)
        assert all(math.isfinite(v) for v in entry.values()), entry
        assert 0.0 <= entry["G/token_acc"] <= 1.0 and 0.0 < entry["G/mask_ratio"] <= 1.0
    assert {"hole_psnr", "hole_ssim", "token_acc", "oracle_hole_psnr"} <= set(result.validation)
    assert all(math.isfinite(v) for v in result.validation.values())
    assert (tmp_path / "run" / "samples" / "step-0000004.png").is_file()
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(line["group"] == "val" and "hole_psnr" in line for line in lines)

    config = read_config(result.weights)
    assert config["engine"] == "maskgit" and config["parts"] == ["atlas", "transformer", "vqgan"]
    bundle = load_bundle(result.weights, engine="maskgit")
    assert bundle.arch["transformer"]["grid_size"] == 8 and bundle.arch["transformer"]["codebook_size"] == 32
    frozen = load_file(str(vqgan / "vqgan.safetensors"))
    assert all(torch.equal(bundle.parts["vqgan"][k], v) for k, v in frozen.items())  # the VQGAN stayed frozen
    ema = load_file(str(result.checkpoint / "weights.safetensors"))
    key = "blocks.0.attn.qkv.weight"
    assert torch.equal(bundle.parts["transformer"][key], ema[f"ema.transformer.{key}"])  # EMA is exported

    image, mask = _hole_image()
    engine = MaskGitEngine(weights=result.weights, device="cpu")
    events = [at_full_size(e, image) for e in engine.run(Request(image, mask, params={"steps": 4}))]
    assert sum(isinstance(e, Preview) for e in events) == 4
    assert isinstance(events[-1], Result)
    out = events[-1].composited(image)
    assert np.array_equal(out[mask == 0], image[mask == 0])  # byte-identical outside the hole
    assert not np.array_equal(out[mask > 0], image[mask > 0])


def test_store_export_and_fill_cli_with_step_pngs(stage1, tmp_path):
    photos, vqgan = stage1
    args = f"maskgit --data {photos} --vqgan {vqgan} --out {tmp_path / 'run'} --resolution 32 --steps 2 "
    args += f"--batch-size 4 --workers 0 --val-fraction 0 --name tiny --schedule linear {TINY_FLAGS}"
    assert cli.main(args.split()) == 0
    assert MaskGitEngine.availability().ok  # found in the model store without --weights
    image, mask = _hole_image()
    Image.fromarray(image).save(tmp_path / "photo.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    fill = [
        "fill",
        str(tmp_path / "photo.png"),
        "--mask",
        str(tmp_path / "mask.png"),
        "-o",
        str(tmp_path / "out.png"),
    ]
    fill += ["--engine", "maskgit", "--steps", "5", "--save-steps", str(tmp_path / "steps"), "-q"]
    assert app_cli.main(fill) == 0
    assert len(list((tmp_path / "steps").glob("step_*.png"))) == 5
    out = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))
    assert np.array_equal(out[mask == 0], image[mask == 0])


def test_loss_falls_on_a_learnable_set(stage1, tmp_path):
    """One image seen without crops or flips: its tokens never change, so they can be learnt."""
    _, vqgan = stage1
    data = tmp_path / "one"
    data.mkdir()
    yy, xx = np.mgrid[0:32, 0:32]
    image = np.stack([xx * 8, yy * 8, ((xx // 8 + yy // 8) % 2) * 255], -1).astype(np.uint8)
    for i in range(4):
        Image.fromarray(image).save(data / f"i{i}.png")
    config = _config(data, tmp_path / "run", steps=50, val_fraction=0.0, zoom=1.0, flip=False,
                     lr_schedule="constant", val_every=100, sample_every=100, checkpoint_every=100)  # fmt: skip
    result = _run(config, vqgan, dropout=0.0, label_smoothing=0.0)
    ce = [e["G/ce"] for e in result.losses]
    assert np.mean(ce[-5:]) < 0.25 * np.mean(ce[:3]), ce
    assert np.mean([e["G/token_acc"] for e in result.losses[-5:]]) > 0.8


def test_resume_continues_exactly_where_it_stopped(stage1, tmp_path):
    photos, vqgan = stage1
    quiet = dict(lr_schedule="constant", log_every=100, val_every=100, sample_every=100)
    straight = _run(_config(photos, tmp_path / "a", **quiet), vqgan)
    _run(_config(photos, tmp_path / "b", steps=2, **quiet), vqgan)
    resumed = _run(_config(photos, tmp_path / "b", steps=4, resume=str(tmp_path / "b"), **quiet), vqgan)
    assert straight.step == resumed.step == 4
    a = load_file(str(straight.checkpoint / "weights.safetensors"))
    b = load_file(str(resumed.checkpoint / "weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # masks, dropout, optimizer and EMA state included


def test_training_masks_follow_the_schedule_or_a_fixed_rate(stage1, tmp_path):
    photos, vqgan = stage1
    config = _config(photos, tmp_path / "x")
    images = torch.rand(16, 3, 32, 32) * 2 - 1
    task = MaskGitTask(MaskGitOptions(vqgan=str(vqgan), **TINY), config)
    batch = task.prepare_batch({"image": images}, 0, np.random.default_rng(0))
    hidden = batch["hidden"]
    assert hidden.shape == (16, 64) and bool((hidden.sum(1) >= 1).all())
    assert torch.equal(batch["input"][hidden], torch.full_like(batch["input"][hidden], 32))  # the mask id
    assert torch.equal(batch["input"][~hidden], batch["tokens"][~hidden])
    assert len(set(hidden.sum(1).tolist())) > 4  # r ~ U(0, 1) per image
    fixed = MaskGitTask(MaskGitOptions(vqgan=str(vqgan), masking="bernoulli", mask_ratio=0.5, **TINY), config)
    rate = fixed.prepare_batch({"image": images}, 0, np.random.default_rng(0))["hidden"].float().mean()
    assert 0.4 < float(rate) < 0.6
    with pytest.raises(ValueError, match="bernoulli"):
        MaskGitOptions(vqgan=str(vqgan), mask_ratio=0.5)
