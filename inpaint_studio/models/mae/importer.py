"""Import an official MAE checkpoint (``torch.save({'model': state_dict, ...})``) as a weights folder.

The file is read with the restricted unpickler (``models/safe_pickle.py``): only tensors and plain
containers come out, nothing in it runs. The architecture is read off the tensor shapes. The
pre-training release files may hold the encoder only; such a bundle records ``has_decoder: false``
and :func:`load_mae` then loads it non-strictly (the decoder keeps its initialisation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..bundle import load_bundle, save_bundle
from ..safe_pickle import safe_load
from .mae import MaskedAutoencoderViT, arch_from_state_dict

BUNDLE_ENGINE = "mae"
_ENCODER_KEYS = ("patch_embed.proj.weight", "pos_embed", "cls_token", "norm.weight")


def official_state_dict(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The ``model`` state dict of an official checkpoint (also accepts a bare state dict)."""
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("not an MAE checkpoint: expected a dict with a 'model' state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing = [k for k in _ENCODER_KEYS if k not in state]
    if missing:
        raise ValueError(f"not an MAE checkpoint: {', '.join(missing)} missing")
    return state


def import_mae(source: str | Path, dest: str | Path, arch_overrides: dict[str, Any] | None = None) -> Path:
    """Convert ``source`` (.pth) into a bundle folder at ``dest``; returns ``dest``."""
    state = official_state_dict(safe_load(source))
    arch = {**arch_from_state_dict(state), **(arch_overrides or {})}
    has_decoder = "decoder_pred.weight" in state
    model = MaskedAutoencoderViT(**arch)
    known = model.state_dict()
    kept = {k: v for k, v in state.items() if k in known}
    for key, value in kept.items():
        if value.shape != known[key].shape:
            raise ValueError(f"{key} has shape {tuple(value.shape)}, expected {tuple(known[key].shape)}")
    dropped = sorted(set(state) - set(kept))
    extra = {"has_decoder": has_decoder, "source": Path(source).name, "dropped_keys": dropped[:50]}
    return save_bundle(dest, BUNDLE_ENGINE, arch, kept, extra)


def load_mae(folder: str | Path, device: str | torch.device = "cpu") -> MaskedAutoencoderViT:
    """Rebuild an imported (or exported) MAE; encoder-only bundles keep an initialised decoder."""
    bundle = load_bundle(folder, engine=BUNDLE_ENGINE)
    model = MaskedAutoencoderViT(**bundle.arch)
    strict = bool(bundle.extra.get("has_decoder", True))
    result = model.load_state_dict(bundle.state_dict, strict=strict)
    if not strict and any(not k.startswith(("decoder", "mask_token")) for k in result.missing_keys):
        raise ValueError(f"{folder}: encoder weights missing ({', '.join(result.missing_keys[:3])} ...)")
    return model.to(device).eval()
