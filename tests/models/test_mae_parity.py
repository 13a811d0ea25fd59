"""Our MAE against golden outputs of the official facebookresearch/mae code (../shared/reference/mae)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from inpaint_studio.models.mae.mae import MaskedAutoencoderViT

ATOL = 1e-5  # the reference README's suggested tolerance for latent / pred


@pytest.fixture(scope="module")
def golden(reference_dir):
    ref = reference_dir("mae")
    config = json.loads((ref / "config.json").read_text())
    model = MaskedAutoencoderViT(**config["config"]).eval()
    model.load_state_dict(load_file(str(ref / "mae_small_weights.safetensors")), strict=True)
    return model, load_file(str(ref / "mae_small_golden.safetensors")), config


def test_official_key_names_and_shapes(golden):
    model, _, config = golden
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == config["param_keys"]


def test_encoder_decoder_match_golden(golden):
    model, g, config = golden
    with torch.no_grad():
        latent, mask, ids_restore = model.forward_encoder(g["imgs"], config["mask_ratio"], g["noise"])
        pred = model.forward_decoder(latent, ids_restore)
    assert torch.equal(mask, g["mask"])
    assert torch.equal(ids_restore, g["ids_restore"])
    torch.testing.assert_close(latent, g["latent"], atol=ATOL, rtol=0)
    torch.testing.assert_close(pred, g["pred"], atol=ATOL, rtol=0)
    torch.testing.assert_close(model.unpatchify(pred), g["recon_unpatchified"], atol=ATOL, rtol=0)


def test_losses_and_paste_match_golden(golden):
    model, g, config = golden
    with torch.no_grad():
        loss, pred, mask = model(g["imgs"], config["mask_ratio"], g["noise"])
        model.norm_pix_loss = True
        try:
            loss_norm = model.forward_loss(g["imgs"], pred, mask)
        finally:
            model.norm_pix_loss = False
    torch.testing.assert_close(loss.reshape(1), g["loss"], atol=ATOL, rtol=0)
    torch.testing.assert_close(loss_norm.reshape(1), g["loss_norm_pix"], atol=ATOL, rtol=0)
    p = model.patch_size
    mask_image = model.unpatchify(mask.unsqueeze(-1).repeat(1, 1, p * p * 3))
    assert torch.equal(mask_image, g["mask_image"])
    paste = g["imgs"] * (1 - mask_image) + model.unpatchify(pred) * mask_image
    torch.testing.assert_close(paste, g["paste"], atol=ATOL, rtol=0)


def test_fixed_sincos_position_embeddings_are_reproduced(golden):
    model, _, config = golden
    fresh = MaskedAutoencoderViT(**config["config"])
    assert torch.equal(fresh.pos_embed, model.pos_embed)
    assert torch.equal(fresh.decoder_pos_embed, model.decoder_pos_embed)
    assert not fresh.pos_embed.requires_grad
