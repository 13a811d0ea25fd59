"""InP-Net training task: reconstruction (MSE, the paper's lambda1) and an optional adversarial
loss (lambda2) with a patch discriminator, non-saturating or hinge, and lazy R1.

The paper's six variants are presets over three switches:

  ============================  ==========  ==============  =========
  variant                       masking     skip links      loss
  ============================  ==========  ==============  =========
  random                        random      no              recon
  random-skip                   random      yes             recon
  dynamic                       dynamic     no              recon
  dynamic-skip (default)        dynamic     yes             recon
  random-skip-gan               random      yes             recon+GAN
  dynamic-skip-gan              dynamic     yes             recon+GAN
  ============================  ==========  ==============  =========

``custom`` takes ``--masking``, ``--skip`` and ``--gan`` as given. "random" masking drops random
patches at a ratio drawn per image from [ratio-min, ratio-max]; "dynamic" draws each image's
mask from the ``--masks`` mixture (patch, the nine structured anchors, free-form strokes, large
irregular holes, boxes, ...) while the largest patch ratio warms up over ``--ratio-warmup`` steps.
Without skip links the decoder gets neither intermediate encoder layers nor the image itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from inpaint_studio.models.mae.inpnet import InpNet, InpNetConfig, patch_drop

from .. import losses
from ..config import MaskFolderOptions, PerceptualOptions, check_choices, opt
from ..masks import MaskMixture, RatioWarmup, patch_mask
from ..nets import PatchDiscriminator
from ..perceptual import PerceptualLoss
from ..task import Batch, ExportSpec, Phase, Task, gan_phases, with_given_masks

VARIANTS: dict[str, tuple[str, bool, bool]] = {
    "random": ("random", False, False),
    "random-skip": ("random", True, False),
    "dynamic": ("dynamic", False, False),
    "dynamic-skip": ("dynamic", True, False),
    "random-skip-gan": ("random", True, True),
    "dynamic-skip-gan": ("dynamic", True, True),
}


@dataclass(frozen=True)
class InpNetOptions(PerceptualOptions, MaskFolderOptions):
    variant: str = opt("dynamic-skip", "paper variant preset (or 'custom')", choices=(*VARIANTS, "custom"))
    masking: str = opt(
        "dynamic", "custom variant: random patch masks or the dynamic mixture", choices=("random", "dynamic")
    )
    skip: bool = opt(True, "custom variant: skip links from encoder layers (and the image) to the decoder")
    gan: bool = opt(False, "custom variant: add the adversarial loss")
    patch_size: int = opt(8, "patch size (a power of two)")
    embed_dim: int = opt(192, "encoder width")
    depth: int = opt(6, "encoder blocks")
    num_heads: int = opt(3, "encoder attention heads")
    skip_layers: tuple[int, ...] = opt((4, 2), "encoder blocks (1-based) feeding decoder stages 1, 2, ...")
    bridge_depth: int = opt(2, "transformer blocks over all positions before the conv decoder")
    bridge_dim: int = opt(128, "width of the bridge")
    decoder_channels: tuple[int, ...] = opt((128, 64, 32), "conv decoder channels, one per x2 stage")
    decoder_res_blocks: int = opt(1, "residual blocks per decoder stage")
    mask_channel: bool = opt(True, "give the encoder the pixel hole mask as a 4th channel")
    image_pyramid: bool = opt(
        True, "skip links: also feed the downscaled masked image to every decoder stage"
    )
    prefill: str = opt(
        "pullpush",
        "hole pixels at the input: zeros (the paper) or a pull-push average",
        choices=("zero", "pullpush"),
    )
    residual: bool = opt(
        True, "the decoder predicts a correction added to the prefilled image (starts as the prefill)"
    )
    masks: str = opt(
        "patch:0.15,structured:0.05,strokes:0.25,medium:0.1,thick:0.15,irregular:0.15,box:0.15",
        "dynamic masking: weighted mask kinds (see trainers/masks.py)",
    )
    ratio_min: float = opt(0.0, "smallest patch-drop ratio")
    ratio_max: float = opt(0.9, "largest patch-drop ratio")
    ratio_warmup: int = opt(2000, "steps over which the largest ratio grows from ratio-warmup-start")
    ratio_warmup_start: float = opt(0.3, "largest ratio at step 0 (dynamic masking)")
    hole_threshold: float = opt(0.25, "a patch is dropped when more than this share of it is hole")
    recon: str = opt("l2", "reconstruction loss", choices=("l2", "l1"))
    per_image_loss: bool = opt(
        True, "average the loss within each image first (thin strokes weigh as much as big holes)"
    )
    recon_weight: float = opt(1.0, "lambda1: weight of the reconstruction loss")
    valid_weight: float = opt(0.2, "relative weight of the reconstruction outside the hole")
    perceptual_weight: float = opt(
        0.0, "perceptual loss weight (VGG with --vgg-weights, else a gradient pyramid)"
    )
    adv_weight: float = opt(0.01, "lambda2: adversarial loss weight (GAN variants)")
    adv_loss: str = opt("nonsaturating", "adversarial loss", choices=("nonsaturating", "hinge"))
    r1_gamma: float = opt(1.0, "R1 penalty weight (0: off)")
    r1_interval: int = opt(16, "apply R1 lazily every this many steps")
    d_lr_ratio: float = opt(1.0, "discriminator learning rate relative to --lr")
    d_channels: int = opt(64, "discriminator base channels")
    weight_decay: float = opt(0.05, "AdamW weight decay of the generator")

    def __post_init__(self) -> None:
        check_choices(self)
        if not 0 <= self.ratio_min <= self.ratio_max <= 1:
            raise ValueError("need 0 <= ratio-min <= ratio-max <= 1")
        if not 0 <= self.hole_threshold < 1:
            raise ValueError("hole-threshold must be in [0, 1)")
        if self.r1_interval < 1 or self.ratio_warmup < 0:
            raise ValueError("r1-interval must be >= 1 and ratio-warmup >= 0")

    @property
    def resolved(self) -> tuple[str, bool, bool]:
        """(masking, skip, gan) after applying the variant preset."""
        return VARIANTS.get(self.variant, (self.masking, self.skip, self.gan))


class InpNetTask(Task):
    name = "inpnet"
    engine_id = "inpnet"
    description = "InP-Net: ViT over visible patches + skip links + light conv decoder (fast, deterministic)"
    Options = InpNetOptions
    default_lr = 3e-4
    ema_modules = ("generator",)

    def __init__(self, options: InpNetOptions, config: Any) -> None:
        super().__init__(options, config)
        self.masking, self.skip, self.gan = options.resolved
        self.arch = self.architecture()
        self.mixture: MaskMixture | None = None
        if self.masking == "dynamic":
            self.mixture = MaskMixture(
                options.masks,
                patch=options.patch_size,
                ratio_range=(options.ratio_min, options.ratio_max),
                warmup=RatioWarmup(
                    min(options.ratio_warmup_start, options.ratio_max),
                    options.ratio_max,
                    options.ratio_warmup,
                ),
                mask_dir=options.mask_dir,
            )
        self.perceptual: PerceptualLoss | None = None

    def architecture(self) -> InpNetConfig:
        o = self.options
        return InpNetConfig(
            img_size=self.config.resolution,
            patch_size=o.patch_size,
            mask_channel=o.mask_channel,
            embed_dim=o.embed_dim,
            depth=o.depth,
            num_heads=o.num_heads,
            skip_layers=tuple(o.skip_layers) if self.skip else (),
            bridge_dim=o.bridge_dim,
            bridge_depth=o.bridge_depth,
            bridge_heads=max(1, o.bridge_dim // 32),
            decoder_channels=tuple(o.decoder_channels),
            decoder_res_blocks=o.decoder_res_blocks,
            image_skip=self.skip,
            image_pyramid=self.skip and o.image_pyramid,
            prefill=o.prefill,
            residual=o.residual,
        )

    # ---------------------------------------------------------------- building
    def build_modules(self) -> dict[str, nn.Module]:
        modules: dict[str, nn.Module] = {"generator": InpNet(**self.arch.to_dict())}
        if self.gan:
            # RGB + hole mask; GroupNorm: the G phase shows the critic fakes alone
            modules["discriminator"] = PatchDiscriminator(4, self.options.d_channels, norm="group")
        return modules

    def build_optimizers(
        self, modules: Mapping[str, nn.Module], lr: float
    ) -> dict[str, torch.optim.Optimizer]:
        gen = modules["generator"]
        decay = [
            p for n, p in gen.named_parameters() if p.requires_grad and p.ndim >= 2 and "pos_embed" not in n
        ]
        rest = [
            p
            for n, p in gen.named_parameters()
            if p.requires_grad and not (p.ndim >= 2 and "pos_embed" not in n)
        ]
        opts: dict[str, torch.optim.Optimizer] = {
            "generator": torch.optim.AdamW(
                [
                    {"params": decay, "weight_decay": self.options.weight_decay},
                    {"params": rest, "weight_decay": 0.0},
                ],
                lr=lr,
                betas=(0.9, 0.95),
            )
        }
        if self.gan:
            opts["discriminator"] = torch.optim.Adam(
                modules["discriminator"].parameters(), lr=lr * self.options.d_lr_ratio, betas=(0.5, 0.99)
            )
        return opts

    def phases(self) -> tuple[Phase, ...]:
        if not self.gan:
            return (Phase("G", "generator", ("generator",), ema=True),)
        return gan_phases(r1_interval=self.options.r1_interval if self.options.r1_gamma > 0 else 0)

    def setup(self, modules: Mapping[str, nn.Module], device: torch.device) -> None:
        super().setup(modules, device)
        if self.options.perceptual_weight > 0:
            self.perceptual = PerceptualLoss(self.options.vgg_weights).to(device)

    # ---------------------------------------------------------------- per step
    def prepare_batch(self, sample: Batch, step: int | None, rng: np.random.Generator) -> Batch:
        images = sample["image"]
        n, _, h, w = images.shape
        o = self.options
        if self.mixture is not None:
            holes = self.mixture.batch(n, h, w, rng, step)
        else:
            holes = np.stack(
                [
                    patch_mask(h, w, rng, o.patch_size, float(rng.uniform(o.ratio_min, o.ratio_max)))
                    for _ in range(n)
                ]
            )
        mask = torch.from_numpy(holes).to(images.device, torch.float32).unsqueeze(1)
        return {"image": images, "mask": with_given_masks(sample, mask)}

    def _generate(self, net: nn.Module, batch: Batch) -> torch.Tensor:
        drop = patch_drop(batch["mask"], self.options.patch_size, self.options.hole_threshold)
        return net(batch["image"], batch["mask"], drop)

    def loss(
        self, phase: str, nets: Mapping[str, nn.Module], batch: Batch, step: int
    ) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        image, mask = batch["image"], batch["mask"]
        o = self.options
        if phase == "G":
            out = self._generate(nets["generator"], batch)
            dist = losses.masked_l2 if o.recon == "l2" else losses.masked_l1
            hole = dist(out, image, mask, "hole", o.per_image_loss)
            valid = dist(out, image, mask, "valid", o.per_image_loss)
            total = o.recon_weight * (hole + o.valid_weight * valid)
            logs: dict[str, float | torch.Tensor] = {"hole": hole, "valid": valid, "hole_ratio": mask.mean()}
            if self.perceptual is not None:
                comp = out * mask + image * (1 - mask)
                perc = self.perceptual(comp, image)
                total = total + o.perceptual_weight * perc
                logs["perceptual"] = perc
            if self.gan:
                comp = out * mask + image * (1 - mask)
                adv = losses.g_loss(nets["discriminator"](torch.cat([comp, mask], 1)), o.adv_loss)
                total = total + o.adv_weight * adv
                logs["adv"] = adv
            return total, logs
        if phase == "D":
            with torch.no_grad():
                out = self._generate(nets["generator"], batch)
                comp = out * mask + image * (1 - mask)
            logits = nets["discriminator"](
                torch.cat([torch.cat([image, mask], 1), torch.cat([comp, mask], 1)])
            )
            real, fake = logits.chunk(2)
            return losses.d_loss(real, fake, o.adv_loss), {"real": real.mean(), "fake": fake.mean()}
        if phase == "Dreg":
            real = torch.cat([image, mask], 1).detach().requires_grad_(True)
            logits = nets["discriminator"](real)
            r1 = losses.r1_penalty(logits, real)
            # "+ 0 * logits": the last bias gets no R1 gradient; DDP needs every parameter in the graph
            return r1 * (o.r1_gamma / 2) * o.r1_interval + 0.0 * logits.mean(), {"r1": r1}
        raise ValueError(f"unknown phase {phase!r}")

    # ---------------------------------------------------------------- evaluation / export
    @torch.no_grad()
    def inpaint(self, nets: Mapping[str, nn.Module], batch: Batch) -> torch.Tensor:
        out = self._generate(nets["generator"], batch).clamp(-1, 1)
        return out * batch["mask"] + batch["image"] * (1 - batch["mask"])

    def export(self, nets: Mapping[str, nn.Module]) -> ExportSpec:
        return ExportSpec(
            arch=self.arch.to_dict(),
            parts={"model": nets["generator"].state_dict()},
            extra={
                "hole_threshold": self.options.hole_threshold,
                "value_range": [-1, 1],
                "variant": self.options.variant,
            },
        )
