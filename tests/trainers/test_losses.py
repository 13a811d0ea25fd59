"""Shared losses, hole metrics and the offline VGG perceptual loss."""

from __future__ import annotations

import math

import pytest
import torch

from trainers import losses, metrics
from trainers.nets import PatchDiscriminator
from trainers.perceptual import GradientPyramidLoss, PerceptualLoss, VGGFeatures


def _pair():
    target = torch.zeros(1, 3, 4, 4)
    pred = torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1  # top half is the hole
    pred[..., :2, :] = 0.5  # error 0.5 in the hole
    pred[..., 2:, :] = -0.1  # error 0.1 outside
    return pred, target, mask


def test_masked_l1_and_l2_average_over_their_region():
    pred, target, mask = _pair()
    assert losses.masked_l1(pred, target, mask, "hole").item() == pytest.approx(0.5)
    assert losses.masked_l1(pred, target, mask, "valid").item() == pytest.approx(0.1)
    assert losses.masked_l2(pred, target, mask, "hole").item() == pytest.approx(0.25)
    assert losses.masked_l2(pred, target, mask, "all").item() == pytest.approx((0.25 + 0.01) / 2)
    assert losses.masked_l2(pred, target, torch.zeros_like(mask), "hole").item() == 0.0  # no hole: no NaN
    with pytest.raises(ValueError):
        losses.masked_l1(pred, target, mask, "edges")


def test_gram_and_style_loss():
    f = torch.ones(2, 3, 4, 4)
    assert torch.allclose(losses.gram_matrix(f), torch.full((2, 3, 3), 1 / 3))
    assert losses.style_loss([f], [f]).item() == 0.0
    assert losses.style_loss([f * 2], [f]).item() == pytest.approx(1.0)  # 4/3 - 1/3


def test_adversarial_losses_have_their_textbook_values():
    real, fake = torch.tensor([2.0]), torch.tensor([-1.0])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert losses.d_loss(real, fake).item() == pytest.approx(sp(-2.0) + sp(-1.0))
    assert losses.g_loss(fake).item() == pytest.approx(sp(1.0))
    assert losses.d_loss(real, fake, "hinge").item() == pytest.approx(0.0 + 0.0)
    assert losses.d_loss(torch.tensor([0.5]), torch.tensor([0.5]), "hinge").item() == pytest.approx(0.5 + 1.5)
    assert losses.g_loss(fake, "hinge").item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        losses.g_loss(fake, "wasserstein")


def test_r1_penalty_of_a_linear_critic_is_its_squared_weight_norm():
    critic = torch.nn.Linear(4, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[1.0, 2.0, 0.0, -2.0]]))
    x = torch.randn(5, 4, requires_grad=True)
    penalty = losses.r1_penalty(critic(x), x)
    assert penalty.item() == pytest.approx(9.0)
    penalty.backward()  # differentiable (create_graph) so it can be minimised
    assert critic.weight.grad is not None


def test_hole_psnr_and_ssim():
    target = torch.full((2, 3, 8, 8), 0.5)
    pred = target.clone()
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, :, 2:6, 2:6] = 1
    pred[0, :, 2:6, 2:6] += 0.1  # MSE 0.01 in the hole -> 20 dB
    pred[0, :, 0, 0] = 1.0  # outside the hole: must not count
    psnr = metrics.hole_psnr(pred, target, mask)
    assert psnr[0].item() == pytest.approx(20.0, abs=1e-4) and math.isnan(psnr[1].item())
    assert metrics.hole_ssim(target, target, mask)[0].item() == pytest.approx(1.0, abs=1e-5)
    noisy = target + 0.2 * torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert metrics.hole_ssim(noisy, target, mask)[0].item() < 0.9


