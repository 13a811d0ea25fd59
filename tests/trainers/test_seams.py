"""The loop's seams with a toy task: every optimizer's rate logged, frozen modules kept out of
checkpoints, optimizers and exports, captions and masks travelling with their images."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from trainers import cli
from trainers.config import TrainConfig
from trainers.loop import train
from trainers.progress import postfix
from trainers.task import Batch, ExportSpec, Phase, Task, with_given_masks

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "white": (255, 255, 255)}


@dataclass(frozen=True)
class ToyOptions:
    pass


class ToyTask(Task):
    """A 1x1-conv "generator" and "critic" on two optimizers (the critic at a tenth of the rate),
    and a frozen "encoder" the generator's loss looks through."""

    name = engine_id = "toy"
    description = "toy"
    Options = ToyOptions
    default_lr = 1e-2
    ema_modules = ("generator",)

    def __init__(self, options, config) -> None:
        super().__init__(options, config)
        self.captions: list[tuple[str, tuple[int, int, int]]] = []
        self.optimised: list[str] = []

    def build_modules(self) -> dict[str, nn.Module]:
        return {"generator": nn.Conv2d(3, 3, 1), "critic": nn.Conv2d(3, 1, 1)}

    def build_frozen(self) -> dict[str, nn.Module]:
        encoder = nn.Conv2d(3, 3, 1)
        with torch.no_grad():  # the same weights every time the task builds it (resume included)
            encoder.weight.copy_(torch.linspace(-1, 1, 9).view(3, 3, 1, 1))
            encoder.bias.zero_()
        return {"encoder": encoder}

    def build_optimizers(
        self, modules: Mapping[str, nn.Module], lr: float
    ) -> dict[str, torch.optim.Optimizer]:
        self.optimised = sorted(modules)
        return {
            "generator": torch.optim.Adam(modules["generator"].parameters(), lr=lr),
            "critic": torch.optim.Adam(modules["critic"].parameters(), lr=lr / 10),
        }

    def phases(self) -> tuple[Phase, ...]:
        return (Phase("G", "generator", ("generator",), ema=True), Phase("D", "critic", ("critic",)))

    def prepare_batch(self, sample: Batch, step: int | None, rng: np.random.Generator) -> Batch:
        image = sample["image"]
        mask = torch.zeros_like(image[:, :1])
        mask[..., :4, :] = 1
        return {
            "image": image,
            "mask": mask,
            **({"caption": sample["caption"]} if "caption" in sample else {}),
        }

    def loss(self, phase, nets, batch, step):
        if phase == "G" and "caption" in batch:  # after the loop cut the batch into micro-batches
            for caption, pixel in zip(batch["caption"], batch["image"][:, :, 0, 0], strict=True):
                self.captions.append((caption, tuple(int(v) for v in ((pixel + 1) * 127.5).round())))
        encoder = nets["encoder"]
        assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
        assert encoder.weight.device == batch["image"].device
        if phase == "G":
            out = nets["generator"](batch["image"])
            return (encoder(out) - encoder(batch["image"])).square().mean() + nets["critic"](out).mean(), {}
        return -nets["critic"](batch["image"]).mean(), {}

    def inpaint(self, nets, batch):
        return nets["generator"](batch["image"]).clamp(-1, 1)

    def export(self, nets) -> ExportSpec:
        return ExportSpec(arch={}, parts={"model": nets["generator"].state_dict()})


def _config(out, **kw) -> TrainConfig:
    base = dict(out=str(out), resolution=16, batch_size=2, steps=4, workers=0, val_fraction=0.25,
                log_every=1, val_every=100, sample_every=100, checkpoint_every=2, export_to_store=False,
                seed=1, lr_schedule="constant")  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _catalogue(root):
    """One product folder per colour, two solid photos each."""
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((20 + 4 * i, 24, 3), rgb, np.uint8)).save(root / name / f"{i}.png")
    return root


def test_every_optimizer_logs_its_own_learning_rate(photo_dir, tmp_path):
    result = train(ToyTask(ToyOptions(), cfg := _config(tmp_path / "run", data=(str(photo_dir),))), cfg,
                   show_progress=False)  # fmt: skip
    for entry in result.losses:
        assert entry["lr/generator"] == pytest.approx(1e-2) and entry["lr/critic"] == pytest.approx(1e-3)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(line["lr/critic"] == pytest.approx(1e-3) for line in lines if line["group"] == "train")
    shown = postfix(result.losses[-1])
    assert shown["lr/generator"] == "0.01" and shown["lr/critic"] == "0.001"


def test_frozen_modules_stay_out_of_checkpoints_optimizers_and_exports(
    photo_dir, tmp_path, straight_and_resumed
):
    tasks = []

    def run(config):
        tasks.append(ToyTask(ToyOptions(), config))
        return train(tasks[-1], config, show_progress=False)

    def config(out, **kw):
        return _config(out, data=(str(photo_dir),), **kw)

    # the resumed run restores generator, critic and EMA; the task builds the encoder again
    straight, _, saved = straight_and_resumed(run, config, tmp_path)
    assert tasks[0].optimised == ["critic", "generator"]  # the frozen encoder is nobody's parameter
    assert saved and not any("encoder" in key for key in saved)
    assert {k.split(".")[0] for k in saved} == {"generator", "critic", "ema"}
    assert set(load_file(str(straight.weights / "model.safetensors"))) == {"weight", "bias"}


def test_catalogue_captions_travel_with_their_images(tmp_path):
    config = _config(tmp_path / "run", catalogue=str(_catalogue(tmp_path / "shop")), accumulate=2)
    task = ToyTask(ToyOptions(), config)
    train(task, config, show_progress=False)
    assert len(task.captions) >= 8
    for caption, pixel in task.captions:
        assert pixel == COLOURS[caption], (caption, pixel)
    rows = [json.loads(line) for line in (tmp_path / "run" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {r["caption"] for r in rows} == set(COLOURS)


def test_cli_takes_one_data_source(photo_dir, tmp_path, capsys):
    manifest = tmp_path / "rows.jsonl"
    manifest.write_text(json.dumps({"image": str(next(photo_dir.rglob("*.png")))}) + "\n")
    code = cli.main(["inpnet", "--data", str(photo_dir), "--manifest", str(manifest), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == cli.EXIT_ERROR and err.startswith("error: give one of --data, --manifest, --catalogue")
    assert len(err.splitlines()) == 1
    assert cli.main(["inpnet", "--out", str(tmp_path)]) == cli.EXIT_ERROR
    assert "--manifest FILE" in capsys.readouterr().err


def test_given_masks_replace_drawn_ones_only_where_a_row_has_one():
    drawn = torch.ones(2, 1, 4, 4)
    assert with_given_masks({"image": torch.zeros(2, 3, 4, 4)}, drawn) is drawn
    sample = {"mask": torch.zeros(2, 1, 4, 4), "mask_given": torch.tensor([True, False])}
    merged = with_given_masks(sample, drawn)
    assert merged[0].sum() == 0 and torch.equal(merged[1], drawn[1])
