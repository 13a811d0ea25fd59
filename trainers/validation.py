"""Scoring held-out images and drawing sample grids, with the networks in eval mode meanwhile."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import distributed
from .config import TrainConfig
from .data import ImageDataset, collate, to_device
from .reporting import Reporter
from .task import Batch, Task


def concat(parts: Sequence[Batch]) -> Batch:
    """Batches joined along dim 0 (tensors concatenated, caption lists chained)."""
    return {
        k: torch.cat([p[k] for p in parts])
        if isinstance(parts[0][k], torch.Tensor)
        else [v for p in parts for v in p[k]]
        for k in parts[0]
    }


@torch.no_grad()
def val_batches(
    task: Task, val_set: ImageDataset, indices: list[int], config: TrainConfig, device: torch.device
) -> Iterator[Batch]:
    """Prepared validation batches; each image's masks come from its own fixed seed."""
    for start in range(0, len(indices), config.batch_size):
        parts = []
        for i in indices[start : start + config.batch_size]:
            sample = to_device(collate([val_set[i]]), device)
            parts.append(task.prepare_batch(sample, None, np.random.default_rng([config.seed, 7919, i])))
        yield concat(parts)


@contextlib.contextmanager
def eval_mode(*groups: Mapping[str, nn.Module]) -> Iterator[None]:
    """Every module of ``groups`` in eval mode; those that were training go back to it."""
    was_training = [m for m in {id(m): m for g in groups for m in g.values()}.values() if m.training]
    for m in was_training:
        m.eval()
    try:
        yield
    finally:
        for m in was_training:
            m.train()


class Validator:
    """The held-out images of a run, scored and drawn with the networks in eval mode."""

    def __init__(
        self,
        task: Task,
        modules: Mapping[str, nn.Module],
        val_set: ImageDataset,
        config: TrainConfig,
        info: distributed.DistInfo,
    ) -> None:
        self.task, self.modules, self.val_set, self.config, self.info = task, modules, val_set, config, info

    @torch.no_grad()
    def scores(self, nets: Mapping[str, nn.Module]) -> dict[str, float]:
        """Per-image metrics averaged over the whole validation set (shards summed across ranks)."""
        info, val_set = self.info, self.val_set
        sums: dict[str, float] = defaultdict(float)
        with eval_mode(self.modules, nets):
            indices = list(range(info.rank, len(val_set), info.world_size))
            for batch in val_batches(self.task, val_set, indices, self.config, info.device):
                for key, values in self.task.validation_metrics(nets, batch).items():
                    finite = values[torch.isfinite(values)]
                    sums[key] += float(finite.sum())
                    sums[f"_n_{key}"] += float(finite.numel())
        keys = sorted(k for k in sums if not k.startswith("_n_"))
        if info.enabled:
            # every rank must take part with the same keys; ranks without images contribute zeros
            all_keys = [None] * info.world_size
            torch.distributed.all_gather_object(all_keys, keys)
            keys = sorted({k for ks in all_keys for k in ks})
        packed = torch.tensor(
            [v for k in keys for v in (sums[k], sums[f"_n_{k}"])], dtype=torch.float64, device=info.device
        )
        distributed.all_reduce_sum(packed, info)
        return {
            k: float(packed[2 * i] / packed[2 * i + 1]) for i, k in enumerate(keys) if packed[2 * i + 1] > 0
        }

    @torch.no_grad()
    def samples(self, nets: Mapping[str, nn.Module], reporter: Reporter, step: int) -> None:
        """The task's sample grid of the first (up to) 8 validation images."""
        indices = list(range(min(8, len(self.val_set))))
        with eval_mode(self.modules, nets):
            batch = next(val_batches(self.task, self.val_set, indices, self.config, self.info.device))
            reporter.grid(step, self.task.sample_images(nets, batch), captions=batch.get("caption"))
