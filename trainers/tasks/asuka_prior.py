"""ASUKA prior fine-tuning (``inpaint-studio-train asuka-prior``): the MAE on inpainting masks (paper, Sec. 3.1).

The prior (:class:`~inpaint_studio.models.asuka.prior.AsukaPrior`) learns to reconstruct the hole's pixels
(squared error over hole pixels, in ImageNet-normalised space, as the MAE does) under ASUKA's mask mix:
50 % object-shaped, 40 % irregular, 10 % regular, hole ratio in [0.1, 0.75], each mask then grown with
whole random patches to ``patch-ratio`` of the patches as the official fine-tuning does
(``trainers/asuka_masks.py``).

Where it starts (``--init-from``): an ``asuka-prior`` weights folder (an earlier export, or the released
``mae_300.pth`` after ``import``), the released ``.pth`` itself (read through the restricted unpickler), an
MAE weights folder (``mae`` bundle: encoder and decoder copied, the border embedding and alpha fresh), or
a training checkpoint; the architecture then comes from those weights. Without it the prior starts from
scratch with the width options. The export is the prior's bundle (``load_part`` reads it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inpaint_studio.models.asuka import importer
from inpaint_studio.models.asuka.prior import AsukaPrior
from inpaint_studio.models.mae.mae import IMAGENET_MEAN, IMAGENET_STD

from ..asuka_masks import PRIOR_PATCH_RATIO, AsukaMasks, enlarge_to_patch_ratio
from ..config import MaskFolderOptions, opt
from ..task import Batch, ExportSpec, Phase, Task

WIDTHS = ("patch_size", "embed_dim", "depth", "num_heads", "decoder_embed_dim", "decoder_depth",
          "decoder_num_heads", "feature_layer")  # fmt: skip


@dataclass(frozen=True)
class AsukaPriorOptions(MaskFolderOptions):
    patch_size: int = opt(16, "patch size (from scratch)")
    embed_dim: int = opt(768, "encoder width (from scratch)")
    depth: int = opt(12, "encoder blocks (from scratch)")
    num_heads: int = opt(12, "encoder heads (from scratch)")
    decoder_embed_dim: int = opt(512, "decoder width = the prior's feature size (from scratch)")
    decoder_depth: int = opt(8, "decoder blocks (from scratch)")
    decoder_num_heads: int = opt(16, "decoder heads (from scratch)")
    feature_layer: int = opt(6, "the prior is the state entering this decoder block")
    patch_ratio: float = opt(PRIOR_PATCH_RATIO, "grow every mask to this share of patches (0: keep the mask)")
    weight_decay: float = opt(0.05, "AdamW weight decay")

    def __post_init__(self) -> None:
        if not 0 <= self.patch_ratio < 1:
            raise ValueError("patch-ratio must be in [0, 1)")


def read_prior(source: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """(arch, state) of a prior to start from; None for a training checkpoint (the base class loads it)."""
    from inpaint_studio.models.bundle import is_bundle, load_bundle

    from .. import checkpoint

    path = Path(source).expanduser()
    if not path.exists():
        raise ValueError(f"--init-from {path} does not exist")
    if path.is_dir() and (not is_bundle(path) or (path / checkpoint.STATE).is_file()):
        return None
    if path.is_file():  # the released mae_300.pth (or a checkpoint of its layout)
        with tempfile.TemporaryDirectory() as tmp:
            bundle = load_bundle(importer.import_prior(path, tmp), engine=importer.PRIOR_ENGINE)
            return dict(bundle.arch), dict(bundle.state_dict)
    bundle = load_bundle(path)
    if bundle.engine == importer.PRIOR_ENGINE:
        return dict(bundle.arch), dict(bundle.state_dict)
    if bundle.engine == "mae":
        model, _ = importer.prior_from_mae(bundle.state_dict, img_size=bundle.arch.get("img_size", 256))
        return dict(model.config), model.state_dict()
    raise ValueError(f"{path} holds '{bundle.engine}' weights, not an ASUKA prior or an MAE")


class AsukaPriorTask(Task):
    name = "asuka-prior"
    engine_id = importer.PRIOR_ENGINE
    description = (
        "ASUKA: fine-tune the MAE prior on inpainting masks (from an MAE, the released prior, or scratch)"
    )
    Options = AsukaPriorOptions
    default_lr = 1.5e-4
    ema_modules = ("prior",)
    init_module = "prior"

    def __init__(self, options: AsukaPriorOptions, config: Any) -> None:
        super().__init__(options, config)
        self.start = read_prior(config.init_from) if config.init_from else None
        if self.start is not None:
            self.arch = self.start[0]
        else:
            self.arch = {"img_size": config.resolution, **{k: getattr(options, k) for k in WIDTHS}}
        if self.arch["img_size"] != config.resolution:
            raise ValueError(
                f"the prior works at {self.arch['img_size']} px: train with --resolution {self.arch['img_size']}"
            )
        self.masks = AsukaMasks(options.mask_dir)

    def build_modules(self) -> dict[str, nn.Module]:
        return {"prior": AsukaPrior(**self.arch)}

    def build_optimizers(
        self, modules: Mapping[str, nn.Module], lr: float
    ) -> dict[str, torch.optim.Optimizer]:
        named = [(n, p) for n, p in modules["prior"].named_parameters() if p.requires_grad]
        decay = [p for n, p in named if p.ndim >= 2 and "token" not in n]
        rest = [p for n, p in named if not (p.ndim >= 2 and "token" not in n)]
        groups = [
            {"params": decay, "weight_decay": self.options.weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ]
        return {"prior": torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))}

    def phases(self) -> tuple[Phase, ...]:
        return (Phase("main", "prior", ("prior",), ema=True),)

    def initialize_from(self, source: str | Path, modules: Mapping[str, nn.Module]) -> str:
        if self.start is None:
            return super().initialize_from(source, modules)
        result = modules["prior"].load_state_dict(self.start[1], strict=False)
        return f"initialised the prior from {source}" + (
            f"; {len(result.missing_keys)} tensors keep their initialisation" if result.missing_keys else ""
        )

    def prepare_batch(self, sample: Batch, step: int | None, rng: np.random.Generator) -> Batch:
        image = sample["image"]
        mask = self.masks.for_batch(sample, rng)
        if self.options.patch_ratio > 0:
            p = self.arch["patch_size"]
            grown = [
                enlarge_to_patch_ratio(m[0].cpu().numpy() > 0.5, p, rng, self.options.patch_ratio)
                for m in mask
            ]
            mask = torch.from_numpy(np.stack(grown)).float().unsqueeze(1).to(image.device)
        return {"image": image, "mask": mask}

    def _inputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The full normalised image (the loss's target; hole pixels reach no token) and the mask."""
        return _normalised(batch["image"]), batch["mask"]

    def loss(
        self, phase: str, nets: Mapping[str, nn.Module], batch: Batch, step: int
    ) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        imgs, mask = self._inputs(batch)
        loss = nets["prior"].reconstruction_loss(imgs, mask)
        return loss, {"hole_ratio": mask.mean()}

    @torch.no_grad()
    def inpaint(self, nets: Mapping[str, nn.Module], batch: Batch) -> torch.Tensor:
        imgs, mask = self._inputs(batch)
        rec = nets["prior"].reconstruct(imgs * (mask < 0.5), mask)
        out = _denormalised(rec).clamp(-1, 1)
        return out * batch["mask"] + batch["image"] * (1 - batch["mask"])

    @torch.no_grad()
    def validation_metrics(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, torch.Tensor]:
        scores = super().validation_metrics(nets, batch)
        imgs, mask = self._inputs(batch)
        scores["recon_loss"] = torch.stack(
            [nets["prior"].reconstruction_loss(imgs[i : i + 1], mask[i : i + 1]) for i in range(len(imgs))]
        )
        return scores

    def export(self, nets: Mapping[str, nn.Module]) -> ExportSpec:
        prior = nets["prior"]
        return ExportSpec(arch=dict(prior.config), parts={"model": prior.state_dict()}, extra={})


def _stats(ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, device=ref.device, dtype=ref.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=ref.device, dtype=ref.dtype).view(1, 3, 1, 1)
    return mean, std


def _normalised(image: torch.Tensor) -> torch.Tensor:
    mean, std = _stats(image)
    return ((image + 1) / 2 - mean) / std


def _denormalised(x: torch.Tensor) -> torch.Tensor:
    mean, std = _stats(x)
    return (x * std + mean) * 2 - 1
