"""InP-Net architecture: visible-only encoding, per-sample drop counts, skips, sizes, config checks."""

from __future__ import annotations

import pytest
import torch

from inpaint_studio.models.mae.inpnet import InpNet, InpNetConfig, patch_drop

TINY = InpNetConfig(
    img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, skip_layers=(2, 1), bridge_dim=32,
    bridge_depth=1, bridge_heads=2, decoder_channels=(16, 16, 8),
)  # fmt: skip


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return InpNet(**TINY.to_dict()).eval()


def _inputs(n=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    mask = (torch.rand(n, 1, size, size, generator=g) > 0.6).float()
    return image, mask


def test_output_is_a_full_image(model):
    image, mask = _inputs()
    out = model(image, mask)
    assert out.shape == image.shape and torch.isfinite(out).all()


def test_each_sample_sees_only_its_own_visible_patches(model):
    """Different drop counts in one batch (padding + key masks) give the same result as one by one."""
    image, mask = _inputs(3)
    drop = torch.zeros(3, 16, dtype=torch.bool)
    drop[0, :3] = True
    drop[1, 5:15] = True  # sample 2 drops nothing: restoration mode
    with torch.no_grad():
        batched = model(image, mask, drop)
        single = torch.cat([model(image[i : i + 1], mask[i : i + 1], drop[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=2e-5, rtol=0)


def test_hole_pixels_never_reach_the_output(model):
    """Whatever the hole held (the object being removed) must not leak into the fill."""
    image, _ = _inputs(1)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:16, 8:16] = 1  # exactly patch (row 1, col 1): dropped
    mask[..., 20:22, 0:3] = 1  # a sliver inside a patch that stays visible
    other = image.clone()
    other[..., 8:16, 8:16] = torch.rand(1, 3, 8, 8)
    other[..., 20:22, 0:3] = torch.rand(1, 3, 2, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(image, mask, threshold=0.25), model(other, mask, threshold=0.25))
        assert not torch.allclose(model(image, mask), model(other, torch.zeros_like(mask)))


def test_everything_dropped_still_runs(model):
    image, _ = _inputs(2)
    mask = torch.ones(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.isfinite(model(image, mask)).all()


def test_patch_drop_threshold():
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :2, :8] = 1  # 25 % of patch 0
    mask[..., 8:16, 8:16] = 1  # all of patch 3
    assert patch_drop(mask, 8, 0.0).tolist() == [[True, False, False, True]]
    assert patch_drop(mask, 8, 0.25).tolist() == [[False, False, False, True]]


def test_other_sizes_resize_position_embeddings(model):
    image = torch.rand(1, 3, 24, 40) * 2 - 1
    with torch.no_grad():
        assert model(image, torch.zeros(1, 1, 24, 40)).shape == (1, 3, 24, 40)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        model(torch.rand(1, 3, 30, 32), torch.zeros(1, 1, 30, 32))


def test_gradients_reach_encoder_bridge_and_decoder():
    torch.manual_seed(0)
    net = InpNet(**TINY.to_dict())
    image, mask = _inputs(2)
    net(image, mask, threshold=0.3).square().mean().backward()
    for name in ("patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "mask_token", "bridge.0.mlp.fc1.weight",
                 "stages.0.skip.weight", "stages.2.up.weight", "image_fuse.weight", "head.weight"):  # fmt: skip
        grad = dict(net.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_without_skips_the_decoder_has_no_skip_layers():
    net = InpNet(**{**TINY.to_dict(), "skip_layers": [], "image_skip": False})
    assert net.image_fuse is None and all(s.skip is None for s in net.stages)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"patch_size": 6}, "power of two"),
        ({"img_size": 36}, "multiple"),
        ({"decoder_channels": (16, 16)}, "needs 3 entries"),
        ({"skip_layers": (3,)}, "outside"),
        ({"num_heads": 5}, "divisible"),
    ],
)
def test_config_rejects_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        InpNetConfig.from_dict({**TINY.to_dict(), **bad})


def test_config_round_trips_through_json_dict():
    assert InpNetConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError, match="unknown"):
        InpNetConfig.from_dict({**TINY.to_dict(), "colour": 1})


def test_image_pyramid_starts_as_a_no_op_so_older_weights_keep_working(model):
    grown = InpNet(**{**TINY.to_dict(), "image_pyramid": True}).eval()
    result = grown.load_state_dict(model.state_dict(), strict=False)
    assert sorted(result.missing_keys) == [
        f"stages.{i}.image.{p}" for i in (0, 1) for p in ("bias", "weight")
    ]
    image, mask = _inputs(2)
    with torch.no_grad():
        torch.testing.assert_close(grown(image, mask), model(image, mask), atol=0, rtol=0)


def test_pull_push_prefill_keeps_known_pixels_and_fills_holes_smoothly():
    from inpaint_studio.models.mae.inpnet import pull_push_fill

    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    image = (xx / 31)[None, None].repeat(1, 3, 1, 1)  # a horizontal ramp
    hole = torch.zeros(1, 1, 32, 32)
    hole[..., 10:20, 12:14] = 1  # a thin vertical stroke
    filled = pull_push_fill(image, hole)
    assert torch.equal(filled[hole.expand_as(filled) == 0], image[hole.expand_as(image) == 0])
    assert (filled - image).abs().max() < 0.08  # the ramp is continued across the stroke
    assert torch.isfinite(pull_push_fill(image, torch.ones_like(hole))).all()  # nothing known: no NaN
    net = InpNet(**{**TINY.to_dict(), "prefill": "pullpush"}).eval()
    other = image.clone()
    other[..., 10:20, 12:14] = 5.0
    with torch.no_grad():  # what the hole held still cannot leak in
        torch.testing.assert_close(net(image * 2 - 1, hole), net(other * 2 - 1, hole))


def test_residual_head_starts_as_the_prefill_and_takes_weights_from_a_direct_model(model):
    from inpaint_studio.models.mae.inpnet import pull_push_fill

    arch = {**TINY.to_dict(), "prefill": "pullpush", "residual": True}
    net = InpNet(**arch).eval()
    result = net.load_state_dict(model.state_dict(), strict=False)  # what --init-from does
    assert sorted(result.missing_keys) == ["residual_head.bias", "residual_head.weight"]
    assert sorted(result.unexpected_keys) == ["head.bias", "head.weight"]
    image, mask = _inputs(2)
    with torch.no_grad():
        torch.testing.assert_close(net(image, mask), pull_push_fill(image, mask), atol=0, rtol=0)
    net.train()
    loss = net(image, mask).square().mean()
    loss.backward()
    assert net.residual_head.weight.grad.abs().sum() > 0
