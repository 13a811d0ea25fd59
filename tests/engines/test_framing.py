"""The framing guarantee: outside the mask, every pixel comes back byte-identical."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inpaint_studio.engines.base import EngineInfo, Event, Preview, Request, Result, at_full_size
from inpaint_studio.engines.framed import FramedEngine
from inpaint_studio.engines.framing import feather_alpha, feathered_placement, framing_params, plan_frame


class NoiseEngine(FramedEngine):
    """Returns noise at model size: the worst case for leaking into the kept region."""

    info = EngineInfo(
        id="noise", title="Noise", description="test", params=framing_params(), needs_weights=False
    )
    native = None
    seen_shapes: list = []

    def fill(self, work, request, params, cancel) -> Iterator[Event]:
        image, mask = work.image, work.mask
        assert image.shape[:2] == mask.shape and image.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        type(self).seen_shapes.append(image.shape)
        rng = np.random.default_rng(request.seed)
        yield Preview(rng.integers(0, 256, image.shape, dtype=np.uint8), 1, 1, overlay=mask)
        yield Result(rng.integers(0, 256, image.shape, dtype=np.uint8))


def _engine(native: int | None, multiple: int) -> NoiseEngine:
    info = EngineInfo(
        id="noise",
        title="Noise",
        description="test",
        params=framing_params(),
        needs_weights=False,
        native_size=native,
        pad_multiple=multiple,
    )
    return type("SizedNoise", (NoiseEngine,), {"info": info})()


@st.composite
def image_and_mask(draw):
    h = draw(st.integers(1, 90))
    w = draw(st.integers(1, 90))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    kind = draw(st.sampled_from(["blob", "sparse", "soft", "full", "pixel"]))
    mask = np.zeros((h, w), np.uint8)
    if kind == "blob":
        y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        mask[y0 : y0 + draw(st.integers(1, h)), x0 : x0 + draw(st.integers(1, w))] = 255
    elif kind == "sparse":
        mask[rng.random((h, w)) < 0.05] = 255
    elif kind == "soft":
        mask = rng.integers(0, 256, (h, w), dtype=np.uint8)
        mask[rng.random((h, w)) < 0.5] = 0
    elif kind == "full":
        mask[:] = 255
    mask[draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))] = 255  # never empty
    return image, mask


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=image_and_mask(),
    native=st.sampled_from([None, 16, 32, 64]),
    multiple=st.sampled_from([1, 8, 16]),
    strategy=st.sampled_from(["crop", "resize", "original"]),
    context=st.floats(0.0, 2.0),
    feather=st.integers(0, 5),
)
def test_outside_mask_is_byte_identical(data, native, multiple, strategy, context, feather):
    image, mask = data
    engine = _engine(native, multiple)
    request = Request(
        image, mask, seed=1, params={"strategy": strategy, "context": context, "feather": feather}
    )
    events = [at_full_size(e, request.image) for e in engine.run(request)]
    for event in events:
        if isinstance(event, (Preview, Result)):
            out = event.image
            assert out.shape == image.shape and out.dtype == np.uint8
            assert np.array_equal(out[mask == 0], image[mask == 0])
    assert events[0].overlay.shape == mask.shape  # overlays come back at full size too


def test_crop_contains_the_hole_and_is_square_for_native_models():
    mask = np.zeros((600, 1000), np.uint8)
    mask[100:150, 700:760] = 255
    frame = plan_frame(mask.shape, mask, native_size=512, pad_multiple=512, strategy="crop", context=0.5)
    x0, y0, x1, y1 = frame.box
    assert x0 <= 700 and x1 >= 760 and y0 <= 100 and y1 >= 150
    assert (x1 - x0) == (y1 - y0) == 512  # squared up to the native size for context
    assert frame.padded_size == (512, 512)


def test_large_crop_is_downscaled_to_native_and_padded_to_multiple():
    mask = np.zeros((3000, 4000), np.uint8)
    mask[500:2500, 1000:1500] = 255
    frame = plan_frame(mask.shape, mask, native_size=256, pad_multiple=16, strategy="crop", context=0.1)
    assert max(frame.work_size) == 256
    assert all(s % 16 == 0 for s in frame.padded_size)
    whole = plan_frame(mask.shape, mask, native_size=256, pad_multiple=16, strategy="resize")
    assert whole.box == (0, 0, 4000, 3000) and whole.work_size == (256, 192)
    orig = plan_frame(mask.shape, mask, native_size=256, pad_multiple=16, strategy="original")
    assert orig.work_size == (4000, 3000) and orig.padded_size == (4000, 3008)


def test_model_mask_never_loses_hole_pixels_when_shrinking():
    mask = np.zeros((1000, 1000), np.uint8)
    mask[500, 500] = 255  # a single pixel hole survives a 4x downscale
    frame = plan_frame(mask.shape, mask, native_size=250, strategy="resize")
    assert frame.mask_to_model(mask).any()


def test_feather_ramps_inside_only():
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 255
    alpha = feather_alpha(mask, feather=5)
    assert alpha[20, 20] == 1.0 and 0 < alpha[10, 20] < 1.0 and alpha[5, 5] == 0
    assert (alpha[mask > 0] > 0).all()


def test_a_rectangle_mask_is_feathered_at_its_bounding_box_but_not_at_the_image_border():
    """The weight is computed at the mask's box: the box's own edge is still the mask's edge (an old
    rule computed the ramp on the box alone and gave a rectangle no feather at all), while a hole that
    reaches the picture's border takes the whole fill there."""
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 20:50] = 255
    placement = feathered_placement(mask, (20, 10, 50, 30), feather=5)
    weight = placement.alpha
    assert weight[10, 15] == 255 and 0 < weight[0, 15] < 128 and 0 < weight[10, 0] < 128
    assert np.all(np.diff(weight[10, :6].astype(int)) >= 0)
    edge = np.zeros((40, 60), np.uint8)
    edge[0:20, 0:30] = 255  # touches the top and left borders of the picture
    weight = feathered_placement(edge, (0, 0, 30, 20), feather=5).alpha
    assert weight[0, 0] == 255 and weight[0, 10] == 255 and weight[10, 29] < 128
    assert np.array_equal(feathered_placement(mask, (20, 10, 50, 30), 0).alpha, mask[10:30, 20:50])


def test_bad_strategy_is_rejected():
    with pytest.raises(Exception, match="strategy"):
        list(
            _engine(None, 1).run(
                Request(
                    np.zeros((4, 4, 3), np.uint8), np.full((4, 4), 255, np.uint8), params={"strategy": "zoom"}
                )
            )
        )
