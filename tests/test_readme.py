"""The README's test command is exactly what CI runs."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _command_lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip().startswith("python3 -m venv")}


def test_ci_runs_the_readme_test_command():
    readme = _command_lines((REPO / "README.md").read_text(encoding="utf-8"))
    ci = _command_lines((REPO / ".ci" / "run").read_text(encoding="utf-8"))
    assert len(ci) == 1 and ci <= readme
    assert any("pytest" in c for c in ci)
