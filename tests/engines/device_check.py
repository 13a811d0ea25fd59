"""One check shared by every model engine's tests: a device that cannot be used is one line, exit 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inpaint_studio.cli import main
from inpaint_studio.core.imageio import save_image


def assert_cuda_is_one_line_exit_1(engine_id: str, weights: Path, tmp_path: Path, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot be shown here")
    image = np.full((40, 48, 3), 120, np.uint8)
    mask = np.zeros((40, 48), np.uint8)
    mask[10:25, 12:30] = 255
    save_image(tmp_path / "in.png", image)
    save_image(tmp_path / "mask.png", mask)
    argv = [
        "fill",
        str(tmp_path / "in.png"),
        "--mask",
        str(tmp_path / "mask.png"),
        "-o",
        str(tmp_path / "o.png"),
    ]
    code = main([*argv, "--engine", engine_id, "--weights", str(weights), "--device", "cuda", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert len(err.splitlines()) == 1 and "CUDA" in err and "Traceback" not in err, err
    assert not (tmp_path / "o.png").exists()
