"""MaskGIT stage 1: the VQGAN tokenizer (Esser et al., taming-transformers recipe).

Objective of the autoencoder, per step::

    L1(x, x') + perceptual-weight * P(x, x') + codebook-weight * (codebook + beta * commitment)
        + [step >= gan-start] * gan-weight * lambda * G(D(x'))

``P`` is the framework's perceptual loss (VGG features from a local torchvision file given with
``--vgg-weights``; without one, its documented Sobel-gradient-pyramid fallback). ``lambda`` is
taming's adaptive weight ``|grad L_rec| / |grad G|`` at the decoder's last layer (``--no-adaptive-
weight``: 1). The patch discriminator (hinge or non-saturating) only starts training at
``--gan-start``, so the autoencoder first learns to reconstruct. The codebook follows an EMA of
its assigned latents by default (``--codebook-ema 0``: learnt by gradient as in taming), and codes
that fall out of use are re-seeded from the batch (``--restart-threshold``).

Logged while training: ``G/perplexity`` and ``G/used_codes`` of each batch's code histogram and
``G/dead_codes`` (codes the data does not pick: re-seeded ones waiting for a batch to choose them;
running use below 0.01 per step when restarts are off), plus reconstruction PSNR. Validation scores the
reconstruction of held-out images (``rec_psnr``, ``rec_ssim``, ``rec_l1``) and the codes each image
uses. The export is a ``maskgit-vqgan`` bundle (inference form: no EMA buffers), which
``inpaint-studio-train maskgit --vqgan PATH`` takes. The VQGAN's weights get no EMA copy (an
averaged encoder would not match the codebook); ``--ema-decay`` does not apply here.

CPU-sized defaults: ch 32, ch-mult 1,2,2,4 (f = 8: a 64 px image is 8x8 tokens, 128 px 16x16),
one residual block per level, 512 codes of 64 dims. The public f16 models use ch 128,
ch-mult 1,1,2,2,4, two blocks, attention at 16, 1024 codes of 256.

Known limit of these small configs (measured on grocery_store at 64 px, ~2000-2800 steps on a
shared CPU): reconstructions reach ~18 dB PSNR but drift to the data's dominant palette (greens
come back yellow), and the codes carry almost no information about their neighbours (a code
predicts its right neighbour 2.5 % of the time with 128 codes), so stage 2 learnt only the code
frequencies. Suspects, untested: too little training, and at ch 32 the decoder's last GroupNorm
has one channel per group (an instance norm that removes each channel's mean).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inpaint_studio.models.maskgit.checkpoint import VQGAN_PART
from inpaint_studio.models.vqgan import VQGAN, VQGANConfig
from inpaint_studio.models.vqgan.quantizer import DEAD_BELOW

from .. import losses, metrics
from ..config import PerceptualOptions, check_choices, opt
from ..nets import PatchDiscriminator
from ..perceptual import PerceptualLoss
from ..task import Batch, ExportSpec, Phase, Task, bare

GAN_LOSSES = ("hinge", "non-saturating")
TRAINING_ONLY_BUFFERS = ("quantize.ema_cluster_size", "quantize.ema_embed_sum")


@dataclass(frozen=True)
class VQGANOptions(PerceptualOptions):
    ch: int = opt(32, "base channel width (a multiple of 32: GroupNorm uses 32 groups)")
    ch_mult: tuple[int, ...] = opt(
        (1, 2, 2, 4), "width multiplier per level; N levels halve the image N-1 times (4: f=8, 5: f=16)"
    )
    num_res_blocks: int = opt(1, "residual blocks per level")
    attn_resolutions: tuple[int, ...] = opt(
        (), "feature-map sides (counted from --resolution) that get attention; the middle always has one"
    )
    z_channels: int = opt(64, "channels of the encoder output")
    n_embed: int = opt(512, "codebook size (the transformer's vocabulary in stage 2)")
    embed_dim: int = opt(64, "size of each code vector")
    beta: float = opt(0.25, "commitment weight inside the codebook loss")
    codebook_ema: float = opt(
        0.99, "EMA decay of the codebook updates (0: codebook learnt by gradient, as in taming)"
    )
    restart_threshold: float = opt(
        0.05, "re-seed codes used less than this many times per step (running average) from the batch; 0: off"
    )
    codebook_weight: float = opt(1.0, "weight of the codebook + commitment loss")
    l1_weight: float = opt(1.0, "weight of the pixel L1 loss")
    perceptual_weight: float = opt(
        0.1, "perceptual loss weight (VGG with --vgg-weights, else the gradient-pyramid fallback); 0: off"
    )
    gan_weight: float = opt(0.5, "adversarial weight (taming's disc_weight); 0: no discriminator")
    gan_loss: str = opt("hinge", "adversarial loss", choices=GAN_LOSSES)
    gan_start: int = opt(2000, "warm-up: steps before the discriminator and the adversarial loss switch on")
    adaptive_weight: bool = opt(
        True, "scale the adversarial loss by |grad rec| / |grad adv| at the decoder's last layer"
    )
    d_width: int = opt(32, "discriminator base channels")
    d_layers: int = opt(2, "discriminator strided layers (3: 70 px patches, 2: 34 px)")
    d_lr_ratio: float = opt(1.0, "discriminator learning rate relative to --lr")

    def __post_init__(self) -> None:
        check_choices(self)
        weights = (self.codebook_weight, self.l1_weight, self.perceptual_weight, self.gan_weight)
        if min(weights) < 0:
            raise ValueError("loss weights must be >= 0")
        if self.gan_start < 0 or self.d_layers < 1 or self.d_width < 1 or self.d_lr_ratio <= 0:
            raise ValueError("need gan-start >= 0, d-layers >= 1, d-width >= 1 and d-lr-ratio > 0")
        # the quantizer options are checked by VQGANConfig (see MaskGitVQGANTask.architecture)


def inference_vqgan(vqgan: VQGAN, resolution: int | None = None) -> VQGAN:
    """A frozen copy without the training-only quantizer machinery (EMA buffers, restarts): what
    gets exported and what stage 2 uses. Same codes, same outputs. ``resolution`` relabels the
    image size (attention stays at the same levels)."""
    config = replace(vqgan.config, ema_decay=0.0, restart_threshold=0.0)
    if resolution is not None:
        config = config.with_resolution(resolution)
    state = {k: v for k, v in vqgan.state_dict().items() if k not in TRAINING_ONLY_BUFFERS}
    clean = VQGAN(config).to(next(vqgan.parameters()).device)
    clean.load_state_dict(state)
    return clean.eval().requires_grad_(False)


class MaskGitVQGANTask(Task):
    name = "maskgit-vqgan"
    engine_id = "maskgit-vqgan"
    description = "MaskGIT stage 1: VQGAN tokenizer (L1 + perceptual + patch GAN + codebook loss)"
    Options = VQGANOptions
    default_lr = 2e-4
    ema_modules = ()  # see the module docstring
    init_module = "vqgan"

    def __init__(self, options: VQGANOptions, config: Any) -> None:
        super().__init__(options, config)
        self.arch = self.architecture()
        self.perceptual: PerceptualLoss | None = None
        # reconstructions of this step's G phase, reused by its D phase (one VQGAN forward per step,
        # and the quantizer's running statistics see each batch once)
        self._recent: list[tuple[torch.Tensor, torch.Tensor]] = []

    @property
    def gan(self) -> bool:
        return self.options.gan_weight > 0

    def architecture(self) -> VQGANConfig:
        o = self.options
        return VQGANConfig(
            ch=o.ch,
            ch_mult=tuple(o.ch_mult),
            num_res_blocks=o.num_res_blocks,
            attn_resolutions=tuple(o.attn_resolutions),
            z_channels=o.z_channels,
            resolution=self.config.resolution,
            n_embed=o.n_embed,
            embed_dim=o.embed_dim,
            beta=o.beta,
            ema_decay=o.codebook_ema,
            restart_threshold=o.restart_threshold,
        )

    # ---------------------------------------------------------------- building
    def build_modules(self) -> dict[str, nn.Module]:
        modules: dict[str, nn.Module] = {"vqgan": VQGAN(self.arch)}
        if self.gan:
            modules["discriminator"] = PatchDiscriminator(3, self.options.d_width, self.options.d_layers)
        return modules

    def build_optimizers(
        self, modules: Mapping[str, nn.Module], lr: float
    ) -> dict[str, torch.optim.Optimizer]:
        params = [p for p in modules["vqgan"].parameters() if p.requires_grad]
        opts: dict[str, torch.optim.Optimizer] = {"vqgan": torch.optim.Adam(params, lr=lr, betas=(0.5, 0.9))}
        if self.gan:
            opts["discriminator"] = torch.optim.Adam(
                modules["discriminator"].parameters(), lr=lr * self.options.d_lr_ratio, betas=(0.5, 0.9)
            )
        return opts

    def phases(self) -> tuple[Phase, ...]:
        phases = [Phase("G", "vqgan", ("vqgan",))]
        if self.gan:
            phases.append(Phase("D", "discriminator", ("discriminator",), start=self.options.gan_start))
        return tuple(phases)

    def setup(self, modules: Mapping[str, nn.Module], device: torch.device) -> None:
        super().setup(modules, device)
        self._quantizer = modules["vqgan"].quantize
        if self.options.restart_threshold > 0:
            # data-dependent start: codes the first batch leaves unused are re-seeded from its
            # latents at once, instead of after the ~300 steps their running use takes to decay
            self._quantizer.usage.fill_(self.options.restart_threshold)
        if self.options.perceptual_weight > 0:
            self.perceptual = PerceptualLoss(self.options.vgg_weights).to(device)

    def dead_codes(self) -> int:
        """Codes the data does not pick. With restarts: those at or below the threshold after this
        step's update (a re-seeded code sits exactly at it until a batch chooses it); without:
        running use below 0.01 per step."""
        quantizer = self._quantizer
        if quantizer.restart_threshold > 0:
            return int((quantizer.usage <= quantizer.restart_threshold).sum())
        return quantizer.dead_codes(DEAD_BELOW)

    def state_dict(self) -> dict[str, Any]:
        # the quantizer's running code use decides restarts but is not a saved buffer: keep it
        # here so that a resumed run re-seeds exactly the codes the uninterrupted one would
        return {"code_usage": self._quantizer.usage.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "code_usage" in state:
            usage = torch.tensor(state["code_usage"], dtype=self._quantizer.usage.dtype)
            self._quantizer.usage.copy_(usage.to(self._quantizer.usage.device))

    # ---------------------------------------------------------------- per step
    def prepare_batch(self, sample: Batch, step: int | None, rng: np.random.Generator) -> Batch:
        self._recent.clear()
        return {"image": sample["image"]}

    def _reconstruction_for_critic(self, vqgan: nn.Module, image: torch.Tensor) -> torch.Tensor:
        for seen, rec in self._recent:
            if seen is image:
                return rec
        quantizer = bare(vqgan).quantize
        was_training = quantizer.training
        quantizer.eval()  # no codebook updates from a forward that trains nothing
        try:
            with torch.no_grad():
                return vqgan(image).reconstruction
        finally:
            quantizer.train(was_training)

    def loss(
        self, phase: str, nets: Mapping[str, nn.Module], batch: Batch, step: int
    ) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        image, o = batch["image"], self.options
        if phase == "G":
            vqgan = nets["vqgan"]
            rec, quant = vqgan(image)
            if self.gan and step >= o.gan_start:
                self._recent.append((image, rec.detach()))
            l1 = (rec - image).abs().mean()
            rec_loss = o.l1_weight * l1
            logs: dict[str, float | torch.Tensor] = {"l1": l1}
            if self.perceptual is not None:
                perc = self.perceptual(rec, image)
                rec_loss = rec_loss + o.perceptual_weight * perc
                logs["perceptual"] = perc
            total = rec_loss + o.codebook_weight * quant.loss
            if self.gan and step >= o.gan_start:
                # real + fake in one batch, as in the critic's own step: its BatchNorm then normalises
                # the fakes with the same statistics it was trained with (a fake-only batch would not)
                fake_logits = nets["discriminator"](torch.cat([image, rec])).chunk(2)[1]
                adv = losses.g_loss(fake_logits, o.gan_loss)
                weight = (
                    losses.adaptive_gan_weight(rec_loss, adv, bare(vqgan).last_layer_weight())
                    if o.adaptive_weight
                    else torch.ones((), device=image.device)
                )
                total = total + o.gan_weight * weight * adv
                logs.update(adv=adv, adaptive_weight=weight)
            with torch.no_grad():
                mse = F.mse_loss(rec.float().clamp(-1, 1), image.float())
            logs.update(
                codebook=quant.loss,
                psnr=10 * torch.log10(4.0 / mse.clamp_min(1e-10)),  # images span 2 (range [-1, 1])
                perplexity=quant.perplexity,
                used_codes=quant.used_codes.float(),
                dead_codes=float(self.dead_codes()),
            )
            return total, logs
        if phase == "D":
            rec = self._reconstruction_for_critic(nets["vqgan"], image)
            logits = nets["discriminator"](torch.cat([image, rec]))
            real, fake = logits.chunk(2)
            # halved, as taming's critic loss is
            return 0.5 * losses.d_loss(real, fake, o.gan_loss), {"real": real.mean(), "fake": fake.mean()}
        raise ValueError(f"unknown phase {phase!r}")

    # ---------------------------------------------------------------- evaluation / export
    @torch.no_grad()
    def validation_metrics(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, torch.Tensor]:
        image = batch["image"]
        rec, quant = nets["vqgan"](image)
        pred, target = (rec.clamp(-1, 1) + 1) / 2, (image + 1) / 2
        everywhere = torch.ones_like(image[:, :1])
        codes = torch.tensor([float(torch.unique(i).numel()) for i in quant.indices], device=image.device)
        return {
            "rec_psnr": metrics.hole_psnr(pred, target, everywhere),
            "rec_ssim": metrics.hole_ssim(pred, target, everywhere),
            "rec_l1": (rec.clamp(-1, 1) - image).abs().flatten(1).mean(1),
            "codes_per_image": codes,
        }

    @torch.no_grad()
    def sample_images(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, torch.Tensor]:
        image = batch["image"]
        rec = nets["vqgan"](image).reconstruction.clamp(-1, 1)
        error = ((rec - image).abs().mean(1, keepdim=True) * 4 - 1).clamp(-1, 1).expand_as(image)
        return {"target": image, "reconstruction": rec, "error x2": error}

    def export(self, nets: Mapping[str, nn.Module]) -> ExportSpec:
        clean = inference_vqgan(nets["vqgan"])
        o = self.options
        return ExportSpec(
            arch={VQGAN_PART: clean.config.to_dict()},
            parts={VQGAN_PART: clean.state_dict()},
            extra={
                "value_range": [-1, 1],
                "factor": clean.factor,
                "training_quantizer": {"ema_decay": o.codebook_ema, "restart_threshold": o.restart_threshold},
                "perceptual": self.perceptual.source if self.perceptual is not None else "off",
            },
        )
