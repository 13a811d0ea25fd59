"""End to end on the CPU: a tiny InP-Net trains, checkpoints, resumes exactly, stops cleanly, exports."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from inpaint_studio.models.bundle import load_bundle
from trainers import cli
from trainers.config import TrainConfig
from trainers.loop import Interrupted, train
from trainers.tasks.inpnet import InpNetOptions, InpNetTask

TINY = dict(embed_dim=32, depth=2, num_heads=2, skip_layers=(2, 1), bridge_dim=32, bridge_depth=1)
TINY.update(decoder_channels=(16, 16, 8), ratio_warmup=4)
TINY_FLAGS = "--embed-dim 32 --depth 2 --num-heads 2 --skip-layers 2,1 --bridge-dim 32 --bridge-depth 1 "
TINY_FLAGS += "--decoder-channels 16,16,8 --ratio-warmup 4"


def _config(photo_dir, out, **kw):
    base = dict(data=(str(photo_dir),), out=str(out), resolution=32, batch_size=4, steps=4, workers=0,
                val_fraction=0.25, log_every=1, val_every=2, sample_every=2, checkpoint_every=2, lr=3e-3,
                export_to_store=False, seed=3)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _run(config, **opts):
    return train(InpNetTask(InpNetOptions(**{**TINY, **opts}), config), config, show_progress=False)


def test_resume_continues_exactly_where_it_stopped(photo_dir, tmp_path, straight_and_resumed):
    # a constant rate: with cosine the schedule depends on --steps, which differs between the runs
    quiet = dict(lr_schedule="constant", log_every=1, val_every=100, sample_every=100)
    config = lambda out, **kw: _config(photo_dir, out, **kw)  # noqa: E731
    straight, resumed, _ = straight_and_resumed(_run, config, tmp_path, **quiet)
    assert straight.losses[-1]["G/loss"] == pytest.approx(resumed.losses[-1]["G/loss"], rel=1e-6)


def test_run_folder_holds_checkpoints_logs_samples_and_weights(photo_dir, tmp_path):
    result = _run(_config(photo_dir, tmp_path / "run"))
    run = tmp_path / "run"
    assert result.checkpoint == run / "checkpoints" / "step-0000004"
    assert list((run / "logs").glob("events.out.tfevents.*"))
    assert (run / "samples" / "step-0000002.png").is_file()
    assert {"hole_psnr", "hole_ssim"} <= set(result.validation)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(line["group"] == "val" for line in lines)
    bundle = load_bundle(result.weights, engine="inpnet")
    assert bundle.arch["img_size"] == 32 and bundle.extra["trained"]["steps"] == 4
    ema = load_file(str(result.checkpoint / "weights.safetensors"))
    for key, value in bundle.state_dict.items():  # the EMA weights are what gets exported
        assert torch.equal(value, ema[f"ema.generator.{key}"]), key


def test_abort_saves_a_checkpoint_and_exports(photo_dir, tmp_path):
    calls = []
    config = _config(photo_dir, tmp_path / "run", steps=50, checkpoint_every=100)
    task = InpNetTask(InpNetOptions(**TINY), config)
    with pytest.raises(Interrupted) as info:
        train(
            task,
            config,
            abort_fn=lambda: len(calls) >= 3,
            progress_fn=lambda *a: calls.append(a),
            show_progress=False,
        )
    assert info.value.result.step == 3
    assert info.value.result.checkpoint.name == "step-0000003"
    assert (tmp_path / "run" / "weights" / "config.json").is_file()


def test_gan_variant_runs_all_three_phases(photo_dir, tmp_path):
    result = _run(_config(photo_dir, tmp_path / "gan", steps=2), variant="dynamic-skip-gan", r1_interval=2)
    keys = set().union(*result.losses)
    assert {"G/adv", "D/loss", "Dreg/r1"} <= keys
    ck = load_file(str(result.checkpoint / "weights.safetensors"))
    assert any(k.startswith("discriminator.") for k in ck)


def test_cli_trains_resumes_and_exports_to_the_store(photo_dir, tmp_path, capsys):
    from inpaint_studio.core import paths

    args = f"inpnet --data {photo_dir} --out {tmp_path / 'run'} --resolution 32 --steps 3 --batch-size 4 "
    args += f"--workers 0 --val-fraction 0.25 --name tiny --lr 0.003 {TINY_FLAGS}"
    assert cli.main(args.split()) == 0
    assert (paths.engine_models_dir("inpnet") / "tiny" / "model.safetensors").is_file()
    assert (
        cli.main(["inpnet", "--resume", str(tmp_path / "run"), "--steps", "5", "--no-export-to-store"]) == 0
    )
    err = capsys.readouterr().err
    assert "resumed from" in err and "step-0000003" in err and "trained inpnet to step 5" in err
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-0000005" / "state.json").read_text())
    assert state["model_options"]["embed_dim"] == 32  # options came back from the checkpoint


def test_cli_reports_bad_input_clearly(tmp_path, capsys, photo_dir):
    (tmp_path / "empty").mkdir()
    assert cli.main(["inpnet", "--data", str(tmp_path / "empty"), "--workers", "0"]) == 2
    assert "no images" in capsys.readouterr().err
    assert cli.main(["inpnet", "--data", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["inpnet", "--steps", "3"]) == 2
    assert "--data" in capsys.readouterr().err
    assert cli.main(["inpnet", "--data", str(photo_dir), "--batch-size", "3", "--accumulate", "2"]) == 2
    assert "divisible" in capsys.readouterr().err
    assert cli.main(["inpnet", "--resume", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    cfg = tmp_path / "c.json"
    cfg.write_text('{"resolution": 32, "colour": "red"}')
    assert cli.main(["inpnet", "--data", str(photo_dir), "--config", str(cfg)]) == 2
    assert "colour" in capsys.readouterr().err


def test_help_lists_every_models_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "inpnet" in out and "--hole-threshold" in out and "--variant" in out
    with pytest.raises(SystemExit):
        cli.main(["inpnet", "--help"])
    out = capsys.readouterr().out
    assert "--resolution" in out and "--resume" in out and "--masks" in out and "dynamic-skip-gan" in out


def test_config_file_and_accumulation(photo_dir, tmp_path):
    cfg = tmp_path / "run.json"
    cfg.write_text(
        json.dumps(
            {
                "resolution": 32,
                "steps": 2,
                "batch-size": 4,
                "accumulate": 2,
                "inpnet": TINY | {"skip_layers": [2, 1], "decoder_channels": [16, 16, 8]},
            }
        )
    )
    args = ["inpnet", "--data", str(photo_dir), "--out", str(tmp_path / "r"), "--config", str(cfg)]
    assert cli.main([*args, "--workers", "0", "--no-export-to-store"]) == 0
    state = json.loads((tmp_path / "r" / "checkpoints" / "step-0000002" / "state.json").read_text())
    assert state["train"]["accumulate"] == 2 and state["train"]["resolution"] == 32


def test_init_from_exported_weights_fine_tunes(photo_dir, tmp_path, capsys):
    first = _run(_config(photo_dir, tmp_path / "a", steps=1), image_pyramid=False)
    config = _config(photo_dir, tmp_path / "b", steps=1, init_from=str(first.weights), lr=1e-12)
    task = InpNetTask(InpNetOptions(**TINY), config)  # the image pyramid is new: it keeps its zero init
    result = train(task, config, show_progress=False)
    assert "new ones keep their initialisation" in capsys.readouterr().err
    before = load_file(str(first.weights / "model.safetensors"))
    after = load_file(str(result.weights / "model.safetensors"))
    assert torch.allclose(before["residual_head.weight"], after["residual_head.weight"], atol=1e-6)
    bad = _config(photo_dir, tmp_path / "c", steps=1, init_from=str(first.weights))
    with pytest.raises(ValueError, match="another shape"):
        train(InpNetTask(InpNetOptions(**{**TINY, "embed_dim": 64}), bad), bad, show_progress=False)


def test_a_model_whose_trainer_cannot_load_does_not_break_the_others(monkeypatch, capsys):
    from trainers import tasks

    monkeypatch.setitem(tasks.TASKS, "ghost", "trainers.tasks.does_not_exist:GhostTask")
    assert cli.main(["ghost", "--data", "x"]) == 2
    assert "cannot be loaded" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "ghost: unavailable" in capsys.readouterr().out
