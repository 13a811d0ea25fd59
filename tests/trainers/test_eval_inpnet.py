"""benchmarks/eval_inpnet.py runs both engines on identical images and masks and is reproducible."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from inpaint_studio.models.bundle import save_bundle
from inpaint_studio.models.mae.inpnet import InpNet, InpNetConfig

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "eval_inpnet.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("eval_inpnet", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_evaluation_is_reproducible_and_covers_every_kind(tmp_path, photo_dir, capsys):
    cfg = InpNetConfig(img_size=32, embed_dim=32, depth=1, num_heads=2, skip_layers=(1,), bridge_dim=32,
                       bridge_depth=0, bridge_heads=2, decoder_channels=(16, 8, 8), prefill="pullpush")  # fmt: skip
    torch.manual_seed(0)
    weights = save_bundle(tmp_path / "w", "inpnet", cfg.to_dict(), InpNet(**cfg.to_dict()).state_dict())
    script = _load_script()
    kinds = ("strokes", "box")
    first = script.evaluate(weights, [photo_dir], resolution=32, kinds=kinds, count=3)
    again = script.evaluate(weights, [photo_dir], resolution=32, kinds=kinds, count=3)
    assert first["kinds"] == again["kinds"] and first["images"] == 3
    for kind in kinds:
        entry = first["kinds"][kind]
        assert 0 < entry["hole_ratio"] < 1
        for engine in ("inpnet", "classical"):
            assert 0 < entry[engine]["psnr"] < 100 and -1 <= entry[engine]["ssim"] <= 1
    script.print_table(first)
    assert "classical PSNR" in capsys.readouterr().out
