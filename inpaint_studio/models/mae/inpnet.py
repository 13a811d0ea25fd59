"""InP-Net: a ViT over the visible patches, skip connections, and a light convolutional decoder.

After Aditya et al.'s InP-Net, in our own reading:

* patch embedding (+ learnable position embeddings) of the masked image; the pixel hole mask can
  ride along as a 4th input channel so that a patch that is only partly a hole still says which
  of its pixels are missing;
* a ViT encoder that sees the VISIBLE patches only (any drop ratio from 0 to 90 % and more; with
  nothing dropped the network reconstructs the whole image, the paper's restoration mode);
* a short "bridge" of transformer blocks over all positions, with a learned mask token at the
  dropped ones, so information can reach the middle of a large hole (``bridge_depth=0`` leaves
  only the convolutional decoder to spread it);
* a light convolutional decoder: one x2 transposed-conv stage per halving of the patch size,
  BatchNorm + ReLU, residual blocks; intermediate encoder layers are routed to its stages
  (``skip_layers``) and the masked image itself to its last stage (``image_skip``) and, downscaled,
  to the earlier stages too (``image_pyramid``: fine strokes need pixels, not just patch tokens);
* the full image comes out, in the same [-1, 1] space the image went in.

``prefill="pullpush"`` (our addition, off in the paper's form) fills the hole pixels of the input
with a pull-push average of the known pixels around them (a mask-weighted image pyramid) instead
of zeros, so the full-resolution path starts from a smooth guess: thin strokes then only need a
correction, and the encoder still sees the visible patches only. ``residual=True`` (also ours) makes
that literal: the head predicts a correction added to the prefilled image, and starts at zero, so
an untrained or freshly fine-tuned network begins as the pull-push fill and training can only
add to it.

The paper's variants are configuration (see ``trainers/tasks/inpnet.py`` for the presets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config_io import SavedConfig
from .vit import Block, PatchEmbed, init_vit_weights


@dataclass(frozen=True)
class InpNetConfig(SavedConfig):
    """Architecture of one InP-Net; ``asdict`` of it is the ``arch`` of an exported bundle."""

    img_size: int = 128  # training resolution (position embeddings are resized for other sizes)
    patch_size: int = 8  # must be a power of two: the decoder doubles resolution log2(p) times
    mask_channel: bool = True  # feed the pixel hole mask as a 4th channel
    embed_dim: int = 192
    depth: int = 6
    num_heads: int = 3
    mlp_ratio: float = 4.0
    skip_layers: tuple[int, ...] = (4, 2)  # encoder block numbers (1-based) feeding decoder stages 0, 1, ...
    bridge_dim: int = 128
    bridge_depth: int = 2
    bridge_heads: int = 4
    decoder_channels: tuple[int, ...] = (128, 64, 32)  # one per x2 stage: len == log2(patch_size)
    decoder_res_blocks: int = 1
    image_skip: bool = True
    image_pyramid: bool = False  # also feed the downscaled masked image to every earlier stage
    prefill: str = "zero"  # what hole pixels hold at the input: "zero" (paper) or "pullpush"
    residual: bool = False  # the head adds a correction to the prefilled image (starts at zero)
    norm_eps: float = 1e-6
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False, metadata={"saved": False})

    config_name = "InP-Net"

    def __post_init__(self) -> None:
        p = self.patch_size
        if p < 2 or p & (p - 1):
            raise ValueError(f"patch_size must be a power of two >= 2, got {p}")
        if self.img_size % p:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {p}")
        if len(self.decoder_channels) != int(math.log2(p)):
            raise ValueError(
                f"decoder_channels needs {int(math.log2(p))} entries for patch_size {p} "
                f"(one per x2 stage), got {len(self.decoder_channels)}"
            )
        if self.embed_dim % self.num_heads or self.bridge_dim % self.bridge_heads:
            raise ValueError("embed_dim / bridge_dim must be divisible by their head counts")
        if len(self.skip_layers) > len(self.decoder_channels):
            raise ValueError(f"at most {len(self.decoder_channels)} skip layers (one per decoder stage)")
        for layer in self.skip_layers:
            if not 1 <= layer <= self.depth:
                raise ValueError(f"skip layer {layer} is outside the encoder's 1..{self.depth} blocks")
        if self.prefill not in ("zero", "pullpush"):
            raise ValueError(f"prefill must be zero or pullpush, not {self.prefill!r}")
        if self.depth < 1 or self.bridge_depth < 0 or self.decoder_res_blocks < 0:
            raise ValueError("depth must be >= 1; bridge_depth and decoder_res_blocks >= 0")


class ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


class DecoderStage(nn.Module):
    """x2 transposed conv (kernel 4, stride 2: even overlap, no checkerboard) + BN + ReLU + res blocks."""

    def __init__(
        self, cin: int, cout: int, res_blocks: int, skip_dim: int | None, image_ch: int | None = None
    ) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.skip = nn.Conv2d(skip_dim, cout, 1) if skip_dim else None
        self.image = nn.Conv2d(image_ch, cout, 3, padding=1) if image_ch else None
        if self.image is not None:  # starts as a no-op, so weights trained without it still fit
            nn.init.zeros_(self.image.weight)
            nn.init.zeros_(self.image.bias)
        self.blocks = nn.Sequential(*(ResBlock(cout) for _ in range(res_blocks)))

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, image: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = F.relu(self.bn(self.up(x)))
        if self.skip is not None and skip is not None:
            x = x + F.interpolate(self.skip(skip), size=x.shape[-2:], mode="nearest")
        if self.image is not None and image is not None:
            x = x + self.image(F.adaptive_avg_pool2d(image, x.shape[-2:]))
        return self.blocks(x)


class InpNet(nn.Module):
    def __init__(self, **arch: Any) -> None:
        super().__init__()
        cfg = InpNetConfig.from_dict(arch)
        self.cfg = cfg
        p, dim = cfg.patch_size, cfg.embed_dim
        self.grid = cfg.img_size // p
        in_ch = 4 if cfg.mask_channel else 3
        self.patch_embed = PatchEmbed(p, in_ch, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid, dim))
        self.blocks = nn.ModuleList(
            Block(dim, cfg.num_heads, cfg.mlp_ratio, cfg.norm_eps) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(dim, eps=cfg.norm_eps)

        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.bridge_embed = nn.Linear(dim, cfg.bridge_dim)
        self.bridge_pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid, cfg.bridge_dim))
        self.bridge = nn.ModuleList(
            Block(cfg.bridge_dim, cfg.bridge_heads, cfg.mlp_ratio, cfg.norm_eps)
            for _ in range(cfg.bridge_depth)
        )
        self.bridge_norm = nn.LayerNorm(cfg.bridge_dim, eps=cfg.norm_eps)

        stages, cin = [], cfg.bridge_dim
        for i, cout in enumerate(cfg.decoder_channels):
            skip_dim = dim if i < len(cfg.skip_layers) else None
            last = i == len(cfg.decoder_channels) - 1
            image_ch = in_ch if cfg.image_pyramid and not last else None
            stages.append(DecoderStage(cin, cout, cfg.decoder_res_blocks, skip_dim, image_ch))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.image_fuse = nn.Conv2d(in_ch, cin, 3, padding=1) if cfg.image_skip else None
        # a residual head has its own name, so --init-from a direct-output model leaves it at zero
        head = nn.Conv2d(cin, 3, 3, padding=1)
        if cfg.residual:
            self.residual_head = head
        else:
            self.head = head
        self._init_weights()
        if cfg.residual:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.bridge_pos_embed, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        self.apply(init_vit_weights)

    @property
    def patch_size(self) -> int:
        return self.cfg.patch_size

    def patch_drop(self, pixel_mask: torch.Tensor, threshold: float) -> torch.Tensor:
        """Bool (N, L): a patch is dropped when its hole fraction exceeds ``threshold``."""
        return patch_drop(pixel_mask, self.cfg.patch_size, threshold)

    def _pos(self, table: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        if (gh, gw) == (self.grid, self.grid):
            return table
        grid = table.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)

    def forward(
        self,
        image: torch.Tensor,
        pixel_mask: torch.Tensor,
        drop: torch.Tensor | None = None,
        threshold: float = 0.0,
    ) -> torch.Tensor:
        """``image`` (N,3,H,W) in [-1,1]; ``pixel_mask`` (N,1,H,W), 1 = hole; ``drop`` (N,L) bool
        overrides which patches the encoder skips (default: hole fraction > ``threshold``).
        Returns the reconstructed image (N,3,H,W), unclamped.
        """
        n, _, h, w = image.shape
        p = self.cfg.patch_size
        gh, gw = h // p, w // p
        mask = pixel_mask.to(image.dtype)
        x_in = pull_push_fill(image, mask) if self.cfg.prefill == "pullpush" else image * (1 - mask)
        if self.cfg.mask_channel:
            x_in = torch.cat([x_in, mask], dim=1)
        if drop is None:
            drop = self.patch_drop(mask, threshold)
        tokens = self.patch_embed(x_in) + self._pos(self.pos_embed, gh, gw)
        dim = tokens.shape[2]

        # Gather the visible patches first (raster order), padding shorter rows; padded slots are
        # masked out of attention so every sample sees only its own visible patches.
        counts = (~drop).sum(1)
        keep = max(int(counts.max()), 1)
        order = torch.argsort(drop.to(torch.int8), dim=1, stable=True)
        ids_keep = order[:, :keep]
        x = torch.gather(tokens, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))
        key_mask = None
        if int(counts.min()) != keep:
            key_mask = torch.arange(keep, device=x.device)[None, :] < counts[:, None]
            key_mask[:, 0] = True  # a fully dropped sample still needs one key to attend to

        ids_restore = torch.argsort(order, dim=1)
        skips: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.blocks, start=1):
            x = block(x, key_mask)
            if i in self.cfg.skip_layers:
                skips[i] = self._to_grid(self._restore(x, ids_restore, drop, None), gh, gw)
        x = self._restore(self.norm(x), ids_restore, drop, self.mask_token)

        x = self.bridge_embed(x) + self._pos(self.bridge_pos_embed, gh, gw)
        for block in self.bridge:
            x = block(x)
        x = self._to_grid(self.bridge_norm(x), gh, gw)

        for i, stage in enumerate(self.stages):
            skip = skips[self.cfg.skip_layers[i]] if i < len(self.cfg.skip_layers) else None
            x = stage(x, skip, x_in)
        if self.image_fuse is not None:
            x = F.relu(x + self.image_fuse(x_in))
        if self.cfg.residual:
            return x_in[:, :3] + self.residual_head(x)
        return self.head(x)

    @staticmethod
    def _restore(
        x: torch.Tensor, ids_restore: torch.Tensor, drop: torch.Tensor, fill: torch.Tensor | None
    ) -> torch.Tensor:
        """Back to all L positions; dropped ones get ``fill`` (a learned token) or zeros."""
        n, keep, dim = x.shape
        length = ids_restore.shape[1]
        pad = x.new_zeros(n, length - keep, dim)
        full = torch.gather(torch.cat([x, pad], 1), 1, ids_restore.unsqueeze(-1).expand(-1, -1, dim))
        hole = drop.unsqueeze(-1)
        return torch.where(hole, fill.to(x.dtype) if fill is not None else torch.zeros_like(full), full)

    @staticmethod
    def _to_grid(x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], gh, gw)


def patch_drop(pixel_mask: torch.Tensor, patch_size: int, threshold: float) -> torch.Tensor:
    """Bool (N, L): patches whose hole fraction exceeds ``threshold`` (what the encoder skips)."""
    return (F.avg_pool2d(pixel_mask.float(), patch_size) > threshold).flatten(1)


def pull_push_fill(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Hole pixels (``hole`` = 1) replaced by a smooth average of the known pixels around them.

    Pull: a pyramid of mask-weighted averages (colour premultiplied by coverage). Push: from the
    coarsest level down, each level keeps what it knows and takes the rest from the level above
    (``c + (1 - w) * up``). Known pixels come back unchanged; no parameters, differentiable.
    """
    known = 1.0 - hole
    levels = [(image * known, known)]
    while min(levels[-1][0].shape[-2:]) > 1:
        c, w = levels[-1]
        levels.append((F.avg_pool2d(c, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)))
    c, w = levels[-1]
    filled = c / w.clamp_min(1e-6)
    for c, w in reversed(levels[:-1]):
        up = F.interpolate(filled, size=c.shape[-2:], mode="bilinear", align_corners=False)
        filled = c + (1.0 - w) * up
    return torch.where(hole > 0, filled, image)
