"""MAT training task (``inpaint-studio-train mat``): the official two-stage GAN recipe.

Each step runs three phases, as StyleGAN2-ADA (whose training loop MAT's is) orders them:

  G     the generator fills the batch's holes and both discriminator heads judge the composited
        fills: non-saturating ``softplus(-D(fake))`` on the final and on the first-stage (coarse)
        output, plus ``pcp-weight`` x the perceptual loss of the final fill;
  D     ``softplus(D(fake)) + softplus(-D(real))`` on both heads (the stage-1 head gets the real
        image as its real input); reals and fakes go through the critic in one call with separate
        minibatch-std groups, so the logits equal those of two calls. The fakes are the G phase's
        (detached): one generator forward per step instead of two;
  Dreg  lazy R1 every ``r1-interval`` steps: ``r1-gamma / 2 * |grad_x D(x)|^2`` on real images for
        each head, times the interval; the critic's Adam then runs at ``lr * k`` and
        ``beta2 ** k`` with ``k = interval / (interval + 1)``, as StyleGAN2 does.

Latents: z ~ N(0, I) per image, truncated toward the running w average by ``truncation`` (0.5 in
the official training command; inference uses 1); with probability ``style-mixing`` the ws rows
from a random cutoff on come from a second z. z, the two bottleneck keep maps (the dropout official
MAT draws even in eval mode) and the seeds of the 'random' noise inputs all come from the step's
mask generator, so a resumed run sees the same ones. Adam has betas (0, 0.99); the exported
generator is the EMA copy (``--ema-decay``; official: a half-life of 10k images, about 0.99945 at
batch 8). GANs are usually trained with ``--lr-schedule constant``.

Perceptual loss (MAT's ``losses/pcp.py`` through the framework's VGG, ``trainers/perceptual.py``):
L1 between VGG19 conv4_4 (x 1/4) and conv5_4 (x 1/2) features taken before their ReLU, ImageNet
weights from ``--vgg-weights`` / ``$INPAINT_STUDIO_VGG`` / the model store (a VGG16 file uses
conv4_3 and conv5_3). Without a file it falls back, with a warning, to the framework's
image + Sobel-gradient pyramid L1.

Masks: the official free-form + rectangle generator (``trainers/masks.py`` ``mat_mask``; its 256
recipe below 512 px, stroke widths scaled to the size); ``--masks`` takes any mixture instead.

Architectures: ``--preset official`` builds the released models' widths at ``--resolution`` (512
as Places / CelebA-HQ 512, 256 as CelebA-HQ 256); ``small`` is a CPU-sized network of the same
topology; ``tiny`` is for tests. Width options override the preset.

Fine-tuning (the main use): ``--init-from`` takes a ``mat`` weights folder (``inpaint-studio
import mat FILE`` or an earlier export), an official ``.pkl`` / IOPaint ``.pth`` / ``.safetensors``
checkpoint directly, or a training checkpoint. The architecture then comes from those weights
(the width options must agree or be left out) and ``--resolution`` must be the model's size. An
official ``.pkl`` also holds its discriminator, which then starts trained too; from the other
formats the critic starts fresh (expect a rough first few thousand steps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inpaint_studio.models.mat import (
    DiscriminatorConfig,
    KeepMaps,
    MatConfig,
    MatGenerator,
    SampleStreams,
    seeded_generator,
)
from inpaint_studio.models.mat.discriminator import MatDiscriminator

from .. import checkpoint as train_checkpoint
from .. import losses
from ..config import MaskFolderOptions, PerceptualOptions, TrainConfig, check_choices, opt
from ..masks import MAT_RECIPES, MaskMixture, mat_mask
from ..perceptual import PerceptualLoss
from ..task import Batch, ExportSpec, Phase, Task, bare, gan_phases, with_given_masks

PRESETS: dict[str, dict[str, Any]] = {
    "official": {},
    "small": dict(z_dim=64, w_dim=64, stage1_dim=32, stage1_heads=2, channel_base=2048, channel_max=64),
    "tiny": dict(z_dim=16, w_dim=16, stage1_dim=12, stage1_heads=6, channel_base=2048, channel_max=16),
}
WIDTH_OPTIONS = (
    "z_dim",
    "w_dim",
    "mapping_layers",
    "stage1_dim",
    "stage1_heads",
    "channel_base",
    "channel_max",
)
# MAT's pcp.py: conv4_4 (x 1/4) and conv5_4 (x 1/2) before their ReLU (VGG16: conv4_3 / conv5_3)
PCP_LAYERS = {"vgg19": (("relu4_4", 0.25), ("relu5_4", 0.5)), "vgg16": (("relu4_3", 0.25), ("relu5_3", 0.5))}


@dataclass(frozen=True)
class MatOptions(PerceptualOptions, MaskFolderOptions):
    preset: str = opt(
        "official",
        "architecture: official (the released models' widths), small (CPU runs), tiny (tests)",
        choices=tuple(PRESETS),
    )
    z_dim: int | None = opt(None, "latent size (None: the preset's)")
    w_dim: int | None = opt(None, "style size (None: the preset's)")
    mapping_layers: int | None = opt(None, "mapping network layers (None: 8, as official)")
    stage1_dim: int | None = opt(None, "transformer width of the first stage (None: the preset's)")
    stage1_heads: int | None = opt(
        None, "attention heads of the first stage (None: the preset's; official 6)"
    )
    channel_base: int | None = opt(
        None, "second stage and critic: channels at resolution r = min(base / r, max) (None: the preset's)"
    )
    channel_max: int | None = opt(None, "second stage and critic: most channels (None: the preset's)")
    noise: bool = opt(
        True, "per-pixel noise inputs in the refinement decoder (IOPaint's checkpoint has none)"
    )
    mbstd_group: int = opt(4, "critic minibatch-std group size (official 512 runs: 8 at 8 images per GPU)")
    masks: str = opt(
        "mat",
        "training masks: 'mat' (the official free-form + rectangle generator for --resolution) or a "
        "mixture such as 'mat:0.7,object:0.3' (kinds in trainers/masks.py)",
    )
    pcp_weight: float = opt(0.1, "perceptual loss weight (official --pr 0.1); 0: off")
    r1_gamma: float = opt(10.0, "R1 penalty weight on both critic heads (0: off)")
    r1_interval: int = opt(16, "apply R1 lazily every this many steps")
    style_mixing: float = opt(0.5, "probability that a sample's ws take their later rows from a second z")
    truncation: float = opt(0.5, "truncation psi of the training latents (official command: 0.5)")
    d_lr_ratio: float = opt(1.0, "critic learning rate relative to --lr")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.pcp_weight < 0 or self.r1_gamma < 0 or self.d_lr_ratio <= 0:
            raise ValueError("pcp-weight and r1-gamma must be >= 0 and d-lr-ratio > 0")
        if self.r1_interval < 1 or self.mbstd_group < 1:
            raise ValueError("r1-interval and mbstd-group must be >= 1")
        if not 0 <= self.style_mixing <= 1 or not 0 <= self.truncation <= 1.5:
            raise ValueError("style-mixing must be in [0, 1] and truncation in [0, 1.5]")
        for name in WIDTH_OPTIONS:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name.replace('_', '-')} must be positive, got {value}")

    def architecture(self, resolution: int) -> MatConfig:
        values = {**PRESETS[self.preset], "img_resolution": resolution, "use_noise": self.noise}
        values.update({k: getattr(self, k) for k in WIDTH_OPTIONS if getattr(self, k) is not None})
        return MatConfig(**values)


@dataclass
class InitWeights:
    """What ``--init-from`` provides besides a training checkpoint: a generator and maybe a critic."""

    arch: MatConfig
    generator: dict[str, torch.Tensor]
    discriminator: dict[str, torch.Tensor] | None
    source: str


def read_init_weights(source: str | Path) -> InitWeights | None:
    """The generator (and critic) in ``source``; None when it is a training checkpoint."""
    from inpaint_studio.models.bundle import is_bundle, load_bundle
    from inpaint_studio.models.mat.checkpoint import conform, read_checkpoint

    path = Path(source).expanduser()
    if path.is_dir() and not is_bundle(path):
        return None  # a run folder / checkpoint: the base class loads it (shapes checked there)
    if is_bundle(path):
        if (path / train_checkpoint.STATE).is_file():
            return None
        bundle = load_bundle(path, engine="mat")
        arch = MatConfig.from_dict(bundle.arch)
        return InitWeights(arch, dict(bundle.state_dict), None, f"weights folder {path}")
    generator, fmt, critic = read_checkpoint(path)
    arch, generator = conform(generator)
    return InitWeights(arch, generator, critic, f"{fmt} {path.name}")


def arch_from_weights(options: MatOptions, found: MatConfig, resolution: int, source: str) -> MatConfig:
    """``found`` (from weights), after checking that explicit width options agree with it."""
    for name in WIDTH_OPTIONS:
        given = getattr(options, name)
        if given is not None and given != getattr(found, name):
            raise ValueError(
                f"--{name.replace('_', '-')} {given} does not match {source} ({getattr(found, name)}); "
                "leave the width options out when starting from weights"
            )
    if found.img_resolution != resolution:
        raise ValueError(
            f"{source} is a {found.img_resolution} px MAT model: train it with --resolution {found.img_resolution}"
        )
    return found


def critic_config(arch: MatConfig, options: MatOptions) -> DiscriminatorConfig:
    """The official pairing: the critic has the generator's resolution and channel widths."""
    return DiscriminatorConfig(
        img_resolution=arch.img_resolution,
        img_channels=arch.img_channels,
        channel_base=arch.channel_base,
        channel_max=max(2, arch.channel_max),
        mbstd_group_size=options.mbstd_group,
    )


