"""Shared test set-up: headless Qt, an isolated user-data dir, the ../shared golden/photo data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("INPAINT_STUDIO_SHARED", REPO.parent / "shared"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own model store / settings / autosave folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("INPAINT_STUDIO_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (golden reference data and photos); skips the test when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: shared reference data and photos are not available here")
    return SHARED


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path):
    """``reference_dir("mat")`` -> ../shared/reference/mat, skipping when that folder is missing."""

    def get(name: str) -> Path:
        path = shared_dir / "reference" / name
        if not path.is_dir():
            pytest.skip(f"{path} is absent: golden data for {name} not available")
        return path

    return get


@pytest.fixture(scope="session")
def photos_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data"
    if not path.is_dir():
        pytest.skip(f"{path} is absent: real photos not available")
    return path
