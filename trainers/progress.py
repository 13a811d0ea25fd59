"""What a person watching a run sees and does: the progress line, and Ctrl+C / SIGTERM to stop it.

The progress line (tqdm, rank 0 only) shows each phase's loss, every optimizer's learning rate and
the throughput; validation results are printed below it. The first Ctrl+C / SIGTERM asks the loop
to stop after the current step (all ranks agree on it), a second one stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from . import distributed


def postfix(values: Mapping[str, float]) -> dict[str, str]:
    """The progress line's fields: phase losses, learning rates (``lr/<optimizer>``), images / s."""
    out = {k.replace("/loss", ""): f"{v:.4g}" for k, v in values.items() if k.endswith("/loss")}
    out.update({k: f"{v:.3g}" for k, v in values.items() if k.startswith("lr/")})
    out["img/s"] = f"{values.get('images_per_s', 0):.1f}"
    return out


def val_line(step: int, values: Mapping[str, float]) -> str:
    return f"step {step}: validation " + ", ".join(f"{k} {v:.4f}" for k, v in values.items())


class _NoBar:
    """The progress bar of ranks other than 0, and of runs asked not to show one."""

    def update(self, n: int) -> None: ...
    def set_postfix(self, *a: Any, **k: Any) -> None: ...
    def write(self, text: str) -> None:
        print(text, file=sys.stderr)

    def close(self) -> None: ...


def progress_bar(step: int, total: int, enabled: bool) -> Any:
    """tqdm from ``step`` of ``total`` on stderr, or a silent stand-in."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, file=sys.stderr)


class StopFlag:
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
