"""Adversarial-loss pieces for VQGAN training, kept next to the model so trainers only wire them.

The full objective (Esser et al.) is ``L1 (+ perceptual) + codebook loss + w * lambda * G-loss``
where ``w`` is 0 before the GAN warm-up ends and ``lambda`` balances the gradient norms of the
reconstruction and GAN terms at the decoder's last layer (:func:`adaptive_gan_weight`).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

GanLoss = Literal["hinge", "non-saturating"]


def discriminator_loss(
    logits_real: torch.Tensor, logits_fake: torch.Tensor, kind: GanLoss = "hinge"
) -> torch.Tensor:
    """Loss of the discriminator on real images and (detached) reconstructions."""
    if kind == "hinge":
        return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())
    if kind == "non-saturating":
        return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())
    raise ValueError(f"unknown GAN loss {kind!r}; use 'hinge' or 'non-saturating'")


def generator_loss(logits_fake: torch.Tensor, kind: GanLoss = "hinge") -> torch.Tensor:
    """Loss of the autoencoder for fooling the discriminator."""
    if kind == "hinge":
        return -logits_fake.mean()
    if kind == "non-saturating":
        return F.softplus(-logits_fake).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; use 'hinge' or 'non-saturating'")


def adaptive_gan_weight(
    rec_loss: torch.Tensor, gan_loss: torch.Tensor, last_layer: torch.Tensor, max_weight: float = 1e4
) -> torch.Tensor:
    """``|grad rec| / |grad gan|`` at ``last_layer`` (detached), so neither term drowns the other."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    weight = rec_grad.norm() / (gan_grad.norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()


def gan_warmup_factor(step: int, start_step: int) -> float:
    """0 until ``start_step`` (the autoencoder learns to reconstruct first), then 1."""
    return 0.0 if step < start_step else 1.0
