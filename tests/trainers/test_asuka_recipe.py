"""ASUKA's alignment and decoder recipe pieces: the prior-substitution schedule, colour jitter, one-step z0."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from trainers import asuka_recipe as R


def test_substitution_probability_decays_linearly_then_stays():
    assert R.substitution_probability(0) == 1.0
    assert R.substitution_probability(1000) == pytest.approx(0.55)
    assert R.substitution_probability(1999) == pytest.approx(0.1 + 0.9 / 2000)
    assert R.substitution_probability(2000) == R.substitution_probability(10**6) == pytest.approx(0.1)
    steps = np.arange(0, 2000, 100)
    assert np.all(np.diff([R.substitution_probability(int(s)) for s in steps]) < 0)
    with pytest.raises(ValueError):
        R.substitution_probability(-1)


@pytest.mark.parametrize("step, expected", [(0, 1.0), (1000, 0.55), (1500, 0.325), (5000, 0.1)])
def test_substitution_draws_follow_the_schedule(step, expected):
    rng = np.random.default_rng(step)
    n = 600
    hits = R.draw_substitution(step, n, rng).sum()
    sd = max((expected * (1 - expected) / n) ** 0.5, 1e-9)
    assert abs(hits / n - expected) <= 4 * sd


def test_jitter_factors_lie_in_the_paper_ranges_and_orders_are_permutations():
    factors, order = R.ColorJitter().draw(500, torch.Generator().manual_seed(0))
    lo = torch.tensor([0.85, 0.8, 0.9, -0.03])
    hi = torch.tensor([1.15, 1.2, 1.1, 0.03])
    assert torch.all(factors >= lo) and torch.all(factors <= hi)
    assert torch.all(factors.min(0).values < lo + 0.01) and torch.all(factors.max(0).values > hi - 0.01)
    assert torch.equal(order.sort(1).values, torch.arange(4).expand(500, 4))
    assert len({tuple(o) for o in order.tolist()}) > 12  # many of the 24 orders


def test_hue_rotation_agrees_with_colorsys():
    rgb = torch.rand(1, 3, 4, 5, generator=torch.Generator().manual_seed(1))
    out = R.adjust_hue(rgb, 0.2)
    for y in range(4):
        for x in range(5):
            h, s, v = colorsys.rgb_to_hsv(*rgb[0, :, y, x].tolist())
            expected = colorsys.hsv_to_rgb((h + 0.2) % 1.0, s, v)
            torch.testing.assert_close(
                out[0, :, y, x], torch.tensor(expected, dtype=torch.float32), atol=1e-5, rtol=0
            )
    torch.testing.assert_close(R.adjust_hue(rgb, 0.0), rgb, atol=1e-6, rtol=0)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(R.adjust_hue(red, 1 / 3), torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1))


def test_brightness_contrast_saturation():
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    gray = (x * torch.tensor([0.2989, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    torch.testing.assert_close(R.adjust_brightness(x, 0.5), x * 0.5)
    flat = R.adjust_contrast(x, 0.0)
    torch.testing.assert_close(flat, gray.mean((1, 2, 3), keepdim=True).expand_as(x))
    torch.testing.assert_close(R.adjust_saturation(x, 0.0), gray.expand_as(x))
    assert R.adjust_brightness(x, 3.0).max() <= 1.0


def test_jitter_is_per_sample_reproducible_and_identity_at_zero_strength():
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    jitter = R.ColorJitter()
    a = jitter(x, torch.Generator().manual_seed(4))
    b = jitter(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a, x, atol=1e-3)
    torch.testing.assert_close(R.ColorJitter(0, 0, 0, 0)(x), x, atol=1e-6, rtol=0)
    with pytest.raises(ValueError):
        R.ColorJitter(hue=0.7)


def test_one_step_z0_inverts_the_forward_noising():
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000
    )
    g = torch.Generator().manual_seed(5)
    z0, eps = torch.randn(4, 4, 8, 8, generator=g), torch.randn(4, 4, 8, 8, generator=g)
    t = R.sample_timesteps(4, g)
    assert torch.all((t >= 500) & (t < 1000))
    z_t = sched.add_noise(z0, eps, t)
    torch.testing.assert_close(R.one_step_z0(z_t, eps, t, sched.alphas_cumprod), z0, atol=1e-4, rtol=1e-4)
    draws = R.sample_timesteps(2000, torch.Generator().manual_seed(6))
    assert draws.min() == 500 and draws.max() == 999


def test_decoder_param_groups_put_the_pretrained_vae_at_a_tenth():
    from inpaint_studio.models.asuka.decoder import AsukaDecoder

    model = AsukaDecoder(block_out_channels=(32, 32), layers_per_block=1)
    groups = R.decoder_param_groups(model, 8e-5)
    assert [g["lr"] for g in groups] == pytest.approx([8e-6, 8e-5])
    n_pre = sum(p.numel() for p in groups[0]["params"])
    n_new = sum(p.numel() for p in groups[1]["params"])
    assert n_pre == sum(p.numel() for p in model.decoder.parameters())
    assert n_new == sum(p.numel() for p in model.condition.parameters())
    torch.optim.AdamW(groups)  # the groups are what an optimiser takes
