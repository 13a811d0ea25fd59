"""What the ASUKA trainers share: the person's frozen SD-1.5 parts, latents, and the prior's inputs.

The SD-1.5 (inpainting) model comes by path (a diffusers folder or one checkpoint file,
``models/diffusion/loading.py``, offline) and stays frozen: the tasks hand it to the loop through
``build_frozen``, so it never reaches a checkpoint or an optimizer. ``--vae`` swaps in another KL
autoencoder (a diffusers ``AutoencoderKL`` folder): the colour experiment trains its decoder on a small
stand-in VAE because no SD weights are available offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from inpaint_studio.models.mae.mae import IMAGENET_MEAN, IMAGENET_STD

from .config import opt


@dataclass(frozen=True)
class SD15Options:
    sd15: str | None = opt(
        None, "the SD-1.5 inpainting model (diffusers folder or .safetensors/.ckpt), kept frozen"
    )
    vae: str | None = opt(
        None, "another KL autoencoder (diffusers AutoencoderKL folder) instead of the model's VAE"
    )


@dataclass
class FrozenSD:
    """The frozen networks one task asked for, plus the noise schedule (None where not loaded)."""

    vae: nn.Module | None
    unet: nn.Module | None
    text_encoder: nn.Module | None
    tokenizer: Any
    alphas_cumprod: torch.Tensor | None


def load_frozen_sd(options: SD15Options, *, unet: bool, text: bool = False) -> FrozenSD:
    """The VAE always; the UNet (and the text encoder) when ``unet`` (``text``) is asked for."""
    if options.vae is None and options.sd15 is None:
        raise ValueError("give --sd15 PATH (the SD-1.5 inpainting model) or --vae PATH")
    if options.sd15 is None and (unet or text):
        raise ValueError("this run needs the SD-1.5 inpainting UNet: give --sd15 PATH")
    parts = None
    if options.sd15 is not None:
        from inpaint_studio.models.components import ComponentCache
        from inpaint_studio.models.diffusion.loading import load_sd15
        from inpaint_studio.models.diffusion.source import model_source

        # a private cache: a training run's copies are its own, not the app's
        parts = load_sd15(model_source(options.sd15), "cpu", "fp32", cache=ComponentCache())
    vae = load_vae(options.vae) if options.vae else parts.vae
    alphas = None
    if parts is not None:
        from diffusers import DDPMScheduler

        alphas = DDPMScheduler.from_config(parts.scheduler_config).alphas_cumprod.float()
    return FrozenSD(
        vae=vae,
        unet=parts.unet if unet else None,
        text_encoder=parts.text_encoder if text else None,
        tokenizer=parts.tokenizer if text else None,
        alphas_cumprod=alphas,
    )


def load_vae(folder: str | Path) -> nn.Module:
    from diffusers import AutoencoderKL

    folder = Path(folder).expanduser()
    sub = "vae" if (folder / "vae" / "config.json").is_file() else None
    if not (folder / (sub or "") / "config.json").is_file():
        raise ValueError(f"{folder} is not a diffusers AutoencoderKL folder (no config.json)")
    return AutoencoderKL.from_pretrained(str(folder), subfolder=sub, local_files_only=True)


def scaling(vae: nn.Module) -> float:
    return float(getattr(vae.config, "scaling_factor", 0.18215))


@torch.no_grad()
def encode(vae: nn.Module, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Image in [-1, 1] -> the scaled latent SD's UNet works on: a posterior sample drawn with
    ``generator`` (on the CPU, so a resumed run draws the same), or the posterior mean without one."""
    dist = vae.encode(image).latent_dist
    if generator is None:
        return dist.mode() * scaling(vae)
    noise = torch.randn(dist.mean.shape, generator=generator).to(dist.mean)
    return (dist.mean + dist.std * noise) * scaling(vae)


def to_decoder_input(vae: nn.Module, latent: torch.Tensor) -> torch.Tensor:
    """A scaled latent -> what the VAE's (and our) decoder takes: ``post_quant_conv(z / scale)``."""
    z = latent / scaling(vae)
    pqc = getattr(vae, "post_quant_conv", None)
    return pqc(z) if pqc is not None else z


def inpainting_unet_input(z_t: torch.Tensor, mask: torch.Tensor, masked_latent: torch.Tensor) -> torch.Tensor:
    """SD inpainting's 9 channels: noisy latent, the mask at latent size, the masked image's latent."""
    small = F.interpolate(mask, size=z_t.shape[-2:], mode="nearest")
    return torch.cat([z_t, small, masked_latent], dim=1)


def add_noise(z0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    a = alphas.to(z0.device)[t].view(-1, 1, 1, 1)
    return a.sqrt() * z0 + (1 - a).sqrt() * eps


@torch.no_grad()
def empty_prompt(text_encoder: nn.Module, tokenizer: Any, device: torch.device) -> torch.Tensor:
    """The CLIP embedding of the empty prompt (1, 77, D): SD's "no text" condition."""
    ids = tokenizer(
        [""],
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return text_encoder(ids.to(device))[0]


def prior_inputs(image: torch.Tensor, mask: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Image in [-1, 1] and mask (1 = hole) -> the MAE prior's inputs at ``size`` (as ``prepare_inputs``:
    area-resized, ImageNet-normalised, zero where the mask is >= 0.5; the mask resized nearest)."""
    if image.shape[-2:] != (size, size):
        image = F.interpolate(image, size=(size, size), mode="area")
        mask = F.interpolate(mask, size=(size, size), mode="nearest")
    mean = torch.tensor(IMAGENET_MEAN, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    x = ((image + 1) / 2 - mean) / std
    return x * (mask < 0.5), mask
