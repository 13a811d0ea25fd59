"""Import valeoai/Maskgit-pytorch v1.0 transformer checkpoints (``MaskGIT_ImageNet_256.pth``).

The ``.pth`` is a pickled dict ``{'iter', 'global_epoch', 'model_state_dict', 'optimizer_state_dict'}``;
it is read through :mod:`models.safe_pickle`. The layout equals ours up to key names (see
:func:`rename_valeoai_key`). Shapes do not reveal the number of attention heads: the released
models use 16, which is the default here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ..safe_pickle import safe_load
from .config import MaskGitConfig
from .transformer import MaskGitTransformer

RELEASED_HEADS = 16

_FIXED = {
    "tok_emb.weight": "token_embedding.weight",
    "pos_emb": "position_embedding",
    "bias": "output_bias",
}
_SEQUENTIAL = {
    "first_layer": ("stem", {0: "norm1", 2: "fc1", 4: "norm2", 6: "fc2"}),
    "last_layer": ("head", {0: "norm1", 2: "fc", 4: "norm2"}),
}
_LAYER = {
    "0.norm": "norm1",
    "0.fn.mha.out_proj": "attn.proj",
    "1.norm": "norm2",
    "1.fn.net.0": "mlp.fc1",
    "1.fn.net.3": "mlp.fc2",
}


class MaskGitImportError(ValueError):
    """The file is not a MaskGIT transformer checkpoint this app can run."""


def rename_valeoai_key(key: str) -> str:
    """valeoai v1.0 state-dict key -> ours; raises for keys that have no counterpart."""
    if key in _FIXED:
        return _FIXED[key]
    m = re.fullmatch(r"(first_layer|last_layer)\.(\d+)\.(weight|bias)", key)
    if m and int(m.group(2)) in _SEQUENTIAL[m.group(1)][1]:
        module, names = _SEQUENTIAL[m.group(1)]
        return f"{module}.{names[int(m.group(2))]}.{m.group(3)}"
    m = re.fullmatch(r"transformer\.layers\.(\d+)\.(.+)\.(weight|bias)", key)
    if m:
        i, inner, kind = m.groups()
        if inner in _LAYER:
            return f"blocks.{i}.{_LAYER[inner]}.{kind}"
    m = re.fullmatch(r"transformer\.layers\.(\d+)\.0\.fn\.mha\.in_proj_(weight|bias)", key)
    if m:  # torch MultiheadAttention packs q, k, v row-wise exactly like our qkv Linear
        return f"blocks.{m.group(1)}.attn.qkv.{m.group(2)}"
    raise MaskGitImportError(f"unexpected key {key!r} in a valeoai MaskGIT state dict")


def convert_valeoai_state(
    state: Mapping[str, torch.Tensor], codebook_size: int = 1024, heads: int = RELEASED_HEADS
) -> tuple[MaskGitConfig, dict[str, torch.Tensor]]:
    """Config and renamed state dict from a valeoai ``model_state_dict``."""
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    try:
        emb, pos = state["tok_emb.weight"], state["pos_emb"]
    except KeyError as err:
        raise MaskGitImportError(f"missing {err.args[0]}: not a valeoai MaskGIT transformer") from None
    vocab, hidden = emb.shape
    num_tokens = pos.shape[1] - 1
    grid = math.isqrt(num_tokens)
    if grid * grid != num_tokens:
        raise MaskGitImportError(f"{num_tokens} image positions do not form a square grid")
    num_classes = vocab - codebook_size - 2
    if num_classes < 1:
        raise MaskGitImportError(
            f"vocabulary {vocab} is too small for a codebook of {codebook_size} plus classes"
        )
    depth = len({int(m.group(1)) for k in state if (m := re.match(r"transformer\.layers\.(\d+)\.", k))})
    config = MaskGitConfig.valeoai(
        codebook_size=codebook_size,
        grid_size=grid,
        hidden_dim=hidden,
        depth=depth,
        heads=heads,
        mlp_dim=state["transformer.layers.0.1.fn.net.0.weight"].shape[0],
        num_classes=num_classes,
    )
    renamed = {rename_valeoai_key(k): v for k, v in state.items()}
    expected = _expected_shapes(config)
    bad = sorted(k for k in expected if k not in renamed or tuple(renamed[k].shape) != expected[k])
    extra = sorted(set(renamed) - set(expected))
    if bad or extra:
        raise MaskGitImportError(
            f"checkpoint does not match the inferred transformer (mismatched: {bad[:4]}, extra: {extra[:4]})"
        )
    return config, renamed


def read_valeoai_checkpoint(
    path: str | Path, codebook_size: int = 1024, heads: int = RELEASED_HEADS
) -> tuple[MaskGitConfig, dict[str, torch.Tensor]]:
    """Read a valeoai ``.pth`` (training checkpoint or bare state dict) safely and convert it."""
    obj = safe_load(Path(path))
    if isinstance(obj, Mapping) and isinstance(obj.get("model_state_dict"), Mapping):
        obj = obj["model_state_dict"]
    if not isinstance(obj, Mapping):
        raise MaskGitImportError(f"{path} holds no state dict")
    return convert_valeoai_state(obj, codebook_size, heads)


def _expected_shapes(config: MaskGitConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = MaskGitTransformer(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
