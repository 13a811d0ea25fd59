"""Every training mask generator, in one place.

A generator is a callable ``(h, w, rng) -> bool HxW`` (True = hole) drawing from a numpy
``Generator`` so that a seed reproduces a mask set. Sizes are given for a reference resolution
(the one the original recipe used) and scaled to the requested size, so a 128 px CPU run sees the
same shapes as a 512 px GPU run, only smaller. :class:`MaskMixture` picks one generator per sample
from weights written like ``"strokes:0.4,box:0.2,patch:0.4"``.

Kinds:
  strokes      free-form brush strokes (CoModGAN / MAT ``RandomBrush`` statistics, 512 px reference)
  mat          MAT's training mask: rectangles + brush strokes, hole ratio drawn over [0, 1]
  thin, medium, thick   LaMa's irregular line masks (256 px reference)
  irregular    large irregular holes: LaMa thick lines plus random blobs
  box          LaMa's random rectangles
  outpaint     box complement: keep one rectangle, the rest is the hole
  object       object-shaped masks from a folder of mask PNGs (needs ``mask_dir``)
  silhouette   synthetic object-like shapes (a smooth blob with limbs), when there is no mask folder
  patch        InP-Net random patch masks, ratio up to the (warmed-up) maximum
  structured   InP-Net's square holes at the nine ``CENTER_DICT`` anchors
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

MaskFn = Callable[[int, int, np.random.Generator], np.ndarray]

# Anchor centres (row, column) as fractions of the image, named as in the InP-Net recipe.
CENTER_DICT: dict[str, tuple[float, float]] = {
    "top_left": (0.25, 0.25),
    "top_right": (0.25, 0.75),
    "bottom_left": (0.75, 0.25),
    "bottom_right": (0.75, 0.75),
    "top_middle": (0.25, 0.5),
    "center_middle": (0.5, 0.5),
    "center_left": (0.5, 0.25),
    "center_right": (0.5, 0.75),
    "bottom_center": (0.75, 0.5),
}

MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp")


# ----------------------------------------------------------------------------- strokes
def brush_strokes(
    h: int,
    w: int,
    rng: np.random.Generator,
    max_tries: int = 9,
    min_vertices: int = 4,
    max_vertices: int = 18,
    mean_angle: float = 2 * math.pi / 5,
    angle_range: float = 2 * math.pi / 15,
    width_range: tuple[float, float] = (12, 48),
    reference: int = 512,
) -> np.ndarray:
    """Zig-zag polylines with round joints, as in CoModGAN/MAT (widths given at ``reference`` px)."""
    scale = min(h, w) / reference
    radius = math.hypot(h, w) / 8
    canvas = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(max_tries)) if max_tries > 0 else 0):
        n = int(rng.integers(min_vertices, max_vertices))
        lo = mean_angle - rng.uniform(0, angle_range)
        hi = mean_angle + rng.uniform(0, angle_range)
        pts = [(int(rng.integers(0, w)), int(rng.integers(0, h)))]
        for i in range(n):
            angle = rng.uniform(lo, hi)
            if i % 2 == 0:
                angle = 2 * math.pi - angle
            r = float(np.clip(rng.normal(radius, radius // 2), 0, 2 * radius))
            x = float(np.clip(pts[-1][0] + r * math.cos(angle), 0, w))
            y = float(np.clip(pts[-1][1] + r * math.sin(angle), 0, h))
            pts.append((int(x), int(y)))
        width = max(1, int(rng.uniform(*width_range) * scale))
        cv2.polylines(canvas, [np.array(pts, np.int32)], False, 1, thickness=width)
        for x, y in pts:
            cv2.circle(canvas, (x, y), width // 2, 1, thickness=-1)
    out = canvas.astype(bool)
    if rng.random() > 0.5:
        out = out[::-1]
    if rng.random() > 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


# MAT's two RandomMask recipes (datasets/mask_generator_512.py and _256.py): tries of half-size
# rectangles, of full-size rectangles and of brush strokes; stroke widths are 12-48 px at the size.
MAT_RECIPES: dict[int, tuple[int, int, int]] = {512: (5, 3, 9), 256: (4, 2, 8)}


def mat_mask(
    h: int,
    w: int,
    rng: np.random.Generator,
    hole_range: tuple[float, float] = (0.0, 1.0),
    recipe: int = 512,
) -> np.ndarray:
    """MAT's ``RandomMask``: up to 5 half-size and 3 full-size rectangles, then brush strokes
    (up to 9 tries); redrawn until the hole ratio lies strictly inside ``hole_range``.
    ``recipe=256`` is the 256 px variant (4, 2 and 8 tries, stroke widths given at 256 px)."""
    if recipe not in MAT_RECIPES:
        raise ValueError(f"MAT mask recipe must be one of {sorted(MAT_RECIPES)}, got {recipe}")
    half_tries, full_tries, brush_tries = MAT_RECIPES[recipe]
    coef = min(hole_range[0] + hole_range[1], 1.0)
    s = min(h, w)
    for _ in range(1000):
        hole = np.zeros((h, w), bool)
        for tries, size in ((int(half_tries * coef), s // 2), (int(full_tries * coef), s)):
            for _ in range(int(rng.integers(tries)) if tries > 0 else 0):
                bw, bh = int(rng.integers(max(size, 1))), int(rng.integers(max(size, 1)))
                x = int(rng.integers(-(bw // 2), max(w - bw + bw // 2, -(bw // 2) + 1)))
                y = int(rng.integers(-(bh // 2), max(h - bh + bh // 2, -(bh // 2) + 1)))
                hole[max(y, 0) : min(y + bh, h), max(x, 0) : min(x + bw, w)] = True
        hole |= brush_strokes(h, w, rng, max_tries=int(brush_tries * coef), reference=recipe)
        ratio = float(hole.mean())
        if hole_range[0] < ratio < hole_range[1]:
            return hole
    raise RuntimeError(f"could not draw a MAT mask with a hole ratio inside {hole_range}")


# LaMa's irregular-line settings at 256 px (configs/training/data and data_gen).
LAMA_IRREGULAR: dict[str, dict[str, float]] = {
    "thin": dict(max_angle=4, max_len=40, max_width=10, min_times=4, max_times=50),
    "medium": dict(max_angle=4, max_len=100, max_width=50, min_times=1, max_times=5),
    "thick": dict(max_angle=4, max_len=200, max_width=100, min_times=1, max_times=5),
}


def irregular_lines(
    h: int,
    w: int,
    rng: np.random.Generator,
    max_angle: float = 4,
    max_len: float = 60,
    max_width: float = 20,
    min_times: int = 0,
    max_times: int = 10,
    reference: int = 256,
) -> np.ndarray:
    """LaMa-style random walks of thick line segments (lengths and widths at ``reference`` px)."""
    scale = min(h, w) / reference
    canvas = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(min_times, max_times + 1))):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        for j in range(1 + int(rng.integers(5))):
            angle = 0.01 + rng.uniform(0, max_angle)
            if j % 2 == 0:
                angle = 2 * math.pi - angle
            length = (10 + rng.uniform(0, max_len)) * scale
            width = max(1, int((5 + rng.uniform(0, max_width)) * scale))
            nx = int(np.clip(x + length * math.sin(angle), 0, w - 1))
            ny = int(np.clip(y + length * math.cos(angle), 0, h - 1))
            cv2.line(canvas, (x, y), (nx, ny), 1, thickness=width)
            x, y = nx, ny
    return canvas.astype(bool)


def large_irregular(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Large irregular holes: LaMa's thick lines united with 1-3 random star-shaped blobs."""
    hole = irregular_lines(h, w, rng, **LAMA_IRREGULAR["thick"])
    canvas = np.zeros((h, w), np.uint8)
    s = min(h, w)
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
        n = int(rng.integers(6, 14))
        angles = np.sort(rng.uniform(0, 2 * math.pi, n))
        radii = rng.uniform(0.08, 0.3, n) * s
        pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).astype(np.int32)
        cv2.fillPoly(canvas, [pts], 1)
    return hole | canvas.astype(bool)


