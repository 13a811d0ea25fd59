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


def test_the_app_and_the_engine_list_import_no_diffusers_or_transformers():
    """diffusers costs about 5 s to import: it loads inside an SD engine's load, never at start."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import inpaint_studio.ui.main_window, inpaint_studio.cli\n"
        "from inpaint_studio.engines import registry\n"
        "[registry.describe(i) for i in registry.engine_ids()]\n"
        "heavy = sorted(m for m in ('diffusers', 'transformers', 'huggingface_hub') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "", f"imported at start: {out.stdout.strip()}"
