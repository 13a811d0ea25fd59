"""The ASUKA decoder at a tiny width: built from a person's VAE, and what its mask promises."""

from __future__ import annotations

import pytest
import torch

from inpaint_studio.models.asuka.decoder import AsukaDecoder


@pytest.fixture(scope="module")
def vae_and_decoder():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, norm_num_groups=32,
    ).eval()  # fmt: skip
    torch.manual_seed(1)
    return vae, AsukaDecoder.from_vae(vae).eval()


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2, 4, 6, 5, generator=g)
    image = torch.rand(2, 3, 12, 10, generator=g) * 2 - 1
    mask = torch.zeros(2, 1, 12, 10)
    mask[0, :, 3:8, 2:7] = 1
    mask[1, :, 5:, :4] = 0.6  # soft
    return z, image, mask


def test_all_hole_is_the_persons_vae_decoder(vae_and_decoder):
    vae, model = vae_and_decoder
    z, image, _ = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            model(z, image, torch.ones(2, 1, 12, 10)), vae.decoder(z), atol=1e-6, rtol=0
        )
        torch.testing.assert_close(model.plain(z), vae.decoder(z), atol=0, rtol=0)


def test_all_known_ignores_the_latent_and_holes_ignore_the_image(vae_and_decoder):
    _, model = vae_and_decoder
    z, image, mask = _inputs()
    known = torch.zeros_like(mask)
    with torch.no_grad():
        assert torch.equal(model(z, image, known), model(torch.randn_like(z), image, known))
        scribbled = image + torch.randn_like(image) * (mask == 1)
        torch.testing.assert_close(model(z, image, mask), model(z, scribbled, mask), atol=1e-6, rtol=0)
        changed = model(z, image + 0.5, mask)
    assert not torch.allclose(changed, model(z, image, mask))  # the known region does steer the output


def test_sizes_are_checked_and_gradients_reach_both_paths(vae_and_decoder):
    _, model = vae_and_decoder
    z, image, mask = _inputs()
    with pytest.raises(ValueError, match="decodes to"):
        model(z, image[..., :8], mask[..., :8])
    model.zero_grad()
    model(z, image, mask).square().mean().backward()
    assert model.condition.layers[-1].weight.grad.abs().sum() > 0
    assert model.decoder.conv_in.weight.grad.abs().sum() > 0
    assert [layer.out_channels for layer in model.condition.layers] == [32, 64, 64]
