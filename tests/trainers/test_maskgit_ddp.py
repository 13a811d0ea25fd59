"""Both MaskGIT stages as a real 2-process DistributedDataParallel job on the CPU (gloo).

Stage 1 runs its GAN from the first step, so the adaptive weight (``autograd.grad`` inside a DDP
forward), the critic's BatchNorm, the all-reduced EMA codebook and the broadcast code restarts all
go through DDP; stage 2 then trains the transformer on that tokenizer's export.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _photos(folder: Path, count: int = 10) -> Path:
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True)
    for i in range(count):
        yy, xx = np.mgrid[0:40, 0:40]
        img = np.stack([xx * 6, yy * 6, np.full((40, 40), int(rng.integers(256)))], -1).astype(np.uint8)
        y, x = rng.integers(0, 28, 2)
        img[y : y + 12, x : x + 12] = rng.integers(0, 256, 3)
        Image.fromarray(img).save(folder / f"p{i}.png")
    return folder


@pytest.mark.slow
def test_both_stages_keep_ranks_in_sync(tmp_path):
    photos = _photos(tmp_path / "photos")
    script = tmp_path / "ddp_job.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           str(script), str(photos), str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for stage in ("vq", "mg"):
        assert reports[0][stage]["seen"] != reports[1][stage]["seen"]  # each rank had its own share
        assert reports[0][stage]["weights"] == reports[1][stage]["weights"]  # ... yet they agree
        assert reports[0][stage]["validation"] == reports[1][stage]["validation"]
    assert reports[0]["vq"]["codebook"] == reports[1]["vq"]["codebook"]
    lines = (tmp_path / "vq" / "metrics.jsonl").read_text()
    assert '"G/adaptive_weight"' in lines and '"D/loss"' in lines and '"G/dead_codes"' in lines
    assert '"G/token_acc"' in (tmp_path / "mg" / "metrics.jsonl").read_text()
    assert (tmp_path / "mg" / "weights" / "transformer.safetensors").is_file()
    state = json.loads((tmp_path / "mg" / "checkpoints" / "step-0000003" / "state.json").read_text())
    assert state["world_size"] == 2


DDP_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, os, sys
    import torch
    from trainers.config import TrainConfig
    from trainers.loop import train
    from trainers.tasks.maskgit import MaskGitOptions, MaskGitTask
    from trainers.tasks.maskgit_vqgan import MaskGitVQGANTask, VQGANOptions

    data, root = sys.argv[1], sys.argv[2]
    # one process group for both stages: train() leaves a group it did not create alone
    torch.distributed.init_process_group("gloo")

    def recording(cls):
        class Recording(cls):
            seen, modules = [], {}

            def build_modules(self):
                self.modules.update(super().build_modules())
                return self.modules

            def prepare_batch(self, sample, step, rng):
                if step is not None:
                    self.seen.append(round(float(sample["image"].sum()), 3))
                return super().prepare_batch(sample, step, rng)

        return Recording

    def digest(modules):
        h = hashlib.sha256()
        # parameters, not BatchNorm statistics: DDP re-broadcasts those from rank 0 at each forward
        params = [(f"{m}.{k}", p) for m, net in modules.items() for k, p in net.named_parameters()]
        for name, p in sorted(params):
            h.update(name.encode() + p.detach().cpu().numpy().tobytes())
        return h.hexdigest()

    def config(out):
        return TrainConfig(data=(data,), out=os.path.join(root, out), resolution=32, batch_size=2, steps=3,
                           workers=0, val_fraction=0.25, checkpoint_every=100, sample_every=100, log_every=1,
                           export_to_store=False, lr=2e-3)

    report = {}
    VQ = recording(MaskGitVQGANTask)
    vq_options = VQGANOptions(ch=32, ch_mult=(1, 1, 2), z_channels=32, n_embed=32, embed_dim=8, d_width=16,
                              d_layers=1, gan_start=1)
    vq = train(VQ(vq_options, config("vq")), config("vq"), show_progress=False)
    codebook = VQ.modules["vqgan"].quantize.embedding.weight
    report["vq"] = {"seen": VQ.seen, "weights": digest(VQ.modules), "validation": vq.validation,
                    "codebook": hashlib.sha256(codebook.detach().numpy().tobytes()).hexdigest()}
    weights = os.path.join(root, "vq", "weights")  # rank 0 exported it before train() returned on any rank

    MG = recording(MaskGitTask)
    mg_options = MaskGitOptions(vqgan=weights, hidden_dim=32, depth=2, heads=2, mlp_dim=64, val_steps=2)
    mg = train(MG(mg_options, config("mg")), config("mg"), show_progress=False)
    report["mg"] = {"seen": MG.seen, "weights": digest(MG.modules), "validation": mg.validation}
    with open(os.path.join(root, f"rank{os.environ['RANK']}.json"), "w") as f:
        json.dump(report, f)
    torch.distributed.destroy_process_group()
    """
)
