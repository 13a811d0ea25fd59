"""BrushNet's injection points on a stock diffusers UNet, reached through forward hooks.

BrushNet adds one branch feature per point of the UNet's main path. The points are the same for
the stock ``UNet2DConditionModel`` and for our branch (both are built from diffusers' blocks), so
one enumeration serves both: the branch *records* its features at these points and the UNet gets
them *added* at the same points.

Order of the points (12 / 1 / 15 for the SD-1.5 layout):

* down: the input of ``down_blocks[0]`` (that is conv_in's output on its way into the first block;
  the UNet's first skip connection keeps the raw conv_in output, which is why this is a forward
  *pre*-hook on ``down_blocks[0]`` and not a hook on ``conv_in``), then the output of every resnet,
  or of the attention that follows it in a cross-attention block, then every downsampler;
* mid: the output of ``mid_block``;
* up: the output of every up resnet (or its attention), then every upsampler; main path only, the
  up path stores no skips.

In the down path the sum is both passed on and stored as the skip, exactly as BrushNet's fork does.
Nothing here imports diffusers: blocks are recognised by their ``resnets`` / ``attentions`` /
``downsamplers`` / ``upsamplers`` attributes.

API: :func:`injection_points`, :class:`BranchResiduals`, :func:`inject_residuals` (context manager
that adds residuals during one UNet call and always removes its hooks), :func:`record_points`
(context manager that records the features at the points of a module while it runs).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class InjectionPoints:
    """The modules whose input (``first``) or outputs (the rest) carry a branch feature."""

    first: nn.Module
    down: tuple[nn.Module, ...]
    mid: nn.Module
    up: tuple[nn.Module, ...]

    @property
    def n_down(self) -> int:
        """Down residuals, counting the one for conv_in's output."""
        return len(self.down) + 1

    @property
    def n_up(self) -> int:
        return len(self.up)


@dataclass(frozen=True)
class BranchResiduals:
    """What a brush branch hands to the UNet: one tensor per injection point, in point order."""

    down: tuple[torch.Tensor, ...]
    mid: torch.Tensor
    up: tuple[torch.Tensor, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "down", tuple(self.down))
        object.__setattr__(self, "up", tuple(self.up))

    def all(self) -> tuple[torch.Tensor, ...]:
        """Every residual in injection order (down, mid, up)."""
        return (*self.down, self.mid, *self.up)

    def scaled(self, scales: float | Sequence[float] | torch.Tensor) -> BranchResiduals:
        """Multiply by one scale, or by one scale per residual (injection order)."""
        items = self.all()
        if isinstance(scales, (int, float)):
            out = [r * scales for r in items]
        else:
            if len(scales) != len(items):
                raise ValueError(f"{len(scales)} scales for {len(items)} residuals")
            out = [r * s for r, s in zip(items, scales, strict=True)]
        n = len(self.down)
        return BranchResiduals(tuple(out[:n]), out[n], tuple(out[n + 1 :]))


def _block_points(block: nn.Module, sampler_attr: str) -> list[nn.Module]:
    """Resnets (or the attention after each), then the block's down/upsamplers."""
    resnets = list(block.resnets)
    attentions = [a for a in (getattr(block, "attentions", None) or []) if a is not None]
    if attentions and len(attentions) != len(resnets):
        raise ValueError(f"{type(block).__name__}: {len(attentions)} attentions for {len(resnets)} resnets")
    points = attentions or resnets
    samplers = getattr(block, sampler_attr, None)
    return [*points, *(samplers or [])]


def injection_points(net: nn.Module) -> InjectionPoints:
    """BrushNet's points of a diffusers-style UNet or of our branch (see the module docstring)."""
    for name in ("down_blocks", "mid_block", "up_blocks"):
        if getattr(net, name, None) is None:
            raise TypeError(f"{type(net).__name__} has no {name}: not a diffusers-style UNet")
    down = [p for block in net.down_blocks for p in _block_points(block, "downsamplers")]
    up = [p for block in net.up_blocks for p in _block_points(block, "upsamplers")]
    return InjectionPoints(net.down_blocks[0], tuple(down), net.mid_block, tuple(up))


