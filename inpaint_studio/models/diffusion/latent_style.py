"""MTA's style loss on latents: a 4-channel VGG, Gram matrices, and x_{t-1} from both sides.

**The two latents compared.** With ``a_t`` the scheduler's ``alphas_cumprod[t]`` (diffusers'
``DDPMScheduler`` / ``DDIMScheduler``; SD-1.5 uses ``scaled_linear`` betas 0.00085..0.012), the
training sample is ``x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps``. From the predicted noise ``e``:

    x0_hat    = (x_t - sqrt(1 - a_t) e) / sqrt(a_t)
    x_{t-1}   = sqrt(a_{t-1}) x0_hat + sqrt(1 - a_{t-1}) e           (deterministic DDIM step, eta 0)

and the ground truth noised to ``t - 1`` with the *same* noise ``eps``:

    x~_{t-1}  = sqrt(a_{t-1}) x_0 + sqrt(1 - a_{t-1}) eps              (``scheduler.add_noise``)

so the two coincide exactly when ``e == eps`` and the style loss measures only what the prediction
gets wrong. ``a_{-1}`` is 1 (the step before t = 0 is the clean latent). These are
:func:`previous_latent` and :func:`noised_latent`; :func:`mta_style_loss` puts it together.

**The extractor.** :class:`LatentVGG` is torchvision's VGG-16/19 ``features`` stack (same indices,
so a torchvision state dict loads by key) with a 4-channel first conv. With a VGG file
(:func:`build_latent_vgg`; a torchvision ``vgg16``/``vgg19`` ``.pth`` read through the restricted
unpickler) the first conv is the RGB conv composed with the SD-1.5 latent-to-RGB linear map and
ImageNet normalisation: ``rgb = F^T z`` (``F`` = :data:`SD15_LATENT_RGB_FACTORS`, an approximation
of the VAE decoder giving RGB in [-1, 1]), ``x = ((rgb + 1) / 2 - mean) / std``, so
``W4[o, k] = sum_c W3[o, c] F[k, c] / (2 std_c)`` and the constant part folds into the bias (exact
away from the one-pixel zero-padded border). Without a file it starts from random init, with a
warning: the loss still trains, but its features mean little until the extractor has learnt.

**The loss.** ``G(f) = f f^T / (C H W)`` per sample and layer;
``L_style = 1/(B N) sum_{b, i} ||G(alpha_i) - G(beta_i)||_F^2`` over the N style layers.

**Its scale.** The two latents differ by one step's worth of the noise error only:
``x_{t-1} - x~_{t-1} = c_t (e - eps)`` with ``c_t = sqrt(1 - a_{t-1}) - sqrt(a_{t-1}) sqrt(1 - a_t)
/ sqrt(a_t)``, which on SD-1.5's schedule is -0.029 at t = 0, -0.012 at t = 1, about -0.002
around t = 100..300, -0.003 at 500 and -0.006 at 999 (:func:`step_coefficient`). The Gram distance is quadratic in that
difference, so ``L_style`` is about ``c_t^2 ~ 1e-5`` times the noise error times the extractor's
squared gain; a ReLU extractor without biases is also homogeneous, so the loss grows with the
fourth power of the latent scale (latents of std 0.04, as a random VAE's, cost a factor ~3e-6).
What ``delta = 100`` means therefore rests on the trained VGG's feature scale; a from-scratch
extractor (He-normal, unit-variance features on unit-variance latents) has none, and at delta 100
its term is a ~1e-5..1e-4 share of the loss (measured: ``benchmarks/eval_mta_losses.py``); a
VGG-16 trained on the study's photos and moved onto its VAE's latents gave the same, 2.6e-5.
ImageNet VGG's own scale is not measured here (no such file on the machine).

**The fresh pair** (``kind="fresh"``, ``--style-latents fresh``): the paper says only that the
ground truth side comes "from the GT image via a noise addition function"; read as a draw of its
own, ``x~_{t-1} = sqrt(a_{t-1}) x_0 + sqrt(1 - a_{t-1}) eps'``. Its gradient on ``e`` is still
``c_t`` per unit, but the Gram difference no longer vanishes with the noise error: it holds the
two noises' different Gram statistics too (a floor the prediction cannot remove, whose gradient
averages to zero over draws), so the term pulls x_{t-1}'s Gram towards the expected Gram of the
noised photo.

**The clean pair** (``kind="clean"``, ``--style-latents clean``): the predicted x_0 against x_0,
each sample weighted by ``a_t^2`` (:func:`style_sample_weight`). It is not the paper's: its two
sides share no noise, so the Gram compares the prediction's texture with the photo's. At delta 100
it is 9-48 % of the loss on the study's tiny base (a trained VGG / a random extractor), and with a
random extractor it lowers the trained VGG's Gram distance of the sampled fill where the paper's
pair raised it (``benchmarks/eval_mta_losses.py``, README).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

# SD-1.5 latent (already times 0.18215) -> approximate RGB in [-1, 1]: rgb[c] = sum_k z[k] * F[k][c]
SD15_LATENT_RGB_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layout(spec: str) -> tuple[int | str, ...]:
    return tuple(w if w == "M" else int(w) for w in spec.split())


VGG_LAYOUTS: dict[str, tuple[int | str, ...]] = {
    "vgg16": _layout("64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M"),
    "vgg19": _layout("64 64 M 128 128 M 256 256 256 256 M 512 512 512 512 M 512 512 512 512 M"),
}
# relu1_2, relu2_2, relu3_3 / relu3_4, relu4_3 / relu4_4 (torchvision feature indices)
STYLE_LAYERS = {"vgg16": (3, 8, 15, 22), "vgg19": (3, 8, 17, 26)}


class LatentVGG(nn.Module):
    """VGG ``features`` up to the last style layer, on ``in_channels`` latent channels.

    ``layout``: a name of :data:`VGG_LAYOUTS` or a custom sequence of widths and ``"M"`` (tiny
    test extractors). ``style_layers``: indices into ``features`` whose outputs (after ReLU) are
    returned.
    """

    def __init__(
        self,
        layout: str | Sequence[int | str] = "vgg16",
        in_channels: int = 4,
        style_layers: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        name = layout if isinstance(layout, str) else None
        widths = VGG_LAYOUTS[layout] if isinstance(layout, str) else tuple(layout)
        layers: list[nn.Module] = []
        channels = in_channels
        for w in widths:
            if w == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(w), 3, padding=1), nn.ReLU(inplace=False)]
                channels = int(w)
        if style_layers is None:
            if name is None:
                raise ValueError("a custom layout needs explicit style_layers")
            style_layers = STYLE_LAYERS[name]
        self.style_layers = tuple(sorted(int(i) for i in style_layers))
        if not self.style_layers or self.style_layers[-1] >= len(layers):
            raise ValueError(f"style layers {self.style_layers} outside the {len(layers)} VGG layers")
        self.features = nn.Sequential(*layers[: self.style_layers[-1] + 1])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.style_layers:
                out.append(x)
        return out


def rgb_conv_to_latent(
    weight: torch.Tensor,
    bias: torch.Tensor,
    factors: Sequence[Sequence[float]] = SD15_LATENT_RGB_FACTORS,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A first conv on ImageNet-normalised RGB, rewritten to act on latents (module docstring)."""
    f = torch.tensor(factors, dtype=torch.float64)  # (k, c)
    m = torch.tensor(mean, dtype=torch.float64)
    s = torch.tensor(std, dtype=torch.float64)
    w = weight.double()
    w4 = torch.einsum("ocij,kc->okij", w / (2 * s).view(1, -1, 1, 1), f)
    b4 = bias.double() + (w * ((0.5 - m) / s).view(1, -1, 1, 1)).sum(dim=(1, 2, 3))
    return w4.to(weight.dtype), b4.to(bias.dtype)


