"""The MaskGIT engine with tiny random weights (these check plumbing, not fill quality)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inpaint_studio.engines import registry
from inpaint_studio.engines.base import (
    BadRequest,
    Cancelled,
    EngineError,
    Preview,
    Progress,
    Request,
    Result,
    Variant,
    at_full_size,
)
from inpaint_studio.engines.followup import followup_of
from inpaint_studio.engines.maskgit import LOCK_KEY, MaskGitEngine, TokenLock, keep_mask_to_grid
from inpaint_studio.engines.seeds import next_take_seed, variant_seed
from inpaint_studio.models.bundle import save_bundle
from inpaint_studio.models.maskgit import MaskGitConfig, MaskGitTransformer, save_maskgit
from inpaint_studio.models.vqgan import VQGAN, VQGANConfig
from tests.engines.device_check import assert_cuda_is_one_line_exit_1

GRID, FACTOR, CB = 8, 4, 64


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    vq = VQGAN(
        VQGANConfig(
            ch=32,
            ch_mult=(1, 1, 2),
            num_res_blocks=1,
            attn_resolutions=(),
            z_channels=32,
            embed_dim=16,
            n_embed=CB,
            resolution=GRID * FACTOR,
        )
    )
    tf = MaskGitTransformer(
        MaskGitConfig(
            codebook_size=CB, grid_size=GRID, hidden_dim=32, depth=1, heads=2, mlp_dim=64, dropout=0.0
        )
    )
    return save_maskgit(tmp_path_factory.mktemp("w") / "tiny", vq, tf)


@pytest.fixture(scope="module")
def engine(weights):
    return MaskGitEngine(weights=weights, device="cpu")


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:90, 0:120]
    img = np.stack([xx * 2, yy * 2, (xx + yy)], -1).astype(np.uint8)
    img = np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((90, 120), np.uint8)
    mask[30:55, 50:85] = 255
    return img, mask


def run(engine, photo, **kw):
    img, mask = photo
    params = {"steps": 5, **kw.pop("params", {})}
    return [at_full_size(e, img) for e in engine.run(Request(img, mask, params=params, **kw))]


def test_registered_and_described():
    entry = registry.describe("maskgit")
    assert entry.info.yields_previews and entry.info.yields_variants
    assert not entry.availability.ok and "inpaint-studio-train maskgit" in entry.availability.reason
    names = [p.name for p in entry.info.params]
    assert {"steps", "schedule", "temperature", "choice_temperature", "token_threshold", "preview"} <= set(
        names
    )
    strategy = next(p for p in entry.info.params if p.name == "strategy")
    assert "original" not in strategy.choices


def test_one_preview_per_step_and_untouched_outside(engine, photo):
    img, mask = photo
    events = run(engine, photo, params={"steps": 6})
    previews = [e for e in events if isinstance(e, Preview)]
    assert [p.step for p in previews] == [1, 2, 3, 4, 5, 6] and all(p.steps == 6 for p in previews)
    results = [e for e in events if isinstance(e, Result)]
    assert len(results) == 1 and isinstance(events[-1], Result)
    for image in [p.image for p in previews] + [results[0].image]:
        assert image.shape == img.shape and image.dtype == np.uint8
        assert np.array_equal(image[mask == 0], img[mask == 0])
    assert not np.array_equal(results[0].image[mask > 0], img[mask > 0])
    # the overlay marks still-unknown token cells, shrinking to nothing at the last step
    unknown = [int((p.overlay > 0).sum()) for p in previews]
    assert all(p.overlay.shape == mask.shape and p.overlay.dtype == np.uint8 for p in previews)
    assert unknown[0] > 0 and unknown == sorted(unknown, reverse=True) and unknown[-1] == 0
    assert not (previews[0].overlay > 0)[mask == 0].all()


def test_bundle_atlas_is_preloaded(engine, photo):
    run(engine, photo, params={"steps": 1})
    assert engine._atlas is not None and engine._atlas.filled == CB


@pytest.mark.parametrize("mode", ["crop", "full", "atlas"])
def test_preview_modes(engine, photo, mode):
    img, mask = photo
    events = run(engine, photo, params={"steps": 3, "preview": mode})
    previews = [e for e in events if isinstance(e, Preview)]
    assert len(previews) == 3
    assert np.array_equal(previews[-1].image[mask == 0], img[mask == 0])


def test_preview_off(engine, photo):
    events = run(engine, photo, params={"steps": 3, "preview": "off"})
    assert not any(isinstance(e, Preview) for e in events)
    assert sum(isinstance(e, Progress) and e.text.startswith("step") for e in events) == 3


def test_same_seed_same_result_and_seeds_differ(engine, photo):
    a = run(engine, photo, seed=11)[-1]
    b = run(engine, photo, seed=11)[-1]
    c = run(engine, photo, seed=12)[-1]
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.meta["tokens"], b.meta["tokens"])
    assert not np.array_equal(a.meta["tokens"], c.meta["tokens"])


def test_variants_batched_and_distinct(engine, photo):
    img, mask = photo
    events = run(engine, photo, seed=4, variants=3)
    variants = [e for e in events if isinstance(e, Variant)]
    result = events[-1]
    assert [v.index for v in variants] == [0, 1, 2]
    assert [v.seed for v in variants] == [variant_seed(4, i) for i in range(3)]
    assert np.array_equal(result.image, variants[0].image)
    tokens = [v.meta["tokens"] for v in variants]
    assert not np.array_equal(tokens[0], tokens[1]) and not np.array_equal(tokens[1], tokens[2])
    for v in variants:
        assert np.array_equal(v.image[mask == 0], img[mask == 0])
    # variant 0 of a batch is the single run with the same seed
    single = run(engine, photo, seed=4)[-1]
    assert np.array_equal(single.meta["tokens"], tokens[0])
    # and every variant reproduces alone from its own seed
    alone = run(engine, photo, seed=variants[2].seed)[-1]
    assert np.array_equal(alone.meta["tokens"], tokens[2])


def test_known_tokens_come_from_the_encoder(engine, photo):
    result = run(engine, photo, params={"prefill": "mean"})[-1]
    unknown = result.meta["unknown"]
    assert unknown.shape == (GRID, GRID) and unknown.any() and not unknown.all()
    steps = result.meta["step_tokens"]
    for k in range(steps.shape[0]):
        assert np.array_equal(steps[k][~unknown], result.meta["tokens"][~unknown])


def test_token_threshold_shrinks_unknown_region(engine, photo):
    loose = run(engine, photo, params={"token_threshold": 0.0})[-1].meta["unknown"]
    strict = run(engine, photo, params={"token_threshold": 0.9})[-1].meta["unknown"]
    assert strict.sum() < loose.sum() and not (strict & ~loose).any()


def test_cancel_within_one_step(engine, photo):
    img, mask = photo
    seen: list[int] = []

    def cancel() -> bool:
        return len(seen) >= 2

    with pytest.raises(Cancelled):
        for event in engine.run(Request(img, mask, params={"steps": 8}), cancel):
            if isinstance(event, Preview):
                seen.append(event.step)
    assert seen == [1, 2]


def test_lock_keeps_locked_tokens(engine, photo):
    first = run(engine, photo, seed=1, params={"steps": 6})[-1]
    unknown = first.meta["unknown"]
    keep = np.zeros_like(unknown)
    rows = np.nonzero(unknown.any(axis=1))[0]
    keep[rows[0]] = unknown[rows[0]]  # keep the top row of the hole as shown after step 3
    shown = first.meta["step_tokens"][2]
    lock = TokenLock(tokens=shown, keep=keep, start_step=2)
    second = run(engine, photo, seed=99, params={"steps": 6}, meta={LOCK_KEY: lock})[-1]
    assert np.array_equal(second.meta["tokens"][keep], shown[keep])
    assert np.array_equal(second.meta["tokens"][~unknown], first.meta["tokens"][~unknown])
    assert not np.array_equal(second.meta["tokens"][unknown & ~keep], first.meta["tokens"][unknown & ~keep])
    assert second.meta["start_step"] == 2 and (second.meta["step_tokens"][:2] == -1).all()
    assert np.array_equal(second.meta["locked"], keep) and not (second.meta["unknown"] & keep).any()
    # a plain dict works too; a wrong grid is refused
    as_dict = {"tokens": shown, "keep": keep, "start_step": 2}
    third = run(engine, photo, seed=99, params={"steps": 6}, meta={LOCK_KEY: as_dict})[-1]
    assert np.array_equal(third.meta["tokens"], second.meta["tokens"])
    with pytest.raises(BadRequest, match="grid"):
        run(engine, photo, meta={LOCK_KEY: TokenLock(shown[:4], keep[:4])})


def test_previews_offer_vary_from_this_step(engine, photo):
    img, mask = photo
    request = Request(img, mask, seed=1, params={"steps": 6})
    events = [at_full_size(e, request.image) for e in engine.run(request)]
    previews = [e for e in events if isinstance(e, Preview)]
    first = events[-1]
    offers = [followup_of(p.meta) for p in previews]
    assert all(f is not None and f.label == "Vary from this step" for f in offers[:-1])
    assert offers[-1] is None, "the last step left nothing undecided"
    unknown = first.meta["unknown"]
    lock = offers[2].meta[LOCK_KEY]
    assert lock.start_step == 3 and np.array_equal(lock.tokens, first.meta["step_tokens"][2])
    assert lock.keep.any() and (unknown & ~lock.keep).any() and not (lock.keep & ~unknown).any()
    # the follow-up run keeps what step 3 decided and decodes only the rest, from step 4
    second = [at_full_size(e, request.image) for e in engine.run(offers[2].apply(request, seed=5))]
    again = [e for e in second if isinstance(e, Preview)]
    assert [p.step for p in again] == [4, 5, 6]
    result = second[-1]
    assert np.array_equal(result.meta["tokens"][lock.keep], lock.tokens[lock.keep])
    assert np.array_equal(result.meta["locked"], lock.keep)
    # from a locked run, the next offer still keeps the earlier lock's tokens
    nested = followup_of(again[0].meta).meta[LOCK_KEY]
    assert not (lock.keep & ~nested.keep).any() and nested.start_step == 4


def test_keep_mask_to_grid_maps_full_size_paint(engine, photo):
    img, mask = photo
    result = run(engine, photo)[-1]
    grid = keep_mask_to_grid(mask, result.meta)
    assert grid.shape == (GRID, GRID)
    assert grid.any() and not (grid & ~result.meta["unknown"]).any()


def test_bad_requests(engine, photo):
    with pytest.raises(BadRequest, match="unconditional"):
        run(engine, photo, params={"class_id": 3})
    with pytest.raises(BadRequest):
        run(engine, photo, params={"steps": 0})
    with pytest.raises(BadRequest):
        run(engine, photo, params={"strategy": "original"})


def test_incomplete_bundle_is_unavailable(tmp_path):
    vq = VQGAN(
        VQGANConfig(
            ch=32,
            ch_mult=(1, 1),
            num_res_blocks=1,
            attn_resolutions=(),
            z_channels=32,
            embed_dim=8,
            n_embed=16,
            resolution=8,
        )
    )
    save_bundle(tmp_path / "half", "maskgit", {"vqgan": vq.config.to_dict()}, {"vqgan": vq.state_dict()})
    avail = MaskGitEngine.availability(tmp_path / "half")
    assert not avail.ok and "transformer" in avail.reason


def test_import_valeoai_and_taming_pair(reference_dir, tmp_path):
    """The golden small pair (taming VQGAN f4/128 + valeoai transformer 4x4/128) as released files."""
    from safetensors.torch import load_file

    vq_state = load_file(str(reference_dir("vqgan") / "vqgan_small_weights.safetensors"))
    tf_state = load_file(str(reference_dir("maskgit") / "maskgit_small_weights.safetensors"))
    root = tmp_path / "pretrained_maskgit"
    (root / "VQGAN").mkdir(parents=True)
    (root / "MaskGIT").mkdir()
    torch.save({"state_dict": {**vq_state, "loss.logvar": torch.zeros(())}}, root / "VQGAN" / "last.ckpt")
    pth = root / "MaskGIT" / "MaskGIT_small.pth"
    torch.save({"iter": 1, "global_epoch": 0, "model_state_dict": tf_state}, pth)
    with pytest.raises(EngineError, match="tokenizer only"):
        MaskGitEngine.import_weights(root / "VQGAN" / "last.ckpt", tmp_path / "x")
    # (the importer assumes the released models' 16 heads; this small one has 4, which changes its
    # logits but not the plumbing checked here: file discovery, key mapping, one bundle, a run)
    dest = MaskGitEngine.import_weights(pth, tmp_path / "imported")
    assert MaskGitEngine.availability(dest).ok
    engine = MaskGitEngine(weights=dest, device="cpu")
    img = np.full((40, 40, 3), 120, np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 10:20] = 255
    events = [
        at_full_size(e, img) for e in engine.run(Request(img, mask, params={"steps": 4, "class_id": 3}))
    ]
    geometry = engine.load({"device": "cpu", "precision": "fp32"}, lambda: False)
    assert (geometry.native_size, geometry.pad_multiple) == (16, 4)
    assert sum(isinstance(e, Preview) for e in events) == 4
    assert np.array_equal(events[-1].image[mask == 0], img[mask == 0])


def test_an_unusable_device_is_one_line_and_exit_1(weights, tmp_path, capsys) -> None:
    assert_cuda_is_one_line_exit_1("maskgit", weights, tmp_path, capsys)


def test_two_takes_of_vary_from_this_step_never_repeat_a_fill(engine, photo):
    """The app runs a follow-up again with ``next_take_seed``: every take's variants are new."""
    img, mask = photo
    request = Request(img, mask, seed=3, variants=2, params={"steps": 6})
    events = list(engine.run(request))
    offer = followup_of([e for e in events if isinstance(e, Preview)][1].meta)
    assert offer is not None
    fills = [tuple(v.meta["tokens"].ravel()) for v in events if isinstance(v, Variant)]
    for take in range(2):
        again = engine.run(offer.apply(request, seed=next_take_seed(request.seed, take)))
        fills += [tuple(v.meta["tokens"].ravel()) for v in again if isinstance(v, Variant)]
    assert len(fills) == 6 and len(set(fills)) == 6
