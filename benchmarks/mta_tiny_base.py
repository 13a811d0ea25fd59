"""A tiny SD-1.5-shaped base model trained on grocery photos, for the MTA loss study.

With random weights every fill is noise and no loss term can show its effect, so the study's base
is trained here, in two steps, on ``../shared/data/grocery_store/train`` (centre crops, flips):

1. ``vae``: a small KL autoencoder (diffusers ``AutoencoderKL``, 3 levels, so 4 pixels per latent
   cell: 64 px photos give 16 x 16 latents), L1 reconstruction plus a light KL term; its
   ``scaling_factor`` is then set to 1 / std of the training latents, as SD's 0.18215 is.
2. ``unet``: a small text-to-image UNet (4 input channels, the test suite's 32/64-channel layout),
   the epsilon objective on SD-1.5's noise schedule, captions = the product folder's name, 10 % of
   them empty. The text encoder is the test suite's tiny CLIP with *random* weights, kept frozen:
   it still maps each product name to its own fixed embedding, which is all the UNet needs here.

The result is a diffusers folder that ``MtaOptions.base_model`` loads. Each part is skipped when
its folder exists and resumes from its checkpoint, so an interrupted run continues.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def caption_of(path: Path) -> str:
    """The product folder's name, as the study's manifests caption it."""
    return path.parent.name.replace("-", " ").lower()


def load_photos(split: Path, size: int) -> tuple[torch.Tensor, list[str]]:
    """Every photo of ``split`` centre-cropped to ``size`` (uint8 N x 3 x size x size) and its caption."""
    from trainers.data import center_crop

    files = sorted(split.rglob("*.jpg"))
    pixels = [center_crop(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB), size) for f in files]
    return torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous(), [caption_of(f) for f in files]


def _batch(photos: torch.Tensor, index: np.ndarray, flips: np.ndarray) -> torch.Tensor:
    x = photos[torch.from_numpy(index)].float() / 127.5 - 1
    return torch.where(torch.from_numpy(flips).view(-1, 1, 1, 1), x.flip(-1), x)


def make_vae(scaling_factor: float = 1.0):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64, 64),
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1, norm_num_groups=16, sample_size=64, scaling_factor=scaling_factor,
    )  # fmt: skip


def make_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
    )  # fmt: skip


def train_vae(out: Path, photos: torch.Tensor, steps: int, batch: int, lr: float, seed: int) -> Path:
    """L1 + 1e-4 x KL per pixel, Adam; then the scaling factor from the training latents."""
    final = out / "vae"
    if (final / "config.json").is_file():
        return final
    from kl_autoencoder import fit

    torch.manual_seed(seed)
    vae = make_vae()

    def next_batch(step: int) -> torch.Tensor:
        rng = np.random.default_rng([seed, step])
        return _batch(photos, rng.integers(len(photos), size=batch), rng.random(batch) < 0.5)

    fit(vae, next_batch, steps, lr, out / "vae_checkpoint.pt")
    with torch.no_grad():
        vae.eval()
        sample = torch.cat([vae.encode(_batch(photos, np.arange(i, i + 64), np.zeros(64, bool))).latent_dist.mean
                            for i in range(0, min(len(photos), 512) - 63, 64)])  # fmt: skip
    scaled = make_vae(scaling_factor=float(1.0 / sample.std()))
    scaled.load_state_dict(vae.state_dict())
    scaled.eval().save_pretrained(final)
    print(
        f"vae: latent std {sample.std():.4f}, scaling factor {scaled.config.scaling_factor:.4f}", flush=True
    )
    return final


@torch.no_grad()
def _latents(vae, photos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every photo and of its mirror image: (2N, 4, h, w) each."""
    means, stds = [], []
    for flip in (False, True):
        for i in range(0, len(photos), 64):
            index = np.arange(i, min(i + 64, len(photos)))
            dist = vae.encode(_batch(photos, index, np.full(len(index), flip))).latent_dist
            means.append(dist.mean)
            stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


@torch.no_grad()
def _text(parts: dict, captions: list[str]) -> dict[str, torch.Tensor]:
    tok = parts["tokenizer"]
    names = sorted(set(captions) | {""})
    ids = tok(
        names, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
    )
    return dict(zip(names, parts["text_encoder"](ids.input_ids)[0], strict=True))


