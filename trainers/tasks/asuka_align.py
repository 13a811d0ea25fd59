"""ASUKA alignment training (``inpaint-studio-train asuka-align``): the prior as SD's condition (paper, Sec. 3.2).

The alignment module (:class:`~inpaint_studio.models.asuka.alignment.AlignmentModule`) turns the frozen
MAE prior's tokens (``--prior``: an ``asuka-prior`` weights folder) into the cross-attention condition of
the frozen SD-1.5 inpainting UNet (``--sd15``), in place of the 77 text tokens. Objective: SD's own, the
epsilon error of the UNet at t ~ U[0, 1000) on the latent of the photo, with the mask and the masked
photo's latent as the inpainting UNet's extra inputs. Holes come from ASUKA's mask mix. With probability
p the prior is the MAE's *reconstructed* prior (computed with nothing masked) instead of the predicted
one; p falls from 100 % to 10 % over the first 2K steps, then stays (``trainers/asuka_recipe.py``).

Only the alignment module trains; the prior, the UNet and the VAE are built by :meth:`build_frozen` and
stay out of checkpoints and optimizers. The paper trains it with AdamW at a printed learning rate of 5e-2;
we default to 1e-4 (``--lr`` sets any). The export is the module's bundle (``load_part`` reads it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inpaint_studio.models.asuka import importer
from inpaint_studio.models.asuka.alignment import AlignmentModule

from .. import asuka_recipe as recipe
from .. import asuka_sd as sd
from ..asuka_masks import AsukaMasks
from ..config import MaskFolderOptions, opt
from ..task import Batch, ExportSpec, Phase, Task


@dataclass(frozen=True)
class AsukaAlignOptions(sd.SD15Options, MaskFolderOptions):
    prior: str | None = opt(None, "REQUIRED: the MAE prior (an asuka-prior weights folder), kept frozen")
    depth: int = opt(4, "self-attention blocks of the alignment module")
    head_dim: int = opt(64, "attention head width (must divide the UNet's cross-attention width)")
    substitution_start: float = opt(recipe.SUBSTITUTION_START, "p at step 0 (reconstructed prior instead)")
    substitution_end: float = opt(recipe.SUBSTITUTION_END, "p after the decay")
    substitution_steps: int = opt(recipe.SUBSTITUTION_STEPS, "steps over which p decays linearly")
    weight_decay: float = opt(0.01, "AdamW weight decay")

    def __post_init__(self) -> None:
        if not (0 <= self.substitution_end <= 1 and 0 <= self.substitution_start <= 1):
            raise ValueError("substitution probabilities must be in [0, 1]")
        if self.substitution_steps < 0 or self.depth < 1:
            raise ValueError("substitution-steps >= 0 and depth >= 1")

    @property
    def schedule(self) -> dict[str, float]:
        return dict(start=self.substitution_start, end=self.substitution_end, steps=self.substitution_steps)


class AsukaAlignTask(Task):
    name = "asuka-align"
    engine_id = importer.ALIGN_ENGINE
    description = "ASUKA: align the MAE prior with SD-1.5 inpainting (needs --sd15 and --prior)"
    Options = AsukaAlignOptions
    default_lr = 1e-4
    ema_modules = ("align",)
    init_module = "align"

    def __init__(self, options: AsukaAlignOptions, config: Any) -> None:
        super().__init__(options, config)
        if not options.prior:
            raise ValueError(
                "asuka-align needs the MAE prior: --prior FOLDER (an asuka-prior weights folder)"
            )
        self.prior = importer.load_part(options.prior, engine=importer.PRIOR_ENGINE)
        self.sd = sd.load_frozen_sd(options, unet=True)
        if self.sd.unet.config.in_channels != 9:
            raise ValueError(f"{options.sd15} is not an inpainting model (its UNet takes 4 channels, not 9)")
        self.masks = AsukaMasks(options.mask_dir)

    def build_modules(self) -> dict[str, nn.Module]:
        cond = int(self.sd.unet.config.cross_attention_dim)
        return {
            "align": AlignmentModule(self.prior.feature_dim, cond, self.options.depth, self.options.head_dim)
        }

    def build_frozen(self) -> dict[str, nn.Module]:
        return {"prior": self.prior, "unet": self.sd.unet, "vae": self.sd.vae}

    def build_optimizers(
        self, modules: Mapping[str, nn.Module], lr: float
    ) -> dict[str, torch.optim.Optimizer]:
        params = [p for p in modules["align"].parameters() if p.requires_grad]
        return {"align": torch.optim.AdamW(params, lr=lr, weight_decay=self.options.weight_decay)}

    def phases(self) -> tuple[Phase, ...]:
        return (Phase("main", "align", ("align",), ema=True),)

    # ---------------------------------------------------------------- per step
    @torch.no_grad()
    def prepare_batch(self, sample: Batch, step: int | None, rng: np.random.Generator) -> Batch:
        """Latents, noise, timesteps and the (maybe substituted) prior: everything but the trained part."""
        image = sample["image"]
        n = image.shape[0]
        mask = self.masks.for_batch(sample, rng)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        vae = self.sd.vae
        z0 = sd.encode(vae, image, gen)
        masked = sd.encode(vae, image * (mask < 0.5), gen)
        t = torch.randint(0, len(self.sd.alphas_cumprod), (n,), generator=gen).to(image.device)
        eps = torch.randn(z0.shape, generator=gen).to(z0)
        x, m = self.prior_inputs_for({"image": image, "mask": mask})
        prior = self.prior(x, m)
        substitute = torch.zeros(n, dtype=torch.bool, device=image.device)
        if step is not None:
            substitute = torch.from_numpy(recipe.draw_substitution(step, n, rng, **self.options.schedule))
            substitute = substitute.to(image.device)
            if substitute.any():
                prior = torch.where(substitute.view(-1, 1, 1), self.prior.reconstructed_prior(x), prior)
        return {"image": image, "mask": mask, "prior": prior, "substituted": substitute.float(),
                "unet_in": sd.inpainting_unet_input(sd.add_noise(z0, eps, t, self.sd.alphas_cumprod), mask, masked),
                "t": t, "eps": eps}  # fmt: skip

    def prior_inputs_for(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return sd.prior_inputs(batch["image"], batch["mask"], self.prior.img_size)

    def _eps_error(self, nets: Mapping[str, nn.Module], batch: Batch) -> torch.Tensor:
        cond = nets["align"](batch["prior"])
        eps_hat = nets["unet"](batch["unet_in"], batch["t"], encoder_hidden_states=cond).sample
        return F.mse_loss(eps_hat.float(), batch["eps"].float(), reduction="none").mean(dim=(1, 2, 3))

    def loss(
        self, phase: str, nets: Mapping[str, nn.Module], batch: Batch, step: int
    ) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        err = self._eps_error(nets, batch)
        return err.mean(), {"substituted": batch["substituted"].mean(), "hole_ratio": batch["mask"].mean()}

    # ---------------------------------------------------------------- evaluation / export
    @torch.no_grad()
    def validation_metrics(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, torch.Tensor]:
        """The epsilon error with the predicted prior (no substitution at validation)."""
        return {"eps_mse": self._eps_error(nets, batch)}

    @torch.no_grad()
    def sample_images(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, torch.Tensor]:
        image, mask = batch["image"], batch["mask"]
        return {"input": image * (1 - mask), "mask": mask.expand_as(image) * 2 - 1, "target": image}

    def export(self, nets: Mapping[str, nn.Module]) -> ExportSpec:
        align = nets["align"]
        return ExportSpec(arch=dict(align.config), parts={"model": align.state_dict()}, extra={})
