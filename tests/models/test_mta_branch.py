"""MTA's branch: self-attention at every level, its initialisation, the edge head (tiny components)."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("diffusers")

from inpaint_studio.models.bundle import save_bundle  # noqa: E402
from inpaint_studio.models.diffusion.brushnet import BrushBranch  # noqa: E402
from inpaint_studio.models.diffusion.brushnet_hooks import inject_residuals  # noqa: E402
from inpaint_studio.models.diffusion.brushnet_import import BUNDLE_ENGINE, load_branch  # noqa: E402
from inpaint_studio.models.diffusion.mta_branch import attention_output_keys, init_mta_branch  # noqa: E402
from inpaint_studio.models.diffusion.mta_losses import edge_loss  # noqa: E402

TINY_UNET = dict(
    block_out_channels=(32, 64),
    layers_per_block=2,
    sample_size=16,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=32,
)
ATTN_KEY = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight"
RESNET_KEY = "down_blocks.0.resnets.1.conv1.weight"


@pytest.fixture(scope="module")
def unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(**TINY_UNET).eval()


@pytest.fixture(scope="module")
def brushnet(unet):
    """A 'trained' BrushNet: from_unet, then injections and one resnet moved away from the UNet."""
    branch = BrushBranch.from_unet(unet)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in branch.named_parameters():
            if "injection" in name or name == RESNET_KEY:
                p.add_(torch.randn(p.shape, generator=g) * 0.3)
    return branch.eval()


def _inputs(batch=2):
    g = torch.Generator().manual_seed(1)
    mask = (torch.rand(batch, 1, 8, 8, generator=g) > 0.5).float()
    return dict(
        noisy_latent=torch.randn(batch, 4, 8, 8, generator=g),
        timestep=torch.tensor([700, 40][:batch]),
        masked_image_latent=torch.randn(batch, 4, 8, 8, generator=g) * mask,
        mask_keep=mask,
    )


def test_every_level_attends_without_cross_attention(unet, brushnet):
    mta, _ = init_mta_branch(unet, brushnet)
    for block in [*mta.down_blocks, mta.mid_block, *mta.up_blocks]:
        assert len(block.attentions) == len(block.resnets) - (block is mta.mid_block)
    keys = mta.state_dict()
    blocks = [k for k in keys if ".transformer_blocks." in k]
    assert any(".attn1." in k for k in blocks)
    assert not any(".attn2." in k or ".norm2." in k for k in blocks)
    assert mta.edge_head is not None and mta.edge_head.out_channels == 1


def test_mta_starts_exactly_as_brushnet(unet, brushnet):
    """The decision of mta_branch.py: zero attention outputs make the new blocks exact identities."""
    mta, record = init_mta_branch(unet, brushnet)
    inputs = _inputs()
    with torch.no_grad():
        want = brushnet(**inputs).residuals.all()
        out = mta(**inputs)
    for a, b in zip(out.residuals.all(), want, strict=True):
        assert torch.equal(a, b)
    assert out.edge.shape == (2, 1, 8, 8) and not out.edge.any()
    assert record.zeroed and all(not mta.state_dict()[k].any() for k in record.zeroed)


def test_initialisation_sources(unet, brushnet):
    mta, record = init_mta_branch(unet, brushnet)
    ours, theirs = mta.state_dict(), unet.state_dict()
    assert torch.equal(ours[ATTN_KEY], theirs[ATTN_KEY])  # the UNet's self-attention
    ff = ATTN_KEY.replace("attn1.to_q", "ff.net.2")
    assert torch.equal(ours[ff], theirs[ff])  # and feed-forward
    assert ATTN_KEY in record.from_unet
    assert torch.equal(ours[RESNET_KEY], brushnet.state_dict()[RESNET_KEY])  # BrushNet wins over the UNet
    assert not torch.equal(ours[RESNET_KEY], theirs[RESNET_KEY])
    assert RESNET_KEY in record.from_brushnet
    # the UNet has no attention at level 0 of its down path: those blocks are new
    assert any(k.startswith("down_blocks.0.attentions.") for k in record.fresh)
    assert not set(record.from_brushnet) & set(record.from_unet)


def test_keeping_the_unet_projection_departs_from_brushnet(unet, brushnet):
    mta, record = init_mta_branch(unet, brushnet, zero_attention_output=False)
    assert not record.zeroed
    key = "down_blocks.1.attentions.0.proj_out.weight"
    assert torch.equal(mta.state_dict()[key], unet.state_dict()[key])
    inputs = _inputs()
    with torch.no_grad():
        diff = (mta(**inputs).residuals.mid - brushnet(**inputs).residuals.mid).abs().max()
    assert diff > 1e-3


def test_gradients_reach_attention_projection_and_edge_head(unet, brushnet):
    mta, _ = init_mta_branch(unet, brushnet)
    mta.train()
    out = mta(**_inputs())
    text = torch.randn(2, 5, 32)
    with inject_residuals(unet, out.residuals):
        eps = unet(_inputs()["noisy_latent"], _inputs()["timestep"], encoder_hidden_states=text).sample
    loss = eps.pow(2).mean() + edge_loss(out.edge, torch.rand_like(out.edge))
    loss.backward()
    params = dict(mta.named_parameters())
    assert params["edge_head.weight"].grad.abs().sum() > 0
    proj = "up_blocks.1.attentions.2.proj_out.weight"
    assert params[proj].grad.abs().sum() > 0  # zero at start, but it learns from step one
    assert all(p.grad is None for p in unet.parameters() if not p.requires_grad)


def test_export_round_trip(unet, brushnet, tmp_path):
    mta, _ = init_mta_branch(unet, brushnet)
    with torch.no_grad():
        for key in attention_output_keys(mta)[:2]:
            mta.state_dict()[key].normal_(0, 0.1)
        mta.edge_head.weight.normal_(0, 0.1)
    folder = save_bundle(tmp_path / "mta", BUNDLE_ENGINE, mta.config.to_dict(), mta.state_dict())
    json.loads((folder / "config.json").read_text())
    loaded = load_branch(folder)
    inputs = _inputs()
    with torch.no_grad():
        a, b = mta.eval()(**inputs), loaded(**inputs)
    assert torch.equal(a.edge, b.edge)
    assert all(torch.equal(x, y) for x, y in zip(a.residuals.all(), b.residuals.all(), strict=True))


def test_mta_over_the_public_brushnet_reproduces_its_golden(reference_dir):
    """From the fork's checkpoint file: the MTA branch at step 0 is BrushNet, to the golden tolerance."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    folder = reference_dir("brushnet")
    config = json.loads((folder / "config.json").read_text())
    unet = UNet2DConditionModel(**config["unet_config_constructor"])
    unet.load_state_dict(load_file(folder / "tiny_unet_weights.safetensors"))
    g = load_file(folder / "brushnet_golden.safetensors")
    mta, _ = init_mta_branch(unet.eval(), folder / "brushnet_weights.safetensors")
    with torch.no_grad():
        out = mta.eval()(g["noisy_latent"], g["timestep"], g["masked_image_latent"], g["mask_keep"])
        with inject_residuals(unet, out.residuals):
            sample = unet(
                g["noisy_latent"], g["timestep"], encoder_hidden_states=g["encoder_hidden_states"]
            ).sample
    assert torch.allclose(out.residuals.mid, g["brushnet_mid"], atol=1e-5, rtol=1e-5)
    assert torch.allclose(sample, g["unet_out_brushnet"], atol=1e-5, rtol=1e-5)
