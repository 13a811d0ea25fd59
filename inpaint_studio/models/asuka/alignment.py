"""The ASUKA alignment module: the prior's tokens become the UNet's cross-attention condition.

``Linear(prior_dim -> cond_dim)`` aligns the dimension, a few self-attention blocks align the distribution,
a final LayerNorm; the 256 prior tokens then take the place of SD-1.5's 77 text tokens
(encoder_hidden_states N x 256 x 768). The paper gives the layout, not the block; we use the block of the
released FLUX alignment modules (a parallel attention + MLP "single-stream" block with RMS-normalised
queries and keys, no positional encoding), with the same parameter names less the per-block modulation
layer the release stores but never calls. So the released 768-wide module loads as an initialisation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale (computed in float32)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return x32.to(x.dtype) * self.scale


class QKNorm(nn.Module):
    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.query_norm = RMSNorm(head_dim)
        self.key_norm = RMSNorm(head_dim)


class SingleStreamBlock(nn.Module):
    """``x + linear2(cat(attention, gelu(mlp)))`` where ``linear1(norm(x))`` gives q, k, v and the MLP input."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.mlp_hidden = int(dim * mlp_ratio)
        self.pre_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear1 = nn.Linear(dim, 3 * dim + self.mlp_hidden)
        self.norm = QKNorm(dim // num_heads)
        self.mlp_act = nn.GELU(approximate="tanh")
        self.linear2 = nn.Linear(dim + self.mlp_hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        qkv, mlp = self.linear1(self.pre_norm(x)).split([3 * self.dim, self.mlp_hidden], dim=-1)
        q, k, v = qkv.reshape(n, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.norm.query_norm(q).to(v.dtype), self.norm.key_norm(k).to(v.dtype)
        attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, length, self.dim)
        return x + self.linear2(torch.cat([attn, self.mlp_act(mlp)], dim=-1))


class AlignmentModule(nn.Module):
    """Prior tokens (N, L, prior_dim) -> UNet condition (N, L, cond_dim)."""

    def __init__(
        self,
        prior_dim: int = 512,
        cond_dim: int = 768,
        depth: int = 4,
        head_dim: int = 64,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if cond_dim % head_dim:
            raise ValueError(f"cond_dim {cond_dim} is not a multiple of head_dim {head_dim}")
        self.config: dict[str, Any] = dict(
            prior_dim=prior_dim, cond_dim=cond_dim, depth=depth, head_dim=head_dim, mlp_ratio=mlp_ratio
        )
        self.proj = nn.Linear(prior_dim, cond_dim)
        self.blocks = nn.ModuleList(
            SingleStreamBlock(cond_dim, cond_dim // head_dim, mlp_ratio) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(cond_dim)

    def forward(self, prior: torch.Tensor) -> torch.Tensor:
        x = self.proj(prior)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def from_release_keys(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a released ``nn.Sequential`` alignment state dict (``0.*``, ``1..depth.*``, last LayerNorm)
    to ours; returns the renamed dict and the keys dropped (the unused ``modulation.*``)."""
    indices = sorted({int(k.split(".", 1)[0]) for k in state if k.split(".", 1)[0].isdigit()})
    if not indices or indices[0] != 0 or len(indices) < 2:
        raise ValueError("not an ASUKA alignment state dict: expected keys 0.*, 1.*, ... of an nn.Sequential")
    last = indices[-1]
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if not head.isdigit() or ".modulation." in f".{rest}":
            dropped.append(key)
        elif int(head) == 0:
            out[f"proj.{rest}"] = value
        elif int(head) == last:
            out[f"norm.{rest}"] = value
        else:
            out[f"blocks.{int(head) - 1}.{rest}"] = value
    return out, dropped


def arch_from_state_dict(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Constructor arguments of an alignment module from our key names and shapes (64-wide heads)."""
    cond_dim, prior_dim = state["proj.weight"].shape
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    mlp = state["blocks.0.linear1.weight"].shape[0] - 3 * cond_dim if depth else 4 * cond_dim
    head_dim = state["blocks.0.norm.query_norm.scale"].shape[0] if depth else 64
    return dict(
        prior_dim=prior_dim, cond_dim=cond_dim, depth=depth, head_dim=head_dim, mlp_ratio=mlp / cond_dim
    )
