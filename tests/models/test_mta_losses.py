"""MTA's loss terms: Sobel edge target and structure loss, latent VGG, Gram style loss, x_{t-1} math."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from inpaint_studio.models.diffusion.latent_style import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SD15_LATENT_RGB_FACTORS,
    LatentVGG,
    build_latent_vgg,
    gram_matrix,
    load_rgb_vgg,
    mta_style_loss,
    noised_latent,
    previous_latent,
    rgb_conv_to_latent,
    step_coefficient,
    style_latents,
    style_loss,
    style_sample_weight,
)
from inpaint_studio.models.diffusion.mta_losses import PAPER_WEIGHTS, edge_loss, sobel_edge_target

TINY_VGG = dict(layout=(8, 8, "M", 16, 16, "M", 16), style_layers=(1, 3, 8, 11))


def _sd_alphas():
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


# -- edges -----------------------------------------------------------------------------------------
def test_sobel_target_marks_a_step_and_nothing_else():
    image = -torch.ones(1, 3, 64, 64)
    image[..., 32:] = 1.0  # black | white, vertical edge between columns 31 and 32
    edges = sobel_edge_target(image, (8, 8))
    assert edges.shape == (1, 1, 8, 8)
    assert edges[..., :3].abs().max() == 0 and edges[..., 5:].abs().max() == 0
    # columns 31 and 32 answer 4 / (4 sqrt 2); each is one of the 8 columns of its latent cell
    assert torch.allclose(edges[..., 3], torch.full((1, 1, 8), 1 / 8 / math.sqrt(2)), atol=1e-6)
    assert torch.allclose(edges[..., 4], torch.full((1, 1, 8), 1 / 8 / math.sqrt(2)), atol=1e-6)
    assert not sobel_edge_target(torch.full((2, 3, 32, 32), 0.3), (4, 4)).any()
    with pytest.raises(ValueError, match="RGB"):
        sobel_edge_target(torch.zeros(1, 1, 8, 8), (1, 1))


def test_edge_loss_is_the_mean_squared_frobenius_norm():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(3, 1, 4, 5, generator=g), torch.rand(3, 1, 4, 5, generator=g)
    per_sample = [torch.linalg.matrix_norm(pred[i, 0] - target[i, 0]) ** 2 for i in range(3)]
    assert torch.allclose(edge_loss(pred, target), torch.stack(per_sample).mean())
    assert torch.allclose(edge_loss(pred, target, per_pixel=True), F.mse_loss(pred, target))
    assert edge_loss(target, target) == 0
    with pytest.raises(ValueError, match="differ"):
        edge_loss(pred, target[:, :, :2])


def test_paper_weights():
    assert (PAPER_WEIGHTS.noise, PAPER_WEIGHTS.style, PAPER_WEIGHTS.edge) == (1.0, 100.0, 0.1)
    one = torch.tensor(1.0)
    assert PAPER_WEIGHTS.total(one, one, one) == pytest.approx(101.1)
    assert PAPER_WEIGHTS.total(one) == 1.0


# -- Gram / style ------------------------------------------------------------------------------------
def test_gram_and_style_loss():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 6, 5, 7, generator=g)
    b = torch.randn(2, 6, 5, 7, generator=g)
    assert style_loss([a, a * 1], [a.clone(), a.clone()]) == 0
    shuffled = a.flatten(2)[..., torch.randperm(35, generator=g)].reshape(a.shape)
    assert torch.allclose(style_loss([a], [shuffled]), torch.tensor(0.0), atol=1e-10)  # layout-blind
    assert style_loss([a], [b]) > 0
    gram = gram_matrix(a)
    assert gram.shape == (2, 6, 6) and torch.allclose(gram, gram.transpose(1, 2))
    manual = a[0].reshape(6, -1) @ a[0].reshape(6, -1).t() / (6 * 35)
    assert torch.allclose(gram[0], manual)
    two_layers = style_loss([a, b], [b, a])
    assert torch.allclose(two_layers, style_loss([a], [b]))  # mean over the N layers


# -- x_{t-1} -----------------------------------------------------------------------------------------
def test_previous_and_noised_latents_match_diffusers_schedulers():
    pytest.importorskip("diffusers")
    from diffusers import DDIMScheduler, DDPMScheduler

    kwargs = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    ddim = DDIMScheduler(**kwargs, set_alpha_to_one=False, clip_sample=False)
    ddim.set_timesteps(1000)
    ddpm = DDPMScheduler(**kwargs)
    assert torch.allclose(ddim.alphas_cumprod, _sd_alphas(), atol=1e-6)
    g = torch.Generator().manual_seed(0)
    x0, noise, eps = (torch.randn(1, 4, 8, 8, generator=g) for _ in range(3))
    for t in (999, 500, 37):
        x_t = ddpm.add_noise(x0, noise, torch.tensor([t]))
        assert torch.allclose(
            noised_latent(x0, noise, torch.tensor([t]), ddpm.alphas_cumprod), x_t, atol=1e-6
        )
        want = ddim.step(eps, t, x_t, eta=0.0).prev_sample
        got = previous_latent(x_t, eps, torch.tensor([t]), ddim.alphas_cumprod)
        assert torch.allclose(got, want, atol=1e-5)
    # the step before t = 0 is the clean latent
    t0 = torch.tensor([0])
    x_t = noised_latent(x0, noise, t0, ddpm.alphas_cumprod)
    assert torch.allclose(previous_latent(x_t, noise, t0, ddpm.alphas_cumprod), x0, atol=1e-5)


def test_the_two_style_latents_differ_by_one_step_of_the_noise_error():
    """Why the style term is small at delta 100: the latents it compares differ by c_t (e - eps), and
    on SD-1.5's schedule |c_t| is 0.029 at t = 0 (the step to x0), 0.012 at t = 1 and between 0.002
    and 0.007 from t = 10 on (median 0.003)."""
    alphas = _sd_alphas()
    g = torch.Generator().manual_seed(0)
    x0, noise, eps = (torch.randn(3, 4, 8, 8, generator=g) for _ in range(3))
    t = torch.tensor([999, 400, 1])
    x_t = noised_latent(x0, noise, t, alphas)
    diff = previous_latent(x_t, eps, t, alphas) - noised_latent(x0, noise, t - 1, alphas)
    c = step_coefficient(t, alphas)
    assert torch.allclose(diff, c.view(-1, 1, 1, 1) * (eps - noise), atol=1e-5)
    every = step_coefficient(torch.arange(1000), alphas)
    assert (every < 0).all() and every[1:].abs().max() < 0.013 and every[10:].abs().max() < 0.007
    assert every.abs().median() < 0.0035
    beta0 = 1 - alphas[0]
    assert torch.allclose(every[0], -(beta0 / (1 - beta0)).sqrt())  # a_{-1} = 1: x0_hat against x0


def test_perfect_noise_prediction_gives_zero_style_loss():
    alphas = _sd_alphas()
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    t = torch.tensor([800, 3])
    x_t = noised_latent(x0, noise, t, alphas)
    extractor = LatentVGG(**TINY_VGG)
    perfect = mta_style_loss(extractor, x_t, noise, noise, x0, t, alphas)
    wrong = noise + 0.5 * torch.randn(2, 4, 8, 8, generator=g)
    off = mta_style_loss(extractor, x_t, wrong, noise, x0, t, alphas)
    assert off > 0 and perfect < 1e-4 * off


def test_the_clean_pair_is_the_predicted_x0_against_x0_weighted_by_a_t_squared():
    """``--style-latents clean``: the same DDIM step taken to x_0, so the pair differs by
    -sqrt(1 - a_t) / sqrt(a_t) (e - eps) and shares no noise; a_t^2 weighs each sample."""
    alphas = _sd_alphas()
    g = torch.Generator().manual_seed(1)
    x0, noise, eps = (torch.randn(3, 4, 8, 8, generator=g) for _ in range(3))
    t = torch.tensor([999, 400, 1])
    x_t = noised_latent(x0, noise, t, alphas)
    predicted, target = style_latents(x_t, eps, noise, x0, t, alphas, "clean")
    assert torch.equal(target, x0)
    a = alphas[t].view(-1, 1, 1, 1)
    assert torch.allclose(predicted - x0, -((1 - a) / a).sqrt() * (eps - noise), atol=1e-4)
    assert torch.allclose(style_latents(x_t, noise, noise, x0, t, alphas, "clean")[0], x0, atol=1e-4)
    # the default is the paper's pair
    previous = style_latents(x_t, eps, noise, x0, t, alphas)
    assert torch.allclose(previous[0], previous_latent(x_t, eps, t, alphas))
    assert torch.allclose(previous[1], noised_latent(x0, noise, t - 1, alphas))
    with pytest.raises(ValueError, match="style latents"):
        style_latents(x_t, eps, noise, x0, t, alphas, "x0")

    assert style_sample_weight(t, alphas, "previous") is None
    assert style_sample_weight(t, alphas, "fresh") is None
    with pytest.raises(ValueError, match="style latents"):
        style_sample_weight(t, alphas, "x0")
    weight = style_sample_weight(t, alphas, "clean")
    assert torch.allclose(weight, alphas[t] ** 2)
    extractor = LatentVGG(**TINY_VGG)
    fa, fb = extractor(predicted), extractor(target)
    per_sample = torch.stack(
        [style_loss([f[i : i + 1] for f in fa], [f[i : i + 1] for f in fb]) for i in range(3)]
    )
    assert torch.allclose(style_loss(fa, fb, weight), (per_sample * weight).mean(), rtol=1e-5)
    assert torch.allclose(
        mta_style_loss(extractor, x_t, eps, noise, x0, t, alphas, "clean"), style_loss(fa, fb, weight)
    )


def test_style_gradient_flows_through_the_frozen_unet_into_the_branch():
    pytest.importorskip("diffusers")
    from diffusers import UNet2DConditionModel

    from inpaint_studio.models.diffusion.brushnet import BrushBranch
    from inpaint_studio.models.diffusion.brushnet_hooks import inject_residuals

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    ).requires_grad_(False)
    branch = BrushBranch.from_unet(unet)
    alphas = _sd_alphas()
    x0, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t = torch.tensor([600, 100])
    x_t = noised_latent(x0, noise, t, alphas)
    mask = torch.ones(2, 1, 8, 8)
    out = branch(x_t, t, x0 * mask, mask)
    with inject_residuals(unet, out.residuals):
        eps = unet(x_t, t, encoder_hidden_states=torch.randn(2, 3, 32)).sample
    extractor = LatentVGG(**TINY_VGG)
    loss = mta_style_loss(extractor, x_t, eps, noise, x0, t, alphas)
    loss.backward()
    assert branch.mid_injection.weight.grad.abs().sum() > 0  # zero injections still learn
    assert extractor.features[0].weight.grad.abs().sum() > 0  # the extractor is trained too (lr 1e-7)
    assert all(p.grad is None for p in unet.parameters())


# -- the 4-channel VGG ------------------------------------------------------------------------------
def test_first_conv_conversion_equals_rgb_vgg_on_decoded_latents():
    g = torch.Generator().manual_seed(0)
    w3, b3 = torch.randn(8, 3, 3, 3, generator=g), torch.randn(8, generator=g)
    w4, b4 = rgb_conv_to_latent(w3, b3)
    z = torch.randn(2, 4, 12, 12, generator=g)
    rgb = torch.einsum("bkhw,kc->bchw", z, torch.tensor(SD15_LATENT_RGB_FACTORS))
    x = ((rgb + 1) / 2 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )
    want = F.conv2d(x, w3, b3, padding=1)
    got = F.conv2d(z, w4, b4, padding=1)
    assert torch.allclose(got[..., 1:-1, 1:-1], want[..., 1:-1, 1:-1], atol=1e-4)  # exact off the border


def _torchvision_like_vgg16(path):
    """A vgg16 state dict with torchvision's keys and shapes (expanded constants: a tiny file)."""
    widths = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    state, cin = {}, 3
    for i, (idx, w) in enumerate(zip(convs, widths, strict=True)):
        weight = torch.full((1,), 0.01 * (i + 1)).expand(w, cin, 3, 3)
        if idx == 0:
            weight = torch.randn(w, cin, 3, 3, generator=torch.Generator().manual_seed(0))
        state[f"features.{idx}.weight"] = weight
        state[f"features.{idx}.bias"] = torch.full((w,), 0.5)
        cin = w
    state["classifier.0.weight"] = torch.zeros(1).expand(4096, 25088)
    torch.save(state, path)
    return state


