"""ASUKA decoder training (``inpaint-studio-train asuka-decoder``): local harmonisation (paper, Sec. 3.3).

The decoder (:class:`~inpaint_studio.models.asuka.decoder.AsukaDecoder`) starts as the person's SD VAE
decoder (``--sd15``, or ``--vae`` for another KL autoencoder) with a fresh condition encoder, and learns to
decode a latent that does NOT match the photo into an image that does:

* colour augmentation: every training image is colour-jittered (brightness 0.15, contrast 0.2,
  saturation 0.1, hue 0.03) before the frozen VAE encoder makes its latent, while the condition (the
  masked image) is the untouched photo and the target the untouched photo: the decoder must take the
  colours of the known region from the pixels it is given, not from the latent;
* latent augmentation, on ``latent-aug`` of the samples: the frozen SD-1.5 inpainting UNet's one-step
  estimate of z0 from t in [500, 1000), conditioned on the clean latent as the masked-image latent, an
  all-zero mask and the empty prompt, which tells SD everything about the image so that the estimate
  keeps the content and carries only SD's generation gap. The paper precomputes these offline; we
  compute them on the fly with the frozen UNet (``--latent-aug 0`` needs no UNet);
* loss: L1 + ``perceptual-weight`` x perceptual + ``adv-weight`` x adversarial (a patch discriminator
  over RGB + hole mask); the pretrained VAE-decoder parameters train at 0.1x the learning rate
  (default 8e-5, cosine); the VAE encoder stays frozen.

Holes come from ASUKA's mask mix (``trainers/asuka_masks.py``). The export is the decoder's bundle
(``models/asuka/importer.py`` ``load_part`` reads it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from inpaint_studio.models.asuka.decoder import AsukaDecoder
from inpaint_studio.models.asuka.importer import DECODER_ENGINE

from .. import asuka_recipe as recipe
from .. import asuka_sd as sd
from .. import losses
from ..asuka_masks import AsukaMasks
from ..config import MaskFolderOptions, PerceptualOptions, check_choices, opt
from ..nets import PatchDiscriminator
from ..perceptual import PerceptualLoss
from ..task import Batch, ExportSpec, Phase, Task


@dataclass(frozen=True)
class AsukaDecoderOptions(sd.SD15Options, PerceptualOptions, MaskFolderOptions):
    latent_aug: float = opt(recipe.LATENT_AUG_P, "share of samples decoded from SD's one-step z0 estimate")
    brightness: float = opt(0.15, "colour augmentation: brightness")
    contrast: float = opt(0.2, "colour augmentation: contrast")
    saturation: float = opt(0.1, "colour augmentation: saturation")
    hue: float = opt(0.03, "colour augmentation: hue")
    pretrained_lr_scale: float = opt(
        recipe.PRETRAINED_LR_SCALE,
        "learning-rate factor of the VAE decoder's weights (the paper's 0.1 is for ~50K steps; a run of a "
        "few thousand steps needs 1: the decoder must learn to live beside the condition features)",
    )
    l1_weight: float = opt(1.0, "weight of the L1 loss against the clean image")
    perceptual_weight: float = opt(
        1.0, "perceptual loss weight (VGG with --vgg-weights, else a gradient pyramid)"
    )
    adv_weight: float = opt(0.1, "adversarial loss weight (0: no discriminator)")
    adv_start: int = opt(0, "step at which the discriminator and the adversarial loss start")
    adv_loss: str = opt("hinge", "adversarial loss", choices=("nonsaturating", "hinge"))
    d_channels: int = opt(64, "discriminator base channels")
    d_layers: int = opt(3, "discriminator layers")

    def __post_init__(self) -> None:
        check_choices(self)
        if not 0 <= self.latent_aug <= 1:
            raise ValueError("latent-aug must be in [0, 1]")
        if min(self.l1_weight, self.perceptual_weight, self.adv_weight, self.pretrained_lr_scale) < 0:
            raise ValueError("loss weights and pretrained-lr-scale must be >= 0")
        if self.adv_start < 0 or self.d_channels < 4 or self.d_layers < 1:
            raise ValueError("adv-start >= 0, d-channels >= 4 and d-layers >= 1")


class AsukaDecoderTask(Task):
    name = "asuka-decoder"
    engine_id = DECODER_ENGINE
    description = (
        "ASUKA: the colour-consistent decoder (SD VAE decoder + condition encoder; needs --sd15 or --vae)"
    )
    Options = AsukaDecoderOptions
    default_lr = 8e-5
    ema_modules = ("decoder",)
    init_module = "decoder"

    def __init__(self, options: AsukaDecoderOptions, config: Any) -> None:
        super().__init__(options, config)
        self.sd = sd.load_frozen_sd(options, unet=options.latent_aug > 0, text=options.latent_aug > 0)
        factor = 2 ** (len(self.sd.vae.config.block_out_channels) - 1)
        if config.resolution % factor:
            raise ValueError(
                f"--resolution {config.resolution} must be a multiple of the VAE's factor {factor}"
            )
        self.masks = AsukaMasks(options.mask_dir)
        self.jitter = recipe.ColorJitter(
            options.brightness, options.contrast, options.saturation, options.hue
        )
        self.gan = options.adv_weight > 0
        self.perceptual: PerceptualLoss | None = None
        self.empty: torch.Tensor | None = None
        self._recent: deque = deque(maxlen=2)

    # ---------------------------------------------------------------- building
    def build_modules(self) -> dict[str, nn.Module]:
        modules: dict[str, nn.Module] = {"decoder": AsukaDecoder.from_vae(self.sd.vae).float()}
        if self.gan:
            modules["discriminator"] = PatchDiscriminator(
                4, self.options.d_channels, self.options.d_layers, norm="group"
            )
        return modules

    def build_frozen(self) -> dict[str, nn.Module]:
        frozen: dict[str, nn.Module] = {"vae": self.sd.vae}
        if self.sd.unet is not None:
            frozen.update(unet=self.sd.unet, text_encoder=self.sd.text_encoder)
        return frozen

    def build_optimizers(
        self, modules: Mapping[str, nn.Module], lr: float
    ) -> dict[str, torch.optim.Optimizer]:
        groups = recipe.decoder_param_groups(modules["decoder"], lr, self.options.pretrained_lr_scale)
        opts: dict[str, torch.optim.Optimizer] = {
            "decoder": torch.optim.AdamW(groups, lr=lr, betas=(0.5, 0.9), weight_decay=0.0)
        }
        if self.gan:
            opts["discriminator"] = torch.optim.AdamW(
                modules["discriminator"].parameters(), lr=lr, betas=(0.5, 0.9), weight_decay=0.0
            )
        return opts

    def phases(self) -> tuple[Phase, ...]:
        g = Phase("G", "decoder", ("decoder",), ema=True)
        if not self.gan:
            return (g,)
        return g, Phase("D", "discriminator", ("discriminator",), start=self.options.adv_start)

    def setup(self, modules: Mapping[str, nn.Module], device: torch.device) -> None:
        super().setup(modules, device)
        if self.options.perceptual_weight > 0:
            self.perceptual = PerceptualLoss(self.options.vgg_weights).to(device)
        if self.sd.unet is not None:
            self.empty = sd.empty_prompt(self.sd.text_encoder, self.sd.tokenizer, device)

    # ---------------------------------------------------------------- per step
    @torch.no_grad()
    def prepare_batch(self, sample: Batch, step: int | None, rng: np.random.Generator) -> Batch:
        image = sample["image"]
        n = image.shape[0]
        mask = self.masks.for_batch(sample, rng)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        jittered = self.jitter((image + 1) / 2, gen).to(image.device) * 2 - 1
        vae = self.sd.vae
        latent = sd.encode(vae, jittered.to(_dtype(vae)), gen).float()
        augment = torch.from_numpy(rng.random(n) < self.options.latent_aug).to(image.device)
        if augment.any():
            latent = torch.where(augment.view(-1, 1, 1, 1), self.one_step_estimate(latent, gen), latent)
        return {"image": image, "mask": mask, "z": sd.to_decoder_input(vae, latent.to(_dtype(vae))).float(),
                "latent_aug": augment.float()}  # fmt: skip

    @torch.no_grad()
    def one_step_estimate(self, z0: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """SD's z0 estimate from a large t, told everything: z0 as the known latent, nothing masked."""
        unet, alphas = self.sd.unet, self.sd.alphas_cumprod
        t = recipe.sample_timesteps(z0.shape[0], gen).to(z0.device)
        eps = torch.randn(z0.shape, generator=gen).to(z0.device)
        z_t = sd.add_noise(z0, eps, t, alphas)
        inputs = sd.inpainting_unet_input(z_t, torch.zeros_like(z0[:, :1]), z0)
        cond = self.empty.expand(z0.shape[0], -1, -1)
        dtype = _dtype(unet)
        eps_hat = unet(inputs.to(dtype), t, encoder_hidden_states=cond.to(dtype)).sample
        return recipe.one_step_z0(z_t, eps_hat.float(), t, alphas)

    def loss(
        self, phase: str, nets: Mapping[str, nn.Module], batch: Batch, step: int
    ) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        image, mask, o = batch["image"], batch["mask"], self.options
        if phase == "G":
            out = nets["decoder"](batch["z"], image, mask)
            self._recent.append((image, out.detach()))
            l1 = (out - image).abs().mean()
            total = o.l1_weight * l1
            logs: dict[str, float | torch.Tensor] = {
                "l1": l1,
                "hole_l1": losses.masked_l1(out.detach(), image, mask, "hole"),
                "valid_l1": losses.masked_l1(out.detach(), image, mask, "valid"),
            }
            if self.perceptual is not None:
                perc = self.perceptual(out, image)
                total = total + o.perceptual_weight * perc
                logs["perceptual"] = perc
            if self.gan and step >= o.adv_start:
                adv = losses.g_loss(nets["discriminator"](torch.cat([out, mask], 1)), o.adv_loss)
                total = total + o.adv_weight * adv
                logs["adv"] = adv
            return total, logs
        if phase == "D":
            fake = next((f for seen, f in self._recent if seen is image), None)
            if fake is None:
                with torch.no_grad():
                    fake = nets["decoder"](batch["z"], image, mask)
            logits = nets["discriminator"](
                torch.cat([torch.cat([image, mask], 1), torch.cat([fake, mask], 1)])
            )
            real, fake_logits = logits.chunk(2)
            return losses.d_loss(real, fake_logits, o.adv_loss), {
                "real": real.mean(),
                "fake": fake_logits.mean(),
            }
        raise ValueError(f"unknown phase {phase!r}")

    # ---------------------------------------------------------------- evaluation / export
    @torch.no_grad()
    def inpaint(self, nets: Mapping[str, nn.Module], batch: Batch) -> torch.Tensor:
        """The decode of the (augmented) latent, hole included: validation scores the harmonisation."""
        return nets["decoder"](batch["z"], batch["image"], batch["mask"]).clamp(-1, 1)

    @torch.no_grad()
    def validation_metrics(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, torch.Tensor]:
        scores = super().validation_metrics(nets, batch)
        out = self.inpaint(nets, batch)
        scores["l1"] = (out - batch["image"]).abs().mean(dim=(1, 2, 3))
        return scores

    def export(self, nets: Mapping[str, nn.Module]) -> ExportSpec:
        decoder = nets["decoder"]
        return ExportSpec(
            arch=dict(decoder.config),
            parts={"model": decoder.state_dict()},
            extra={"value_range": [-1, 1], "latent": "post_quant_conv(z / scaling_factor)"},
        )


def _dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype
