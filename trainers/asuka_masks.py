"""ASUKA's training masks (paper, Sec. 3.1), built from the generators in ``trainers/masks.py``.

* Basis drawn per mask: 50 % object-shaped, 40 % irregular, 10 % regular.
  - object: a segmentation outline from the person's ``--mask-dir`` (COCO object segments in the paper),
    else a synthetic silhouette; half of the time united with an irregular mask (as MAE-FAR, whose
    recipe ASUKA follows, adds the two);
  - irregular: Co-Mod masks (MAT's rectangles + brush strokes) or LaMa's thick / medium line masks,
    half and half;
  - regular: one rectangle, or its complement (keep a rectangle, fill the rest), half and half.
* The hole ratio stays in [0.1, 0.75]: a draw outside is redrawn as the same kind (the kind, including
  whether an object gets its irregular mask, is settled first), so the mix above holds exactly among
  the masks that come out.
* For the MAE prior only, :func:`enlarge_to_patch_ratio` then grows a mask to 75 % of the patches with
  whole random patches, which is what the official fine-tuning forward does with ``mask_ratio=0.75``
  (the patches touching the hole go first, random others make up the rest).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import masks as M

MIX: dict[str, float] = {"object": 0.5, "irregular": 0.4, "regular": 0.1}
HOLE_RANGE = (0.1, 0.75)
COMBINE_OBJECT_WITH_IRREGULAR = 0.5
PRIOR_PATCH_RATIO = 0.75


class AsukaMasks:
    """``draw(h, w, rng) -> (bool HxW hole, label)``; labels: object, object+irregular, irregular,
    rectangle, complement. Calling the object returns the hole only (a ``MaskFn``)."""

    def __init__(
        self,
        mask_dir: str | Path | None = None,
        hole_range: tuple[float, float] = HOLE_RANGE,
        mix: dict[str, float] | None = None,
        combine: float = COMBINE_OBJECT_WITH_IRREGULAR,
        max_tries: int = 200,
    ) -> None:
        mix = dict(MIX if mix is None else mix)
        unknown = sorted(set(mix) - set(MIX))
        if unknown or not mix or min(mix.values()) < 0 or sum(mix.values()) <= 0:
            raise ValueError(f"mask basis weights must be non-negative over {', '.join(MIX)}, got {mix}")
        lo, hi = hole_range
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"hole range must satisfy 0 <= low < high <= 1, got {hole_range}")
        self.hole_range = (float(lo), float(hi))
        self.combine = combine
        self.max_tries = max_tries
        self.objects = M.ObjectMasks(mask_dir) if mask_dir else M.silhouette
        self._bases = list(mix)
        self._p = np.array([mix[k] for k in self._bases], float) / sum(mix.values())

    def _label(self, rng: np.random.Generator) -> str:
        """The kind of this mask, fixed before any shape is drawn so the mix survives the ratio redraws."""
        basis = self._bases[int(rng.choice(len(self._bases), p=self._p))]
        if basis == "object":
            return "object+irregular" if rng.random() < self.combine else "object"
        if basis == "regular":
            return "rectangle" if rng.random() < 0.5 else "complement"
        return basis

    def _shape(self, label: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        if label == "object":
            return self.objects(h, w, rng)
        if label == "object+irregular":
            return self.objects(h, w, rng) | self._shape("irregular", h, w, rng)
        if label == "irregular":  # Co-Mod or LaMa, half and half
            if rng.random() < 0.5:
                return M.mat_mask(h, w, rng, recipe=256 if min(h, w) <= 256 else 512)
            return M.irregular_lines(
                h, w, rng, **M.LAMA_IRREGULAR["thick" if rng.random() < 0.5 else "medium"]
            )
        if label == "rectangle":
            side = min(h, w)
            return M.boxes(h, w, rng, margin=0, min_size=side // 4, max_size=side, min_times=1, max_times=1,
                           reference=side)  # fmt: skip
        return M.box_complement(h, w, rng)

    def draw(self, h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        label = self._label(rng)
        lo, hi = self.hole_range
        for _ in range(self.max_tries):
            hole = self._shape(label, h, w, rng)
            if lo <= hole.mean() <= hi:
                return hole, label
        raise RuntimeError(
            f"no {label} mask with a hole ratio in {self.hole_range} after {self.max_tries} draws"
        )

    def __call__(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        return self.draw(h, w, rng)[0]

    def for_batch(self, sample: Mapping[str, Any], rng: np.random.Generator) -> torch.Tensor:
        """The batch's holes (N, 1, H, W), 1 = hole: the rows' own masks where the data has them, a draw
        of the mix elsewhere (one per row, drawn for every row so the stream does not depend on the data)."""
        from .task import with_given_masks

        image = sample["image"]
        n, _, h, w = image.shape
        drawn = torch.from_numpy(np.stack([self(h, w, rng) for _ in range(n)])).float()
        return with_given_masks(sample, drawn.unsqueeze(1).to(image.device))


def enlarge_to_patch_ratio(
    hole: np.ndarray, patch: int, rng: np.random.Generator, ratio: float = PRIOR_PATCH_RATIO
) -> np.ndarray:
    """Grow ``hole`` with whole random patches until ``L - int(L * (1 - ratio))`` of the ``patch`` grid's
    ``L`` patches touch it (the official MAE fine-tuning count); a mask already past that is returned
    as it is. The official code would then treat some hole patches as known; we never un-mask a hole."""
    h, w = hole.shape
    if h % patch or w % patch:
        raise ValueError(f"mask size {hole.shape} is not a multiple of the patch size {patch}")
    gh, gw = h // patch, w // patch
    touched = hole.reshape(gh, patch, gw, patch).any(axis=(1, 3)).reshape(-1)
    need = touched.size - int(touched.size * (1 - ratio)) - int(touched.sum())
    if need <= 0:
        return hole.copy()
    free = np.flatnonzero(~touched)
    extra = np.zeros(touched.size, bool)
    extra[rng.choice(free, size=need, replace=False)] = True
    grown = np.repeat(np.repeat(extra.reshape(gh, gw), patch, 0), patch, 1)
    return hole | grown