# ----------------------------------------------------------------------------- boxes
def boxes(
    h: int,
    w: int,
    rng: np.random.Generator,
    margin: float = 10,
    min_size: float = 30,
    max_size: float = 150,
    min_times: int = 1,
    max_times: int = 4,
    reference: int = 256,
) -> np.ndarray:
    """LaMa-style random rectangles (sizes at ``reference`` px)."""
    scale = min(h, w) / reference
    m = int(margin * scale)
    hole = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(min_times, max_times + 1))):
        bw = int(
            rng.integers(max(1, int(min_size * scale)), max(2, min(int(max_size * scale), w - 2 * m)) + 1)
        )
        bh = int(
            rng.integers(max(1, int(min_size * scale)), max(2, min(int(max_size * scale), h - 2 * m)) + 1)
        )
        x = int(rng.integers(m, max(m + 1, w - m - bw + 1)))
        y = int(rng.integers(m, max(m + 1, h - m - bh + 1)))
        hole[y : y + bh, x : x + bw] = True
    return hole


def box_complement(
    h: int, w: int, rng: np.random.Generator, keep: tuple[float, float] = (0.3, 0.7)
) -> np.ndarray:
    """Outpainting: one kept rectangle (``keep`` fraction of each side), everything else is the hole."""
    bw, bh = int(rng.uniform(*keep) * w), int(rng.uniform(*keep) * h)
    x, y = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
    hole = np.ones((h, w), bool)
    hole[y : y + bh, x : x + bw] = False
    return hole


