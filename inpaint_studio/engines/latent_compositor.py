"""The compositor every latent-diffusion engine shares (sd15, ASUKA, MTA): from a photo and a mask to
the model's working view, and from the model's fill back to the photo.

What it guards against, each a complaint about peers' inpainting:

* small masks filled at low resolution: the crop around the mask (plus context) is always scaled so its
  long side is the model's resolution, so a 30 px hole gets hundreds of model pixels;
* seams on the 8-pixel latent grid: the latent mask is the *max-pool* of the pixel mask, so every cell a
  hole pixel touches is repainted (the model may repaint a slightly grown region, never a smaller one);
* feathering that does not feather: the blend weight ramps from the mask's edge inward over ``feather``
  pixels (distance transform), so it is continuous, and it is zero outside the person's mask;
* colour shift from the VAE: optionally, the fill is shifted by the difference between the original and
  the model's rendering of a ring just outside the mask;
* the known area degraded by the VAE round trip: every pixel outside the person's mask is the input's,
  byte for byte.

Qt-free and torch-free (numpy + OpenCV); the engine turns the arrays into tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .base import Placement
from .framing import context_box, feathered_placement, mask_bbox

LATENT_FACTOR = 8  # SD's VAE: one latent cell per 8x8 pixels


@dataclass(frozen=True)
class LatentFill:
    """One request's geometry: the crop ``box`` of the full image and the model's ``work_size``."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the full image
    work_size: tuple[int, int]  # (w, h) at model resolution, multiples of LATENT_FACTOR

    @property
    def crop_size(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return x1 - x0, y1 - y0

    @property
    def scale(self) -> float:
        """Model pixels per image pixel (above 1: the crop was upscaled)."""
        return self.work_size[0] / self.crop_size[0]

    @property
    def latent_size(self) -> tuple[int, int]:
        return self.work_size[0] // LATENT_FACTOR, self.work_size[1] // LATENT_FACTOR

    # ------------------------------------------------------------------ full -> model
    def work_image(self, image: np.ndarray) -> np.ndarray:
        """The crop at model resolution, RGB uint8 (h, w, 3)."""
        return _resize(_crop(image, self.box), self.work_size)

    def work_mask(self, mask: np.ndarray) -> np.ndarray:
        """Binary hole mask at model resolution (uint8, 1 = hole): a pixel any hole pixel reaches is hole."""
        crop = (_crop(mask, self.box) > 0).astype(np.float32)
        resized = cv2.resize(crop, self.work_size, interpolation=cv2.INTER_AREA)
        if resized.shape[::-1] != self.work_size:  # cv2 drops a 1-sized axis
            resized = resized.reshape(self.work_size[1], self.work_size[0])
        return (resized > 0).astype(np.uint8)

    def latent_mask(self, work_mask: np.ndarray) -> np.ndarray:
        """Max-pool of the work mask to the latent grid (float32, 1 = the model repaints that cell)."""
        return max_pool_mask(work_mask, LATENT_FACTOR)

    # ------------------------------------------------------------------ model -> full
    def place(
        self,
        fill: np.ndarray,
        image: np.ndarray,
        mask: np.ndarray,
        feather: int = 4,
        color_match: bool = False,
        placement: Placement | None = None,
    ) -> tuple[np.ndarray, Placement]:
        """The model's ``fill`` (work size, RGB uint8) cut to the mask's bounding box, with its
        :class:`Placement`: the person's mask (soft edge kept) times the inward feather, 0 outside.

        ``placement`` from an earlier call of the same run skips recomputing the weight (a preview
        every step must not run a distance transform every step).
        """
        x0, y0, x1, y1 = self.box
        crop_fill = _resize(fill, self.crop_size).astype(np.float32)
        crop_mask = mask[y0:y1, x0:x1]
        if color_match:
            crop_fill = match_ring_colour(
                crop_fill, image[y0:y1, x0:x1], crop_mask > 0, ring_width(self.scale)
            )
        if placement is None:
            placement = self.placement(mask, feather)
        bx0, by0, bx1, by1 = placement.box
        inside = (slice(by0 - y0, by1 - y0), slice(bx0 - x0, bx1 - x0))
        box_fill = np.clip(np.rint(crop_fill[inside]), 0, 255).astype(np.uint8)
        return box_fill, placement

    def placement(self, mask: np.ndarray, feather: int = 4) -> Placement:
        """Where the fill goes and with what weight: the mask's bounding box and mask x feather."""
        return feathered_placement(mask, mask_bbox(mask), feather)

    def paste(
        self,
        fill: np.ndarray,
        image: np.ndarray,
        mask: np.ndarray,
        feather: int = 4,
        color_match: bool = False,
    ) -> np.ndarray:
        """The full ``image`` with the fill placed (what the CLI writes); outside the mask: the input."""
        box_fill, placement = self.place(fill, image, mask, feather, color_match)
        return placement.paste(box_fill, image)


def plan_latent_fill(
    image_hw: tuple[int, int],
    mask: np.ndarray,
    resolution: int = 512,
    context: float = 0.5,
    min_context: int = 16,
) -> LatentFill:
    """Crop the mask's bounding box grown by ``context`` (a fraction of its size, at least
    ``min_context`` px), no thinner than half its length, and scale it so its long side is ``resolution``."""
    h, w = image_hw
    box = context_box(mask_bbox(mask), (w, h), context, min_context, _no_slivers)
    bx0, by0, bx1, by1 = box
    cw, ch = bx1 - bx0, by1 - by0
    s = resolution / max(cw, ch)
    work = (_grid(cw * s), _grid(ch * s))
    return LatentFill(box=box, work_size=work)


def max_pool_mask(mask: np.ndarray, factor: int) -> np.ndarray:
    """(H, W) binary -> (H/factor, W/factor) float32: 1 where any pixel of the cell is set."""
    h, w = mask.shape
    if h % factor or w % factor:
        raise ValueError(f"mask {w}x{h} is not a multiple of {factor}")
    cells = (mask > 0).reshape(h // factor, factor, w // factor, factor)
    return cells.any(axis=(1, 3)).astype(np.float32)


def ring_width(scale: float, model_px: int = 16) -> int:
    """Width in image pixels of the ring used for colour matching: ``model_px`` at model resolution."""
    return max(2, math.ceil(model_px / max(scale, 1e-6)))


def match_ring_colour(fill: np.ndarray, orig: np.ndarray, hole: np.ndarray, width: int) -> np.ndarray:
    """Shift ``fill``'s colour by (original - fill) averaged over a ring of ``width`` px around the hole.

    The model also renders the known pixels around the hole; how far its rendering there drifts from
    the original is the VAE / model colour shift, and the same shift is taken out of the fill.
    """
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    ring = cv2.dilate(hole.astype(np.uint8), kernel).astype(bool) & ~hole
    if not ring.any():
        return fill
    shift = orig[ring].astype(np.float32).mean(axis=0) - fill[ring].mean(axis=0)
    return np.clip(fill + shift, 0, 255)


def _no_slivers(w: int, h: int) -> tuple[int, int]:
    """SD works poorly on slivers: neither side below half the other."""
    return max(w, h // 2), max(h, w // 2)


def _grid(x: float) -> int:
    return max(LATENT_FACTOR, int(round(x / LATENT_FACTOR)) * LATENT_FACTOR)


def _crop(a: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return a[y0:y1, x0:x1]


def _resize(a: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    if (a.shape[1], a.shape[0]) == size_wh:
        return np.ascontiguousarray(a)
    shrinking = size_wh[0] < a.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(a), size_wh, interpolation=interp)
