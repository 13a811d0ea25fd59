"""Fitting a small stand-in KL autoencoder (diffusers ``AutoencoderKL``) on photos, for the studies that
need a VAE trained here (``eval_asuka.py``, ``mta_tiny_base.py``): L1 reconstruction + 1e-4 x KL per
pixel, Adam, a checkpoint every 200 steps that an interrupted run resumes from."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch


def resume(checkpoint: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> int:
    """Load ``model`` and ``opt`` from ``checkpoint`` when it exists; the step to go on from."""
    if not checkpoint.is_file():
        return 0
    state = torch.load(checkpoint, weights_only=True)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    return int(state["step"])


def fit(
    vae: torch.nn.Module,
    next_batch: Callable[[int], torch.Tensor],
    steps: int,
    lr: float,
    checkpoint: Path,
    name: str = "vae",
) -> None:
    """Train ``vae`` to ``steps`` on ``next_batch(step)`` (images in [-1, 1]), from its checkpoint if any."""
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    start, t0 = resume(checkpoint, vae, opt), time.time()
    for step in range(start, steps):
        x = next_batch(step)
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        l1 = (rec - x).abs().mean()
        kl = post.kl().mean() / x[0].numel()
        loss = l1 + 1e-4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 50 == 0:
            print(
                f"{name} {step + 1}/{steps} l1 {l1.item():.4f} kl {kl.item():.3f} {time.time() - t0:.0f}s",
                flush=True,
            )
        if (step + 1) % 200 == 0 or step + 1 == steps:
            torch.save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step + 1}, checkpoint)
