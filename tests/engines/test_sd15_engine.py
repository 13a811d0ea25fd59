"""The sd15 engine on tiny random SD-1.5 parts (offline): parity with diffusers' inpainting pipeline,
previews, variants that reproduce alone, cancel, exact paste-back, no network."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

import sd_tiny  # noqa: E402

from inpaint_studio.engines.base import Cancelled, Preview, Progress, Request, Result, Variant, WeightsMissing  # noqa: E402
from inpaint_studio.engines.registry import create, describe  # noqa: E402
from inpaint_studio.models.components import shared_cache  # noqa: E402

FAST = {
    "steps": 2,
    "guidance": 6.0,
    "resolution": 64,
    "scheduler": "ddim",
    "feather": 0,
    "color_match": False,
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    parts = sd_tiny.tiny_parts(9)
    return sd_tiny.save_folder(parts, tmp_path_factory.mktemp("sd15") / "tiny")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    sd_tiny.forbid_sockets(monkeypatch)


def _request(variants: int = 1, seed: int = 3, mask: np.ndarray | None = None, **params) -> Request:
    return sd_tiny.box_request(
        variants, seed, mask, {**FAST, **params}, prompt="a red apple", negative_prompt="blurry"
    )


def _events(engine, request, cancel=lambda: False):
    return list(engine.run(request, cancel))


IMAGE = sd_tiny.gradient_image(64)


def _full(event) -> np.ndarray:
    """The event's picture at full size (fills come placed at the mask's box)."""
    return event.composited(IMAGE)


def _final(events) -> np.ndarray:
    return _full(next(e for e in events if isinstance(e, Result)))


def test_is_registered_and_needs_a_model():
    entry = describe("sd15")
    assert entry.info.takes_prompt and entry.info.yields_variants and entry.info.yields_previews
    assert not entry.availability.ok and "Stable Diffusion 1.5" in entry.availability.reason
    with pytest.raises(WeightsMissing, match="no Stable Diffusion 1.5 model"):
        _events(create("sd15"), _request())


@pytest.mark.parametrize("scheduler", ["ddim", "euler_a"])
def test_matches_diffusers_inpaint_pipeline(model_dir, scheduler):
    """The same parts, noise and masked-image latents through StableDiffusionInpaintPipeline."""
    from diffusers import StableDiffusionInpaintPipeline
    from PIL import Image

    from inpaint_studio.models.diffusion.sampling import encode_image
    from inpaint_studio.models.diffusion.schedulers import make_scheduler

    shared_cache().unload()  # the load below must happen with sockets forbidden too
    engine = create("sd15", weights=model_dir)
    request = _request(variants=2, scheduler=scheduler)
    events = _events(engine, request)
    ours = [_full(e) for e in events if isinstance(e, Variant)]

    parts = engine.load(engine_runtime())
    pixels = torch.from_numpy(request.image).permute(2, 0, 1)[None].float() / 255.0 * 2 - 1
    hole = torch.from_numpy(request.mask > 0)[None, None]
    masked_latents = encode_image(parts, pixels * ~hole)
    pipe = StableDiffusionInpaintPipeline(
        vae=parts.vae,
        text_encoder=parts.text_encoder,
        tokenizer=parts.tokenizer,
        unet=parts.unet,
        scheduler=make_scheduler(scheduler, parts.scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    seeds = [e.seed for e in events if isinstance(e, Variant)]
    theirs = pipe(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        image=Image.fromarray(request.image),
        mask_image=Image.fromarray(request.mask),
        masked_image_latents=masked_latents,
        height=64,
        width=64,
        num_inference_steps=2,
        guidance_scale=6.0,
        strength=1.0,
        num_images_per_prompt=len(seeds),
        generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
        output_type="np",
    ).images
    hole_np = request.mask > 0
    for mine, ref in zip(ours, theirs, strict=True):
        ref_u8 = np.clip(np.rint(ref * 255), 0, 255).astype(np.uint8)
        diff = np.abs(mine.astype(int) - ref_u8.astype(int))[hole_np]
        assert diff.max() <= 1, f"{scheduler}: max difference {diff.max()} inside the hole"
    assert np.abs(ours[0].astype(int) - ours[1].astype(int))[hole_np].mean() > 1  # two seeds, two fills


def engine_runtime():
    from inpaint_studio.engines.runtime import Runtime

    return Runtime("cpu", "fp32")


def test_output_slice_is_stable_for_a_fixed_seed(model_dir):
    """A regression pin (value of the first run, torch 2.13 / diffusers 0.42): catches silent changes to
    the loop; the parity test above is what says the loop is right."""
    out = _final(_events(create("sd15", weights=model_dir), _request(seed=11)))
    got = out[30:33, 30:33, 0].astype(int).tolist()
    assert np.abs(np.array(got) - np.array(EXPECTED_SLICE)).max() <= 2, got


EXPECTED_SLICE = [[172, 161, 113], [140, 139, 123], [128, 105, 67]]  # first run, 2026-12-01


def test_previews_every_step_and_exact_paste_back(model_dir):
    mask = np.zeros((64, 64), np.uint8)
    mask[13:45, 19:51] = 255  # off the 8-pixel grid
    mask[12, 19:51] = 128  # a soft rim
    request = _request(mask=mask, steps=3, feather=3, color_match=True, scheduler="dpmpp_2m_karras")
    events = _events(create("sd15", weights=model_dir), request)
    previews = [e for e in events if isinstance(e, Preview)]
    assert [p.step for p in previews] == [1, 2, 3] and all(p.steps == 3 for p in previews)
    outside = mask == 0
    for image in [_full(p) for p in previews] + [_final(events)]:
        assert image.shape == request.image.shape
        assert np.array_equal(image[outside], request.image[outside])
    assert not np.array_equal(_final(events)[mask == 255], request.image[mask == 255])
    assert [e.done for e in events if isinstance(e, Progress)][-1] == 3


def test_full_decode_previews_every_k_steps(model_dir):
    events = _events(create("sd15", weights=model_dir), _request(steps=2, decode_every=1))
    previews = [e for e in events if isinstance(e, Preview)]
    fast = [
        e for e in _events(create("sd15", weights=model_dir), _request(steps=2)) if isinstance(e, Preview)
    ]
    hole = _request().mask > 0
    # the last step's decoded estimate is the fill itself (DDIM's x0 at the last step = its output);
    # the colour projection is a rough approximation of it
    err_decoded = np.abs(_full(previews[-1]).astype(int) - _final(events).astype(int))[hole].mean()
    err_fast = np.abs(_full(fast[-1]).astype(int) - _final(events).astype(int))[hole].mean()
    assert len(previews) == 2 and err_decoded < err_fast


@pytest.mark.parametrize("scheduler", ["euler_a", "unipc"])
def test_a_variant_reproduces_alone(model_dir, scheduler):
    engine = create("sd15", weights=model_dir)
    variants = [
        e
        for e in _events(engine, _request(variants=3, seed=5, scheduler=scheduler))
        if isinstance(e, Variant)
    ]
    assert len({v.seed for v in variants}) == 3 and variants[0].seed == 5
    alone = _final(_events(engine, _request(variants=1, seed=variants[2].seed, scheduler=scheduler)))
    assert np.abs(alone.astype(int) - _full(variants[2]).astype(int)).max() <= 1


def test_cancel_stops_within_one_step(model_dir):
    engine = create("sd15", weights=model_dir)
    parts = engine.load(engine_runtime())
    calls = []
    handle = parts.unet.register_forward_hook(lambda *a: calls.append(1))
    stop = {"now": False}
    try:
        stream = engine.run(_request(steps=5), lambda: stop["now"])
        with pytest.raises(Cancelled):
            for event in stream:
                if isinstance(event, Preview) and event.step == 2:
                    stop["now"] = True
                    before = len(calls)
        assert len(calls) - before <= 1 and before == 2
    finally:
        handle.remove()


@pytest.mark.gpu
def test_real_sd15_inpainting_model_on_cuda():
    path = os.environ.get("INPAINT_STUDIO_SD15")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    if not path:
        pytest.skip("set INPAINT_STUDIO_SD15 to a local SD-1.5 inpainting folder or file")
    image = sd_tiny.gradient_image(512)
    mask = np.zeros((512, 512), np.uint8)
    mask[160:352, 180:340] = 255
    request = Request(
        image,
        mask,
        prompt="a ceramic mug",
        seed=1,
        variants=2,
        params={"steps": 20, "device": "cuda", "precision": "fp16"},
    )
    events = _events(create("sd15", weights=path), request)
    final = next(e for e in events if isinstance(e, Result)).composited(image)
    assert np.array_equal(final[mask == 0], image[mask == 0])
    assert final[mask > 0].std() > 5  # a real model paints something, not a flat colour
    assert sum(isinstance(e, Preview) for e in events) == 20


def test_without_diffusers_the_engine_says_what_to_install(monkeypatch, model_dir):
    import importlib.util

    import inpaint_studio.engines.sd15 as sd15

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "diffusers" else real(name, *a)
    )
    avail = sd15.SD15Engine.availability(model_dir)
    assert not avail.ok and "pip install diffusers" in avail.reason


def test_cli_fill_with_a_local_model_and_a_bad_path(model_dir, tmp_path, capsys):
    from inpaint_studio.cli import main
    from inpaint_studio.core.imageio import load_image, save_image

    request = _request()
    save_image(tmp_path / "in.png", request.image)
    save_image(tmp_path / "mask.png", np.repeat(request.mask[..., None], 3, axis=2))
    args = [
        "fill",
        str(tmp_path / "in.png"),
        "--mask",
        str(tmp_path / "mask.png"),
        "--engine",
        "sd15",
        "--prompt",
        "a red apple",
        "--set",
        "steps=2",
        "--set",
        "resolution=64",
    ]
    assert main([*args, "-o", str(tmp_path / "out.png"), "--weights", str(model_dir)]) == 0
    out = load_image(tmp_path / "out.png")
    assert np.array_equal(out[request.mask == 0], request.image[request.mask == 0])
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path / "x.png"), "--weights", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]


def test_strength_below_one_runs_fewer_steps_and_a_text_to_image_unet_inpaints(tmp_path):
    """strength 0.5 of 4 steps denoises 2; a 4-channel UNet takes the latent-blend path of the pipeline."""
    folder = sd_tiny.save_folder(sd_tiny.tiny_parts(4), tmp_path / "base")
    events = _events(create("sd15", weights=folder), _request(steps=4, strength=0.5))
    steps = [e for e in events if isinstance(e, Preview)]
    assert [p.step for p in steps] == [1, 2] and steps[-1].steps == 2
    final = _final(events)
    hole = _request().mask > 0
    assert np.array_equal(final[~hole], IMAGE[~hole]) and not np.array_equal(final[hole], IMAGE[hole])


def test_an_unusable_device_is_one_line_and_exit_1(model_dir, tmp_path, capsys):
    from tests.engines.device_check import assert_cuda_is_one_line_exit_1

    assert_cuda_is_one_line_exit_1("sd15", model_dir, tmp_path, capsys)
