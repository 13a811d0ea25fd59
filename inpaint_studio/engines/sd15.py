"""Stable Diffusion 1.5 inpainting: a prompt-steered fill on a person's own SD-1.5 model, offline.

The model is a local diffusers folder or one ``.safetensors`` / ``.ckpt`` file (``--weights``, the
settings, or the model store's ``models/sd15/<name>/``: a diffusers folder, a folder with one checkpoint
file, or a ``config.json`` whose ``base_model`` names one). Its parts come from the shared component
cache, so another engine on the same model does not load a second copy.

A run: the latent compositor crops around the mask and scales the crop to ``resolution``; the inpainting
loop (``models/diffusion/sampling.py``) denoises one latent per variant, variant ``i`` with its own
generator seeded ``variant_seed(seed, i)``, so any variant re-run alone with its ``Variant.seed`` gives
the same fill; every step yields a Preview (the SD-1.5 latent-to-RGB projection, optionally a real VAE
decode every K steps) and cancel is honoured between steps; the fills are pasted back inside the mask.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import (
    Availability,
    CancelFn,
    EngineError,
    EngineInfo,
    Event,
    WeightsMissing,
)
from .latent_params import latent_fill_params, scheduler_param, steps_param
from .latent_run import LatentEngine, LatentRun, PasteOptions, missing_libraries, stream_fill
from .params import Param
from .runtime import Runtime
from .weights import store_dir

ENGINE_ID = "sd15"
TITLE = "Stable Diffusion 1.5"
HINT = (
    "point --weights (or the engine settings) at a Stable Diffusion 1.5 inpainting model: a diffusers "
    "folder or one .safetensors / .ckpt file, or get one into the model store with `inpaint-studio models`"
)


class SD15Engine(LatentEngine):
    info = EngineInfo(
        id=ENGINE_ID,
        title=TITLE,
        description="Stable Diffusion 1.5 inpainting steered by a prompt: the region is repainted by the "
        "diffusion model, several variants at once, with a preview at every step.",
        params=(
            steps_param(),
            Param(
                "guidance",
                "float",
                7.5,
                minimum=0.0,
                maximum=30.0,
                step=0.5,
                help="how strongly the prompt steers the fill (1 or less: no guidance, twice as fast)",
            ),
            scheduler_param(),
            Param(
                "strength",
                "float",
                1.0,
                minimum=0.05,
                maximum=1.0,
                step=0.05,
                help="1 repaints the region from noise; lower keeps more of what is there",
            ),
            *latent_fill_params(),
        ),
        takes_prompt=True,
        yields_variants=True,
        yields_previews=True,
        native_size=512,
        pad_multiple=8,
        training_hint=HINT,
    )

    # ------------------------------------------------------------------ weights
    @classmethod
    def availability(cls, weights: str | Path | None = None) -> Availability:
        libraries = missing_libraries()
        if libraries:
            return Availability(False, f"{TITLE} {libraries}")
        try:
            source = find_model(weights)
        except WeightsMissing as err:
            return Availability(False, str(err))
        return Availability(True, weights=source.path)

    def load(self, runtime: Runtime) -> Any:
        """The model's parts from the shared component cache (loaded on first use)."""
        avail = self.availability(self.weights)
        if not avail.ok:
            raise WeightsMissing(avail.reason)
        from ..models.diffusion.loading import ModelLoadError, load_sd15

        source = find_model(self.weights)
        try:
            return load_sd15(source, runtime.device, runtime.precision)
        except ModelLoadError as err:
            raise EngineError(str(err)) from None

    # ------------------------------------------------------------------ run
    def load_parts(self, runtime: Runtime, params: dict[str, Any]) -> Any:
        return self.load(runtime)

    def fill_latent(self, run: LatentRun, cancel: CancelFn) -> Iterator[Event]:
        import torch

        from ..models.diffusion.sampling import Sampling, inpaint_steps

        parts: Any = run.parts
        plan, request, params, runtime = run.plan, run.request, run.params, run.runtime
        _, work_mask, pixels, pixel_mask = run.work_inputs()
        latent_mask = torch.from_numpy(plan.latent_mask(work_mask))[None, None]
        seeds, generators = run.seeded_generators()
        sampling = Sampling(
            steps=int(params["steps"]),
            guidance=float(params["guidance"]),
            strength=float(params["strength"]),
            scheduler=params["scheduler"],
        )
        options = PasteOptions(
            int(params["feather"]), bool(params["color_match"]), int(params["decode_every"])
        )
        states = inpaint_steps(
            parts,
            pixels,
            pixel_mask,
            latent_mask,
            request.prompt,
            request.negative_prompt,
            generators,
            sampling,
        )
        meta = {
            "box": plan.box,
            "work_size": plan.work_size,
            "scheduler": sampling.scheduler,
            "steps": sampling.steps,
            "device": runtime.device,
            "precision": runtime.precision,
            "model": str(parts.source.path),
        }
        yield from stream_fill(parts, plan, request, states, seeds, options, meta, cancel)


def find_model(weights: str | Path | None) -> Any:
    """The :class:`ModelSource` to run: ``weights`` if given, else the newest entry of the store."""
    from ..models.diffusion.source import ModelSourceError, model_source

    candidates: list[Path]
    if weights:
        candidates = [Path(weights).expanduser()]
    else:
        root = store_dir(ENGINE_ID)
        entries = [p for p in root.iterdir() if not p.name.startswith(".")] if root.is_dir() else []
        candidates = sorted(entries, key=lambda p: p.stat().st_mtime, reverse=True)
        if not candidates:
            raise WeightsMissing(f"no {TITLE} model in {root}; {HINT}")
    errors = []
    for path in candidates:
        try:
            return model_source(path)
        except ModelSourceError as err:
            errors.append(str(err))
    raise WeightsMissing(
        f"{errors[0]}; {HINT}" if weights else f"no usable {TITLE} model in {store_dir(ENGINE_ID)}; {HINT}"
    )