def _vgg_state(path: Path) -> dict[str, torch.Tensor]:
    from ..safe_pickle import safe_load

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj: object = load_file(str(path))
    else:
        obj = safe_load(path)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not any(k.startswith("features.") for k in state):
        raise ValueError(f"{path}: not a torchvision VGG state dict (no features.* tensors)")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def vgg_layout_of(state: dict[str, torch.Tensor]) -> str:
    """``vgg16`` or ``vgg19`` from the number of convs; batch-norm variants are refused."""
    if any(k.endswith("running_mean") for k in state):
        raise ValueError("batch-norm VGG (vgg16_bn/vgg19_bn) is not supported: use plain vgg16 or vgg19")
    convs = sum(
        1 for k, v in state.items() if k.startswith("features.") and k.endswith(".weight") and v.ndim == 4
    )
    layouts = {13: "vgg16", 16: "vgg19"}
    if convs not in layouts:
        raise ValueError(f"a VGG with {convs} convs: expected torchvision vgg16 (13) or vgg19 (16)")
    return layouts[convs]


@torch.no_grad()
def load_rgb_vgg(
    model: LatentVGG,
    state: dict[str, torch.Tensor],
    factors: Sequence[Sequence[float]] = SD15_LATENT_RGB_FACTORS,
) -> None:
    """Load a torchvision VGG's features into ``model``, converting the first conv to latents
    through ``factors`` (the VAE's latent-to-RGB map, SD-1.5's by default)."""
    ours = model.state_dict()
    for key in ours:
        source = state.get(key)
        if source is None:
            raise ValueError(f"the VGG file has no {key}")
        if key.startswith("features.0."):
            continue
        if source.shape != ours[key].shape:
            raise ValueError(f"{key}: VGG file {tuple(source.shape)}, extractor {tuple(ours[key].shape)}")
        ours[key].copy_(source)
    w4, b4 = rgb_conv_to_latent(state["features.0.weight"].float(), state["features.0.bias"].float(), factors)
    first = model.features[0]
    if first.weight.shape != w4.shape:
        raise ValueError(
            f"first conv {tuple(first.weight.shape)} cannot take the converted {tuple(w4.shape)}"
        )
    first.weight.copy_(w4)
    first.bias.copy_(b4)


