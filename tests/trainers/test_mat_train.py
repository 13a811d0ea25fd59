"""``inpaint-studio-train mat`` end to end on the CPU with a tiny network (plumbing, not quality).

The tiny preset keeps MAT's topology at a few channels; one attention head instead of six keeps
the 64x64-token transformer cheap enough for a test at 128 px, the smallest size MAT builds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from inpaint_studio.engines.base import Request, Variant, at_full_size
from inpaint_studio.engines.mat import MatEngine
from inpaint_studio.models.bundle import load_bundle, save_bundle
from inpaint_studio.models.mat import MatConfig, MatGenerator
from inpaint_studio.models.mat.discriminator import MatDiscriminator
from trainers import cli
from trainers.config import TrainConfig
from trainers.loop import train
from trainers.masks import mat_mask
from trainers.tasks.mat import MatOptions, MatTask

TINY = dict(preset="tiny", stage1_heads=1, r1_interval=2)
pytestmark = pytest.mark.filterwarnings("ignore:no VGG weights")  # the documented fallback


def _config(photo_dir, out, **kw) -> TrainConfig:
    base = dict(data=(str(photo_dir),), out=str(out), resolution=128, batch_size=2, steps=3, workers=0,
                val_fraction=0.25, log_every=1, val_every=100, sample_every=100, checkpoint_every=2,
                export_to_store=False, seed=3, lr_schedule="constant")  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _run(config: TrainConfig, **opts):
    return train(MatTask(MatOptions(**{**TINY, **opts}), config), config, show_progress=False)


def _photo():
    yy, xx = np.mgrid[0:150, 0:200]
    image = np.stack([xx, yy, (xx + yy) // 2], -1).astype(np.uint8)
    mask = np.zeros((150, 200), np.uint8)
    mask[40:110, 60:150] = 255
    return image, mask


def test_trains_both_heads_with_lazy_r1_and_exports_what_the_engine_fills_with(photo_dir, tmp_path):
    result = _run(_config(photo_dir, tmp_path / "run", sample_every=3))
    assert result.step == 3 and len(result.losses) == 3
    for entry in result.losses:
        assert all(np.isfinite(v) for v in entry.values()), entry
    first, second, third = result.losses
    expected = {"G/adv", "G/adv_stage1", "G/perceptual", "D/real", "D/fake", "D/real_stage1", "D/fake_stage1"}
    assert expected <= set(first)
    # R1 runs at steps 0 and 2 (interval 2), not at step 1
    assert {"Dreg/r1", "Dreg/r1_stage1"} <= set(first) and {"Dreg/r1", "Dreg/r1_stage1"} <= set(third)
    assert not any(k.startswith("Dreg/") for k in second)
    assert first["Dreg/r1"] > 0 and first["Dreg/r1_stage1"] > 0
    # each optimizer's own rate: the critic's Adam runs lazily at lr * interval / (interval + 1)
    assert first["lr/generator"] == pytest.approx(1e-3)
    assert first["lr/discriminator"] == pytest.approx(1e-3 * 2 / 3)
    assert np.isfinite(result.validation["hole_psnr"]) and np.isfinite(result.validation["hole_ssim"])
    assert (tmp_path / "run" / "samples" / "step-0000003.png").is_file()

    # the export is the EMA generator, in the engine's format
    bundle = load_bundle(result.weights, engine="mat")
    assert MatConfig.from_dict(bundle.arch) == MatOptions(**TINY).architecture(128)
    trained = load_file(str(result.checkpoint / "weights.safetensors"))
    for key, value in bundle.state_dict.items():
        assert torch.equal(value, trained[f"ema.generator.{key}"]), key
    assert any(k.startswith("discriminator.Dis_stg1.") for k in trained)

    engine = MatEngine(weights=result.weights, device="cpu")
    image, mask = _photo()

    def fills() -> list[np.ndarray]:
        events = (at_full_size(e, image) for e in engine.run(Request(image, mask, seed=7, variants=2)))
        return [e.image for e in events if isinstance(e, Variant)]

    one, two = fills()
    outside = mask == 0
    assert np.array_equal(one[outside], image[outside]) and np.array_equal(two[outside], image[outside])
    assert not np.array_equal(one, two)
    again = fills()
    assert np.array_equal(again[0], one) and np.array_equal(again[1], two)


def test_resume_continues_exactly_where_it_stopped(photo_dir, tmp_path):
    """G, critic, EMA, w_avg, both Adams, the R1 phase after the break, masks, latents, noise."""
    straight = _run(_config(photo_dir, tmp_path / "a", steps=4))
    _run(_config(photo_dir, tmp_path / "b", steps=2))
    resumed = _run(_config(photo_dir, tmp_path / "b", steps=4, resume=str(tmp_path / "b")))
    assert straight.step == resumed.step == 4
    assert "Dreg/r1" in resumed.losses[0] and resumed.losses[0]["step"] == 3  # step 2 was an R1 step
    for a, b in zip(straight.losses[2:], resumed.losses, strict=True):
        a, b = ({k: v for k, v in e.items() if k != "images_per_s"} for e in (a, b))
        assert a == b
    a = load_file(str(straight.checkpoint / "weights.safetensors"))
    b = load_file(str(resumed.checkpoint / "weights.safetensors"))
    assert a.keys() == b.keys() and "generator.mapping.w_avg" in a
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _tiny_bundle(tmp_path, use_noise: bool = True):
    torch.manual_seed(4)
    config = MatOptions(**TINY).architecture(128)
    config = MatConfig.from_dict({**config.to_dict(), "use_noise": use_noise})
    model = MatGenerator(config)
    return model, save_bundle(tmp_path / "init", "mat", config.to_dict(), model.state_dict())


def test_init_from_weights_takes_their_architecture_and_values(photo_dir, tmp_path, capsys):
    model, bundle = _tiny_bundle(tmp_path)
    # no width options: the architecture comes from the weights (the default preset is 'official')
    args = f"mat --data {photo_dir} --out {tmp_path / 'run'} --resolution 128 --steps 0 --workers 0 "
    args += f"--no-export-to-store --val-fraction 0.25 --init-from {bundle}"
    assert cli.main(args.split()) == 0
    err = capsys.readouterr().err
    assert "initialised the generator" in err and "discriminator starts fresh" in err
    exported = load_bundle(tmp_path / "run" / "weights", engine="mat").state_dict
    expected = model.state_dict()
    assert exported.keys() == expected.keys() and all(torch.equal(exported[k], expected[k]) for k in expected)

    assert cli.main([*args.split(), "--stage1-dim", "24"]) == 2
    assert "does not match" in capsys.readouterr().err
    assert cli.main([*args.replace("--resolution 128", "--resolution 256").split()]) == 2
    assert "--resolution 128" in capsys.readouterr().err


def test_init_from_a_state_dict_file_and_a_critic(photo_dir, tmp_path):
    """An IOPaint-style .pth (no noise entries) goes through the importer; an official .pkl's
    discriminator (read by the importer, see tests/models/test_mat_import.py) is loaded too."""
    model, _ = _tiny_bundle(tmp_path, use_noise=False)
    source = tmp_path / "Places_512_FullData_G.pth"
    torch.save(model.state_dict(), source)
    config = _config(photo_dir, tmp_path / "run", init_from=str(source))
    task = MatTask(MatOptions(), config)
    assert task.arch.use_noise is False and task.arch.stage1_dim == model.config.stage1_dim
    critic = MatDiscriminator(task.critic_arch)
    task.init_weights.discriminator = critic.state_dict()
    modules = task.build_modules()
    message = task.initialize_from(source, modules)
    assert "discriminator from it too" in message
    for key, value in critic.state_dict().items():
        assert torch.equal(modules["discriminator"].state_dict()[key], value)
    for key, value in model.state_dict().items():
        assert torch.equal(modules["generator"].state_dict()[key], value)


def test_batches_hold_masks_latents_keep_maps_and_style_mixing_cutoffs(tmp_path):
    config = _config(tmp_path, tmp_path / "run")
    task = MatTask(MatOptions(**TINY, style_mixing=1.0), config)
    task.setup(task.build_modules(), torch.device("cpu"))
    images = torch.zeros(3, 3, 128, 128)
    batch = task.prepare_batch({"image": images}, 5, np.random.default_rng(1))
    num_ws = task.arch.num_ws
    assert batch["mask"].shape == (3, 1, 128, 128) and set(batch["mask"].unique().tolist()) <= {0.0, 1.0}
    assert batch["z"].shape == batch["mix_z"].shape == (3, task.arch.z_dim)
    assert ((batch["mix_from"] >= 1) & (batch["mix_from"] < num_ws)).all()  # probability 1: always mixed
    assert batch["keep1"].shape == (3, 256, task.arch.stage1_dim)
    assert batch["keep2"].shape == (3, task.arch.channels(16), 16, 16)
    again = task.prepare_batch({"image": images}, 5, np.random.default_rng(1))
    assert all(torch.equal(batch[k], again[k]) for k in batch)
    validation = task.prepare_batch({"image": images}, None, np.random.default_rng(1))
    assert (validation["mix_from"] == num_ws).all()  # no mixing outside training

    boxes = MatTask(MatOptions(**TINY, masks="box:1"), config)
    boxes.setup(boxes.build_modules(), torch.device("cpu"))
    assert boxes.prepare_batch({"image": images}, 0, np.random.default_rng(1))["mask"].mean() > 0


def test_mat_mask_recipes():
    rng = np.random.default_rng(0)
    for recipe in (512, 256):
        holes = [mat_mask(64, 64, rng, recipe=recipe) for _ in range(20)]
        assert all(0 < h.mean() < 1 for h in holes)
    with pytest.raises(ValueError, match="recipe"):
        mat_mask(64, 64, rng, recipe=128)
