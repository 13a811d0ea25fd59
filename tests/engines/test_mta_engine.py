"""The mta engine on tiny random SD-1.5 parts and a tiny brush branch (offline): the prompt and the branch
steer the fill, variants reproduce alone, cancel within a step, previews every step, exact paste-back,
clear messages for missing weights; parity of one step with a hand-written UNet + branch step and with
the official BrushNet's injected UNet output (../shared/reference/brushnet)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

import sd_tiny  # noqa: E402

from inpaint_studio.engines.base import (  # noqa: E402
    Cancelled,
    EngineError,
    Preview,
    Progress,
    Request,
    Result,
    Variant,
    WeightsMissing,
)
from inpaint_studio.engines.registry import create, describe  # noqa: E402
from inpaint_studio.engines.runtime import Runtime  # noqa: E402
from inpaint_studio.models.bundle import base_model_reference, save_bundle  # noqa: E402
from inpaint_studio.models.components import shared_cache  # noqa: E402
from inpaint_studio.models.diffusion.brushnet import BrushBranch  # noqa: E402

FAST = {
    "steps": 2,
    "guidance": 6.0,
    "resolution": 64,
    "scheduler": "ddim",
    "feather": 0,
    "color_match": False,
}
CPU = Runtime("cpu", "fp32")
TOL = dict(atol=1e-5, rtol=1e-5)  # the reference folder's tolerance


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    sd_tiny.forbid_sockets(monkeypatch)


def _redraw_injections(branch: BrushBranch, seed: int = 2) -> BrushBranch:
    """A trained branch's injections are not zero: draw them so the branch changes the UNet's output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in branch.state_dict().items():
            if name.startswith(("down_injections.", "mid_injection.", "up_injections.")):
                scale = 1 / np.sqrt(tensor.shape[1]) if tensor.ndim == 4 else 0.1
                tensor.copy_(torch.randn(tensor.shape, generator=g) * scale)
    return branch


def _save_branch(branch: BrushBranch, folder, base=None):
    extra = {"kind": "brushnet"}
    if base is not None:
        extra["base_model"] = base_model_reference(base, "sd15")
    return save_bundle(folder, "mta", branch.config.to_dict(), branch.state_dict(), extra)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("mta")
    parts = sd_tiny.tiny_parts(4)  # a text-to-image UNet: 4 input channels
    base = sd_tiny.save_folder(parts, root / "base")
    branch = _redraw_injections(BrushBranch.from_unet(parts["unet"]))
    return {
        "base": base,
        "branch": _save_branch(branch, root / "branch", base),
        "module": branch,
        "root": root,
    }


def _request(variants: int = 1, seed: int = 3, mask=None, prompt: str = "a red apple", **params) -> Request:
    return sd_tiny.box_request(
        variants, seed, mask, {**FAST, **params}, prompt=prompt, negative_prompt="blurry"
    )


def _events(engine, request, cancel=lambda: False):
    return list(engine.run(request, cancel))


def _final(events) -> np.ndarray:
    result = next(e for e in events if isinstance(e, Result))
    return result.composited(_request().image)


def _hole_diff(a, b, mask) -> float:
    return float(np.abs(a.astype(int) - b.astype(int))[mask > 0].mean())


# ------------------------------------------------------------------------------ weights and messages
def test_is_registered_and_says_how_to_get_a_branch():
    entry = describe("mta")
    assert entry.info.takes_prompt and entry.info.yields_variants and entry.info.yields_previews
    assert not entry.availability.ok
    assert "inpaint-studio import mta" in entry.availability.reason
    assert "inpaint-studio-train mta" in entry.availability.reason
    with pytest.raises(WeightsMissing, match="inpaint-studio import mta"):
        _events(create("mta"), _request())


