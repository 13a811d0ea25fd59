"""Output that keeps the file's own pixels: alpha and 16-bit depth outside the filled hole.

Engines work on 8-bit RGB (transparent pixels flattened over white). The fill is placed into the
hole of the image as the file holds it, so outside the mask the output equals the file, alpha and
depth included, wherever the output format can hold them (PNG and TIFF hold both; WebP holds
alpha in 8 bits; JPEG holds neither). :func:`fit_format` says in one line what a format drops.
The alpha channel is kept as it is: the fill replaces colour, not transparency.
"""

from __future__ import annotations

import numpy as np

from .imageio import LOSSY_FORMATS, LoadedImage, flatten_alpha


def place_fill(loaded: LoadedImage, fill: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The output pixels: ``loaded``'s own pixels where ``mask`` is 0, the 8-bit ``fill`` elsewhere.

    Returns uint16 (HxW, HxWx3 or HxWx4) for a 16-bit file, RGBA uint8 for a file with alpha,
    else RGB uint8 (``fill`` itself).
    """
    hole = mask > 0
    native = loaded.native
    if native is not None:
        out = native.copy()
        if out.ndim == 2:
            luma = fill.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
            out[hole] = (np.rint(luma[hole]) * 257).astype(np.uint16)
        else:
            out[..., :3][hole] = fill[hole].astype(np.uint16) * 257
        return out
    if loaded.alpha is not None:
        out = np.dstack([loaded.rgb, loaded.alpha])
        out[..., :3][hole] = fill[hole]
        return out
    return fill


def describe(pixels: np.ndarray) -> str:
    """'16-bit grey', 'RGBA', ... for messages."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    name = {1: "grey", 2: "grey+alpha", 3: "RGB", 4: "RGBA"}[channels]
    return f"16-bit {name}" if pixels.dtype == np.uint16 else name


def fit_format(pixels: np.ndarray, fmt: str) -> tuple[np.ndarray, str | None]:
    """``pixels`` reduced to what ``fmt`` holds, and a one-line note of what was dropped (or None)."""
    dropped = []
    out = pixels
    if fmt in LOSSY_FORMATS and out.dtype == np.uint16:
        out = ((out.astype(np.uint32) + 128) // 257).astype(np.uint8)
        dropped.append("16-bit depth")
    has_alpha = out.ndim == 3 and out.shape[2] == 4
    if fmt == "JPEG" and has_alpha:
        out = flatten_alpha(out[..., :3], out[..., 3])
        dropped.append("the alpha channel (flattened over white)")
    if not dropped:
        return out, None
    return out, f"{fmt} cannot hold {' and '.join(dropped)}; use .png or .tif to keep the file's pixels"
