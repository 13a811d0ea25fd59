"""The MAT engine with a tiny random-weight model (plumbing and reproducibility, not fill quality).

The tiny model is built for 128x128, so the engine frames requests at 128 (it takes its native
size from the weights, as a 256 official checkpoint would need).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inpaint_studio.engines import registry
from inpaint_studio.engines.base import (
    Cancelled,
    Progress,
    Request,
    Result,
    Variant,
    WeightsMissing,
    at_full_size,
)
from inpaint_studio.engines.followup import followup_of
from inpaint_studio.engines.mat import MatEngine
from inpaint_studio.engines.runtime import DeviceUnavailable
from inpaint_studio.engines.seeds import variant_seed
from inpaint_studio.models.bundle import save_bundle
from inpaint_studio.models.mat import MatConfig, MatGenerator
from tests.engines.device_check import assert_cuda_is_one_line_exit_1


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    config = MatConfig.tiny(img_resolution=128)
    model = MatGenerator(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.7)
    return save_bundle(tmp_path_factory.mktemp("w") / "tiny", "mat", config.to_dict(), model.state_dict())


@pytest.fixture(scope="module")
def engine(weights):
    return MatEngine(weights=weights, device="cpu")


@pytest.fixture(scope="module")
def photo():
    yy, xx = np.mgrid[0:150, 0:200]
    image = np.stack([xx, yy, (xx + yy) // 2], -1).astype(np.uint8)
    mask = np.zeros((150, 200), np.uint8)
    mask[40:110, 60:150] = 255
    return image, mask


def run(engine, photo, **kwargs):
    image, mask = photo
    params = kwargs.pop("params", {})
    request = Request(
        image,
        mask,
        seed=kwargs.pop("seed", 7),
        variants=kwargs.pop("variants", 3),
        params=params,
        meta=kwargs.pop("meta", {}),
    )
    return [at_full_size(e, request.image) for e in engine.run(request, **kwargs)]


def variants(events) -> list[Variant]:
    return [e for e in events if isinstance(e, Variant)]


def test_registered_and_reports_missing_weights(tmp_path) -> None:
    assert "mat" in registry.engine_ids()
    entry = registry.describe("mat")
    assert entry.info.yields_variants and entry.info.native_size == 512 and entry.info.pad_multiple == 512
    avail = MatEngine.availability()
    assert not avail.ok and "inpaint-studio import mat" in avail.reason
    with pytest.raises(WeightsMissing):
        list(
            MatEngine(device="cpu").run(
                Request(np.zeros((8, 8, 3), np.uint8), np.full((8, 8), 255, np.uint8))
            )
        )


def test_variants_differ_and_keep_every_pixel_outside_the_mask(engine, photo) -> None:
    image, mask = photo
    events = run(engine, photo)
    found = variants(events)
    assert [v.index for v in found] == [0, 1, 2]
    assert isinstance(events[-1], Result) and np.array_equal(events[-1].image, found[0].image)
    assert any(isinstance(e, Progress) for e in events)
    outside = mask == 0
    for v in found:
        assert v.image.shape == image.shape and v.image.dtype == np.uint8
        assert np.array_equal(v.image[outside], image[outside])
        assert (
            v.seed == variant_seed(7, v.index)
            and v.meta["seed"] == v.seed
            and v.meta["index"] == v.index
            and v.meta["z_source"] == "seed"
        )
    inside = mask > 0
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(found[a].image[inside].astype(int) - found[b].image[inside]).mean() > 1.0


def test_same_seed_same_variants_other_seed_others(engine, photo) -> None:
    first = [v.image for v in variants(run(engine, photo))]
    again = [v.image for v in variants(run(engine, photo))]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    other = [v.image for v in variants(run(engine, photo, seed=8))]
    assert not np.array_equal(first[0], other[0])


def test_a_variant_is_reproducible_on_its_own(engine, photo) -> None:
    """Variant 2 of seed 7 alone (start_index 2), and a one-variant run with variant 2's own seed,
    equal variant 2 of the full run; batching changes only float rounding (the batch path
    modulates activations instead of weights)."""
    full = variants(run(engine, photo, params={"batch_size": 1}))
    alone = variants(run(engine, photo, variants=1, params={"start_index": 2, "batch_size": 1}))
    assert alone[0].index == 2 and np.array_equal(alone[0].image, full[2].image)
    by_seed = variants(run(engine, photo, variants=1, seed=full[2].seed, params={"batch_size": 1}))
    assert by_seed[0].seed == full[2].seed and np.array_equal(by_seed[0].image, full[2].image)
    batched = variants(run(engine, photo, params={"batch_size": 3}))
    for a, b in zip(full, batched, strict=True):
        diff = np.abs(a.image.astype(int) - b.image)
        assert diff.max() <= 2 and (diff > 0).mean() < 0.01


def test_more_like_this_steps_around_the_chosen_variant_and_chains(engine, photo) -> None:
    chosen = variants(run(engine, photo, params={"batch_size": 1}))[1]
    offer = followup_of(chosen.meta)  # what the app's "More like this" button sends
    assert offer is not None and offer.meta == {"mat_near": ((chosen.seed, 0.0),)} and not offer.params
    same = variants(run(engine, photo, variants=1, seed=99, params={"spread": 0.0}, meta=dict(offer.meta)))
    assert np.array_equal(same[0].image, chosen.image)
    near = variants(run(engine, photo, variants=2, seed=99, meta=dict(offer.meta)))
    assert near[0].meta["z_source"] == "near" and near[0].meta["mat_near"] == ((chosen.seed, 0.0),)
    assert not np.array_equal(near[0].image, chosen.image) and not np.array_equal(
        near[0].image, near[1].image
    )
    # a near variant reproduces alone from its seed and chain, and offers "More like this" itself
    again = variants(
        run(engine, photo, variants=1, seed=near[1].seed, meta={"mat_near": near[1].meta["mat_near"]})
    )
    assert np.array_equal(again[0].image, near[1].image)
    chained = followup_of(near[1].meta)
    assert chained is not None and chained.meta["mat_near"] == ((chosen.seed, 0.0), (near[1].seed, 0.3))
    deeper = variants(run(engine, photo, variants=1, seed=5, meta=dict(chained.meta)))
    assert not np.array_equal(deeper[0].image, near[1].image)
    unchanged = variants(
        run(engine, photo, variants=1, seed=5, params={"spread": 0.0}, meta=dict(chained.meta))
    )
    assert np.array_equal(unchanged[0].image, near[1].image)


def test_noise_modes(engine, photo) -> None:
    images = {
        m: variants(run(engine, photo, variants=1, params={"noise_mode": m}))[0].image
        for m in ("const", "random", "none")
    }
    assert not np.array_equal(images["const"], images["none"])
    assert not np.array_equal(images["random"], images["none"])
    again = variants(run(engine, photo, variants=1, params={"noise_mode": "random"}))[0].image
    assert np.array_equal(images["random"], again)


def test_cancel_stops_within_one_step(engine, photo) -> None:
    seen: list[Variant] = []
    image, mask = photo
    request = Request(image, mask, seed=3, variants=4, params={"batch_size": 1})
    with pytest.raises(Cancelled):
        for event in engine.run(request, cancel=lambda: bool(seen)):
            if isinstance(event, Variant):
                seen.append(event)
    assert len(seen) == 1
    polls = {"n": 0}

    def cancel_after_encoding() -> bool:
        polls["n"] += 1
        return polls["n"] > 2  # the checks before loading and before encoding pass

    got: list[Variant] = []
    with pytest.raises(Cancelled):
        for event in engine.run(request, cancel=cancel_after_encoding):
            if isinstance(event, Variant):
                got.append(event)
    assert not got and polls["n"] == 3  # stopped at the first check after the encoding


def test_bf16_on_cpu_runs_and_fp16_is_refused(engine, photo) -> None:
    image, mask = photo
    fp32 = variants(run(engine, photo, variants=1))[0].image
    bf16 = variants(run(engine, photo, variants=1, params={"precision": "bf16"}))
    assert bf16[0].meta["precision"] == "bf16"
    assert np.array_equal(bf16[0].image[mask == 0], image[mask == 0])
    assert np.abs(bf16[0].image.astype(int) - fp32).mean() < 40  # random tiny weights: coarse check only
    with pytest.raises(DeviceUnavailable, match="fp16 needs a GPU"):
        run(engine, photo, variants=1, params={"precision": "fp16"})


def test_an_unusable_device_is_one_line_and_exit_1(weights, tmp_path, capsys) -> None:
    assert_cuda_is_one_line_exit_1("mat", weights, tmp_path, capsys)


def test_two_engines_asking_for_the_same_weights_share_one_load(weights, monkeypatch) -> None:
    """The component cache hands both engines one generator: one load, the same object."""
    from inpaint_studio.engines import mat as mat_engine
    from inpaint_studio.models.components import shared_cache

    shared_cache().unload()
    loads = []
    real = mat_engine._load_generator

    def counting(path, runtime):
        loads.append(path)
        return real(path, runtime)

    monkeypatch.setattr(mat_engine, "_load_generator", counting)
    first, second = MatEngine(weights=weights, device="cpu"), MatEngine(weights=weights, device="cpu")
    params = {"device": "cpu", "precision": "fp32"}
    assert first.load(params, lambda: False) == second.load(params, lambda: False)
    assert len(loads) == 1 and first._model is second._model
    second.load({"device": "cpu", "precision": "bf16"}, lambda: False)  # another dtype is another part
    assert len(loads) == 2
    shared_cache().unload()
    first.load(params, lambda: False)
    assert len(loads) == 3, "after an unload the next use loads again"
