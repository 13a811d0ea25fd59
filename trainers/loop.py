"""The one training loop every model shares, as named steps of a :class:`Run` (after stylegan2-ada's).

``train(task, config)`` sets up devices and DDP, then a :class:`Run` opens its folder, loads the
data, builds the trained and frozen networks, optimizers and EMA, resumes when asked, then runs
``config.steps`` optimizer steps: per step it draws a batch, lets the task add masks, and runs each
active phase (forward / backward per micro-batch, one optimizer step), updating EMA weights,
logging (losses and every optimizer's learning rate), sampling, validating and checkpointing on
schedule. ``abort_fn``
and ``progress_fn`` let a caller stop it or watch it; Ctrl+C (or SIGTERM) finishes the current
step, saves a checkpoint and exports, then leaves with :class:`Interrupted`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler

from inpaint_studio.core import paths

from . import checkpoint, distributed
from .config import TrainConfig, to_json_dict
from .data import (
    DataError,
    ImageDataset,
    collate,
    records_from,
    split_roots,
    split_validation,
    to_device,
    write_manifest,
)
from .ema import Ema
from .export import export_weights, store_destination
from .progress import StopFlag, postfix, progress_bar, val_line
from .reporting import Reporter
from .task import Batch, Phase, Task
from .validation import Validator


class Interrupted(Exception):
    """Training stopped early (Ctrl+C, SIGTERM, or ``abort_fn``) after saving a checkpoint."""

    def __init__(self, result: TrainResult) -> None:
        super().__init__(f"stopped at step {result.step}")
        self.result = result


@dataclass
class TrainResult:
    step: int
    run_dir: Path
    checkpoint: Path | None = None
    weights: Path | None = None
    store_weights: Path | None = None
    validation: dict[str, float] = field(default_factory=dict)
    losses: list[dict[str, float]] = field(default_factory=list)


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` whose first epoch after a resume skips what was already consumed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[self.skip :]
        self.skip = 0
        return iter(indices)

    def __len__(self) -> int:
        return self.num_samples - self.skip


def _ignore_sigint(_: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop


def default_workers() -> int:
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def run_name(task: Task, config: TrainConfig) -> str:
    return config.name or f"{task.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(
    task: Task,
    config: TrainConfig,
    progress_fn: Callable[[int, int, dict[str, float]], None] | None = None,
    abort_fn: Callable[[], bool] | None = None,
    show_progress: bool = True,
) -> TrainResult:
    info = distributed.setup(config.device)
    try:
        run = Run(task, config, info)
        run.resume()
        return run.fit(progress_fn, abort_fn, show_progress)
    finally:
        distributed.cleanup(info)


class Run:
    """One run, built in the order a reader follows: run folder, data, networks, optimizers; then
    :meth:`resume`, then :meth:`fit` (steps of :meth:`optimise` per phase, :meth:`log`,
    :meth:`evaluate`, :meth:`save_checkpoint`; :meth:`export` at the end)."""

    def __init__(self, task: Task, config: TrainConfig, info: distributed.DistInfo) -> None:
        self.task, self.config, self.info, self.device = task, config, info, info.device
        self.saved = checkpoint.load(config.resume, device="cpu") if config.resume else None
        self.step = 0
        self._open_run_folder()
        self._load_data()
        self._build_networks()
        self._build_optimizers()
        self.result = TrainResult(step=0, run_dir=self.run_dir)

    # ------------------------------------------------------------------ set-up
    def _open_run_folder(self) -> None:
        task, config, saved = self.task, self.config, self.saved
        self.name = run_name(task, config)
        if config.out:
            self.run_dir = Path(config.out).expanduser()
        elif saved is not None:
            self.run_dir = saved.path.parent.parent
        else:
            self.run_dir = paths.data_dir() / "runs" / self.name
        if saved is not None and not config.name:
            self.name = saved.state.get("run_name", self.name)
        self.reporter = Reporter(self.run_dir if self.info.is_main else None)
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            options = {
                "model": task.name,
                "run_name": self.name,
                "train": to_json_dict(config),
                "model_options": to_json_dict(task.options),
            }
            (self.run_dir / "options.json").write_text(json.dumps(options, indent=2), encoding="utf-8")

    def _load_data(self) -> None:
        config, info = self.config, self.info
        rows = records_from(config.data, config.manifest, config.catalogue)
        if config.val_data:
            train_rows, val_rows = rows, records_from(config.val_data, None, None)
        else:
            roots = split_roots(config.data, config.manifest, config.catalogue)
            train_rows, val_rows = split_validation(rows, config.val_fraction, roots)
        if len(val_rows) > config.val_images:  # evenly spaced, so every source folder is represented
            val_rows = [val_rows[i * len(val_rows) // config.val_images] for i in range(config.val_images)]
        train_rows, val_rows = self.task.prepare_records(train_rows), self.task.prepare_records(val_rows)
        if info.is_main and config.catalogue:
            write_manifest(train_rows + val_rows, self.run_dir / "manifest.jsonl")
        self.per_step = config.batch_size * info.world_size
        self.dataset = ImageDataset(
            train_rows,
            config.resolution,
            True,
            config.zoom,
            config.flip,
            config.seed,
            min_length=self.per_step,
        )
        self.sampler = ResumableSampler(
            self.dataset,
            num_replicas=info.world_size,
            rank=info.rank,
            shuffle=True,
            seed=config.seed,
            drop_last=True,
        )
        workers = default_workers() if config.workers < 0 else config.workers
        self.loader = DataLoader(
            self.dataset,
            batch_size=config.batch_size,
            sampler=self.sampler,
            num_workers=workers,
            collate_fn=collate,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_ignore_sigint if workers else None,
        )
        self.batches_per_epoch = len(self.sampler) // config.batch_size
        self.val_set = ImageDataset(val_rows, config.resolution, train=False) if val_rows else None
        if info.is_main:
            print(
                f"{self.task.name}: {len(train_rows)} training / {len(val_rows)} validation images, "
                f"{config.resolution}px, batch {config.batch_size} x {info.world_size} process(es), "
                f"device {self.device}",
                file=sys.stderr,
            )

    def _build_networks(self) -> None:
        """Trained modules (with EMA copies and DDP wrappers) and frozen ones, on the device."""
        task, config, info, device = self.task, self.config, self.info, self.device
        torch.manual_seed(config.seed)  # identical initialisation on every rank
        self.modules = task.build_modules()
        self.frozen = task.build_frozen()
        clash = sorted(set(self.modules) & set(self.frozen))
        if clash:
            raise ValueError(f"{task.name}: {', '.join(clash)} cannot be both trained and frozen")
        for m in self.modules.values():
            m.to(device)
        for m in self.frozen.values():
            m.to(device).eval().requires_grad_(False)
        task.setup(self.modules, device)
        if config.init_from and self.saved is None:
            message = task.initialize_from(config.init_from, self.modules)
            if info.is_main:
                print(message, file=sys.stderr)
        self.trainable = {id(p) for m in self.modules.values() for p in m.parameters() if p.requires_grad}
        self.validator = (
            Validator(task, self.modules, self.val_set, config, info) if self.val_set is not None else None
        )

    def _build_optimizers(self) -> None:
        task, config, modules = self.task, self.config, self.modules
        self.optimizers = task.build_optimizers(modules, config.lr or task.default_lr)
        self.phases = task.phases()
        for ph in self.phases:
            if ph.optimizer not in self.optimizers or any(n not in modules for n in ph.modules):
                raise ValueError(
                    f"{task.name}: phase {ph.name} refers to an unknown optimizer or module (or a frozen one)"
                )
        self.schedulers = {
            k: torch.optim.lr_scheduler.LambdaLR(opt, _schedule(config)) for k, opt in self.optimizers.items()
        }
        self.amp_dtype = _amp_dtype(config, self.device)
        self.scalers = {
            ph.name: torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
            for ph in self.phases
        }
        self.emas = {n: Ema(modules[n], config.ema_decay) for n in task.ema_modules if config.ema_decay > 0}
        self.ddp: dict[str, nn.Module] = {}
        if self.info.enabled:
            trained = {n for ph in self.phases for n in ph.modules}
            for n in [n for n in modules if n in trained]:  # the same order on every rank (sets are not)
                self.ddp[n] = DDP(
                    modules[n],
                    device_ids=[self.device.index] if self.device.type == "cuda" else None,
                    find_unused_parameters=task.ddp_find_unused,
                )

    # ------------------------------------------------------------------ resume
    def resume(self) -> None:
        """Weights, EMA copies, optimizer / scheduler / scaler states and RNGs of ``--resume``.
        Frozen modules are not in it: the task built them again."""
        saved = self.saved
        if saved is None:
            return
        self.step = self.result.step = saved.step
        for n, m in self.modules.items():
            _load_module(m, saved.module_state(n), f"{saved.path}: {n}")
        for n, e in self.emas.items():
            ema_state = saved.module_state(n, ema=True)
            _load_module(e.module, ema_state or saved.module_state(n), f"{saved.path}: EMA {n}")
        for k, opt in self.optimizers.items():
            opt.load_state_dict(saved.training["optimizers"][k])
        for k, sch in self.schedulers.items():
            sch.load_state_dict(saved.training["schedulers"][k])
        for k, sc in self.scalers.items():
            if k in saved.training.get("scalers", {}):
                sc.load_state_dict(saved.training["scalers"][k])
        checkpoint.restore_torch_rng(saved.training["rng"])
        checkpoint.restore_rng_json(saved.state["rng"])
        self.task.load_state_dict(saved.state.get("task", {}))
        if self.info.is_main:
            print(f"resumed from {saved.path} at step {self.step}", file=sys.stderr)

    # ------------------------------------------------------------------ the loop
    def fit(
        self,
        progress_fn: Callable[[int, int, dict[str, float]], None] | None,
        abort_fn: Callable[[], bool] | None,
        show_progress: bool,
    ) -> TrainResult:
        """Steps up to ``config.steps``; Ctrl+C / SIGTERM / ``abort_fn`` save, export and raise
        :class:`Interrupted`."""
        config, info = self.config, self.info
        stop = StopFlag()
        self.bar = progress_bar(self.step, config.steps, enabled=info.is_main and show_progress)
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.t_last, self.step_last = time.perf_counter(), self.step
        batches = _batches(
            self.loader, self.sampler, self.dataset, self.step, self.batches_per_epoch, config.batch_size
        )
        with stop.installed():
            try:
                while self.step < config.steps:
                    self.train_step(next(batches))
                    self.log(progress_fn)
                    self.evaluate()
                    if self.step % config.checkpoint_every == 0 and self.step < config.steps:
                        self.result.checkpoint = self.save_checkpoint()
                        self.reporter.flush()
                    if stop.check(info) or (abort_fn is not None and abort_fn()):
                        raise KeyboardInterrupt
            except KeyboardInterrupt:
                self.bar.close()
                self.finish()
                if info.is_main:
                    print(
                        f"\nstopped at step {self.step}; checkpoint {self.result.checkpoint}; "
                        f"resume with --resume {self.run_dir}",
                        file=sys.stderr,
                    )
                raise Interrupted(self.result) from None
        self.bar.close()
        self.finish()
        distributed.barrier(info)
        return self.result

    def train_step(self, sample: Batch) -> None:
        """One optimizer step of every phase active at this step, then the schedulers."""
        config = self.config
        sample = to_device(sample, self.device)
        rng = np.random.default_rng([config.seed, self.info.rank, self.step])
        micro = _split(self.task.prepare_batch(sample, self.step, rng), config.accumulate)
        for ph in self.phases:
            if ph.active(self.step):
                self.optimise(ph, micro)
        _set_trainable(self.modules, tuple(self.modules), self.trainable)
        for sch in self.schedulers.values():
            sch.step()
        self.step += 1
        self.bar.update(1)

    def optimise(self, ph: Phase, micro: list[Batch]) -> None:
        """Forward / backward of ``ph`` per micro-batch, then one (clipped, scaled) optimizer step
        and the EMA update of its modules."""
        task, step = self.task, self.step
        _set_trainable(self.modules, ph.modules, self.trainable)
        opt, scaler = self.optimizers[ph.optimizer], self.scalers[ph.name]
        opt.zero_grad(set_to_none=True)
        nets = self.nets_for(ph)
        for i, mb in enumerate(micro):
            with _sync(nets, ph.modules, i == len(micro) - 1), _autocast(self.device, self.amp_dtype):
                loss, logs = task.loss(ph.name, nets, mb, step)
            if not torch.isfinite(loss.detach()):
                raise FloatingPointError(
                    f"{task.name}: the {ph.name} loss became {loss.item()} at step {step}; "
                    "lower --lr or resume from an earlier checkpoint"
                )
            scaler.scale(loss / len(micro)).backward()
            _accumulate(self.sums, self.counts, ph.name, loss, logs)
        params = [p for n in ph.modules for p in self.modules[n].parameters() if p.grad is not None]
        if self.config.grad_clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)  # no gradients held through logging, samples and checkpoints
        if ph.ema:
            for n in ph.modules:
                if n in self.emas:
                    self.emas[n].update(self.modules[n], step)

    def log(self, progress_fn: Callable[[int, int, dict[str, float]], None] | None) -> None:
        """Every ``log_every`` steps: mean losses, throughput and each optimizer's learning rate."""
        config, step = self.config, self.step
        if step % config.log_every and step != config.steps:
            return
        now = time.perf_counter()
        values = {k: self.sums[k] / self.counts[k] for k in self.sums}
        values["images_per_s"] = (step - self.step_last) * self.per_step / max(now - self.t_last, 1e-9)
        values.update({f"lr/{k}": sch.get_last_lr()[0] for k, sch in self.schedulers.items()})
        self.t_last, self.step_last = now, step
        self.sums.clear()
        self.counts.clear()
        self.reporter.scalars(step, values)
        self.result.losses.append({"step": step, **values})
        self.bar.set_postfix(postfix(values), refresh=False)
        if progress_fn is not None:
            progress_fn(step, config.steps, values)

    def evaluate(self) -> None:
        """Sample grids (rank 0) and validation (every rank) on their schedules."""
        config, step, info, validator = self.config, self.step, self.info, self.validator
        if validator is None:
            return
        last = step == config.steps
        if info.is_main and (step % config.sample_every == 0 or last):
            validator.samples(self.eval_nets(), self.reporter, step)
        if step % config.val_every == 0 or last:
            self.result.validation = validator.scores(self.eval_nets())
            self.reporter.scalars(step, self.result.validation, group="val")
            if info.is_main:
                self.bar.write(val_line(step, self.result.validation))

    # ------------------------------------------------------------------ networks as the task sees them
    def nets_for(self, ph: Phase) -> dict[str, nn.Module]:
        """The modules ``ph`` trains DDP-wrapped, the rest (and the frozen ones) bare."""
        nets = {n: (self.ddp[n] if n in ph.modules and n in self.ddp else m) for n, m in self.modules.items()}
        return {**nets, **self.frozen}

    def eval_nets(self) -> dict[str, nn.Module]:
        """EMA copies where kept, the trained modules otherwise, and the frozen ones."""
        nets = {n: (self.emas[n].module if n in self.emas else m) for n, m in self.modules.items()}
        return {**nets, **self.frozen}

    # ------------------------------------------------------------------ results
    def save_checkpoint(self) -> Path | None:
        """Rank 0 writes the trained modules, their EMA copies and the training state (no frozen ones)."""
        if not self.info.is_main:
            return None
        training = {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "rng": checkpoint.torch_rng_states(),
        }
        state = {
            "model": self.task.name,
            "run_name": self.name,
            "epoch": self.step // max(self.batches_per_epoch, 1),
            "world_size": self.info.world_size,
            "train": to_json_dict(self.config),
            "model_options": to_json_dict(self.task.options),
            "task": self.task.state_dict(),
            "rng": checkpoint.rng_state_json(),
        }
        folder = self.run_dir / "checkpoints"
        emas = {n: e.module for n, e in self.emas.items()}
        path = checkpoint.save(folder, self.step, self.modules, emas, training, state)
        checkpoint.prune(folder, self.config.keep_checkpoints)
        return path

    def export(self) -> tuple[Path | None, Path | None]:
        """Rank 0 writes the task's export to RUN/weights and (unless told not to) the model store."""
        if not self.info.is_main:
            return None, None
        config = self.config
        trained = {
            "model": self.task.name,
            "steps": self.step,
            "resolution": config.resolution,
            "batch_size": self.per_step,
            "data": config.data_sources,
        }
        nets = self.eval_nets()
        weights = export_weights(self.task, nets, self.run_dir / "weights", trained)
        store = (
            export_weights(self.task, nets, store_destination(self.task, self.name), trained)
            if config.export_to_store
            else None
        )
        return weights, store

    def finish(self) -> None:
        """The last checkpoint and the export, at the end or on a stop."""
        self.result.step = self.step
        self.result.checkpoint = self.save_checkpoint()
        self.result.weights, self.result.store_weights = self.export()
        self.reporter.close()


