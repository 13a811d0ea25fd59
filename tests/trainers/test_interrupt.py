"""Ctrl+C during `inpaint-studio-train` finishes the step, saves a checkpoint and exports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from trainers import cli

REPO = Path(__file__).resolve().parents[2]


def test_ctrl_c_saves_a_checkpoint_then_resume_picks_it_up(tmp_path, photo_dir, capsys):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "trainers", "inpnet", "--data", str(photo_dir), "--out", str(run),
           "--resolution", "32", "--steps", "100000", "--batch-size", "2", "--workers", "1", "--log-every", "1",
           "--val-fraction", "0", "--no-export-to-store", "--embed-dim", "32", "--depth", "1", "--num-heads", "2",
           "--skip-layers", "1", "--bridge-depth", "0", "--decoder-channels", "8,8,8"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (run / "metrics.jsonl").is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "stopped at step" in err
    checkpoints = sorted((run / "checkpoints").glob("step-*"))
    assert checkpoints and (checkpoints[-1] / "weights.safetensors").is_file()
    assert (run / "weights" / "model.safetensors").is_file()
    step = int(checkpoints[-1].name.split("-")[1])
    assert step >= 1
    # the resume runs in this process (one torch start-up less); it reads every option from the run
    assert cli.main(["inpnet", "--resume", str(run), "--steps", str(step + 1), "--workers", "0"]) == 0
    assert f"at step {step}" in capsys.readouterr().err
