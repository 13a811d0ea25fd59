"""Opening and saving: which file becomes which document, and the dialogs' file filters.

These functions do the slow part (decoding, encoding, writing) and touch no widget, so the
window runs them on a background thread (``file_ops.py``) with a snapshot of the document.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.document import MASK, Document
from ..core.imageio import OPEN_SUFFIXES, read_image, save_image
from ..core.project import SUFFIX as PROJECT_SUFFIX
from ..core.project import load_project, save_project

OPEN_FILTER = (
    "Pictures and projects (*.isproj "
    + " ".join(f"*{s}" for s in OPEN_SUFFIXES)
    + ");;inpaint-studio projects (*.isproj);;All files (*)"
)
PROJECT_FILTER = "inpaint-studio project (*.isproj)"
EXPORT_FILTERS = {
    "PNG image (*.png)": ".png",
    "JPEG image (*.jpg *.jpeg)": ".jpg",
    "WebP image (*.webp)": ".webp",
}


@dataclass
class Opened:
    document: Document
    project: Path | None  # where Save writes without asking
    source: Path | None  # the picture it came from, if not a project
    note: str = ""  # what opening it changed (16-bit or greyscale made 8-bit RGB), said once

    @property
    def title(self) -> str:
        path = self.project or self.source
        return path.name if path else "Untitled"


def can_open(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (PROJECT_SUFFIX, *OPEN_SUFFIXES)


def open_document(path: str | Path) -> Opened:
    """A project, or a picture as a new one-layer document. Raises ImageError / ProjectError."""
    path = Path(path).expanduser()
    if path.suffix.lower() == PROJECT_SUFFIX:
        doc = load_project(path)
        return Opened(doc, path, None)
    loaded = read_image(path)
    doc = Document.from_image(loaded.rgb, loaded.alpha, name=path.stem or "Background")
    doc.meta["source"] = str(path)
    return Opened(doc, None, path, conversion_note(loaded.source_mode))


# PIL modes the app edits as 8-bit RGB(A) with a loss worth telling: depth or colour model
_CONVERTED = {
    "I;16": "a 16-bit greyscale",
    "I;16L": "a 16-bit greyscale",
    "I;16B": "a 16-bit greyscale",
    "I;16N": "a 16-bit greyscale",
    "I": "a 32-bit greyscale",
    "F": "a floating-point greyscale",
    "L": "a greyscale",
    "LA": "a greyscale",
    "La": "a greyscale",
    "1": "a black-and-white",
    "CMYK": "a CMYK",
    "RGB;16": "a 16-bit",
    "RGBA;16": "a 16-bit",
}


def conversion_note(source_mode: str) -> str:
    """One line for the status bar when the picture is edited in another form than its file's
    (empty when nothing is lost). The CLI keeps depth and alpha; the app edits 8-bit RGB."""
    kind = _CONVERTED.get(source_mode)
    if kind is None:
        return ""
    return (
        f"{kind[0].upper()}{kind[1:]} picture: edited and exported as 8-bit RGB "
        "(the command line `inpaint-studio fill` keeps its depth)"
    )


def project_path(path: str | Path) -> Path:
    """Where a project named ``path`` is written (the .isproj suffix added when missing)."""
    path = Path(path)
    if path.suffix.lower() != PROJECT_SUFFIX:
        path = path.with_name(path.name + PROJECT_SUFFIX)
    return path


def save_document(doc: Document, path: str | Path) -> Path:
    """Write ``doc`` (usually a snapshot) as a project; the caller marks the original clean."""
    path = project_path(path)
    save_project(doc, path)
    return path


def with_suffix_for_filter(path: str, chosen_filter: str) -> Path:
    """Add the extension of the chosen filter when the person typed a bare name."""
    p = Path(path)
    if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
        return p
    return p.with_name(p.name + EXPORT_FILTERS.get(chosen_filter, ".png"))


def export_pixels(doc: Document, target: str | None) -> np.ndarray:
    """What an export writes: the composite (None), one layer's RGBA, or the mask."""
    if target is None:
        return doc.composite_rgba()
    if target == MASK:
        return doc.mask
    return doc.layer(target).pixels


def export(doc: Document, path: str | Path, target: str | None = None) -> Path:
    return save_image(path, export_pixels(doc, target))
