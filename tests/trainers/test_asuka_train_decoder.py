"""``inpaint-studio-train asuka-decoder`` end to end on the CPU with tiny SD parts (plumbing, not quality)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import sd_tiny  # noqa: E402

from inpaint_studio.models.asuka.decoder import AsukaDecoder  # noqa: E402
from inpaint_studio.models.asuka.importer import DECODER_ENGINE, load_part  # noqa: E402
from trainers import cli  # noqa: E402
from trainers.config import TrainConfig  # noqa: E402
from trainers.loop import train  # noqa: E402
from trainers.tasks.asuka_decoder import AsukaDecoderOptions, AsukaDecoderTask  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:no VGG weights")  # the documented fallback


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return sd_tiny.save_folder(sd_tiny.tiny_parts(9), tmp_path_factory.mktemp("sd") / "model")


def _config(photo_dir, out, **kw) -> TrainConfig:
    base = dict(data=(str(photo_dir),), out=str(out), resolution=32, batch_size=2, steps=3, workers=0,
                val_fraction=0.25, log_every=1, val_every=100, sample_every=100, checkpoint_every=2,
                export_to_store=False, seed=5, lr=1e-3, lr_schedule="constant")  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _run(config: TrainConfig, sd_folder, **opts):
    options = AsukaDecoderOptions(sd15=str(sd_folder), d_channels=8, d_layers=2, **opts)
    return train(AsukaDecoderTask(options, config), config, show_progress=False)


def test_trains_with_both_augmentations_and_exports_what_load_part_reads(photo_dir, tmp_path, sd_folder):
    result = _run(_config(photo_dir, tmp_path / "run"), sd_folder, latent_aug=1.0)
    assert result.step == 3 and len(result.losses) == 3
    first = result.losses[0]
    assert {"G/l1", "G/perceptual", "G/adv", "D/real", "D/fake"} <= set(first)
    assert all(np.isfinite(v) for e in result.losses for v in e.values())
    # the VAE decoder's pretrained weights at 0.1x, the new condition encoder at the full rate
    assert first["lr/decoder"] == pytest.approx(1e-4)
    # frozen parts stay out of the checkpoint
    saved = load_file(str(result.checkpoint / "weights.safetensors"))
    assert any(k.startswith("decoder.condition.") for k in saved)
    assert not any(k.split(".")[0] in ("vae", "unet", "text_encoder") for k in saved)
    # the export is the EMA decoder, as models/asuka/importer.py reads it
    model = load_part(result.weights, engine=DECODER_ENGINE)
    assert isinstance(model, AsukaDecoder)
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[f"ema.decoder.{key}"]), key
    # it started from the tiny VAE's decoder, and training moved it
    vae = sd_tiny.tiny_parts(9)["vae"]
    conv_in = model.state_dict()["decoder.conv_in.weight"]
    assert conv_in.shape == vae.decoder.conv_in.weight.shape
    assert not torch.equal(conv_in, vae.decoder.conv_in.weight)


def test_latent_augmentation_is_the_unets_one_step_estimate(photo_dir, tmp_path, sd_folder):
    config = _config(photo_dir, tmp_path / "run")
    task = AsukaDecoderTask(
        AsukaDecoderOptions(sd15=str(sd_folder), adv_weight=0.0, perceptual_weight=0.0), config
    )
    task.setup(task.build_modules(), torch.device("cpu"))
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    z0 = torch.randn(2, 4, 4, 4)
    estimate = task.one_step_estimate(z0, torch.Generator().manual_seed(0))
    again = task.one_step_estimate(z0, torch.Generator().manual_seed(0))
    assert torch.equal(estimate, again) and estimate.shape == z0.shape
    assert not torch.allclose(estimate, z0)  # a random tiny UNet does not recover z0 exactly
    rng = np.random.default_rng(0)
    plain = AsukaDecoderTask(AsukaDecoderOptions(sd15=str(sd_folder), latent_aug=0.0), config)
    assert plain.sd.unet is None and "unet" not in plain.build_frozen()
    batch = plain.prepare_batch({"image": image}, 0, rng)
    assert batch["z"].shape == (2, 4, 4, 4) and batch["latent_aug"].sum() == 0
    assert ((batch["mask"] == 0) | (batch["mask"] == 1)).all() and batch["mask"].mean() > 0.05


def test_resume_continues_exactly_where_it_stopped(photo_dir, tmp_path, sd_folder, straight_and_resumed):
    """Decoder, critic, EMA, both optimizers, masks, jitter, posterior samples and the UNet's noise."""
    _, resumed, _ = straight_and_resumed(
        lambda c: _run(c, sd_folder, latent_aug=0.5),
        lambda out, **kw: _config(photo_dir, out, **{"steps": 4, **kw}),
        tmp_path,
    )
    assert resumed.losses[0]["step"] == 3


def test_cli_runs_it_and_bad_input_is_one_line(photo_dir, tmp_path, sd_folder, capsys):
    args = f"asuka-decoder --data {photo_dir} --out {tmp_path / 'run'} --resolution 32 --steps 1 --workers 0 "
    args += f"--batch-size 2 --no-export-to-store --val-fraction 0.25 --sd15 {sd_folder} --adv-weight 0"
    assert cli.main(args.split()) == 0
    assert (tmp_path / "run" / "weights" / "model.safetensors").is_file()
    code = cli.main(f"asuka-decoder --data {photo_dir} --out {tmp_path / 'r2'} --steps 1".split())
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and "--sd15" in err[-1] and "Traceback" not in "\n".join(err)
