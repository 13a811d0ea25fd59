"""The engine contract: parameter schema, request validation, registry, the classical engine."""

from __future__ import annotations

import numpy as np
import pytest

from inpaint_studio.engines import registry
from inpaint_studio.engines.base import BadRequest, Cancelled, Progress, Request, Result, at_full_size
from inpaint_studio.engines.params import Param, resolve_params
from inpaint_studio.engines.weights import weights_availability


def test_param_coercion_and_bounds():
    p = Param("steps", "int", 8, minimum=1, maximum=32)
    assert p.coerce("12") == 12 and p.title == "Steps"
    with pytest.raises(ValueError, match="<= 32"):
        p.coerce(40)
    with pytest.raises(ValueError, match="expects an integer"):
        p.coerce("many")
    with pytest.raises(ValueError):
        p.coerce(2.5)
    b = Param("flag", "bool", False)
    assert b.coerce("yes") is True and b.coerce("off") is False
    c = Param("mode", "choice", "a", choices=("a", "b"))
    with pytest.raises(ValueError, match="one of a, b"):
        c.coerce("z")
    with pytest.raises(ValueError):
        Param("bad", "int", 100, maximum=10)  # invalid default is caught at declaration
    assert resolve_params((p, b), {"steps": "3"}) == {"steps": 3, "flag": False}
    with pytest.raises(ValueError, match="unknown parameter"):
        resolve_params((p,), {"stepz": 1})


def _request(**kw):
    img = np.full((40, 50, 3), 128, np.uint8)
    mask = np.zeros((40, 50), np.uint8)
    mask[10:20, 10:20] = 255
    return Request(kw.pop("image", img), kw.pop("mask", mask), **kw)


def test_request_validation_messages():
    with pytest.raises(BadRequest, match="empty"):
        _request(mask=np.zeros((40, 50), np.uint8)).validate()
    with pytest.raises(BadRequest, match="50x40"):
        _request(mask=np.zeros((30, 30), np.uint8)).validate()
    with pytest.raises(BadRequest, match="RGB uint8"):
        _request(image=np.zeros((40, 50), np.uint8)).validate()


def test_classical_engine_fills_and_respects_cancel():
    engine = registry.create("classical")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:80, 0:100]
    img = np.dstack([xx * 2, yy * 3, np.full_like(xx, 90)]).astype(np.uint8)
    mask = np.zeros((80, 100), np.uint8)
    mask[30:50, 40:60] = 255
    damaged = img.copy()
    damaged[mask > 0] = rng.integers(0, 256, (int((mask > 0).sum()), 3), dtype=np.uint8)
    for method in ("telea", "ns"):
        request = Request(damaged, mask, params={"method": method, "radius": 3})
        events = [at_full_size(e, damaged) for e in engine.run(request)]
        assert isinstance(events[0], Progress) and isinstance(events[-1], Result)
        out = events[-1].image
        assert np.array_equal(out[mask == 0], damaged[mask == 0])
        # a smooth gradient is recovered far better than the noise that was there
        err = np.abs(out[mask > 0].astype(int) - img[mask > 0]).mean()
        assert err < 10 < np.abs(damaged[mask > 0].astype(int) - img[mask > 0]).mean()
    with pytest.raises(Cancelled):
        list(engine.run(Request(damaged, mask), cancel=lambda: True))
    with pytest.raises(BadRequest, match="radius"):
        list(engine.run(Request(damaged, mask, params={"radius": 0})))


def test_registry_lists_engines_lazily_and_explains():
    assert "classical" in registry.engine_ids()
    entry = registry.describe("classical")
    assert entry.availability.ok and entry.info.id == "classical" and not entry.info.needs_weights
    with pytest.raises(ValueError, match="unknown engine"):
        registry.engine_class("nope")
    for e in registry.describe_all():  # the store is empty here: weightless engines only, the rest say how
        if e.info.needs_weights:
            reason = e.availability.reason
            assert not e.availability.ok and ("inpaint-studio" in reason or "--weights" in reason), e.info.id
        else:
            assert e.availability.ok and not e.availability.reason, e.info.id


def test_weights_availability_reasons(tmp_path):
    avail = weights_availability("mat", "MAT", None, "train with `inpaint-studio-train mat`")
    assert not avail.ok and "no MAT weights in" in avail.reason and "inpaint-studio-train mat" in avail.reason
    assert "does not exist" in weights_availability("mat", "MAT", tmp_path / "nope", "").reason
    (tmp_path / "w").mkdir()
    assert "not a weights folder" in weights_availability("mat", "MAT", tmp_path / "w", "").reason
    import torch

    from inpaint_studio.models.bundle import save_bundle

    save_bundle(tmp_path / "other", "maskgit", {}, {"x": torch.zeros(1)})
    assert "holds 'maskgit' weights" in weights_availability("mat", "MAT", tmp_path / "other", "").reason
    save_bundle(tmp_path / "mine", "mat", {"a": 1}, {"x": torch.zeros(1)})
    assert weights_availability("mat", "MAT", tmp_path / "mine", "").ok


def test_parameters_refuse_nan_and_infinity_everywhere():
    """The schema is shared by the CLI, the settings form and the engines: NaN must stop there."""
    from inpaint_studio.engines.params import Param

    for kind in ("float", "int"):
        param = Param("context", kind, 1, minimum=0, maximum=4)
        for bad in ("nan", float("nan"), "inf", float("-inf")):
            with pytest.raises(ValueError, match="finite"):
                param.coerce(bad)
    assert Param("context", "float", 1.0, minimum=0, maximum=4).coerce("0.5") == 0.5
