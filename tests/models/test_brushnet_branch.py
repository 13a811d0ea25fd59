"""The brush branch and its hooks on tiny random components (no reference data needed)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from inpaint_studio.models.diffusion.brushnet import BranchConfig, BrushBranch  # noqa: E402
from inpaint_studio.models.diffusion.brushnet_hooks import (  # noqa: E402
    BranchResiduals,
    inject_residuals,
    injection_points,
)
from inpaint_studio.models.diffusion.brushnet_import import BrushNetImportError, branch_from_brushnet  # noqa: E402

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


@pytest.fixture(scope="module")
def unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(**TINY_UNET).eval()


def _inputs(batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(batch, 1, 8, 8, generator=g) > 0.5).float()
    return dict(
        noisy_latent=torch.randn(batch, 4, 8, 8, generator=g),
        timestep=torch.tensor([500, 20][:batch]),
        masked_image_latent=torch.randn(batch, 4, 8, 8, generator=g) * mask,
        mask_keep=mask,
    ), torch.randn(batch, 5, 32, generator=g)


def _randomise_injections(branch, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in branch.named_parameters():
            if "injection" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return branch


def _unet_out(unet, inputs, text, residuals=None):
    with torch.no_grad():
        if residuals is None:
            return unet(inputs["noisy_latent"], inputs["timestep"], encoder_hidden_states=text).sample
        with inject_residuals(unet, residuals):
            return unet(inputs["noisy_latent"], inputs["timestep"], encoder_hidden_states=text).sample


def test_points_follow_brushnets_rule(unet):
    points = injection_points(unet)
    assert (points.n_down, points.n_up) == (6, 7)  # 1 + 2 + 1 + 2 and 3 + 1 + 3
    assert points.first is unet.down_blocks[0]  # its input: conv_in's output, not the first skip
    assert points.down[2] is unet.down_blocks[0].downsamplers[0]  # residual down_03
    assert points.down[3] is unet.down_blocks[1].attentions[0]  # down_04: after the resnet+attention pair
    assert points.up[3] is unet.up_blocks[0].upsamplers[0]
    assert points.up[4] is unet.up_blocks[1].resnets[0]


def test_fresh_branch_leaves_the_unet_output_bit_identical(unet):
    inputs, text = _inputs()
    branch = BrushBranch.from_unet(unet).eval()
    with torch.no_grad():
        out = branch(**inputs)
    assert all(not r.any() for r in out.residuals.all())
    assert torch.equal(_unet_out(unet, inputs, text, out.residuals), _unet_out(unet, inputs, text))


def test_residuals_change_the_output_and_hooks_always_go(unet):
    inputs, text = _inputs()
    branch = _randomise_injections(BrushBranch.from_unet(unet)).eval()
    with torch.no_grad():
        residuals = branch(**inputs).residuals
    plain = _unet_out(unet, inputs, text)
    assert (_unet_out(unet, inputs, text, residuals) - plain).abs().max() > 1e-2
    with pytest.raises(RuntimeError, match="boom"), inject_residuals(unet, residuals):
        raise RuntimeError("boom")
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in unet.modules())
    assert torch.equal(_unet_out(unet, inputs, text), plain)


def test_conditioning_scale_guess_mode_and_text_independence(unet):
    inputs, _ = _inputs()
    branch = _randomise_injections(BrushBranch.from_unet(unet)).eval()
    with torch.no_grad():
        full = branch(**inputs).residuals.all()
        half = branch(**inputs, conditioning_scale=0.5).residuals.all()
        guess = branch(**inputs, guess_mode=True).residuals.all()
    scales = torch.logspace(-1, 0, len(full))
    for f, h, g, s in zip(full, half, guess, scales, strict=True):
        assert torch.allclose(h, f * 0.5)
        assert torch.allclose(g, f * s)


def test_batch_one_residuals_serve_a_guidance_batch(unet):
    inputs, text = _inputs(batch=1)
    branch = _randomise_injections(BrushBranch.from_unet(unet)).eval()
    with torch.no_grad():
        residuals = branch(**inputs).residuals
    doubled = {k: torch.cat([v, v]) for k, v in inputs.items()}
    both = torch.cat([text, torch.zeros_like(text)])
    broadcast = _unet_out(unet, doubled, both, residuals)
    expanded = BranchResiduals(
        tuple(torch.cat([r, r]) for r in residuals.down),
        torch.cat([residuals.mid, residuals.mid]),
        tuple(torch.cat([r, r]) for r in residuals.up),
    )
    assert torch.allclose(broadcast, _unet_out(unet, doubled, both, expanded), atol=1e-6)


def test_layout_mismatches_are_refused(unet):
    inputs, _ = _inputs()
    branch = BrushBranch.from_unet(unet).eval()
    residuals = branch(**inputs).residuals
    short = BranchResiduals(residuals.down[:-1], residuals.mid, residuals.up)
    with pytest.raises(ValueError, match="layouts differ"), inject_residuals(unet, short):
        pass
    with pytest.raises(ValueError, match="input channels"):
        branch(
            inputs["noisy_latent"], 10, inputs["masked_image_latent"], torch.cat([inputs["mask_keep"]] * 2, 1)
        )
    with pytest.raises(ValueError, match="SD-1.5-style"):
        BranchConfig.from_unet_config({**TINY_UNET, "addition_embed_type": "text_time"})
    with pytest.raises(ValueError, match="not an inpainting one"):
        BranchConfig.from_unet_config({**TINY_UNET, "in_channels": 9})
    with pytest.raises(ValueError, match="needs self_attention"):
        BranchConfig(edge_head=True)


def test_import_refuses_what_is_not_a_brushnet(tmp_path):
    from safetensors.torch import save_file

    bogus = tmp_path / "model.safetensors"
    save_file({"conv_in.weight": torch.zeros(4, 4, 3, 3)}, str(bogus))
    with pytest.raises(BrushNetImportError, match="not a BrushNet"):
        branch_from_brushnet(bogus)
    with pytest.raises(BrushNetImportError, match="does not exist"):
        branch_from_brushnet(tmp_path / "absent")
    empty = tmp_path / "folder"
    empty.mkdir()
    with pytest.raises(BrushNetImportError, match="not a BrushNet folder"):
        branch_from_brushnet(empty)


@pytest.mark.parametrize("where", ["unet", "branch"])
def test_gradient_checkpointing_gives_the_same_gradients(where):
    from diffusers import UNet2DConditionModel

    def grads(checkpointing):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(**TINY_UNET).requires_grad_(False)
        branch = _randomise_injections(BrushBranch.from_unet(unet))
        if checkpointing:
            (unet if where == "unet" else branch).enable_gradient_checkpointing()
        unet.train()
        inputs, text = _inputs()
        with inject_residuals(unet, branch(**inputs).residuals):
            eps = unet(inputs["noisy_latent"], inputs["timestep"], encoder_hidden_states=text).sample
        eps.pow(2).mean().backward()
        return [p.grad.clone() for p in branch.parameters()]

    for a, b in zip(grads(False), grads(True), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_condition_from_pixels_follows_brushnets_conventions():
    from diffusers import AutoencoderKL

    from inpaint_studio.models.diffusion.brushnet_condition import brush_condition, keep_mask, masked_image

    image = torch.rand(1, 3, 32, 32) * 2 - 1
    fill = torch.zeros(1, 1, 32, 32)
    fill[..., 12:18, 8:20] = 1.0  # rows 12..17: the bottom of latent cell row 1, the top of row 2
    painted = masked_image(image, fill)
    assert (painted[..., 12:18, 8:20] == -1).all() and torch.equal(painted[..., :12, :], image[..., :12, :])
    nearest, grown = keep_mask(fill, (4, 4)), keep_mask(fill, (4, 4), mode="max")
    assert nearest[0, 0, 1, 1] == 1 and nearest[0, 0, 2, 1] == 0  # nearest samples rows 8 and 16
    assert grown[0, 0, 1, 1] == 0 and grown[0, 0, 2, 1] == 0  # any hole pixel makes a hole cell
    assert (grown <= nearest).all() and nearest[0, 0, 0, 0] == 1 and grown[0, 0, 3, 3] == 1
    with pytest.raises(ValueError, match="mask mode"):
        keep_mask(fill, (4, 4), mode="area")

    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
    ).eval()
    with torch.no_grad():
        latent, keep = brush_condition(vae, image, fill, sample=False)
        want = vae.encode(painted).latent_dist.mode() * vae.config.scaling_factor
    assert torch.equal(latent, want) and keep.shape == (1, 1, 16, 16)


def test_sd15_layout_has_brushnets_12_1_15_points_and_fork_names():
    """At real SD-1.5 size (built on the meta device: shapes only, no memory)."""
    from diffusers import UNet2DConditionModel

    from inpaint_studio.models.diffusion.brushnet_import import our_key_to_fork

    with torch.device("meta"):
        unet = UNet2DConditionModel(cross_attention_dim=768)
        branch = BrushBranch(BranchConfig.from_unet_config(dict(unet.config)))
    for net in (unet, branch):
        points = injection_points(net)
        assert (points.n_down, points.n_up) == (12, 15)
    fork_names = {our_key_to_fork(k) for k in branch.state_dict()}
    assert {f"brushnet_down_blocks.{i}.weight" for i in range(12)} <= fork_names
    assert {f"brushnet_up_blocks.{i}.weight" for i in range(15)} <= fork_names
    assert "brushnet_mid_block.weight" in fork_names and "conv_in_condition.weight" in fork_names
    assert branch.conv_in.weight.shape == (320, 9, 3, 3)
    # our count at SD size (the key/shape map to the fork is checked exactly at tiny size)
    assert sum(p.numel() for p in branch.parameters()) == 618_830_080
