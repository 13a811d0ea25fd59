"""Perceptual (VGG feature) loss with ImageNet weights from a local file; nothing downloads.

Our own VGG16/VGG19 feature stack, laid out so that torchvision's ``vgg16-*.pth`` /
``vgg19-*.pth`` state dicts load by key name (``features.<i>.weight``; the classifier is ignored).
The file is found at, in order: the ``weights`` argument (``--vgg-weights``), the environment
variable ``INPAINT_STUDIO_VGG``, or any ``vgg16*``/``vgg19*`` ``.pth``/``.safetensors`` in the model
store's ``vgg/`` folder. ``.pth`` files are read with ``torch.load(weights_only=True)``.

Without weights, random VGG features would be a poor and arbitrary target, so the loss falls back
to a documented alternative instead: L1 between the images and between their Sobel gradients over a
3-level pyramid (``GradientPyramidLoss``), which also rewards sharp, aligned edges. A warning says so.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from inpaint_studio.core import paths

VGG_ENV = "INPAINT_STUDIO_VGG"
_CFGS = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ),
}
DEFAULT_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class VGGFeatures(nn.Module):
    """``features`` of torchvision's VGG (same indices), returning the named ReLU outputs."""

    def __init__(
        self,
        arch: str = "vgg16",
        layers: tuple[str, ...] = DEFAULT_LAYERS,
        device: str | None = None,
        pre_activation: bool = False,
    ) -> None:
        super().__init__()
        self.pre_activation = pre_activation  # take the conv output feeding each named ReLU (MAT does)
        if arch not in _CFGS:
            raise ValueError(f"arch must be vgg16 or vgg19, not {arch!r}")
        mods: list[nn.Module] = []
        self.names: dict[int, str] = {}
        cin, block, conv = 3, 1, 0
        for v in _CFGS[arch]:
            if v == "M":
                mods.append(nn.MaxPool2d(2, 2))
                block, conv = block + 1, 0
            else:
                conv += 1
                mods += [nn.Conv2d(cin, int(v), 3, padding=1, device=device), nn.ReLU(inplace=False)]
                self.names[len(mods) - 1] = f"relu{block}_{conv}"
                cin = int(v)
        unknown = set(layers) - set(self.names.values())
        if unknown:
            raise ValueError(f"{arch} has no layer(s) {', '.join(sorted(unknown))}")
        self.layers = tuple(layers)
        last = max(i for i, n in self.names.items() if n in layers)
        self.features = nn.Sequential(*mods[: last + 1])
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def load_torchvision(self, state: dict[str, torch.Tensor]) -> None:
        wanted = {k: v for k, v in state.items() if k.startswith("features.")}
        own = self.state_dict()
        missing = [k for k in own if f"features.{k.split('.', 1)[1]}" not in wanted]
        if missing:
            raise ValueError(
                f"VGG weights lack {len(missing)} tensors (e.g. features.{missing[0].split('.', 1)[1]})"
            )
        for k in own:
            src = wanted[f"features.{k.split('.', 1)[1]}"]
            if src.shape != own[k].shape:
                raise ValueError(
                    f"VGG weight {k} has shape {tuple(src.shape)}, expected {tuple(own[k].shape)}"
                )
        state = {k: wanted[f"features.{k.split('.', 1)[1]}"].float() for k in own}
        self.load_state_dict(state, assign=True)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``images`` in [-1, 1] -> the requested feature maps, in ``layers`` order."""
        x = ((images + 1) / 2 - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        shift = 1 if self.pre_activation else 0
        for i, mod in enumerate(self.features):
            x = mod(x)
            name = self.names.get(i + shift)
            if name in self.layers:
                out[name] = x  # the ReLUs are not in place: a pre-activation tensor stays as it is
        return [out[n] for n in self.layers]


def find_vgg_weights(weights: str | Path | None = None) -> Path | None:
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"VGG weights file {path} does not exist")
        return path
    env = os.environ.get(VGG_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"${VGG_ENV} points to {path}, which does not exist")
        return path
    folder = paths.models_dir() / "vgg"
    if folder.is_dir():
        for pattern in ("vgg16*.safetensors", "vgg16*.pth", "vgg19*.safetensors", "vgg19*.pth"):
            found = sorted(folder.glob(pattern))
            if found:
                return found[0]
    return None


def read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return state


class GradientPyramidLoss(nn.Module):
    """Fallback when there are no VGG weights: L1 of images and Sobel gradients at 3 scales."""

    def __init__(self, levels: int = 3) -> None:
        super().__init__()
        self.levels = levels
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4
        self.register_buffer("kernel", torch.stack([sobel, sobel.t()])[:, None], persistent=False)

    def _grad(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = F.conv2d(F.pad(x.reshape(n * c, 1, h, w), (1, 1, 1, 1), mode="replicate"), self.kernel)
        return g.reshape(n, c * 2, h, w)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = pred.new_zeros(())
        for level in range(self.levels):
            if level:
                pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
            total = total + F.l1_loss(pred, target) + F.l1_loss(self._grad(pred), self._grad(target))
        return total / self.levels


LayerWeights = tuple[tuple[str, float], ...]
DEFAULT_WEIGHTS: dict[str, LayerWeights] = {
    "vgg16": tuple((n, 1.0) for n in DEFAULT_LAYERS),
    "vgg19": tuple((n, 1.0) for n in ("relu1_2", "relu2_2", "relu3_4", "relu4_4")),
}


class PerceptualLoss(nn.Module):
    """Weighted sum over layers of the L1 distance of VGG features (weights frozen), or the fallback.

    ``layers`` maps each architecture to its (layer, weight) pairs, since which file is found (VGG16
    or VGG19) is only known at run time; ``pre_activation`` takes each layer's convolution output
    instead of its ReLU. ``uses_vgg`` tells which loss is active; ``features`` exposes the VGG maps
    (for a style loss).
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        layers: dict[str, LayerWeights] | None = None,
        pre_activation: bool = False,
        quiet: bool = False,
    ) -> None:
        super().__init__()
        path = find_vgg_weights(weights)
        self.vgg: VGGFeatures | None = None
        self.fallback: GradientPyramidLoss | None = None
        self.layer_weights: tuple[float, ...] = ()
        if path is None:
            if not quiet:
                warnings.warn(
                    "no VGG weights found (pass --vgg-weights FILE, e.g. torchvision's vgg16-397923af.pth or "
                    f"vgg19-dcbb9e9d.pth, set ${VGG_ENV}, or put the file in {paths.models_dir() / 'vgg'}); "
                    "the perceptual loss falls back to an L1 image + Sobel-gradient pyramid loss",
                    stacklevel=2,
                )
            self.fallback = GradientPyramidLoss()
            self.source = "gradient-pyramid fallback"
            return
        state = read_state(path)
        arch = "vgg19" if any(k.startswith("features.34.") for k in state) else "vgg16"
        names, self.layer_weights = zip(*(layers or DEFAULT_WEIGHTS)[arch], strict=True)
        # no random init: the file fills it
        self.vgg = VGGFeatures(arch, names, device="meta", pre_activation=pre_activation)
        self.vgg.load_torchvision(state)
        self.vgg.requires_grad_(False).eval()
        self.source = f"{arch} from {path}"

    @property
    def uses_vgg(self) -> bool:
        return self.vgg is not None

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        if self.vgg is not None:
            self.vgg.eval()  # frozen feature extractor: never in training mode
        return self

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        if self.vgg is None:
            raise RuntimeError("no VGG weights loaded: feature maps (and the Gram style loss) need them")
        return self.vgg(images)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.vgg is None:
            assert self.fallback is not None
            return self.fallback(pred, target)
        fp, ft = self.vgg(pred), self.vgg(target.detach())
        terms = [w * F.l1_loss(a, b) for w, a, b in zip(self.layer_weights, fp, ft, strict=True)]
        return torch.stack(terms).sum()
