"""Read the public MAT checkpoints and turn them into an inpaint-studio weights bundle.

Accepted sources:

* the official ``.pkl`` files (Places_512_FullData.pkl, CelebA-HQ_512.pkl, ...): StyleGAN-style
  pickles whose networks are "persistent objects" that embed their source code. They are read
  with :mod:`..safe_pickle`, which executes nothing; G_ema's parameters and buffers are taken out
  of the inert records (``_parameters``, ``_buffers`` and ``_modules`` of each pickled module);
* IOPaint's ``Places_512_FullData_G.pth``: a flat state dict without the noise entries;
* a ``.safetensors`` file with the official key names (e.g. the fp16 conversion some apps use).

The architecture is inferred from the tensor shapes and checked against a freshly built
generator; nothing is guessed silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..bundle import save_bundle
from ..safe_pickle import CheckpointFileError, Opaque, safe_load
from .config import MatConfig
from .generator import MatGenerator

ENGINE_ID = "mat"
NOISE_SUFFIXES = ("noise_const", "noise_strength")
FIXED_SUFFIXES = ("resample_filter", "attn_mask")


class CheckpointError(ValueError):
    """The file is not a MAT generator checkpoint we can read."""


# ----------------------------------------------------------------------------------- reading
def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The generator state dict in ``path`` and a short name of the format it came in."""
    generator, fmt, _ = read_checkpoint(path)
    return generator, fmt


def read_checkpoint(
    path: str | Path,
) -> tuple[dict[str, torch.Tensor], str, dict[str, torch.Tensor] | None]:
    """(generator state, format name, discriminator state): only the official ``.pkl`` files
    hold a discriminator (``D``, official key names); the other formats give None."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a regular file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path)), "safetensors", None
        except Exception as err:  # noqa: BLE001  safetensors raises its own error type for every lie
            raise CheckpointError(f"damaged safetensors file ({_first_line(err)})") from None
    try:
        data = safe_load(path)
    except CheckpointFileError as err:
        raise CheckpointError(str(err)) from None
    if isinstance(data, Mapping) and "G_ema" in data:
        critic = data.get("D")
        return (
            module_state(data["G_ema"]),
            "official-pkl",
            module_state(critic) if critic is not None else None,
        )
    if isinstance(data, Mapping):
        for wrapper in ("state_dict", "G_ema", "model"):
            inner = data.get(wrapper)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, torch.Tensor) for v in inner.values())
            ):
                data = inner
                break
        if data and all(isinstance(v, torch.Tensor) for v in data.values()):
            return {str(k): v for k, v in data.items()}, "state-dict", None
    raise CheckpointError(f"{path.name} holds no MAT generator (expected an official .pkl or a state dict)")


def module_state(node: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers of a pickled ``nn.Module`` tree, as a flat state dict.

    ``node`` is an inert record: either a StyleGAN persistent object (its state sits in the
    ``meta`` argument) or a plain torch container rebuilt through NEWOBJ (its state was BUILT).
    """
    state = _record_state(node)
    out: dict[str, torch.Tensor] = {}
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for kind in ("_parameters", "_buffers"):
        for name, value in (state.get(kind) or {}).items():
            if value is None or (kind == "_buffers" and name in skip):
                continue
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"{prefix}{name} is not a tensor in the checkpoint")
            out[f"{prefix}{name}"] = value.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(module_state(child, f"{prefix}{name}."))
    return out


def _record_state(node: Any) -> Mapping[str, Any]:
    if isinstance(node, Opaque):
        meta = node.args[0] if len(node.args) == 1 and isinstance(node.args[0], Mapping) else None
        if meta is not None and isinstance(meta.get("state"), Mapping):
            return meta["state"]
        if isinstance(node.state, Mapping):
            return node.state
    if isinstance(node, Mapping) and ("_parameters" in node or "_modules" in node):
        return node
    raise CheckpointError(f"unexpected object {node!r} inside the pickled network")