def test_vgg_file_initialises_the_latent_extractor(tmp_path):
    state = _torchvision_like_vgg16(tmp_path / "vgg16.pth")
    model = build_latent_vgg(tmp_path / "vgg16.pth")
    assert len(model.features) == 23  # up to relu4_3
    w4, b4 = rgb_conv_to_latent(state["features.0.weight"], state["features.0.bias"])
    assert torch.allclose(model.features[0].weight, w4) and torch.allclose(model.features[0].bias, b4)
    assert torch.equal(model.features[21].weight, state["features.21.weight"])
    feats = model(torch.randn(1, 4, 16, 16))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512]


def test_another_vaes_latent_to_rgb_map_moves_the_first_conv_through_it(tmp_path):
    state = _torchvision_like_vgg16(tmp_path / "vgg16.pth")
    factors = torch.randn(4, 3, generator=torch.Generator().manual_seed(1)).tolist()
    model = build_latent_vgg(tmp_path / "vgg16.pth", factors=factors)
    w4, b4 = rgb_conv_to_latent(state["features.0.weight"], state["features.0.bias"], factors)
    assert torch.allclose(model.features[0].weight, w4) and torch.allclose(model.features[0].bias, b4)
    sd15, _ = rgb_conv_to_latent(state["features.0.weight"], state["features.0.bias"])
    assert not torch.allclose(w4, sd15)


