"""Packaging hook: the top-level ``resources/`` folder ships inside the wheel as ``inpaint_studio/resources``.

All metadata lives in pyproject.toml; this file only adds the copy, because setuptools' package data
cannot reach a folder outside the package. Editable installs and source checkouts read ``resources/`` in
place (``inpaint_studio.core.resources``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RESOURCES = Path(__file__).resolve().parent / "resources"


class BuildPyWithResources(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads resources/ where it is
        target = Path(self.build_lib) / "inpaint_studio" / "resources"
        shutil.copytree(RESOURCES, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))


setup(cmdclass={"build_py": BuildPyWithResources})
