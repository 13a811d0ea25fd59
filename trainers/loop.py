"""The one training loop every model shares, in labelled sections (after stylegan2-ada's).

``train(task, config)`` sets up devices and DDP, data, modules, optimizers, EMA, resumes when
asked, then runs ``config.steps`` optimizer steps: per step it draws a batch, lets the task add
masks, and runs each active phase (forward / backward per micro-batch, one optimizer step),
updating EMA weights, logging, sampling, validating and checkpointing on schedule. ``abort_fn``
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
import threading
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
from .data import DataError, ImageFolder, list_images, split_validation
from .ema import Ema
from .export import export_weights, store_destination
from .reporting import Reporter
from .task import Batch, Task


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
    # ------------------------------------------------------------------ devices, DDP, run folder
    info = distributed.setup(config.device)
    try:
        return _train(task, config, info, progress_fn, abort_fn, show_progress)
    finally:
        distributed.cleanup(info)


def _train(
    task: Task,
    config: TrainConfig,
    info: distributed.DistInfo,
    progress_fn: Callable[[int, int, dict[str, float]], None] | None,
    abort_fn: Callable[[], bool] | None,
    show_progress: bool,
) -> TrainResult:
    device = info.device
    resume = checkpoint.load(config.resume, device="cpu") if config.resume else None
    name = run_name(task, config)
    if config.out:
        run_dir = Path(config.out).expanduser()
    elif resume is not None:
        run_dir = resume.path.parent.parent
    else:
        run_dir = paths.data_dir() / "runs" / name
    if resume is not None and not config.name:
        name = resume.state.get("run_name", name)
    reporter = Reporter(run_dir if info.is_main else None)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        options = {
            "model": task.name,
            "run_name": name,
            "train": to_json_dict(config),
            "model_options": to_json_dict(task.options),
        }
        (run_dir / "options.json").write_text(json.dumps(options, indent=2), encoding="utf-8")

    # ------------------------------------------------------------------ data
    files = list_images(config.data)
    if config.val_data:
        train_files, val_files = files, list_images(config.val_data)
    else:
        train_files, val_files = split_validation(files, config.val_fraction, config.data)
    if len(val_files) > config.val_images:  # evenly spaced, so every source folder is represented
        val_files = [val_files[i * len(val_files) // config.val_images] for i in range(config.val_images)]
    per_step = config.batch_size * info.world_size
    dataset = ImageFolder(
        train_files, config.resolution, True, config.zoom, config.flip, config.seed, min_length=per_step
    )
    sampler = ResumableSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=config.seed, drop_last=True
    )
    workers = default_workers() if config.workers < 0 else config.workers
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
        worker_init_fn=_ignore_sigint if workers else None,
    )
    batches_per_epoch = len(sampler) // config.batch_size
    val_set = ImageFolder(val_files, config.resolution, train=False) if val_files else None
    if info.is_main:
        print(
            f"{task.name}: {len(train_files)} training / {len(val_files)} validation images, "
            f"{config.resolution}px, batch {config.batch_size} x {info.world_size} process(es), device {device}",
            file=sys.stderr,
        )

    # ------------------------------------------------------------------ modules, optimizers, EMA
    torch.manual_seed(config.seed)  # identical initialisation on every rank
    modules = task.build_modules()
    for m in modules.values():
        m.to(device)
    task.setup(modules, device)
    if config.init_from and resume is None:
        message = task.initialize_from(config.init_from, modules)
        if info.is_main:
            print(message, file=sys.stderr)
    trainable = {id(p) for m in modules.values() for p in m.parameters() if p.requires_grad}
    optimizers = task.build_optimizers(modules, config.lr or task.default_lr)
    phases = task.phases()
    for ph in phases:
        if ph.optimizer not in optimizers or any(n not in modules for n in ph.modules):
            raise ValueError(f"{task.name}: phase {ph.name} refers to an unknown optimizer or module")
    schedulers = {
        k: torch.optim.lr_scheduler.LambdaLR(opt, _schedule(config)) for k, opt in optimizers.items()
    }
    amp_dtype = _amp_dtype(config, device)
    scalers = {ph.name: torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16) for ph in phases}
    emas = {n: Ema(modules[n], config.ema_decay) for n in task.ema_modules if config.ema_decay > 0}
    ddp: dict[str, nn.Module] = {}
    if info.enabled:
        trained = {n for ph in phases for n in ph.modules}
        for n in [n for n in modules if n in trained]:  # the same order on every rank (sets are not)
            ddp[n] = DDP(
                modules[n],
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=task.ddp_find_unused,
            )

    # ------------------------------------------------------------------ resume
    step = 0
    if resume is not None:
        step = resume.step
        for n, m in modules.items():
            _load_module(m, resume.module_state(n), f"{resume.path}: {n}")
        for n, e in emas.items():
            ema_state = resume.module_state(n, ema=True)
            _load_module(e.module, ema_state or resume.module_state(n), f"{resume.path}: EMA {n}")
        for k, opt in optimizers.items():
            opt.load_state_dict(resume.training["optimizers"][k])
        for k, sch in schedulers.items():
            sch.load_state_dict(resume.training["schedulers"][k])
        for k, sc in scalers.items():
            if k in resume.training.get("scalers", {}):
                sc.load_state_dict(resume.training["scalers"][k])
        checkpoint.restore_torch_rng(resume.training["rng"])
        checkpoint.restore_rng_json(resume.state["rng"])
        task.load_state_dict(resume.state.get("task", {}))
        if info.is_main:
            print(f"resumed from {resume.path} at step {step}", file=sys.stderr)

    def eval_nets() -> dict[str, nn.Module]:
        return {n: (emas[n].module if n in emas else m) for n, m in modules.items()}

    def save_checkpoint() -> Path | None:
        if not info.is_main:
            return None
        training = {
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
            "scalers": {k: s.state_dict() for k, s in scalers.items()},
            "rng": checkpoint.torch_rng_states(),
        }
        state = {
            "model": task.name,
            "run_name": name,
            "epoch": step // max(batches_per_epoch, 1),
            "world_size": info.world_size,
            "train": to_json_dict(config),
            "model_options": to_json_dict(task.options),
            "task": task.state_dict(),
            "rng": checkpoint.rng_state_json(),
        }
        folder = run_dir / "checkpoints"
        path = checkpoint.save(folder, step, modules, {n: e.module for n, e in emas.items()}, training, state)
        checkpoint.prune(folder, config.keep_checkpoints)
        return path

    def export() -> tuple[Path | None, Path | None]:
        if not info.is_main:
            return None, None
        trained = {
            "model": task.name,
            "steps": step,
            "resolution": config.resolution,
            "batch_size": per_step,
            "data": [str(Path(d)) for d in config.data],
        }
        nets = eval_nets()
        weights = export_weights(task, nets, run_dir / "weights", trained)
        store = (
            export_weights(task, nets, store_destination(task, name), trained)
            if config.export_to_store
            else None
        )
        return weights, store

    result = TrainResult(step=step, run_dir=run_dir)

    # ------------------------------------------------------------------ the loop
    stop = _StopFlag()
    bar = _progress_bar(step, config.steps, enabled=info.is_main and show_progress)
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    t_last, step_last = time.perf_counter(), step
    batches = _batches(loader, sampler, dataset, step, batches_per_epoch, config.batch_size)
    with stop.installed():
        try:
            while step < config.steps:
                images = next(batches).to(device, non_blocking=True)
                rng = np.random.default_rng([config.seed, info.rank, step])
                batch = task.prepare_batch(images, step, rng)
                micro = _split(batch, config.accumulate)
                for ph in phases:
                    if not ph.active(step):
                        continue
                    _set_trainable(modules, ph.modules, trainable)
                    opt = optimizers[ph.optimizer]
                    opt.zero_grad(set_to_none=True)
                    nets = {n: (ddp[n] if n in ph.modules and n in ddp else m) for n, m in modules.items()}
                    for i, mb in enumerate(micro):
                        with _sync(nets, ph.modules, i == len(micro) - 1), _autocast(device, amp_dtype):
                            loss, logs = task.loss(ph.name, nets, mb, step)
                        if not torch.isfinite(loss.detach()):
                            raise FloatingPointError(
                                f"{task.name}: the {ph.name} loss became {loss.item()} at step {step}; "
                                "lower --lr or resume from an earlier checkpoint"
                            )
                        scalers[ph.name].scale(loss / len(micro)).backward()
                        _accumulate(sums, counts, ph.name, loss, logs)
                    params = [p for n in ph.modules for p in modules[n].parameters() if p.grad is not None]
                    if config.grad_clip > 0:
                        scalers[ph.name].unscale_(opt)
                        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                    scalers[ph.name].step(opt)
                    scalers[ph.name].update()
                    if ph.ema:
                        for n in ph.modules:
                            if n in emas:
                                emas[n].update(modules[n], step)
                _set_trainable(modules, tuple(modules), trainable)
                for sch in schedulers.values():
                    sch.step()
                step += 1
                bar.update(1)

                # ---------------------------------------------------------- reporting
                if step % config.log_every == 0 or step == config.steps:
                    now = time.perf_counter()
                    values = {k: sums[k] / counts[k] for k in sums}
                    values["images_per_s"] = (step - step_last) * per_step / max(now - t_last, 1e-9)
                    values["lr"] = next(iter(schedulers.values())).get_last_lr()[0]
                    t_last, step_last = now, step
                    sums.clear()
                    counts.clear()
                    reporter.scalars(step, values)
                    result.losses.append({"step": step, **values})
                    bar.set_postfix(_postfix(values), refresh=False)
                    if progress_fn is not None:
                        progress_fn(step, config.steps, values)
                if info.is_main and (step % config.sample_every == 0 or step == config.steps) and val_set:
                    _write_samples(task, eval_nets(), modules, val_set, config, device, reporter, step)
                if val_set is not None and (step % config.val_every == 0 or step == config.steps):
                    result.validation = _validate(task, eval_nets(), modules, val_set, config, info, device)
                    reporter.scalars(step, result.validation, group="val")
                    if info.is_main:
                        bar.write(_val_line(step, result.validation))
                if step % config.checkpoint_every == 0 and step < config.steps:
                    result.checkpoint = save_checkpoint()
                    reporter.flush()
                if stop.check(info) or (abort_fn is not None and abort_fn()):
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            bar.close()
            result.step = step
            result.checkpoint = save_checkpoint()
            result.weights, result.store_weights = export()
            reporter.close()
            if info.is_main:
                print(
                    f"\nstopped at step {step}; checkpoint {result.checkpoint}; resume with --resume {run_dir}",
                    file=sys.stderr,
                )
            raise Interrupted(result) from None
    bar.close()

    # ------------------------------------------------------------------ finish
    result.step = step
    result.checkpoint = save_checkpoint()
    result.weights, result.store_weights = export()
    reporter.close()
    distributed.barrier(info)
    return result


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
    if parts == 1:
        return [batch]
    chunks = {k: v.chunk(parts) for k, v in batch.items()}
    return [{k: v[i] for k, v in chunks.items()} for i in range(parts)]


def _accumulate(sums: dict, counts: dict, phase: str, loss: torch.Tensor, logs: Mapping[str, Any]) -> None:
    for key, value in {"loss": loss, **logs}.items():
        v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        sums[f"{phase}/{key}"] += v
        counts[f"{phase}/{key}"] += 1


def _batches(
    loader: DataLoader,
    sampler: ResumableSampler,
    dataset: ImageFolder,
    step: int,
    per_epoch: int,
    batch_size: int,
) -> Iterator[torch.Tensor]:
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


@torch.no_grad()
def _val_batches(
    task: Task, val_set: ImageFolder, indices: list[int], config: TrainConfig, device: torch.device
):
    for start in range(0, len(indices), config.batch_size):
        parts = []
        for i in indices[start : start + config.batch_size]:
            image = val_set[i].unsqueeze(0).to(device)
            parts.append(task.prepare_batch(image, None, np.random.default_rng([config.seed, 7919, i])))
        yield {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _eval_mode(modules: Mapping[str, nn.Module], nets: Mapping[str, nn.Module]) -> list[nn.Module]:
    was_training = [m for m in {id(m): m for m in [*modules.values(), *nets.values()]}.values() if m.training]
    for m in was_training:
        m.eval()
    return was_training


@torch.no_grad()
def _validate(
    task: Task,
    nets: Mapping[str, nn.Module],
    modules: Mapping[str, nn.Module],
    val_set: ImageFolder,
    config: TrainConfig,
    info: distributed.DistInfo,
    device: torch.device,
) -> dict[str, float]:
    """Per-image metrics averaged over the whole validation set (shards summed across ranks)."""
    restore = _eval_mode(modules, nets)
    sums: dict[str, float] = defaultdict(float)
    count = 0
    try:
        indices = list(range(info.rank, len(val_set), info.world_size))
        for batch in _val_batches(task, val_set, indices, config, device):
            for key, values in task.validation_metrics(nets, batch).items():
                finite = values[torch.isfinite(values)]
                sums[key] += float(finite.sum())
                sums[f"_n_{key}"] += float(finite.numel())
            count += len(batch["image"])
    finally:
        for m in restore:
            m.train()
    keys = sorted(k for k in sums if not k.startswith("_n_"))
    if info.enabled:
        # every rank must take part with the same keys; ranks without images contribute zeros
        all_keys = [None] * info.world_size
        torch.distributed.all_gather_object(all_keys, keys)
        keys = sorted({k for ks in all_keys for k in ks})
    packed = torch.tensor(
        [v for k in keys for v in (sums[k], sums[f"_n_{k}"])], dtype=torch.float64, device=device
    )
    distributed.all_reduce_sum(packed, info)
    return {k: float(packed[2 * i] / packed[2 * i + 1]) for i, k in enumerate(keys) if packed[2 * i + 1] > 0}


@torch.no_grad()
def _write_samples(task, nets, modules, val_set, config, device, reporter: Reporter, step: int) -> None:
    restore = _eval_mode(modules, nets)
    try:
        batch = next(_val_batches(task, val_set, list(range(min(8, len(val_set)))), config, device))
        reporter.grid(step, task.sample_images(nets, batch))
    finally:
        for m in restore:
            m.train()


def _postfix(values: Mapping[str, float]) -> dict[str, str]:
    out = {k.replace("/loss", ""): f"{v:.4g}" for k, v in values.items() if k.endswith("/loss")}
    out["img/s"] = f"{values.get('images_per_s', 0):.1f}"
    return out


def _val_line(step: int, values: Mapping[str, float]) -> str:
    return f"step {step}: validation " + ", ".join(f"{k} {v:.4f}" for k, v in values.items())


class _NoBar:
    def update(self, n: int) -> None: ...
    def set_postfix(self, *a: Any, **k: Any) -> None: ...
    def write(self, text: str) -> None:
        print(text, file=sys.stderr)

    def close(self) -> None: ...


def _progress_bar(step: int, total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, file=sys.stderr)


class _StopFlag:
    """First Ctrl+C / SIGTERM asks to stop after the current step; a second one stops at once."""

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum: int, frame: Any) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            print(
                "\nstopping after this step and saving a checkpoint (press Ctrl+C again to quit now)",
                file=sys.stderr,
            )

        for s in previous:
            signal.signal(s, handler)
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def check(self, info: distributed.DistInfo) -> bool:
        """All ranks agree: one rank asked to stop, so all stop after the same step."""
        if not info.enabled:
            return self.requested
        flag = torch.tensor([1.0 if self.requested else 0.0], device=info.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())
