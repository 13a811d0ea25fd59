"""Shared framing: crop around the mask, resize to the model's size, pad, and paste back.

Written once for every engine. The guarantee that matters: every pixel where the mask is 0 comes
back byte-identical to the input. Inside the mask the fill is blended once, where it lands, with
weight ``mask / 255`` (so a soft mask edge feathers) times an optional inward feather ramp
(:func:`feathered_placement`; see ``base.Placement``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from ..core.geometry import nonzero_box
from .base import Placement
from .params import Param

Strategy = Literal["crop", "resize", "original"]
STRATEGIES: tuple[str, ...] = ("crop", "resize", "original")


def framing_params(default_strategy: Strategy = "crop", default_context: float = 0.5) -> tuple[Param, ...]:
    """The framing knobs every framed engine exposes beside its own parameters."""
    return (
        Param(
            "strategy",
            "choice",
            default_strategy,
            choices=STRATEGIES,
            help="crop: work on a region around the mask; resize: the whole image scaled to the "
            "model's size; original: the whole image at full size",
        ),
        Param(
            "context",
            "float",
            default_context,
            minimum=0.0,
            maximum=4.0,
            step=0.1,
            help="crop strategy: margin of surrounding image kept around the mask, as a fraction of its size",
        ),
        Param(
            "feather",
            "int",
            0,
            minimum=0,
            maximum=64,
            help="soften the fill's edge inward by this many pixels",
        ),
    )


@dataclass(frozen=True)
class Frame:
    """How a full image maps to the model's input: a crop box, a resize, then padding."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the full image
    work_size: tuple[int, int]  # (w, h) of the resized crop
    padded_size: tuple[int, int]  # (w, h) after padding to the model's multiple

    @property
    def crop_size(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return x1 - x0, y1 - y0

    # ------------------------------------------------------------------ full -> model
    def image_to_model(self, image: np.ndarray) -> np.ndarray:
        crop = _crop(image, self.box)
        crop = _resize(crop, self.work_size, smooth=True)
        return _pad(crop, self.padded_size)

    def mask_to_model(self, mask: np.ndarray) -> np.ndarray:
        """Binary uint8 mask (255 = hole) at model size; any pixel touched by the hole is a hole."""
        crop = (_crop(mask, self.box) > 0).astype(np.uint8) * 255
        if (crop.shape[1], crop.shape[0]) != self.work_size:
            crop = cv2.resize(crop, self.work_size, interpolation=cv2.INTER_AREA)
            crop = np.where(crop > 0, 255, 0).astype(np.uint8)
        return _pad(crop, self.padded_size)

    # ------------------------------------------------------------------ model -> full
    def output_to_crop(self, output: np.ndarray) -> np.ndarray:
        w, h = self.work_size
        unpadded = output[:h, :w]
        return _resize(unpadded, self.crop_size, smooth=True)

    def output_to_box(self, output: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The model output mapped back to the image and cut to ``box`` (which lies in the crop)."""
        x0, y0, x1, y1 = box
        cx, cy = self.box[0], self.box[1]
        return np.ascontiguousarray(self.output_to_crop(output)[y0 - cy : y1 - cy, x0 - cx : x1 - cx])

    def overlay_to_box(self, overlay: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """A model-size uint8 map (e.g. 'still unknown' tokens) mapped back and cut to ``box``."""
        x0, y0, x1, y1 = box
        cx, cy = self.box[0], self.box[1]
        w, h = self.work_size
        crop = cv2.resize(overlay[:h, :w], self.crop_size, interpolation=cv2.INTER_NEAREST)
        return np.ascontiguousarray(crop[y0 - cy : y1 - cy, x0 - cx : x1 - cx])


def feather_alpha(mask: np.ndarray, feather: int) -> np.ndarray:
    """Blend weight in [0, 1]: ``mask / 255`` times a ramp that rises over ``feather`` px from the mask's
    edge inward (shortened for holes thinner than that, so a thin stroke still gets the whole fill).

    The border of ``mask`` is not an edge to feather from: pass a region with one mask-free pixel
    around the hole wherever the hole does not reach the image's border (:func:`feathered_placement`)."""
    alpha = mask.astype(np.float32) / 255.0
    hole = (mask > 0).astype(np.uint8)
    if feather <= 0 or not hole.any():
        return alpha
    dist = cv2.distanceTransform(np.pad(hole, 1, constant_values=1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    dist = dist[1:-1, 1:-1]
    reach = min(float(feather), float(dist.max()))
    return alpha * np.clip(dist / reach, 0.0, 1.0)


def feathered_placement(mask: np.ndarray, box: tuple[int, int, int, int], feather: int) -> Placement:
    """Where a fill goes and with what weight: ``box`` (the mask's bounding box) and the mask times the
    inward feather, every masked pixel taking at least 1/255 of the fill. The one rule of every engine."""
    x0, y0, x1, y1 = box
    if feather <= 0:
        return Placement(box, mask[y0:y1, x0:x1].copy())  # the mask itself, soft edge and all
    h, w = mask.shape[:2]
    gx0, gy0, gx1, gy1 = max(x0 - 1, 0), max(y0 - 1, 0), min(x1 + 1, w), min(y1 + 1, h)
    alpha = feather_alpha(mask[gy0:gy1, gx0:gx1], feather)[y0 - gy0 : y1 - gy0, x0 - gx0 : x1 - gx0]
    alpha8 = np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)
    alpha8[(mask[y0:y1, x0:x1] > 0) & (alpha8 == 0)] = 1
    return Placement(box, alpha8)


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the mask's non-zero pixels; ValueError when it is empty."""
    box = nonzero_box(mask)
    if box.empty:
        raise ValueError("empty mask")
    return box.x, box.y, box.right, box.bottom


def plan_frame(
    image_hw: tuple[int, int],
    mask: np.ndarray,
    native_size: int | None,
    pad_multiple: int = 1,
    strategy: Strategy = "crop",
    context: float = 0.5,
    min_context: int = 16,
    bbox: tuple[int, int, int, int] | None = None,
) -> Frame:
    """Decide crop box, working size and padding for one request (``bbox``: the mask's, if known)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown framing strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    h, w = image_hw
    if strategy == "crop":
        square = None
        if native_size:  # square-native models: a square crop, at least the native size where it fits

            def square(want_w: int, want_h: int) -> tuple[int, int]:
                side = max(want_w, want_h, min(native_size, max(w, h)))
                return side, side

        box = context_box(bbox or mask_bbox(mask), (w, h), context, min_context, square)
    else:
        box = (0, 0, w, h)
    cw, ch = box[2] - box[0], box[3] - box[1]
    if native_size and strategy != "original":
        scale = native_size / max(cw, ch)
        work = (max(1, round(cw * scale)), max(1, round(ch * scale)))
    else:
        work = (cw, ch)
    m = max(1, pad_multiple)
    padded = (math.ceil(work[0] / m) * m, math.ceil(work[1] / m) * m)
    if native_size and strategy != "original" and native_size % m == 0:
        padded = (max(padded[0], native_size), max(padded[1], native_size))
    return Frame(box=box, work_size=work, padded_size=padded)


def context_box(
    bbox: tuple[int, int, int, int],
    image_wh: tuple[int, int],
    context: float,
    min_context: int,
    fit: Callable[[int, int], tuple[int, int]] | None = None,
) -> tuple[int, int, int, int]:
    """The mask's ``bbox`` grown on each side by ``context`` of its longer side (at least ``min_context``
    px), the wanted (w, h) reshaped by ``fit`` (a model's taste: square, no slivers), centred on the hole
    and kept inside the picture; it always contains the whole hole. Every engine's crop comes from here."""
    x0, y0, x1, y1 = bbox
    w, h = image_wh
    margin = max(min_context, int(round(context * max(x1 - x0, y1 - y0))))
    want_w, want_h = x1 - x0 + 2 * margin, y1 - y0 + 2 * margin
    if fit is not None:
        want_w, want_h = fit(want_w, want_h)
    (bx0, bx1), (by0, by1) = span(x0, x1, want_w, w), span(y0, y1, want_h, h)
    return bx0, by0, bx1, by1


def span(lo: int, hi: int, want: int, limit: int) -> tuple[int, int]:
    """An interval of length ``want`` (at least ``hi - lo``, at most ``limit``) centred on [lo, hi), inside [0, limit)."""
    want = min(max(want, hi - lo), limit)
    start = int(round((lo + hi) / 2 - want / 2))
    start = min(max(start, 0), limit - want)
    return start, start + want


def _crop(a: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return a[y0:y1, x0:x1]


def _resize(a: np.ndarray, size_wh: tuple[int, int], smooth: bool) -> np.ndarray:
    if (a.shape[1], a.shape[0]) == size_wh:
        return np.ascontiguousarray(a)
    shrinking = size_wh[0] < a.shape[1]
    interp = cv2.INTER_AREA if shrinking else (cv2.INTER_CUBIC if smooth else cv2.INTER_NEAREST)
    return cv2.resize(np.ascontiguousarray(a), size_wh, interpolation=interp)


def _pad(a: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    pw, ph = size_wh[0] - a.shape[1], size_wh[1] - a.shape[0]
    if pw == 0 and ph == 0:
        return np.ascontiguousarray(a)
    pad = ((0, ph), (0, pw)) + ((0, 0),) * (a.ndim - 2)
    mode = "symmetric" if a.shape[0] > 1 and a.shape[1] > 1 else "edge"
    return np.pad(a, pad, mode=mode)
