"""``benchmarks/grocery_vgg.py``: the batch norms of the study's VGG fold into a plain vgg16 file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

from inpaint_studio.models.diffusion.latent_style import LatentVGG, vgg_layout_of

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _module():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("grocery_vgg", BENCHMARKS / "grocery_vgg.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return module


def test_folded_batch_norms_give_a_plain_vgg16_with_the_same_features():
    vgg = _module()
    torch.manual_seed(0)
    features = vgg.vgg16_bn_features()
    for m in features:  # batch norms with statistics of their own, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    features.eval()
    state = vgg.folded_state(features)
    assert vgg_layout_of(state) == "vgg16"
    plain = LatentVGG("vgg16", in_channels=3, style_layers=(3, 8, 15, 22, 29))
    plain.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got = plain(x)
        bn_relus = [i for i, m in enumerate(features) if isinstance(m, torch.nn.ReLU)]
        want, h = [], x
        for i, m in enumerate(features):
            h = m(h)
            if i in [bn_relus[k] for k in (1, 3, 6, 9, 12)]:  # relu1_2 .. relu5_3
                want.append(h)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_latent_rgb_factors_recover_a_linear_vae():
    vgg = _module()

    class Linear:  # a "VAE" whose latents are a known linear map of the pooled pixels
        class config:
            scaling_factor = 2.0

        def __init__(self):
            self.m = torch.tensor([[0.5, 0.1, -0.3], [0.2, 0.7, 0.1], [-0.4, 0.3, 0.6], [0.1, -0.2, 0.3]])

        def encode(self, x):
            pooled = torch.nn.functional.avg_pool2d(x, 4)
            z = torch.einsum("kc,bchw->bkhw", self.m, pooled) / 2.0

            class Dist:
                mean = z

            class Out:
                latent_dist = Dist

            return Out

    photos = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    factors, r2 = vgg.fit_latent_rgb_factors(Linear(), photos)
    z = torch.einsum(
        "kc,bchw->bkhw", Linear().m, torch.nn.functional.avg_pool2d(photos.float() / 127.5 - 1, 4)
    )
    rgb = torch.einsum("bkhw,kc->bchw", z, torch.from_numpy(factors).float())
    assert r2 > 0.999
    assert torch.allclose(rgb, torch.nn.functional.avg_pool2d(photos.float() / 127.5 - 1, 4), atol=1e-3)