def build_latent_vgg(
    vgg_file: str | Path | None = None,
    layout: str = "vgg16",
    style_layers: Sequence[int] | None = None,
    factors: Sequence[Sequence[float]] = SD15_LATENT_RGB_FACTORS,
) -> LatentVGG:
    """The style extractor: from a torchvision VGG file when there is one (its first conv through
    ``factors``, the base VAE's latent-to-RGB map), else random (warns)."""
    if vgg_file is None:
        warnings.warn(
            "no VGG weights given: the latent style extractor starts from random init "
            "(pass a torchvision vgg16/vgg19 .pth for meaningful style features)",
            stacklevel=2,
        )
        return LatentVGG(layout, style_layers=style_layers)
    state = _vgg_state(Path(vgg_file))
    model = LatentVGG(vgg_layout_of(state), style_layers=style_layers)
    load_rgb_vgg(model, state, factors)
    log.info("latent style extractor initialised from %s", vgg_file)
    return model


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C), normalised by C * H * W."""
    b, c, h, w = features.shape
    flat = features.float().reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def style_loss(
    features_a: Sequence[torch.Tensor],
    features_b: Sequence[torch.Tensor],
    sample_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """``1/(B N) sum ||G(a_i) - G(b_i)||_F^2`` over the N layers and the batch, each sample's
    term times ``sample_weight`` when given (:func:`style_sample_weight`)."""
    if len(features_a) != len(features_b) or not features_a:
        raise ValueError("style_loss needs the same non-empty list of layers on both sides")
    terms = torch.stack(
        [
            (gram_matrix(a) - gram_matrix(b)).pow(2).sum(dim=(1, 2))
            for a, b in zip(features_a, features_b, strict=True)
        ]
    )  # (N, B)
    if sample_weight is not None:
        terms = terms * sample_weight.to(terms).reshape(1, -1)
    return terms.mean()


def _alpha(alphas_cumprod: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``a_t`` per sample, broadcastable to ``like``; ``a_{-1} = 1``."""
    t = torch.as_tensor(t, device=alphas_cumprod.device).long().reshape(-1)
    a = torch.where(t >= 0, alphas_cumprod[t.clamp(min=0)], torch.ones((), dtype=alphas_cumprod.dtype))
    return a.to(device=like.device, dtype=torch.float32).view(-1, *([1] * (like.ndim - 1)))


