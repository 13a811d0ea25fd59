"""Tiny random SD-1.5-shaped parts for tests, built offline (the configs of diffusers' own inpainting
tests, CLIP vocabulary size raised to the real tokenizer's), saved as a diffusers folder or as one file
in the original LDM layout (our reverse key map; the loader's diffusers conversion must invert it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from inpaint_studio.models.diffusion.loading import skeleton_dir
from inpaint_studio.models.diffusion.schedulers import SD15_SCHEDULE


def tiny_parts(in_channels: int = 9) -> dict[str, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    torch.manual_seed(0)
    vae = AutoencoderKL(  # diffusers' test VAE, with SD's four levels: 8 pixels per latent cell
        block_out_channels=[32, 32, 32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-5,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=49408,
        )
    )
    tokenizer = CLIPTokenizer.from_pretrained(
        str(skeleton_dir()), subfolder="tokenizer", local_files_only=True
    )
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
    }


def save_folder(parts: dict[str, Any], folder: Path) -> Path:
    """A diffusers folder, as ``save_pretrained`` writes it."""
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        parts[name].save_pretrained(folder / name)
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    schedule = {"_class_name": "PNDMScheduler", "skip_prk_steps": True, **SD15_SCHEDULE}
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(schedule))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionInpaintPipeline"}))
    return folder


def save_skeleton(parts: dict[str, Any], folder: Path) -> Path:
    """A weight-free skeleton for the tiny parts (the app ships the full-size one in resources/sd15)."""
    unet_config = dict(parts["unet"].config)
    for channels, sub in ((9, "unet"), (4, "unet_base")):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        config = {**unet_config, "in_channels": channels, "_class_name": "UNet2DConditionModel"}
        (folder / sub / "config.json").write_text(json.dumps(config))
    parts["vae"].save_config(folder / "vae")
    parts["text_encoder"].config.save_pretrained(folder / "text_encoder")
    shutil.copytree(skeleton_dir() / "tokenizer", folder / "tokenizer")
    shutil.copytree(skeleton_dir() / "scheduler", folder / "scheduler")
    return folder


# ------------------------------------------------------------------------------- LDM layout
_RESNET = {
    "norm1.": "in_layers.0.",
    "conv1.": "in_layers.2.",
    "time_emb_proj.": "emb_layers.1.",
    "norm2.": "out_layers.0.",
    "conv2.": "out_layers.3.",
    "conv_shortcut.": "skip_connection.",
}


def _rename(key: str, prefixes: dict[str, str], inner: dict[str, str] | None = None) -> str | None:
    for src in sorted(prefixes, key=len, reverse=True):
        if key.startswith(src):
            rest = key[len(src) :]
            for a, b in (inner or {}).items():
                if rest.startswith(a):
                    rest = b + rest[len(a) :]
                    break
            return prefixes[src] + rest
    return None


def unet_to_ldm(unet: Any) -> dict[str, torch.Tensor]:
    cfg = unet.config
    levels, per = len(cfg.block_out_channels), cfg.layers_per_block
    plain = {
        "time_embedding.linear_1.": "time_embed.0.",
        "time_embedding.linear_2.": "time_embed.2.",
        "conv_in.": "input_blocks.0.0.",
        "conv_norm_out.": "out.0.",
        "conv_out.": "out.2.",
        "mid_block.attentions.0.": "middle_block.1.",
    }
    resnets = {"mid_block.resnets.0.": "middle_block.0.", "mid_block.resnets.1.": "middle_block.2."}
    for i in range(levels):
        for j in range(per):
            resnets[f"down_blocks.{i}.resnets.{j}."] = f"input_blocks.{(per + 1) * i + j + 1}.0."
            plain[f"down_blocks.{i}.attentions.{j}."] = f"input_blocks.{(per + 1) * i + j + 1}.1."
        if i < levels - 1:
            plain[f"down_blocks.{i}.downsamplers.0.conv."] = f"input_blocks.{(per + 1) * (i + 1)}.0.op."
        for j in range(per + 1):
            resnets[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{(per + 1) * i + j}.0."
            plain[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{(per + 1) * i + j}.1."
        if i < levels - 1:
            slot = 2 if "CrossAttn" in cfg.up_block_types[i] else 1
            plain[f"up_blocks.{i}.upsamplers.0."] = f"output_blocks.{(per + 1) * i + per}.{slot}."
    out = {}
    for key, value in unet.state_dict().items():
        ldm = _rename(key, resnets, _RESNET) or _rename(key, plain)
        assert ldm is not None, f"no LDM name for UNet key {key}"
        out["model.diffusion_model." + ldm] = value.clone()
    return out


def vae_to_ldm(vae: Any) -> dict[str, torch.Tensor]:
    levels = len(vae.config.block_out_channels)
    resnet_inner = {"conv_shortcut.": "nin_shortcut."}
    attn_inner = {
        "group_norm.": "norm.",
        "to_q.": "q.",
        "to_k.": "k.",
        "to_v.": "v.",
        "to_out.0.": "proj_out.",
    }
    prefixes: dict[str, str] = {}
    for part in ("encoder", "decoder"):
        prefixes[f"{part}.mid_block.resnets.0."] = f"{part}.mid.block_1."
        prefixes[f"{part}.mid_block.resnets.1."] = f"{part}.mid.block_2."
        prefixes[f"{part}.conv_norm_out."] = f"{part}.norm_out."
    for i in range(levels):
        for j in range(3):
            prefixes[f"encoder.down_blocks.{i}.resnets.{j}."] = f"encoder.down.{i}.block.{j}."
            prefixes[f"decoder.up_blocks.{i}.resnets.{j}."] = f"decoder.up.{levels - 1 - i}.block.{j}."
        prefixes[f"encoder.down_blocks.{i}.downsamplers.0."] = f"encoder.down.{i}.downsample."
        prefixes[f"decoder.up_blocks.{i}.upsamplers.0."] = f"decoder.up.{levels - 1 - i}.upsample."
    out = {}
    for key, value in vae.state_dict().items():
        if ".mid_block.attentions.0." in key:
            part = key.split(".")[0]
            ldm = _rename(key, {f"{part}.mid_block.attentions.0.": f"{part}.mid.attn_1."}, attn_inner)
            if value.ndim == 2:  # LDM's attention projections are 1x1 convolutions
                value = value[:, :, None, None]
        else:
            ldm = (
                _rename(key, prefixes, resnet_inner) or key
            )  # conv_in, conv_out, quant convs keep their names
        out["first_stage_model." + ldm] = value.clone()
    return out


def clip_to_ldm(text_encoder: Any) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in text_encoder.state_dict().items():
        key = key if key.startswith("text_model.") else "text_model." + key
        out["cond_stage_model.transformer." + key] = value.clone()
    return out


def to_ldm(parts: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {**unet_to_ldm(parts["unet"]), **vae_to_ldm(parts["vae"]), **clip_to_ldm(parts["text_encoder"])}


def gradient_image(size: int = 64) -> Any:
    """A smooth RGB test picture (uint8), no two rows or columns alike."""
    import numpy as np

    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    rgb = np.stack([40 + 170 * x, 60 + 120 * y, 200 - 150 * (x + y) / 2], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def forbid_sockets(monkeypatch: Any) -> None:
    """Make any outgoing connection fail the test (nothing may be fetched)."""
    import socket

    def refuse(self: Any, address: Any) -> None:
        raise AssertionError(f"a socket was opened to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def box_request(
    variants: int = 1, seed: int = 3, mask: Any = None, params: dict | None = None, **fields
) -> Any:
    """The diffusion engine tests' request: :func:`gradient_image` with a 32 px square hole on the
    8-pixel grid (max-pool and a pipeline's resize agree there) unless ``mask`` is given."""
    import numpy as np

    from inpaint_studio.engines.base import Request

    if mask is None:
        mask = np.zeros((64, 64), np.uint8)
        mask[16:48, 16:48] = 255
    return Request(
        gradient_image(64), mask, seed=seed, variants=variants, params=dict(params or {}), **fields
    )
