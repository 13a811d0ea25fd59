"""Iterative parallel decoding, step for step as the official JAX ``parallel_decode.decode``.

At each step t of T: score all positions, sample a token at every unknown one, give known tokens
infinite confidence, and re-mask the ``mask_len`` least confident unknown tokens, where
confidence = log p(sampled) + choice_temperature * (1 - (t+1)/T) * Gumbel noise and
``mask_len = clamp(floor(unknown0 * gamma((t+1)/T)), 1, unknown_now - 1)``. The last step keeps
everything it sampled. Differences from the reference, all opt-in: a softmax ``temperature``
(1.0 = reference), per-sample random generators (each variant reproducible by its own seed),
and ``start_step`` to resume a schedule part-way (used for locked re-decodes).

Decoding is a generator so that callers can show a preview and honour cancel after every step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from .schedules import masked_after_step
from .transformer import MaskGitTransformer


@dataclass(frozen=True)
class DecodeStep:
    """State after one step. Shapes (B, N); ``unknown`` is what stays masked for the next step."""

    step: int
    steps: int
    sampled: torch.Tensor  # this step's output in the JAX sense (complete at the last step)
    unknown: torch.Tensor  # bool: still masked after this step (all False after the last)
    preview: torch.Tensor  # committed tokens, with unknown ones shown as the current argmax
    tokens: torch.Tensor  # committed tokens, mask id at unknown positions (the next input)


def gumbel_noise(
    shape: Sequence[int], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Standard Gumbel(0, 1) noise; drawn on the generator's device, then moved."""
    gen_device = generator.device if generator is not None else device
    u = torch.rand(tuple(shape), generator=generator, device=gen_device).to(device)
    tiny = torch.finfo(u.dtype).tiny
    exponential = (-torch.log(u.clamp_min(tiny))).clamp_min(tiny)
    return -torch.log(exponential)


def per_sample_noise(
    shape: Sequence[int], generators: Sequence[torch.Generator | None], device: torch.device
) -> torch.Tensor:
    """Gumbel noise of ``(B, *shape)``, sample i drawn from ``generators[i]``."""
    return torch.stack([gumbel_noise(shape, g, device) for g in generators])


def make_generators(seeds: Sequence[int], device: str | torch.device = "cpu") -> list[torch.Generator]:
    """One generator per sample, on the CPU by default so that results match across devices."""
    gens = []
    for seed in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(seed))
        gens.append(g)
    return gens


@torch.no_grad()
def iterative_decode(
    model: MaskGitTransformer,
    tokens: torch.Tensor,
    unknown: torch.Tensor,
    steps: int = 12,
    schedule: str = "cosine",
    temperature: float = 1.0,
    choice_temperature: float = 4.5,
    generators: Sequence[torch.Generator | None] | None = None,
    class_ids: torch.Tensor | None = None,
    start_step: int = 0,
) -> Iterator[DecodeStep]:
    """Fill the ``unknown`` positions of ``tokens`` (both (B, N) or (B, h, w)) over ``steps`` steps.

    Known tokens never change. ``generators`` gives one random source per sample (None: the
    global RNG). Yields one :class:`DecodeStep` per step from ``start_step`` to ``steps - 1``.
    """
    if steps < 1 or not 0 <= start_step < steps:
        raise ValueError(
            f"need steps >= 1 and 0 <= start_step < steps, got steps={steps}, start_step={start_step}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    cfg = model.config
    b = tokens.shape[0]
    cur = tokens.reshape(b, -1).clone()
    unknown = unknown.reshape(b, -1).to(torch.bool).clone()
    n = cur.shape[1]
    if generators is None:
        generators = [None] * b
    if len(generators) != b:
        raise ValueError(f"{len(generators)} generators for a batch of {b}")
    device = cur.device
    cur[unknown] = cfg.mask_id
    unknown0 = unknown.sum(dim=1).tolist()
    for t in range(start_step, steps):
        logits = model(cur, class_ids).float() / temperature
        log_probs = torch.log_softmax(logits, dim=-1)
        sampled = (logits + per_sample_noise(logits.shape[1:], generators, device)).argmax(dim=-1)
        sampled = torch.where(unknown, sampled, cur)
        if t == steps - 1:  # the reference returns the last step's samples complete
            done = torch.zeros_like(unknown)
            yield DecodeStep(t, steps, sampled, done, sampled, sampled)
            return
        ratio = (t + 1) / steps
        now = unknown.sum(dim=1).tolist()
        mask_len = [masked_after_step(u0, t, steps, schedule, u) for u0, u in zip(unknown0, now, strict=True)]
        confidence = log_probs.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
        confidence = torch.where(unknown, confidence, torch.full_like(confidence, float("inf")))
        noise_scale = choice_temperature * (1.0 - ratio)
        if noise_scale > 0:
            confidence = confidence + noise_scale * per_sample_noise((n,), generators, device)
        ordered = confidence.sort(dim=-1).values
        index = torch.tensor(mask_len, device=device).clamp(max=n - 1).unsqueeze(1)
        cut_off = ordered.gather(-1, index)
        unknown = confidence < cut_off
        cur = torch.where(unknown, torch.full_like(sampled, cfg.mask_id), sampled)
        preview = torch.where(unknown, logits.argmax(dim=-1), sampled)
        yield DecodeStep(t, steps, sampled, unknown, preview, cur)


def decode_all(
    model: MaskGitTransformer, tokens: torch.Tensor, unknown: torch.Tensor, **kwargs
) -> torch.Tensor:
    """Run :func:`iterative_decode` to the end and return the final tokens (B, N)."""
    steps = list(iterative_decode(model, tokens, unknown, **kwargs))
    return steps[-1].tokens
