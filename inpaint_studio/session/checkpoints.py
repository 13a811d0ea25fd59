"""Where each engine's public checkpoint comes from, for the person whose engine is greyed out.

Plain facts the engine panel and its tooltips show beside "Import checkpoint…": the official
release people already have, and where it is published. Nothing here downloads (the model
manager does that, when the person asks).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckpointSource:
    what: str  # the checkpoint, as its authors name it
    where: str  # where it is published
    note: str = ""  # anything else worth knowing (a second file, training instead)

    @property
    def text(self) -> str:
        line = f"Public checkpoint: {self.what}, from {self.where}."
        return f"{line} {self.note}" if self.note else line


SOURCES: dict[str, CheckpointSource] = {
    "mat": CheckpointSource(
        "the official MAT Places2 512 generator (Places_512_FullData.pkl, or IOPaint's Places_512_FullData_G.pth)",
        "the MAT authors' repository github.com/fenglinglwb/MAT (download links in its README)",
        "Import it as it is; it is converted to safetensors.",
    ),
    "maskgit": CheckpointSource(
        "the MaskGIT ImageNet 256 transformer (MaskGIT_ImageNet_256.pth) with the taming VQGAN f16-1024 (last.ckpt)",
        "Hugging Face llvictorll/Maskgit-pytorch (folder pretrained_maskgit/)",
        "Import the VQGAN and the transformer in turn.",
    ),
    "sd15": CheckpointSource(
        "a Stable Diffusion 1.5 inpainting model (sd-v1-5-inpainting.safetensors or .ckpt, or its diffusers folder)",
        "Hugging Face (the model first published as runwayml/stable-diffusion-inpainting, and its mirrors)",
        "Point “Use weights folder…” at the file's folder or the diffusers folder; nothing is downloaded.",
    ),
    "inpnet": CheckpointSource(
        "the official MAE ViT-Large (mae_visualize_vit_large.pth) as the encoder",
        "the MAE authors' repository github.com/facebookresearch/mae (dl.fbaipublicfiles.com/mae/)",
        "Its light decoder is then fitted to your pictures with inpaint-studio-train inpnet.",
    ),
}


def source_of(engine_id: str) -> CheckpointSource | None:
    return SOURCES.get(engine_id)
