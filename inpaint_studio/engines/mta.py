"""MTA: text-prompted object fill with a brush branch (BrushNet, or MTA's branch with self-attention)
beside the person's own SD-1.5 text-to-image model.

Two kinds of weights meet here:

* the **branch**: a weights folder of the model store's ``models/mta/`` (or ``--weights``), written by
  ``inpaint-studio import mta FOLDER`` from a public BrushNet SD-1.5 checkpoint
  (``segmentation_mask_brushnet_ckpt``, ``random_mask_brushnet_ckpt``) or exported by
  ``inpaint-studio-train mta``;
* the **base model**: an SD-1.5 text-to-image model (4-channel UNet, VAE, CLIP text encoder and
  tokenizer; a diffusers folder or one ``.safetensors`` / ``.ckpt`` file). The branch's ``config.json``
  may name it by path (``base_model``, what the trainer records); the ``base_model`` setting wins, and
  the model store's ``sd15-base`` (a catalogue download) serves a branch that names none (BrushNet's)
  or whose model is not on this computer.

Both come from the shared component cache, so ``sd15`` or ASUKA on the same files share the parts. A run:
the latent compositor crops around the mask and scales it to ``resolution``; the branch loop
(``models/diffusion/brush_sampling.py``) denoises one latent per variant, variant ``i`` with its own
generator seeded ``variant_seed(seed, i)``; every step yields a placed Preview and cancel is honoured
between steps; the fills come back at the mask's box (outside it the photo is untouched).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..models.bundle import BundleError, named_base_model, read_config
from ..models.components import ComponentKey, shared_cache
from ..models.diffusion.source import STORE_BASE, store_base_model
from .base import (
    Availability,
    CancelFn,
    EngineError,
    EngineInfo,
    Event,
    WeightsMissing,
)
from .latent_compositor import LATENT_FACTOR
from .latent_params import latent_fill_params, scheduler_param
from .latent_run import LatentEngine, LatentRun, PasteOptions, missing_libraries, stream_fill
from .params import Param
from .runtime import Runtime
from .weights import weights_availability

ENGINE_ID = "mta"
TITLE = "MTA"
HINT = (
    "download a BrushNet SD-1.5 checkpoint (`inpaint-studio models download brushnet-random-sd15`, or "
    "Models… in the app), import one you have with `inpaint-studio import mta FOLDER` "
    "(segmentation_mask_brushnet_ckpt or random_mask_brushnet_ckpt), or train a branch with "
    "`inpaint-studio-train mta`"
)
BASE_HINT = (
    "set base_model (`--set base_model=PATH` or the engine settings) to your SD-1.5 text-to-image model: "
    "a diffusers folder or one .safetensors / .ckpt file; or download one into the model store "
    f"(`inpaint-studio models download {STORE_BASE}`, or Models… in the app)"
)
BRUSHNET_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


@dataclass(frozen=True)
class MtaModel:
    """What one run uses: the base model's parts and the branch, both from the component cache."""

    parts: Any  # models.diffusion.loading.SD15Parts
    branch: Any  # models.diffusion.brushnet.BrushBranch
    branch_path: Path


