"""The denoising loop of a brush branch (BrushNet or MTA) beside a frozen SD-1.5 text-to-image UNet.

It follows ``StableDiffusionBrushNetPipeline`` of TencentARC's fork step for step (prompt encoding,
timesteps, initial noise, the branch on the scaled noisy latent + masked-image latent + keep mask, the
UNet with the branch's residuals added at BrushNet's points, guidance, scheduler step; no latent
blending: the compositor pastes the fill back in pixels), with deliberate differences:

* the branch runs **once per step on the B latents**, not on the doubled guidance batch: it does not
  see the text, so both halves of the guidance batch get the same residuals (the fork computes them
  twice); :func:`guided_residuals` repeats them over the doubled batch (batch 1 is simply broadcast);
* the masked-image latent is the VAE posterior's mean, not a draw from the global RNG, so a variant
  reproduces alone;
* the keep mask is the compositor's max-pool of the hole (a latent cell any hole pixel touches is
  hole), not a nearest-neighbour resize, so no hole pixel sits in a cell the branch calls known.

    states = brush_steps(parts, branch, pixels, pixel_mask, prompt, negative, generators, sampling, 1.0)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from .brushnet import BrushBranch
from .brushnet_condition import brush_condition
from .brushnet_hooks import BranchResiduals, inject_residuals
from .loading import SD15Parts
from .sampling import (
    Sampling,
    StepState,
    estimate_clean,
    prompt_embeddings,
    scheduler_step_kwargs,
    vae_factor,
)
from .schedulers import make_scheduler


def guided_residuals(residuals: BranchResiduals, copies: int) -> BranchResiduals:
    """The residuals of B latents for a batch of ``copies`` x B (the guidance halves); batch 1 stays
    as it is, since the hooks broadcast it."""
    if copies == 1 or residuals.mid.shape[0] == 1:
        return residuals
    n = len(residuals.down)
    items = [torch.cat([r] * copies) for r in residuals.all()]
    return BranchResiduals(tuple(items[:n]), items[n], tuple(items[n + 1 :]))


@torch.no_grad()
def brush_eps(
    unet: torch.nn.Module,
    branch: BrushBranch,
    model_in: torch.Tensor,
    t: torch.Tensor | float | int,
    embeds: torch.Tensor,
    masked_latent: torch.Tensor,
    keep: torch.Tensor,
    conditioning_scale: float = 1.0,
    guidance: float = 1.0,
) -> torch.Tensor:
    """The guided noise prediction of one step for B latents.

    ``model_in``: (B, 4, h, w), the scheduler's scaled noisy latents; ``embeds``: (2B, L, D) with the
    unconditional half first when ``guidance`` > 1, else (B, L, D); ``masked_latent`` / ``keep``: the
    branch's conditioning (B, 4, h, w) / (B, 1, h, w), keep = 1 on known cells.
    """
    guided = guidance > 1.0
    residuals = branch(model_in, t, masked_latent, keep, conditioning_scale=conditioning_scale).residuals
    if guided:
        residuals = guided_residuals(residuals, 2)
        model_in = torch.cat([model_in] * 2)
        if isinstance(t, torch.Tensor) and t.ndim == 1:
            t = torch.cat([t] * 2)
    with inject_residuals(unet, residuals):
        eps = unet(model_in, t, encoder_hidden_states=embeds, return_dict=False)[0]
    if guided:
        eps_uncond, eps_text = eps.chunk(2)
        eps = eps_uncond + guidance * (eps_text - eps_uncond)
    return eps


def brush_steps(
    parts: SD15Parts,
    branch: BrushBranch,
    image: torch.Tensor,
    pixel_mask: torch.Tensor,
    prompt: str,
    negative_prompt: str,
    generators: Sequence[torch.Generator],
    sampling: Sampling,
    conditioning_scale: float = 1.0,
) -> Iterator[StepState]:
    """Denoise ``len(generators)`` fills of one image from pure noise; yields after every step.

    ``image``: (1, 3, H, W) float in [-1, 1]; ``pixel_mask``: (1, 1, H, W), 1 = hole. Generator ``i``
    alone draws variant ``i``'s noise (and its ancestral noise). ``sampling.strength`` is not used:
    the branch was trained to paint the hole from noise.
    """
    from diffusers.utils.torch_utils import randn_tensor

    unet, device, dtype = parts.unet, parts.unet.device, parts.unet.dtype
    batch = len(generators)
    guided = sampling.guidance > 1.0
    embeds = prompt_embeddings(parts, prompt, negative_prompt, batch, guided).to(device, dtype)

    scheduler = make_scheduler(sampling.scheduler, parts.scheduler_config)
    scheduler.set_timesteps(sampling.steps, device=device)
    timesteps = scheduler.timesteps

    factor = vae_factor(parts)
    h, w = image.shape[-2] // factor, image.shape[-1] // factor
    with torch.no_grad():
        masked_latent, keep = brush_condition(
            parts.vae, image.to(device, torch.float32), pixel_mask.to(device), sample=False, mode="max"
        )
    masked_latent = masked_latent.to(dtype).repeat(batch, 1, 1, 1)
    keep = keep.to(dtype).repeat(batch, 1, 1, 1)
    noise = randn_tensor((batch, 4, h, w), generator=list(generators), device=device, dtype=dtype)
    latents = noise * scheduler.init_noise_sigma

    step_kwargs = scheduler_step_kwargs(scheduler, list(generators), sampling.eta)
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        model_in = scheduler.scale_model_input(latents, t)
        eps = brush_eps(
            unet, branch, model_in, t, embeds, masked_latent, keep, conditioning_scale, sampling.guidance
        )
        before = latents
        out = scheduler.step(eps, t, latents, **step_kwargs, return_dict=True)
        latents = out.prev_sample
        denoised = getattr(out, "pred_original_sample", None)
        if denoised is None:
            denoised = estimate_clean(scheduler, before, eps, t)
        yield StepState(i + 1, total, latents, denoised)


def check_branch_fits(branch: BrushBranch, unet: Any) -> None:
    """Raise ValueError, naming both layouts, when ``branch`` was built for another UNet."""
    config = unet.config
    theirs = (tuple(config.block_out_channels), int(config.layers_per_block), int(config.in_channels))
    mine = (branch.config.block_out_channels, branch.config.layers_per_block, branch.config.latent_channels)
    if theirs != mine:
        raise ValueError(
            f"the branch is for a UNet with channels {mine[0]}, {mine[1]} layers per block and {mine[2]} "
            f"input channels; the base model's UNet has {theirs[0]}, {theirs[1]} and {theirs[2]}"
        )