class MatTask(Task):
    name = "mat"
    engine_id = "mat"
    description = "MAT: mask-aware transformer GAN for large holes, pluralistic (official two-stage recipe)"
    Options = MatOptions
    default_lr = 1e-3
    ema_modules = ("generator",)

    def __init__(self, options: MatOptions, config: TrainConfig) -> None:
        super().__init__(options, config)
        self.init_weights: InitWeights | None = None
        saved = self._saved_architecture(config)
        if saved is not None:
            self.arch, self.critic_arch = saved
        elif config.init_from and (found := read_init_weights(config.init_from)) is not None:
            self.init_weights = found
            self.arch = arch_from_weights(options, found.arch, config.resolution, found.source)
            self.critic_arch = critic_config(self.arch, options)
        else:
            self.arch = options.architecture(config.resolution)
            self.critic_arch = critic_config(self.arch, options)
        if self.arch.img_resolution != config.resolution:
            raise ValueError(
                f"this MAT model is built for {self.arch.img_resolution} px: train with --resolution "
                f"{self.arch.img_resolution}"
            )
        self.mixture = (
            None if options.masks.strip() == "mat" else MaskMixture(options.masks, mask_dir=options.mask_dir)
        )
        self.mask_recipe = 512 if config.resolution >= 512 else 256
        assert self.mask_recipe in MAT_RECIPES
        self.perceptual: PerceptualLoss | None = None
        self._keep_shapes: tuple[tuple[int, ...], tuple[int, ...]] | None = None
        # this step's fakes from the G phase, reused (detached) by the D phase
        self._recent: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    @staticmethod
    def _saved_architecture(config: TrainConfig) -> tuple[MatConfig, DiscriminatorConfig] | None:
        """On --resume (and --init-from a training checkpoint), the networks the checkpoint holds."""
        for source in (config.resume, config.init_from):
            if not source:
                continue
            try:
                task_state = train_checkpoint.read_state(source).get("task", {})
            except train_checkpoint.CheckpointError:
                if source == config.resume:
                    raise
                continue  # --init-from weights, not a checkpoint
            if "arch" in task_state:
                return MatConfig.from_dict(task_state["arch"]), DiscriminatorConfig.from_dict(
                    task_state["critic"]
                )
        return None

    # ---------------------------------------------------------------- building
    def build_modules(self) -> dict[str, nn.Module]:
        return {"generator": MatGenerator(self.arch), "discriminator": MatDiscriminator(self.critic_arch)}

    def build_optimizers(
        self, modules: Mapping[str, nn.Module], lr: float
    ) -> dict[str, torch.optim.Optimizer]:
        o = self.options
        lazy = o.r1_interval / (o.r1_interval + 1) if o.r1_gamma > 0 else 1.0
        return {
            "generator": torch.optim.Adam(
                modules["generator"].parameters(), lr=lr, betas=(0.0, 0.99), eps=1e-8
            ),
            "discriminator": torch.optim.Adam(
                modules["discriminator"].parameters(),
                lr=lr * o.d_lr_ratio * lazy,
                betas=(0.0, 0.99**lazy),
                eps=1e-8,
            ),
        }

    def phases(self) -> tuple[Phase, ...]:
        return gan_phases(r1_interval=self.options.r1_interval if self.options.r1_gamma > 0 else 0)

    def setup(self, modules: Mapping[str, nn.Module], device: torch.device) -> None:
        super().setup(modules, device)
        synthesis = modules["generator"].synthesis
        synthesis.use_window = False  # training fills whole images: the plain graph
        res = self.config.resolution
        self._keep_shapes = synthesis.keep_map_shapes(1, res, res)
        if self.options.pcp_weight > 0:
            self.perceptual = PerceptualLoss(self.options.vgg_weights, PCP_LAYERS, pre_activation=True).to(
                device
            )

    def initialize_from(self, source: str | Path, modules: Mapping[str, nn.Module]) -> str:
        found = self.init_weights
        if found is None:
            return super().initialize_from(source, modules)
        try:
            modules["generator"].load_state_dict(found.generator, strict=True)
        except RuntimeError as err:
            raise ValueError(
                f"{found.source} does not fit the MAT generator: {str(err).splitlines()[0]}"
            ) from None
        message = f"initialised the generator ({len(found.generator)} tensors) from {found.source}"
        if found.discriminator is not None:
            try:
                modules["discriminator"].load_state_dict(found.discriminator, strict=True)
            except RuntimeError as err:
                raise ValueError(
                    f"the discriminator in {found.source} does not fit ({str(err).splitlines()[0]})"
                ) from None
            message += " and the discriminator from it too"
        else:
            message += "; the discriminator starts fresh"
        self.init_weights = None  # free the copy: the modules hold the weights now
        return message

    def state_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "critic": self.critic_arch.to_dict()}

    # ---------------------------------------------------------------- per step
    def prepare_batch(self, sample: Batch, step: int | None, rng: np.random.Generator) -> Batch:
        self._recent.clear()
        images = sample["image"]
        n, _, h, w = images.shape
        if self.mixture is None:
            holes = np.stack([mat_mask(h, w, rng, recipe=self.mask_recipe) for _ in range(n)])
        else:
            holes = self.mixture.batch(n, h, w, rng, step)
        o, arch = self.options, self.arch
        assert self._keep_shapes is not None
        first, second = ((n, *shape[1:]) for shape in self._keep_shapes)
        mixing = step is not None and o.style_mixing > 0
        cutoffs = rng.integers(1, arch.num_ws, n) if mixing else np.full(n, arch.num_ws)
        if mixing:
            cutoffs = np.where(rng.random(n) < o.style_mixing, cutoffs, arch.num_ws)

        def tensor(a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(images.device, dtype)

        return {
            "image": images,
            "mask": with_given_masks(sample, tensor(holes).unsqueeze(1)),  # 1 = hole (the framework's)
            "z": tensor(rng.standard_normal((n, arch.z_dim))),
            "mix_z": tensor(rng.standard_normal((n, arch.z_dim))),
            "mix_from": tensor(cutoffs, torch.long),
            "keep1": tensor(rng.random(first) < 0.5),
            "keep2": tensor(rng.random(second) < 0.5),
            # per-sample seeds of the 'random' noise inputs: no draw from torch's global RNG, which
            # the data loader also draws from when it starts an epoch (a resume would then differ)
            "noise_seed": tensor(rng.integers(0, 2**63 - 1, n), torch.long),
        }

    def _generate(self, net: nn.Module, batch: Batch, train: bool = True):  # noqa: ANN202 - FillOutput
        """MAT's fill of the batch (mask 1 = known inside the network)."""
        keep_maps = KeepMaps(batch["keep1"], batch["keep2"])
        known = 1 - batch["mask"]
        if not train:
            return net(batch["image"], known, batch["z"], 1.0, "const", keep_maps)
        streams = SampleStreams([seeded_generator(int(s)) for s in batch["noise_seed"]])
        return net(
            batch["image"],
            known,
            batch["z"],
            self.options.truncation,
            "random",
            keep_maps,
            streams.normal,
            mix_z=batch["mix_z"],
            mix_from=batch["mix_from"],
        )

    def _fakes(self, generator: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        image = batch["image"]
        for seen, fake, fake1 in self._recent:
            if seen is image:
                return fake, fake1
        with torch.no_grad():
            out = self._generate(generator, batch)
        return out.image, out.stage1

    def loss(
        self, phase: str, nets: Mapping[str, nn.Module], batch: Batch, step: int
    ) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        image, hole = batch["image"], batch["mask"]
        known = 1 - hole
        o = self.options
        if phase == "G":
            out = self._generate(nets["generator"], batch)
            self._recent.append((image, out.image.detach(), out.stage1.detach()))
            logits, logits1 = nets["discriminator"](out.image, known, out.stage1)
            adv, adv1 = F.softplus(-logits).mean(), F.softplus(-logits1).mean()
            total = adv + adv1
            logs: dict[str, float | torch.Tensor] = {
                "adv": adv,
                "adv_stage1": adv1,
                "hole_l1": losses.masked_l1(out.image.detach(), image, hole),
                "hole_ratio": hole.mean(),
            }
            if self.perceptual is not None:
                pcp = self.perceptual(out.image, image)
                total = total + o.pcp_weight * pcp
                logs["perceptual"] = pcp
            return total, logs
        if phase == "D":
            fake, fake1 = self._fakes(nets["generator"], batch)
            both = torch.cat([known, known])
            logits, logits1 = nets["discriminator"](
                torch.cat([image, fake]), both, torch.cat([image, fake1]), sets=2
            )
            real, fake_logit = logits.chunk(2)
            real1, fake_logit1 = logits1.chunk(2)
            loss = losses.d_loss(real, fake_logit) + losses.d_loss(real1, fake_logit1)
            return loss, {
                "real": real.mean(),
                "fake": fake_logit.mean(),
                "real_stage1": real1.mean(),
                "fake_stage1": fake_logit1.mean(),
            }
        if phase == "Dreg":
            real = image.detach().requires_grad_(True)
            real1 = image.detach().requires_grad_(True)
            logits, logits1 = nets["discriminator"](real, known, real1)
            r1, r1_stage1 = losses.r1_penalty(logits, real), losses.r1_penalty(logits1, real1)
            penalty = (r1 + r1_stage1) * (o.r1_gamma / 2) * o.r1_interval
            # "+ 0 * logits": the last biases get no R1 gradient; DDP needs every parameter in the graph
            return penalty + 0.0 * (logits.mean() + logits1.mean()), {"r1": r1, "r1_stage1": r1_stage1}
        raise ValueError(f"unknown phase {phase!r}")

    # ---------------------------------------------------------------- evaluation / export
    @torch.no_grad()
    def inpaint(self, nets: Mapping[str, nn.Module], batch: Batch) -> torch.Tensor:
        """The engine's defaults: psi 1, const noise; z and keep maps from the (seeded) batch."""
        return self._generate(nets["generator"], batch, train=False).image.clamp(-1, 1)

    @torch.no_grad()
    def sample_images(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, torch.Tensor]:
        image, hole = batch["image"], batch["mask"]
        out = self._generate(nets["generator"], batch, train=False)
        return {
            "input": image * (1 - hole),
            "mask": hole.expand_as(image) * 2 - 1,
            "coarse (stage 1)": out.stage1.clamp(-1, 1),
            "output": out.image.clamp(-1, 1),
            "target": image,
        }

    def export(self, nets: Mapping[str, nn.Module]) -> ExportSpec:
        generator = bare(nets["generator"])
        o = self.options
        return ExportSpec(
            arch=self.arch.to_dict(),
            parts={"model": {k: v.detach().cpu() for k, v in generator.state_dict().items()}},
            extra={
                "value_range": [-1, 1],
                "mask_convention": "1 = known inside the network",
                "training": {
                    "truncation": o.truncation,
                    "style_mixing": o.style_mixing,
                    "r1_gamma": o.r1_gamma,
                    "perceptual": self.perceptual.source if self.perceptual is not None else "off",
                    "preset": o.preset,
                },
            },
        )
