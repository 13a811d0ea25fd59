"""Reading and writing images as people really have them.

Everything comes back as RGB uint8 HxWx3 (plus the alpha channel separately when there is one):
EXIF orientation applied; palette, grey, grey+alpha, CMYK, 16-bit and float images converted.
A 16-bit file also keeps its own pixels (:attr:`LoadedImage.native`), so that output can hold
the file's depth outside the filled hole (see ``core/keep.py``).

Images above :data:`MAX_PIXELS` are refused before decoding (override with the environment
variable ``INPAINT_STUDIO_MAX_PIXELS``), so are files whose header declares far more pixels than
their size can hold; corrupt or truncated files, and files on which the decoder reports
problems (a warning is an error here), raise :class:`ImageError` with a one-line reason.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_write

MAX_PIXELS = 150_000_000  # ~ 15000 x 10000; an RGBA layer of that size is 600 MB
MAX_PIXELS_ENV = "INPAINT_STUDIO_MAX_PIXELS"
# A header that declares more than this many decoded bytes per byte of file is a bomb or a lie.
# Deflate (PNG) cannot pass ~1032:1, JPEG ~600:1; only TIFF's pluggable codecs can go further.
MAX_RATIO = 4000
_RATIO_MIN_BYTES = 64 << 20  # small images are never refused for their ratio

SAVE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
LOSSY_FORMATS = ("JPEG", "WEBP")
OPEN_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")

_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3}
_BYTES_PER_PIXEL.update({m: 2 for m in ("I;16", "I;16B", "I;16L", "I;16N")})
# EXIF orientation -> the transpose that makes the picture upright (the table of the EXIF spec)
_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageError(ValueError):
    """The file cannot be used as an image; the message says why in one line."""


@dataclass(frozen=True)
class LoadedImage:
    rgb: np.ndarray  # HxWx3 uint8
    alpha: np.ndarray | None  # HxW uint8, None when the file has no transparency
    source_mode: str  # the PIL mode of the file, e.g. "CMYK", "I;16", "P"
    native: np.ndarray | None = None  # uint16 HxW / HxWx3 / HxWx4 of a 16-bit file (upright), else None
    orientation: int = 1  # the file's EXIF orientation (1 = stored upright)

    @property
    def rgba(self) -> np.ndarray:
        alpha = self.alpha if self.alpha is not None else np.full(self.rgb.shape[:2], 255, np.uint8)
        return np.dstack([self.rgb, alpha])

    @property
    def stored_shape(self) -> tuple[int, int]:
        """(h, w) as stored in the file, before EXIF rotation."""
        h, w = self.rgb.shape[:2]
        return (w, h) if self.orientation in (5, 6, 7, 8) else (h, w)


def max_pixels() -> int:
    """The pixel limit: :data:`MAX_PIXELS` or the environment's ``INPAINT_STUDIO_MAX_PIXELS``."""
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return MAX_PIXELS
    try:
        number = float(value.replace("_", ""))
    except ValueError:
        number = float("nan")
    if not np.isfinite(number) or number < 1 or not number.is_integer():
        raise ImageError(f"{MAX_PIXELS_ENV}={value!r} is not a pixel count (e.g. 200000000 or 2e8)")
    return int(number)


def _limit_text(limit: int) -> str:
    return f"{limit / 1e6:.0f} MP" if limit >= 10_000_000 else f"{limit:,}-pixel"


