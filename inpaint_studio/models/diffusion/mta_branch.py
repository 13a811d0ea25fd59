"""MTA's branch: BrushNet's branch with self-attention at every level and an edge head, initialised.

MTADiffusion (CVPR 2025, no public code) replaces the branch's plain residual blocks with
self-attention blocks so that the branch sees the style of the whole image, and widens the last
attention block's output by one channel that predicts the Sobel edge map of the target. Here each
resnet of the branch is followed by diffusers' ``Transformer2DModel`` built without
cross-attention (``attn1`` + feed-forward only; see :class:`~.brushnet.BranchConfig`).

Initialisation (:func:`init_mta_branch`), in this order:

1. everything the UNet has under the same key and shape: conv_in (BrushNet's way), the time
   embedding, resnets, samplers, and the UNet's attention blocks without their cross-attention
   (``norm``, ``proj_in``, ``attn1``, ``norm1``, ``ff``, ``norm3``, ``proj_out``);
2. then, when a BrushNet is given, every tensor of it whose key and shape match (conv_in, time
   embedding, resnets, samplers, the injection convs): the trained BrushNet wins over the UNet;
3. attention blocks the UNet has no counterpart for (SD-1.5's deepest level) keep diffusers'
   initialisation.

**Decision: the new attention blocks' output projections (``proj_out``) start at zero** (default,
``zero_attention_output=True``). A ``Transformer2DModel`` adds its result to its input, so a zero
``proj_out`` makes every new block an exact identity and an MTA branch built on a BrushNet checkpoint
returns *exactly* BrushNet's residuals at step 0. Why: the BrushNet injection convs were trained on
features without attention, and the UNet's ``proj_out`` was trained to feed its own cross-attention
path; copying it would perturb every level of a working inpainting model before the first update.
Starting from identity is the zero-convolution argument of ControlNet/BrushNet applied once more:
training begins from BrushNet's quality and the attention grows in (its gradient is non-zero from the
first step through ``proj_out``; the inner weights follow once ``proj_out`` moves). The edge head
starts at zero too (the paper's extra output row, zero-initialised), so it does not disturb anything
either. ``zero_attention_output=False`` keeps the UNet's ``proj_out`` for experiments.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .brushnet import BranchConfig, BrushBranch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MtaInit:
    """Where each tensor of a freshly initialised MTA branch came from (key lists)."""

    from_brushnet: tuple[str, ...]
    from_unet: tuple[str, ...]
    fresh: tuple[str, ...]
    zeroed: tuple[str, ...]


def attention_output_keys(branch: BrushBranch) -> list[str]:
    """The ``proj_out`` tensors of every attention block of the branch."""
    return [k for k in branch.state_dict() if ".attentions." in k and ".proj_out." in k]


def _brushnet_state(
    brushnet: BrushBranch | Mapping[str, torch.Tensor] | str | Path,
) -> dict[str, torch.Tensor]:
    if isinstance(brushnet, nn.Module):
        return brushnet.state_dict()
    if isinstance(brushnet, (str, Path)):
        from .brushnet_import import read_brushnet

        return read_brushnet(brushnet)[1]
    return dict(brushnet)


@torch.no_grad()
def init_mta_branch(
    unet: nn.Module,
    brushnet: BrushBranch | Mapping[str, torch.Tensor] | str | Path | None = None,
    *,
    edge_head: bool = True,
    zero_attention_output: bool = True,
) -> tuple[BrushBranch, MtaInit]:
    """An MTA branch for ``unet``, initialised as the module docstring says.

    ``brushnet``: a BrushNet branch, its state dict (our key names) or a checkpoint path (the
    fork's folder or file). Returns the branch and a record of where its tensors came from.
    """
    config = BranchConfig.from_unet_config(dict(unet.config), self_attention=True, edge_head=edge_head)
    branch = BrushBranch(config).to(device=unet.conv_in.weight.device, dtype=unet.conv_in.weight.dtype)
    not_from_unet = set(branch.copy_from_unet(unet))
    state = branch.state_dict()
    from_brushnet = []
    if brushnet is not None:
        for key, value in _brushnet_state(brushnet).items():
            if key in state and state[key].shape == value.shape:
                state[key].copy_(value)
                from_brushnet.append(key)
        if not from_brushnet:
            raise ValueError(
                "the BrushNet checkpoint shares no tensor with this branch: it is for another layout"
            )
    zeroed = attention_output_keys(branch) if zero_attention_output else []
    for key in zeroed:
        state[key].zero_()
    special = ("conv_in.", "down_injections.", "mid_injection.", "up_injections.", "edge_head.")
    taken = set(from_brushnet)
    from_unet = [k for k in state if k not in taken and k not in not_from_unet and not k.startswith(special)]
    if "conv_in.weight" not in taken:
        from_unet[:0] = ["conv_in.weight", "conv_in.bias"]
    fresh = [k for k in state if k in not_from_unet and k not in taken]
    record = MtaInit(tuple(from_brushnet), tuple(from_unet), tuple(fresh), tuple(zeroed))
    log.info(
        "MTA branch: %d tensors from BrushNet, %d from the UNet, %d fresh, %d attention outputs zeroed",
        len(from_brushnet),
        len(from_unet),
        len(fresh),
        len(zeroed),
    )
    return branch, record
