"""Load SD-1.5's parts (UNet, VAE, CLIP text encoder + tokenizer) offline, through the component cache.

A diffusers folder loads with ``from_pretrained(..., local_files_only=True)``. A single checkpoint in the
original LDM layout loads against the weight-free skeleton in ``resources/sd15`` (``config=`` of
diffusers' ``from_single_file``): without it diffusers would look the configs up on the Hub. The
checkpoint is read by us (safetensors, or a ``.ckpt`` with ``torch.load(weights_only=True)`` and our
restricted unpickler as the fallback) and handed to diffusers as a state dict, so diffusers never opens
a pickle. Each part is keyed by (model path, part, precision, device): ASUKA, MTA and ``sd15`` running on
the same model share one copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..components import ComponentCache, ComponentKey, shared_cache
from .source import ModelSource, ModelSourceError, unet_in_channels

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
# skeleton subfolder per UNet input channels: 9 = inpainting (mask + masked image), 4 = text-to-image
UNET_SUBFOLDERS = {9: "unet", 4: "unet_base"}
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


class ModelLoadError(RuntimeError):
    """A model file or folder exists but cannot be loaded; the message names the part and the reason."""


def skeleton_dir() -> Path:
    """The shipped weight-free SD-1.5 diffusers folder (configs, scheduler, tokenizer)."""
    from ...core.resources import resource

    return resource("sd15")


@dataclass(frozen=True)
class SD15Parts:
    """The networks of one SD-1.5 model, as the component cache hands them out."""

    source: ModelSource
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict[str, Any]

    @property
    def inpainting(self) -> bool:
        """True for a 9-channel inpainting UNet; False for a 4-channel text-to-image one."""
        return int(self.unet.config.in_channels) == 9


def load_sd15(
    source: ModelSource,
    device: str,
    precision: str,
    cache: ComponentCache | None = None,
    skeleton: str | Path | None = None,
) -> SD15Parts:
    """All parts of ``source`` on ``device`` in ``precision`` (fp32 / bf16 / fp16), each loaded once."""
    cache = cache or shared_cache()
    skeleton = Path(skeleton) if skeleton else skeleton_dir()
    loaders = _FolderLoaders(source) if source.kind == "folder" else _SingleFileLoaders(source, skeleton)

    def part(name: str, load: Callable[[Any], Any]) -> Any:
        key = ComponentKey(source.id, name, precision, device)
        return cache.get(
            key, lambda: _ready(_wrap_errors(name, source, lambda: load(_torch_dtype(precision))), device)
        )

    unet = part("unet", loaders.unet)
    vae = part("vae", loaders.vae)
    text_encoder = part("text_encoder", loaders.text_encoder)
    tokenizer = cache.get(
        ComponentKey(source.id, "tokenizer", "-", "-"),
        lambda: _wrap_errors("tokenizer", source, loaders.tokenizer),
    )
    return SD15Parts(source, unet, vae, text_encoder, tokenizer, loaders.scheduler_config())


# ---------------------------------------------------------------------------------- loaders
class _FolderLoaders:
    def __init__(self, source: ModelSource) -> None:
        self.root = str(source.path)

    def unet(self, dtype: Any) -> Any:
        from diffusers import UNet2DConditionModel

        return UNet2DConditionModel.from_pretrained(
            self.root, subfolder="unet", local_files_only=True, dtype=dtype
        )

    def vae(self, dtype: Any) -> Any:
        from diffusers import AutoencoderKL

        return AutoencoderKL.from_pretrained(self.root, subfolder="vae", local_files_only=True, dtype=dtype)

    def text_encoder(self, dtype: Any) -> Any:
        from transformers import CLIPTextModel

        return CLIPTextModel.from_pretrained(
            self.root, subfolder="text_encoder", local_files_only=True, dtype=dtype
        )

    def tokenizer(self) -> Any:
        from transformers import CLIPTokenizer

        root = self.root if (Path(self.root) / "tokenizer").is_dir() else str(skeleton_dir())
        return CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", local_files_only=True)

    def scheduler_config(self) -> dict[str, Any]:
        return _scheduler_config(Path(self.root))


class _SingleFileLoaders:
    def __init__(self, source: ModelSource, skeleton: Path) -> None:
        self.path = source.path
        self.skeleton = skeleton

    def unet(self, dtype: Any) -> Any:
        from diffusers import UNet2DConditionModel

        checkpoint = read_checkpoint(self.path, (UNET_PREFIX,))
        channels = unet_in_channels(checkpoint)
        if channels not in UNET_SUBFOLDERS:
            raise ModelSourceError(f"a UNet with {channels} input channels is not SD-1.5 (want 9 or 4)")
        return UNet2DConditionModel.from_single_file(
            checkpoint,
            config=str(self.skeleton),
            subfolder=UNET_SUBFOLDERS[channels],
            local_files_only=True,
            torch_dtype=dtype,
        )

    def vae(self, dtype: Any) -> Any:
        from diffusers import AutoencoderKL

        checkpoint = read_checkpoint(self.path, (VAE_PREFIX,))
        if not checkpoint:
            raise ModelSourceError("the checkpoint holds no VAE (no first_stage_model.* weights)")
        return AutoencoderKL.from_single_file(
            checkpoint, config=str(self.skeleton), subfolder="vae", local_files_only=True, torch_dtype=dtype
        )

    def text_encoder(self, dtype: Any) -> Any:
        from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
        from transformers import CLIPTextModel

        checkpoint = read_checkpoint(self.path, (CLIP_PREFIX,))
        if not checkpoint:
            raise ModelSourceError(
                "the checkpoint holds no CLIP text encoder (no cond_stage_model.transformer.* weights)"
            )
        model = create_diffusers_clip_model_from_ldm(
            CLIPTextModel,
            checkpoint,
            subfolder="text_encoder",
            config=str(self.skeleton),
            torch_dtype=dtype,
            local_files_only=True,
        )
        _check_complete(model, checkpoint, "text encoder")
        return model

    def tokenizer(self) -> Any:
        from transformers import CLIPTokenizer

        return CLIPTokenizer.from_pretrained(str(self.skeleton), subfolder="tokenizer", local_files_only=True)

    def scheduler_config(self) -> dict[str, Any]:
        return _scheduler_config(self.skeleton)


# ---------------------------------------------------------------------------------- helpers
def read_checkpoint(path: Path, prefixes: Iterable[str] = ("",)) -> dict[str, Any]:
    """The tensors of a single-file checkpoint whose keys start with one of ``prefixes``.

    safetensors files are read key by key (only the part asked for); pickles with
    ``torch.load(weights_only=True)`` (memory-mapped), or, when they hold other objects (training
    callbacks, optimizer classes), with ``models.safe_pickle``, which executes nothing.
    """
    prefixes = tuple(prefixes)
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys() if k.startswith(prefixes)}  # noqa: SIM118
    import pickle

    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError):
        from ..safe_pickle import safe_load

        loaded = safe_load(path)
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise ModelSourceError(f"{path.name} holds no state dict")
    return {
        k: v for k, v in state.items() if isinstance(k, str) and k.startswith(prefixes) and torch.is_tensor(v)
    }


def _check_complete(model: Any, checkpoint: dict[str, Any], what: str) -> None:
    """diffusers loads CLIP weights non-strictly: a missing tensor would stay random without a word."""
    wanted = {k for k in model.state_dict() if not k.endswith("position_ids")}
    got = {k.split(CLIP_PREFIX, 1)[1].removeprefix("text_model.") for k in checkpoint if CLIP_PREFIX in k}
    got |= {"text_model." + k for k in got}
    missing = sorted(wanted - got)
    if missing:
        raise ModelSourceError(f"the checkpoint's {what} lacks {len(missing)} tensors, e.g. {missing[0]}")


def _scheduler_config(root: Path) -> dict[str, Any]:
    import json

    from .schedulers import SD15_SCHEDULE

    file = root / "scheduler" / "scheduler_config.json"
    if not file.is_file():
        return dict(SD15_SCHEDULE)
    return {k: v for k, v in json.loads(file.read_text(encoding="utf-8")).items() if not k.startswith("_")}


def _torch_dtype(precision: str) -> Any:
    import torch

    try:
        return getattr(torch, DTYPES[precision])
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(DTYPES)}") from None


def _ready(module: Any, device: str) -> Any:
    """Inference only: eval mode, no gradients, on its device."""
    return module.to(device).eval().requires_grad_(False)


def _wrap_errors(part: str, source: ModelSource, load: Callable[[], Any]) -> Any:
    try:
        return load()
    except ModelSourceError as err:
        raise ModelLoadError(f"cannot load the {part} of {source.path}: {err}") from None
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(f"cannot load the {part} of {source.path}: {first}") from err
