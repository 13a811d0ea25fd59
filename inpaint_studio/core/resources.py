"""Where the shipped data lives (sample photo, the SD-1.5 config skeleton).

The repository keeps it in a top-level ``resources/`` folder; a wheel installs it as package data in
``inpaint_studio/resources/``. A source checkout and an editable install read the top-level folder in
place, so both layouts are looked for, the installed one first.
"""

from __future__ import annotations

from pathlib import Path

MARKER = "README.md"  # resources/README.md: tells our folder apart from any other "resources"


class ResourcesMissing(FileNotFoundError):
    """The installation lacks its data files (a broken or partial install)."""


def resources_dir() -> Path:
    """The folder holding ``samples/`` and ``sd15/``; raises :class:`ResourcesMissing` when absent."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "resources", package.parent / "resources"):
        if (candidate / MARKER).is_file() and (candidate / "samples").is_dir():
            return candidate
    raise ResourcesMissing(
        f"inpaint-studio's resources folder is missing (looked in {package / 'resources'} and "
        f"{package.parent / 'resources'}): reinstall the package"
    )


def resource(*parts: str) -> Path:
    """A path inside the resources folder, e.g. ``resource("samples", "coffee.png")``."""
    return resources_dir().joinpath(*parts)
