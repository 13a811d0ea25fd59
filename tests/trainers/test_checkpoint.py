"""Checkpoints: safetensors + JSON + a weights-only torch file; atomic, resolvable, prunable."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest
import torch

from trainers import checkpoint


def _save(folder, step, net):
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    net(torch.randn(2, 3)).sum().backward()
    opt.step()
    training = {"optimizers": {"main": opt.state_dict()}, "rng": checkpoint.torch_rng_states()}
    state = {"model": "toy", "rng": checkpoint.rng_state_json()}
    return checkpoint.save(folder, step, {"net": net}, {"net": net}, training, state), opt


def test_round_trip(tmp_path):
    net = torch.nn.Linear(3, 2)
    path, opt = _save(tmp_path / "checkpoints", 7, net)
    assert sorted(p.name for p in path.iterdir()) == ["state.json", "training.pt", "weights.safetensors"]
    ck = checkpoint.load(path)
    assert ck.step == 7 and ck.state["model"] == "toy"
    assert torch.equal(ck.module_state("net")["weight"], net.weight)
    assert torch.equal(ck.module_state("net", ema=True)["bias"], net.bias)
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), 1e-3)
    opt2.load_state_dict(ck.training["optimizers"]["main"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_rng_states_restore(tmp_path):
    import random

    path, _ = _save(tmp_path, 1, torch.nn.Linear(3, 2))
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    ck = checkpoint.load(path)
    checkpoint.restore_rng_json(ck.state["rng"])
    checkpoint.restore_torch_rng(ck.training["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_resolve_finds_the_newest_checkpoint_and_prune_keeps_the_last(tmp_path):
    run = tmp_path / "run"
    for step in (5, 10, 15):
        _save(run / "checkpoints", step, torch.nn.Linear(3, 2))
    (run / "checkpoints" / ".tmp-step-0000020-1").mkdir()  # a crashed write is never picked up
    assert checkpoint.resolve(run).name == "step-0000015"
    checkpoint.prune(run / "checkpoints", 2)
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == ["step-0000010", "step-0000015"]
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.resolve(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(checkpoint.CheckpointError, match="holds no checkpoint"):
        checkpoint.resolve(tmp_path / "empty")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_training_state_with_code_in_it_is_refused(tmp_path):
    path, _ = _save(tmp_path, 3, torch.nn.Linear(3, 2))
    torch.save({"optimizers": {}, "rng": {}, "payload": _Evil()}, path / "training.pt")
    with pytest.raises(pickle.UnpicklingError):
        checkpoint.load(path)
    assert zipfile.is_zipfile(path / "training.pt")


def test_incomplete_checkpoint_is_reported(tmp_path):
    path, _ = _save(tmp_path, 2, torch.nn.Linear(3, 2))
    (path / "weights.safetensors").unlink()
    with pytest.raises(checkpoint.CheckpointError, match="incomplete"):
        checkpoint.load(path)


def test_save_copies_only_tensors_that_share_memory(tmp_path, monkeypatch):
    """A second copy of every weight while a big run saved ran a 24 GB machine out of memory."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3))
    net[1].weight = net[0].weight  # tied weights: two names, one memory
    written = {}
    real = checkpoint.save_file

    def spy(tensors, filename, metadata=None):
        written.update(tensors)
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_file", spy)
    path = checkpoint.save(tmp_path, 1, {"net": net}, {"ema": net}, {}, {})
    assert written["net.0.bias"].data_ptr() == net[0].bias.data_ptr()  # written in place, not copied
    assert written["net.0.weight"].data_ptr() == net[0].weight.data_ptr()
    assert written["net.1.weight"].data_ptr() != net[0].weight.data_ptr()  # shared: copied
    assert written["ema.ema.0.bias"].data_ptr() != net[0].bias.data_ptr()  # the same module twice
    ck = checkpoint.load(path)
    for key, value in net.state_dict().items():
        assert torch.equal(ck.module_state("net")[key], value)
        assert torch.equal(ck.module_state("ema", ema=True)[key], value)
