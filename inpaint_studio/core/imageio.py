"""Reading and writing images as people really have them.

Everything comes back as RGB uint8 HxWx3 (plus the alpha channel separately when there is one):
EXIF orientation applied; palette, grey, grey+alpha, CMYK, 16-bit and float images converted.
Images above :data:`MAX_PIXELS` are refused before decoding (override with the environment
variable ``INPAINT_STUDIO_MAX_PIXELS``), and corrupt or truncated files raise :class:`ImageError`
with a one-line reason instead of crashing.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_write

MAX_PIXELS = 150_000_000  # ~ 15000 x 10000; an RGBA layer of that size is 600 MB
MAX_PIXELS_ENV = "INPAINT_STUDIO_MAX_PIXELS"

SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
OPEN_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class ImageError(ValueError):
    """The file cannot be used as an image; the message says why in one line."""


@dataclass(frozen=True)
class LoadedImage:
    rgb: np.ndarray  # HxWx3 uint8
    alpha: np.ndarray | None  # HxW uint8, None when the file has no transparency
    source_mode: str  # the PIL mode of the file, e.g. "CMYK", "I;16", "P"

    @property
    def rgba(self) -> np.ndarray:
        alpha = self.alpha if self.alpha is not None else np.full(self.rgb.shape[:2], 255, np.uint8)
        return np.dstack([self.rgb, alpha])


def max_pixels() -> int:
    value = os.environ.get(MAX_PIXELS_ENV)
    return int(value) if value else MAX_PIXELS


def read_image(path: str | Path, limit: int | None = None) -> LoadedImage:
    """Decode ``path`` into RGB + optional alpha, or raise :class:`ImageError`."""
    path = Path(path)
    limit = max_pixels() if limit is None else limit
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # we enforce our own, documented limit below
            try:
                with Image.open(path) as im:
                    w, h = im.size
                    if w * h > limit:
                        raise ImageError(
                            f"{path.name} is {w}x{h} ({w * h / 1e6:.0f} MP), above the {limit / 1e6:.0f} MP "
                            f"limit; downscale it first or raise {MAX_PIXELS_ENV}"
                        )
                    mode = im.mode
                    im.load()
                    im = ImageOps.exif_transpose(im) or im
                    return _to_rgb_alpha(im, mode)
            finally:
                Image.MAX_IMAGE_PIXELS = old_limit
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path.name}: not an image file, or a format this app cannot read") from None
    except MemoryError:
        raise ImageError(f"{path.name}: not enough memory to decode this image") from None
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, EOFError) as err:
        raise ImageError(f"{path.name}: corrupt or truncated image ({_short(err)})") from None


def load_image(path: str | Path, limit: int | None = None) -> np.ndarray:
    """RGB uint8 HxWx3 of ``path``; transparent pixels are composited over white."""
    loaded = read_image(path, limit)
    if loaded.alpha is None:
        return loaded.rgb
    return flatten_alpha(loaded.rgb, loaded.alpha)


def load_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A mask PNG as uint8 HxW (255 = fill). Colour masks use their luminance.

    With ``shape`` (h, w) given, a mask of another size is an error, not silently resized.
    """
    loaded = read_image(path)
    rgb = loaded.rgb
    if loaded.alpha is not None and not loaded.rgb.any():
        mask = loaded.alpha  # a black mask drawn on transparency: the alpha is the mask
    else:
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
            mask = rgb[..., 0].copy()
        else:
            r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
            mask = ((r * 299 + g * 587 + b * 114 + 500) // 1000).astype(np.uint8)
    if shape is not None and mask.shape != tuple(shape):
        raise ImageError(
            f"mask {Path(path).name} is {mask.shape[1]}x{mask.shape[0]} but the image is {shape[1]}x{shape[0]}"
        )
    return mask


def flatten_alpha(rgb: np.ndarray, alpha: np.ndarray, background: int = 255) -> np.ndarray:
    a = alpha.astype(np.uint16)[..., None]
    out = (rgb.astype(np.uint16) * a + background * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def save_image(path: str | Path, pixels: np.ndarray, quality: int = 95) -> Path:
    """Save RGB / RGBA / grey uint8 pixels atomically; the format follows the suffix."""
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"cannot save {path.name}: use one of {', '.join(sorted(SAVE_FORMATS))}")
    if pixels.dtype != np.uint8:
        raise ImageError("pixels must be uint8")
    if pixels.ndim == 3 and pixels.shape[2] == 4 and fmt == "JPEG":
        pixels = flatten_alpha(pixels[..., :3], pixels[..., 3])
    im = Image.fromarray(np.ascontiguousarray(pixels))
    options: dict = {}
    if fmt == "JPEG":
        options = {"quality": quality, "subsampling": 0 if quality >= 90 else 2, "optimize": True}
    elif fmt == "WEBP":
        options = {"quality": quality, "method": 4}
    elif fmt == "PNG":
        options = {"compress_level": 4}
    with atomic_write(path) as f:
        im.save(f, format=fmt, **options)
    return path


def encode_png(pixels: np.ndarray, compress_level: int = 4) -> bytes:
    """PNG bytes of uint8 pixels (used by project files)."""
    import io

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    import io

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im).copy()


def _to_rgb_alpha(im: Image.Image, source_mode: str) -> LoadedImage:
    mode = im.mode
    alpha = None
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(im).astype(np.float64)
        scale = 257.0 if (mode != "I" or arr.max() > 255) else 1.0
        grey = np.clip(np.rint(arr / scale), 0, 255).astype(np.uint8)
        return LoadedImage(np.dstack([grey] * 3), None, source_mode)
    if mode == "F":
        arr = np.asarray(im).astype(np.float64)
        arr = np.nan_to_num(arr)
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        grey = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return LoadedImage(np.dstack([grey] * 3), None, source_mode)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    if im.mode == "RGBA":
        arr = np.asarray(im)
        alpha = arr[..., 3].copy()
        rgb = arr[..., :3].copy()
        if alpha.min() == 255:
            alpha = None
        return LoadedImage(rgb, alpha, source_mode)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return LoadedImage(np.asarray(im).copy(), None, source_mode)


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:120]
