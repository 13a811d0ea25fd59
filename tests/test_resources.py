"""The shipped resources are found from a source checkout and from an installed wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inpaint_studio.core.resources import resource, resources_dir

REPO = Path(__file__).resolve().parents[1]


def test_source_checkout_reads_the_top_level_folder():
    assert resources_dir() == REPO / "resources"
    assert resource("samples", "coffee.png").is_file()
    unet = json.loads(resource("sd15", "unet", "config.json").read_text())
    base = json.loads(resource("sd15", "unet_base", "config.json").read_text())
    assert (unet["in_channels"], base["in_channels"]) == (9, 4)
    assert {k: v for k, v in unet.items() if k != "in_channels"} == {
        k: v for k, v in base.items() if k != "in_channels"
    }


@pytest.mark.slow
def test_a_wheel_install_carries_the_resources(tmp_path):
    """Build the wheel offline, install it into a folder, and import it from elsewhere."""
    pytest.importorskip("setuptools")
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if build.returncode != 0:
        pytest.skip(f"pip cannot build a wheel here: {build.stderr.strip().splitlines()[-1:]}")
    wheel = next(wheels.glob("*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    code = (
        "import inpaint_studio; from inpaint_studio.core.resources import resource; "
        "print(inpaint_studio.__file__); print(resource('samples', 'coffee.png')); "
        "print(resource('sd15', 'tokenizer', 'vocab.json').stat().st_size)"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert out[0].startswith(str(target)) and out[1].startswith(str(target / "inpaint_studio" / "resources"))
    assert int(out[2]) > 900_000