def test_random_init_warns_and_bad_files_are_refused(tmp_path):
    with pytest.warns(UserWarning, match="random init"):
        model = build_latent_vgg(None)
    assert model.features[0].in_channels == 4
    bn = {"features.0.weight": torch.zeros(64, 3, 3, 3), "features.1.running_mean": torch.zeros(64)}
    torch.save(bn, tmp_path / "bn.pth")
    with pytest.raises(ValueError, match="batch-norm"):
        build_latent_vgg(tmp_path / "bn.pth")
    torch.save({"weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a torchvision VGG"):
        build_latent_vgg(tmp_path / "other.pth")
    tiny = LatentVGG(**TINY_VGG)
    with pytest.raises(ValueError, match="has no"):
        load_rgb_vgg(tiny, {"features.0.weight": torch.zeros(8, 3, 3, 3)})


def test_the_fresh_pair_noises_the_ground_truth_with_its_own_draw_so_a_perfect_prediction_still_pays():
    """``--style-latents fresh``: the same x_{t-1} from the prediction, against x_0 noised to t-1
    with ``target_noise``. Given the training noise again it is the paper's pair; with a draw of its
    own the term no longer vanishes at e == eps (the two noises' Gram differ), and its gradient on
    the predicted noise is larger than the shared pair's, whose Gram difference is itself O(c_t)."""
    alphas = _sd_alphas()
    g = torch.Generator().manual_seed(2)
    x0, noise, other = (torch.randn(3, 4, 8, 8, generator=g) for _ in range(3))
    t = torch.tensor([999, 400, 1])
    x_t = noised_latent(x0, noise, t, alphas)
    eps = noise + 0.3 * torch.randn(3, 4, 8, 8, generator=g)
    predicted, target = style_latents(x_t, eps, noise, x0, t, alphas, "fresh", target_noise=other)
    assert torch.allclose(predicted, previous_latent(x_t, eps, t, alphas))
    assert torch.allclose(target, noised_latent(x0, other, t - 1, alphas))
    same = style_latents(x_t, eps, noise, x0, t, alphas, "fresh", target_noise=noise)
    for got, want in zip(same, style_latents(x_t, eps, noise, x0, t, alphas), strict=True):
        assert torch.equal(got, want)
    with pytest.raises(ValueError, match="target_noise"):
        style_latents(x_t, eps, noise, x0, t, alphas, "fresh")

    extractor = LatentVGG(**TINY_VGG)
    assert mta_style_loss(extractor, x_t, noise, noise, x0, t, alphas, "fresh", other) > 0

    def grad_norm(kind: str) -> float:
        e = eps.clone().requires_grad_(True)
        mta_style_loss(extractor, x_t, e, noise, x0, t, alphas, kind, other).backward()
        return float(e.grad.norm())

    assert grad_norm("fresh") > 3 * grad_norm("previous") > 0