# ----------------------------------------------------------------------------- object masks
class ObjectMasks:
    """Object-shaped holes taken from a folder of mask images (white = object), placed at random.

    Files are listed recursively and read lazily through ``inpaint_studio.core.imageio``;
    unreadable ones are skipped with a warning. Each draw scales the shape to 30-90 % of the
    image, flips it, and moves it to a random place.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ValueError(f"mask folder {self.folder} does not exist")
        self.files = sorted(p for p in self.folder.rglob("*") if p.suffix.lower() in MASK_SUFFIXES)
        if not self.files:
            raise ValueError(f"no mask images ({', '.join(MASK_SUFFIXES)}) in {self.folder}")
        self._cache: dict[Path, np.ndarray | None] = {}

    def _load(self, path: Path) -> np.ndarray | None:
        if path not in self._cache:
            from inpaint_studio.core.imageio import ImageError, load_mask

            try:
                shape = load_mask(path) > 127
                ys, xs = np.nonzero(shape)
                self._cache[path] = (
                    shape[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] if len(xs) else None
                )
            except (ImageError, OSError) as err:
                warnings.warn(f"skipping mask {path}: {err}", stacklevel=2)
                self._cache[path] = None
        return self._cache[path]

    def __call__(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        for _ in range(len(self.files) + 8):
            shape = self._load(self.files[int(rng.integers(len(self.files)))])
            if shape is not None:
                break
        else:
            raise ValueError(f"none of the mask images in {self.folder} could be read")
        scale = rng.uniform(0.3, 0.9) * min(h / shape.shape[0], w / shape.shape[1])
        sw, sh = max(1, int(shape.shape[1] * scale)), max(1, int(shape.shape[0] * scale))
        obj = cv2.resize(shape.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST).astype(bool)
        if rng.random() < 0.5:
            obj = obj[:, ::-1]
        x, y = int(rng.integers(0, w - sw + 1)), int(rng.integers(0, h - sh + 1))
        hole = np.zeros((h, w), bool)
        hole[y : y + sh, x : x + sw] = obj
        return hole


def silhouette(
    h: int, w: int, rng: np.random.Generator, size: tuple[float, float] = (0.3, 0.8)
) -> np.ndarray:
    """A synthetic object outline: a blob with a smooth random outline (a few low Fourier modes of its
    radius) and 0-3 elongated limbs, ``size`` of the shorter side across, flipped and placed at random.
    A stand-in for segmentation masks when the person has no mask folder."""
    s = min(h, w)
    radius = rng.uniform(*size) * s / 2
    theta = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    r = np.ones_like(theta)
    for k in range(1, 5):
        r += rng.uniform(0, 0.35 / k) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    r *= radius / r.max()
    sx, sy = rng.uniform(0.6, 1.0, 2)  # aspect: objects are rarely round
    cx = rng.uniform(min(radius, w / 2), max(w - radius, w / 2))
    cy = rng.uniform(min(radius, h / 2), max(h - radius, h / 2))
    pts = np.stack([cx + sx * r * np.cos(theta), cy + sy * r * np.sin(theta)], 1)
    canvas = np.zeros((h, w), np.uint8)
    cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 1)
    for _ in range(int(rng.integers(0, 4))):
        a = rng.uniform(0, 2 * math.pi)
        base = (int(cx + sx * radius * 0.6 * math.cos(a)), int(cy + sy * radius * 0.6 * math.sin(a)))
        length = rng.uniform(0.4, 0.9) * radius
        tip = (int(base[0] + length * math.cos(a)), int(base[1] + length * math.sin(a)))
        cv2.line(canvas, base, tip, 1, thickness=max(1, int(rng.uniform(0.12, 0.3) * radius)))
    out = canvas.astype(bool)
    return np.ascontiguousarray(out[:, ::-1] if rng.random() < 0.5 else out)


# ----------------------------------------------------------------------------- InP-Net masks
def patch_mask(h: int, w: int, rng: np.random.Generator, patch: int, ratio: float) -> np.ndarray:
    """``round(ratio * L)`` random patches of the ``patch`` grid dropped (InP-Net / MAE masking)."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"mask ratio must be in [0, 1], got {ratio}")
    gh, gw = h // patch, w // patch
    n = gh * gw
    grid = np.zeros(n, bool)
    grid[rng.permutation(n)[: int(round(ratio * n))]] = True
    return _grid_to_pixels(grid.reshape(gh, gw), h, w, patch)


