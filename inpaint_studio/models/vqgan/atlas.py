"""A cheap approximate decoder for live previews: one pre-rendered patch per code.

Decoding a whole token grid through the VQGAN decoder at every MaskGIT step would cost more
than the transformer itself. The atlas renders each code once, alone (a 1x1 latent through the
real decoder gives a ``factor x factor`` patch), caches the patch, and assembles previews by
lookup. Patches are made lazily, only for codes that show up, so a run pays for a few hundred
1x1 decodes at most and later runs reuse them. Seams between patches are visible; the final
result always goes through the real decoder.
"""

from __future__ import annotations

import torch

from .model import VQGAN


class CodeAtlas:
    """Per-code patches (n_embed, 3, f, f) of one VQGAN, filled on demand."""

    def __init__(self, vqgan: VQGAN, chunk: int = 256) -> None:
        self.vqgan = vqgan
        self.chunk = chunk
        f, n = vqgan.factor, vqgan.config.n_embed
        device = next(vqgan.parameters()).device
        self.patches = torch.zeros(n, vqgan.config.out_ch, f, f, device=device)
        self.ready = torch.zeros(n, dtype=torch.bool, device=device)

    @property
    def filled(self) -> int:
        return int(self.ready.sum())

    @torch.no_grad()
    def ensure(self, codes: torch.Tensor) -> int:
        """Render the not-yet-cached codes among ``codes``; returns how many were rendered."""
        wanted = torch.unique(codes.reshape(-1))
        missing = wanted[~self.ready[wanted]]
        for start in range(0, len(missing), self.chunk):
            ids = missing[start : start + self.chunk]
            # torch's group_norm refuses a lone 1x1 sample (one value per group): decode it twice
            batch = ids.repeat(2) if len(ids) == 1 else ids
            self.patches[ids] = self.vqgan.decode_indices(batch.view(-1, 1, 1))[: len(ids)].to(
                self.patches.dtype
            )
            self.ready[ids] = True
        return len(missing)

    @torch.no_grad()
    def render(self, indices: torch.Tensor) -> torch.Tensor:
        """Code ids (B, h, w) -> approximate images (B, 3, h*f, w*f), values like the decoder's."""
        self.ensure(indices)
        b, h, w = indices.shape
        f = self.vqgan.factor
        tiles = self.patches[indices.reshape(-1)].view(b, h, w, -1, f, f)
        return tiles.permute(0, 3, 1, 4, 2, 5).reshape(b, -1, h * f, w * f)
