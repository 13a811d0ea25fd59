"""Loading SD-1.5 parts offline: a diffusers folder, a single LDM-layout .safetensors / .ckpt, 9 and 4
input channels, through the shared cache, with every socket forbidden."""

from __future__ import annotations

import json
import socket

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import sd_tiny  # noqa: E402

from inpaint_studio.models.components import ComponentCache  # noqa: E402
from inpaint_studio.models.diffusion.loading import load_sd15, read_checkpoint, skeleton_dir  # noqa: E402
from inpaint_studio.models.diffusion.source import ModelSourceError, model_source  # noqa: E402


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(self, address):  # noqa: ANN001
        raise AssertionError(f"a socket was opened to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture(scope="module")
def tiny():
    return sd_tiny.tiny_parts(9)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k].float(), sb[k].float()), k


def test_diffusers_folder_loads_offline_and_is_shared(tmp_path, tiny, no_network):
    folder = sd_tiny.save_folder(tiny, tmp_path / "model")
    cache = ComponentCache()
    parts = load_sd15(model_source(folder), "cpu", "fp32", cache=cache)
    for name in ("unet", "vae", "text_encoder"):
        _same_weights(getattr(parts, name), tiny[name])
    assert parts.inpainting and parts.scheduler_config["beta_schedule"] == "scaled_linear"
    assert parts.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    again = load_sd15(model_source(folder), "cpu", "fp32", cache=cache)
    assert again.unet is parts.unet and cache.loads == 4  # unet, vae, text encoder, tokenizer: once each
    bf16 = load_sd15(model_source(folder), "cpu", "bf16", cache=cache)
    assert bf16.unet.dtype == torch.bfloat16 and bf16.unet is not parts.unet


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
@pytest.mark.parametrize("channels", [9, 4])
def test_single_ldm_file_loads_against_the_skeleton(tmp_path, suffix, channels, no_network):
    parts = sd_tiny.tiny_parts(channels)
    ldm = sd_tiny.to_ldm(parts)
    file = tmp_path / f"model{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(ldm, str(file))
    else:  # the original .ckpt: a Lightning dict, read with weights_only
        torch.save({"state_dict": ldm, "global_step": 7}, file)
    skeleton = sd_tiny.save_skeleton(parts, tmp_path / "skeleton")
    loaded = load_sd15(model_source(file), "cpu", "fp32", cache=ComponentCache(), skeleton=skeleton)
    for name in ("unet", "vae", "text_encoder"):
        _same_weights(getattr(loaded, name), parts[name])
    assert loaded.inpainting == (channels == 9)


def test_ckpt_with_other_objects_goes_through_the_restricted_unpickler(tmp_path):
    """Lightning checkpoints also pickle callback objects; weights_only refuses them, ours keeps tensors."""
    import collections

    file = tmp_path / "model.ckpt"
    torch.save(
        {"state_dict": {"cond_stage_model.transformer.x": torch.ones(2)}, "cb": collections.Counter()}, file
    )
    assert torch.equal(
        read_checkpoint(file, ("cond_stage_model.",))["cond_stage_model.transformer.x"], torch.ones(2)
    )


def test_shipped_skeleton_builds_sd15_sized_parts():
    """The resources/sd15 configs give SD-1.5's architecture (parameter counts from NOTES G)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    root = skeleton_dir()
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(json.loads((root / "unet" / "config.json").read_text()))
        base = UNet2DConditionModel.from_config(json.loads((root / "unet_base" / "config.json").read_text()))
        vae = AutoencoderKL.from_config(json.loads((root / "vae" / "config.json").read_text()))
        clip = CLIPTextModel(CLIPTextConfig.from_pretrained(str(root / "text_encoder")))

    def millions(m: torch.nn.Module) -> float:
        return sum(p.numel() for p in m.parameters()) / 1e6

    assert round(millions(base), 1) == 859.5
    assert round((millions(unet) - millions(base)) * 1e6) == 5 * 320 * 3 * 3  # mask + masked-image channels
    assert round(millions(vae), 1) == 83.7 and round(millions(clip), 1) == 123.1
    assert unet.config.in_channels == 9 and vae.config.scaling_factor == 0.18215


def test_skeleton_tokenizer_matches_the_reference_files(reference_dir):
    ref = reference_dir("clip_tokenizer")
    ours = skeleton_dir() / "tokenizer"
    assert json.loads((ours / "vocab.json").read_text()) == json.loads((ref / "vocab.json").read_text())
    assert (ours / "merges.txt").read_text() == (ref / "merges.txt").read_text()


def test_bad_sources_say_what_to_point_at(tmp_path):
    with pytest.raises(ModelSourceError, match="does not exist"):
        model_source(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelSourceError, match="not a Stable Diffusion checkpoint"):
        model_source(tmp_path / "notes.txt")
    with pytest.raises(ModelSourceError, match="diffusers folder"):
        model_source(tmp_path)
    bundle = tmp_path / "store"
    bundle.mkdir()
    (bundle / "config.json").write_text(
        json.dumps({"engine": "sd15", "base_model": str(tmp_path / "m.safetensors")})
    )
    (tmp_path / "m.safetensors").write_bytes(b"")
    assert model_source(bundle).path == (tmp_path / "m.safetensors").resolve()