def structured_mask(h: int, w: int, anchor: str, ratio: float, patch: int = 1) -> np.ndarray:
    """A square hole covering about ``ratio`` of the image centred on a ``CENTER_DICT`` anchor,
    snapped to the patch grid."""
    if anchor not in CENTER_DICT:
        raise ValueError(f"unknown anchor {anchor!r}; choose one of {', '.join(CENTER_DICT)}")
    cy, cx = CENTER_DICT[anchor]
    gh, gw = h // patch, w // patch
    side_h = max(1, round(math.sqrt(ratio) * gh)) if ratio > 0 else 0
    side_w = max(1, round(math.sqrt(ratio) * gw)) if ratio > 0 else 0
    y0 = int(np.clip(round(cy * gh - side_h / 2), 0, gh - side_h))
    x0 = int(np.clip(round(cx * gw - side_w / 2), 0, gw - side_w))
    grid = np.zeros((gh, gw), bool)
    grid[y0 : y0 + side_h, x0 : x0 + side_w] = True
    return _grid_to_pixels(grid, h, w, patch)


def _grid_to_pixels(grid: np.ndarray, h: int, w: int, patch: int) -> np.ndarray:
    full = np.zeros((h, w), bool)
    up = np.repeat(np.repeat(grid, patch, 0), patch, 1)
    full[: up.shape[0], : up.shape[1]] = up
    return full


@dataclass(frozen=True)
class RatioWarmup:
    """Mask-ratio warm-up: the largest ratio grows linearly from ``start`` to ``end`` over ``steps``."""

    start: float = 0.25
    end: float = 0.9
    steps: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.start <= 1 and 0 <= self.end <= 1) or self.steps < 0:
            raise ValueError("warm-up ratios must be in [0, 1] and steps >= 0")

    def max_ratio(self, step: int | None) -> float:
        if step is None or self.steps == 0 or step >= self.steps:
            return self.end
        return self.start + (self.end - self.start) * step / self.steps


# ----------------------------------------------------------------------------- mixture
KINDS = (
    "strokes",
    "mat",
    "thin",
    "medium",
    "thick",
    "irregular",
    "box",
    "outpaint",
    "object",
    "silhouette",
    "patch",
    "structured",
)


