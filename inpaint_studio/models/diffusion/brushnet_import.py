"""Import the public BrushNet SD-1.5 checkpoints (TencentARC's diffusers fork) into our branch.

Accepted sources:

* the released diffusers-format folder (``segmentation_mask_brushnet_ckpt``,
  ``random_mask_brushnet_ckpt``): ``config.json`` + ``diffusion_pytorch_model.safetensors`` (or a
  ``.bin``, read with the restricted unpickler);
* a single ``.safetensors`` / ``.bin`` file with the fork's keys; the architecture is read off the
  tensor shapes (SD defaults for the normalisation and time embedding). A ``config.json`` beside
  a lone file is not trusted: it may describe something else.

The fork's key names differ from ours only in the BrushNet-specific parts (:data:`FORK_PREFIXES`);
its resnets, samplers and time embedding already carry diffusers' names. SDXL BrushNets (added
time/text embeddings) are refused with a message.

    import_brushnet("random_mask_brushnet_ckpt", store / "mta" / "brushnet-random")
    branch = load_branch(store / "mta" / "brushnet-random")
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from ..bundle import load_bundle, save_bundle
from ..safe_pickle import safe_load
from .brushnet import BranchConfig, BrushBranch

BUNDLE_ENGINE = "mta"
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")

# fork prefix -> our prefix; every other key is the same in both
FORK_PREFIXES = {
    "conv_in_condition.": "conv_in.",
    "brushnet_down_blocks.": "down_injections.",
    "brushnet_mid_block.": "mid_injection.",
    "brushnet_up_blocks.": "up_injections.",
}

# fork config entries that map one to one onto BranchConfig
_CONFIG_FIELDS = {
    "block_out_channels": "block_out_channels",
    "layers_per_block": "layers_per_block",
    "in_channels": "latent_channels",
    "conditioning_channels": "conditioning_channels",
    "norm_num_groups": "norm_num_groups",
    "norm_eps": "norm_eps",
    "act_fn": "act_fn",
    "flip_sin_to_cos": "flip_sin_to_cos",
    "freq_shift": "freq_shift",
    "downsample_padding": "downsample_padding",
    "mid_block_scale_factor": "mid_block_scale_factor",
    "resnet_time_scale_shift": "resnet_time_scale_shift",
    "transformer_layers_per_block": "transformer_layers_per_block",
    "use_linear_projection": "use_linear_projection",
    "upcast_attention": "upcast_attention",
}


class BrushNetImportError(ValueError):
    """The source is not a BrushNet checkpoint we can run."""


def fork_key_to_ours(key: str) -> str:
    for fork, ours in FORK_PREFIXES.items():
        if key.startswith(fork):
            return ours + key[len(fork) :]
    return key


def our_key_to_fork(key: str) -> str:
    for fork, ours in FORK_PREFIXES.items():
        if key.startswith(ours):
            return fork + key[len(ours) :]
    return key


def config_from_fork(fork_config: dict[str, Any]) -> BranchConfig:
    """Our config from the fork's ``config.json``; refuses layouts the branch cannot mirror."""
    if fork_config.get("addition_embed_type") or fork_config.get("class_embed_type"):
        raise BrushNetImportError(
            "SDXL-style BrushNet (added embeddings) is not supported: use an SD-1.5 BrushNet"
        )
    if fork_config.get("brushnet_conditioning_channel_order", "rgb") != "rgb":
        raise BrushNetImportError("BrushNet with bgr conditioning order is not supported")
    kinds = {
        "down_block_types": "DownBlock2D",
        "up_block_types": "UpBlock2D",
    }
    for name, expected in kinds.items():
        found = set(fork_config.get(name, [expected]))
        if found != {expected}:
            raise BrushNetImportError(f"BrushNet {name} {sorted(found)}: only {expected} is supported")
    if fork_config.get("mid_block_type", "MidBlock2D") not in ("MidBlock2D", "UNetMidBlock2D"):
        raise BrushNetImportError(f"BrushNet mid block {fork_config['mid_block_type']} is not supported")
    values = {ours: fork_config[fork] for fork, ours in _CONFIG_FIELDS.items() if fork in fork_config}
    heads = fork_config.get("num_attention_heads") or fork_config.get("attention_head_dim")
    if heads is not None:
        values["attention_heads"] = heads
    return BranchConfig(**values)


def config_from_shapes(state: dict[str, torch.Tensor]) -> BranchConfig:
    """Read the layout off a fork state dict (channels, levels, layers per block, input channels)."""
    levels = sorted({int(m.group(1)) for k in state if (m := re.match(r"down_blocks\.(\d+)\.resnets\.", k))})
    if not levels or "conv_in_condition.weight" not in state:
        raise BrushNetImportError("not a BrushNet checkpoint: conv_in_condition / down_blocks keys missing")
    channels = tuple(state[f"down_blocks.{i}.resnets.0.conv1.weight"].shape[0] for i in levels)
    layers = len({k.split(".")[3] for k in state if k.startswith("down_blocks.0.resnets.")})
    total_in = state["conv_in_condition.weight"].shape[1]
    latent = 4
    return BranchConfig(
        block_out_channels=channels,
        layers_per_block=layers,
        latent_channels=latent,
        conditioning_channels=total_in - latent,
    )


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = safe_load(path)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BrushNetImportError(f"{path}: expected a state dict of tensors")
    return state


def read_brushnet(source: str | Path) -> tuple[BranchConfig, dict[str, torch.Tensor]]:
    """Config and state dict (our key names) of a BrushNet folder or file; nothing is built."""
    source = Path(source)
    if source.is_dir():
        weights = next((source / n for n in WEIGHT_NAMES if (source / n).is_file()), None)
        if weights is None:
            raise BrushNetImportError(f"{source}: no {' or '.join(WEIGHT_NAMES)}: not a BrushNet folder")
        config_file: Path | None = source / "config.json"
    elif source.is_file():
        weights, config_file = source, None
    else:
        raise BrushNetImportError(f"{source} does not exist")
    state = _read_tensors(weights)
    if config_file is not None and config_file.is_file():
        config = config_from_fork(json.loads(config_file.read_text()))
    else:
        config = config_from_shapes(state)
    ours = {fork_key_to_ours(k): v for k, v in state.items()}
    return config, ours


def branch_from_brushnet(source: str | Path, dtype: torch.dtype = torch.float32) -> BrushBranch:
    """Build our branch from a BrushNet checkpoint; every tensor must land (strict)."""
    config, state = read_brushnet(source)
    branch = BrushBranch(config)
    expected = branch.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(map(our_key_to_fork, keys[:3]))}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise BrushNetImportError(f"{source} does not fit the BrushNet layout of its config ({detail})")
    branch.load_state_dict(state, strict=True)
    return branch.to(dtype=dtype).eval()


def import_brushnet(source: str | Path, dest: str | Path) -> Path:
    """Convert a BrushNet checkpoint into a weights folder (our keys, float32 as released)."""
    branch = branch_from_brushnet(source)
    extra = {"kind": "brushnet", "source": Path(source).name}
    return save_bundle(dest, BUNDLE_ENGINE, branch.config.to_dict(), branch.state_dict(), extra)


def load_branch(folder: str | Path, device: str | torch.device = "cpu") -> BrushBranch:
    """Rebuild a branch (imported BrushNet or an MTA export) from its weights folder."""
    bundle = load_bundle(folder, engine=BUNDLE_ENGINE)
    branch = BrushBranch(BranchConfig.from_dict(bundle.arch))
    branch.load_state_dict(bundle.state_dict, strict=True)
    return branch.to(device).eval()
