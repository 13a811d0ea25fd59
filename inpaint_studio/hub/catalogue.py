"""Every public checkpoint an engine can use: where it lives, how big it is, what its publisher's
checksum is, under which license it comes, and which import step turns it into store weights.

Facts only: a size or checksum the publisher does not state is ``None`` (the download then checks
what it can and says so), never a guess. ``approx_size`` is what a hosting page displays, for people
to read; it is never used to verify anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True)
class HubSource:
    """A file in a Hugging Face repository (model, dataset or space) at a given revision."""

    repo_id: str
    filename: str
    revision: str = "main"
    repo_type: Literal["model", "dataset", "space"] = "model"

    def describe(self) -> str:
        kind = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        return f"huggingface.co/{kind}{self.repo_id} ({self.revision[:12]}) {self.filename}"


@dataclass(frozen=True)
class UrlSource:
    """A file behind a plain HTTP(S) address."""

    url: str

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class ManualSource:
    """A file the publisher shares only through a web page (a OneDrive or Google Drive folder)."""

    page: str

    def describe(self) -> str:
        return f"by hand from {self.page}"


Source = HubSource | UrlSource | ManualSource


@dataclass(frozen=True)
class RemoteFile:
    """One file of a catalogue entry; ``path`` is where it goes inside the entry's download folder."""

    path: str
    source: Source
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None  # as published; a short value is a published prefix of the digest
    approx_size: str = ""

    def __post_init__(self) -> None:
        for name in ("sha256", "md5"):
            value = getattr(self, name)
            if value is not None and not _HEX.match(value):
                raise ValueError(f"{self.path}: {name} must be lowercase hex, got {value!r}")
        if self.sha256 is not None and len(self.sha256) != 64:
            raise ValueError(f"{self.path}: a sha256 has 64 hex digits, got {len(self.sha256)}")
        if self.md5 is not None and not 4 <= len(self.md5) <= 32:
            raise ValueError(f"{self.path}: an md5 (or its published prefix) has 4 to 32 hex digits")
        if self.path.startswith("/") or ".." in self.path.split("/"):
            raise ValueError(f"{self.path}: must be a relative path inside the download folder")

    @property
    def downloadable(self) -> bool:
        return not isinstance(self.source, ManualSource)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def check_text(self) -> str:
        """What a download of this file is checked against."""
        if self.sha256:
            return "sha256"
        if self.md5:
            return "md5" if len(self.md5) == 32 else "md5 prefix"
        if self.size is not None:
            return "size"
        if isinstance(self.source, HubSource):  # LFS files: the Hub's sha256; small Git files: its size
            return "Hub's sha256/size"
        return "none"


@dataclass(frozen=True)
class CatalogueEntry:
    """A checkpoint (one or more files) and how it reaches the model store.

    ``import_target`` is the id ``inpaint-studio import`` takes (an engine, or a model part such as
    ``mae``); ``import_from`` says whether the importer gets the first file or the whole folder.
    """

    id: str
    engine: str
    title: str
    files: tuple[RemoteFile, ...]
    license: str | None
    homepage: str
    import_target: str | None
    import_from: Literal["file", "folder"] = "file"
    notes: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not re.match(r"^[a-z0-9][a-z0-9._-]*$", self.id):
            raise ValueError(f"catalogue id {self.id!r}: lowercase letters, digits, '.', '_' and '-' only")
        if not self.files:
            raise ValueError(f"{self.id}: an entry needs at least one file")

    @property
    def downloadable(self) -> bool:
        return all(f.downloadable for f in self.files)

    @property
    def size(self) -> int | None:
        """Total bytes when every file's size is published, else ``None``."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]

    @property
    def checksum_known(self) -> Literal["all", "some", "none"]:
        known = [f.sha256 is not None or f.md5 is not None for f in self.files]
        return "all" if all(known) else "some" if any(known) else "none"

    @property
    def check_text(self) -> str:
        kinds = dict.fromkeys(f.check_text for f in self.files)
        return " + ".join(kinds)

    @property
    def size_text(self) -> str:
        """Exact size when published, else the host page's figure marked as approximate."""
        if self.size is not None:
            from .download import human_size

            return human_size(self.size)
        approx = [f.approx_size for f in self.files if f.approx_size]
        return f"~{approx[-1]}" if approx else "size ?"

    @property
    def source_text(self) -> str:
        return self.files[0].source.describe() + (
            f" (+{len(self.files) - 1} more)" if len(self.files) > 1 else ""
        )


