"""What a run shows: TensorBoard scalars and sample grids, a metrics log, PNG sample sheets.

Only rank 0 reports. TensorBoard is imported lazily so that a run without it installed still
trains (it then says so once and keeps the JSON-lines log and the PNGs).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inpaint_studio.core.imageio import save_image

from .data import to_uint8


class Reporter:
    def __init__(self, run_dir: Path | None) -> None:
        self.run_dir = run_dir
        self._writer: Any = None
        self._tried = False

    @property
    def enabled(self) -> bool:
        return self.run_dir is not None

    def _tb(self) -> Any:
        if not self._tried and self.run_dir is not None:
            self._tried = True
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.run_dir / "logs"))
            except ImportError as err:  # pragma: no cover - tensorboard is a declared dependency
                warnings.warn(
                    f"TensorBoard is not available ({err}); logging to metrics.jsonl only", stacklevel=2
                )
        return self._writer

    def scalars(self, step: int, values: dict[str, float], group: str = "train") -> None:
        if not self.enabled:
            return
        writer = self._tb()
        if writer is not None:
            for key, value in values.items():
                writer.add_scalar(f"{group}/{key}", value, step)
        with (self.run_dir / "metrics.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps({"group": group, "step": step, "time": time.time(), **values}) + "\n")

    def grid(
        self,
        step: int,
        columns: dict[str, torch.Tensor],
        max_rows: int = 8,
        captions: list[str] | None = None,
    ) -> Path | None:
        """One row per sample, one column per entry (input / mask / output / target); ``captions``
        (the prompts of text-conditioned models) go beside it, one line per row, and to TensorBoard."""
        if not self.enabled:
            return None
        sheet = make_grid(columns, max_rows)
        path = self.run_dir / "samples" / f"step-{step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(path, sheet)
        rows = None
        if captions is not None:
            rows = [f"{i + 1}. {c or '(empty prompt)'}" for i, c in enumerate(captions[:max_rows])]
            path.with_suffix(".txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
        writer = self._tb()
        if writer is not None:
            writer.add_image("samples/" + "|".join(columns), sheet, step, dataformats="HWC")
            if rows is not None:
                writer.add_text("samples/prompts", "  \n".join(rows), step)
        return path

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def make_grid(columns: dict[str, torch.Tensor], max_rows: int = 8, gap: int = 2) -> np.ndarray:
    """Tile (N,3,H,W) tensors in [-1,1] into an RGB uint8 sheet with white gaps."""
    tiles = [to_uint8(t[:max_rows]) for t in columns.values()]
    n, h, w, _ = tiles[0].shape
    cols = len(tiles)
    sheet = np.full((n * h + (n - 1) * gap, cols * w + (cols - 1) * gap, 3), 255, np.uint8)
    for c, tile in enumerate(tiles):
        for r in range(n):
            sheet[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile[r]
    return sheet
