"""The bidirectional transformer that predicts masked VQGAN tokens (MaskGIT, Chang et al. 2022).

Pre-norm blocks over the image tokens (plus an optional class token) with learned position
embeddings; every position sees every other, so one forward pass scores all masked tokens at
once. Attention runs through ``F.scaled_dot_product_attention``, which picks the fastest kernel
available on CPU and GPU.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import MaskGitConfig


class SelfAttention(nn.Module):
    """Multi-head self-attention with one packed q/k/v projection (rows: q, then k, then v)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class Block(nn.Module):
    """``x + attn(LN(x))`` then ``x + mlp(LN(x))``."""

    def __init__(self, cfg: MaskGitConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.hidden_dim, eps=cfg.norm_eps)
        self.attn = SelfAttention(cfg.hidden_dim, cfg.heads, cfg.dropout)
        self.norm2 = nn.LayerNorm(cfg.hidden_dim, eps=cfg.norm_eps)
        self.mlp = FeedForward(cfg.hidden_dim, cfg.mlp_dim, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Stem(nn.Module):
    """Input MLP after the embeddings: LN, Linear, GELU, LN, Linear (dropout before each Linear)."""

    def __init__(self, cfg: MaskGitConfig) -> None:
        super().__init__()
        dim = cfg.hidden_dim
        self.norm1 = nn.LayerNorm(dim, eps=cfg.io_norm_eps)
        self.fc1 = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.io_norm_eps)
        self.fc2 = nn.Linear(dim, dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.fc1(self.drop(self.norm1(x))))
        return self.fc2(self.drop(self.norm2(x)))


class Head(nn.Module):
    """Output MLP before the logits: LN, Linear, GELU, LN."""

    def __init__(self, cfg: MaskGitConfig) -> None:
        super().__init__()
        dim = cfg.hidden_dim
        self.norm1 = nn.LayerNorm(dim, eps=cfg.io_norm_eps)
        self.fc = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.io_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm2(F.gelu(self.fc(self.drop(self.norm1(x)))))


class MaskGitTransformer(nn.Module):
    """Scores every image position over the codebook given partly masked tokens.

    ``forward(tokens, class_ids)`` takes code ids (B, N) or (B, h, w) with ``config.mask_id`` at
    unknown positions and returns logits (B, N, codebook_size). ``class_ids`` (B,) selects a class
    for class-conditioned models; a negative id (or None) means "no class".
    """

    def __init__(self, config: MaskGitConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = MaskGitConfig(**kwargs)
        elif kwargs:
            raise TypeError("pass either a MaskGitConfig or keyword arguments, not both")
        self.config = cfg = config
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.hidden_dim)
        self.position_embedding = nn.Parameter(torch.zeros(1, cfg.seq_len, cfg.hidden_dim))
        self.stem = Stem(cfg) if cfg.stem else None
        self.embed_drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.head = Head(cfg)
        out_vocab = cfg.vocab_size if cfg.tie_weights else cfg.codebook_size
        self.output = None if cfg.tie_weights else nn.Linear(cfg.hidden_dim, out_vocab, bias=False)
        if cfg.output_bias == "position":
            self.output_bias = nn.Parameter(torch.zeros(cfg.seq_len, out_vocab))
        elif cfg.output_bias == "token":
            self.output_bias = nn.Parameter(torch.zeros(out_vocab))
        else:
            self.register_parameter("output_bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT-style init: truncated normal (std 0.02) weights, zero biases, unit LayerNorms."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.position_embedding, std=0.02)
        if self.output_bias is not None:
            nn.init.zeros_(self.output_bias)

    # ------------------------------------------------------------------ inputs
    def sequence(self, tokens: torch.Tensor, class_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Image tokens (B, N or B, h, w) -> full input ids (B, seq_len), class token appended."""
        cfg = self.config
        ids = tokens.reshape(tokens.shape[0], -1)
        if ids.shape[1] != cfg.num_tokens:
            raise ValueError(
                f"expected {cfg.num_tokens} tokens ({cfg.grid_size}x{cfg.grid_size}), got {ids.shape[1]}"
            )
        if not cfg.has_class_token:
            if class_ids is not None and bool((class_ids >= 0).any()):
                raise ValueError("this MaskGIT model is unconditional: it takes no class ids")
            return ids
        if class_ids is None:
            cls = torch.full((ids.shape[0], 1), cfg.no_class_id, dtype=ids.dtype, device=ids.device)
        else:
            if bool((class_ids >= cfg.num_classes).any()):
                raise ValueError(f"class ids must be < {cfg.num_classes}")
            cls = torch.where(class_ids < 0, cfg.no_class_id, class_ids + cfg.codebook_size + 1)
            cls = cls.to(ids.dtype).view(-1, 1)
        return torch.cat([ids, cls], dim=1)

    # ------------------------------------------------------------------ forward
    def forward_all(self, tokens: torch.Tensor, class_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Logits at every sequence position over the whole output vocabulary (B, seq_len, V)."""
        x = self.token_embedding(self.sequence(tokens, class_ids)) + self.position_embedding
        x = self.stem(x) if self.stem is not None else self.embed_drop(x)
        for block in self.blocks:
            x = block(x)
        x = self.head(x)
        logits = x @ self.token_embedding.weight.t() if self.output is None else self.output(x)
        if self.output_bias is not None:
            logits = logits + self.output_bias
        return logits

    def forward(self, tokens: torch.Tensor, class_ids: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        return self.forward_all(tokens, class_ids)[:, : cfg.num_tokens, : cfg.codebook_size]
