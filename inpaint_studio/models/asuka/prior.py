"""The ASUKA MAE prior: an MAE that sees every patch, hides the hole from attention, and hands over a feature.

Our reading of the fine-tuned MAE of ASUKA (Wang, Cao et al.), kept to the official key names so that the
released ``mae_300.pth`` loads as it is:

* no cls token; every one of the ``grid x grid`` patches goes through the encoder, and in every encoder
  attention the keys of patches that touch the hole (any hole pixel in the patch, soft values included)
  are hidden, so the known patches never read hole pixels;
* the decoder puts the mask token on every patch that touches the hole; a patch that is only partly a hole
  blends that token with a second embedding of (masked image, mask) through a learned weight
  ``alpha`` (clamped to [0, 1]), so the known pixels of a border patch are not thrown away;
* the prior ASUKA feeds to Stable Diffusion is the hidden state that *enters* decoder block
  ``feature_layer`` (6 of 8 at release size: N x 256 x 512); the full reconstruction head stays for
  fine-tuning and for looking at what the prior believes.

Inputs follow the official preprocessing (:func:`prepare_inputs`): ImageNet-normalised pixels zeroed where
the mask is >= 0.5, and the mask with 1 = hole.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..mae.mae import IMAGENET_MEAN, IMAGENET_STD
from ..mae.vit import Block, PatchEmbed, init_vit_weights, sincos_pos_embed_2d

# mae_vit_base_patch16 with finetune=True in the ASUKA release (256 px, 16 x 16 patches).
RELEASE_ARCH: dict[str, Any] = dict(
    img_size=256, patch_size=16, in_chans=3, embed_dim=768, depth=12, num_heads=12,
    decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0, feature_layer=6,
)  # fmt: skip


class AsukaPrior(nn.Module):
    """MAE encoder over all patches with hole keys hidden + a decoder whose inner state is the prior."""

    def __init__(
        self,
        img_size: int = 256,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        norm_eps: float = 1e-6,
        feature_layer: int = 6,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        if not 0 <= feature_layer <= decoder_depth:
            raise ValueError(f"feature_layer must be in [0, {decoder_depth}], got {feature_layer}")
        self.config = dict(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim, depth=depth,
            num_heads=num_heads, decoder_embed_dim=decoder_embed_dim, decoder_depth=decoder_depth,
            decoder_num_heads=decoder_num_heads, mlp_ratio=mlp_ratio, norm_eps=norm_eps,
            feature_layer=feature_layer,
        )  # fmt: skip
        self.img_size = img_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.grid = img_size // patch_size
        self.feature_layer = feature_layer
        num_patches = self.grid * self.grid

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, norm_eps) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)

        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, num_patches, decoder_embed_dim), requires_grad=False
        )
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, norm_eps) for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=norm_eps)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size * patch_size * in_chans)
        # (masked image, mask) -> decoder width, for the partly masked patches
        self.decoder_patch_embed = PatchEmbed(patch_size, in_chans + 1, decoder_embed_dim)
        self.alpha = nn.Parameter(torch.tensor(1.0))
        self._init_weights()

    @classmethod
    def release(cls, **overrides: Any) -> AsukaPrior:
        """The released layout (``mae_vit_base_patch16``, fine-tune variant)."""
        return cls(**{**RELEASE_ARCH, **overrides})

    @property
    def feature_dim(self) -> int:
        return self.mask_token.shape[-1]

    def _init_weights(self) -> None:
        """The official initialisation: sin-cos positions, Linear-like patch embeddings, alpha 1."""
        for pos in (self.pos_embed, self.decoder_pos_embed):
            pos.data.copy_(sincos_pos_embed_2d(pos.shape[-1], self.grid, self.grid, cls_token=False))
        for embed in (self.patch_embed, self.decoder_patch_embed):
            w = embed.proj.weight.data
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(init_vit_weights)

    # ------------------------------------------------------------------ masks and patches
    def cell_masks(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per patch: the hole fraction, whether it touches the hole, whether it is only partly a hole."""
        fraction = F.interpolate(mask, size=(self.grid, self.grid), mode="area").flatten(1)
        touches = fraction > 0
        return fraction, touches, touches & (fraction < 1)

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, L, p*p*C), each patch ordered (y, x, channel) as MAE does."""
        p, c, g = self.patch_size, self.in_chans, self.grid
        x = imgs.reshape(imgs.shape[0], c, g, p, g, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(imgs.shape[0], g * g, p * p * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        p, c, g = self.patch_size, self.in_chans, self.grid
        x = x.reshape(x.shape[0], g, g, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, g * p, g * p)

    def _check(self, imgs: torch.Tensor, mask: torch.Tensor) -> None:
        size = (self.img_size, self.img_size)
        if tuple(imgs.shape[-2:]) != size or tuple(mask.shape[-2:]) != size or mask.shape[1] != 1:
            raise ValueError(
                f"the prior takes {size[0]} px images and N x 1 masks, got {tuple(imgs.shape)} / "
                f"{tuple(mask.shape)}: resize with prepare_inputs()"
            )

    # ------------------------------------------------------------------ forward pieces
    def encode(self, imgs: torch.Tensor, touches: torch.Tensor) -> torch.Tensor:
        """Encoder over all patches; keys of hole patches are hidden (a sample that is all hole sees all)."""
        x = self.patch_embed(imgs) + self.pos_embed
        visible = ~touches
        visible = visible | ~visible.any(dim=1, keepdim=True)  # all-hole samples: no NaN, zeroed later
        for block in self.blocks:
            x = block(x, visible)
        return self.norm(x)

    def image_embedding(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.decoder_patch_embed(torch.cat([imgs * (1 - mask), mask], dim=1))

    def decoder_input(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Decoder tokens before block 0: encoder tokens, mask tokens, alpha-blended border patches."""
        self._check(imgs, mask)
        _, touches, partial = self.cell_masks(mask)
        x = self.decoder_embed(self.encode(imgs, touches))
        x = torch.where(touches[..., None], self.mask_token.to(x.dtype), x)
        a = self.alpha.clamp(0.0, 1.0)
        blended = a * x + (1 - a) * self.image_embedding(imgs, mask)
        x = torch.where(partial[..., None], blended, x)
        return x + self.decoder_pos_embed

    def run_decoder(self, x: torch.Tensor, stop: int | None = None) -> torch.Tensor:
        """Decoder blocks ``0 .. stop-1`` (all when ``stop`` is None), no final norm."""
        for block in self.decoder_blocks[: len(self.decoder_blocks) if stop is None else stop]:
            x = block(x)
        return x

    def forward(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The prior: (N, L, decoder_embed_dim), the state entering decoder block ``feature_layer``.

        A sample whose every patch touches the hole has nothing to go on: its prior is all zeros (the
        official code zeroes the whole batch then; we zero that sample only, so a sample's prior never
        depends on its batch-mates).
        """
        feature = self.run_decoder(self.decoder_input(imgs, mask), self.feature_layer)
        return self._zero_blind(feature, mask)

    def reconstructed_prior(self, imgs: torch.Tensor) -> torch.Tensor:
        """The prior with nothing masked (the alignment trainer's "reconstructed prior")."""
        return self(imgs, torch.zeros_like(imgs[:, :1]))

    def predict(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-patch pixel predictions (N, L, p*p*C) in normalised ImageNet space."""
        x = self.run_decoder(self.decoder_input(imgs, mask))
        return self.decoder_pred(self.decoder_norm(x))

    def reconstruct(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The MAE's own fill (N, C, H, W), normalised like the input; blurry by design."""
        return self.unpatchify(self.predict(imgs, mask))

    def reconstruction_loss(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Fine-tuning loss: squared error averaged over hole pixels and channels (not per patch).

        ``imgs`` may be the full image: hole pixels reach neither the known tokens nor the border
        embedding, so only the target uses them.
        """
        pred = self.predict(imgs, mask)
        weight = self.patchify(mask.expand(-1, self.in_chans, -1, -1))
        return (((pred - self.patchify(imgs)) ** 2) * weight).sum() / weight.sum().clamp_min(1e-8)

    def _zero_blind(self, feature: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        blind = self.cell_masks(mask)[1].all(dim=1)
        return torch.where(blind[:, None, None], torch.zeros_like(feature), feature)


def prepare_inputs(
    image: np.ndarray, mask: np.ndarray, size: int = 256, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB uint8 HxWx3 + mask HxW (uint8 255 = hole, or float 1 = hole) -> the prior's (imgs, mask).

    As the official preprocessing: area resize of the image and nearest resize of the mask to ``size``,
    /255, ImageNet mean/std (in float64), pixels zeroed where the mask is >= 0.5.
    """
    import cv2

    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != mask.shape[:2]:
        raise ValueError(f"expected an HxWx3 image and an HxW mask, got {image.shape} and {mask.shape}")
    m = mask.astype(np.float64) / 255.0 if mask.dtype == np.uint8 else mask.astype(np.float64)
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        m = cv2.resize(m, (size, size), interpolation=cv2.INTER_NEAREST)
    x = (image.astype(np.float64) / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    x = x * (m < 0.5)[..., None]
    imgs = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))).float()[None]
    return imgs.to(device), torch.from_numpy(m).float()[None, None].to(device)


def arch_from_state_dict(state: dict[str, torch.Tensor], feature_layer: int = 6) -> dict[str, Any]:
    """Constructor arguments of an ASUKA prior checkpoint, read from its tensor shapes.

    Head counts are not stored in a state dict: they follow the release (64-wide encoder heads,
    16 decoder heads).
    """
    needed = ("patch_embed.proj.weight", "decoder_patch_embed.proj.weight", "decoder_embed.weight")
    missing = [k for k in needed if k not in state]
    if missing:
        raise ValueError(f"not an ASUKA prior checkpoint: {', '.join(missing)} missing")
    embed_dim, in_chans, patch, _ = state["patch_embed.proj.weight"].shape
    dec_dim = state["decoder_embed.weight"].shape[0]
    num_patches = state["pos_embed"].shape[1] if "pos_embed" in state else None
    grid = int(round(num_patches**0.5)) if num_patches else 16
    if grid * grid != (num_patches or grid * grid):
        raise ValueError(f"pos_embed holds {num_patches} patches, which is not a square grid")
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    dec_depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("decoder_blocks."))
    return dict(
        img_size=grid * patch, patch_size=patch, in_chans=in_chans, embed_dim=embed_dim, depth=depth,
        num_heads=max(1, embed_dim // 64), decoder_embed_dim=dec_dim, decoder_depth=dec_depth,
        decoder_num_heads=16 if dec_dim % 16 == 0 else max(1, dec_dim // 32),
        mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
        feature_layer=min(feature_layer, dec_depth),
    )  # fmt: skip
