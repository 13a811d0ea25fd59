"""MaskGIT stage 1 (``inpaint-studio-train maskgit-vqgan``) end to end on the CPU, tiny configs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from inpaint_studio.models.bundle import load_bundle
from inpaint_studio.models.maskgit import load_vqgan
from trainers import cli
from trainers.config import TrainConfig
from trainers.loop import train
from trainers.tasks.maskgit_vqgan import MaskGitVQGANTask, VQGANOptions

# f = 4 (three levels), 32 codes: a 32 px image is 8x8 tokens
TINY = dict(ch=32, ch_mult=(1, 1, 2), z_channels=32, n_embed=32, embed_dim=8, d_width=16, d_layers=1)
TINY_FLAGS = "--ch 32 --ch-mult 1,1,2 --z-channels 32 --n-embed 32 --embed-dim 8 --d-width 16 --d-layers 1"


def _config(photo_dir, out, **kw):
    base = dict(data=(str(photo_dir),), out=str(out), resolution=32, batch_size=4, steps=4, workers=0,
                val_fraction=0.25, log_every=1, val_every=2, sample_every=2, checkpoint_every=2, lr=2e-3,
                export_to_store=False, seed=5)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _run(config, **opts):
    options = VQGANOptions(**{**TINY, "gan_start": 2, **opts})
    return train(MaskGitVQGANTask(options, config), config, show_progress=False)


def _one_pattern(folder, copies=4, size=32):
    """A trivially learnable set: one image, seen without crops or flips (zoom 1, no flip)."""
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.stack([xx * 8, yy * 8, ((xx // 8 + yy // 8) % 2) * 255], -1).astype(np.uint8)
    for i in range(copies):
        Image.fromarray(image).save(folder / f"i{i}.png")
    return folder


def test_trains_with_gan_logs_codebook_usage_and_exports_a_tokenizer(photo_dir, tmp_path):
    result = _run(_config(photo_dir, tmp_path / "run"))
    assert result.step == 4
    logged = {k for entry in result.losses for k in entry}
    assert {"G/perplexity", "G/used_codes", "G/dead_codes", "G/codebook", "G/psnr"} <= logged
    assert {"G/adv", "G/adaptive_weight", "D/loss"} <= logged  # the GAN switched on after the warm-up
    assert not any("G/adv" in e for e in result.losses[:2])  # ... and not before (steps 1-2)
    for entry in result.losses[
        2:
    ]:  # the autoencoder is judged by the critic the D step trains (same BN batch)
        assert entry["G/adv"] == pytest.approx(-entry["D/fake"], rel=1e-4, abs=1e-5)
    for entry in result.losses:
        assert all(np.isfinite(v) for v in entry.values()), entry
        assert 1 <= entry["G/used_codes"] <= 32 and 1.0 <= entry["G/perplexity"] <= 32.0
    assert {"rec_psnr", "rec_ssim", "rec_l1", "codes_per_image"} <= set(result.validation)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("G/perplexity" in line and "G/dead_codes" in line for line in lines)
    assert (tmp_path / "run" / "samples" / "step-0000004.png").is_file()

    bundle = load_bundle(result.weights, engine="maskgit-vqgan")
    assert bundle.arch["vqgan"]["ema_decay"] == 0.0 and bundle.arch["vqgan"]["restart_threshold"] == 0.0
    assert not any("ema_" in k for k in bundle.parts["vqgan"])  # inference form
    vqgan = load_vqgan(result.weights)
    trained = load_file(str(result.checkpoint / "weights.safetensors"))
    assert torch.equal(vqgan.quantize.embedding.weight, trained["vqgan.quantize.embedding.weight"])
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    assert vqgan.encode_indices(image).shape == (1, 8, 8)


def test_first_batch_seeds_the_codebook(photo_dir, tmp_path):
    """With restarts, codes unused by the first batch are re-seeded from its latents at once."""
    config = _config(photo_dir, tmp_path / "r", steps=2, val_every=100, sample_every=100)
    with_restarts = _run(config, gan_weight=0.0)
    without = _run(_config(photo_dir, tmp_path / "n", steps=2), gan_weight=0.0, restart_threshold=0.0)
    assert with_restarts.losses[1]["G/used_codes"] > without.losses[1]["G/used_codes"]


def test_loss_falls_on_a_learnable_set(tmp_path):
    data = _one_pattern(tmp_path / "one")
    config = _config(data, tmp_path / "run", steps=30, val_every=100, sample_every=100, zoom=1.0, flip=False,
                     lr_schedule="constant", val_fraction=0.0)  # fmt: skip
    result = _run(config, gan_weight=0.0, perceptual_weight=0.0)
    l1 = [e["G/l1"] for e in result.losses]
    assert np.mean(l1[-5:]) < 0.4 * np.mean(l1[:3]), l1


def test_resume_continues_exactly_where_it_stopped(photo_dir, tmp_path, straight_and_resumed):
    """GAN phases, EMA codebook, code restarts and the critic's reused reconstructions included."""
    quiet = dict(lr_schedule="constant", log_every=100, val_every=100, sample_every=100)
    config = lambda out, **kw: _config(photo_dir, out, **kw)  # noqa: E731
    straight, resumed, tensors = straight_and_resumed(_run, config, tmp_path, **quiet)
    assert any(k.startswith("discriminator.") for k in tensors)


def test_cli_trains_and_lists_its_options(photo_dir, tmp_path, capsys):
    args = (
        f"maskgit-vqgan --data {photo_dir} --out {tmp_path / 'run'} --resolution 32 --steps 2 --batch-size 4 "
    )
    args += f"--workers 0 --val-fraction 0.25 --no-export-to-store --gan-start 1 {TINY_FLAGS}"
    assert cli.main(args.split()) == 0
    assert "trained maskgit-vqgan to step 2" in capsys.readouterr().err
    assert load_bundle(tmp_path / "run" / "weights", engine="maskgit-vqgan").arch["vqgan"]["n_embed"] == 32
    with pytest.raises(SystemExit):
        cli.main(["maskgit-vqgan", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--n-embed",
        "--ch-mult",
        "--gan-start",
        "--gan-loss",
        "--restart-threshold",
        "--codebook-ema",
    ):
        assert flag in out
    assert cli.main([*args.split(), "--ch", "48"]) == 2  # 48 is not a multiple of 32 (GroupNorm)
    assert "multiple of 32" in capsys.readouterr().err
