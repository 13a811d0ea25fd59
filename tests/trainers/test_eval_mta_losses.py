"""``benchmarks/eval_mta_losses.py``'s bookkeeping: paired changes, pooled reports, runs kept apart.

The study itself trains for minutes on ``../shared/data``; these pieces decide what its tables
say, so they are checked on made-up scores.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def study(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # judged_table imports paired.py from beside it
    spec = importlib.util.spec_from_file_location("eval_mta_losses", BENCHMARKS / "eval_mta_losses.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(out: Path, steps: int = 500, images: int = 4, judge_only=()) -> argparse.Namespace:
    return argparse.Namespace(
        out=out, judge_images=images, base="trained", steps=steps, judge_only=list(judge_only)
    )


def _row(table: str, name: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_each_seed_is_paired_with_its_own_noise_only_run(study):
    judged = {
        ("noise only", 0): {"edge_error": [1.0, 1.0]},
        ("noise only", 1): {"edge_error": [2.0, 4.0]},
        ("+ edge head", 0): {"edge_error": [0.9, 0.8]},
        ("+ edge head", 1): {"edge_error": [2.0, 4.0]},
    }
    table = study.judged_table(judged, 2)
    assert "seeds [0, 1]" in table
    name, mean, change = _row(table, "+ edge head")
    assert float(mean) == pytest.approx((0.9 + 0.8 + 2 + 4) / 4)
    # pooled: differences -0.1, -0.2, 0, 0 against a baseline mean of 2.0; two of four lowered
    assert change.startswith("-3.75 % (") and change.endswith(", 50 %")


def test_a_run_scores_its_own_baseline_when_it_has_one(study):
    """The own-extractor measure pairs with the noise-only fills scored by that same extractor."""
    own, on_base = study.OWN, study.OWN + study.ON_BASELINE
    judged = {
        ("noise only", 0): {"edge_error": [1.0]},
        ("+ style loss", 0): {"edge_error": [1.0], own: [3.0], on_base: [4.0]},
    }
    table = study.judged_table(judged, 1)
    header = _row(table, "variant")
    assert on_base not in "".join(header)
    cells = _row(table, "+ style loss")
    assert cells[header.index(own) + 1].startswith("-25.00 %")
    assert _row(table, "noise only")[header.index(own)] == "-"  # it has no extractor of its own


def test_pool_reads_only_this_studys_reports(study, tmp_path, capsys):
    def report(args, seeds, scores):
        name = study.report_name(args, args.judge_only, seeds)
        (tmp_path / name).write_text(json.dumps(scores), encoding="utf-8")

    short, long = _args(tmp_path), _args(tmp_path, steps=5000)
    report(short, [0], {"noise only|0": {"edge_error": [1.0]}, "+ edge head|0": {"edge_error": [0.5]}})
    report(short, [1], {"noise only|1": {"edge_error": [1.0]}, "+ edge head|1": {"edge_error": [0.5]}})
    report(long, [2], {"noise only|2": {"edge_error": [1.0]}, "+ edge head|2": {"edge_error": [9.0]}})
    report(_args(tmp_path, images=40), [3], {"noise only|3": {"edge_error": [1.0]}})
    assert len(set(tmp_path.iterdir())) == 4  # no two reports share a name
    study.pool_stage(short)
    table = capsys.readouterr().out
    assert "seeds [0, 1]" in table
    assert _row(table, "+ edge head")[2].startswith("-50.00 %")


def test_judge_only_keeps_the_baseline(study):
    assert study._wanted("noise only", ["fresh"])
    assert study._wanted("+ style loss, fresh noise", ["fresh"])
    assert not study._wanted("+ style loss, clean x0", ["fresh"])
    assert study._wanted("+ style loss, clean x0", [])


def test_studies_of_other_step_counts_train_in_their_own_folders(study, tmp_path):
    args = argparse.Namespace(
        out=tmp_path, base="trained", val_images=4, judge_images=4, resolution=32, batch_size=2, lr=1e-4
    )
    paths = {"train": tmp_path / "train.jsonl", "val": tmp_path / "val.jsonl"}
    folders = set()
    for steps in (500, 2000):
        args.steps = steps
        folders.add(study._config("noise only", 0, args, paths).out)
    assert len(folders) == 2