def check_readable(path: Path) -> None:
    """Raise :class:`ImageError` unless ``path`` is a regular file (not a folder, FIFO or device)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as err:
        raise ImageError(f"{path}: cannot be read ({err.strerror or err})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"{path} is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(f"{path} is not a regular file (a pipe, socket or device); refusing to read it")


def read_image(path: str | Path, limit: int | None = None) -> LoadedImage:
    """Decode ``path`` into RGB + optional alpha, or raise :class:`ImageError`."""
    path = Path(path)
    limit = max_pixels() if limit is None else limit
    check_readable(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # Pillow's decoder warnings: damaged data, refuse
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # we enforce our own, documented limit below
            try:
                with Image.open(path) as im:
                    _check_declared_size(im, path, limit)
                    mode = im.mode
                    rawmode = _rawmode(im)  # before anything that loads (PNG's getexif does)
                    orientation = _orientation(im)
                    with _decoder_messages(im.format == "TIFF") as messages:
                        im.load()
                    if messages():
                        raise ImageError(
                            f"{path.name}: corrupt image (the decoder reported: {_short_text(messages())})"
                        )
                    native = _native_16bit(im, path, orientation, rawmode)
                    im = ImageOps.exif_transpose(im) or im
                    loaded = _to_rgb_alpha(im, mode)
            finally:
                Image.MAX_IMAGE_PIXELS = old_limit
        if native is not None and native.shape[:2] != loaded.rgb.shape[:2]:
            native = None
        return LoadedImage(loaded.rgb, loaded.alpha, loaded.source_mode, native, orientation)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path.name}: not an image file, or a format this app cannot read") from None
    except MemoryError:
        raise ImageError(f"{path.name}: not enough memory to decode this image") from None
    except Warning as err:
        raise ImageError(f"{path.name}: corrupt image (the decoder warned: {_short(err)})") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        TypeError,
        IndexError,
        EOFError,
        KeyError,
        ZeroDivisionError,
    ) as err:
        raise ImageError(f"{path.name}: corrupt or truncated image ({_short(err)})") from None


def _check_declared_size(im: Image.Image, path: Path, limit: int) -> None:
    w, h = im.size
    if w <= 0 or h <= 0:
        raise ImageError(f"{path.name}: the header declares an empty image ({w}x{h})")
    if w * h > limit:
        raise ImageError(
            f"{path.name} is {w}x{h} ({w * h / 1e6:.1f} MP), above the {_limit_text(limit)} limit; "
            f"downscale it first or raise {MAX_PIXELS_ENV}"
        )
    if im.format != "TIFF":  # the other formats' codecs cannot pass MAX_RATIO (see above)
        return
    declared = w * h * _BYTES_PER_PIXEL.get(im.mode, 4)
    file_size = max(path.stat().st_size, 1)
    if declared > _RATIO_MIN_BYTES and declared / file_size > MAX_RATIO:
        raise ImageError(
            f"{path.name}: the header declares {w}x{h} ({declared >> 20} MB of pixels) in a "
            f"{max(file_size >> 10, 1)} KB file; a damaged header or a decompression bomb, refusing to decode it"
        )


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(0x0112, 1))
    except (TypeError, ValueError, OSError, SyntaxError):
        return 1
    return value if value in _EXIF_TRANSPOSE else 1


def transpose_like_exif(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """``pixels`` (stored orientation) turned the way EXIF ``orientation`` turns the photo."""
    method = _EXIF_TRANSPOSE.get(orientation)
    if method is None:
        return pixels
    ops = {
        Image.Transpose.FLIP_LEFT_RIGHT: lambda a: a[:, ::-1],
        Image.Transpose.ROTATE_180: lambda a: a[::-1, ::-1],
        Image.Transpose.FLIP_TOP_BOTTOM: lambda a: a[::-1],
        Image.Transpose.TRANSPOSE: lambda a: np.swapaxes(a, 0, 1),
        Image.Transpose.ROTATE_270: lambda a: np.rot90(a, -1),
        Image.Transpose.TRANSVERSE: lambda a: np.rot90(np.swapaxes(a, 0, 1), 2),
        Image.Transpose.ROTATE_90: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[method](pixels))


def _native_16bit(im: Image.Image, path: Path, orientation: int, rawmode: str) -> np.ndarray | None:
    """The file's own 16-bit pixels (upright), or None for files of 8 bits or less."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return transpose_like_exif(np.asarray(im).astype(np.uint16), orientation)
    if im.mode not in ("RGB", "RGBA"):
        return None
    if ";16" not in rawmode:
        return None
    import cv2  # Pillow reads 16-bit colour as 8-bit; OpenCV keeps the depth

    data = np.fromfile(path, np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        return None
    arr = arr[..., [2, 1, 0]] if arr.shape[2] == 3 else arr[..., [2, 1, 0, 3]]
    return transpose_like_exif(arr, orientation)


def _rawmode(im: Image.Image) -> str:
    """The raw layout of the first tile ("RGB;16B" ...), read before ``load()`` clears the tiles."""
    try:
        args = im.tile[0].args if im.tile else ""
    except (AttributeError, IndexError):
        return ""
    first = args[0] if isinstance(args, tuple) and args else args
    return first if isinstance(first, str) else ""


_REDIRECT_LOCK = threading.Lock()  # fd 2 is process-wide: one redirection at a time


@contextlib.contextmanager
def _decoder_messages(enabled: bool = True) -> Iterator:
    """Catch what libtiff prints on stderr while decoding; yields a getter for it.

    libtiff reports damaged data ("Bad code word", "Premature EOL") on stderr and returns the
    garbage anyway; what it printed turns the decode into an error.
    """
    captured = ""
    if not enabled:
        yield lambda: captured
        return
    with _REDIRECT_LOCK, tempfile.TemporaryFile() as sink:
        try:
            saved = os.dup(2)
        except OSError:
            yield lambda: captured
            return
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured = sink.read(4096).decode("utf-8", "replace").strip()


def load_image(path: str | Path, limit: int | None = None) -> np.ndarray:
    """RGB uint8 HxWx3 of ``path``; transparent pixels are composited over white."""
    loaded = read_image(path, limit)
    if loaded.alpha is None:
        return loaded.rgb
    return flatten_alpha(loaded.rgb, loaded.alpha)


def mask_from_loaded(loaded: LoadedImage) -> np.ndarray:
    """The documented mask rule: the alpha channel when the file has transparency (opaque = fill),
    else the brightest of R, G, B (so a pure red, green or blue stroke is a full hole). Values in
    between are a soft hole that blends."""
    if loaded.alpha is not None:
        return loaded.alpha.copy()
    return loaded.rgb.max(axis=2)


def load_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A mask image as uint8 HxW (255 = fill), read with :func:`mask_from_loaded`'s rule.

    With ``shape`` (h, w) given, a mask of another size is an error, not silently resized.
    """
    mask = mask_from_loaded(read_image(path))
    if shape is not None and mask.shape != tuple(shape):
        raise ImageError(
            f"mask {Path(path).name} is {mask.shape[1]}x{mask.shape[0]} but the image is {shape[1]}x{shape[0]}"
        )
    return mask


def flatten_alpha(rgb: np.ndarray, alpha: np.ndarray, background: int = 255) -> np.ndarray:
    a = alpha.astype(np.uint16)[..., None]
    out = (rgb.astype(np.uint16) * a + background * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def save_format(path: str | Path) -> str:
    """The format name for ``path``'s suffix, or :class:`ImageError` naming the ones we write."""
    fmt = SAVE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ImageError(f"cannot save {Path(path).name}: use one of {', '.join(sorted(SAVE_FORMATS))}")
    return fmt


def save_image(path: str | Path, pixels: np.ndarray, quality: int = 95) -> Path:
    """Save grey / grey+alpha / RGB / RGBA pixels (uint8, or uint16 for PNG and TIFF) atomically.

    The format follows the suffix. ``quality`` (1-100) applies to JPEG and WebP; WebP at 100 is
    lossless. Use ``core/keep.py``'s :func:`fit_format` first to learn what a format drops.
    """
    path = Path(path)
    fmt = save_format(path)
    if pixels.dtype not in (np.uint8, np.uint16) or (pixels.dtype == np.uint16 and fmt in LOSSY_FORMATS):
        raise ImageError(f"cannot save {pixels.dtype} pixels as {fmt}")
    if pixels.ndim == 3 and pixels.shape[2] == 4 and fmt == "JPEG":
        pixels = flatten_alpha(pixels[..., :3], pixels[..., 3])
    if pixels.dtype == np.uint16 and pixels.ndim == 3:
        data = _encode_16bit_colour(pixels, ".png" if fmt == "PNG" else ".tif")
        with atomic_write(path) as f:
            f.write(data)
        return path
    im = Image.fromarray(np.ascontiguousarray(pixels))
    options: dict = {}
    if fmt == "JPEG":
        options = {"quality": quality, "subsampling": 0 if quality >= 90 else 2, "optimize": True}
    elif fmt == "WEBP":
        options = {"quality": quality, "method": 4, "lossless": quality >= 100}
    elif fmt == "PNG":
        options = {"compress_level": 4}
    elif fmt == "TIFF":
        options = {"compression": "tiff_deflate"}
    with atomic_write(path) as f:
        im.save(f, format=fmt, **options)
    return path


def _encode_16bit_colour(pixels: np.ndarray, ext: str) -> bytes:
    import cv2  # Pillow cannot write 16-bit colour

    bgr = pixels[..., [2, 1, 0]] if pixels.shape[2] == 3 else pixels[..., [2, 1, 0, 3]]
    ok, data = cv2.imencode(ext, np.ascontiguousarray(bgr))
    if not ok:
        raise ImageError(f"cannot encode 16-bit {ext[1:].upper()}")
    return data.tobytes()


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
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        grey = _scaled_to_8bit(np.array(im, dtype=np.float32), mode)
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


def _scaled_to_8bit(arr: np.ndarray, mode: str) -> np.ndarray:
    """Grey values of a 16-bit, 32-bit or float image as uint8, scaled in place (float32).

    Non-finite values (NaN, inf) do not take part in the scaling; NaN becomes 0 and +-inf the ends
    of the range, so one bad pixel does not turn the picture black.
    """
    finite = np.isfinite(arr)
    if not finite.all():
        good = arr[finite]
        low, high = (float(good.min()), float(good.max())) if good.size else (0.0, 0.0)
        np.copyto(arr, np.float32(0.0), where=np.isnan(arr))
        np.copyto(arr, np.float32(high), where=np.isposinf(arr))
        np.copyto(arr, np.float32(low), where=np.isneginf(arr))
    top = float(arr.max()) if arr.size else 0.0
    if mode == "F":
        scale = 255.0 if top <= 1.0 else 1.0
    elif mode == "I":
        scale = 1.0 / 257.0 if top > 255 else 1.0
    else:  # 16-bit
        scale = 1.0 / 257.0
    arr *= np.float32(scale)
    np.rint(arr, out=arr)
    np.clip(arr, 0, 255, out=arr)
    return arr.astype(np.uint8)


def _short_text(text: str) -> str:
    return " ".join(text.split())[:120]


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:120]
