"""Resumable checkpoints without arbitrary pickles.

A checkpoint is a folder ``<run>/checkpoints/step-NNNNNNN/`` holding
  ``weights.safetensors``  every module's state (``<module>.<key>``) and EMA copies (``ema.<module>.<key>``);
  ``training.pt``          optimizer / scheduler / loss-scaler states and torch RNG states, written with
                           ``torch.save`` and read back ONLY with ``torch.load(weights_only=True)``;
  ``state.json``           step, epoch, options, task state, Python / numpy / mask RNG states.
Folders are written under a temporary name and renamed, so a crash never leaves a half checkpoint
that ``--resume`` would pick up.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "weights.safetensors"
TRAINING = "training.pt"
STATE = "state.json"
PREFIX = "step-"


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, or does not fit the model."""


@dataclass
class Checkpoint:
    path: Path
    tensors: dict[str, torch.Tensor]
    training: dict[str, Any]
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])

    def module_state(self, name: str, ema: bool = False) -> dict[str, torch.Tensor]:
        prefix = f"ema.{name}." if ema else f"{name}."
        return {k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)}


def save(
    folder: Path,
    step: int,
    modules: dict[str, torch.nn.Module],
    emas: dict[str, torch.nn.Module],
    training: dict[str, Any],
    state: dict[str, Any],
) -> Path:
    """Write ``folder/step-NNNNNNN`` atomically and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{PREFIX}{step:07d}"
    tmp = folder / f".tmp-{PREFIX}{step:07d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    tensors = _unshared(
        (f"{prefix}{name}.{key}", value)
        for prefix, group in (("", modules), ("ema.", emas))
        for name, module in group.items()
        for key, value in module.state_dict().items()
    )
    save_file(tensors, str(tmp / WEIGHTS), metadata={"step": str(step)})
    torch.save(training, tmp / TRAINING)
    (tmp / STATE).write_text(json.dumps({**state, "step": step}, indent=2, sort_keys=True), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _unshared(items: Iterable[tuple[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """CPU tensors for safetensors, copied only where two share memory (which it refuses, e.g. tied
    weights): copying every tensor held a second copy of the weights while a big run saved, enough
    to run a 24 GB machine out of memory at the last checkpoint."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in items:
        tensor = value.detach().to("cpu").contiguous()
        storage = tensor.untyped_storage()
        if storage.data_ptr() in seen or tensor.nbytes != storage.nbytes():
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        out[key] = tensor
    return out


def resolve(path: str | Path) -> Path:
    """A checkpoint folder, or the newest one inside a run folder / its ``checkpoints``."""
    path = Path(path).expanduser()
    if (path / STATE).is_file():
        return path
    for folder in (path / "checkpoints", path):
        if folder.is_dir():
            found = sorted(p for p in folder.glob(f"{PREFIX}*") if (p / STATE).is_file())
            if found:
                return found[-1]
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    raise CheckpointError(f"{path} holds no checkpoint (looked for {STATE} and checkpoints/{PREFIX}*)")


def read_state(path: str | Path) -> dict[str, Any]:
    """Only the JSON part (cheap: the CLI reads the saved options from it)."""
    folder = resolve(path)
    try:
        return json.loads((folder / STATE).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{folder / STATE} is not valid JSON ({err.msg})") from None


def load(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    folder = resolve(path)
    for name in (WEIGHTS, TRAINING, STATE):
        if not (folder / name).is_file():
            raise CheckpointError(f"checkpoint {folder} is incomplete: {name} is missing")
    tensors = load_file(str(folder / WEIGHTS), device=str(device))
    training = torch.load(folder / TRAINING, map_location=device, weights_only=True)
    return Checkpoint(folder, tensors, training, read_state(folder))


def prune(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    found = sorted(p for p in folder.glob(f"{PREFIX}*") if p.is_dir())
    for old in found[:-keep] if keep > 0 else found:
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------ RNG
def rng_state_json() -> dict[str, Any]:
    """Python and numpy (global) RNG states as JSON-able values. (Masks need none: the loop draws
    them from a generator seeded by (seed, rank, step).)"""
    py = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }


def restore_rng_json(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def torch_rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_torch_rng(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["cpu"].cpu())
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])