def noised_latent(
    x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """``sqrt(a_t) x0 + sqrt(1 - a_t) noise`` (``scheduler.add_noise``; ``t = -1`` gives x0)."""
    a = _alpha(alphas_cumprod, t, x0)
    return (a.sqrt() * x0.float() + (1 - a).sqrt() * noise.float()).to(x0.dtype)


def previous_latent(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    t: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    prev_t: torch.Tensor | None = None,
) -> torch.Tensor:
    """The deterministic DDIM step ``x_t -> x_{prev_t}`` (default ``t - 1``) from predicted noise."""
    t = torch.as_tensor(t, device=alphas_cumprod.device).long().reshape(-1)
    prev_t = t - 1 if prev_t is None else torch.as_tensor(prev_t, device=t.device).long().reshape(-1)
    a_t = _alpha(alphas_cumprod, t, x_t)
    a_prev = _alpha(alphas_cumprod, prev_t, x_t)
    x0_hat = (x_t.float() - (1 - a_t).sqrt() * eps.float()) / a_t.sqrt()
    return (a_prev.sqrt() * x0_hat + (1 - a_prev).sqrt() * eps.float()).to(x_t.dtype)


def step_coefficient(t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """``c_t`` with ``previous_latent(x_t, e) - noised_latent(x0, eps, t - 1) = c_t (e - eps)``."""
    a_t = _alpha(alphas_cumprod, t, torch.as_tensor(t).reshape(-1)).reshape(-1)
    a_prev = _alpha(alphas_cumprod, torch.as_tensor(t).reshape(-1) - 1, a_t).reshape(-1)
    return (1 - a_prev).sqrt() - a_prev.sqrt() * (1 - a_t).sqrt() / a_t.sqrt()


STYLE_LATENTS = ("previous", "clean", "fresh")


def _check_kind(kind: str) -> None:
    if kind not in STYLE_LATENTS:
        raise ValueError(f"style latents {kind!r}: expected one of {STYLE_LATENTS}")


def style_latents(
    x_t: torch.Tensor,
    eps_pred: torch.Tensor,
    noise: torch.Tensor,
    x0: torch.Tensor,
    t: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    kind: str = "previous",
    target_noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two latents the style loss compares, (from the prediction, from the ground truth).

    ``previous``: x_{t-1} against the ground truth noised to t-1 with the training noise (the
    paper, read as one shared draw); ``fresh``: the same x_{t-1} against the ground truth noised to
    t-1 with ``target_noise``, a draw of its own (the paper's other reading: its "noise addition
    function" need not reuse the noise), so the two sides differ by content and noise, not by
    ``c_t (e - eps)`` alone; ``clean``: the predicted x_0 against x_0 itself, i.e. the same DDIM
    step taken all the way (``prev_t = -1``), where the difference is ``-sqrt(1 - a_t) / sqrt(a_t)
    (e - eps)`` instead of one step's ``c_t`` and carries no noise, so the Gram compares the fill's
    texture rather than the noise's."""
    _check_kind(kind)
    if kind == "fresh" and target_noise is None:
        raise ValueError("fresh style latents need target_noise, a noise draw of their own")
    t = torch.as_tensor(t).reshape(-1)
    prev_t = torch.full_like(t, -1) if kind == "clean" else t - 1
    predicted = previous_latent(x_t, eps_pred, t, alphas_cumprod, prev_t)
    gt_noise = target_noise if kind == "fresh" else noise
    return predicted, noised_latent(x0, gt_noise, prev_t, alphas_cumprod)


def style_sample_weight(t: torch.Tensor, alphas_cumprod: torch.Tensor, kind: str) -> torch.Tensor | None:
    """Per-sample weight of the style term: ``a_t^2`` for ``clean``, none for the x_{t-1} pairs.

    The predicted x_0 is off by ``sqrt(1 - a_t) / sqrt(a_t)`` times the noise error, so its Gram
    distance grows like ``(1 - a_t) / a_t`` (small errors) to ``((1 - a_t) / a_t)^2`` (large): at
    t = 999 on SD-1.5's schedule that is ~1e5 times its value at t = 10 (measured on the study's
    branch), and the blurry early predictions would own the loss. ``a_t^2`` keeps both orders
    bounded, so the term weighs most where the texture is decided, at low noise."""
    _check_kind(kind)
    if kind != "clean":
        return None
    return _alpha(alphas_cumprod, t, torch.as_tensor(t).reshape(-1)).reshape(-1).pow(2)


def mta_style_loss(
    extractor: nn.Module,
    x_t: torch.Tensor,
    eps_pred: torch.Tensor,
    noise: torch.Tensor,
    x0: torch.Tensor,
    t: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    kind: str = "previous",
    target_noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gram distance of the two :func:`style_latents` (default: the paper's x_{t-1}), weighted by
    :func:`style_sample_weight`; one extractor call on both, so a trained extractor runs once."""
    predicted, target = style_latents(x_t, eps_pred, noise, x0, t, alphas_cumprod, kind, target_noise)
    n = predicted.shape[0]
    feats = extractor(torch.cat([predicted, target]))
    weight = style_sample_weight(t, alphas_cumprod, kind)
    return style_loss([f[:n] for f in feats], [f[n:] for f in feats], weight)