# ----------------------------------------------------------------------------------- architecture
def infer_config(state: Mapping[str, torch.Tensor]) -> MatConfig:
    """The :class:`MatConfig` whose generator has exactly these tensors (checked by the caller)."""
    try:
        fc = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
        resolutions = [
            int(m.group(1))
            for k in state
            if (m := re.fullmatch(r"synthesis\.dec\.Dec_(\d+)x\1\.toRGB\.bias", k))
        ]
        img_resolution = max(resolutions)
        stage1_dim = state["synthesis.first_stage.conv_first.conv.weight"].shape[0]
        depths = tuple(
            len(
                {
                    m.group(1)
                    for k in state
                    if (m := re.match(rf"synthesis\.first_stage\.tran\.{i}\.blocks\.(\d+)\.", k))
                }
            )
            for i in range(5)
        )
        channels = {
            res: state[f"synthesis.enc.EncConv_Block_{res}x{res}.conv1.weight"].shape[0]
            for res in (2**i for i in range(4, img_resolution.bit_length()))
        }
        config = MatConfig(
            z_dim=state["mapping.fc0.weight"].shape[1],
            w_dim=state[f"mapping.fc{fc[-1]}.weight"].shape[0],
            img_resolution=img_resolution,
            img_channels=state["synthesis.dec.Dec_16x16.toRGB.bias"].shape[0],
            mapping_layers=len(fc),
            stage1_dim=stage1_dim,
            stage1_heads=6 if stage1_dim % 6 == 0 else 1,  # not in the weights; 6 in every release
            stage1_depths=depths,
            channel_max=max(channels.values()),
            channel_base=_channel_base(channels),
            use_noise=_has_noise(state),
        )
    except (KeyError, ValueError, IndexError) as err:
        raise CheckpointError(f"not a MAT generator state dict ({err})") from None
    if any(config.channels(r) != c for r, c in channels.items()):
        raise CheckpointError(f"unsupported channel layout {channels}")
    return config


def _channel_base(channels: Mapping[int, int]) -> int:
    top = max(channels.values())
    below = [res * c for res, c in channels.items() if c < top]
    return min(below) if below else MatConfig.channel_base


def _has_noise(state: Mapping[str, torch.Tensor]) -> bool:
    noise = [k for k in state if k.endswith(NOISE_SUFFIXES)]
    layers = [k for k in state if re.fullmatch(r"synthesis\.dec\.Dec_\d+x\d+\.conv[01]\.conv\.weight", k)]
    if noise and len(noise) != 2 * len(layers):
        raise ValueError(
            f"{len(noise)} noise entries for {len(layers)} decoder layers: incomplete checkpoint"
        )
    return bool(noise)


def conform(state: Mapping[str, torch.Tensor]) -> tuple[MatConfig, dict[str, torch.Tensor]]:
    """Infer the config and return the state dict our generator loads strictly.

    Missing fixed buffers (FIR filters, shifted-window masks) are filled in from a fresh build;
    anything else missing or unexpected, or any shape mismatch, is an error.
    """
    config = infer_config(state)
    with torch.device("meta"):  # shapes only: no 250 MB of random init
        reference = MatGenerator(config).state_dict()
    if any(k not in state for k in reference):  # fixed buffers to fill in: build them for real
        reference = MatGenerator(config).state_dict()
    unexpected = sorted(set(state) - set(reference))
    missing = sorted(k for k in set(reference) - set(state) if not k.endswith(FIXED_SUFFIXES))
    if unexpected or missing:
        raise CheckpointError(
            "keys do not match the MAT generator: "
            + (f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''} " if unexpected else "")
            + (f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}" if missing else "")
        )
    out = {}
    for key, ref in reference.items():
        tensor = state.get(key, ref)
        if tuple(tensor.shape) != tuple(ref.shape):
            raise CheckpointError(f"{key} has shape {tuple(tensor.shape)}, expected {tuple(ref.shape)}")
        out[key] = tensor.contiguous()
    return config, out


# ----------------------------------------------------------------------------------- import
def import_checkpoint(source: str | Path, dest: str | Path) -> Path:
    """Convert ``source`` (.pkl / .pth / .safetensors) into a bundle folder ``dest``."""
    source = Path(source)
    state, fmt = read_state_dict(source)
    config, state = conform(state)
    extra = {"source": source.name, "source_format": fmt, "noise_layers": config.use_noise}
    return save_bundle(dest, ENGINE_ID, config.to_dict(), state, extra=extra)


def load_generator(folder: str | Path, device: str | torch.device = "cpu") -> MatGenerator:
    """Build the generator stored in a bundle folder (float32, eval mode)."""
    from ..bundle import load_bundle

    bundle = load_bundle(folder, engine=ENGINE_ID)
    model = MatGenerator(MatConfig.from_dict(bundle.arch))
    model.load_state_dict({k: v.float() for k, v in bundle.state_dict.items()}, strict=True)
    return model.to(device).eval()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:120]
