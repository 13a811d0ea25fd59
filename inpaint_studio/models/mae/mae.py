"""The original masked autoencoder (He et al. 2022) with the official state-dict key names.

Same constructor arguments and forward conventions as facebookresearch/mae ``MaskedAutoencoderViT``,
so an official ``.pth`` loads with ``load_state_dict``. ``noise`` can be injected into the random
masking (tests do; the ASUKA prior feeds its own), otherwise it is drawn from ``torch.rand``.
Input images are ImageNet-normalised (``IMAGENET_MEAN``/``IMAGENET_STD``), as in the official demo.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .vit import Block, PatchEmbed, init_vit_weights, sincos_pos_embed_2d

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The official factory architectures (models_mae.py); every decoder is 512 wide, 8 deep, 16 heads.
ARCHS: dict[str, dict[str, Any]] = {
    "mae_vit_base_patch16": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "mae_vit_large_patch16": dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16),
    "mae_vit_huge_patch14": dict(patch_size=14, embed_dim=1280, depth=32, num_heads=16),
}
_DECODER = dict(decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0)


class MaskedAutoencoderViT(nn.Module):
    """ViT encoder over the kept patches + a transformer decoder predicting every patch's pixels."""

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        norm_pix_loss: bool = False,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.config = dict(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim, depth=depth,
            num_heads=num_heads, decoder_embed_dim=decoder_embed_dim, decoder_depth=decoder_depth,
            decoder_num_heads=decoder_num_heads, mlp_ratio=mlp_ratio, norm_pix_loss=norm_pix_loss,
            norm_eps=norm_eps,
        )  # fmt: skip
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.grid = img_size // patch_size
        num_patches = self.grid * self.grid
        self.norm_pix_loss = norm_pix_loss

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, norm_eps) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)

        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, num_patches + 1, decoder_embed_dim), requires_grad=False
        )
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, norm_eps) for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=norm_eps)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size * patch_size * in_chans)
        self._init_weights()

    @classmethod
    def from_arch(cls, name: str, **overrides: Any) -> MaskedAutoencoderViT:
        """Build one of the official factory models, e.g. ``mae_vit_large_patch16``."""
        if name not in ARCHS:
            raise ValueError(f"unknown MAE architecture {name!r}; choose one of {', '.join(ARCHS)}")
        return cls(**{**ARCHS[name], **_DECODER, **overrides})

    def _init_weights(self) -> None:
        self.pos_embed.data.copy_(sincos_pos_embed_2d(self.pos_embed.shape[-1], self.grid, self.grid, True))
        self.decoder_pos_embed.data.copy_(
            sincos_pos_embed_2d(self.decoder_pos_embed.shape[-1], self.grid, self.grid, True)
        )
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(init_vit_weights)

    # ------------------------------------------------------------------ patches
    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, L, p*p*C); each patch row-major over (y, x, channel), channel fastest."""
        p, c = self.patch_size, self.in_chans
        n, _, h, w = imgs.shape
        x = imgs.reshape(n, c, h // p, p, w // p, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(n, (h // p) * (w // p), p * p * c)

    def unpatchify(self, x: torch.Tensor, grid_hw: tuple[int, int] | None = None) -> torch.Tensor:
        p, c = self.patch_size, self.in_chans
        gh, gw = grid_hw or (self.grid, self.grid)
        x = x.reshape(x.shape[0], gh, gw, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, gh * p, gw * p)

    # ------------------------------------------------------------------ masking
    @staticmethod
    def random_masking(
        x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep the ``int(L * (1 - mask_ratio))`` tokens with the smallest noise.

        Returns the kept tokens, the mask (1 = removed) and ``ids_restore`` (undoes the shuffle).
        """
        n, length, dim = x.shape
        len_keep = int(length * (1 - mask_ratio))
        if noise is None:
            noise = torch.rand(n, length, device=x.device)
        elif noise.shape != (n, length):
            raise ValueError(f"noise must have shape {(n, length)}, got {tuple(noise.shape)}")
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))
        mask = torch.ones(n, length, device=x.device)
        mask[:, :len_keep] = 0
        return kept, torch.gather(mask, 1, ids_restore), ids_restore

    # ------------------------------------------------------------------ forward
    def forward_encoder(
        self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:, :]
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.decoder_embed(latent)
        n, length = ids_restore.shape
        tokens = torch.cat([x[:, 1:], self.mask_token.expand(n, length + 1 - x.shape[1], -1)], dim=1)
        tokens = torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], tokens], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:, :]

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch, averaged over the removed patches only."""
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        per_patch = ((pred - target) ** 2).mean(dim=-1)
        return (per_patch * mask).sum() / mask.sum()

    def forward(
        self, imgs: torch.Tensor, mask_ratio: float = 0.75, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(loss, pred, mask)`` like the official model."""
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask


def arch_from_state_dict(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Infer the constructor arguments of an official MAE checkpoint from its tensor shapes.

    Head counts are not stored in a state dict: they follow the official factories (64-wide
    heads in the encoder, 16 decoder heads), which every published MAE checkpoint uses.
    """
    if "patch_embed.proj.weight" not in state or "pos_embed" not in state:
        raise ValueError("not an MAE state dict: patch_embed.proj.weight / pos_embed are missing")
    embed_dim, in_chans, patch, _ = state["patch_embed.proj.weight"].shape
    num_patches = state["pos_embed"].shape[1] - 1
    grid = int(round(num_patches**0.5))
    if grid * grid != num_patches:
        raise ValueError(f"pos_embed holds {num_patches} patches, which is not a square grid")
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    mlp_hidden = state["blocks.0.mlp.fc1.weight"].shape[0]
    arch: dict[str, Any] = dict(
        img_size=grid * patch, patch_size=patch, in_chans=in_chans, embed_dim=embed_dim, depth=depth,
        num_heads=max(1, embed_dim // 64), mlp_ratio=mlp_hidden / embed_dim,
    )  # fmt: skip
    if "decoder_embed.weight" in state:
        dec_dim = state["decoder_embed.weight"].shape[0]
        dec_keys = [k for k in state if k.startswith("decoder_blocks.")]
        arch.update(
            decoder_embed_dim=dec_dim,
            decoder_depth=1 + max(int(k.split(".")[1]) for k in dec_keys) if dec_keys else 0,
            decoder_num_heads=16 if dec_dim % 16 == 0 else max(1, dec_dim // 32),
        )
    return arch
