"""The SD-1.5 inpainting loop, one step per ``next()``, so an engine can preview and cancel between steps.

It follows diffusers' ``StableDiffusionInpaintPipeline`` step for step (prompt encoding, timesteps and
strength, initial noise, the 9-channel UNet input or the 4-channel latent blend, guidance, scheduler
step), with two deliberate differences that make each variant reproduce alone:

* the image and masked-image latents are the VAE posterior's mean, not a sample; the pipeline samples
  them with the first generator of the batch, so its variant 2 of a batch differs from the same seed
  run alone;
* the latent mask is given by the caller (the compositor max-pools it, so no hole pixel falls in a cell
  the model keeps), instead of a nearest-neighbour resize of the pixel mask.

With a mask on the 8-pixel grid and these latents passed in, the pipeline computes exactly this loop;
the tests check that.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .loading import SD15Parts
from .schedulers import make_scheduler


@dataclass(frozen=True)
class Sampling:
    steps: int = 25
    guidance: float = 7.5
    strength: float = 1.0
    scheduler: str = "dpmpp_2m_karras"
    eta: float = 0.0


@dataclass(frozen=True)
class StepState:
    step: int  # 1-based count of steps done
    steps: int  # steps this run makes (after strength)
    latents: Any  # (B, 4, h, w), as the scheduler holds them
    denoised: Any  # (B, 4, h, w): the model's current estimate of the clean latents


def vae_factor(parts: SD15Parts) -> int:
    """Pixels per latent cell (8 for SD-1.5's VAE)."""
    return 2 ** (len(parts.vae.config.block_out_channels) - 1)


def encode_text(parts: SD15Parts, prompts: Sequence[str]) -> Any:
    """CLIP hidden states (N, 77, D) of ``prompts``, padded to the tokenizer's length like the pipeline."""
    import torch

    tok = parts.tokenizer
    ids = tok(
        list(prompts),
        padding="max_length",
        max_length=tok.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    device = parts.text_encoder.device
    mask = None
    if getattr(parts.text_encoder.config, "use_attention_mask", False):
        mask = ids.attention_mask.to(device)
    with torch.no_grad():
        return parts.text_encoder(ids.input_ids.to(device), attention_mask=mask)[0]


def prompt_embeddings(parts: SD15Parts, prompt: str, negative_prompt: str, batch: int, guided: bool) -> Any:
    """Text states for a batch of ``batch`` latents: (B, 77, D), or (2B, 77, D) with the negative
    prompt's (empty: the unconditional) first when ``guided``, as classifier-free guidance splits them."""
    import torch

    embeds = encode_text(parts, [prompt]).repeat(batch, 1, 1)
    if guided:
        uncond = encode_text(parts, [negative_prompt or ""])
        embeds = torch.cat([uncond.repeat(batch, 1, 1), embeds])
    return embeds


def encode_image(parts: SD15Parts, pixels: Any) -> Any:
    """VAE posterior mean of (B, 3, H, W) pixels in [-1, 1], times the scaling factor."""
    import torch

    vae = parts.vae
    with torch.no_grad():
        latents = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
    return latents * vae.config.scaling_factor


def decode_latents(parts: SD15Parts, latents: Any) -> Any:
    """(B, 4, h, w) latents -> (B, H, W, 3) float32 numpy in [0, 1]."""
    import torch

    vae = parts.vae
    with torch.no_grad():
        images = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    return (images.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()


@dataclass(frozen=True)
class Conditioning:
    """What the UNet's cross-attention reads: ``cond`` (1, L, D), and with ``uncond`` (1, L', D) the
    noise prediction ``uncond + scale * (cond - uncond)`` (classifier-free guidance, or ASUKA's blend of
    its prior with the empty prompt). Same lengths run as one batch; different lengths (ASUKA's 256
    prior tokens against CLIP's 77) as two UNet passes."""

    cond: Any
    uncond: Any | None = None
    scale: float = 1.0


def inpaint_steps(
    parts: SD15Parts,
    image: Any,
    pixel_mask: Any,
    latent_mask: Any,
    prompt: str,
    negative_prompt: str,
    generators: Sequence[Any],
    sampling: Sampling,
) -> Iterator[StepState]:
    """Denoise ``len(generators)`` fills of one image, steered by a prompt; yields after every step.

    ``image``: (1, 3, H, W) float in [-1, 1]; ``pixel_mask``: (1, 1, H, W), 1 = hole (the masked image
    hides it); ``latent_mask``: (1, 1, H/8, W/8), 1 = cells the model repaints. Generator ``i`` alone
    draws variant ``i``'s noise.
    """
    cond = encode_text(parts, [prompt])
    uncond = encode_text(parts, [negative_prompt or ""]) if sampling.guidance > 1.0 else None
    conditioning = Conditioning(cond, uncond, sampling.guidance)
    return conditioned_steps(parts, image, pixel_mask, latent_mask, conditioning, generators, sampling)


def conditioned_steps(
    parts: SD15Parts,
    image: Any,
    pixel_mask: Any,
    latent_mask: Any,
    conditioning: Conditioning,
    generators: Sequence[Any],
    sampling: Sampling,
) -> Iterator[StepState]:
    """:func:`inpaint_steps` with the cross-attention inputs given (``sampling.guidance`` unused)."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    unet, device, dtype = parts.unet, parts.unet.device, parts.unet.dtype
    batch = len(generators)
    embeds = _batched(conditioning, batch, device, dtype)

    scheduler = make_scheduler(sampling.scheduler, parts.scheduler_config)
    scheduler.set_timesteps(sampling.steps, device=device)
    keep = min(int(sampling.steps * sampling.strength), sampling.steps)
    start = max(sampling.steps - keep, 0)
    timesteps = scheduler.timesteps[start * scheduler.order :]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start * scheduler.order)
    if len(timesteps) == 0:
        raise ValueError(
            f"strength {sampling.strength} leaves no step of {sampling.steps}: raise one of them"
        )

    image = image.to(device, torch.float32)
    factor = vae_factor(parts)
    h, w = image.shape[-2] // factor, image.shape[-1] // factor
    full_strength = sampling.strength >= 1.0
    image_latents = None
    if not parts.inpainting or not full_strength:
        image_latents = encode_image(parts, image).to(dtype).repeat(batch, 1, 1, 1)
    noise = randn_tensor((batch, 4, h, w), generator=list(generators), device=device, dtype=dtype)
    if full_strength:
        latents = noise * scheduler.init_noise_sigma
    else:
        latents = scheduler.add_noise(image_latents, noise, timesteps[:1].repeat(batch))

    mask = latent_mask.to(device, dtype).repeat(batch, 1, 1, 1)
    extra = None  # the inpainting UNet's extra input channels: mask + masked-image latents
    if parts.inpainting:
        masked = encode_image(parts, image * (pixel_mask.to(device) < 0.5)).to(dtype).repeat(batch, 1, 1, 1)
        extra = torch.cat([mask, masked], dim=1)

    step_kwargs = scheduler_step_kwargs(scheduler, list(generators), sampling.eta)
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        model_in = scheduler.scale_model_input(latents, t)
        if extra is not None:
            model_in = torch.cat([model_in, extra], dim=1)
        with torch.no_grad():
            eps = _predict_noise(unet, model_in, t, conditioning, embeds)
        before = latents
        out = scheduler.step(eps, t, latents, **step_kwargs, return_dict=True)
        latents = out.prev_sample
        denoised = getattr(out, "pred_original_sample", None)
        if denoised is None:
            denoised = estimate_clean(scheduler, before, eps, t)
        if image_latents is not None and not parts.inpainting:
            known = image_latents
            if i < total - 1:
                known = scheduler.add_noise(image_latents, noise, torch.tensor([timesteps[i + 1]]))
            latents = (1 - mask) * known + mask * latents
            denoised = (1 - mask) * image_latents + mask * denoised
        yield StepState(i + 1, total, latents, denoised)


def _batched(conditioning: Conditioning, batch: int, device: Any, dtype: Any) -> tuple[Any, ...]:
    """The embeddings repeated over the batch: (cond,), (uncond + cond,) in one batch, or (uncond, cond)."""
    import torch

    def rep(x: Any) -> Any:
        return x.repeat(batch, 1, 1).to(device, dtype)

    cond, uncond = conditioning.cond, conditioning.uncond
    if uncond is None:
        return (rep(cond),)
    if uncond.shape == cond.shape:
        return (torch.cat([rep(uncond), rep(cond)]),)
    return rep(uncond), rep(cond)


def _predict_noise(
    unet: Any, model_in: Any, t: Any, conditioning: Conditioning, embeds: tuple[Any, ...]
) -> Any:
    import torch

    def eps(x: Any, hidden: Any) -> Any:
        return unet(x, t, encoder_hidden_states=hidden, return_dict=False)[0]

    if conditioning.uncond is None:
        return eps(model_in, embeds[0])
    if len(embeds) == 1:  # uncond and cond in one batch
        eps_uncond, eps_cond = eps(torch.cat([model_in] * 2), embeds[0]).chunk(2)
    else:
        eps_uncond, eps_cond = eps(model_in, embeds[0]), eps(model_in, embeds[1])
    return eps_uncond + conditioning.scale * (eps_cond - eps_uncond)


def scheduler_step_kwargs(scheduler: Any, generators: list[Any], eta: float) -> dict[str, Any]:
    accepted = set(inspect.signature(scheduler.step).parameters)
    kwargs: dict[str, Any] = {}
    if "eta" in accepted:
        kwargs["eta"] = eta
    if "generator" in accepted:
        kwargs["generator"] = generators
    return kwargs


def estimate_clean(scheduler: Any, latents: Any, eps: Any, t: Any) -> Any:
    """x0 from an epsilon prediction for schedulers that do not report it (VP form: DPM++, UniPC)."""
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is None or float(getattr(scheduler, "init_noise_sigma", 1.0)) != 1.0:
        return latents
    a = alphas[int(t)].to(latents.device, latents.dtype)
    return (latents - (1 - a).sqrt() * eps) / a.sqrt()
