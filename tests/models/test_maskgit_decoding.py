"""MaskGIT decoding, masking for training, and the two-part bundle (tiny random models)."""

from __future__ import annotations

import math

import pytest
import torch

from inpaint_studio.models.bundle import BundleError, save_bundle
from inpaint_studio.models.maskgit import (
    MaskGitConfig,
    MaskGitTransformer,
    decode_all,
    iterative_decode,
    load_maskgit,
    load_vqgan,
    make_generators,
    mask_ratio,
    masked_token_accuracy,
    masked_token_loss,
    mvtm_mask,
    save_maskgit,
    save_vqgan,
)
from inpaint_studio.models.maskgit.checkpoint import load_atlas
from inpaint_studio.models.maskgit.masking import expected_masked_fraction
from inpaint_studio.models.vqgan import VQGAN, VQGANConfig

CB = 32


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = MaskGitConfig(
        codebook_size=CB, grid_size=4, hidden_dim=32, depth=1, heads=2, mlp_dim=32, dropout=0.0
    )
    return MaskGitTransformer(cfg).eval()


def test_schedules_endpoints_and_monotone():
    for name in ("cosine", "linear", "square", "arccos", "pow3"):
        assert mask_ratio(name, 0.0) == 1.0
        assert mask_ratio(name, 1.0) == pytest.approx(1e-6)
        values = [mask_ratio(name, i / 10) for i in range(11)]
        assert all(a >= b for a, b in zip(values, values[1:], strict=False)), name
    r = torch.linspace(0, 1, 7, dtype=torch.float64)
    for name in ("cosine", "arccos", "square"):
        assert torch.allclose(
            mask_ratio(name, r), torch.tensor([mask_ratio(name, float(x)) for x in r], dtype=torch.float64)
        )
    with pytest.raises(ValueError):
        mask_ratio("sigmoid", 0.5)


def test_known_tokens_never_change_and_unknown_get_filled(model):
    tokens = torch.randint(0, CB, (3, 16))
    unknown = torch.zeros(3, 16, dtype=torch.bool)
    unknown[:, 5:11] = True
    unknown[2] = False  # nothing to do for this sample
    for state in iterative_decode(model, tokens, unknown, steps=4, generators=make_generators([1, 2, 3])):
        assert torch.equal(state.tokens[~unknown], tokens[~unknown])
        assert torch.equal(state.preview[~unknown], tokens[~unknown])
        assert not (state.unknown & ~unknown).any()
    assert (state.tokens < CB).all() and not state.unknown.any()


def test_seeds_reproduce_per_sample(model):
    tokens = torch.zeros(2, 16, dtype=torch.long)
    unknown = torch.ones(2, 16, dtype=torch.bool)
    a = decode_all(model, tokens, unknown, steps=6, generators=make_generators([5, 6]))
    b = decode_all(model, tokens, unknown, steps=6, generators=make_generators([5, 9]))
    c = decode_all(model, tokens[:1], unknown[:1], steps=6, generators=make_generators([5]))
    assert torch.equal(a[0], b[0]) and torch.equal(a[0], c[0])  # a sample depends on its own seed only
    assert not torch.equal(a[1], b[1])


def test_start_step_runs_remaining_steps(model):
    tokens = torch.zeros(1, 16, dtype=torch.long)
    unknown = torch.ones(1, 16, dtype=torch.bool)
    states = list(iterative_decode(model, tokens, unknown, steps=8, start_step=5))
    assert [s.step for s in states] == [5, 6, 7]
    with pytest.raises(ValueError):
        list(iterative_decode(model, tokens, unknown, steps=8, start_step=8))


