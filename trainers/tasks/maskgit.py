"""MaskGIT stage 2: masked visual token modelling (MVTM) over a frozen stage-1 VQGAN.

Each training image is tokenized on the fly by the frozen VQGAN (``--vqgan``: the weights folder
of ``inpaint-studio-train maskgit-vqgan``, so random crops and flips keep working as
augmentation). Per image, r ~ U(0, 1) and exactly ``ceil(gamma(r) * N)`` of its N tokens are
replaced by the mask token (``--schedule`` gamma: cosine by default, linear, square, arccos);
``--masking bernoulli`` instead hides each token independently at ``--mask-ratio`` (or at gamma(r)
per image when that is 0). The bidirectional transformer is trained with cross-entropy on the
hidden positions only (``--label-smoothing``); ``G/token_acc`` logs its masked-token accuracy.

Validation is the real inpainting decode: held-out images get holes from ``--val-masks``, and
:class:`~inpaint_studio.engines.maskgit.MaskGitEngine` fills them from the in-memory models over
``--val-steps`` steps, exactly as the app would; scored by hole PSNR / SSIM. Beside them:
``token_acc`` (one forward pass, argmax at the hole's tokens, the rest given) and
``oracle_hole_psnr`` (the hole re-drawn from the image's own tokens: the tokenizer's ceiling).

The export is ONE ``maskgit`` bundle holding the VQGAN, the transformer (EMA weights) and the
pre-rendered code atlas, which ``inpaint-studio fill --engine maskgit --weights PATH`` and the
model store take.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inpaint_studio.engines.base import Request, Result, at_full_size
from inpaint_studio.engines.maskgit import MaskGitEngine
from inpaint_studio.models.bundle import CONFIG_NAME
from inpaint_studio.models.maskgit import (
    MaskGitConfig,
    MaskGitTransformer,
    load_vqgan,
    masked_token_accuracy,
    masked_token_loss,
    mvtm_mask,
)
from inpaint_studio.models.maskgit.checkpoint import maskgit_bundle_contents
from inpaint_studio.models.vqgan import VQGAN

from .. import metrics
from ..config import MaskFolderOptions, check_choices, opt
from ..data import to_uint8
from ..masks import MaskMixture
from ..task import Batch, ExportSpec, Phase, Task, with_given_masks
from .maskgit_vqgan import inference_vqgan

SCHEDULE_CHOICES = ("cosine", "linear", "square", "arccos")
VQGAN_HINT = (
    "train the tokenizer first with `inpaint-studio-train maskgit-vqgan --data DIR` and pass its weights "
    "folder (RUN/weights) with --vqgan"
)


@dataclass(frozen=True)
class MaskGitOptions(MaskFolderOptions):
    vqgan: str | None = opt(
        None,
        "REQUIRED: the stage-1 tokenizer, i.e. the weights folder `inpaint-studio-train maskgit-vqgan` "
        "exported (or its run folder, or a complete maskgit bundle whose VQGAN is reused)",
    )
    hidden_dim: int = opt(256, "transformer width")
    depth: int = opt(6, "transformer blocks")
    heads: int = opt(8, "attention heads (must divide hidden-dim)")
    mlp_dim: int = opt(1024, "hidden size of each block's MLP")
    dropout: float = opt(0.1, "dropout in the transformer")
    tie_weights: bool = opt(
        True, "logits from the token-embedding matrix (valeoai layout); else a separate layer"
    )
    output_bias: str = opt(
        "position",
        "output bias: per position and code (valeoai), per code, or none",
        choices=("position", "token", "none"),
    )
    stem: bool = opt(True, "input MLP after the embeddings (valeoai layout)")
    schedule: str = opt(
        "cosine", "mask schedule gamma: hide ceil(gamma(r) * N) tokens, r ~ U(0, 1)", choices=SCHEDULE_CHOICES
    )
    masking: str = opt(
        "schedule",
        "schedule: exactly ceil(gamma(r) * N) tokens; bernoulli: each token independently",
        choices=("schedule", "bernoulli"),
    )
    mask_ratio: float = opt(0.0, "bernoulli masking: fixed hiding rate (0: gamma(r) per image)")
    label_smoothing: float = opt(0.1, "label smoothing of the masked-token cross-entropy")
    weight_decay: float = opt(0.045, "AdamW weight decay (weights of linear layers and embeddings)")
    val_steps: int = opt(8, "validation: decoding steps of the inpainting decode")
    val_masks: str = opt(
        "box:0.4,irregular:0.3,strokes:0.3", "validation holes: weighted mask kinds (see trainers/masks.py)"
    )
    token_threshold: float = opt(
        0.0, "validation: a token is regenerated when more than this share of its pixels is hole"
    )
    choice_temperature: float = opt(4.5, "validation: randomness of which tokens each step keeps")
    atlas: bool = opt(True, "export a pre-rendered code atlas (instant step previews in the app)")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.masking == "schedule" and self.mask_ratio:
            raise ValueError("mask-ratio applies to --masking bernoulli only")
        if not 0.0 <= self.mask_ratio <= 1.0:
            raise ValueError(f"mask-ratio must be in [0, 1], got {self.mask_ratio}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.val_steps < 1 or not 0.0 <= self.token_threshold < 1.0:
            raise ValueError("need val-steps >= 1 and token-threshold in [0, 1)")


def load_tokenizer(source: str | None, resolution: int) -> tuple[VQGAN, Path]:
    """The frozen stage-1 VQGAN named by ``--vqgan``, relabelled for ``resolution``."""
    if not source:
        raise ValueError(f"maskgit needs its stage-1 VQGAN: {VQGAN_HINT}")
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--vqgan {path} does not exist; {VQGAN_HINT}")
    if not (path / CONFIG_NAME).is_file() and (path / "weights" / CONFIG_NAME).is_file():
        path = path / "weights"  # a run folder of maskgit-vqgan
    vqgan = load_vqgan(path)  # BundleError (a ValueError) for anything that is not a tokenizer
    if resolution % vqgan.factor:
        raise ValueError(f"--resolution {resolution} must be a multiple of the VQGAN's factor {vqgan.factor}")
    return inference_vqgan(vqgan, resolution), path


class MaskGitTask(Task):
    name = "maskgit"
    engine_id = "maskgit"
    description = "MaskGIT stage 2: bidirectional transformer over frozen VQGAN tokens (needs --vqgan)"
    Options = MaskGitOptions
    default_lr = 4e-4
    ema_modules = ("transformer",)
    init_module = "transformer"

    def __init__(self, options: MaskGitOptions, config: Any) -> None:
        super().__init__(options, config)
        self.tokenizer, self.tokenizer_path = load_tokenizer(options.vqgan, config.resolution)
        self.arch = MaskGitConfig(
            codebook_size=self.tokenizer.config.n_embed,
            grid_size=config.resolution // self.tokenizer.factor,
            hidden_dim=options.hidden_dim,
            depth=options.depth,
            heads=options.heads,
            mlp_dim=options.mlp_dim,
            dropout=options.dropout,
            tie_weights=options.tie_weights,
            output_bias=options.output_bias,
            stem=options.stem,
        )
        self.val_masks = MaskMixture(options.val_masks, mask_dir=options.mask_dir)

    # ---------------------------------------------------------------- building
    def build_modules(self) -> dict[str, nn.Module]:
        return {"transformer": MaskGitTransformer(self.arch)}

    def build_frozen(self) -> dict[str, nn.Module]:
        # frozen: out of checkpoints (a resume reloads it from --vqgan); the export bundles it
        return {"vqgan": self.tokenizer}

    def build_optimizers(
        self, modules: Mapping[str, nn.Module], lr: float
    ) -> dict[str, torch.optim.Optimizer]:
        named = [(n, p) for n, p in modules["transformer"].named_parameters() if p.requires_grad]
        decay = [p for n, p in named if p.ndim >= 2 and n not in ("position_embedding", "output_bias")]
        rest = [p for n, p in named if not (p.ndim >= 2 and n not in ("position_embedding", "output_bias"))]
        groups = [
            {"params": decay, "weight_decay": self.options.weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ]
        return {"transformer": torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.96))}

    def phases(self) -> tuple[Phase, ...]:
        return (Phase("G", "transformer", ("transformer",), ema=True),)

    # ---------------------------------------------------------------- per step
    @torch.no_grad()
    def _tokens(self, images: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.encode_indices(images).flatten(1)

    def prepare_batch(self, sample: Batch, step: int | None, rng: np.random.Generator) -> Batch:
        images = sample["image"]
        tokens = self._tokens(images)
        n, _, h, w = images.shape
        if step is None:  # validation: pixel holes for the real decode
            holes = torch.from_numpy(self.val_masks.batch(n, h, w, rng)).to(images.device, torch.float32)
            return {"image": images, "mask": with_given_masks(sample, holes.unsqueeze(1)), "tokens": tokens}
        generator = torch.Generator()
        generator.manual_seed(int(rng.integers(2**62)))
        o = self.options
        if o.masking == "schedule":
            hidden = mvtm_mask(tokens, self.arch.mask_id, o.schedule, "schedule", generator=generator)
        else:
            ratio = o.mask_ratio or None
            hidden = mvtm_mask(tokens, self.arch.mask_id, o.schedule, "bernoulli", ratio, generator=generator)
        return {"tokens": tokens, "input": hidden.tokens, "hidden": hidden.mask}

    def loss(
        self, phase: str, nets: Mapping[str, nn.Module], batch: Batch, step: int
    ) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        if phase != "G":
            raise ValueError(f"unknown phase {phase!r}")
        tokens, hidden = batch["tokens"], batch["hidden"]
        logits = nets["transformer"](batch["input"])
        loss = masked_token_loss(logits, tokens, hidden, self.options.label_smoothing)
        logs: dict[str, float | torch.Tensor] = {"mask_ratio": hidden.float().mean()}
        if bool(hidden.any()):
            with torch.no_grad():
                sel = hidden.reshape(-1)
                logs["ce"] = F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1])[sel].float(), tokens.reshape(-1)[sel]
                )
            logs["token_acc"] = masked_token_accuracy(logits.detach(), tokens, hidden)
        return loss, logs

    # ---------------------------------------------------------------- evaluation
    def _unknown_tokens(self, mask: torch.Tensor) -> torch.Tensor:
        """Pixel holes (N,1,H,W) -> (N, grid*grid) bool, as the engine maps them."""
        f = self.tokenizer.factor
        n, _, h, w = mask.shape
        frac = mask.view(n, h // f, f, w // f, f).mean(dim=(2, 4))
        return (frac > self.options.token_threshold).flatten(1)

    @torch.no_grad()
    def inpaint(self, nets: Mapping[str, nn.Module], batch: Batch) -> torch.Tensor:
        """The app's decode: MaskGitEngine around the in-memory models, one image at a time."""
        engine = MaskGitEngine.from_models(nets["vqgan"], nets["transformer"], device=str(self.device))
        o = self.options
        params = {
            "steps": o.val_steps,
            "schedule": o.schedule,
            "choice_temperature": o.choice_temperature,
            "token_threshold": o.token_threshold,
            "strategy": "resize",
            "preview": "off",
        }
        images, masks = to_uint8(batch["image"]), (batch["mask"][:, 0] > 0.5).cpu().numpy()
        out = batch["image"].clone()
        for i, (image, hole) in enumerate(zip(images, masks, strict=True)):
            if not hole.any():
                continue
            request = Request(image, hole.astype(np.uint8) * 255, seed=self.config.seed + i, params=params)
            result = [at_full_size(e, request.image) for e in engine.run(request) if isinstance(e, Result)][
                -1
            ]
            out[i] = torch.from_numpy(result.image).permute(2, 0, 1).to(out) / 127.5 - 1.0
        return out

    @torch.no_grad()
    def _oracle(self, nets: Mapping[str, nn.Module], batch: Batch) -> torch.Tensor:
        """The hole drawn from the image's own tokens: what a perfect transformer would reach."""
        f, grid = self.tokenizer.factor, self.arch.grid_size
        rec = nets["vqgan"].decode_indices(batch["tokens"].view(-1, grid, grid)).clamp(-1, 1)
        assert rec.shape[-1] == grid * f
        return rec * batch["mask"] + batch["image"] * (1 - batch["mask"])

    @torch.no_grad()
    def validation_metrics(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, torch.Tensor]:
        scores = super().validation_metrics(nets, batch)  # hole PSNR / SSIM of the real decode
        target, mask = (batch["image"] + 1) / 2, batch["mask"]
        scores["oracle_hole_psnr"] = metrics.hole_psnr((self._oracle(nets, batch) + 1) / 2, target, mask)
        tokens, unknown = batch["tokens"], self._unknown_tokens(mask)
        given = torch.where(unknown, torch.full_like(tokens, self.arch.mask_id), tokens)
        right = (nets["transformer"](given).argmax(-1) == tokens) & unknown
        count = unknown.sum(1)
        scores["token_acc"] = torch.where(
            count > 0,
            right.sum(1) / count.clamp_min(1),
            torch.full_like(count, math.nan, dtype=torch.float32),
        )
        return scores

    @torch.no_grad()
    def sample_images(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, torch.Tensor]:
        columns = super().sample_images(nets, batch)
        columns["vq oracle"] = self._oracle(nets, batch)
        columns["target"] = columns.pop("target")
        return columns

    # ---------------------------------------------------------------- export
    def export(self, nets: Mapping[str, nn.Module]) -> ExportSpec:
        arch, parts = maskgit_bundle_contents(nets["vqgan"], nets["transformer"], atlas=self.options.atlas)
        o = self.options
        return ExportSpec(
            arch=arch,
            parts=parts,
            extra={
                "value_range": [-1, 1],
                "vqgan_source": str(self.tokenizer_path),
                "training_masking": {"schedule": o.schedule, "mode": o.masking, "ratio": o.mask_ratio},
            },
        )