def _first_tensor(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"cannot inject into a module returning {type(output).__name__}")


def _replace_first(output: Any, value: torch.Tensor) -> Any:
    return value if isinstance(output, torch.Tensor) else (value, *output[1:])


def _add(target: torch.Tensor, residual: torch.Tensor, where: str) -> torch.Tensor:
    if residual.shape[1:] != target.shape[1:] or residual.shape[0] not in (1, target.shape[0]):
        raise ValueError(
            f"branch residual {tuple(residual.shape)} does not fit the UNet feature {tuple(target.shape)} "
            f"at {where}: the branch was built for another UNet layout or batch"
        )
    return target + residual.to(dtype=target.dtype)


def _first_input(args: tuple, kwargs: dict) -> torch.Tensor:
    return kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]


@contextmanager
def inject_residuals(unet: nn.Module, residuals: BranchResiduals) -> Iterator[None]:
    """Add ``residuals`` at BrushNet's points for the UNet calls inside the ``with`` block.

    Meant for one UNet call (each point adds its residual every time its module runs). The hooks
    are removed on exit, also when the call raises. A residual of batch 1 is broadcast, so one
    branch pass can serve both halves of a classifier-free-guidance batch.
    """
    points = injection_points(unet)
    if len(residuals.down) != points.n_down or len(residuals.up) != points.n_up:
        raise ValueError(
            f"the branch gives {len(residuals.down)} down / {len(residuals.up)} up residuals, the UNet has "
            f"{points.n_down} / {points.n_up} injection points: branch and UNet layouts differ"
        )
    handles = []

    def pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        value = _add(_first_input(args, kwargs), residuals.down[0], "down_blocks[0] input")
        if "hidden_states" in kwargs:
            return args, {**kwargs, "hidden_states": value}
        return (value, *args[1:]), kwargs

    def output_hook(residual: torch.Tensor, where: str):
        def hook(module: nn.Module, args: tuple, output: Any) -> Any:
            return _replace_first(output, _add(_first_tensor(output), residual, where))

        return hook

    try:
        handles.append(points.first.register_forward_pre_hook(pre_hook, with_kwargs=True))
        named = [
            *(
                (m, r, f"down point {i + 1}")
                for i, (m, r) in enumerate(zip(points.down, residuals.down[1:], strict=True))
            ),
            (points.mid, residuals.mid, "mid block"),
            *((m, r, f"up point {i}") for i, (m, r) in enumerate(zip(points.up, residuals.up, strict=True))),
        ]
        for module, residual, where in named:
            handles.append(module.register_forward_hook(output_hook(residual, where)))
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class RecordedPoints:
    """Features seen at the points while :func:`record_points` was active (last call wins)."""

    down: list[torch.Tensor | None] = field(default_factory=list)
    mid: torch.Tensor | None = None
    up: list[torch.Tensor | None] = field(default_factory=list)

    def complete(self) -> bool:
        return self.mid is not None and all(t is not None for t in (*self.down, *self.up))


@contextmanager
def record_points(net: nn.Module) -> Iterator[RecordedPoints]:
    """Record the features at ``net``'s injection points while it runs; hooks removed on exit."""
    points = injection_points(net)
    seen = RecordedPoints(down=[None] * points.n_down, up=[None] * points.n_up)
    handles = []

    def pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        seen.down[0] = _first_input(args, kwargs)

    def store(kind: str, index: int):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            value = _first_tensor(output)
            if kind == "mid":
                seen.mid = value
            else:
                getattr(seen, kind)[index] = value

        return hook

    try:
        handles.append(points.first.register_forward_pre_hook(pre_hook, with_kwargs=True))
        for i, module in enumerate(points.down):
            handles.append(module.register_forward_hook(store("down", i + 1)))
        handles.append(points.mid.register_forward_hook(store("mid", 0)))
        for i, module in enumerate(points.up):
            handles.append(module.register_forward_hook(store("up", i)))
        yield seen
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def record_input(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record the first positional input of each call of ``module`` (used by the edge head)."""
    inputs: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
    try:
        yield inputs
    finally:
        handle.remove()
