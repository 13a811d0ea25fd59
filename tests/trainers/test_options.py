"""Each task's options live with the task: the CLI shows them under its subcommand only, and every
documented command line still parses."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from trainers import checkpoint, cli
from trainers.config import TrainConfig


def _groups(model: str) -> dict[str, set[str]]:
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {g.title: {a.dest for a in g._group_actions} for g in subs.choices[model]._action_groups}


def test_model_specific_options_are_not_shared_ones():
    shared = {f.name for f in dataclasses.fields(TrainConfig)}
    assert not shared & {"vgg_weights", "mask_dir"}
    mat = _groups("mat")
    assert {"vgg_weights", "mask_dir", "preset"} <= mat["mat options"]
    assert "vgg_weights" not in _groups("maskgit")["maskgit options"]  # stage 2 has no perceptual loss
    assert "mask_dir" not in _groups("maskgit-vqgan")["maskgit-vqgan options"]  # nor stage 1 holes
    assert {"data", "manifest", "catalogue"} <= mat["training options (every model)"]


@pytest.mark.parametrize(
    "line",
    [
        "mat --preset small --data ~/photos --resolution 256 --lr-schedule constant",
        "mat --init-from Places_512_FullData.pkl --data ~/photos --resolution 512 --vgg-weights v.pth",
        "maskgit --vqgan RUN/weights --data ~/photos --resolution 64 --mask-dir masks",
        "inpnet --manifest rows.jsonl --steps 2000 --resolution 128 --mask-dir masks",
        "maskgit-vqgan --catalogue shop --resolution 64 --vgg-weights v.pth",
    ],
)
def test_documented_command_lines_still_parse(line):
    model, *rest = line.split()
    args = vars(cli.build_parser().parse_args(line.split()))
    args.pop("model"), args.pop("config", None)
    config, options = cli.resolve_options(model, args, None)
    assert config.has_data
    for flag, value in zip(rest, rest[1:], strict=False):
        name = flag[2:].replace("-", "_")
        if name in ("vgg_weights", "mask_dir", "vqgan", "preset"):
            assert getattr(options, name) == value


def test_a_checkpoint_from_before_the_move_resumes_with_its_options(tmp_path):
    folder = tmp_path / "checkpoints" / f"{checkpoint.PREFIX}0000002"
    folder.mkdir(parents=True)
    saved = {
        "model": "inpnet",
        "step": 2,
        "train": {"data": ["photos"], "vgg_weights": "v.pth", "mask_dir": "m"},
    }
    (folder / checkpoint.STATE).write_text(json.dumps({**saved, "model_options": {"depth": 3}}))
    config, options = cli.resolve_options("inpnet", {"resume": str(tmp_path)}, None)
    assert config.data == ("photos",) and (options.vgg_weights, options.mask_dir, options.depth) == (
        "v.pth",
        "m",
        3,
    )


def _choice_fields() -> list[tuple[type, str, tuple]]:
    from trainers.tasks import TASKS, task_class

    classes = [TrainConfig] + list(dict.fromkeys(task_class(m).Options for m in TASKS))
    return [
        (cls, f.name, f.metadata["choices"])
        for cls in classes
        for f in dataclasses.fields(cls)
        if f.metadata.get("choices") is not None
    ]


def test_every_option_with_choices_refuses_another_value_when_built_in_code():
    """The CLI checks choices while parsing; options built in code (a config file merged, a resumed
    checkpoint, a script) must refuse the same values, with the same message, before any work."""
    fields = _choice_fields()
    assert {name for _, name, _ in fields} >= {
        "lr_schedule",
        "preset",
        "style_latents",
        "gan_loss",
        "schedule",
    }
    for cls, name, allowed in fields:
        default = cls(data=("photos",)) if cls is TrainConfig else cls()
        for good in allowed:  # every listed value is accepted
            dataclasses.replace(default, **{name: good})
        flag = name.replace("_", "-")
        with pytest.raises(ValueError, match=f"{flag} must be one of {', '.join(map(str, allowed))}"):
            dataclasses.replace(default, **{name: "no-such-choice"})
