"""The inpnet engine with tiny exported weights (plumbing, not fill quality)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inpaint_studio.core import paths
from inpaint_studio.engines import registry
from inpaint_studio.engines.base import (
    BadRequest,
    Cancelled,
    EngineError,
    Request,
    Result,
    WeightsMissing,
    at_full_size,
)
from inpaint_studio.engines.inpnet import InpNetEngine
from inpaint_studio.models.bundle import save_bundle
from inpaint_studio.models.mae.inpnet import InpNet, InpNetConfig
from tests.engines.device_check import assert_cuda_is_one_line_exit_1

TINY = InpNetConfig(
    img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, skip_layers=(2, 1), bridge_dim=32,
    bridge_depth=1, bridge_heads=2, decoder_channels=(16, 16, 8),
)  # fmt: skip


def _export(folder):
    torch.manual_seed(0)
    model = InpNet(**TINY.to_dict()).eval()
    return save_bundle(folder, "inpnet", TINY.to_dict(), model.state_dict(), {"hole_threshold": 0.25})


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("w") / "tiny")


@pytest.fixture
def photo():
    yy, xx = np.mgrid[0:50, 0:70]
    image = np.stack([xx * 3, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)
    mask = np.zeros((50, 70), np.uint8)
    mask[15:30, 20:45] = 255
    return image, mask


def _result(engine, image, mask, **params):
    events = [at_full_size(e, image) for e in engine.run(Request(image, mask, params=params))]
    assert isinstance(events[-1], Result)
    return events[-1].image


def test_registered_and_unavailable_without_weights():
    assert "inpnet" in registry.engine_ids()
    avail = registry.describe("inpnet").availability
    assert not avail.ok and "inpaint-studio-train inpnet" in avail.reason
    with pytest.raises(WeightsMissing, match="no InP-Net weights"):
        list(
            InpNetEngine(device="cpu").run(
                Request(np.zeros((8, 8, 3), np.uint8), np.full((8, 8), 255, np.uint8))
            )
        )


def test_fills_only_the_hole_deterministically(weights, photo):
    image, mask = photo
    engine = registry.create("inpnet", weights=weights, device="cpu")
    out = _result(engine, image, mask)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert not np.array_equal(out[mask > 0], image[mask > 0])
    assert np.array_equal(out, _result(engine, image, mask))
    geometry = engine.load({"device": "cpu", "precision": "fp32"}, lambda: False)
    assert (geometry.native_size, geometry.pad_multiple) == (32, 8)  # taken from the weights


def test_hole_threshold_changes_what_the_encoder_sees(weights, photo):
    image, mask = photo
    mask = np.zeros_like(mask)
    mask[10:40, 10:60:3] = 255  # thin stripes: only a low threshold drops their patches
    engine = InpNetEngine(weights=weights, device="cpu")
    low = _result(engine, image, mask, hole_threshold=0.0, strategy="resize")
    high = _result(engine, image, mask, hole_threshold=0.9, strategy="resize")
    assert not np.array_equal(low, high)
    with pytest.raises(BadRequest):
        _result(engine, image, mask, hole_threshold=2.0)


def test_newest_weights_in_the_model_store_are_used(photo):
    _export(paths.engine_models_dir("inpnet") / "from-training")
    assert registry.describe("inpnet").availability.ok
    image, mask = photo
    assert _result(InpNetEngine(device="cpu"), image, mask).shape == image.shape


def test_cancel_stops_the_run(weights, photo):
    image, mask = photo
    with pytest.raises(Cancelled):
        list(InpNetEngine(weights=weights, device="cpu").run(Request(image, mask), cancel=lambda: True))


def test_broken_weights_give_a_clear_error(tmp_path, photo):
    folder = _export(tmp_path / "bad")
    cfg = (folder / "config.json").read_text().replace('"depth": 2', '"depth": 3')
    (folder / "config.json").write_text(cfg)
    image, mask = photo
    with pytest.raises(EngineError, match="cannot load InP-Net weights"):
        _result(InpNetEngine(weights=folder, device="cpu"), image, mask)
    other = save_bundle(tmp_path / "mat", "mat", {}, {"x": torch.zeros(1)})
    assert "not InP-Net" in InpNetEngine.availability(other).reason


def test_an_unusable_device_is_one_line_and_exit_1(weights, tmp_path, capsys) -> None:
    assert_cuda_is_one_line_exit_1("inpnet", weights, tmp_path, capsys)