def test_temperature_and_class_tokens_checked(model):
    tokens = torch.zeros(1, 16, dtype=torch.long)
    with pytest.raises(ValueError, match="temperature"):
        list(iterative_decode(model, tokens, tokens.bool(), temperature=0.0))
    with pytest.raises(ValueError, match="unconditional"):
        model(tokens, torch.tensor([3]))
    with pytest.raises(ValueError, match="tokens"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_untied_output_and_class_token_model():
    cfg = MaskGitConfig(
        codebook_size=CB,
        grid_size=2,
        hidden_dim=16,
        depth=1,
        heads=2,
        mlp_dim=16,
        num_classes=3,
        tie_weights=False,
        output_bias="token",
        stem=False,
    )
    m = MaskGitTransformer(cfg).eval()
    tokens = torch.full((2, 4), cfg.mask_id)
    assert m(tokens, torch.tensor([0, -1])).shape == (2, 4, CB)
    assert m.sequence(tokens, torch.tensor([2, -1]))[:, -1].tolist() == [CB + 3, cfg.no_class_id]
    with pytest.raises(ValueError, match="class ids"):
        m(tokens, torch.tensor([3, 0]))


def test_mvtm_mask_counts_follow_schedule():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, CB, (512, 4, 4))
    masked, hidden = mvtm_mask(tokens, mask_id=CB, schedule="cosine", generator=g)
    counts = hidden.view(512, -1).sum(1)
    assert counts.min() >= 1 and counts.max() <= 16
    assert torch.equal(masked[hidden], torch.full_like(masked[hidden], CB))
    assert torch.equal(masked[~hidden], tokens[~hidden])
    # the count is ceil(gamma(r) * 16), so its mean is close to 16 * E[gamma] + ~0.5
    assert abs(float(counts.float().mean()) - (16 * expected_masked_fraction("cosine") + 0.5)) < 0.6
    g = torch.Generator().manual_seed(1)
    _, fixed = mvtm_mask(tokens, CB, mode="bernoulli", ratio=0.25, generator=g)
    assert abs(float(fixed.float().mean()) - 0.25) < 0.02
    with pytest.raises(ValueError):
        mvtm_mask(tokens, CB, mode="schedule", ratio=0.5)


def test_masked_loss_ignores_visible_positions():
    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 1] = 10.0  # position 0 confidently predicts 1
    targets = torch.tensor([[1, 2, 3]])
    only_first = torch.tensor([[True, False, False]])
    assert float(masked_token_loss(logits, targets, only_first)) < 1e-3
    assert float(masked_token_loss(logits, targets, torch.tensor([[False, True, False]]))) == pytest.approx(
        math.log(4)
    )
    assert masked_token_accuracy(logits, targets, only_first) == 1.0
    assert math.isnan(masked_token_accuracy(logits, targets, torch.zeros(1, 3, dtype=torch.bool)))
    logits.requires_grad_(True)
    masked_token_loss(logits, targets, torch.zeros(1, 3, dtype=torch.bool)).backward()
    assert logits.grad is not None


def test_bundle_holds_both_parts(tmp_path, model):
    vq = VQGAN(
        VQGANConfig(
            ch=32,
            ch_mult=(1, 1),
            num_res_blocks=1,
            attn_resolutions=(),
            z_channels=32,
            embed_dim=8,
            n_embed=CB,
            resolution=8,
        )
    )
    folder = save_maskgit(tmp_path / "m", vq, model, extra={"note": "tiny"})
    vq2, tf2, extra = load_maskgit(folder)
    assert extra["note"] == "tiny"
    names = sorted(p.name for p in folder.glob("*.safetensors"))
    assert names == ["atlas.safetensors", "transformer.safetensors", "vqgan.safetensors"]
    atlas = load_atlas(folder, vq2)
    assert atlas is not None and atlas.filled == CB
    with torch.no_grad():
        fresh = vq2.decode_indices(torch.tensor([7, 7]).view(2, 1, 1))[0]
    torch.testing.assert_close(atlas.patches[7], fresh, atol=2e-3, rtol=1e-2)  # stored as float16
    assert load_atlas(save_maskgit(tmp_path / "no_atlas", vq, model, atlas=False), vq2) is None
    for a, b in ((vq, vq2), (model, tf2)):
        for k, v in a.state_dict().items():
            assert torch.equal(v, b.state_dict()[k]), k
    assert load_vqgan(folder).config == vq.config
    stage1 = save_vqgan(tmp_path / "v", vq)
    assert load_vqgan(stage1).config == vq.config
    with pytest.raises(BundleError):
        load_maskgit(stage1)
    save_bundle(tmp_path / "half", "maskgit", {"vqgan": vq.config.to_dict()}, {"vqgan": vq.state_dict()})
    with pytest.raises(BundleError, match="transformer"):
        load_maskgit(tmp_path / "half")
    big = MaskGitTransformer(
        MaskGitConfig(codebook_size=CB + 1, grid_size=2, hidden_dim=16, depth=1, heads=2, mlp_dim=16)
    )
    with pytest.raises(ValueError, match="codebook"):
        save_maskgit(tmp_path / "bad", vq, big)
