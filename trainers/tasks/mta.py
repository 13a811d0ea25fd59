"""MTA training task: a brush branch (MTA's, or plain BrushNet's) beside a frozen SD-1.5 base model.

Loss (MTADiffusion, CVPR 2025): ``gamma * L_noise + eta * L_edge + delta * L_style`` with the paper's
gamma 1, eta 0.1, delta 100 (``--noise-weight`` / ``--edge-weight`` / ``--style-weight``); each term
can be switched off (``--edge-head false``, ``--style-loss false``) for ablations.

* ``L_noise``: epsilon MSE of the UNet with the branch's residuals injected (BrushNet's loss).
* ``L_edge``: the edge head's prediction against the Sobel edge map of the target image at latent
  size (``mta_losses.edge_loss``).
* ``L_style``: Gram distance, through a 4-channel latent VGG, between ``x_{t-1}`` stepped from the
  predicted noise and the ground truth noised to ``t - 1`` (``latent_style``), with the same noise;
  ``--style-latents fresh`` noises the ground truth with a draw of its own; ``--style-latents
  clean`` compares the predicted x_0 with x_0 instead (the study: the paper's pair barely moves the
  fill, ``benchmarks/eval_mta_losses.py``). The extractor trains
  too, at ``--style-lr`` (1e-7, the paper's), beside the branch at ``--lr`` (1e-5): one optimizer,
  two parameter groups.

The VAE, UNet and text encoder come from ``--base-model`` (a diffusers folder or one SD-1.5 file,
the 4-channel text-to-image UNet) and stay frozen: never in checkpoints, optimizers or DDP. The
branch starts from ``--brushnet`` where key and shape match, else from the UNet.

Data: manifest rows (image, optional mask, optional caption). A row's own mask comes with its own
caption (per-mask captions); rows without a mask get a random mask and keep the whole image's
caption. Rows without a caption get one from ``--caption-command`` when given
(``trainers/captions.py``). In training, 10 % of prompts are emptied (classifier-free guidance) and
BrushNet's mask recipe applies: the holes are morphologically opened 30 % of the time (8x8 at
512 px, scaled with the resolution) and inverted 50 % of the time (hole <-> kept region, which is
also what the masked image shows). **Decision:** only random masks are inverted; a row's own mask
keeps its orientation, since its caption names what is inside it.

The export is the branch in the ``mta`` engine's format (``brushnet_import.load_branch`` rebuilds
it) with the base model referred to by path.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inpaint_studio.models.bundle import base_model_reference, is_bundle, load_bundle
from inpaint_studio.models.diffusion.brushnet import BrushBranch
from inpaint_studio.models.diffusion.brushnet_condition import keep_mask, masked_image
from inpaint_studio.models.diffusion.brushnet_hooks import BranchResiduals, inject_residuals
from inpaint_studio.models.diffusion.latent_style import (
    SD15_LATENT_RGB_FACTORS,
    STYLE_LATENTS,
    VGG_LAYOUTS,
    LatentVGG,
    build_latent_vgg,
    gram_matrix,
    mta_style_loss,
    noised_latent,
)
from inpaint_studio.models.diffusion.mta_losses import edge_loss, sobel_edge_target
from inpaint_studio.models.diffusion.source import store_base_model

from .. import metrics
from ..captions import fill_captions
from ..config import MaskFolderOptions, check_choices, opt
from ..masks import MaskMixture
from ..task import Batch, ExportSpec, Phase, Task, bare, with_given_masks

log = logging.getLogger(__name__)

BASE_KIND = "sd15"  # what the export's base_model reference says the path must be
JUDGE_SEED = 20250611  # the fixed random RGB network that scores the fills' Gram distance
JUDGE_LAYOUT = (16, 16, "M", 32, 32, "M", 64, 64)
JUDGE_LAYERS = (1, 6, 11)


@dataclass(frozen=True)
class MtaOptions(MaskFolderOptions):
    base_model: str | None = opt(
        None,
        "SD-1.5 text-to-image base model (diffusers folder or one .safetensors/.ckpt): VAE, UNet and "
        "text encoder, kept frozen; default: the model store's (`inpaint-studio models download sd15-base`)",
    )
    branch: str = opt(
        "mta", "mta (self-attention, edge head) or brushnet (the plain branch)", choices=("mta", "brushnet")
    )
    brushnet: str | None = opt(
        None,
        "BrushNet checkpoint (the fork's folder or file, or an imported weights folder) to start the "
        "branch from where shapes match (else from the UNet)",
    )
    edge_head: bool = opt(True, "mta: the edge head and its structure loss (eta); brushnet has none")
    style_loss: bool = opt(True, "the Gram style loss on x_{t-1} through the latent VGG (delta)")
    noise_weight: float = opt(1.0, "gamma: weight of the noise MSE")
    edge_weight: float = opt(0.1, "eta: weight of the edge (structure) loss")
    style_weight: float = opt(100.0, "delta: weight of the style loss")
    style_latents: str = opt(
        "previous",
        "latents the style loss compares: previous = x_{t-1} from the predicted noise against the ground "
        "truth noised to t-1 with the same noise (the paper); fresh = the same with a noise draw of its own; "
        "clean = the predicted x_0 against x_0, weighted by alphas_cumprod[t]^2",
        choices=STYLE_LATENTS,
    )
    style_lr: float = opt(1e-7, "learning rate of the latent style extractor")
    weight_decay: float = opt(1e-2, "AdamW weight decay of the branch")
    vgg_weights: str | None = opt(
        None, "torchvision vgg16/vgg19 .pth for the latent style extractor (else random init, with a warning)"
    )
    vgg_latent_factors: tuple[float, ...] = opt(
        (),
        "12 numbers, the base VAE's 4 x 3 latent-to-RGB map (row per latent channel) through which the VGG's "
        "first conv is moved onto latents (default: SD-1.5's)",
    )
    style_net: str = opt(
        "vgg16", "style extractor: vgg16, vgg19, or widths like '16 16 M 32' (tiny runs; set --style-layers)"
    )
    style_layers: tuple[int, ...] = opt((), "feature indices of the style layers (default: the VGG's)")
    masks: str = opt(
        "silhouette:0.4,irregular:0.2,box:0.2,strokes:0.2", "random masks: weighted kinds (trainers/masks.py)"
    )
    open_prob: float = opt(0.3, "share of training holes morphologically opened (BrushNet)")
    open_kernel: int = opt(8, "opening kernel in pixels at 512 px (scaled with the resolution)")
    invert_prob: float = opt(0.5, "share of random training masks inverted, hole <-> kept (BrushNet)")
    empty_prompt: float = opt(0.1, "share of training prompts emptied (classifier-free guidance)")
    caption_command: str | None = opt(
        None, "command printing a caption for IMAGE [MASK], run for rows without one (nothing downloads)"
    )
    caption_timeout: float = opt(120.0, "seconds the caption command may take per row")
    latent_mask: str = opt(
        "nearest",
        "mask to latent size: nearest (BrushNet) or max (any hole pixel)",
        choices=("nearest", "max"),
    )
    conditioning_scale: float = opt(1.0, "scale of the branch's residuals")
    sample_steps: int = opt(20, "DDIM steps of the validation fills and sample grids")
    guidance: float = opt(7.5, "classifier-free guidance of the validation fills (1: off)")
    frozen_precision: str = opt(
        "fp32", "precision of the frozen VAE, UNet and text encoder", choices=("fp32", "bf16", "fp16")
    )
    gradient_checkpointing: bool = opt(False, "recompute the branch's activations in backward (SD size)")

    def __post_init__(self) -> None:
        check_choices(self)
        for name in ("open_prob", "invert_prob", "empty_prompt"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name.replace('_', '-')} must be in [0, 1]")
        if min(self.noise_weight, self.edge_weight, self.style_weight) < 0 or self.style_lr < 0:
            raise ValueError("loss weights and style-lr must be >= 0")
        if self.open_kernel < 1 or self.sample_steps < 1 or self.caption_timeout <= 0:
            raise ValueError("open-kernel and sample-steps must be >= 1, caption-timeout > 0")
        if self.style_net not in VGG_LAYOUTS and not self.style_layers:
            raise ValueError("a custom --style-net needs --style-layers")
        if self.vgg_latent_factors and len(self.vgg_latent_factors) != 12:
            raise ValueError(
                f"vgg-latent-factors takes 12 numbers (4 latent channels x RGB), got {len(self.vgg_latent_factors)}"
            )


# ------------------------------------------------------------------------------ data recipes
def drop_captions(captions: Sequence[str], rng: np.random.Generator, share: float) -> list[str]:
    """Each caption emptied with probability ``share`` (classifier-free guidance training)."""
    drop = rng.random(len(captions)) < share
    return ["" if d else c for c, d in zip(captions, drop, strict=True)]


def brushnet_holes(
    holes: np.ndarray,
    invertible: np.ndarray,
    rng: np.random.Generator,
    open_prob: float,
    kernel: int,
    invert_prob: float,
) -> np.ndarray:
    """BrushNet's training masks from (N, H, W) bool holes: opened with ``open_prob`` (a k x k
    opening; a hole it would erase stays as it was), then inverted with ``invert_prob`` where
    ``invertible``. ``kernel`` is rounded up to odd. Returns new (N, H, W) bool holes."""
    out = holes.copy()
    kernel |= 1  # an even kernel's opening shifts the mask by a pixel (OpenCV's anchor); odd stays put
    element = np.ones((kernel, kernel), np.uint8)
    for i in range(len(out)):
        if rng.random() < open_prob:
            opened = cv2.morphologyEx(out[i].astype(np.uint8), cv2.MORPH_OPEN, element).astype(bool)
            if opened.any():
                out[i] = opened
        if invertible[i] and rng.random() < invert_prob:
            out[i] = ~out[i]
    return out


def _matching_state(source: str | Path) -> dict[str, torch.Tensor]:
    """A branch state dict (our keys) from a BrushNet checkpoint or an imported weights folder."""
    from inpaint_studio.models.diffusion.brushnet_import import BUNDLE_ENGINE, read_brushnet

    if is_bundle(source):
        return load_bundle(source, engine=BUNDLE_ENGINE).state_dict
    return read_brushnet(source)[1]


def _doubled(residuals: BranchResiduals) -> BranchResiduals:
    """The residuals for both halves of a classifier-free-guidance batch."""
    twice = [torch.cat([r, r]) for r in residuals.all()]
    n = len(residuals.down)
    return BranchResiduals(tuple(twice[:n]), twice[n], tuple(twice[n + 1 :]))


def edge_map_error(fill: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Per image: mean squared difference of the Sobel edge maps of fill and target over the hole."""
    size = fill.shape[-2:]
    d = (sobel_edge_target(fill, size) - sobel_edge_target(target, size)).pow(2)
    return (d * hole).flatten(1).sum(1) / hole.flatten(1).sum(1).clamp(min=1)


