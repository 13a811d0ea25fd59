"""MAT network behaviour on tiny random configurations (plumbing, not fill quality)."""

from __future__ import annotations

import pytest
import torch

from inpaint_studio.models.mat import (
    DiscriminatorConfig,
    KeepMaps,
    MatConfig,
    MatGenerator,
    SampleStreams,
    draw_keep_maps,
    generator_seed,
    seeded_generator,
    variant_inputs,
)
from inpaint_studio.models.mat.discriminator import MatDiscriminator, MinibatchStdLayer

RES = 128


def tiny_generator(use_noise: bool = True, seed: int = 0) -> MatGenerator:
    torch.manual_seed(seed)
    model = MatGenerator(MatConfig.tiny(img_resolution=RES, use_noise=use_noise)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.7)  # trained models have non-zero noise; the init (0) would hide it
    return model


def inputs(batch: int = 1, size: int = RES, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
    mask = torch.ones(batch, 1, size, size)
    mask[:, :, size // 4 : size * 3 // 4, size // 8 : size * 5 // 8] = 0
    return image, mask


def maps(model: MatGenerator, batch: int, size: int = RES, seed: int = 3) -> KeepMaps:
    return draw_keep_maps(model.synthesis.keep_map_shapes(batch, size, size), seeded_generator(seed))


@pytest.mark.parametrize(
    "bad",
    [
        {"img_resolution": 100},
        {"img_resolution": 64},
        {"stage1_dim": 10, "stage1_heads": 3},
        {"stage1_depths": (2, 2)},
        {"w_avg_beta": 1.0},
    ],
)
def test_config_rejects_bad_values(bad) -> None:
    with pytest.raises(ValueError):
        MatConfig(**bad)


def test_default_config_is_the_official_512_model() -> None:
    config = MatConfig()
    assert config.num_ws == 12
    assert [config.channels(r) for r in (512, 256, 128, 64, 32, 16, 4)] == [64, 128, 256, 512, 512, 512, 512]
    assert MatConfig.from_dict(config.to_dict()) == config


@torch.inference_mode()
def test_output_keeps_known_pixels_and_fills_the_hole() -> None:
    model = tiny_generator()
    image, mask = inputs()
    out = model(image, mask, torch.randn(1, 16), noise_mode="const", keep_maps=maps(model, 1))
    known = mask.expand_as(image) == 1
    assert torch.equal(out.image[known], image[known])
    assert torch.equal(out.stage1[known], image[known])
    assert not torch.allclose(out.image[~known], image[~known])
    assert torch.isfinite(out.image).all()


@torch.inference_mode()
def test_batched_variants_match_single_runs_and_encoding_is_shared() -> None:
    """One encode + a batch of latents equals separate full forwards (float rounding aside)."""
    model = tiny_generator()
    image, mask = inputs()
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(5))
    keep = maps(model, 3)
    enc = model.synthesis.encode(image, mask)
    batch = model.synthesis.fill(enc, model.mapping(z), keep, "const").image
    for i in range(3):
        single = model(
            image,
            mask,
            z[i : i + 1],
            noise_mode="const",
            keep_maps=KeepMaps(keep.stage1[i : i + 1], keep.stage2[i : i + 1]),
        )
        torch.testing.assert_close(batch[i : i + 1], single.image, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(batch[0], batch[1])


@torch.inference_mode()
def test_channels_last_and_contiguous_layouts_agree() -> None:
    model = tiny_generator()
    image, mask = inputs()
    keep, z = maps(model, 1), torch.randn(1, 16)
    fast = model(image, mask, z, noise_mode="const", keep_maps=keep).image
    model.synthesis.channels_last = False
    reference = model(image, mask, z, noise_mode="const", keep_maps=keep).image
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-4)


@torch.inference_mode()
def test_noise_none_works_and_equals_a_model_built_without_noise() -> None:
    noisy = tiny_generator(use_noise=True)
    plain = MatGenerator(MatConfig.tiny(img_resolution=RES, use_noise=False)).eval()
    plain.load_state_dict({k: v for k, v in noisy.state_dict().items() if "noise" not in k})
    image, mask = inputs()
    keep, z = maps(noisy, 1), torch.randn(1, 16)
    none = noisy(image, mask, z, noise_mode="none", keep_maps=keep).image
    const = noisy(image, mask, z, noise_mode="const", keep_maps=keep).image
    assert torch.equal(none, plain(image, mask, z, noise_mode="const", keep_maps=keep).image)
    assert not torch.allclose(none, const)


@torch.inference_mode()
def test_random_noise_comes_from_the_per_sample_streams() -> None:
    model = tiny_generator()
    image, mask = inputs()
    keep, z = maps(model, 1), torch.randn(1, 16)

    def run(seed: int) -> torch.Tensor:
        streams = SampleStreams([seeded_generator(seed)])
        return model(image, mask, z, noise_mode="random", keep_maps=keep, noise_fn=streams.normal).image

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


@torch.inference_mode()
def test_const_noise_and_keep_maps_at_twice_the_build_size() -> None:
    model = tiny_generator()
    image, mask = inputs(size=2 * RES)
    shapes = model.synthesis.keep_map_shapes(1, 2 * RES, 2 * RES)
    assert shapes == ((1, 1024, 12), (1, 16, 32, 32))
    out = model(image, mask, torch.randn(1, 16), noise_mode="const", keep_maps=maps(model, 1, 2 * RES))
    assert out.image.shape == image.shape and torch.isfinite(out.image).all()
    with pytest.raises(ValueError, match="multiples of 128"):
        model.synthesis.keep_map_shapes(1, 200, 256)


def test_truncation_pulls_toward_w_avg() -> None:
    model = tiny_generator()
    with torch.no_grad():
        model.mapping.w_avg.normal_()
        z = torch.randn(2, 16)
        ws1 = model.mapping(z, truncation_psi=1.0)
        ws0 = model.mapping(z, truncation_psi=0.0)
        half = model.mapping(z, truncation_psi=0.5)
    assert ws1.shape == (2, MatConfig.tiny(img_resolution=RES).num_ws, 16)
    torch.testing.assert_close(ws0, model.mapping.w_avg.expand_as(ws0))
    torch.testing.assert_close(half, (ws0 + ws1) / 2, rtol=1e-5, atol=1e-5)


def test_style_mixing_takes_the_later_ws_rows_from_the_second_latent() -> None:
    model = tiny_generator().train()
    num_ws = model.config.num_ws
    image, mask = inputs(batch=2)
    z, other = torch.randn(2, 16), torch.randn(2, 16)
    seen: list[torch.Tensor] = []
    model.synthesis.register_forward_hook(lambda _m, args, _out: seen.append(args[2].detach()))
    with torch.no_grad():
        model(image, mask, z, noise_mode="none", keep_maps=maps(model, 2), mix_z=other,
              mix_from=torch.tensor([3, num_ws]))  # fmt: skip
        w_avg = model.mapping.w_avg.clone()
        plain = model.mapping(z, update_w_avg=False)
        second = model.mapping(other, update_w_avg=False)
    ws = seen[0]
    torch.testing.assert_close(ws[0, :3], plain[0, :3])
    torch.testing.assert_close(ws[0, 3:], second[0, 3:])
    torch.testing.assert_close(ws[1], plain[1])  # cutoff num_ws: not mixed
    assert not torch.equal(w_avg, torch.zeros_like(w_avg))  # the first mapping tracked w_avg
    model.eval()
    with pytest.raises(ValueError, match="mix_from"):
        model(image, mask, z, keep_maps=maps(model, 2), mix_z=other)


def test_critic_keeps_reals_and_fakes_in_separate_minibatch_std_groups() -> None:
    torch.manual_seed(0)
    disc = MatDiscriminator(
        DiscriminatorConfig(img_resolution=RES, channel_base=1024, channel_max=16, mbstd_group_size=2)
    )
    real, fake = torch.randn(4, 3, RES, RES), torch.randn(4, 3, RES, RES) * 3
    _, mask = inputs(batch=4)
    with torch.no_grad():
        together = disc(torch.cat([real, fake]), torch.cat([mask, mask]), torch.cat([real, fake]), sets=2)
        mixed = disc(torch.cat([real, fake]), torch.cat([mask, mask]), torch.cat([real, fake]))
        alone = [disc(x, mask, x) for x in (real, fake)]
    for head in range(2):
        expected = torch.cat([alone[0][head], alone[1][head]])
        torch.testing.assert_close(together[head], expected, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(mixed[head], expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="equal sets"):
        disc(real[:3], mask[:3], real[:3], sets=2)


def test_variant_inputs_are_reproducible_and_more_like_this_starts_at_the_reference() -> None:
    shapes = ((1, 16, 12), (1, 8, 4, 4))
    a, b = variant_inputs(7, 16, shapes), variant_inputs(7, 16, shapes)
    assert torch.equal(a.z, b.z) and torch.equal(a.keep_maps.stage2, b.keep_maps.stage2)
    other = variant_inputs(8, 16, shapes)
    assert not torch.equal(a.z, other.z)
    same = variant_inputs(9, 16, shapes, near=((7, 0.0),), spread=0.0)
    assert torch.equal(same.z, a.z) and torch.equal(same.keep_maps.stage1, a.keep_maps.stage1)
    step = variant_inputs(9, 16, shapes, near=((7, 0.0),), spread=0.3)
    assert torch.equal(step.keep_maps.stage1, a.keep_maps.stage1)
    assert 0 < (step.z - a.z).norm() < (other.z - a.z).norm()
    # a chain: one more step from the stepped variant, reproducible, and further from the root
    deeper = variant_inputs(5, 16, shapes, near=((7, 0.0), (9, 0.3)), spread=0.3)
    again = variant_inputs(5, 16, shapes, near=((7, 0.0), (9, 0.3)), spread=0.3)
    assert torch.equal(deeper.z, again.z) and not torch.equal(deeper.z, step.z)
    assert torch.equal(variant_inputs(5, 16, shapes, near=((7, 0.0), (9, 0.3)), spread=0.0).z, step.z)
    assert generator_seed(7) != generator_seed(8) and generator_seed(7) != generator_seed(7, "near")


def test_generator_and_discriminator_train_end_to_end() -> None:
    """Gradients reach every trainable tensor (the trainer will rely on it)."""
    torch.manual_seed(0)
    gen = MatGenerator(MatConfig.tiny(img_resolution=RES)).train()
    disc = MatDiscriminator(
        DiscriminatorConfig(img_resolution=RES, channel_base=1024, channel_max=16, mbstd_group_size=2)
    )
    image, mask = inputs(batch=2)
    out = gen(image, mask, torch.randn(2, 16), noise_mode="random")
    logit, logit_stage1 = disc(out.image, mask, out.stage1)
    assert logit.shape == logit_stage1.shape == (2, 1)
    (
        torch.nn.functional.softplus(-logit).mean() + torch.nn.functional.softplus(-logit_stage1).mean()
    ).backward()
    missing = [n for n, p in gen.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []
    assert all(p.grad is not None for p in disc.parameters())
    assert gen.mapping.w_avg.abs().sum() > 0  # tracked in training mode


def test_discriminator_has_the_official_layout() -> None:
    with torch.device("meta"):
        disc = MatDiscriminator()
    shapes = {k: tuple(v.shape) for k, v in disc.state_dict().items()}
    assert shapes["Dis.0.conv.weight"] == (64, 4, 1, 1)
    assert shapes["Dis.1.conv1.weight"] == (128, 64, 3, 3)
    assert shapes["Dis.7.skip.weight"] == (512, 512, 1, 1) and "Dis.7.skip.bias" not in shapes
    assert shapes["Dis.9.weight"] == (512, 513, 3, 3)
    assert shapes["fc0.weight"] == (512, 8192) and shapes["fc1.weight"] == (1, 512)
    assert shapes["Dis_stg1.0.conv.weight"] == (32, 4, 1, 1)
    assert shapes["Dis_stg1.9.weight"] == (256, 257, 3, 3)
    assert shapes["fc0_stg1.weight"] == (256, 4096) and shapes["fc1_stg1.weight"] == (1, 256)


def test_minibatch_std_appends_group_statistics() -> None:
    layer = MinibatchStdLayer(group_size=2)
    x = torch.randn(4, 6, 3, 3)
    out = layer(x)
    assert out.shape == (4, 7, 3, 3)
    expected = (x.view(2, 2, 6, 3, 3).var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))
    torch.testing.assert_close(out[:2, 6, 0, 0], expected)
    torch.testing.assert_close(out[2:, 6, 0, 0], expected)


@pytest.mark.parametrize(
    ("size", "noise_mode", "batch"), [(512, "const", 2), (512, "random", 2), (1024, "const", 1)]
)
def test_window_around_the_hole_gives_the_dense_result(size: int, noise_mode: str, batch: int) -> None:
    """Top levels computed only around a small hole: same fill as computing them everywhere."""
    torch.manual_seed(0)
    model = MatGenerator(MatConfig.tiny()).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.7)
    image, mask = inputs(batch=1, size=size)
    mask.fill_(1)
    mask[:, :, size // 3 : size // 2, size // 4 : size // 2 + 7] = 0
    keep, z = maps(model, batch, size), torch.randn(batch, 16)
    outs = []
    for use_window in (False, True):
        model.synthesis.use_window = use_window
        streams = SampleStreams([seeded_generator(5 + i) for i in range(batch)])
        with torch.inference_mode():
            enc = model.synthesis.encode(image, mask)
            outs.append(model.synthesis.fill(enc, model.mapping(z), keep, noise_mode, streams.normal))
        assert (enc.window is not None) == use_window
    torch.testing.assert_close(outs[1].image, outs[0].image, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outs[1].stage1, outs[0].stage1, rtol=1e-5, atol=1e-5)


def test_window_is_aligned_and_skipped_when_it_would_not_save_work() -> None:
    from inpaint_studio.models.mat.window import ALIGN, Window

    mask = torch.ones(1, 1, 512, 512)
    mask[:, :, 200:260, 300:340] = 0
    window = Window.around_hole(mask)
    assert window is not None
    box = window.box
    assert all(v % ALIGN == 0 for v in (box.y0, box.y1, box.x0, box.x1))
    assert box.y0 <= 200 - 32 and box.y1 >= 260 + 32 and box.x0 <= 300 - 32 and box.x1 >= 340 + 32
    mask[:, :, 10:500, 10:20] = 0  # a tall stroke: the window would cover most of the image
    assert Window.around_hole(mask) is None
    assert Window.around_hole(torch.ones(1, 1, 512, 512)) is None
