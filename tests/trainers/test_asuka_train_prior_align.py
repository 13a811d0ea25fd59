"""``asuka-prior`` and ``asuka-align`` end to end on the CPU with tiny parts (plumbing, not quality)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import sd_tiny  # noqa: E402

from inpaint_studio.models.asuka.alignment import AlignmentModule  # noqa: E402
from inpaint_studio.models.asuka.importer import ALIGN_ENGINE, PRIOR_ENGINE, load_part, save_part  # noqa: E402
from inpaint_studio.models.asuka.prior import AsukaPrior  # noqa: E402
from trainers import cli  # noqa: E402
from trainers.config import TrainConfig  # noqa: E402
from trainers.loop import train  # noqa: E402
from trainers.tasks.asuka_align import AsukaAlignOptions, AsukaAlignTask  # noqa: E402
from trainers.tasks.asuka_prior import AsukaPriorOptions, AsukaPriorTask  # noqa: E402

TINY_PRIOR = dict(patch_size=8, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=32, decoder_depth=2,
                  decoder_num_heads=2, feature_layer=1)  # fmt: skip


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return sd_tiny.save_folder(sd_tiny.tiny_parts(9), tmp_path_factory.mktemp("sd") / "model")


@pytest.fixture(scope="module")
def prior_folder(tmp_path_factory):
    torch.manual_seed(1)
    return save_part(AsukaPrior(img_size=32, **TINY_PRIOR), tmp_path_factory.mktemp("prior") / "weights")


def _config(photo_dir, out, **kw) -> TrainConfig:
    base = dict(data=(str(photo_dir),), out=str(out), resolution=32, batch_size=2, steps=3, workers=0,
                val_fraction=0.25, log_every=1, val_every=100, sample_every=100, checkpoint_every=2,
                export_to_store=False, seed=2, lr=1e-3, lr_schedule="constant")  # fmt: skip
    return TrainConfig(**{**base, **kw})


# ------------------------------------------------------------------------------ prior
def _prior(config, **opts):
    return train(
        AsukaPriorTask(AsukaPriorOptions(**{**TINY_PRIOR, **opts}), config), config, show_progress=False
    )


def test_prior_trains_exports_resumes_and_fine_tunes_its_export(photo_dir, tmp_path, straight_and_resumed):
    straight = _prior(_config(photo_dir, tmp_path / "a"))
    assert straight.step == 3 and all(
        np.isfinite(e["main/loss"]) for e in straight.losses if "main/loss" in e
    )
    task = AsukaPriorTask(AsukaPriorOptions(**TINY_PRIOR), _config(photo_dir, tmp_path / "x"))
    mask = task.prepare_batch({"image": torch.zeros(16, 3, 32, 32)}, 0, np.random.default_rng(0))["mask"]
    touched = torch.nn.functional.max_pool2d(mask, 8).flatten(1).mean(1)
    assert (touched >= 0.75).all()  # every mask grown to 75 % of the patches
    model = load_part(straight.weights, engine=PRIOR_ENGINE)
    assert isinstance(model, AsukaPrior) and model.img_size == 32
    saved = load_file(str(straight.checkpoint / "weights.safetensors"))
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[f"ema.prior.{key}"]), key

    straight_and_resumed(
        _prior, lambda out, **kw: _config(photo_dir, out, **{"steps": 4, **kw}), tmp_path / "r"
    )

    # fine-tuning an export: the architecture comes from the weights, not from the (other) width options
    tuned = _prior(_config(photo_dir, tmp_path / "c", steps=1, init_from=str(straight.weights)), embed_dim=64)
    assert load_part(tuned.weights).config == model.config


# ------------------------------------------------------------------------------ alignment
def _align(config, sd_folder, prior_folder, **opts):
    options = AsukaAlignOptions(sd15=str(sd_folder), prior=str(prior_folder), depth=1, head_dim=16, **opts)
    return train(AsukaAlignTask(options, config), config, show_progress=False)


def test_align_trains_only_the_module_exports_and_resumes(
    photo_dir, tmp_path, sd_folder, prior_folder, straight_and_resumed
):
    straight = _align(_config(photo_dir, tmp_path / "a"), sd_folder, prior_folder)
    assert straight.step == 3 and np.isfinite(straight.validation["eps_mse"])
    assert straight.losses[0]["main/substituted"] == 1.0  # p = 100 % at step 0
    saved = load_file(str(straight.checkpoint / "weights.safetensors"))
    assert {k.split(".")[0] for k in saved} <= {"align", "ema"}
    assert {k.split(".")[1] for k in saved if k.startswith("ema.")} == {"align"}
    module = load_part(straight.weights, engine=ALIGN_ENGINE)
    assert isinstance(module, AlignmentModule) and module.config["cond_dim"] == 32
    for key, value in module.state_dict().items():
        assert torch.equal(value, saved[f"ema.align.{key}"]), key

    straight_and_resumed(
        lambda c: _align(c, sd_folder, prior_folder),
        lambda out, **kw: _config(photo_dir, out, **{"steps": 4, **kw}),
        tmp_path / "r",
    )


def test_align_substitutes_the_reconstructed_prior_on_schedule(photo_dir, tmp_path, sd_folder, prior_folder):
    config = _config(photo_dir, tmp_path / "run")
    options = AsukaAlignOptions(sd15=str(sd_folder), prior=str(prior_folder), depth=1, head_dim=16)
    task = AsukaAlignTask(options, config)
    image = torch.rand(50, 3, 32, 32) * 2 - 1
    rng = np.random.default_rng(0)
    late = [task.prepare_batch({"image": image}, 5000, rng) for _ in range(4)]  # p fixed at 10 %
    share = float(torch.cat([b["substituted"] for b in late]).mean())
    assert 0.04 < share < 0.18
    batch = late[0]
    flagged = batch["substituted"].bool()
    reconstructed = task.prior.reconstructed_prior(task.prior_inputs_for(batch)[0])
    assert torch.allclose(batch["prior"][flagged], reconstructed[flagged], atol=1e-5)
    assert not torch.allclose(batch["prior"][~flagged], reconstructed[~flagged], atol=1e-3)
    first = task.prepare_batch({"image": image[:8]}, 0, rng)
    assert first["substituted"].all()
    assert not task.prepare_batch({"image": image[:8]}, None, rng)["substituted"].any()  # validation


def test_align_needs_its_prior_in_one_line(photo_dir, tmp_path, sd_folder, capsys):
    args = f"asuka-align --data {photo_dir} --out {tmp_path / 'r'} --steps 1 --sd15 {sd_folder}"
    assert cli.main(args.split()) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert "--prior" in err[-1] and "Traceback" not in "\n".join(err)


def test_prior_fine_tunes_the_released_checkpoint_file(photo_dir, tmp_path):
    """A ``mae_300.pth``-style file ({'model': state_dict}) goes through the importer's restricted unpickler."""
    torch.manual_seed(3)
    release = AsukaPrior(img_size=32, patch_size=8, embed_dim=128, depth=2, num_heads=2, decoder_embed_dim=64,
                         decoder_depth=2, decoder_num_heads=16, feature_layer=2)  # fmt: skip
    torch.save({"model": release.state_dict()}, tmp_path / "mae_300.pth")
    config = _config(photo_dir, tmp_path / "run", steps=0, init_from=str(tmp_path / "mae_300.pth"))
    tuned = load_part(_prior(config).weights, engine=PRIOR_ENGINE)
    assert tuned.config == release.config
    for key, value in release.state_dict().items():
        assert torch.equal(tuned.state_dict()[key], value), key
