"""The MAT generator (Li et al., CVPR 2022): mapping network + two-stage synthesis network.

Inputs follow the official convention: image in [-1, 1], mask 1 = known pixel, 0 = hole. The
output is composited (known pixels are the input, exactly) and not clamped.

For many fills of one image, call :meth:`SynthesisNetwork.encode` once and
:meth:`SynthesisNetwork.fill` per batch of latents; :meth:`MatGenerator.forward` does both for the
common single-call case and matches the official ``Generator.forward``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import MatConfig
from .first_stage import FirstStage, Stage1Encoding
from .layers import NOISE_MODES, FullyConnectedLayer, MappingNetwork, NoiseFn
from .randomness import KeepMaps, draw_keep_maps
from .second_stage import BOTTLENECK, Decoder, Encoder, ToStyle
from .window import WINDOWED_LEVELS, Window


@dataclass
class Encoding:
    """The latent-independent part of a fill: the inputs and the first stage's encoder output."""

    image: torch.Tensor
    mask: torch.Tensor
    stage1: Stage1Encoding
    window: Window | None = None  # where the full-resolution layers run (None: everywhere)
    stage2_base: dict[int, torch.Tensor] | None = None  # stage-2 encoder top levels outside the hole


@dataclass
class FillOutput:
    image: torch.Tensor  # composited final fill
    stage1: torch.Tensor  # composited coarse fill of the first stage


