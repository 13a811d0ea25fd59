"""What a model brings to the shared loop: a small "task".

The loop (``trainers/loop.py``) owns data, devices, DDP, AMP, accumulation, EMA, checkpoints,
logging and export. A task owns the model: it builds its modules and optimizers, says which
training phases run when (a generator step, a discriminator step, a lazy regulariser every N
steps, a discriminator that starts after a warm-up...), turns a batch of images into model
inputs (masks included), computes the loss of a phase, and says how to inpaint for validation
and what to export. Extra numbers a model wants watched (codebook perplexity, masked-token
accuracy, ...) come back from :meth:`Task.loss` and :meth:`Task.validation_metrics` as plain
dicts and are logged as they are.

A sample batch is a dict (``trainers/data.py``): ``image`` always, ``mask`` / ``mask_given`` when
the data has masks (:func:`with_given_masks`), ``caption`` (a list of str) when it has captions.

Frozen modules (:meth:`Task.build_frozen`: a VAE, a text encoder, a 3.4 GB UNet, a stage-1
tokenizer) are used by the loss but never trained: the loop moves them to the device in eval mode
and hands them over in ``nets`` beside the trained ones, and keeps them out of checkpoints,
optimizers, EMA and DDP. The task builds them again on resume (from the paths in its options); they
reach the exported weights only when :meth:`Task.export` puts them there.

Rules for :meth:`Task.loss` (they keep DDP and gradient accumulation correct):
  * use ``nets[name]``: modules trained in this phase arrive wrapped (DDP) with gradients on,
    the others (frozen ones included) arrive bare with gradients off;
  * call each trained net at most ONCE per call (concatenate real and fake batches for a
    discriminator), and return one scalar loss for the micro-batch;
  * every parameter of a trained net must take part in that loss: a penalty that leaves some out
    (R1 never reaches a critic's last bias) adds ``0 * output.mean()``, as StyleGAN2 does.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from . import metrics
from .config import TrainConfig

Batch = dict[str, Any]  # tensors sharing dim 0, and lists (captions) of the same length


@dataclass(frozen=True)
class Phase:
    """One optimisation phase: which optimizer steps, which modules it trains, how often.

    ``interval`` > 1 makes a lazy phase (e.g. R1 every 16 steps); ``start`` delays it (e.g. a
    discriminator warm-up); ``ema`` updates the EMA copies of its modules after the step.
    """

    name: str
    optimizer: str
    modules: tuple[str, ...]
    interval: int = 1
    start: int = 0
    ema: bool = False

    def __post_init__(self) -> None:
        if self.interval < 1 or self.start < 0 or not self.modules:
            raise ValueError(f"phase {self.name}: interval >= 1, start >= 0 and at least one module")

    def active(self, step: int) -> bool:
        return step >= self.start and step % self.interval == 0


@dataclass
class ExportSpec:
    """What goes into the exported weights folder (see ``models/bundle.py``)."""

    arch: dict[str, Any]
    parts: dict[str, dict[str, torch.Tensor]]
    extra: dict[str, Any] = field(default_factory=dict)


class Task(abc.ABC):
    name: ClassVar[str]  # the CLI's MODEL argument, e.g. "inpnet"
    engine_id: ClassVar[str]  # the model-store folder / engine that runs the exported weights
    description: ClassVar[str]
    Options: ClassVar[type]  # frozen dataclass of the model's own options (fields with help metadata)
    default_lr: ClassVar[float] = 1e-4
    ema_modules: ClassVar[tuple[str, ...]] = ()  # modules that get EMA weights (exported when present)
    ddp_find_unused: ClassVar[bool] = False  # set when a phase may leave parameters without gradients
    init_module: ClassVar[str] = "generator"  # the module an exported weights folder initialises

    def __init__(self, options: Any, config: TrainConfig) -> None:
        self.options = options
        self.config = config
        self.device = torch.device("cpu")

    # ---------------------------------------------------------------- building
    @abc.abstractmethod
    def build_modules(self) -> dict[str, nn.Module]:
        """All networks, keyed by name (e.g. ``generator``, ``discriminator``), on the CPU."""

    def build_frozen(self) -> dict[str, nn.Module]:
        """Networks the loss uses but training leaves alone, keyed by name (see the module docstring)."""
        return {}

    @abc.abstractmethod
    def build_optimizers(
        self, modules: Mapping[str, nn.Module], lr: float
    ) -> dict[str, torch.optim.Optimizer]:
        """Optimizers keyed by the names :class:`Phase` refers to; ``lr`` is the run's base rate."""

    def phases(self) -> tuple[Phase, ...]:
        """Default: one phase training everything with the ``main`` optimizer."""
        return (Phase("main", "main", tuple(self._module_names), ema=True),)

    def setup(self, modules: Mapping[str, nn.Module], device: torch.device) -> None:
        """Called once the trained modules (and the frozen ones) are on ``device`` (move helpers such
        as loss networks here)."""
        self.device = device
        self._module_names = list(modules)

    def initialize_from(self, source: str | Path, modules: Mapping[str, nn.Module]) -> str:
        """``--init-from``: load weights before training (fine-tuning). Returns a one-line summary.

        Accepts a training checkpoint (every module, EMA weights preferred) or an exported weights
        folder (its ``model`` part goes to :attr:`init_module`). Loading is non-strict so that layers
        added since keep their initialisation, but every tensor present must fit. Tasks that read
        outside formats (official checkpoints) override this.
        """
        from inpaint_studio.models.bundle import is_bundle, load_bundle

        from . import checkpoint

        source = Path(source).expanduser()
        if is_bundle(source) and not (source / checkpoint.STATE).is_file():
            bundle = load_bundle(source, engine=self.engine_id)
            states = {self.init_module: bundle.state_dict}
        else:
            ck = checkpoint.load(source)
            states = {n: ck.module_state(n, ema=True) or ck.module_state(n) for n in modules}
        loaded, missing = 0, []
        for name, state in states.items():
            if not state or name not in modules:
                continue
            own = modules[name].state_dict()
            bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
            if bad:
                raise ValueError(
                    f"{source}: {name}.{bad[0]} has another shape than this model's; check the options"
                )
            result = modules[name].load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
            loaded += len(state) - len(set(state) - set(own))
            missing += [f"{name}.{k}" for k in result.missing_keys]
        if not loaded:
            raise ValueError(f"{source} holds no weights for {self.name}")
        return f"initialised {loaded} tensors from {source}" + (
            f"; {len(missing)} new ones keep their initialisation" if missing else ""
        )

    def prepare_records(self, records: list[Any]) -> list[Any]:
        """The data rows (``trainers.data.Record``) before datasets are built: a task may fill in what
        rows lack (e.g. captions from a command). Default: unchanged."""
        return records

    # ---------------------------------------------------------------- per step
    @abc.abstractmethod
    def prepare_batch(self, sample: Batch, step: int | None, rng: np.random.Generator) -> Batch:
        """A sample batch on the device (``image`` (N,3,H,W) in [-1,1], maybe ``mask`` and
        ``caption``) -> every tensor the loss needs (masks drawn from ``rng``). ``step`` is None for
        validation (no warm-up). Tensors must share dim 0."""

    @abc.abstractmethod
    def loss(
        self, phase: str, nets: Mapping[str, nn.Module], batch: Batch, step: int
    ) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        """The scalar loss of ``phase`` on one micro-batch, and numbers to log."""

    # ---------------------------------------------------------------- evaluation
    def inpaint(self, nets: Mapping[str, nn.Module], batch: Batch) -> torch.Tensor:
        """Filled images (N,3,H,W) in [-1,1] for ``batch`` (holes in ``batch['mask']``)."""
        raise NotImplementedError(f"{self.name} does not inpaint; override validation_metrics")

    @torch.no_grad()
    def validation_metrics(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, torch.Tensor]:
        """Per-image numbers (each a (N,) tensor), averaged by the loop. Default: hole PSNR / SSIM."""
        out = self.inpaint(nets, batch)
        pred, target, mask = (out + 1) / 2, (batch["image"] + 1) / 2, batch["mask"]
        return {
            "hole_psnr": metrics.hole_psnr(pred, target, mask),
            "hole_ssim": metrics.hole_ssim(pred, target, mask),
        }

    @torch.no_grad()
    def sample_images(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, torch.Tensor]:
        """Columns of the sample grid, each (N,3,H,W) in [-1,1]: input, mask, output, target."""
        image, mask = batch["image"], batch["mask"]
        out = self.inpaint(nets, batch)
        return {
            "input": image * (1 - mask) + mask * 0.0,
            "mask": mask.expand_as(image) * 2 - 1,
            "output": out,
            "target": image,
        }

    # ---------------------------------------------------------------- results
    @abc.abstractmethod
    def export(self, nets: Mapping[str, nn.Module]) -> ExportSpec:
        """The weights (EMA where kept) and config that the engine will load."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-able task state to checkpoint beside the weights (e.g. running averages)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore what :meth:`state_dict` returned (nothing by default)."""


def with_given_masks(sample: Batch, drawn: torch.Tensor) -> torch.Tensor:
    """Holes (N,1,H,W), 1 = hole: the rows' own masks where the data has them, ``drawn`` elsewhere."""
    if "mask" not in sample:
        return drawn
    given = sample["mask_given"].to(drawn.device).view(-1, 1, 1, 1)
    return torch.where(given, sample["mask"].to(drawn), drawn)


def gan_phases(r1_interval: int = 0) -> tuple[Phase, ...]:
    """The usual GAN step: ``G`` (the generator, with EMA), ``D`` (the critic) and, when
    ``r1_interval`` > 0, a lazy R1 phase ``Dreg`` on the critic's optimizer."""
    phases = [
        Phase("G", "generator", ("generator",), ema=True),
        Phase("D", "discriminator", ("discriminator",)),
    ]
    if r1_interval > 0:
        phases.append(Phase("Dreg", "discriminator", ("discriminator",), interval=r1_interval))
    return tuple(phases)


def bare(net: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (trained modules arrive wrapped in :meth:`Task.loss`)."""
    return getattr(net, "module", net)