# ---------------------------------------------------------------------- helpers
def _schedule(config: TrainConfig) -> Callable[[int], float]:
    warm, total, cosine = config.warmup_steps, max(config.steps, 1), config.lr_schedule == "cosine"

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if not cosine:
            return 1.0
        progress = min(1.0, (step - warm) / max(total - warm, 1))
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))  # down to 10 % of the base rate

    return factor


def _amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if not config.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _sync(
    nets: Mapping[str, nn.Module], trained: tuple[str, ...], sync: bool
) -> contextlib.AbstractContextManager:
    """DDP gradient all-reduce only on the last micro-batch of a step."""
    stack = contextlib.ExitStack()
    if not sync:
        for n in trained:
            if isinstance(nets[n], DDP):
                stack.enter_context(nets[n].no_sync())
    return stack


def _set_trainable(modules: Mapping[str, nn.Module], names: tuple[str, ...], trainable: set[int]) -> None:
    for n, m in modules.items():
        for p in m.parameters():
            p.requires_grad_(n in names and id(p) in trainable)


def _split(batch: Batch, parts: int) -> list[Batch]:
    """Micro-batches along dim 0 (lists such as captions are cut alike; the config makes the
    batch size a multiple of ``parts``)."""
    if parts == 1:
        return [batch]
    chunks = {k: v.chunk(parts) if isinstance(v, torch.Tensor) else _cut(v, parts) for k, v in batch.items()}
    return [{k: v[i] for k, v in chunks.items()} for i in range(parts)]


def _cut(items: list, parts: int) -> list[list]:
    size = len(items) // parts
    return [items[i * size : (i + 1) * size] for i in range(parts)]


def _accumulate(sums: dict, counts: dict, phase: str, loss: torch.Tensor, logs: Mapping[str, Any]) -> None:
    for key, value in {"loss": loss, **logs}.items():
        v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        sums[f"{phase}/{key}"] += v
        counts[f"{phase}/{key}"] += 1


def _batches(
    loader: DataLoader,
    sampler: ResumableSampler,
    dataset: ImageDataset,
    step: int,
    per_epoch: int,
    batch_size: int,
) -> Iterator[Batch]:
    if per_epoch < 1:
        raise DataError("not enough training images for one batch")
    epoch, offset = divmod(step, per_epoch)
    while True:
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        sampler.skip = offset * batch_size
        yield from loader
        epoch, offset = epoch + 1, 0


def _load_module(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    if not state:
        raise checkpoint.CheckpointError(f"{what}: the checkpoint holds no weights for it")
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise checkpoint.CheckpointError(
            f"{what}: the checkpoint does not fit this model ({first}); were the model options changed?"
        ) from None
