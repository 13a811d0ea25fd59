"""A real 2-process DistributedDataParallel job on the CPU (gloo), started with torchrun.

It trains the GAN variant so that all three phases (generator, critic, lazy R1 with its double
backward) go through DDP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_job_keeps_ranks_in_sync(tmp_path, make_photos):
    make_photos(tmp_path / "photos", 10)
    script = tmp_path / "ddp_job.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           str(script), str(tmp_path / "photos"), str(tmp_path / "run")]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads((tmp_path / "run" / f"rank{r}.json").read_text()) for r in (0, 1)]
    # each rank trained on its own share of the data ...
    assert reports[0]["seen"] != reports[1]["seen"]
    # ... yet gradients were averaged, so both hold the same weights
    assert reports[0]["weights"] == reports[1]["weights"]
    assert reports[0]["world_size"] == reports[1]["world_size"] == 2
    # only rank 0 saved and exported
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-0000003" / "state.json").read_text())
    assert state["world_size"] == 2
    assert (tmp_path / "run" / "weights" / "model.safetensors").is_file()
    assert reports[0]["validation"] == reports[1]["validation"] and "hole_psnr" in reports[0]["validation"]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert '"Dreg/r1"' in lines and '"D/loss"' in lines


DDP_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, os, sys
    import torch
    from trainers.config import TrainConfig
    from trainers.loop import train
    from trainers.tasks.inpnet import InpNetOptions, InpNetTask

    data, out = sys.argv[1], sys.argv[2]
    seen, modules = [], {}

    class Recording(InpNetTask):
        def build_modules(self):
            modules.update(super().build_modules())
            return modules

        def prepare_batch(self, sample, step, rng):
            if step is not None:
                seen.append(round(float(sample["image"].sum()), 3))
            return super().prepare_batch(sample, step, rng)

    config = TrainConfig(data=(data,), out=out, resolution=32, batch_size=2, steps=3, workers=0,
                         val_fraction=0.25, checkpoint_every=100, sample_every=100, log_every=1,
                         export_to_store=False, lr=3e-3)
    options = InpNetOptions(embed_dim=32, depth=2, num_heads=2, skip_layers=(2, 1), bridge_dim=32,
                            bridge_depth=1, decoder_channels=(16, 16, 8), variant="dynamic-skip-gan",
                            r1_interval=2)
    result = train(Recording(options, config), config, show_progress=False)
    digest = hashlib.sha256()
    # parameters, not BatchNorm statistics: DDP re-broadcasts those from rank 0 at each forward
    params = [(f"{m}.{k}", p) for m, net in modules.items() for k, p in net.named_parameters()]
    for name, p in sorted(params):
        digest.update(name.encode() + p.detach().cpu().numpy().tobytes())
    report = {"seen": seen, "weights": digest.hexdigest(), "validation": result.validation,
              "world_size": int(os.environ["WORLD_SIZE"])}
    with open(os.path.join(out, f"rank{os.environ['RANK']}.json"), "w") as f:
        json.dump(report, f)
    """
)
