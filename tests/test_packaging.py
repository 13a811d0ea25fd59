"""The desktop bundle's entry script runs as PyInstaller runs it (a plain script, not a module of
the package), and the desktop entry and AppStream metadata validate."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGING = REPO / "packaging"


def _spec_entry_script() -> Path:
    """The first script of the spec's Analysis([...]) call, resolved the way the spec does."""
    tree = ast.parse((PACKAGING / "inpaint-studio.spec").read_text(encoding="utf-8"))
    call = next(
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Analysis"
    )
    first = call.args[0].elts[0]
    parts = [a for a in ast.walk(first) if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return REPO.joinpath(*(a.value for a in sorted(parts, key=lambda a: a.col_offset)))


def test_the_bundle_entry_script_runs_as_a_top_level_script(tmp_path):
    entry = _spec_entry_script()
    assert entry.is_file(), entry
    # run from elsewhere with the repo on the path, as the frozen bundle runs it: no package context
    out = subprocess.run(
        [sys.executable, str(entry), "--version"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("inpaint-studio ")


@pytest.mark.parametrize(
    ("tool", "args", "name"),
    [
        ("desktop-file-validate", [], "io.github.inpaint_studio.desktop"),
        ("appstreamcli", ["validate", "--no-net"], "io.github.inpaint_studio.metainfo.xml"),
    ],
)
def test_desktop_metadata_validates(tool, args, name):
    exe = shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} is not installed")
    out = subprocess.run([exe, *args, str(PACKAGING / name)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
