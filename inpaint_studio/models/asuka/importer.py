"""ASUKA parts in and out of weights folders: the released checkpoints, a person's SD VAE, our own exports.

Each part is its own bundle (``models/bundle.py``), so the three trainers can each write theirs:
``asuka-prior`` (the MAE prior), ``asuka-align`` (the alignment module), ``asuka-decoder`` (the decoder).
Pickled release files (``mae_300.pth``, ``asuka_alignment_clip.pt``, ``asuka_decoder.ckpt``) are read with
the restricted unpickler: only tensors and plain containers come out, nothing in them runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..bundle import load_bundle, save_bundle
from ..mae.vit import sincos_pos_embed_2d
from ..safe_pickle import safe_load
from . import alignment as _alignment
from . import decoder as _decoder
from . import prior as _prior
from .alignment import AlignmentModule
from .decoder import SD15_ARCH, AsukaDecoder
from .prior import AsukaPrior

PRIOR_ENGINE = "asuka-prior"
ALIGN_ENGINE = "asuka-align"
DECODER_ENGINE = "asuka-decoder"
PARTS: dict[str, type[nn.Module]] = {
    PRIOR_ENGINE: AsukaPrior,
    ALIGN_ENGINE: AlignmentModule,
    DECODER_ENGINE: AsukaDecoder,
}


class CheckpointError(ValueError):
    """A file is not the ASUKA part it was given as, or does not fit the architecture."""


def _read(source: str | Path) -> Any:
    source = Path(source)
    if not source.is_file():
        raise CheckpointError(f"{source} does not exist")
    if source.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(source))
    return safe_load(source)


def _state_dict(checkpoint: Any, *containers: str) -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint (``{'model': ...}``, ``{'state_dict': ...}`` or bare)."""
    state = checkpoint
    for name in containers:
        if isinstance(state, dict) and isinstance(state.get(name), dict):
            state = state[name]
            break
    if not isinstance(state, dict):
        raise CheckpointError("expected a dict of tensors (or one under 'model' / 'state_dict')")
    tensors = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError("the checkpoint holds no tensors")
    return tensors


def _fit(
    build: Callable[[], nn.Module], state: dict[str, torch.Tensor], what: str
) -> dict[str, torch.Tensor]:
    """Keep the keys the architecture has, check every shape, refuse missing keys."""
    with torch.device("meta"):
        expected = {k: v.shape for k, v in build().state_dict().items()}
    missing = sorted(set(expected) - set(state))
    if missing:
        raise CheckpointError(f"{what}: {len(missing)} weights missing ({', '.join(missing[:3])} ...)")
    for key, shape in expected.items():
        if state[key].shape != shape:
            raise CheckpointError(
                f"{what}: {key} has shape {tuple(state[key].shape)}, expected {tuple(shape)}"
            )
    return {k: state[k].float() if state[k].is_floating_point() else state[k] for k in expected}


# ----------------------------------------------------------------------------- prior
def import_prior(source: str | Path, dest: str | Path, feature_layer: int = 6) -> Path:
    """The released ``mae_300.pth`` (``{'model': state_dict}``) or any checkpoint of that layout -> a bundle.

    The fixed sin-cos position embeddings are rebuilt when a file leaves them out; keys of other heads
    (the official load is non-strict) are dropped and listed in the bundle's config.
    """
    state = _state_dict(_read(source), "model")
    try:
        arch = _prior.arch_from_state_dict(state, feature_layer)
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{Path(source).name}: {err}") from None
    grid = arch["img_size"] // arch["patch_size"]
    for key, dim in (("pos_embed", arch["embed_dim"]), ("decoder_pos_embed", arch["decoder_embed_dim"])):
        state.setdefault(key, sincos_pos_embed_2d(dim, grid, grid))
    if "alpha" in state and state["alpha"].ndim:
        state["alpha"] = state["alpha"].reshape(())
    kept = _fit(lambda: AsukaPrior(**arch), state, Path(source).name)
    extra = {"source": Path(source).name, "dropped_keys": sorted(set(state) - set(kept))[:50]}
    return save_bundle(dest, PRIOR_ENGINE, arch, kept, extra)