def train_unet(
    out: Path, vae_dir: Path, photos: torch.Tensor, captions: list[str], parts: dict,
    steps: int, batch: int, lr: float, seed: int,
) -> Path:  # fmt: skip
    """Epsilon MSE on SD-1.5's schedule over the frozen VAE's latents, 10 % empty captions."""
    from diffusers import AutoencoderKL, DDPMScheduler
    from kl_autoencoder import resume

    from inpaint_studio.models.diffusion.schedulers import SD15_SCHEDULE

    final = out / "unet"
    if (final / "config.json").is_file():
        return final
    vae = AutoencoderKL.from_pretrained(str(vae_dir)).eval()
    mean, std = _latents(vae, photos)
    names = captions + captions  # the mirrored copies keep their captions
    text = _text(parts, captions)
    schedule = DDPMScheduler.from_config({k: v for k, v in SD15_SCHEDULE.items() if not k.startswith("_")})
    torch.manual_seed(seed)
    unet = make_unet().train()
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=1e-2)
    ck = out / "unet_checkpoint.pt"
    start, t0, run = resume(ck, unet, opt), time.time(), 0.0
    for step in range(start, steps):
        rng = np.random.default_rng([seed, 1, step])
        index = rng.integers(len(mean), size=batch)
        eps = torch.from_numpy(rng.standard_normal((batch, *mean.shape[1:])).astype(np.float32))
        noise = torch.from_numpy(rng.standard_normal((batch, *mean.shape[1:])).astype(np.float32))
        x0 = (mean[index] + std[index] * eps) * vae.config.scaling_factor
        t = torch.from_numpy(rng.integers(0, schedule.config.num_train_timesteps, batch)).long()
        cond = torch.stack([text["" if rng.random() < 0.1 else names[i]] for i in index])
        pred = unet(schedule.add_noise(x0, noise, t), t, encoder_hidden_states=cond).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run = loss.item() if step == start else 0.98 * run + 0.02 * loss.item()
        if (step + 1) % 50 == 0:
            print(f"unet {step + 1}/{steps} loss {run:.4f} {time.time() - t0:.0f}s", flush=True)
        if (step + 1) % 200 == 0 or step + 1 == steps:
            torch.save({"model": unet.state_dict(), "opt": opt.state_dict(), "step": step + 1}, ck)
    unet.eval().save_pretrained(final)
    return final


def build_base(
    out: Path, train_split: Path, size: int = 64, vae_steps: int = 1000, unet_steps: int = 2000,
    batch: int = 16, seed: int = 0,
) -> Path:  # fmt: skip
    """The trained base as a diffusers folder ``out/tiny-sd15-trained`` (skipped when there)."""
    folder = out / "tiny-sd15-trained"
    if (folder / "model_index.json").is_file():
        return folder
    sys.path.insert(0, str(REPO / "tests"))
    try:
        import sd_tiny
    finally:
        sys.path.pop(0)
    out.mkdir(parents=True, exist_ok=True)
    photos, captions = load_photos(train_split, size)
    print(f"base: {len(photos)} photos, {len(set(captions))} captions", flush=True)
    parts = sd_tiny.tiny_parts(in_channels=4)  # the random tiny CLIP and its tokenizer
    vae_dir = train_vae(out, photos, vae_steps, max(8, batch // 2), 5e-4, seed)
    unet_dir = train_unet(out, vae_dir, photos, captions, parts, unet_steps, batch, 3e-4, seed)
    from diffusers import AutoencoderKL, UNet2DConditionModel

    parts["vae"] = AutoencoderKL.from_pretrained(str(vae_dir)).eval()
    parts["unet"] = UNet2DConditionModel.from_pretrained(str(unet_dir)).eval()
    sd_tiny.save_folder(parts, folder)
    (folder / "trained.json").write_text(
        json.dumps({"photos": len(photos), "size": size, "vae_steps": vae_steps, "unet_steps": unet_steps,
                    "batch": batch, "seed": seed, "text_encoder": "random tiny CLIP (tests/sd_tiny.py)"}),
        encoding="utf-8",
    )  # fmt: skip
    return folder
