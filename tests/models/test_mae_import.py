"""Official MAE .pth -> weights folder through the restricted unpickler, and back into a model."""

from __future__ import annotations

import pickle

import pytest
import torch

from inpaint_studio.models.mae.importer import import_mae, load_mae
from inpaint_studio.models.mae.mae import ARCHS, MaskedAutoencoderViT, arch_from_state_dict
from inpaint_studio.models.safe_pickle import UnsafeCheckpointError

SMALL = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=1, decoder_embed_dim=32)
SMALL.update(decoder_depth=1, decoder_num_heads=16)  # heads as the importer infers them (64-wide, 16)


def test_official_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = MaskedAutoencoderViT(**SMALL).eval()
    src = tmp_path / "mae_visualize_tiny.pth"
    torch.save({"model": model.state_dict(), "epoch": 3, "args": {"lr": 1.5e-4}}, src)
    folder = import_mae(src, tmp_path / "store" / "mae-tiny")
    loaded = load_mae(folder)
    x, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    with torch.no_grad():
        assert torch.equal(model(x, 0.75, noise)[1], loaded(x, 0.75, noise)[1])


def test_encoder_only_checkpoint_loads_non_strictly(tmp_path):
    model = MaskedAutoencoderViT(**SMALL)
    encoder = {k: v for k, v in model.state_dict().items() if not k.startswith(("decoder", "mask_token"))}
    encoder["head.weight"] = torch.zeros(10, 64)  # a fine-tuning head we do not use
    src = tmp_path / "mae_pretrain_tiny.pth"
    torch.save({"model": encoder}, src)
    loaded = load_mae(import_mae(src, tmp_path / "enc"))
    assert torch.equal(loaded.blocks[1].mlp.fc2.weight, model.blocks[1].mlp.fc2.weight)


def test_architecture_is_read_from_shapes():
    state = MaskedAutoencoderViT(**SMALL).state_dict()
    assert arch_from_state_dict(state) == {**SMALL, "in_chans": 3, "mlp_ratio": 4.0}


def test_factory_names_follow_the_official_archs(reference_dir):
    import json

    listing = json.loads((reference_dir("mae") / "mae_official_archs_keys.json").read_text())
    assert set(ARCHS) == set(listing)
    for name, entry in listing.items():
        with torch.device("meta"):
            model = MaskedAutoencoderViT.from_arch(name)
        ours = {k: list(v.shape) for k, v in model.state_dict().items()}
        assert ours == entry["keys"], name
        assert sum(p.numel() for p in model.parameters()) == entry["num_params"], name


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_malicious_checkpoint_is_refused(tmp_path):
    src = tmp_path / "evil.pth"
    src.write_bytes(pickle.dumps({"model": _Evil()}))
    with pytest.raises(UnsafeCheckpointError):
        import_mae(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
