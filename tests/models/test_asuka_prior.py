"""Our ASUKA prior against golden outputs of the official MaskedAutoencoderViTFinetune (../shared/reference/asuka_prior)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from inpaint_studio.models.asuka.prior import RELEASE_ARCH, AsukaPrior, prepare_inputs

ATOL = 1e-5  # the reference README's suggested tolerance for the feature, pred and hidden states


def _small_prior(config: dict) -> AsukaPrior:
    c = config["small_config"]
    keys = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "decoder_embed_dim")
    keys += ("decoder_depth", "decoder_num_heads", "mlp_ratio")
    return AsukaPrior(**{k: c[k] for k in keys}, feature_layer=config["decoder_layer"])


@pytest.fixture(scope="module")
def golden(reference_dir):
    ref = reference_dir("asuka_prior")
    config = json.loads((ref / "config.json").read_text())
    model = _small_prior(config).eval()
    model.load_state_dict(load_file(str(ref / "asuka_prior_small_weights.safetensors")), strict=True)
    return model, load_file(str(ref / "asuka_prior_small_golden.safetensors")), config


def test_official_key_names_and_shapes(golden):
    model, _, config = golden
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == config["small_param_shapes"]
    assert sum(p.numel() for p in model.parameters()) == config["small_param_count"]


def test_release_layout_matches_the_released_key_listing(reference_dir):
    listing = json.loads(
        (reference_dir("asuka_prior") / "asuka_mae_vit_base_patch16_finetune_keys.json").read_text()
    )
    with torch.device("meta"):
        model = AsukaPrior(**RELEASE_ARCH)
    keys = listing["keys"]
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == keys
    assert sum(p.numel() for p in model.parameters()) == listing["n_params"]


def test_cell_masks_are_exact(golden):
    model, g, _ = golden
    fraction, touches, partial = model.cell_masks(g["mask"])
    torch.testing.assert_close(fraction, g["cell_hole_fraction"], atol=1e-7, rtol=0)
    assert torch.equal(touches.float(), g["token_mask"])
    assert torch.equal(partial.float(), g["partial_mask"])


def test_encoder_embedding_and_every_decoder_state_match(golden):
    model, g, _ = golden
    with torch.no_grad():
        _, touches, _ = model.cell_masks(g["mask"])
        torch.testing.assert_close(model.encode(g["imgs"], touches), g["encoder_out"], atol=ATOL, rtol=0)
        torch.testing.assert_close(
            model.image_embedding(g["imgs"], g["mask"]), g["img_embedding"], atol=ATOL, rtol=0
        )
        x = model.decoder_input(g["imgs"], g["mask"])
        for k in range(len(model.decoder_blocks) + 1):
            torch.testing.assert_close(
                x, g[f"decoder_hidden_{k}"], atol=ATOL, rtol=0, msg=f"decoder_hidden_{k}"
            )
            if k < len(model.decoder_blocks):
                x = model.decoder_blocks[k](x)


def test_feature_prediction_and_reconstruction_match(golden):
    model, g, _ = golden
    with torch.no_grad():
        torch.testing.assert_close(model(g["imgs"], g["mask"]), g["feature"], atol=ATOL, rtol=0)
        torch.testing.assert_close(model.predict(g["imgs"], g["mask"]), g["pred"], atol=ATOL, rtol=0)
        torch.testing.assert_close(
            model.reconstruct(g["imgs"], g["mask"]), g["recon_image"], atol=ATOL, rtol=0
        )


def test_alpha_is_clamped(golden):
    model, g, _ = golden
    alpha = model.alpha.detach().clone()
    try:
        model.alpha.data.fill_(-0.25)
        with torch.no_grad():
            out = model(g["imgs"], g["mask"])
    finally:
        model.alpha.data.copy_(alpha)
    torch.testing.assert_close(out, g["feature_alpha_neg"], atol=ATOL, rtol=0)


def test_official_preprocessing(golden):
    _, g, _ = golden
    for i in range(2):
        imgs, mask = prepare_inputs(g["image_uint8"][i].numpy(), g["mask"][i, 0].numpy(), size=64)
        torch.testing.assert_close(imgs[0], g["imgs"][i], atol=1e-6, rtol=0)
        assert torch.equal(mask[0], g["mask"][i])


def test_hole_pixels_never_matter_and_blind_samples_get_zeros():
    torch.manual_seed(0)
    model = AsukaPrior(img_size=32, patch_size=4, embed_dim=32, depth=1, num_heads=2, decoder_embed_dim=16,
                       decoder_depth=2, decoder_num_heads=2, feature_layer=1).eval()  # fmt: skip
    imgs = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 5:19, 9:30] = 1.0
    mask[1] = 1.0  # every patch touches the hole
    noisy = imgs + torch.randn_like(imgs) * mask
    with torch.no_grad():
        a, b = model(imgs, mask), model(noisy, mask)
        alone = model(imgs[:1], mask[:1])
    torch.testing.assert_close(a[0], b[0], atol=1e-6, rtol=0)
    assert torch.equal(a[1], torch.zeros_like(a[1])) and not torch.isnan(a).any()
    torch.testing.assert_close(a[:1], alone, atol=1e-6, rtol=0)


def test_reconstruction_loss_counts_hole_pixels_only():
    torch.manual_seed(0)
    model = AsukaPrior(img_size=16, patch_size=4, embed_dim=16, depth=1, num_heads=2, decoder_embed_dim=16,
                       decoder_depth=1, decoder_num_heads=2, feature_layer=1)  # fmt: skip
    imgs = torch.randn(1, 3, 16, 16)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 2:9, 3:12] = 1
    pred = model.unpatchify(model.predict(imgs, mask))
    expected = (((pred - imgs) ** 2) * mask).sum() / (3 * mask.sum())
    torch.testing.assert_close(model.reconstruction_loss(imgs, mask), expected)
    model.reconstruction_loss(imgs, mask).backward()
    assert model.alpha.grad is not None and model.decoder_patch_embed.proj.weight.grad is not None


def test_prepare_inputs_resizes_to_the_native_size():
    image = np.random.default_rng(0).integers(0, 256, (100, 80, 3), dtype=np.uint8)
    mask = np.zeros((100, 80), np.uint8)
    mask[30:60, 20:50] = 255
    imgs, m = prepare_inputs(image, mask)
    assert imgs.shape == (1, 3, 256, 256) and m.shape == (1, 1, 256, 256)
    assert set(torch.unique(m).tolist()) == {0.0, 1.0}
    assert torch.all(imgs[m.expand(-1, 3, -1, -1) > 0.5] == 0)