def gram_distance(judge: nn.Module, fill: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per image: sum over the judge's layers of ||G(fill) - G(target)||_F^2."""
    a, b = judge(fill.float()), judge(target.float())
    return sum((gram_matrix(x) - gram_matrix(y)).pow(2).sum(dim=(1, 2)) for x, y in zip(a, b, strict=True))


@torch.no_grad()
def he_initialised(net: nn.Module) -> nn.Module:
    """Convs re-drawn He-normal (ReLU gain), biases zero, for an extractor without VGG weights.

    PyTorch's default conv init shrinks activations layer by layer: on unit-variance latents a
    default-init VGG-16's relu4_3 Gram entries average ~3e-8 against He init's ~1e-4, and its Gram
    distance for a unit perturbation is ~1e4 times smaller. He init keeps unit-variance features;
    it cannot give them a trained VGG's scale, which is what the paper's delta = 100 assumes
    (``latent_style``'s docstring: the term's scale)."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return net


def fixed_judge(device: torch.device, build: Callable[[], LatentVGG] | None = None) -> LatentVGG:
    """A random network drawn from a fixed seed, the same in every run, never trained: random-weight
    features are a known texture statistic, and a judge that never trains scores fills of different
    runs alike (the trained style extractor would grade its own work). Default: a small RGB VGG-like
    net; ``build`` gives another (the latent judge: the style extractor's own construction)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(JUDGE_SEED)
        judge = build() if build else LatentVGG(JUDGE_LAYOUT, in_channels=3, style_layers=JUDGE_LAYERS)
    return judge.to(device).eval().requires_grad_(False)


class MtaTask(Task):
    name = "mta"
    engine_id = "mta"
    description = "MTA / BrushNet: a brush branch beside a frozen SD-1.5 model, text-prompted object fill"
    Options = MtaOptions
    default_lr = 1e-5
    init_module = "branch"

    def __init__(self, options: MtaOptions, config: Any) -> None:
        if not options.base_model:
            store = store_base_model()
            if store is None:
                raise ValueError(
                    "mta needs --base-model: your SD-1.5 text-to-image model (folder or file), or one in the "
                    "model store (`inpaint-studio models download sd15-base`)"
                )
            options = replace(options, base_model=str(store))
        super().__init__(options, config)
        self.mixture = MaskMixture(options.masks, mask_dir=options.mask_dir)
        self._sd: Any = None
        self._frozen: dict[str, nn.Module] = {}
        self.judge: LatentVGG | None = None
        self.latent_judge: LatentVGG | None = None
        self._empty_text: torch.Tensor | None = None

    # ---------------------------------------------------------------- building
    def _base(self) -> Any:
        """The base model's parts, loaded once per task (a private cache: the loop moves them)."""
        if self._sd is None:
            from inpaint_studio.models.components import ComponentCache
            from inpaint_studio.models.diffusion.loading import ModelLoadError, load_sd15
            from inpaint_studio.models.diffusion.source import model_source

            source = model_source(self.options.base_model)  # ModelSourceError is a ValueError
            try:
                self._sd = load_sd15(source, "cpu", self.options.frozen_precision, cache=ComponentCache())
            except ModelLoadError as err:
                raise ValueError(str(err)) from None
            if self._sd.inpainting:
                raise ValueError(
                    f"{source.path} is an inpainting model (9-channel UNet): the branch trains beside a "
                    "text-to-image SD-1.5 model"
                )
            from diffusers import DDPMScheduler

            self.noise_scheduler = DDPMScheduler.from_config(self._sd.scheduler_config)
            self.alphas = self.noise_scheduler.alphas_cumprod.float()
        return self._sd

    def build_modules(self) -> dict[str, nn.Module]:
        o = self.options
        unet = self._base().unet
        brushnet = _matching_state(o.brushnet) if o.brushnet else None
        if o.branch == "mta":
            from inpaint_studio.models.diffusion.mta_branch import init_mta_branch

            branch, _ = init_mta_branch(unet, brushnet, edge_head=o.edge_head)
        else:
            branch = BrushBranch.from_unet(unet)
            if brushnet is not None:
                own = branch.state_dict()
                fits = {k: v for k, v in brushnet.items() if k in own and own[k].shape == v.shape}
                if not fits:
                    raise ValueError(f"{o.brushnet} shares no tensor with this branch: another layout")
                branch.load_state_dict(fits, strict=False)
        branch = branch.float()  # trained in fp32 whatever the frozen parts' precision
        if o.gradient_checkpointing:
            branch.enable_gradient_checkpointing()
        modules: dict[str, nn.Module] = {"branch": branch.train()}
        if o.style_loss:
            modules["style"] = self._style_extractor()
        return modules

    def _style_extractor(self, warn: bool = True) -> LatentVGG:
        """The latent VGG of ``--style-net`` / ``--vgg-weights`` (He-normal without a VGG file)."""
        if not warn:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return self._style_extractor()
        o = self.options
        layers = tuple(o.style_layers) or None
        if o.style_net in VGG_LAYOUTS:
            extractor = build_latent_vgg(o.vgg_weights, o.style_net, layers, self._latent_factors())
            if o.vgg_weights:
                return extractor
        elif o.vgg_weights:
            raise ValueError("--vgg-weights loads a vgg16/vgg19 extractor: drop the custom --style-net")
        else:
            widths = [w if w == "M" else int(w) for w in o.style_net.replace(",", " ").split()]
            extractor = LatentVGG(widths, style_layers=layers)
        return he_initialised(extractor)

    def _latent_factors(self) -> Sequence[Sequence[float]]:
        f = self.options.vgg_latent_factors
        return [f[3 * k : 3 * k + 3] for k in range(4)] if f else SD15_LATENT_RGB_FACTORS

    def build_frozen(self) -> dict[str, nn.Module]:
        sd = self._base()
        self._frozen = {"vae": sd.vae, "unet": sd.unet, "text_encoder": sd.text_encoder}
        return self._frozen

    def build_optimizers(
        self, modules: Mapping[str, nn.Module], lr: float
    ) -> dict[str, torch.optim.Optimizer]:
        groups: list[dict[str, Any]] = [
            {"params": [p for p in modules["branch"].parameters() if p.requires_grad], "lr": lr}
        ]
        if "style" in modules:
            groups.append({"params": list(modules["style"].parameters()), "lr": self.options.style_lr})
        return {"main": torch.optim.AdamW(groups, lr=lr, weight_decay=self.options.weight_decay)}

    def phases(self) -> tuple[Phase, ...]:
        return (Phase("main", "main", ("branch", "style") if self.options.style_loss else ("branch",)),)

    def setup(self, modules: Mapping[str, nn.Module], device: torch.device) -> None:
        super().setup(modules, device)
        self.alphas = self.alphas.to(device)
        self.judge = fixed_judge(device)
        self.latent_judge = fixed_judge(device, lambda: self._style_extractor(warn=False))
        self._empty_text = None

    def prepare_records(self, records: list[Any]) -> list[Any]:
        return fill_captions(records, self.options.caption_command, self.options.caption_timeout)

    # ---------------------------------------------------------------- per step
    @torch.no_grad()
    def _encode_text(self, captions: Sequence[str]) -> torch.Tensor:
        tokenizer, text_encoder = self._sd.tokenizer, self._frozen["text_encoder"]
        ids = tokenizer(
            list(captions),
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.device)
        return text_encoder(ids)[0].float()

    @torch.no_grad()
    def _encode_image(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """A latent sample (times the scaling factor); the noise comes from ``rng`` (reproducible)."""
        vae = self._frozen["vae"]
        dist = vae.encode(image.to(vae.dtype)).latent_dist
        eps = self._normal(rng, dist.mean.shape)
        return (dist.mean.float() + dist.std.float() * eps) * vae.config.scaling_factor

    def _normal(self, rng: np.random.Generator, shape: Sequence[int]) -> torch.Tensor:
        """Standard normal float32 noise from ``rng`` on the task's device (reproducible per step)."""
        return torch.from_numpy(rng.standard_normal(tuple(shape)).astype(np.float32)).to(self.device)

    @torch.no_grad()
    def prepare_batch(self, sample: Batch, step: int | None, rng: np.random.Generator) -> Batch:
        o = self.options
        image = sample["image"]
        n, _, h, w = image.shape
        drawn = self.mixture.batch(n, h, w, rng, step)
        given = sample["mask_given"].cpu().numpy() if "mask" in sample else np.zeros(n, bool)
        holes = with_given_masks(sample, torch.from_numpy(drawn).to(image.device, torch.float32).unsqueeze(1))
        captions = list(sample.get("caption") or [""] * n)
        if step is not None:  # training only: BrushNet's mask recipe and CFG's empty prompts
            kernel = max(1, round(o.open_kernel * h / 512))
            recipe = brushnet_holes(
                holes[:, 0].cpu().numpy() > 0.5, ~given, rng, o.open_prob, kernel, o.invert_prob
            )
            holes = torch.from_numpy(recipe).to(image.device, torch.float32).unsqueeze(1)
            captions = drop_captions(captions, rng, o.empty_prompt)
        latent = self._encode_image(image, rng)
        masked_latent = self._encode_image(masked_image(image, holes), rng)
        size = latent.shape[-2:]
        t = torch.from_numpy(rng.integers(0, self.noise_scheduler.config.num_train_timesteps, n)).to(
            self.device
        )
        batch = {
            "image": image,
            "mask": holes,
            "caption": captions,
            "text": self._encode_text(captions),
            "latent": latent,
            "masked_latent": masked_latent,
            "keep": keep_mask(holes, size, o.latent_mask),
            "edge_target": sobel_edge_target(image, size),
            "timestep": t.long(),
            "noise": self._normal(rng, latent.shape),
        }
        if o.style_loss and o.style_latents == "fresh":  # drawn last: the other draws stay as without it
            batch["style_noise"] = self._normal(rng, latent.shape)
        return batch

    def _unet(
        self, noisy: torch.Tensor, t: torch.Tensor, text: torch.Tensor, res: BranchResiduals
    ) -> torch.Tensor:
        unet = self._frozen["unet"]
        with inject_residuals(unet, res):
            return unet(noisy.to(unet.dtype), t, encoder_hidden_states=text.to(unet.dtype)).sample.float()

    def loss(
        self, phase: str, nets: Mapping[str, nn.Module], batch: Batch, step: int
    ) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        o = self.options
        x0, noise, t = batch["latent"], batch["noise"], batch["timestep"]
        noisy = noised_latent(x0, noise, t, self.alphas)
        out = nets["branch"](noisy, t, batch["masked_latent"], batch["keep"], o.conditioning_scale)
        eps = self._unet(noisy, t, batch["text"], out.residuals)
        noise_loss = F.mse_loss(eps, noise)
        total = o.noise_weight * noise_loss
        logs: dict[str, float | torch.Tensor] = {"noise": noise_loss}
        if out.edge is not None:
            if o.edge_weight > 0:
                edge = edge_loss(out.edge, batch["edge_target"])
                total = total + o.edge_weight * edge
                logs["edge"] = edge
            else:  # DDP needs every trained parameter in the graph
                total = total + 0.0 * out.edge.mean()
        if "style" in nets:
            style = mta_style_loss(
                nets["style"],
                noisy,
                eps,
                noise,
                x0,
                t,
                self.alphas,
                o.style_latents,
                batch.get("style_noise"),
            )
            total = total + o.style_weight * style
            logs["style"] = style
        return total, logs

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def inpaint(self, nets: Mapping[str, nn.Module], batch: Batch) -> torch.Tensor:
        """DDIM fills of the batch's holes with its prompts (CFG against the empty prompt), composited."""
        from diffusers import DDIMScheduler

        o = self.options
        branch, vae = bare(nets["branch"]), self._frozen["vae"]
        scheduler = DDIMScheduler.from_config(self._sd.scheduler_config)
        scheduler.set_timesteps(o.sample_steps, device=self.device)
        shape = batch["latent"].shape
        g = torch.Generator().manual_seed(self.config.seed)
        latents = torch.randn(shape, generator=g).to(self.device) * scheduler.init_noise_sigma
        text = batch["text"]
        if o.guidance != 1:
            if self._empty_text is None:
                self._empty_text = self._encode_text([""])
            text = torch.cat([self._empty_text.expand_as(text), text])
        for t in scheduler.timesteps:
            res = branch(latents, t, batch["masked_latent"], batch["keep"], o.conditioning_scale).residuals
            if o.guidance != 1:
                uncond, cond = self._unet(torch.cat([latents, latents]), t, text, _doubled(res)).chunk(2)
                eps = uncond + o.guidance * (cond - uncond)
            else:
                eps = self._unet(latents, t, text, res)
            latents = scheduler.step(eps, t, latents).prev_sample
        out = vae.decode((latents / vae.config.scaling_factor).to(vae.dtype)).sample.float().clamp(-1, 1)
        hole = batch["mask"]
        return out * hole + batch["image"] * (1 - hole)

    @torch.no_grad()
    def latent_of(self, image: torch.Tensor) -> torch.Tensor:
        """The VAE's posterior mean of ``image`` times its scaling factor (no sampling noise)."""
        vae = self._frozen["vae"]
        return vae.encode(image.to(vae.dtype)).latent_dist.mean.float() * vae.config.scaling_factor

    @torch.no_grad()
    def validation_metrics(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, torch.Tensor]:
        """:meth:`fill_metrics` of the batch's fills."""
        return self.fill_metrics(batch, self.inpaint(nets, batch))

    @torch.no_grad()
    def fill_metrics(self, batch: Batch, fill: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per image: hole PSNR / SSIM, the edge-map error of the fill (Sobel, over the hole) and its
        Gram distance to the target twice: through a fixed random RGB network (``gram_distance``)
        and, on the VAE latents of fill and target, through a fixed draw of the style extractor's
        own construction (``latent_gram_distance``: the style loss's statistic, not its trained copy)."""
        target, hole, latent = batch["image"], batch["mask"], self.latent_of
        assert self.judge is not None and self.latent_judge is not None
        return {
            "hole_psnr": metrics.hole_psnr((fill + 1) / 2, (target + 1) / 2, hole),
            "hole_ssim": metrics.hole_ssim((fill + 1) / 2, (target + 1) / 2, hole),
            "edge_error": edge_map_error(fill, target, hole),
            "gram_distance": gram_distance(self.judge, fill, target),
            "latent_gram_distance": gram_distance(self.latent_judge, latent(fill), latent(target)),
        }

    # ---------------------------------------------------------------- export
    def export(self, nets: Mapping[str, nn.Module]) -> ExportSpec:
        branch = bare(nets["branch"])
        o = self.options
        return ExportSpec(
            arch=branch.config.to_dict(),
            parts={"model": branch.state_dict()},
            extra={
                "kind": o.branch,
                "base_model": base_model_reference(o.base_model, BASE_KIND),
                "losses": {
                    "noise": o.noise_weight,
                    "edge": o.edge_weight if o.edge_head and o.branch == "mta" else 0.0,
                    "style": o.style_weight if o.style_loss else 0.0,
                },
                "style_latents": o.style_latents if o.style_loss else None,
            },
        )
