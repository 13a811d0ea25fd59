"""Losses shared by every model: masked L1/L2, Gram style, adversarial (non-saturating / hinge, taming's
adaptive weight), R1.

Images are (N, C, H, W); masks are (N, 1, H, W) floats with 1 = hole. Masked losses are averaged
over the pixels of the region (and channels), so a small hole weighs as much as a large one.
The perceptual loss lives in ``trainers/perceptual.py`` (it needs VGG weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _region(mask: torch.Tensor, region: str) -> torch.Tensor:
    if region == "hole":
        return mask
    if region == "valid":
        return 1.0 - mask
    if region == "all":
        return torch.ones_like(mask)
    raise ValueError(f"region must be hole, valid or all, not {region!r}")


def _masked_mean(err: torch.Tensor, mask: torch.Tensor, region: str, per_image: bool) -> torch.Tensor:
    weight = _region(mask, region).expand_as(err)
    if not per_image:
        return (err * weight).sum() / weight.sum().clamp_min(1.0)
    per = (err * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1.0)
    return per.mean()


def masked_l1(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    region: str = "hole",
    per_image: bool = False,
) -> torch.Tensor:
    """Mean absolute error over the ``region`` ('hole', 'valid' or 'all') of ``mask``.

    ``per_image``: average within each image first, so a thin stroke weighs as much as a big hole.
    """
    return _masked_mean((pred - target).abs(), mask, region, per_image)


def masked_l2(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    region: str = "hole",
    per_image: bool = False,
) -> torch.Tensor:
    """Mean squared error over the ``region`` of ``mask`` (``per_image`` as in :func:`masked_l1`)."""
    return _masked_mean((pred - target).square(), mask, region, per_image)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C), normalised by C*H*W as in Gatys et al. / partial-conv inpainting."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w).float()
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def style_loss(pred_features: list[torch.Tensor], target_features: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the L1 distance between Gram matrices."""
    if len(pred_features) != len(target_features):
        raise ValueError("style_loss needs the same number of feature maps for prediction and target")
    return torch.stack(
        [
            F.l1_loss(gram_matrix(p), gram_matrix(t))
            for p, t in zip(pred_features, target_features, strict=True)
        ]
    ).sum()


# ------------------------------------------------------------------------ adversarial
ADVERSARIAL = ("nonsaturating", "hinge")


def _adversarial_kind(kind: str) -> str:
    kind = kind.replace("-", "")  # "non-saturating" (taming's spelling) is the same loss
    if kind not in ADVERSARIAL:
        raise ValueError(f"adversarial loss must be nonsaturating or hinge, not {kind!r}")
    return kind


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """Discriminator loss: softplus (non-saturating logistic, StyleGAN2) or hinge."""
    if _adversarial_kind(kind) == "nonsaturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def g_loss(fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """Generator loss: softplus(-D(G(z))) (non-saturating) or -D(G(z)) (hinge)."""
    if _adversarial_kind(kind) == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    return -fake_logits.mean()


def adaptive_gan_weight(
    rec_loss: torch.Tensor, gan_loss: torch.Tensor, last_layer: torch.Tensor, max_weight: float = 1e4
) -> torch.Tensor:
    """taming's lambda: ``|grad rec| / |grad gan|`` at ``last_layer`` (detached), so neither term
    drowns the other."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (gan_grad.norm() + 1e-4)).clamp(0.0, max_weight).detach()


def r1_penalty(real_logits: torch.Tensor, real_inputs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||grad_x D(x)||^2 at real samples (``real_inputs`` must require grad).

    Multiply by ``gamma / 2`` (and by the interval when applied lazily, as StyleGAN2 does).
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real_inputs, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()
