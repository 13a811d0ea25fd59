"""A VGG-16 trained here on the grocery photos: the stand-in for a person's VGG file in the MTA study.

MTA's style loss wants a trained VGG (``--vgg-weights``: a torchvision ``vgg16`` state dict); there
is none on this machine and nothing downloads. So the study trains one: torchvision's VGG-16
``features`` layout with a batch norm after each conv (VGG-16 does not train from scratch without
them in a few hundred steps), global average pooling and one linear layer over the product folders
of ``../shared/data/grocery_store/train`` (64 px, flips and shifted crops, ImageNet-normalised
input like torchvision's), Adam with a cosine schedule. The batch norms are then folded into the
convs (exact in eval mode), so the file is a plain ``vgg16`` state dict (``features.N.weight`` /
``.bias`` at torchvision's indices) that ``latent_style.build_latent_vgg`` loads like the real one.

It is a small-data classifier (2,640 photos, 81 products), not ImageNet's VGG: its features are
trained, which a random extractor's are not, and that is all the study asks of it.

``fit_latent_rgb_factors``: the 4 x 3 least-squares map from a VAE's scaled latents to RGB in
[-1, 1] pooled to latent size, the tiny VAE's counterpart of SD-1.5's published factors.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn


def imagenet_normalised(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> the input a torchvision VGG expects."""
    from inpaint_studio.models.diffusion.latent_style import IMAGENET_MEAN, IMAGENET_STD

    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def vgg16_bn_features() -> nn.Sequential:
    """VGG-16's convs with a batch norm after each; the plain model's indices come back on folding."""
    from inpaint_studio.models.diffusion.latent_style import VGG_LAYOUTS

    layers: list[nn.Module] = []
    channels = 3
    for w in VGG_LAYOUTS["vgg16"]:
        if w == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(w), 3, padding=1), nn.BatchNorm2d(int(w)), nn.ReLU()]
            channels = int(w)
    return nn.Sequential(*layers)


@torch.no_grad()
def folded_state(features: nn.Sequential) -> dict[str, torch.Tensor]:
    """The batch norms folded into their convs, keyed like torchvision's plain ``vgg16.features``."""
    state: dict[str, torch.Tensor] = {}
    plain_index = 0
    modules = list(features)
    for i, m in enumerate(modules):
        if isinstance(m, nn.Conv2d):
            bn = modules[i + 1]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            state[f"features.{plain_index}.weight"] = (m.weight * scale.view(-1, 1, 1, 1)).contiguous()
            state[f"features.{plain_index}.bias"] = (m.bias - bn.running_mean) * scale + bn.bias
            plain_index += 2  # conv, relu
        elif isinstance(m, nn.MaxPool2d):
            plain_index += 1
    return state


def _batch(photos: torch.Tensor, rng: np.random.Generator, size: int, train: bool) -> torch.Tensor:
    """uint8 photos (N, 3, S, S) -> ImageNet-normalised crops of ``size`` (random in training)."""
    n, _, s, _ = photos.shape
    if train:
        dy, dx = rng.integers(0, s - size + 1, 2)
        x = photos[:, :, dy : dy + size, dx : dx + size].float() / 255
        flip = torch.from_numpy(rng.random(n) < 0.5).view(-1, 1, 1, 1)
        x = torch.where(flip, x.flip(-1), x)
    else:
        o = (s - size) // 2
        x = photos[:, :, o : o + size, o : o + size].float() / 255
    return imagenet_normalised(x)


def train_vgg(out: Path, train_split: Path, val_split: Path, steps: int = 500, batch: int = 24,
              lr: float = 1e-3, seed: int = 0) -> Path:  # fmt: skip
    """``out/vgg16-grocery.safetensors`` (skipped when there) and its accuracy beside it."""
    from mta_tiny_base import load_photos
    from safetensors.torch import save_file

    final = out / "vgg16-grocery.safetensors"
    if final.is_file():
        return final
    out.mkdir(parents=True, exist_ok=True)
    photos, names = load_photos(train_split, 72)
    val_photos, val_names = load_photos(val_split, 72)
    classes = sorted(set(names))
    labels = torch.tensor([classes.index(c) for c in names])
    val_labels = torch.tensor([classes.index(c) if c in classes else -1 for c in val_names])
    torch.manual_seed(seed)
    features = vgg16_bn_features()
    head = nn.Linear(512, len(classes))
    model = nn.Sequential(features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    start = time.time()
    model.train()
    for step in range(steps):
        rng = np.random.default_rng([seed, step])
        index = torch.from_numpy(rng.integers(len(photos), size=batch))
        loss = nn.functional.cross_entropy(model(_batch(photos[index], rng, 64, True)), labels[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        if (step + 1) % 50 == 0:
            print(f"vgg {step + 1}/{steps} loss {loss.item():.3f} {time.time() - start:.0f}s", flush=True)
    model.eval()
    with torch.no_grad():
        known = val_labels >= 0
        logits = torch.cat(
            [model(_batch(val_photos[i : i + 64], None, 64, False)) for i in range(0, len(val_photos), 64)]
        )
        accuracy = float((logits.argmax(1)[known] == val_labels[known]).float().mean())
        # the folded plain VGG must give the same features as the batch-norm one
        from inpaint_studio.models.diffusion.latent_style import LatentVGG

        plain = LatentVGG("vgg16", in_channels=3, style_layers=(29,))
        plain.load_state_dict(folded_state(features))
        probe = _batch(val_photos[:8], None, 64, False)
        gap = float((plain(probe)[0] - features[:-1](probe)).abs().max())  # without the last pool
    save_file(folded_state(features), str(final))
    report = {"classes": len(classes), "train_photos": len(photos), "val_accuracy": accuracy, "steps": steps,
              "batch": batch, "lr": lr, "seconds": round(time.time() - start), "fold_max_abs_gap": gap}  # fmt: skip
    (out / "vgg16-grocery.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"vgg: {json.dumps(report)}", flush=True)
    return final


@torch.no_grad()
def fit_latent_rgb_factors(vae, photos: torch.Tensor) -> tuple[np.ndarray, float]:
    """Least-squares ``F`` (4 x 3) with ``rgb ~ F^T z`` at latent size; and the fit's R^2."""
    zs, rgbs = [], []
    for i in range(0, len(photos), 64):
        x = photos[i : i + 64].float() / 127.5 - 1
        z = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
        zs.append(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]))
        rgb = nn.functional.adaptive_avg_pool2d(x, z.shape[-2:])
        rgbs.append(rgb.permute(0, 2, 3, 1).reshape(-1, 3))
    z, rgb = torch.cat(zs).double().numpy(), torch.cat(rgbs).double().numpy()
    factors, *_ = np.linalg.lstsq(z, rgb, rcond=None)
    residual = ((z @ factors - rgb) ** 2).sum()
    return factors, float(1 - residual / ((rgb - rgb.mean(0)) ** 2).sum())