class MtaEngine(LatentEngine):
    info = EngineInfo(
        id=ENGINE_ID,
        title=TITLE,
        description="Write what should appear in the mask and get that object, painted by your Stable "
        "Diffusion 1.5 model steered by a BrushNet or MTA branch that keeps it fitted to the photo; "
        "several variants at once, a preview at every step.",
        params=(
            Param("steps", "int", 25, minimum=1, maximum=150, help="denoising steps (BrushNet used 50)"),
            Param(
                "guidance",
                "float",
                7.5,
                minimum=0.0,
                maximum=30.0,
                step=0.5,
                help="how strongly the prompt steers the fill (1 or less: no guidance, twice as fast)",
            ),
            scheduler_param("unipc"),  # BrushNet's
            Param(
                "conditioning_scale",
                "float",
                1.0,
                minimum=0.0,
                maximum=2.0,
                step=0.05,
                help="how strongly the branch ties the fill to the photo (0: the base model alone)",
            ),
            Param(
                "base_model",
                "path",
                "",
                help="your SD-1.5 text-to-image model (folder or file); empty: the one the branch names",
                placeholder="the one the branch names",
            ),
            *latent_fill_params(),
        ),
        takes_prompt=True,
        yields_variants=True,
        yields_previews=True,
        native_size=512,
        pad_multiple=LATENT_FACTOR,
        training_hint=HINT,
    )

    # ------------------------------------------------------------------ weights
    @classmethod
    def availability(cls, weights: str | Path | None = None) -> Availability:
        """The branch must be there; its base model too when it names one (else the setting must)."""
        libraries = missing_libraries()
        if libraries:
            return Availability(False, f"{TITLE} {libraries}")
        try:
            branch = find_branch(weights)
            base = named_base_model(branch)
        except (WeightsMissing, BundleError) as err:
            return Availability(False, str(err))
        # the base_model setting, not known here, can name it: runnable, with a note saying what to set
        store = store_base_model()
        if base is None:
            if store is not None:  # a BrushNet checkpoint beside the store's base: the one-click case
                return Availability(True, weights=branch)
            return Availability(True, f"{branch} names no base model: {BASE_HINT}", weights=branch)
        if not base[0].exists():  # trained on another computer, or the model moved
            missing = f"the base model {base[0]} that {branch} names is not on this computer"
            if store is not None:
                return Availability(True, f"{missing}: the model store's {store.name} stands in", branch)
            return Availability(True, f"{missing}: {BASE_HINT}", branch)
        return Availability(True, weights=branch)

    @classmethod
    def import_weights(cls, source: Path, dest: Path) -> Path:
        """A public BrushNet SD-1.5 checkpoint (diffusers-format folder or one file) -> branch folder."""
        from ..models.diffusion.brushnet_import import BrushNetImportError, import_brushnet

        try:
            return import_brushnet(source, dest)
        except (BrushNetImportError, OSError) as err:
            raise EngineError(f"cannot import {Path(source).name} as a BrushNet branch: {err}") from None

    def load(self, runtime: Runtime, base_model: str = "") -> MtaModel:
        """The base model's parts and the branch from the shared component cache (loaded on first use)."""
        from ..models.diffusion.brush_sampling import check_branch_fits
        from ..models.diffusion.brushnet_import import load_branch
        from ..models.diffusion.loading import ModelLoadError, load_sd15

        branch_path = find_branch(self.weights)
        source = find_base(branch_path, base_model)
        try:
            parts = load_sd15(source, runtime.device, runtime.precision)
        except ModelLoadError as err:
            raise EngineError(str(err)) from None
        if parts.inpainting:
            raise EngineError(
                f"{source.path} is an inpainting model (9-channel UNet); the branch runs beside a text-to-image "
                f"SD-1.5 model: {BASE_HINT}"
            )

        def build() -> Any:
            try:
                branch = load_branch(branch_path, runtime.device)
            except (BundleError, ValueError, RuntimeError) as err:
                raise EngineError(f"cannot load the branch {branch_path}: {err}") from None
            return branch.to(dtype=runtime.dtype).requires_grad_(False)

        key = ComponentKey(str(branch_path.resolve()), "brush-branch", runtime.precision, runtime.device)
        branch = shared_cache().get(key, build)
        try:
            check_branch_fits(branch, parts.unet)
        except ValueError as err:
            raise EngineError(f"{branch_path} does not fit {source.path}: {err}") from None
        return MtaModel(parts, branch, branch_path)

    # ------------------------------------------------------------------ run
    def load_parts(self, runtime: Runtime, params: dict[str, Any]) -> Any:
        return self.load(runtime, params["base_model"])

    def sd_parts(self, parts: Any) -> Any:
        return parts.parts

    def fill_latent(self, run: LatentRun, cancel: CancelFn) -> Iterator[Event]:

        from ..models.diffusion.brush_sampling import brush_steps
        from ..models.diffusion.sampling import Sampling

        model: MtaModel = run.parts
        plan, request, params, runtime = run.plan, run.request, run.params, run.runtime
        _, work_mask, pixels, pixel_mask = run.work_inputs()
        seeds, generators = run.seeded_generators()
        sampling = Sampling(
            steps=int(params["steps"]), guidance=float(params["guidance"]), scheduler=params["scheduler"]
        )
        scale = float(params["conditioning_scale"])
        states = brush_steps(
            model.parts,
            model.branch,
            pixels,
            pixel_mask,
            request.prompt,
            request.negative_prompt,
            generators,
            sampling,
            scale,
        )
        options = PasteOptions(
            int(params["feather"]), bool(params["color_match"]), int(params["decode_every"])
        )
        meta = {
            "box": plan.box,
            "work_size": plan.work_size,
            "scheduler": sampling.scheduler,
            "steps": sampling.steps,
            "guidance": sampling.guidance,
            "conditioning_scale": scale,
            "device": runtime.device,
            "precision": runtime.precision,
            "model": str(model.parts.source.path),
            "branch": str(model.branch_path),
        }
        yield from stream_fill(model.parts, plan, request, states, seeds, options, meta, cancel)


# ---------------------------------------------------------------------------------- weights
def find_branch(weights: str | Path | None) -> Path:
    """The branch's weights folder: ``weights`` if given, else the newest one in the store."""
    avail = weights_availability(ENGINE_ID, TITLE, weights, HINT)
    if avail.ok and avail.weights is not None:
        return avail.weights
    if weights and _is_brushnet_checkpoint(Path(weights).expanduser()):
        raise WeightsMissing(
            f"{weights} is a BrushNet checkpoint, not a branch folder: import it first with "
            f"`inpaint-studio import mta {weights}`"
        )
    raise WeightsMissing(avail.reason)


def find_base(branch: Path, base_model: str = "") -> Any:
    """The base model's :class:`ModelSource`: the ``base_model`` setting, else what the branch names,
    else (the branch names none, or its model is not on this computer) the model store's base."""
    from ..models.diffusion.source import ModelSourceError, model_source

    if base_model:
        where = f"base_model {base_model}"
        path = Path(base_model).expanduser()
    else:
        try:
            named = named_base_model(branch)
        except BundleError as err:
            raise WeightsMissing(str(err)) from None
        store = store_base_model()
        if named is None and store is None:
            raise WeightsMissing(f"{branch} names no base model: {BASE_HINT}")
        if named is None or (not named[0].exists() and store is not None):
            path, where = store, f"the model store's base model {store}"
        else:
            path = named[0]
            where = f"the base model {path} that {branch} names"
    try:
        return model_source(path)
    except ModelSourceError as err:
        raise WeightsMissing(f"{where}: {err}; {BASE_HINT}") from None


def _is_brushnet_checkpoint(path: Path) -> bool:
    """A fork-format BrushNet folder (its config.json has no ``engine``) or a lone checkpoint file."""
    if path.is_file():
        return path.suffix in (".safetensors", ".bin")
    if not any((path / name).is_file() for name in BRUSHNET_FILES):
        return False
    try:
        return "engine" not in read_config(path)
    except (BundleError, json.JSONDecodeError):
        return True
