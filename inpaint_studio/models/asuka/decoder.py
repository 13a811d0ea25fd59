"""The ASUKA inpainting-specialised decoder: an SD VAE decoder that copies the known region from the photo.

A stock KL-VAE decoder (diffusers' ``Decoder`` blocks, so a person's SD VAE decoder loads as it is) plus a
small convolutional condition encoder over (masked image, mask). At the entry of every decoder level the
condition features *replace* the decoder's wherever the cell is known (the mask area-downsampled to that
level, set to 1 wherever any hole pixel touches a cell, so the hole keeps the decoder's own features), and
once more at full resolution, before the output norm, exactly outside the (soft) hole. So colour and texture
of the known region come from the photo's pixels, not from the lossy latent: the decoder harmonises the fill
with its surroundings. Our reading of ``asuka_decoder.py`` (asuka-misato), for any decoder width:

* condition layers, each stored *before* its ReLU: 3x3 -> width of the final blend (full res), 3x3 -> width
  entering the last level (full res), then one 4x4 stride-2 conv per coarser level to that level's entry
  width; at SD-1.5 size: 4 -> 128, 256 @ 1/1; 512 @ 1/2, 1/4, 1/8;
* mask 1 = hole, soft values allowed; image in [-1, 1]; all-hole gives the plain VAE decoder, all-known an
  output that ignores the latent; image height and width are 8 x the latent's (2^(levels-1) in general).

In an SD pipeline decode ``post_quant_conv(z / scaling_factor)`` with it, as ``AutoencoderKL.decode`` does.
diffusers is imported when a decoder is built, never at module import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# SD-1.5's VAE decoder (AutoencoderKL config of runwayml/stable-diffusion-inpainting).
SD15_ARCH: dict[str, Any] = dict(
    latent_channels=4, out_channels=3, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    norm_num_groups=32,
)  # fmt: skip


def _entry_widths(block_out_channels: Sequence[int]) -> list[int]:
    """Channels entering each diffusers up block (``up_blocks[j]``, coarsest first)."""
    rev = list(reversed(block_out_channels))
    return [rev[max(j - 1, 0)] for j in range(len(rev))]


class ConditionEncoder(nn.Module):
    """(masked image, mask) -> one feature map per injection point, finest first.

    ``maps[0]`` is for the blend before the output norm, ``maps[1]`` for the finest level's entry, and
    ``maps[k]`` (k >= 2) for the level 2^(k-1) times coarser.
    """

    def __init__(self, block_out_channels: Sequence[int], image_channels: int = 3) -> None:
        super().__init__()
        entries = _entry_widths(block_out_channels)
        widths = [block_out_channels[0]] + list(reversed(entries))  # blend, finest entry, ..., coarsest entry
        layers: list[nn.Conv2d] = []
        c_in = image_channels + 1
        for k, c_out in enumerate(widths):
            if k < 2:
                layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1))
            else:
                layers.append(nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1))
            c_in = c_out
        self.layers = nn.ModuleList(layers)

    def forward(self, masked_image: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        x = torch.cat([masked_image, mask], dim=1)
        maps = []
        for i, layer in enumerate(self.layers):
            x = layer(x if i == 0 else F.relu(x))
            maps.append(x)
        return maps


def cell_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The mask area-downsampled to ``size``: 1 wherever a hole pixel touches the cell, else 0."""
    return (F.interpolate(mask, size=size, mode="area") > 0).to(mask.dtype)