def prior_from_mae(mae_state: Mapping[str, torch.Tensor], **arch: Any) -> tuple[AsukaPrior, list[str]]:
    """An ASUKA prior to fine-tune, started from a plain MAE (an official ``mae_pretrain_*`` /
    ``mae_visualize_*`` state dict, or one of our MAE bundles): encoder and decoder blocks are copied, the
    cls token is dropped, the fixed position tables are rebuilt for the prior's grid, and the border
    embedding and alpha start fresh. ``arch`` defaults to the release layout with the MAE's widths and
    depths. Returns the model and the prior's keys that did not come from the MAE."""
    state = {k.removeprefix("module."): v for k, v in mae_state.items()}
    if "patch_embed.proj.weight" not in state or "blocks.0.attn.qkv.weight" not in state:
        raise CheckpointError("not an MAE state dict: patch_embed / blocks missing")
    dim, _, patch, _ = state["patch_embed.proj.weight"].shape
    found = dict(patch_size=patch, embed_dim=dim, num_heads=max(1, dim // 64))
    found["depth"] = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    found["mlp_ratio"] = state["blocks.0.mlp.fc1.weight"].shape[0] / dim
    if "decoder_embed.weight" in state:
        found["decoder_embed_dim"] = state["decoder_embed.weight"].shape[0]
        found["decoder_depth"] = 1 + max(
            int(k.split(".")[1]) for k in state if k.startswith("decoder_blocks.")
        )
    model = AsukaPrior(**{**_prior.RELEASE_ARCH, **found, **arch})
    target = model.state_dict()
    fixed = (
        "pos_embed",
        "decoder_pos_embed",
        "decoder_patch_embed.proj.weight",
        "decoder_patch_embed.proj.bias",
    )
    copied = {k: v for k, v in state.items() if k in target and k not in fixed and v.shape == target[k].shape}
    model.load_state_dict(copied, strict=False)
    return model, sorted(set(target) - set(copied))


# ----------------------------------------------------------------------------- alignment
def import_alignment(source: str | Path, dest: str | Path) -> Path:
    """A released alignment module (``asuka_alignment_clip.pt``: a plain ``nn.Sequential`` state dict) or
    one of ours -> a bundle. The release's unused per-block ``modulation`` weights are dropped."""
    state = _state_dict(_read(source), "state_dict", "model")
    dropped: list[str] = []
    if "proj.weight" not in state:
        try:
            state, dropped = _alignment.from_release_keys(state)
        except ValueError as err:
            raise CheckpointError(f"{Path(source).name}: {err}") from None
    try:
        arch = _alignment.arch_from_state_dict(state)
    except KeyError as err:
        raise CheckpointError(f"{Path(source).name}: not an alignment module ({err} missing)") from None
    kept = _fit(lambda: AlignmentModule(**arch), state, Path(source).name)
    extra = {"source": Path(source).name, "dropped_keys": (dropped + sorted(set(state) - set(kept)))[:50]}
    return save_bundle(dest, ALIGN_ENGINE, arch, kept, extra)


# ----------------------------------------------------------------------------- decoder
def import_decoder(source: str | Path, dest: str | Path) -> Path:
    """An official-layout ASUKA decoder (``{'state_dict': {'decoder.*': ...}}`` as in ``asuka_decoder.ckpt``)
    -> a bundle. The released file is the FLUX variant (16 latent channels): it imports, but only decodes
    FLUX latents; for SD-1.5 start from the person's VAE with :func:`decoder_from_ldm` or ``from_vae``."""
    state = _state_dict(_read(source), "state_dict")
    ours = state if any(k.startswith("condition.") for k in state) else None
    dropped: list[str] = []
    if ours is None:
        try:
            ours, dropped = _decoder.from_official_state(state, levels=_official_levels(state))
        except ValueError as err:
            raise CheckpointError(f"{Path(source).name}: {err}") from None
    arch = _decoder.arch_from_state_dict(ours)
    kept = _fit(lambda: AsukaDecoder(**arch), ours, Path(source).name)
    extra = {"source": Path(source).name, "dropped_keys": dropped[:50]}
    return save_bundle(dest, DECODER_ENGINE, arch, kept, extra)


def _official_levels(state: Mapping[str, torch.Tensor]) -> int:
    prefix = "decoder.up." if any(k.startswith("decoder.up.") for k in state) else "up."
    levels = {k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix)}
    if not levels:
        raise CheckpointError("not an ASUKA decoder: no up.* blocks")
    return len(levels)


def decoder_from_ldm(state: Mapping[str, torch.Tensor], **arch: Any) -> AsukaDecoder:
    """An ASUKA decoder initialised from the VAE decoder inside an LDM-layout SD checkpoint (a whole
    single-file model or a bare VAE file); the condition encoder starts fresh. ``arch`` defaults to SD-1.5."""
    arch = {**SD15_ARCH, **arch}
    converted = _decoder.decoder_state_from_ldm(state, levels=len(arch["block_out_channels"]))
    if not converted:
        raise CheckpointError(
            "no VAE decoder weights (decoder.* / first_stage_model.decoder.*) in the checkpoint"
        )
    model = AsukaDecoder(**arch)
    missing, unexpected = model.load_state_dict(converted, strict=False)
    missing = [k for k in missing if k.startswith("decoder.")]
    if missing or unexpected:
        raise CheckpointError(
            f"the VAE decoder does not fit the architecture: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return model


# ----------------------------------------------------------------------------- our own bundles
def save_part(model: nn.Module, dest: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write a prior, alignment module or decoder (trained or imported) as its bundle."""
    engine = next((e for e, cls in PARTS.items() if isinstance(model, cls)), None)
    if engine is None:
        raise TypeError(f"{type(model).__name__} is not an ASUKA part")
    return save_bundle(dest, engine, dict(model.config), model.state_dict(), extra)


def load_part(folder: str | Path, engine: str | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the part a bundle holds; with ``engine`` given, refuse a bundle of another part."""
    bundle = load_bundle(folder, engine=engine)
    if bundle.engine not in PARTS:
        raise CheckpointError(
            f"{folder} holds '{bundle.engine}' weights, not an ASUKA part ({', '.join(PARTS)})"
        )
    model = PARTS[bundle.engine](**bundle.arch)
    model.load_state_dict(bundle.state_dict, strict=True)
    return model.to(device).eval()