def parse_mixture(spec: str | Mapping[str, float]) -> dict[str, float]:
    """``"strokes:0.4,box:0.2"`` (or a mapping) -> normalised weights; raises on unknown kinds."""
    if isinstance(spec, str):
        items: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, weight = part.partition(":")
            try:
                items[name.strip()] = float(weight) if weight else 1.0
            except ValueError:
                raise ValueError(f"bad mask weight in {part!r}: expected kind:weight") from None
    else:
        items = {k: float(v) for k, v in spec.items()}
    unknown = sorted(set(items) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown mask kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    if not items or any(v < 0 for v in items.values()) or sum(items.values()) <= 0:
        raise ValueError("mask mixture needs at least one kind with a positive weight")
    total = sum(items.values())
    return {k: v / total for k, v in items.items() if v > 0}


class MaskMixture:
    """Draws one mask per call from weighted kinds; ``step`` drives the patch-ratio warm-up.

    ``patch`` is the grid used by the ``patch``/``structured`` kinds; ``ratio_range`` bounds their
    hole ratio (the upper bound follows ``warmup``); ``mask_dir`` enables ``object``.
    """

    def __init__(
        self,
        spec: str | Mapping[str, float],
        patch: int = 8,
        ratio_range: tuple[float, float] = (0.0, 0.9),
        warmup: RatioWarmup | None = None,
        mask_dir: str | Path | None = None,
    ) -> None:
        self.weights = parse_mixture(spec)
        self.patch = patch
        self.ratio_range = ratio_range
        self.warmup = warmup or RatioWarmup(ratio_range[1], ratio_range[1], 0)
        self.objects = ObjectMasks(mask_dir) if mask_dir else None
        if "object" in self.weights and self.objects is None:
            raise ValueError("the 'object' mask kind needs a folder of mask PNGs (--mask-dir)")
        self._kinds = list(self.weights)
        self._p = np.array([self.weights[k] for k in self._kinds])

    def ratio(self, rng: np.random.Generator, step: int | None) -> float:
        hi = min(self.ratio_range[1], self.warmup.max_ratio(step))
        lo = min(self.ratio_range[0], hi)
        return float(rng.uniform(lo, hi))

    def draw(
        self, h: int, w: int, rng: np.random.Generator, step: int | None = None
    ) -> tuple[np.ndarray, str]:
        kind = self._kinds[int(rng.choice(len(self._kinds), p=self._p))]
        return self.make(kind, h, w, rng, step), kind

    def __call__(self, h: int, w: int, rng: np.random.Generator, step: int | None = None) -> np.ndarray:
        return self.draw(h, w, rng, step)[0]

    def make(
        self, kind: str, h: int, w: int, rng: np.random.Generator, step: int | None = None
    ) -> np.ndarray:
        """One mask of ``kind``; shape generators that came out empty are redrawn (a few times)."""
        for _ in range(10):
            hole = self._make(kind, h, w, rng, step)
            if hole.any() or kind in ("patch", "structured"):  # ratio 0 is InP-Net's restoration mode
                return hole
        return hole

    def _make(self, kind: str, h: int, w: int, rng: np.random.Generator, step: int | None) -> np.ndarray:
        if kind == "strokes":
            return brush_strokes(h, w, rng)
        if kind == "mat":
            return mat_mask(h, w, rng)
        if kind in LAMA_IRREGULAR:
            return irregular_lines(h, w, rng, **LAMA_IRREGULAR[kind])
        if kind == "irregular":
            return large_irregular(h, w, rng)
        if kind == "box":
            return boxes(h, w, rng)
        if kind == "outpaint":
            return box_complement(h, w, rng)
        if kind == "object":
            assert self.objects is not None
            return self.objects(h, w, rng)
        if kind == "silhouette":
            return silhouette(h, w, rng)
        if kind == "patch":
            return patch_mask(h, w, rng, self.patch, self.ratio(rng, step))
        if kind == "structured":
            anchor = list(CENTER_DICT)[int(rng.integers(len(CENTER_DICT)))]
            return structured_mask(h, w, anchor, self.ratio(rng, step), self.patch)
        raise ValueError(f"unknown mask kind {kind!r}")

    def batch(self, n: int, h: int, w: int, rng: np.random.Generator, step: int | None = None) -> np.ndarray:
        """(n, h, w) bool masks."""
        return np.stack([self(h, w, rng, step) for _ in range(n)])