class Catalogue:
    """An ordered, id-indexed set of entries (the built-in one, or one a test injects)."""

    def __init__(self, entries: Iterable[CatalogueEntry]) -> None:
        self.entries: tuple[CatalogueEntry, ...] = tuple(entries)
        self._by_id = {e.id: e for e in self.entries}
        if len(self._by_id) != len(self.entries):
            raise ValueError("catalogue ids must be unique")

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, entry_id: str) -> CatalogueEntry:
        try:
            return self._by_id[entry_id]
        except KeyError:
            raise KeyError(
                f"unknown model id {entry_id!r}; `inpaint-studio models` lists them: {', '.join(self._by_id)}"
            ) from None

    def engines(self) -> list[str]:
        seen: dict[str, None] = {}
        for e in self.entries:
            seen.setdefault(e.engine, None)
        return list(seen)

    def for_engine(self, engine: str) -> list[CatalogueEntry]:
        return [e for e in self.entries if e.engine == engine]


# ------------------------------------------------------------------------------------ the entries
_MAT_ONEDRIVE = (
    "https://mycuhk-my.sharepoint.com/:f:/g/personal/1155137927_link_cuhk_edu_hk/"
    "EuY30ziF-G5BvwziuHNFzDkBVC6KBPRg69kCeHIu-BXORA?e=7OwJyE"
)
_MAT_LICENSE = (
    "research use only (MAT README: 'The code and models in this repo are for research purposes only')"
)
_MAE_LICENSE = "CC-BY-NC-4.0"
_BRUSHNET_DRIVE = "https://drive.google.com/drive/folders/1fqmS1CEOvXCxNWFrsSYd_jHYXxrydh1n"


def _mae(arch: str, title: str, md5_prefix: str | None, folder: str, notes: str) -> CatalogueEntry:
    return CatalogueEntry(
        id=f"mae-{arch}",
        engine="mae",
        title=title,
        files=(
            RemoteFile(
                f"mae_{folder}_vit_{arch.split('-')[-1]}.pth",
                UrlSource(
                    f"https://dl.fbaipublicfiles.com/mae/{folder}/mae_{folder}_vit_{arch.split('-')[-1]}.pth"
                ),
                md5=md5_prefix,
            ),
        ),
        license=_MAE_LICENSE,
        homepage="https://github.com/facebookresearch/mae",
        import_target="mae",
        notes=notes,
    )


