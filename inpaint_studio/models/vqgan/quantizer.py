"""Vector quantizer: nearest codebook entry per latent pixel, straight-through gradients.

Matches taming's ``VectorQuantizer2`` (squared distances, argmin, loss
``|sg[e]-z|^2 + beta |e-sg[z]|^2`` in its "legacy" form) so public checkpoints give identical
indices, and adds what training a fresh codebook needs: EMA codebook updates, restarts of dead
codes from the current batch, and usage statistics (perplexity, used and dead codes).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

USAGE_DECAY = 0.99  # running average of per-step assignments, for dead-code statistics
DEAD_BELOW = 0.01  # a code assigned fewer times than this per step, on average, counts as dead


class QuantizerOutput(NamedTuple):
    z_q: torch.Tensor  # B,C,H,W quantized latent (straight-through: gradients flow to z)
    loss: torch.Tensor  # scalar codebook + commitment loss (commitment only with EMA)
    indices: torch.Tensor  # B,H,W int64 code ids
    perplexity: torch.Tensor  # scalar: exp(entropy) of this batch's code histogram
    used_codes: torch.Tensor  # scalar int: distinct codes in this batch


class VectorQuantizer(nn.Module):
    """``n_embed`` codes of ``embed_dim``; state dict key ``embedding.weight`` as in taming.

    With ``ema_decay`` > 0 the codebook follows an exponential moving average of the latents
    assigned to each code (buffers ``ema_cluster_size``, ``ema_embed_sum``) and receives no
    gradient. With ``restart_threshold`` > 0, in training mode, codes whose running assignment
    count per step drops below it are re-seeded with random latents of the current batch.
    """

    def __init__(
        self,
        n_embed: int,
        embed_dim: int,
        beta: float = 0.25,
        legacy_loss: bool = True,
        ema_decay: float = 0.0,
        restart_threshold: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_embed, self.embed_dim, self.beta = n_embed, embed_dim, beta
        self.legacy_loss, self.ema_decay, self.restart_threshold = legacy_loss, ema_decay, restart_threshold
        self.embedding = nn.Embedding(n_embed, embed_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_embed, 1.0 / n_embed)
        # running assignments per step; a statistic only, so it is not saved with the weights
        self.register_buffer("usage", torch.ones(n_embed), persistent=False)
        if ema_decay > 0:
            self.embedding.weight.requires_grad_(False)
            self.register_buffer("ema_cluster_size", torch.ones(n_embed))
            self.register_buffer("ema_embed_sum", self.embedding.weight.detach().clone())

    # ------------------------------------------------------------------ inference
    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of ``flat`` (N, embed_dim)."""
        codebook = self.embedding.weight
        dist2 = flat.pow(2).sum(dim=1, keepdim=True) + codebook.pow(2).sum(dim=1) - 2.0 * flat @ codebook.t()
        return dist2.argmin(dim=1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code ids (B, H, W) -> quantized latent (B, embed_dim, H, W)."""
        return self.embedding(indices).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        b, c, h, w = z.shape
        if c != self.embed_dim:
            raise ValueError(f"quantizer expects {self.embed_dim} channels, got {c}")
        z_last = z.permute(0, 2, 3, 1).contiguous()
        flat = z_last.view(-1, c)
        indices = self.nearest(flat)
        counts = torch.bincount(indices, minlength=self.n_embed).to(flat.dtype)
        if self.training:
            self._train_updates(flat.detach(), indices, counts)
        z_q = self.embedding(indices).view(z_last.shape)
        loss = self._loss(z_last, z_q)
        z_q = z_last + (z_q - z_last).detach()
        probs = counts / counts.sum()
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        return QuantizerOutput(
            z_q=z_q.permute(0, 3, 1, 2).contiguous(),
            loss=loss,
            indices=indices.view(b, h, w),
            perplexity=perplexity,
            used_codes=(counts > 0).sum(),
        )

    def _loss(self, z: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
        commitment = F.mse_loss(z, z_q.detach())
        if self.ema_decay > 0:
            return self.beta * commitment
        codebook = F.mse_loss(z_q, z.detach())
        if self.legacy_loss:  # taming's released form: beta on the codebook term (same value)
            return commitment + self.beta * codebook
        return codebook + self.beta * commitment

    # ------------------------------------------------------------------ training
    @torch.no_grad()
    def _train_updates(self, flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> None:
        counts = counts.clone()
        sums = None
        if self.ema_decay > 0:
            sums = torch.zeros_like(self.ema_embed_sum).index_add_(0, indices, flat)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(counts)
            if sums is not None:
                dist.all_reduce(sums)
        self.usage.mul_(USAGE_DECAY).add_(counts, alpha=1.0 - USAGE_DECAY)
        if sums is not None:
            decay = self.ema_decay
            self.ema_cluster_size.mul_(decay).add_(counts, alpha=1.0 - decay)
            self.ema_embed_sum.mul_(decay).add_(sums, alpha=1.0 - decay)
            total = self.ema_cluster_size.sum()
            smoothed = (self.ema_cluster_size + 1e-5) / (total + self.n_embed * 1e-5) * total  # Laplace
            self.embedding.weight.copy_(self.ema_embed_sum / smoothed.unsqueeze(1))
        if self.restart_threshold > 0:
            self._restart_dead(flat)

    @torch.no_grad()
    def _restart_dead(self, flat: torch.Tensor) -> None:
        dead = self.usage < self.restart_threshold
        n_dead = int(dead.sum())
        if n_dead == 0 or flat.shape[0] == 0:
            return
        picks = torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)
        fresh = flat[picks]
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(fresh, src=0)  # every rank must re-seed with the same vectors
        self.embedding.weight[dead] = fresh
        self.usage[dead] = self.restart_threshold  # a grace period before it can be declared dead again
        if self.ema_decay > 0:
            self.ema_cluster_size[dead] = 1.0
            self.ema_embed_sum[dead] = fresh

    def dead_codes(self, below: float | None = None) -> int:
        """Codes whose running assignment count per step fell below ``below`` (default: the
        restart threshold, or 0.01 when restarts are off): the codebook-usage figure to log."""
        limit = below if below is not None else (self.restart_threshold or DEAD_BELOW)
        return int((self.usage < limit).sum())
