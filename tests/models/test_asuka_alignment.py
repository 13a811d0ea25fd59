"""The ASUKA alignment module: shapes, the released layout, and the UNet taking its 256 tokens."""

from __future__ import annotations

import json

import pytest
import torch

from inpaint_studio.models.asuka.alignment import AlignmentModule
from inpaint_studio.models.asuka.importer import load_part, save_part
from inpaint_studio.models.asuka.prior import AsukaPrior
from inpaint_studio.models.bundle import BundleError


def test_alignment_at_sd_size_matches_the_released_clip_listing(reference_dir):
    listing = json.loads((reference_dir("asuka") / "asuka_flux_keys.json").read_text())
    modules = next(v for k, v in listing.items() if k.startswith("alignment_modules"))
    clip = next(v for k, v in modules.items() if "clip" in k)
    with torch.device("meta"):
        model = (
            AlignmentModule()
        )  # Linear(512 -> 768), 4 blocks, LayerNorm: encoder_hidden_states N x 256 x 768
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    for key, shape in clip["keys"].items():  # block 1 stands for all four in the listing
        if "modulation" in key:
            continue
        head, _, rest = key.partition(".")
        name = {"0": f"proj.{rest}", "5": f"norm.{rest}"}.get(head, f"blocks.{int(head) - 1}.{rest}")
        assert ours[name] == shape, key
    modulation = 4 * (3 * 768 * 768 + 3 * 768)
    assert sum(p.numel() for p in model.parameters()) == clip["num_params"] - modulation


def test_alignment_shapes_and_round_trip(tmp_path):
    torch.manual_seed(0)
    model = AlignmentModule(prior_dim=32, cond_dim=64, depth=2, head_dim=16).eval()
    x = torch.randn(3, 256, 32)
    out = model(x)
    assert out.shape == (3, 256, 64) and torch.isfinite(out).all()
    again = load_part(save_part(model, tmp_path / "a"), engine="asuka-align")
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    with pytest.raises(BundleError, match="not 'asuka-prior'"):
        load_part(tmp_path / "a", engine="asuka-prior")


def test_prior_tokens_condition_a_unet_in_place_of_text():
    """prior (N x 256 x D) -> alignment (N x 256 x cross_attention_dim) -> a tiny SD-style inpainting UNet."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    prior = AsukaPrior(img_size=32, patch_size=2, embed_dim=32, depth=1, num_heads=2, decoder_embed_dim=16,
                       decoder_depth=2, decoder_num_heads=2, feature_layer=1).eval()  # fmt: skip
    align = AlignmentModule(prior_dim=16, cond_dim=32, depth=1, head_dim=16).eval()
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=9, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=32,
    ).eval()  # fmt: skip
    imgs, mask = torch.randn(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:20, 4:30] = 1
    with torch.no_grad():
        cond = align(prior(imgs, mask))
        sample = torch.randn(2, 9, 8, 8)
        out = unet(sample, 500, encoder_hidden_states=cond).sample
        other = unet(sample, 500, encoder_hidden_states=torch.zeros_like(cond)).sample
    assert cond.shape == (2, 256, 32) and out.shape == (2, 4, 8, 8)
    assert not torch.allclose(out, other)  # the condition reaches the UNet