class SynthesisNetwork(nn.Module):
    def __init__(self, config: MatConfig) -> None:
        super().__init__()
        self.config = config
        # Runtime choice, not architecture: channels-last feature maps run faster; contiguous
        # (NCHW) ones follow the official network's rounding most closely (the parity tests).
        self.channels_last = True
        # Runtime choice too: run the top levels only around the hole when that saves work
        # (identical results up to float rounding; see window.py).
        self.use_window = True
        self.first_stage = FirstStage(config)
        self.enc = Encoder(config)
        self.to_square = FullyConnectedLayer(config.w_dim, BOTTLENECK * BOTTLENECK, activation="lrelu")
        gs_dim = config.channels(4) * 2
        self.to_style = ToStyle(config.channels(BOTTLENECK), gs_dim)
        self.dec = Decoder(config, config.w_dim + gs_dim)

    # ------------------------------------------------------------------------------ randomness
    def keep_map_shapes(self, batch: int, height: int, width: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes of the two keep maps for an input of ``height`` x ``width``."""
        factor = self.config.img_resolution // BOTTLENECK  # both bottlenecks sit at 1/32 for the 512 build
        self._check_size(height, width)
        h, w = height // factor, width // factor
        return (batch, h * w, self.config.stage1_dim), (batch, self.config.channels(BOTTLENECK), h, w)

    def _check_size(self, height: int, width: int) -> None:
        res = self.config.img_resolution
        if height % res or width % res:
            raise ValueError(f"MAT input sides must be multiples of {res}, got {width}x{height}")

    # ------------------------------------------------------------------------------ forward
    def encode(self, image: torch.Tensor, mask: torch.Tensor) -> Encoding:
        """Run everything that does not depend on the latent (once per image)."""
        self._check_size(image.shape[2], image.shape[3])
        dtype = self.first_stage.conv_first.conv.weight.dtype
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        image = image.to(dtype).contiguous(memory_format=fmt)
        mask = mask.to(dtype).contiguous(memory_format=fmt)
        enc = Encoding(image, mask, self.first_stage.encode(image, mask))
        enc.window = Window.around_hole(mask) if self.use_window else None
        if enc.window is not None:
            # The stage-2 encoder input differs between fills only inside the hole: its top
            # levels outside the window are the same for every variant, computed once here.
            known = image * mask
            x = torch.cat([mask - 0.5, known, known], 1).contiguous(memory_format=fmt)
            top, second = self.enc.levels[:WINDOWED_LEVELS]
            e_top = self.enc.block(top)(x)
            enc.stage2_base = {top: e_top, second: self.enc.block(second)(e_top)}
        return enc

    def fill(
        self,
        enc: Encoding,
        ws: torch.Tensor,
        keep_maps: KeepMaps,
        noise_mode: str = "random",
        noise_fn: NoiseFn | None = None,
        trace: dict[str, torch.Tensor] | None = None,
        between_stages: Callable[[], None] | None = None,
    ) -> FillOutput:
        """Fill the encoded image once per row of ``ws`` (B, num_ws, w_dim).

        ``between_stages`` is called after the first stage (e.g. to honour a cancel request).
        """
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, not {noise_mode!r}")
        image, mask = enc.image, enc.mask
        ws = ws.to(image.dtype)
        keep_maps = keep_maps.to(image.device)
        known = image * mask
        rgb1 = self.first_stage.decode(enc.stage1, ws, keep_maps.stage1, trace, enc.window)
        stage1 = rgb1 * (1 - mask) + known
        if between_stages is not None:
            between_stages()
        fmt = torch.channels_last if enc.stage1.channels_last else torch.contiguous_format
        x = torch.cat([(mask - 0.5).expand(len(ws), -1, -1, -1), stage1, known.expand_as(stage1)], 1)
        x = x.contiguous(memory_format=fmt)  # (cat drops the layout: restore it)
        feats = self.enc(x) if enc.window is None else self._encode_windowed(enc, x, fmt)
        rgb2 = self._decode(feats, ws, keep_maps.stage2, noise_mode, noise_fn, trace, enc.window)
        return FillOutput(rgb2 * (1 - mask) + known, stage1)

    def _encode_windowed(
        self, enc: Encoding, x: torch.Tensor, fmt: torch.memory_format
    ) -> dict[int, torch.Tensor]:
        """Stage-2 encoder: top levels on the window's crop, merged into the shared base."""
        window, base = enc.window, enc.stage2_base
        assert window is not None and base is not None
        top, second = self.enc.levels[:WINDOWED_LEVELS]
        e_top = self.enc.block(top)(window.crop_of(x))
        e_second = self.enc.block(second)(e_top)
        batch = len(x)
        # the top level is only read by the (windowed) decoder: keep it as a crop
        e_top = window.paste_in_crop(_batch_copy(window.crop_of(base[top]), batch, fmt), e_top)
        e_second = window.paste(_batch_copy(base[second], batch, fmt), e_second)
        return self.enc(e_second, start=WINDOWED_LEVELS, out={top: e_top, second: e_second})

    def _decode(
        self,
        feats: dict[int, torch.Tensor],
        ws: torch.Tensor,
        keep_map: torch.Tensor,
        noise_mode: str,
        noise_fn: NoiseFn | None,
        trace: dict[str, torch.Tensor] | None,
        window: Window | None = None,
    ) -> torch.Tensor:
        first = BOTTLENECK.bit_length() - 1
        fea16 = feats[first]
        square = self.to_square(ws[:, 0]).view(-1, 1, BOTTLENECK, BOTTLENECK)
        if square.shape[-2:] != fea16.shape[-2:]:
            square = F.interpolate(square, size=fea16.shape[-2:], mode="bilinear", align_corners=False)
        keep_map = keep_map.to(fea16.dtype)
        mixed = fea16 * keep_map + square * (1 - keep_map)
        gs = self.to_style(mixed)
        if trace is not None:
            trace.update(stg2_enc_fea16_premix=fea16, stg2_gs=gs)
        feats = {**feats, first: mixed}
        return self.dec(mixed, ws, gs, feats, noise_mode, noise_fn, window)

    def forward(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        ws: torch.Tensor,
        noise_mode: str = "random",
        keep_maps: KeepMaps | None = None,
        noise_fn: NoiseFn | None = None,
        trace: dict[str, torch.Tensor] | None = None,
    ) -> FillOutput:
        enc = self.encode(image, mask)
        if keep_maps is None:  # like the official code: fresh maps from the global RNG
            keep_maps = draw_keep_maps(self.keep_map_shapes(len(ws), image.shape[2], image.shape[3]))
        return self.fill(enc, ws, keep_maps, noise_mode, noise_fn, trace)


def _batch_copy(t: torch.Tensor, batch: int, fmt: torch.memory_format) -> torch.Tensor:
    """A fresh (writable) tensor holding ``t`` (batch 1) repeated ``batch`` times."""
    out = torch.empty((batch, *t.shape[1:]), dtype=t.dtype, device=t.device, memory_format=fmt)
    return out.copy_(t.expand_as(out))


class MatGenerator(nn.Module):
    """Mapping network + synthesis network; state dict keys match the official ``Generator``."""

    def __init__(self, config: MatConfig | None = None) -> None:
        super().__init__()
        self.config = config or MatConfig()
        self.synthesis = SynthesisNetwork(self.config)
        self.mapping = MappingNetwork(
            self.config.z_dim,
            self.config.w_dim,
            self.config.num_ws,
            num_layers=self.config.mapping_layers,
            lr_multiplier=self.config.mapping_lr_multiplier,
            w_avg_beta=self.config.w_avg_beta,
        )

    def forward(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        noise_mode: str = "random",
        keep_maps: KeepMaps | None = None,
        noise_fn: NoiseFn | None = None,
        trace: dict[str, torch.Tensor] | None = None,
        mix_z: torch.Tensor | None = None,
        mix_from: torch.Tensor | None = None,
    ) -> FillOutput:
        """Fill ``image`` where ``mask`` is 0, once per row of ``z``.

        Style mixing (training): rows ``mix_from[i]`` and later of sample i's ws come from
        ``mix_z[i]`` (``mix_from[i] == num_ws``: no mixing); that second mapping leaves w_avg alone.
        """
        ws = self.mapping(z, truncation_psi=truncation_psi)
        if mix_z is not None:
            if mix_from is None:
                raise ValueError("style mixing needs mix_from (the first ws row taken from mix_z)")
            other = self.mapping(mix_z, truncation_psi=truncation_psi, update_w_avg=False)
            rows = torch.arange(ws.shape[1], device=ws.device)
            take = (rows[None, :] >= mix_from.to(ws.device)[:, None]).unsqueeze(-1)
            ws = torch.where(take, other, ws)
        return self.synthesis(image, mask, ws, noise_mode, keep_maps, noise_fn, trace)