def _torchvision_like_vgg16(path):
    """A file with torchvision's vgg16 key names (random values: we test loading, not ImageNet)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in VGGFeatures("vgg16", ("relu5_3",)).state_dict().items()}
    g = torch.Generator().manual_seed(0)
    state = {f"features.{k.split('.', 1)[1]}": torch.randn(s, generator=g) * 0.05 for k, s in shapes.items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(state, path)
    return state


def test_vgg_loads_torchvision_key_names_and_gives_named_features(tmp_path):
    state = _torchvision_like_vgg16(tmp_path / "vgg16-397923af.pth")
    loss = PerceptualLoss(tmp_path / "vgg16-397923af.pth")
    assert loss.uses_vgg and "vgg16" in loss.source
    assert torch.equal(loss.vgg.features[0].weight, state["features.0.weight"])
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    feats = loss.features(x)
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512]
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4]
    assert loss(x, x).item() == 0.0 and loss(x, -x).item() > 0
    assert not any(p.requires_grad for p in loss.parameters())


def test_vgg_weights_with_missing_tensors_are_rejected(tmp_path):
    state = _torchvision_like_vgg16(tmp_path / "v.pth")
    del state["features.10.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match="lack"):
        PerceptualLoss(tmp_path / "broken.pth")


def test_without_vgg_weights_it_says_so_and_falls_back(monkeypatch):
    monkeypatch.delenv("INPAINT_STUDIO_VGG", raising=False)
    with pytest.warns(UserWarning, match="no VGG weights"):
        loss = PerceptualLoss()
    assert not loss.uses_vgg and isinstance(loss.fallback, GradientPyramidLoss)
    x = torch.rand(1, 3, 16, 16)
    assert loss(x, x).item() == 0.0
    assert loss(x, x.flip(-1)).item() > 0
    with pytest.raises(RuntimeError, match="no VGG weights"):
        loss.features(x)


def test_vgg_weights_are_found_in_the_model_store(tmp_path, monkeypatch):
    from inpaint_studio.core import paths

    monkeypatch.delenv("INPAINT_STUDIO_VGG", raising=False)
    folder = paths.models_dir() / "vgg"
    folder.mkdir(parents=True)
    _torchvision_like_vgg16(folder / "vgg16-397923af.pth")
    assert PerceptualLoss().uses_vgg


def test_per_image_averaging_weighs_small_holes_like_large_ones():
    target = torch.zeros(2, 1, 4, 4)
    pred = torch.ones(2, 1, 4, 4)
    pred[1] = 3.0
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, :, :1, :1] = 1  # 1 hole pixel, error 1
    mask[1, :, :3, :] = 1  # 12 hole pixels, error 3
    assert losses.masked_l1(pred, target, mask).item() == pytest.approx(37 / 13)
    assert losses.masked_l1(pred, target, mask, per_image=True).item() == pytest.approx(2.0)
    assert losses.masked_l2(pred, target, mask, per_image=True).item() == pytest.approx(5.0)


def test_patch_discriminator_keeps_taming_keys_and_offers_group_norm():
    d = PatchDiscriminator(3, width=8, n_layers=3)
    assert d(torch.randn(2, 3, 64, 64)).shape == (2, 1, 6, 6)
    assert {"main.0.weight", "main.2.weight", "main.3.running_mean", "main.11.weight"} <= set(d.state_dict())
    grouped = PatchDiscriminator(4, width=8, n_layers=2, norm="group")
    assert grouped(torch.randn(1, 4, 32, 32)).shape == (1, 1, 6, 6)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in grouped.modules())
    with pytest.raises(ValueError, match="norm"):
        PatchDiscriminator(norm="instance")


def test_adversarial_losses_take_both_spellings():
    real, fake = torch.full((4,), 2.0), torch.full((4,), -2.0)
    assert float(losses.d_loss(real, fake, "hinge")) == 0.0
    assert float(losses.d_loss(fake, real, "hinge")) == 6.0
    assert float(losses.d_loss(real, fake, "non-saturating")) == float(losses.d_loss(real, fake))
    assert float(losses.d_loss(real, fake)) < float(losses.d_loss(fake, real))
    assert float(losses.g_loss(fake, "hinge")) == 2.0
    with pytest.raises(ValueError, match="wasserstein"):
        losses.g_loss(fake, "wasserstein")


def test_adaptive_weight_balances_gradients():
    w = torch.ones(3, requires_grad=True)
    rec, gan = (w * 4.0).sum(), (w * 2.0).sum()
    assert math.isclose(float(losses.adaptive_gan_weight(rec, gan, w)), 2.0, rel_tol=1e-3)


def test_pre_activation_features_are_the_convolutions_feeding_the_relus():
    torch.manual_seed(0)
    post = VGGFeatures("vgg16", ("relu2_2", "relu3_3"))
    pre = VGGFeatures("vgg16", ("relu2_2", "relu3_3"), pre_activation=True)
    pre.load_state_dict(post.state_dict())
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    for a, b in zip(pre(x), post(x), strict=True):
        assert a.min() < 0  # before the ReLU
        torch.testing.assert_close(a.relu(), b)
