"""Quantizer training behaviour (EMA, restarts, usage stats) and the code atlas.

The VQGAN critic and GAN losses are training code: tests/trainers/test_losses.py."""

from __future__ import annotations

import math

import pytest
import torch

from inpaint_studio.models.vqgan import VQGAN, VectorQuantizer, VQGANConfig
from inpaint_studio.models.vqgan.atlas import CodeAtlas

TINY = dict(
    ch=32,
    ch_mult=(1, 2),
    num_res_blocks=1,
    attn_resolutions=(8,),
    z_channels=32,
    embed_dim=16,
    n_embed=32,
    resolution=16,
)


def test_config_validation():
    with pytest.raises(ValueError, match="multiple of 32"):
        VQGANConfig(ch=48)
    with pytest.raises(ValueError, match="ema_decay"):
        VQGANConfig(ema_decay=1.0)
    assert VQGANConfig().factor == 16 and VQGANConfig().grid_size == 16
    cfg = VQGANConfig(**TINY)
    assert VQGANConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        VQGANConfig.from_dict({**cfg.to_dict(), "chh": 3})
    relabelled = cfg.with_resolution(64)  # attention must stay at the same level
    assert relabelled.attn_resolutions == (32,) and relabelled.grid_size == 32
    assert VQGAN(relabelled).state_dict().keys() == VQGAN(cfg).state_dict().keys()


def test_straight_through_and_loss_value():
    torch.manual_seed(0)
    q = VectorQuantizer(16, 4, beta=0.25)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = q(z)
    mse = torch.mean((out.z_q.detach() - z.detach()) ** 2)
    assert math.isclose(
        out.loss.detach().item(), 1.25 * float(mse), rel_tol=1e-5
    )  # (1 + beta) * mse in value
    out.z_q.sum().backward()
    torch.testing.assert_close(z.grad, torch.ones_like(z))  # identity gradient to the encoder
    assert out.indices.shape == (2, 3, 3)
    assert 1.0 <= float(out.perplexity) <= 16.0


def test_perplexity_and_used_codes():
    q = VectorQuantizer(4, 2)
    with torch.no_grad():
        q.embedding.weight.copy_(torch.tensor([[0.0, 0], [10, 0], [0, 10], [10, 10]]))
    z = torch.tensor([[0.0, 0], [10, 0], [0, 10], [10, 10]]).t().reshape(1, 2, 2, 2)
    out = q(z)
    assert out.indices.flatten().tolist() == [0, 1, 2, 3]
    assert int(out.used_codes) == 4
    assert math.isclose(float(out.perplexity), 4.0, rel_tol=1e-4)


def test_ema_moves_codes_toward_assigned_latents():
    torch.manual_seed(0)
    q = VectorQuantizer(8, 2, ema_decay=0.5).train()
    assert not q.embedding.weight.requires_grad
    target = torch.tensor([3.0, -2.0])
    z = target.view(1, 2, 1, 1).expand(1, 2, 4, 4).contiguous()
    for _ in range(30):
        out = q(z)
    code = int(out.indices[0, 0, 0])
    torch.testing.assert_close(q.embedding.weight[code], target, atol=1e-3, rtol=0)
    assert "ema_cluster_size" in q.state_dict()


def test_dead_codes_are_restarted_from_batch():
    torch.manual_seed(0)
    q = VectorQuantizer(16, 2, restart_threshold=0.5).train()
    z = torch.randn(4, 2, 4, 4) + 5.0  # far from the tiny initial codebook: one code wins everything
    assert q.dead_codes() == 0
    for _ in range(100):
        q(z)
    # every losing code decayed below the threshold and was re-seeded with a batch latent; the one
    # winner (no gradient or EMA here) keeps its tiny initial value
    assert int((q.embedding.weight.norm(dim=1) > 1.0).sum()) == 15
    used_after = int(q(z).used_codes)
    assert used_after > 4


def test_dead_code_statistic_without_restarts():
    q = VectorQuantizer(16, 2).train()
    z = torch.randn(1, 2, 4, 4) + 5.0
    for _ in range(500):
        q(z)
    assert q.dead_codes() >= 14  # one or two codes take everything; the rest fall under 0.01/step


def test_model_roundtrip_shapes_and_bad_input():
    model = VQGAN(VQGANConfig(**TINY)).eval()
    x = torch.rand(2, 3, 16, 24) * 2 - 1
    with torch.no_grad():
        out = model(x)
    assert out.reconstruction.shape == x.shape
    assert out.quant.indices.shape == (2, 8, 12)
    with pytest.raises(ValueError, match="multiples of 2"):
        model.encode(torch.zeros(1, 3, 15, 16))
    with pytest.raises(ValueError, match="code ids"):
        model.decode_indices(torch.full((1, 2, 2), 32))


def test_atlas_matches_single_token_decodes():
    torch.manual_seed(0)
    model = VQGAN(VQGANConfig(**TINY)).eval()
    atlas = CodeAtlas(model)
    grid = torch.tensor([[[3, 5], [5, 7]]])
    img = atlas.render(grid)
    assert img.shape == (1, 3, 4, 4) and atlas.filled == 3
    with torch.no_grad():
        alone = model.decode_indices(torch.tensor([[[5]]]))
    torch.testing.assert_close(img[:, :, 0:2, 2:4], alone)
    assert atlas.ensure(grid) == 0  # cached
    assert atlas.ensure(torch.tensor([9])) == 1  # a lone code renders too
