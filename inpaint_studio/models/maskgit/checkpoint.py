"""MaskGIT weights on disk: ONE bundle folder holding both models, so one path names a model.

Layout (see :mod:`models.bundle`): ``config.json`` with ``engine: "maskgit"``,
``arch: {"vqgan": {...}, "transformer": {...}}``, ``parts: ["transformer", "vqgan"]``, and
``vqgan.safetensors`` + ``transformer.safetensors`` with the two state dicts, and optionally
``atlas.safetensors``: one pre-rendered patch per code for instant step previews (see
:mod:`models.vqgan.atlas`), made once at save time so no run pays for it.
A tokenizer trained alone (stage 1) is saved with engine ``maskgit-vqgan`` and the ``vqgan``
part only, so it never shadows a complete model in the ``maskgit`` store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..bundle import BundleError, load_bundle, save_bundle
from ..vqgan import VQGAN, VQGANConfig
from ..vqgan.atlas import CodeAtlas
from .config import MaskGitConfig
from .transformer import MaskGitTransformer

ENGINE_ID = "maskgit"
VQGAN_ENGINE_ID = "maskgit-vqgan"
VQGAN_PART = "vqgan"
TRANSFORMER_PART = "transformer"
ATLAS_PART = "atlas"


def save_maskgit(
    folder: str | Path,
    vqgan: VQGAN,
    transformer: MaskGitTransformer,
    extra: dict[str, Any] | None = None,
    atlas: bool = True,
) -> Path:
    """Write the complete model. ``transformer.config.codebook_size`` must equal the VQGAN's.

    ``atlas`` renders every code once through the decoder (n_embed 1x1 decodes: about four
    full-image decodes' worth of work) and stores the patches, so previews cost nothing later.
    """
    arch, parts = maskgit_bundle_contents(vqgan, transformer, atlas)
    return save_bundle(folder, ENGINE_ID, arch, parts, extra)


def maskgit_bundle_contents(
    vqgan: VQGAN, transformer: MaskGitTransformer, atlas: bool = True
) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """``(arch, parts)`` of a complete MaskGIT bundle, for writers that call ``save_bundle``
    themselves (the trainer's export); :func:`save_maskgit` is this plus the write."""
    if transformer.config.codebook_size != vqgan.config.n_embed:
        raise ValueError(
            f"transformer codebook ({transformer.config.codebook_size}) != VQGAN codebook ({vqgan.config.n_embed})"
        )
    arch = {VQGAN_PART: vqgan.config.to_dict(), TRANSFORMER_PART: transformer.config.to_dict()}
    parts = {VQGAN_PART: vqgan.state_dict(), TRANSFORMER_PART: transformer.state_dict()}
    if atlas:
        codes = CodeAtlas(vqgan)
        was_training = vqgan.training
        vqgan.eval()
        codes.ensure(torch.arange(vqgan.config.n_embed, device=codes.patches.device))
        vqgan.train(was_training)
        parts[ATLAS_PART] = {"patches": codes.patches.half()}
    return arch, parts


def load_atlas(folder: str | Path, vqgan: VQGAN) -> CodeAtlas | None:
    """The bundle's pre-rendered atlas for ``vqgan`` (its own VQGAN), or None when it has none."""
    from safetensors.torch import load_file

    file = Path(folder) / f"{ATLAS_PART}.safetensors"
    if not file.is_file():
        return None
    patches = load_file(str(file))["patches"]
    atlas = CodeAtlas(vqgan)
    if tuple(patches.shape) != tuple(atlas.patches.shape):
        raise BundleError(f"{file} does not match the VQGAN (shape {tuple(patches.shape)})")
    atlas.patches.copy_(patches.float())
    atlas.ready.fill_(True)
    return atlas


def load_maskgit(
    folder: str | Path, device: str | torch.device = "cpu"
) -> tuple[VQGAN, MaskGitTransformer, dict[str, Any]]:
    """Both models in eval mode on ``device``, plus the bundle's extra metadata."""
    bundle = load_bundle(folder, engine=ENGINE_ID)
    missing = [p for p in (VQGAN_PART, TRANSFORMER_PART) if p not in bundle.parts or p not in bundle.arch]
    if missing:
        raise BundleError(f"{folder} lacks the {' and '.join(missing)} part(s) of a MaskGIT model")
    vqgan = _build(VQGAN(VQGANConfig.from_dict(bundle.arch[VQGAN_PART])), bundle.parts[VQGAN_PART], folder)
    transformer = _build(
        MaskGitTransformer(MaskGitConfig.from_dict(bundle.arch[TRANSFORMER_PART])),
        bundle.parts[TRANSFORMER_PART],
        folder,
    )
    if transformer.config.codebook_size != vqgan.config.n_embed:
        raise BundleError(f"{folder}: transformer and VQGAN codebook sizes differ")
    return vqgan.to(device), transformer.to(device), bundle.extra


def save_vqgan(folder: str | Path, vqgan: VQGAN, extra: dict[str, Any] | None = None) -> Path:
    """Write a tokenizer alone (stage 1 of training, or an imported taming checkpoint)."""
    return save_bundle(
        folder, VQGAN_ENGINE_ID, {VQGAN_PART: vqgan.config.to_dict()}, {VQGAN_PART: vqgan.state_dict()}, extra
    )


def load_vqgan(folder: str | Path, device: str | torch.device = "cpu") -> VQGAN:
    """The VQGAN of a tokenizer bundle or of a complete MaskGIT bundle."""
    bundle = load_bundle(folder)
    if bundle.engine not in (ENGINE_ID, VQGAN_ENGINE_ID) or VQGAN_PART not in bundle.parts:
        raise BundleError(f"{folder} holds no MaskGIT VQGAN (engine '{bundle.engine}')")
    model = _build(VQGAN(VQGANConfig.from_dict(bundle.arch[VQGAN_PART])), bundle.parts[VQGAN_PART], folder)
    return model.to(device)


def _build(model: torch.nn.Module, state: dict[str, torch.Tensor], folder: str | Path) -> Any:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise BundleError(f"{folder}: weights do not fit the saved configuration ({err})") from None
    return model.eval()
