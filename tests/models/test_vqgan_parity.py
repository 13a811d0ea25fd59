"""VQGAN golden tests against taming-transformers outputs in ../shared/reference/vqgan."""

from __future__ import annotations

import json

import pytest
import torch

from inpaint_studio.models.vqgan import VQGAN, VQGANConfig
from inpaint_studio.models.vqgan.importer import TamingImportError, infer_config, read_taming_checkpoint


@pytest.fixture(scope="module")
def golden(reference_dir):
    from safetensors.torch import load_file

    ref = reference_dir("vqgan")
    cfg = json.loads((ref / "config.json").read_text())
    config = VQGANConfig.from_taming(cfg["ddconfig"], cfg["n_embed"], cfg["embed_dim"], beta=cfg["beta"])
    weights = load_file(str(ref / "vqgan_small_weights.safetensors"))
    model = VQGAN(config).eval()
    model.load_state_dict(weights, strict=True)
    return {
        "ref": ref,
        "config": config,
        "weights": weights,
        "model": model,
        "tensors": load_file(str(ref / "vqgan_small_golden.safetensors")),
    }


def test_encoder_and_quantizer_match(golden):
    g, model = golden["tensors"], golden["model"]
    with torch.no_grad():
        enc = model.encoder(g["input"])
        quant = model.encode(g["input"])
    torch.testing.assert_close(enc, g["encoder_out"], atol=1e-5, rtol=1e-5)
    assert torch.equal(quant.indices, g["indices"]), "code indices must match exactly"
    torch.testing.assert_close(quant.z_q, g["z_q"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(quant.loss.reshape(1), g["emb_loss"], atol=1e-6, rtol=1e-5)
    assert int(quant.used_codes) == len(torch.unique(g["indices"])) == 40


def test_decoded_within_tolerance(golden):
    g, model = golden["tensors"], golden["model"]
    with torch.no_grad():
        decoded = model(g["input"]).reconstruction
        from_indices = model.decode_indices(g["indices"])
    torch.testing.assert_close(decoded, g["decoded"], atol=1e-4, rtol=0)
    torch.testing.assert_close(from_indices, g["decoded_from_indices"], atol=1e-4, rtol=0)


def test_config_inferred_from_shapes(golden):
    assert infer_config(golden["weights"], resolution=64) == golden["config"]


def test_public_f16_key_layout(golden):
    """The public ImageNet f16/1024 model: same 343 keys and shapes, same parameter count."""
    info = json.loads((golden["ref"] / "vqgan_imagenet_f16_1024_keys.json").read_text())
    config = VQGANConfig.from_taming(info["ddconfig"], info["n_embed"], info["embed_dim"])
    with torch.device("meta"):
        model = VQGAN(config)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == info["keys"]
    assert sum(p.numel() for p in model.parameters()) == info["num_params"]
    fake = {k: torch.empty(v, device="meta") for k, v in info["keys"].items()}
    assert infer_config(fake) == config


def test_lightning_checkpoint_import(golden, tmp_path):
    """A Lightning-style .ckpt (state_dict + loss.* + trainer state) imports to the same model."""
    g = golden["tensors"]
    state = dict(golden["weights"])
    state["loss.discriminator.main.0.weight"] = torch.zeros(64, 3, 4, 4)
    state["loss.perceptual_loss.net.slice1.0.weight"] = torch.zeros(64, 3, 3, 3)
    path = tmp_path / "last.ckpt"
    torch.save({"epoch": 7, "global_step": 1000, "state_dict": state, "optimizer_states": [{}]}, path)
    (tmp_path / "model.yaml").write_text("model:\n  params:\n    ddconfig:\n      resolution: 64\n")
    config, tensors = read_taming_checkpoint(path)
    assert config == golden["config"]
    assert not any(k.startswith("loss.") for k in tensors)
    model = VQGAN(config).eval()
    model.load_state_dict(tensors, strict=True)
    with torch.no_grad():
        assert torch.equal(model.encode_indices(g["input"]), g["indices"])


def test_import_rejects_other_files(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"model.diffusion.weight": torch.zeros(2)}}, path)
    with pytest.raises(TamingImportError):
        read_taming_checkpoint(path)
