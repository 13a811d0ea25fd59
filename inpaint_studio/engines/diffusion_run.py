"""Small pieces every latent-diffusion engine (sd15, ASUKA) shares around its sampling loop."""

from __future__ import annotations

import numpy as np


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Decoded images in [0, 1] -> RGB uint8 (rounded, not truncated)."""
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)


def is_out_of_memory(err: BaseException) -> bool:
    """True for a CPU or GPU allocation failure (torch's OutOfMemoryError or its message)."""
    return (
        isinstance(err, MemoryError)
        or type(err).__name__ == "OutOfMemoryError"
        or "out of memory" in str(err)
    )


def out_of_memory_hint(title: str, work_size: tuple[int, int], variants: int) -> str:
    """What to do when a run did not fit: the message of the EngineError an engine raises."""
    w, h = work_size
    return (
        f"{title} ran out of memory at {w}x{h} with {variants} variant(s): lower the resolution "
        "or the number of variants, use precision bf16/fp16, or another device"
    )


def missing_libraries() -> str:
    """'' when diffusers and transformers are installed, else the one-line reason and the fix."""
    import importlib.util

    missing = [name for name in ("diffusers", "transformers") if importlib.util.find_spec(name) is None]
    return f"needs {' and '.join(missing)}: pip install 'inpaint-studio[sd]'" if missing else ""
