"""Configuration of the bidirectional MaskGIT transformer and its token conventions.

Token ids (the valeoai port's layout, so its checkpoints load by renaming keys only):
``0 .. codebook_size-1`` image codes, ``codebook_size`` the mask token, then (class-conditioned
models only) ``codebook_size + 1 + label`` class tokens and ``codebook_size + 1 + num_classes``
the "no class" token used for unconditional fills. The sequence is the image grid row-major,
followed by the class token when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..config_io import SavedConfig

OutputBias = Literal["position", "token", "none"]


@dataclass(frozen=True)
class MaskGitConfig(SavedConfig):
    """Shape of the transformer.

    ``grid_size``: token grid side (16 for 256 px with an f16 VQGAN). ``num_classes`` 0 makes an
    unconditional model (no class token). ``tie_weights``: logits are the head's features times
    the token-embedding matrix (plus ``output_bias``: one bias per position and vocabulary entry as
    in valeoai, per entry only, or none); otherwise a separate output layer over the codebook.
    ``stem``: the valeoai input MLP (LN, Linear, GELU, LN, Linear) before the blocks.
    ``io_norm_eps`` is the LayerNorm eps of stem and head, ``norm_eps`` that of the blocks.
    """

    codebook_size: int = 1024
    grid_size: int = 16
    hidden_dim: int = 768
    depth: int = 24
    heads: int = 16
    mlp_dim: int = 3072
    dropout: float = 0.1
    num_classes: int = 0
    tie_weights: bool = True
    output_bias: OutputBias = "position"
    stem: bool = True
    norm_eps: float = 1e-5
    io_norm_eps: float = 1e-12

    config_name = "MaskGIT"

    def __post_init__(self) -> None:
        for name in ("codebook_size", "grid_size", "hidden_dim", "depth", "heads", "mlp_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_dim % self.heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} must be divisible by heads {self.heads}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.output_bias not in ("position", "token", "none"):
            raise ValueError(f"output_bias must be 'position', 'token' or 'none', got {self.output_bias!r}")

    # ------------------------------------------------------------------ token layout
    @property
    def num_tokens(self) -> int:
        """Image tokens per sequence."""
        return self.grid_size * self.grid_size

    @property
    def has_class_token(self) -> bool:
        return self.num_classes > 0

    @property
    def seq_len(self) -> int:
        return self.num_tokens + (1 if self.has_class_token else 0)

    @property
    def mask_id(self) -> int:
        return self.codebook_size

    @property
    def vocab_size(self) -> int:
        extra = self.num_classes + 1 if self.has_class_token else 0
        return self.codebook_size + 1 + extra

    @property
    def no_class_id(self) -> int:
        """Token id of the dropped ("unconditional") class."""
        if not self.has_class_token:
            raise ValueError("this model has no class token")
        return self.codebook_size + 1 + self.num_classes

    def class_token_id(self, label: int) -> int:
        if not 0 <= label < self.num_classes:
            raise ValueError(f"class label must lie in [0, {self.num_classes}), got {label}")
        return self.codebook_size + 1 + label

    @classmethod
    def valeoai(cls, **overrides: Any) -> MaskGitConfig:
        """The valeoai v1.0 layout (class token, per-position output bias, stem, eps 1e-12)."""
        base = dict(num_classes=1000, tie_weights=True, output_bias="position", stem=True)
        base.update(overrides)
        return cls(**base)