BUILTIN: tuple[CatalogueEntry, ...] = (
    CatalogueEntry(
        id="mat-places512",
        engine="mat",
        title="MAT Places2 512 (trained on the full 8M-image Places data)",
        files=(
            RemoteFile(
                "Places_512_FullData_G.pth",
                UrlSource(
                    "https://github.com/Sanster/models/releases/download/add_mat/Places_512_FullData_G.pth"
                ),
                md5="8ca927835fa3f5e21d65ffcb165377ed",
            ),
        ),
        license=_MAT_LICENSE,
        homepage="https://github.com/fenglinglwb/MAT",
        import_target="mat",
        notes="The authors share Places_512_FullData.pkl only in a OneDrive folder ("
        + _MAT_ONEDRIVE
        + "); this is IOPaint's mirror of its generator as a .pth, with the md5 IOPaint's source checks.",
    ),
    CatalogueEntry(
        id="mat-celeba512",
        engine="mat",
        title="MAT CelebA-HQ 512 (faces)",
        files=(RemoteFile("CelebA-HQ_512.pkl", ManualSource(_MAT_ONEDRIVE)),),
        license=_MAT_LICENSE,
        homepage="https://github.com/fenglinglwb/MAT",
        import_target="mat",
        notes="Published only in the authors' OneDrive folder: download CelebA-HQ_512.pkl in a browser, then "
        "`inpaint-studio models import mat CelebA-HQ_512.pkl`.",
    ),
    _mae(
        "pretrain-base",
        "MAE ViT-Base/16, pre-trained on ImageNet-1K (encoder)",
        "8cad7c",
        "pretrain",
        "The official README publishes the first six hex digits of the md5 only; those are checked. "
        "Trained with normalised-pixel targets; the file may hold the encoder alone.",
    ),
    _mae(
        "pretrain-large",
        "MAE ViT-Large/16, pre-trained on ImageNet-1K (encoder)",
        "b8b06e",
        "pretrain",
        "The official README publishes the first six hex digits of the md5 only; those are checked.",
    ),
    _mae(
        "pretrain-huge",
        "MAE ViT-Huge/14, pre-trained on ImageNet-1K (encoder)",
        "9bdbb0",
        "pretrain",
        "The official README publishes the first six hex digits of the md5 only; those are checked.",
    ),
    _mae(
        "visualize-large",
        "MAE ViT-Large/16 with its decoder, pixel targets (the official visualisation demo's model)",
        None,
        "visualize",
        "No checksum is published for this file: only its size is checked once the server states it.",
    ),
    CatalogueEntry(
        id="maskgit-imagenet256",
        engine="maskgit",
        title="MaskGIT ImageNet 256 (valeoai v1 transformer + its taming VQGAN f16/1024)",
        files=(
            RemoteFile(
                "pretrained_maskgit/MaskGIT/MaskGIT_ImageNet_256.pth",
                HubSource(
                    "llvictorll/Maskgit-pytorch", "pretrained_maskgit/MaskGIT/MaskGIT_ImageNet_256.pth"
                ),
                size=2_090_306_069,
                sha256="74b38fa16c92da3db79f9aac3c9d0d2ef5cb6ea283c48908213f10d786304462",
            ),
            RemoteFile(
                "pretrained_maskgit/VQGAN/last.ckpt",
                HubSource("llvictorll/Maskgit-pytorch", "pretrained_maskgit/VQGAN/last.ckpt"),
                size=957_954_257,
                sha256="e38a3aed8c86e8d47436f611325b3a23888cab70a0cc56c13cd84e8d4aab6e71",
            ),
            RemoteFile(
                "pretrained_maskgit/VQGAN/model.yaml",
                HubSource("llvictorll/Maskgit-pytorch", "pretrained_maskgit/VQGAN/model.yaml"),
                size=645,
            ),
        ),
        license="MIT (Hugging Face model card)",
        homepage="https://github.com/valeoai/Maskgit-pytorch/tree/v1.0",
        import_target="maskgit",
        import_from="folder",
        notes="sha256 and sizes are the Git LFS pointers of the repository's initial-models commit; "
        "model.yaml is a plain Git file (size checked only).",
    ),
    CatalogueEntry(
        id="sd15-inpainting",
        engine="sd15",
        title="Stable Diffusion 1.5 inpainting (RunwayML, single-file checkpoint)",
        files=(
            RemoteFile(
                "sd-v1-5-inpainting.ckpt",
                HubSource(
                    "stable-diffusion-v1-5/stable-diffusion-inpainting",
                    "sd-v1-5-inpainting.ckpt",
                    revision="8a4288a76071f7280aedbdb3253bdb9e9d5d84bb",
                ),
                size=4_265_437_280,
                sha256="c6bbc15e3224e6973459ba78de4998b80b50112b0ae5b5c67113d56b4e366b19",
            ),
        ),
        license="CreativeML OpenRAIL-M",
        homepage="https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-inpainting",
        import_target="sd15",
        notes="runwayml/stable-diffusion-inpainting was withdrawn; stable-diffusion-v1-5/ keeps the same "
        "files. The sha256 is the LFS object id of RunwayML's sd-v1-5-inpainting.ckpt.",
    ),
    CatalogueEntry(
        id="sd15-base",
        engine="mta",
        title="Stable Diffusion 1.5 base (text-to-image), what BrushNet and MTA fill over",
        files=(
            RemoteFile(
                "v1-5-pruned-emaonly.safetensors",
                HubSource("stable-diffusion-v1-5/stable-diffusion-v1-5", "v1-5-pruned-emaonly.safetensors"),
                approx_size="4.27 GB",
            ),
        ),
        license="CreativeML OpenRAIL-M",
        homepage="https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5",
        import_target="sd15-base",
        notes="A BrushNet checkpoint names no base model: the mta engine uses this one when neither its "
        "branch nor the Base model setting names another (any SD-1.5 text-to-image model works there). "
        "No checksum is published in the catalogue: the download is checked against the sha256 the Hub "
        "reports for the LFS file.",
    ),
    CatalogueEntry(
        id="brushnet-segmentation-sd15",
        engine="mta",
        title="BrushNet for SD 1.5, trained on segmentation masks",
        files=(
            RemoteFile(
                "config.json",
                HubSource(
                    "TencentARC/BrushNet",
                    "data/ckpt/segmentation_mask_brushnet_ckpt/config.json",
                    revision="0bfe588b24e5c47d97eb8dcafdb48d8e8223faec",
                    repo_type="space",
                ),
                approx_size="1.38 kB",
            ),
            RemoteFile(
                "diffusion_pytorch_model.safetensors",
                HubSource(
                    "TencentARC/BrushNet",
                    "data/ckpt/segmentation_mask_brushnet_ckpt/diffusion_pytorch_model.safetensors",
                    revision="0bfe588b24e5c47d97eb8dcafdb48d8e8223faec",
                    repo_type="space",
                ),
                approx_size="2.48 GB",
            ),
        ),
        license="Apache-2.0 (BrushNet repository LICENSE)",
        homepage="https://github.com/TencentARC/BrushNet",
        import_target="mta",
        import_from="folder",
        notes="From the authors' Hugging Face Space (the 'Add ckpt' commit); they also share it in a Google "
        f"Drive folder ({_BRUSHNET_DRIVE}). No checksum is published in the catalogue: the download is "
        "checked against the sha256 the Hub reports for the LFS file.",
    ),
    CatalogueEntry(
        id="brushnet-random-sd15",
        engine="mta",
        title="BrushNet for SD 1.5, trained on random masks",
        files=(
            RemoteFile(
                "config.json",
                HubSource("Sanster/brushnet_random_mask", "config.json"),
                approx_size="1.38 kB",
            ),
            RemoteFile(
                "diffusion_pytorch_model.safetensors",
                HubSource("Sanster/brushnet_random_mask", "diffusion_pytorch_model.safetensors"),
                approx_size="2.48 GB",
            ),
        ),
        license="Apache-2.0 (BrushNet repository LICENSE)",
        homepage="https://github.com/TencentARC/BrushNet",
        import_target="mta",
        import_from="folder",
        notes=f"The authors share it only in a Google Drive folder ({_BRUSHNET_DRIVE}); this is IOPaint's "
        "Hugging Face mirror. No checksum is published: the download is checked against the sha256 the Hub "
        "reports for the LFS file.",
    ),
    CatalogueEntry(
        id="asuka-mae-prior",
        engine="asuka",
        title="ASUKA MAE prior (mae_300.pth of the ASUKA FLUX.1-Fill release)",
        files=(RemoteFile("mae_300.pth", HubSource("yikaiwang/ASUKA-FLUX.1-Fill", "mae_300.pth")),),
        license=None,
        homepage="https://github.com/Yikai-Wang/asuka-misato",
        import_target="asuka-prior",
        notes="The README links the Hugging Face repository and expects the file as ckpt/mae_300.pth; its place "
        "at the repository root, its size, checksum and license could not be read here. The ASUKA code is "
        "Apache-2.0 and the README asks for research use only. Checked against the Hub's LFS sha256.",
    ),
)


def builtin() -> Catalogue:
    return Catalogue(BUILTIN)
