"""The brush branch: BrushNet's trainable twin of a frozen SD-1.5 UNet, and MTA's variant of it.

The branch mirrors the UNet's down, mid and up blocks (diffusers' own block classes), without
cross-attention, and returns one feature per injection point of the UNet (see
``brushnet_hooks.py``), each through a zero-initialised 1x1 conv and multiplied by a conditioning
scale. The UNet itself stays a stock ``UNet2DConditionModel``; the features reach it through
:func:`~inpaint_studio.models.diffusion.brushnet_hooks.inject_residuals`.

Input: ``cat(noisy_latent[4], masked_image_latent[4], mask_keep[1])`` at latent size, where
``mask_keep`` is **1 on known pixels and 0 in the hole** (BrushNet's convention) and the masked
image latent is the VAE latent (times the scaling factor) of the image with its hole painted black.
The branch does not see the text.

Two layouts from one class (``BranchConfig``):

* ``self_attention=False``: BrushNet (all ``DownBlock2D`` / resnet-only mid / ``UpBlock2D``);
  619M parameters at SD-1.5 size, 12 / 1 / 15 residuals.
* ``self_attention=True``: MTA; every resnet of every level is followed by a diffusers
  ``Transformer2DModel`` without cross-attention (``attn1`` + feed-forward only); 990M parameters at
  SD-1.5 size. ``edge_head=True`` adds one output channel to the last attention block's output
  projection: a 1x1 conv ``edge_head`` reads the same input as that block's ``proj_out`` (which is
  exactly one more output row of it, kept apart so the block's residual sum stays C channels) and
  predicts the Sobel edge map of the target at latent size (``BranchOutput.edge``). See
  ``mta_branch.py`` for the initialisation.

Key names: ``conv_in`` (9 -> C), ``time_embedding``, ``down_blocks`` / ``mid_block`` / ``up_blocks``
(diffusers' names, so UNet and BrushNet tensors copy by key), ``down_injections`` /
``mid_injection`` / ``up_injections`` (the zero 1x1 convs), ``edge_head``. The fork's names map by
prefix (``brushnet_import.FORK_PREFIXES``).

diffusers is imported when a branch is built, never at module import.

    branch = BrushBranch.from_unet(unet)                  # BrushNet's from_unet initialisation
    out = branch(noisy, t, masked_latent, mask_keep, conditioning_scale=1.0)
    with inject_residuals(unet, out.residuals):
        eps = unet(noisy, t, encoder_hidden_states=text).sample
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.utils.checkpoint
from torch import nn

from .brushnet_hooks import BranchResiduals, injection_points, record_input, record_points

# UNet config entries the branch cannot mirror (SDXL-style added embeddings, class labels...)
_UNSUPPORTED_UNET_OPTIONS = {
    "class_embed_type": None,
    "addition_embed_type": None,
    "encoder_hid_dim_type": None,
    "time_cond_proj_dim": None,
    "num_class_embeds": None,
    "time_embedding_type": "positional",
    "conv_in_kernel": 3,
    "dual_cross_attention": False,
    "attention_type": "default",
}


def _per_level(value: Any, levels: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * levels
    value = tuple(int(v) for v in value)
    if len(value) != levels:
        raise ValueError(f"{name} has {len(value)} entries for {levels} levels")
    return value


@dataclass(frozen=True)
class BranchConfig:
    """The branch's architecture: the UNet's layout plus the MTA options. JSON-ready via to_dict."""

    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    layers_per_block: int = 2
    latent_channels: int = 4
    conditioning_channels: int = 5
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    act_fn: str = "silu"
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    downsample_padding: int = 1
    mid_block_scale_factor: float = 1.0
    resnet_time_scale_shift: str = "default"
    attention_heads: int | tuple[int, ...] = 8
    transformer_layers_per_block: int | tuple[int, ...] = 1
    use_linear_projection: bool = False
    upcast_attention: bool = False
    self_attention: bool = False
    edge_head: bool = False

    def __post_init__(self) -> None:
        levels = len(self.block_out_channels)
        object.__setattr__(self, "block_out_channels", tuple(int(c) for c in self.block_out_channels))
        object.__setattr__(
            self, "attention_heads", _per_level(self.attention_heads, levels, "attention_heads")
        )
        object.__setattr__(
            self,
            "transformer_layers_per_block",
            _per_level(self.transformer_layers_per_block, levels, "transformer_layers_per_block"),
        )
        if levels < 1 or self.layers_per_block < 1:
            raise ValueError("the branch needs at least one level and one layer per block")
        if self.conditioning_channels < 1 or self.latent_channels < 1:
            raise ValueError("latent_channels and conditioning_channels must be positive")
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError(
                f"block_out_channels {self.block_out_channels} not divisible by {self.norm_num_groups}"
            )
        if self.edge_head and not self.self_attention:
            raise ValueError("edge_head sits on the last attention block: it needs self_attention=True")
        if self.self_attention:
            for c, h in zip(self.block_out_channels, self.attention_heads, strict=True):
                if c % h:
                    raise ValueError(f"{c} channels cannot be split into {h} attention heads")

    @property
    def time_embed_dim(self) -> int:
        return self.block_out_channels[0] * 4

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> BranchConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown branch config entries: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_unet_config(cls, unet_config: Mapping[str, Any], **options: Any) -> BranchConfig:
        """The branch for a diffusers ``UNet2DConditionModel`` config (``options``: MTA switches etc.)."""
        for key, allowed in _UNSUPPORTED_UNET_OPTIONS.items():
            if unet_config.get(key, allowed) != allowed:
                raise ValueError(
                    f"the UNet has {key}={unet_config[key]!r}: the brush branch supports SD-1.5-style UNets only"
                )
        if unet_config.get("in_channels", 4) != unet_config.get("out_channels", 4):
            raise ValueError(
                f"the UNet takes {unet_config['in_channels']} input channels: the brush branch runs beside a "
                "text-to-image UNet (4 channels), not an inpainting one"
            )
        levels = len(unet_config["block_out_channels"])
        heads = unet_config.get("num_attention_heads") or unet_config.get("attention_head_dim", 8)
        values = dict(
            block_out_channels=tuple(unet_config["block_out_channels"]),
            layers_per_block=int(unet_config.get("layers_per_block", 2)),
            latent_channels=int(unet_config.get("in_channels", 4)),
            norm_num_groups=int(unet_config.get("norm_num_groups", 32)),
            norm_eps=float(unet_config.get("norm_eps", 1e-5)),
            act_fn=unet_config.get("act_fn", "silu"),
            flip_sin_to_cos=bool(unet_config.get("flip_sin_to_cos", True)),
            freq_shift=int(unet_config.get("freq_shift", 0)),
            downsample_padding=int(unet_config.get("downsample_padding", 1)),
            mid_block_scale_factor=float(unet_config.get("mid_block_scale_factor", 1.0)),
            resnet_time_scale_shift=unet_config.get("resnet_time_scale_shift", "default"),
            attention_heads=_per_level(heads, levels, "attention heads"),
            transformer_layers_per_block=_per_level(
                unet_config.get("transformer_layers_per_block", 1), levels, "transformer_layers_per_block"
            ),
            use_linear_projection=bool(unet_config.get("use_linear_projection", False)),
            upcast_attention=bool(unet_config.get("upcast_attention", False)),
        )
        if isinstance(unet_config.get("layers_per_block"), (list, tuple)):
            raise ValueError("per-level layers_per_block is not supported by the brush branch")
        return cls(**{**values, **options})


@dataclass(frozen=True)
class BranchOutput:
    """The residuals for the UNet and, with an edge head, the predicted edge map (B, 1, h, w)."""

    residuals: BranchResiduals
    edge: torch.Tensor | None = None


def _zero_conv(channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(channels, channels, kernel_size=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class BrushBranch(nn.Module):
    """BrushNet's branch (or MTA's, with ``config.self_attention``); see the module docstring."""

    def __init__(self, config: BranchConfig | None = None) -> None:
        super().__init__()
        from diffusers.models.embeddings import TimestepEmbedding, Timesteps

        self.config = config = config or BranchConfig()
        channels = config.block_out_channels
        self.conv_in = nn.Conv2d(
            config.latent_channels + config.conditioning_channels, channels[0], 3, padding=1
        )
        self.time_proj = Timesteps(channels[0], config.flip_sin_to_cos, config.freq_shift)
        self.time_embedding = TimestepEmbedding(channels[0], config.time_embed_dim, act_fn=config.act_fn)
        self.down_blocks = nn.ModuleList(self._down_block(i) for i in range(len(channels)))
        self.mid_block = self._mid_block()
        self.up_blocks = nn.ModuleList(self._up_block(i) for i in range(len(channels)))

        points = injection_points(self)
        self.down_injections = nn.ModuleList(
            _zero_conv(c) for c in (channels[0], *(self._out_channels(m) for m in points.down))
        )
        self.mid_injection = _zero_conv(channels[-1])
        self.up_injections = nn.ModuleList(_zero_conv(self._out_channels(m)) for m in points.up)
        self.edge_head: nn.Conv2d | None = None
        if config.edge_head:
            source = self._edge_source()
            inner = source.in_features if isinstance(source, nn.Linear) else source.in_channels
            self.edge_head = nn.Conv2d(inner, 1, kernel_size=1)
            nn.init.zeros_(self.edge_head.weight)
            nn.init.zeros_(self.edge_head.bias)

    # -- construction -------------------------------------------------------------------------
    def _common(self) -> dict[str, Any]:
        c = self.config
        return dict(
            temb_channels=c.time_embed_dim,
            resnet_eps=c.norm_eps,
            resnet_act_fn=c.act_fn,
            resnet_groups=c.norm_num_groups,
            resnet_time_scale_shift=c.resnet_time_scale_shift,
        )

    def _attention(self, level: int, reverse: bool = False) -> dict[str, Any]:
        c = self.config
        heads = c.attention_heads[::-1] if reverse else c.attention_heads
        layers = c.transformer_layers_per_block[::-1] if reverse else c.transformer_layers_per_block
        return dict(
            num_attention_heads=heads[level],
            transformer_layers_per_block=layers[level],
            cross_attention_dim=None,  # self-attention only: attn2/norm2 are not built
            use_linear_projection=c.use_linear_projection,
            upcast_attention=c.upcast_attention,
        )

    def _down_block(self, i: int) -> nn.Module:
        from diffusers.models.unets.unet_2d_blocks import CrossAttnDownBlock2D, DownBlock2D

        c = self.config
        channels = c.block_out_channels
        kwargs = dict(
            in_channels=channels[max(i - 1, 0)],
            out_channels=channels[i],
            num_layers=c.layers_per_block,
            add_downsample=i < len(channels) - 1,
            downsample_padding=c.downsample_padding,
            **self._common(),
        )
        if c.self_attention:
            return CrossAttnDownBlock2D(**kwargs, **self._attention(i))
        return DownBlock2D(**kwargs)

    def _mid_block(self) -> nn.Module:
        from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D, UNetMidBlock2DCrossAttn

        c = self.config
        kwargs = dict(
            in_channels=c.block_out_channels[-1],
            output_scale_factor=c.mid_block_scale_factor,
            **self._common(),
        )
        if c.self_attention:
            return UNetMidBlock2DCrossAttn(**kwargs, **self._attention(len(c.block_out_channels) - 1))
        return UNetMidBlock2D(**kwargs, add_attention=False)

    def _up_block(self, i: int) -> nn.Module:
        from diffusers.models.unets.unet_2d_blocks import CrossAttnUpBlock2D, UpBlock2D

        c = self.config
        rev = c.block_out_channels[::-1]
        kwargs = dict(
            in_channels=rev[min(i + 1, len(rev) - 1)],
            out_channels=rev[i],
            prev_output_channel=rev[max(i - 1, 0)],
            num_layers=c.layers_per_block + 1,
            add_upsample=i < len(rev) - 1,
            resolution_idx=i,
            **self._common(),
        )
        if c.self_attention:
            return CrossAttnUpBlock2D(**kwargs, **self._attention(i, reverse=True))
        return UpBlock2D(**kwargs)

    @staticmethod
    def _out_channels(module: nn.Module) -> int:
        for name in ("out_channels", "channels"):
            if isinstance(getattr(module, name, None), int):
                return getattr(module, name)
        raise TypeError(f"cannot tell the channels of {type(module).__name__}")

    def _edge_source(self) -> nn.Module:
        """The output projection of the last attention block (the one the paper widens by one)."""
        return self.up_blocks[-1].attentions[-1].proj_out

    # -- initialisation ---------------------------------------------------------------------
    @classmethod
    def from_unet(cls, unet: nn.Module, **options: Any) -> BrushBranch:
        """BrushNet's ``from_unet``: copy what the UNet has, zero the mask channel and the injections.

        conv_in's weight gets the UNet's conv_in weight on the noisy latent channels and again on the
        masked-image latent channels, zero on the mask channel; time embedding, resnets and samplers
        (and, for MTA, the self-attention and feed-forward of the UNet's attention blocks) are copied
        where key and shape coincide. ``options`` go to :meth:`BranchConfig.from_unet_config`.
        """
        branch = cls(BranchConfig.from_unet_config(dict(unet.config), **options))
        branch.copy_from_unet(unet)
        return branch.to(device=unet.conv_in.weight.device, dtype=unet.conv_in.weight.dtype)

    @torch.no_grad()
    def copy_from_unet(self, unet: nn.Module) -> list[str]:
        """Copy the UNet's matching tensors into the branch; returns the branch keys left as they were."""
        latent = self.config.latent_channels
        weight = torch.zeros_like(self.conv_in.weight)
        weight[:, :latent] = unet.conv_in.weight
        if self.config.conditioning_channels >= latent:  # the masked-image latent sees the same filter
            weight[:, latent : 2 * latent] = unet.conv_in.weight
        self.conv_in.weight.copy_(weight)
        self.conv_in.bias.copy_(unet.conv_in.bias)
        ours = self.state_dict()
        theirs = unet.state_dict()
        skipped = []
        for key, value in ours.items():
            if key.startswith(
                ("conv_in.", "down_injections.", "mid_injection.", "up_injections.", "edge_head.")
            ):
                continue
            source = theirs.get(key)
            if source is not None and source.shape == value.shape:
                value.copy_(source)
            else:
                skipped.append(key)
        return skipped

    def enable_gradient_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in backward (diffusers' blocks' own switch), for SD-size training."""

        def checkpointed(module: nn.Module, *args: Any) -> Any:
            return torch.utils.checkpoint.checkpoint(module.__call__, *args, use_reentrant=False)

        for module in self.modules():
            if hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = enable
                module._gradient_checkpointing_func = checkpointed

    # -- forward ----------------------------------------------------------------------------
    def _embed_time(
        self, timestep: torch.Tensor | float | int, batch: int, like: torch.Tensor
    ) -> torch.Tensor:
        t = torch.as_tensor(timestep, device=like.device)
        if t.ndim == 0:
            t = t[None]
        t = t.expand(batch)
        return self.time_embedding(self.time_proj(t).to(dtype=like.dtype))

    def forward(
        self,
        noisy_latent: torch.Tensor,
        timestep: torch.Tensor | float | int,
        masked_image_latent: torch.Tensor,
        mask_keep: torch.Tensor,
        conditioning_scale: float = 1.0,
        guess_mode: bool = False,
    ) -> BranchOutput:
        """Branch features for one denoising step.

        ``mask_keep``: (B, 1, h, w), 1 = known, 0 = hole. ``guess_mode`` scales the residuals by
        ``logspace(-1, 0)`` over the injection order, as BrushNet's pipeline does without a prompt.
        """
        sample = torch.cat([noisy_latent, masked_image_latent, mask_keep.to(noisy_latent.dtype)], dim=1)
        if sample.shape[1] != self.conv_in.in_channels:
            raise ValueError(
                f"the branch takes {self.conv_in.in_channels} input channels, got {sample.shape[1]}"
            )
        emb = self._embed_time(timestep, sample.shape[0], sample)
        attn = {"encoder_hidden_states": None} if self.config.self_attention else {}
        edge_box = record_input(self._edge_source()) if self.edge_head is not None else nullcontext([])
        with record_points(self) as seen, edge_box as edge_inputs:
            sample = self.conv_in(sample)
            skips: tuple[torch.Tensor, ...] = (sample,)
            for block in self.down_blocks:
                sample, res = block(hidden_states=sample, temb=emb, **attn)
                skips += res
            sample = self.mid_block(sample, emb, **attn)
            for i, block in enumerate(self.up_blocks):
                n = len(block.resnets)
                res, skips = skips[-n:], skips[:-n]
                size = skips[-1].shape[2:] if i < len(self.up_blocks) - 1 else None
                sample = block(
                    hidden_states=sample, temb=emb, res_hidden_states_tuple=res, upsample_size=size, **attn
                )
        if not seen.complete():
            raise RuntimeError("a branch injection point did not run")
        residuals = BranchResiduals(
            tuple(conv(f) for conv, f in zip(self.down_injections, seen.down, strict=True)),
            self.mid_injection(seen.mid),
            tuple(conv(f) for conv, f in zip(self.up_injections, seen.up, strict=True)),
        )
        if guess_mode:
            n = len(residuals.all())
            scales = torch.logspace(-1, 0, n, device=sample.device) * conditioning_scale
            residuals = residuals.scaled(scales)
        elif conditioning_scale != 1.0:
            residuals = residuals.scaled(conditioning_scale)
        edge = self._edge(edge_inputs[-1], sample) if edge_inputs else None
        return BranchOutput(residuals, edge)

    def _edge(self, hidden: torch.Tensor, last_feature: torch.Tensor) -> torch.Tensor:
        if hidden.ndim == 3:  # linear projection: (B, h*w, inner)
            b, _, inner = hidden.shape
            hidden = hidden.transpose(1, 2).reshape(b, inner, *last_feature.shape[2:])
        return self.edge_head(hidden)