def test_base_model_missing_moved_or_wrong_kind(tiny, tmp_path):
    alone = _save_branch(tiny["module"], tmp_path / "alone")  # names no base model
    avail = describe("mta", alone).availability
    assert avail.ok and "base_model" in avail.reason
    with pytest.raises(WeightsMissing, match="names no base model.*base_model"):
        _events(create("mta", weights=alone), _request())
    # the person picks the base model: it runs
    assert _final(_events(create("mta", weights=alone), _request(base_model=str(tiny["base"])))).shape == (
        64,
        64,
        3,
    )

    moved_base = shutil.copytree(tiny["base"], tmp_path / "base_copy")
    moved = _save_branch(tiny["module"], tmp_path / "moved", moved_base)
    shutil.rmtree(moved_base)
    avail = describe("mta", moved).availability  # trained elsewhere or moved: runs once the setting names it
    assert avail.ok and "not on this computer" in avail.reason and "base_model" in avail.reason
    with pytest.raises(WeightsMissing, match="base_copy.*base_model"):
        _events(create("mta", weights=moved), _request())
    assert _final(_events(create("mta", weights=moved), _request(base_model=str(tiny["base"])))).shape == (
        64,
        64,
        3,
    )

    inpainting = sd_tiny.save_folder(sd_tiny.tiny_parts(9), tmp_path / "inpainting")
    with pytest.raises(EngineError, match="inpainting model"):
        _events(create("mta", weights=alone), _request(base_model=str(inpainting)))

    fork = tmp_path / "brushnet_ckpt"  # a raw BrushNet checkpoint folder, not imported
    fork.mkdir()
    (fork / "config.json").write_text(json.dumps({"_class_name": "BrushNetModel"}))
    (fork / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    with pytest.raises(WeightsMissing, match="import it first with `inpaint-studio import mta"):
        _events(create("mta", weights=fork), _request())


def test_the_model_stores_base_serves_a_branch_that_names_none(tiny, tmp_path):
    """Download BrushNet and the sd15-base entry, and MTA fills: no path to type."""
    from inpaint_studio.core import paths
    from inpaint_studio.engines.mta import find_base
    from inpaint_studio.model_import import import_checkpoint

    alone = _save_branch(tiny["module"], tmp_path / "alone")
    moved_base = shutil.copytree(tiny["base"], tmp_path / "gone")
    moved = _save_branch(tiny["module"], tmp_path / "moved", moved_base)
    shutil.rmtree(moved_base)
    store = import_checkpoint("sd15-base", tiny["base"], paths.engine_models_dir("sd15-base") / "sd15-base")
    avail = describe("mta", alone).availability
    assert avail.ok and avail.reason == ""
    assert find_base(alone).path == tiny["base"].resolve()
    assert _final(_events(create("mta", weights=alone), _request())).shape == (64, 64, 3)
    avail = describe("mta", moved).availability  # its own base is gone: the store's stands in, said so
    assert avail.ok and "not on this computer" in avail.reason and "sd15-base stands in" in avail.reason
    assert find_base(moved).path == tiny["base"].resolve()
    other = shutil.copytree(tiny["base"], tmp_path / "mine")
    assert find_base(alone, str(other)).path == other.resolve()  # the setting wins
    assert find_base(tiny["branch"]).path == tiny["base"].resolve()  # as does the branch's own base
    shutil.rmtree(store)
    assert "names no base model" in describe("mta", alone).availability.reason


# ------------------------------------------------------------------------------ behaviour
def test_prompt_and_branch_steer_the_fill_offline(tiny):
    shared_cache().unload()  # the loads below happen with sockets forbidden
    engine = create("mta", weights=tiny["branch"])
    mask = _request().mask
    apple = _final(_events(engine, _request()))
    mug = _final(_events(engine, _request(prompt="a ceramic mug with a blue glaze")))
    unbranched = _final(_events(engine, _request(conditioning_scale=0.0)))
    # the tiny random CLIP moves the fill by about 0.9 grey levels on average (first run); the same prompt
    # gives the same bytes (last line), so any difference is the prompt's
    assert _hole_diff(apple, mug, mask) > 0.3
    assert _hole_diff(apple, unbranched, mask) > 5  # the branch matters far more: about 17 (first run)
    assert np.array_equal(apple, _final(_events(engine, _request())))  # same inputs, same fill


@pytest.mark.parametrize("scheduler", ["euler_a", "unipc"])
def test_a_variant_reproduces_alone(tiny, scheduler):
    engine = create("mta", weights=tiny["branch"])
    events = _events(engine, _request(variants=3, seed=5, scheduler=scheduler))
    variants = [e for e in events if isinstance(e, Variant)]
    assert len({v.seed for v in variants}) == 3 and variants[0].seed == 5
    alone = _final(_events(engine, _request(variants=1, seed=variants[2].seed, scheduler=scheduler)))
    third = variants[2].composited(_request().image)
    assert np.abs(alone.astype(int) - third.astype(int)).max() <= 1
    assert _hole_diff(variants[0].composited(_request().image), third, _request().mask) > 1


def test_without_guidance_one_unet_call_per_step(tiny):
    engine = create("mta", weights=tiny["branch"])
    model = engine.load(CPU)
    batches = []
    handle = model.parts.unet.register_forward_hook(lambda m, args, out: batches.append(args[0].shape[0]))
    try:
        events = _events(engine, _request(variants=2, guidance=1.0))
    finally:
        handle.remove()
    assert batches == [2, 2]  # two steps, the two variants' latents only: no unconditional half
    a, b = (v.composited(_request().image) for v in events if isinstance(v, Variant))
    assert _hole_diff(a, b, _request().mask) > 1


def test_cancel_stops_within_one_step(tiny):
    engine = create("mta", weights=tiny["branch"])
    model = engine.load(CPU)
    unet_calls, branch_calls = [], []
    handles = [
        model.parts.unet.register_forward_hook(lambda *a: unet_calls.append(1)),
        model.branch.register_forward_hook(lambda *a: branch_calls.append(1)),
    ]
    stop = {"now": False}
    try:
        with pytest.raises(Cancelled):
            for event in engine.run(_request(steps=5), lambda: stop["now"]):
                if isinstance(event, Preview) and event.step == 2:
                    stop["now"] = True
                    before = (len(unet_calls), len(branch_calls))
        assert before == (2, 2)  # guidance: one UNet call on the doubled batch, one branch call per step
        assert len(unet_calls) - before[0] <= 1 and len(branch_calls) - before[1] <= 1
    finally:
        for handle in handles:
            handle.remove()


def test_previews_every_step_and_outside_pixels_byte_identical(tiny):
    mask = np.zeros((64, 64), np.uint8)
    mask[13:45, 19:51] = 255  # off the 8-pixel grid
    mask[12, 19:51] = 128  # a soft rim
    request = _request(
        mask=mask, steps=3, feather=3, color_match=True, scheduler="dpmpp_2m_karras", variants=2
    )
    events = _events(create("mta", weights=tiny["branch"]), request)
    previews = [e for e in events if isinstance(e, Preview)]
    assert [p.step for p in previews] == [1, 2, 3] and all(p.steps == 3 for p in previews)
    outside = mask == 0
    placed = [*previews, *(e for e in events if isinstance(e, (Variant, Result)))]
    assert len(placed) == 3 + 2 + 1
    for event in placed:
        image = event.composited(request.image)
        assert image.shape == request.image.shape
        assert np.array_equal(image[outside], request.image[outside])
    final = next(e for e in events if isinstance(e, Result)).composited(request.image)
    assert not np.array_equal(final[mask == 255], request.image[mask == 255])
    assert [e.done for e in events if isinstance(e, Progress)][-1] == 3


def test_an_mta_export_starts_as_its_brushnet(tiny, tmp_path):
    """MTA's branch (self-attention at every level, edge head) initialised on a BrushNet returns BrushNet's
    residuals exactly, so the export of step 0 fills like the BrushNet it grew from."""
    from diffusers import UNet2DConditionModel

    from inpaint_studio.models.diffusion.mta_branch import init_mta_branch

    unet = UNet2DConditionModel.from_pretrained(tiny["base"], subfolder="unet", local_files_only=True)
    mta, _ = init_mta_branch(unet, tiny["module"])
    export = save_bundle(
        tmp_path / "mta-export",
        "mta",
        mta.config.to_dict(),
        mta.state_dict(),
        {"kind": "mta", "base_model": base_model_reference(tiny["base"], "sd15")},
    )
    ours = _final(_events(create("mta", weights=export), _request()))
    brushnet = _final(_events(create("mta", weights=tiny["branch"]), _request()))
    assert np.abs(ours.astype(int) - brushnet.astype(int)).max() <= 1


# ------------------------------------------------------------------------------ parity with BrushNet
@pytest.fixture(scope="module")
def ref(reference_dir):
    from safetensors.torch import load_file

    from inpaint_studio.models.diffusion.brushnet_import import branch_from_brushnet

    folder = reference_dir("brushnet")
    config = json.loads((folder / "config.json").read_text())
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(**config["unet_config_constructor"])
    unet.load_state_dict(load_file(folder / "tiny_unet_weights.safetensors"), strict=True)
    return {
        "folder": folder,
        "config": config,
        "unet": unet.eval(),
        "branch": branch_from_brushnet(folder / "brushnet_weights.safetensors"),
        "golden": load_file(folder / "brushnet_golden.safetensors"),
    }


def test_one_unguided_step_is_the_official_brushnet_unet(ref):
    from inpaint_studio.models.diffusion.brush_sampling import brush_eps

    g = ref["golden"]
    eps = brush_eps(
        ref["unet"],
        ref["branch"],
        g["noisy_latent"],
        g["timestep"],
        g["encoder_hidden_states"],
        g["masked_image_latent"],
        g["mask_keep"],
        conditioning_scale=1.0,
        guidance=1.0,
    )
    target = g["unet_out_brushnet"]
    assert torch.allclose(eps, target, **TOL), f"max error {(eps - target).abs().max().item():.3g}"


def test_one_guided_step_equals_the_forks_doubled_batch(ref):
    """The fork runs the branch on the doubled guidance batch; ours once, broadcast: the same numbers."""
    from inpaint_studio.models.diffusion.brush_sampling import brush_eps
    from inpaint_studio.models.diffusion.brushnet_hooks import inject_residuals

    g = ref["golden"]
    x, t, cond, keep = g["noisy_latent"], g["timestep"], g["masked_image_latent"], g["mask_keep"]
    uncond = torch.randn(g["encoder_hidden_states"].shape, generator=torch.Generator().manual_seed(4))
    embeds = torch.cat([uncond, g["encoder_hidden_states"]])
    ours = brush_eps(
        ref["unet"], ref["branch"], x, t, embeds, cond, keep, conditioning_scale=0.7, guidance=5.0
    )
    with torch.no_grad():
        doubled = ref["branch"](
            torch.cat([x, x]),
            torch.cat([t, t]),
            torch.cat([cond, cond]),
            torch.cat([keep, keep]),
            conditioning_scale=0.7,
        )
        with inject_residuals(ref["unet"], doubled.residuals):
            eps = ref["unet"](torch.cat([x, x]), torch.cat([t, t]), encoder_hidden_states=embeds).sample
    eps_uncond, eps_text = eps.chunk(2)
    theirs = eps_uncond + 5.0 * (eps_text - eps_uncond)
    assert torch.allclose(ours, theirs, **TOL), f"max error {(ours - theirs).abs().max().item():.3g}"


def test_imported_brushnet_first_step_equals_a_handwritten_step(ref, tmp_path):
    """The public-checkpoint path end to end: `import mta FOLDER`, the engine's loaded parts, and the first
    step of its loop against the step written out by hand (text, noise, conditioning, branch, UNet, CFG, DDIM)."""
    from inpaint_studio.engines.mta import MtaEngine
    from inpaint_studio.models.diffusion.brush_sampling import brush_steps
    from inpaint_studio.models.diffusion.brushnet_hooks import inject_residuals
    from inpaint_studio.models.diffusion.sampling import Sampling, encode_text
    from inpaint_studio.models.diffusion.schedulers import make_scheduler

    parts = sd_tiny.tiny_parts(4)
    parts["unet"].load_state_dict(ref["unet"].state_dict(), strict=True)
    base = sd_tiny.save_folder(parts, tmp_path / "base")
    fork = tmp_path / "brushnet_ckpt"
    fork.mkdir()
    (fork / "config.json").write_text(json.dumps(ref["config"]["brushnet_config_full"]))
    (fork / "diffusion_pytorch_model.safetensors").symlink_to(ref["folder"] / "brushnet_weights.safetensors")
    branch_dir = MtaEngine.import_weights(fork, tmp_path / "store" / "brushnet")

    engine = create("mta", weights=branch_dir)
    request = _request(base_model=str(base))
    assert isinstance(_events(engine, request)[-1], Result)
    model = engine.load(CPU, str(base))
    p = model.parts

    pixels = torch.from_numpy(request.image).permute(2, 0, 1)[None].float() / 255.0 * 2 - 1
    hole = torch.from_numpy(request.mask > 0)[None, None].float()
    sampling = Sampling(steps=3, guidance=6.0, scheduler="ddim")
    state = next(
        brush_steps(
            p,
            model.branch,
            pixels,
            hole,
            "a red apple",
            "blurry",
            [torch.Generator().manual_seed(9)],
            sampling,
            0.8,
        )
    )

    embeds = torch.cat([encode_text(p, ["blurry"]), encode_text(p, ["a red apple"])])
    scheduler = make_scheduler("ddim", p.scheduler_config)
    scheduler.set_timesteps(3)
    t = scheduler.timesteps[0]
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        masked = torch.where(hole > 0.5, -1.0, pixels)
        masked_latent = p.vae.encode(masked).latent_dist.mode() * p.vae.config.scaling_factor
        keep = 1 - torch.nn.functional.max_pool2d(hole, 8)
        x = scheduler.scale_model_input(noise * scheduler.init_noise_sigma, t)
        residuals = model.branch(x, t, masked_latent, keep, conditioning_scale=0.8).residuals
        with inject_residuals(p.unet, residuals):
            eps = p.unet(torch.cat([x, x]), t, encoder_hidden_states=embeds).sample
    eps_uncond, eps_text = eps.chunk(2)
    eps = eps_uncond + 6.0 * (eps_text - eps_uncond)
    want = scheduler.step(eps, t, noise * scheduler.init_noise_sigma).prev_sample
    assert torch.allclose(state.latents, want, **TOL), f"max error {(state.latents - want).abs().max():.3g}"


# ------------------------------------------------------------------------------ real weights
@pytest.mark.gpu
def test_real_base_model_and_brushnet_on_cuda(tmp_path):
    base, brushnet = os.environ.get("INPAINT_STUDIO_SD15_BASE"), os.environ.get("INPAINT_STUDIO_BRUSHNET")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    if not base or not brushnet:
        pytest.skip(
            "set INPAINT_STUDIO_SD15_BASE (SD-1.5 text-to-image) and INPAINT_STUDIO_BRUSHNET (checkpoint)"
        )
    from inpaint_studio.engines.mta import MtaEngine

    branch = MtaEngine.import_weights(brushnet, tmp_path / "brushnet")
    image = sd_tiny.gradient_image(512)
    mask = np.zeros((512, 512), np.uint8)
    mask[160:352, 180:340] = 255
    request = Request(
        image,
        mask,
        prompt="a ceramic mug with a blue glaze",
        seed=1,
        variants=2,
        params={"steps": 20, "device": "cuda", "precision": "fp16", "base_model": base},
    )
    events = _events(create("mta", weights=branch), request)
    final = next(e for e in events if isinstance(e, Result)).composited(image)
    assert np.array_equal(final[mask == 0], image[mask == 0])
    assert final[mask > 0].std() > 5  # a real model paints something, not a flat colour
    assert sum(isinstance(e, Preview) for e in events) == 20
