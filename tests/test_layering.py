"""The house's import rules (DESIGN.md), checked by import-linter and by the shared checker."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    proc = subprocess.run(
        [exe, "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shared_layer_checker_is_clean(shared_dir):
    checker = shared_dir / "tools" / "check_layers.py"
    if not checker.is_file():
        pytest.skip(f"{checker} is absent")
    proc = subprocess.run([sys.executable, str(checker)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