class AsukaDecoder(nn.Module):
    """``decoder(z, image, mask)``: latent + known pixels -> image, the known region kept from ``image``."""

    def __init__(
        self,
        latent_channels: int = 4,
        out_channels: int = 3,
        block_out_channels: Sequence[int] = (128, 256, 512, 512),
        layers_per_block: int = 2,
        norm_num_groups: int = 32,
    ) -> None:
        super().__init__()
        from diffusers.models.autoencoders.vae import Decoder

        block_out_channels = tuple(int(c) for c in block_out_channels)
        self.config: dict[str, Any] = dict(
            latent_channels=latent_channels, out_channels=out_channels, block_out_channels=list(block_out_channels),
            layers_per_block=layers_per_block, norm_num_groups=norm_num_groups,
        )  # fmt: skip
        self.scale = 2 ** (len(block_out_channels) - 1)
        self.decoder = Decoder(
            in_channels=latent_channels,
            out_channels=out_channels,
            up_block_types=("UpDecoderBlock2D",) * len(block_out_channels),
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            norm_num_groups=norm_num_groups,
            act_fn="silu",
        )
        self.condition = ConditionEncoder(block_out_channels, out_channels)

    @classmethod
    def from_vae(cls, vae: nn.Module) -> AsukaDecoder:
        """Initialised from a diffusers ``AutoencoderKL`` (its decoder); the condition encoder starts fresh."""
        cfg = vae.config
        if any(t != "UpDecoderBlock2D" for t in cfg.up_block_types) or not cfg.get(
            "mid_block_add_attention", True
        ):
            raise ValueError(
                "only KL-VAE decoders of UpDecoderBlock2D blocks with a mid attention are supported"
            )
        model = cls(
            latent_channels=cfg.latent_channels, out_channels=cfg.out_channels,
            block_out_channels=cfg.block_out_channels, layers_per_block=cfg.layers_per_block,
            norm_num_groups=cfg.norm_num_groups,
        )  # fmt: skip
        model.decoder.load_state_dict(vae.decoder.state_dict())
        return model.to(next(vae.parameters()).dtype)

    def _check(self, z: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> None:
        size = (z.shape[-2] * self.scale, z.shape[-1] * self.scale)
        if tuple(image.shape[-2:]) != size or tuple(mask.shape[-2:]) != size or mask.shape[1] != 1:
            raise ValueError(
                f"a {tuple(z.shape[-2:])} latent decodes to {size}: image and (N x 1) mask must have that "
                f"size, got {tuple(image.shape)} / {tuple(mask.shape)}"
            )

    def forward(self, z: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self._check(z, image, mask)
        dec = self.decoder
        mask = mask.to(z.dtype)
        maps = self.condition((1 - mask) * image.to(z.dtype), mask)
        h = dec.mid_block(dec.conv_in(z), None)
        levels = len(dec.up_blocks)
        for j, up_block in enumerate(dec.up_blocks):
            known = 1 - cell_mask(mask, h.shape[-2:])
            h = h * (1 - known) + maps[levels - j] * known
            for resnet in up_block.resnets:
                h = resnet(h, None)
            for upsampler in up_block.upsamplers or ():
                h = upsampler(h)
        h = h * mask + maps[0] * (1 - mask)
        return dec.conv_out(dec.conv_act(dec.conv_norm_out(h)))

    def plain(self, z: torch.Tensor) -> torch.Tensor:
        """The underlying VAE decoder alone (the vanilla decode, for comparison)."""
        return self.decoder(z)


# ---------------------------------------------------------------------------- state dicts
_LDM_DECODER_PARTS = (
    "conv_in.",
    "mid.",
    "up.",
    "norm_out.",
    "conv_out.",
)  # an LDM VAE decoder's top-level names


def decoder_state_from_ldm(state: Mapping[str, torch.Tensor], levels: int = 4) -> dict[str, torch.Tensor]:
    """LDM-layout VAE decoder keys (``up.3.block.0...``, ``mid.attn_1.q``; bare, ``decoder.``-prefixed or
    inside a whole SD checkpoint as ``first_stage_model.decoder.``) -> our ``decoder.*`` (diffusers names).

    The renaming (and the 1x1-conv -> Linear reshape of the mid attention) is diffusers' own converter.
    """
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    prefix = next(
        (
            p
            for p in ("first_stage_model.decoder.", "vae.decoder.", "decoder.")
            if any(k.startswith(p) for k in state)
        ),
        "",
    )
    bare = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    kl = {f"decoder.{k}": v for k, v in bare.items() if k.startswith(_LDM_DECODER_PARTS)}
    blocks = dict(
        down_block_types=["DownEncoderBlock2D"] * levels, up_block_types=["UpDecoderBlock2D"] * levels
    )
    converted = convert_ldm_vae_checkpoint(kl, blocks)
    return {k: v for k, v in converted.items() if k.startswith("decoder.")}


def from_official_state(
    state: Mapping[str, torch.Tensor], levels: int = 4
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The official ASUKA decoder's state dict (LDM names + ``encoder.layers.i`` + unused ``up_layers``) -> ours.

    Returns the renamed dict and the keys left out (``up_layers.*``, which its forward never calls).
    """
    prefix = "decoder." if any(k.startswith("decoder.encoder.layers.") for k in state) else ""
    bare = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not any(k.startswith("encoder.layers.") for k in bare):
        raise ValueError("not an ASUKA decoder state dict: no condition encoder (encoder.layers.*)")
    out = decoder_state_from_ldm(bare, levels)
    out.update(
        {f"condition.{k[len('encoder.') :]}": v for k, v in bare.items() if k.startswith("encoder.layers.")}
    )
    kept = {k for k in bare if k.startswith((*_LDM_DECODER_PARTS, "encoder.layers."))}
    return out, sorted(set(bare) - kept)


def arch_from_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Constructor arguments of an :class:`AsukaDecoder` from our key names and shapes."""
    ups = sorted({int(k.split(".")[2]) for k in state if k.startswith("decoder.up_blocks.")})
    if not ups:
        raise ValueError("not an ASUKA decoder state dict: no decoder.up_blocks.*")
    widths = [state[f"decoder.up_blocks.{j}.resnets.0.conv1.weight"].shape[0] for j in ups][::-1]
    resnets = {k.split(".")[4] for k in state if k.startswith("decoder.up_blocks.0.resnets.")}
    groups = 32  # GroupNorm groups are not stored; every SD VAE uses 32
    return dict(
        latent_channels=state["decoder.conv_in.weight"].shape[1], out_channels=state["decoder.conv_out.weight"].shape[0],
        block_out_channels=widths, layers_per_block=len(resnets) - 1, norm_num_groups=groups,
    )  # fmt: skip
