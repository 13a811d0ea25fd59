"""Read public taming-transformers VQGAN checkpoints (``last.ckpt``) without running their code.

The file is a PyTorch-Lightning pickle: a dict whose ``state_dict`` holds the autoencoder plus
``loss.*`` (LPIPS and discriminator). It is read through :mod:`models.safe_pickle`, the
autoencoder tensors are kept and the architecture is inferred from their shapes, so no
``model.yaml`` is needed (if one lies beside the file, its ``resolution`` is used).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ..safe_pickle import safe_load
from .config import VQGANConfig
from .model import VQGAN, autoencoder_state

DEFAULT_RESOLUTION = 256  # only labels the config: attention placement is inferred per level


class TamingImportError(ValueError):
    """The file is not a taming VQGAN checkpoint this app can run."""


def read_taming_checkpoint(
    path: str | Path, resolution: int | None = None
) -> tuple[VQGANConfig, dict[str, torch.Tensor]]:
    """Config and autoencoder state dict (taming key names) of a taming ``.ckpt``."""
    path = Path(path)
    obj = safe_load(path)
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise TamingImportError(f"{path} holds no state dict: not a taming VQGAN checkpoint")
    tensors = autoencoder_state({k: v for k, v in state.items() if isinstance(v, torch.Tensor)})
    if resolution is None:
        resolution = _yaml_resolution(path.parent) or DEFAULT_RESOLUTION
    config = infer_config(tensors, resolution)
    check_state(config, tensors, str(path))
    return config, tensors


def infer_config(state: Mapping[str, torch.Tensor], resolution: int = DEFAULT_RESOLUTION) -> VQGANConfig:
    """Rebuild the ddconfig from tensor shapes (taming key names)."""
    try:
        conv_in = state["encoder.conv_in.weight"]
        codebook = state["quantize.embedding.weight"]
        enc_out = state["encoder.conv_out.weight"]
        dec_in = state["decoder.conv_in.weight"]
        dec_out = state["decoder.conv_out.weight"]
    except KeyError as err:
        raise TamingImportError(
            f"missing {err.args[0]}: not a taming VQGAN (VectorQuantizer) state dict"
        ) from None
    ch = conv_in.shape[0]
    levels = sorted({int(m.group(1)) for k in state if (m := re.match(r"encoder\.down\.(\d+)\.", k))})
    if not levels:
        raise TamingImportError("no encoder.down.* levels found")
    ch_mult = [state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch for i in levels]
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k))}
    attn = [resolution // 2**i for i in levels if f"encoder.down.{i}.attn.0.q.weight" in state]
    z_channels = dec_in.shape[1]
    return VQGANConfig(
        ch=ch,
        ch_mult=tuple(ch_mult),
        num_res_blocks=len(blocks),
        attn_resolutions=tuple(attn),
        z_channels=z_channels,
        resolution=resolution,
        in_channels=conv_in.shape[1],
        out_ch=dec_out.shape[0],
        double_z=enc_out.shape[0] == 2 * z_channels,
        n_embed=codebook.shape[0],
        embed_dim=codebook.shape[1],
    )


def check_state(config: VQGANConfig, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise with the differing keys unless ``state`` loads exactly into ``VQGAN(config)``."""
    with torch.device("meta"):
        model = VQGAN(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or extra or wrong:
        parts = [
            f"{name}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
            for name, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong))
            if keys
        ]
        raise TamingImportError(f"{source} does not match the inferred VQGAN ({'; '.join(parts)})")


def _yaml_resolution(folder: Path) -> int | None:
    """``resolution:`` from a taming ``model.yaml`` beside the checkpoint (no YAML parser needed)."""
    for name in ("model.yaml", "config.yaml"):
        file = folder / name
        if file.is_file():
            match = re.search(
                r"^\s*resolution:\s*(\d+)", file.read_text(encoding="utf-8", errors="replace"), re.M
            )
            if match:
                return int(match.group(1))
    return None
