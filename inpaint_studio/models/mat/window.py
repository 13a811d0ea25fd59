"""Compute the full-resolution layers only around the hole.

MAT's output is composited: outside the hole the result is the input, exactly, and the first
stage's output is read only inside the hole. The two highest-resolution decoder levels of both
stages (more than half of the arithmetic) can therefore run on a window around the hole instead
of the whole map, and so can the part of the second-stage encoder that differs between variants:
its input differs only inside the hole, so outside a margin its top two levels equal a "base"
computed once per image.

A cropped computation is exact where the crop has enough context: each crop is the window grown by
``HALO`` full-resolution pixels (at least four times the widest band the cropped layers can spoil:
transposed 3x3 convolutions, 4x4 FIR filters and 3x3 convolutions over two levels reach about 14
pixels at full resolution), and only the window is kept. All coordinates are multiples of
``ALIGN`` so that every level's stride-2 sampling grid lines up with the uncropped one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ALIGN = 32  # window corners, in full-resolution pixels
MARGIN = 32  # around the hole's bounding box: covers where the hole reaches the encoder's top levels
HALO = 32  # extra context of every crop
MAX_AREA = 0.6  # above this share of the image, the dense computation is as cheap
WINDOWED_LEVELS = 2  # the two highest-resolution levels of each decoder (and of the stage-2 encoder)


@dataclass(frozen=True)
class Box:
    """A rectangle in full-resolution pixels: rows y0:y1, columns x0:x1."""

    y0: int
    y1: int
    x0: int
    x1: int

    def grown(self, pad: int, height: int, width: int) -> Box:
        return Box(
            max(0, self.y0 - pad),
            min(height, self.y1 + pad),
            max(0, self.x0 - pad),
            min(width, self.x1 + pad),
        )

    def within(self, outer: Box) -> Box:
        """This box in the coordinates of ``outer`` (which must contain it)."""
        return Box(self.y0 - outer.y0, self.y1 - outer.y0, self.x0 - outer.x0, self.x1 - outer.x0)


@dataclass(frozen=True)
class Window:
    """The region around the hole where full-resolution work is needed (full-resolution pixels)."""

    box: Box
    height: int
    width: int

    @staticmethod
    def around_hole(mask: torch.Tensor, max_area: float = MAX_AREA) -> Window | None:
        """The window for ``mask`` (B, 1, H, W; 1 = known), or None when it would not save work."""
        height, width = mask.shape[-2:]
        hole = (mask < 1).any(dim=0)[0]
        rows, cols = hole.any(dim=1).nonzero(), hole.any(dim=0).nonzero()
        if len(rows) == 0:
            return None
        y0, y1 = int(rows[0]) - MARGIN, int(rows[-1]) + 1 + MARGIN
        x0, x1 = int(cols[0]) - MARGIN, int(cols[-1]) + 1 + MARGIN
        box = Box(
            max(0, y0 // ALIGN * ALIGN),
            min(height, -(-y1 // ALIGN) * ALIGN),
            max(0, x0 // ALIGN * ALIGN),
            min(width, -(-x1 // ALIGN) * ALIGN),
        )
        crop = box.grown(HALO, height, width)
        if (crop.y1 - crop.y0) * (crop.x1 - crop.x0) > max_area * height * width:
            return None
        return Window(box, height, width)

    @property
    def crop(self) -> Box:
        """The window with its context: where cropped layers run."""
        return self.box.grown(HALO, self.height, self.width)

    def scale_of(self, t: torch.Tensor) -> int:
        """Full-resolution pixels per pixel of ``t`` (a map of the whole image)."""
        return self.height // t.shape[-2]

    def cut(self, t: torch.Tensor, box: Box, scale: int | None = None) -> torch.Tensor:
        """The part of ``t`` under ``box``; ``t`` covers the image at ``scale`` (default: inferred)."""
        s = scale or self.scale_of(t)
        return t[..., box.y0 // s : box.y1 // s, box.x0 // s : box.x1 // s]

    def crop_of(self, t: torch.Tensor) -> torch.Tensor:
        """The part of a whole-image map ``t`` under :attr:`crop`."""
        return self.cut(t, self.crop)

    def paste(self, full: torch.Tensor, crop: torch.Tensor) -> torch.Tensor:
        """Write the window part of ``crop`` (computed on :attr:`crop`) into ``full``, in place."""
        s = self.scale_of(full)
        inner = self.box.within(self.crop)
        self.cut(full, self.box, s).copy_(self.cut(crop, inner, s))
        return full

    def paste_in_crop(self, target: torch.Tensor, crop: torch.Tensor) -> torch.Tensor:
        """Like :meth:`paste`, but ``target`` is itself a map of :attr:`crop` (same size as ``crop``)."""
        c = self.crop
        scale = (c.y1 - c.y0) // target.shape[-2]
        inner = self.box.within(c)
        self.cut(target, inner, scale).copy_(self.cut(crop, inner, scale))
        return target

    def expand(self, crop: torch.Tensor) -> torch.Tensor:
        """A whole-image map of zeros with the window part of ``crop`` (computed on :attr:`crop`)."""
        c = self.crop
        scale = (c.y1 - c.y0) // crop.shape[-2]
        full = crop.new_zeros(*crop.shape[:-2], self.height // scale, self.width // scale)
        return self.paste(full, crop)
