"""MAT: large-hole GAN inpainting with browsable variants.

Every variant has its own latent z and its own pair of bottleneck keep maps (the dropout official
MAT draws even in eval mode), all drawn from the variant's own seed (``engines/seeds.py``), so a
variant is reproducible on its own and whatever batch it runs in. The image-only part of the network (the first stage's encoder
and transformer down to the bottleneck, and the second-stage encoder's top levels outside the
hole) runs once per request; the rest runs in batches of variants, its full-resolution levels
only on a window around the hole when the hole is small enough for that to pay (exact up to float
rounding: see models/mat/window.py). "More like this" (``Request.meta["mat_near"]``, offered as a
follow-up on every variant) makes new variants as small steps around a chosen variant's z, keeping
its keep maps; it chains (more like a variant that was itself made that way).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .base import (
    BadRequest,
    CancelFn,
    EngineError,
    EngineInfo,
    Event,
    Progress,
    Request,
    Result,
    Variant,
    check_cancel,
)
from .followup import FOLLOWUP_KEY, Followup
from .framed import Geometry, ModelInput, Params
from .framing import framing_params
from .model_engine import ModelEngine
from .params import Param
from .runtime import Runtime, runtime_params
from .seeds import variant_seed

ENGINE_ID = "mat"
HINT = "train with `inpaint-studio-train mat` or import the official checkpoint with `inpaint-studio import mat FILE`"
NEAR_KEY = "mat_near"  # Request.meta: the reference chain of "More like this" (randomness.NearChain)
# Variants per batch when batch_size is 0. On the CPU (benchmarks/bench_mat.py, 2 threads, 512 px)
# 4 variants in one batch took 0.70-0.82 of the time of 4 separate engine runs; sharing the encoding
# with batches of 1 did as well in one run (0.76), so the gain is the shared encoding more than the
# batch. A batch of 4 peaks at about 3.7 GB resident (1.4 GB for one, 6.6 GB for 8).
AUTO_BATCH = {"cpu": 4, "cuda": 8, "mps": 4}


class MatEngine(ModelEngine):
    info = EngineInfo(
        id=ENGINE_ID,
        title="MAT",
        description="Mask-Aware Transformer GAN (Li et al. 2022) for large holes. Each variant is a different "
        "plausible fill; browse them and pick one, or ask for more like the one you like.",
        params=(
            Param(
                "truncation_psi",
                "float",
                1.0,
                minimum=0.0,
                maximum=1.5,
                step=0.05,
                help="pull the style toward the average: lower is safer and less varied, 1 is the trained spread",
            ),
            Param(
                "noise_mode",
                "choice",
                "const",
                choices=("const", "random", "none"),
                help="per-pixel noise of the refinement stage: const = the trained fixed pattern, "
                "random = drawn per variant from its seed, none = no noise",
            ),
            Param(
                "batch_size",
                "int",
                0,
                minimum=0,
                maximum=32,
                advanced=True,
                help="variants computed together (0 = automatic: 4 on the CPU, 8 on a CUDA GPU); fewer use less memory",
            ),
            Param(
                "start_index",
                "int",
                0,
                minimum=0,
                advanced=True,
                help="index of the first variant (ask for more with a higher one)",
            ),
            Param(
                "spread",
                "float",
                0.3,
                minimum=0.0,
                maximum=3.0,
                step=0.05,
                help="more like this: how far new variants step from the chosen one (0 = the same)",
            ),
            *framing_params("crop", default_context=0.5),
            *runtime_params(),
        ),
        yields_variants=True,
        native_size=512,
        pad_multiple=512,
        training_hint=HINT,
    )

    hint = HINT

    @classmethod
    def import_weights(cls, source: Path, dest: Path) -> Path:
        """Official ``.pkl``, IOPaint's ``.pth`` or a ``.safetensors`` state dict -> weights folder."""
        from ..models.mat.checkpoint import CheckpointError, import_checkpoint

        try:
            return import_checkpoint(source, dest)
        except CheckpointError as err:
            raise EngineError(f"cannot import {Path(source).name} as MAT weights: {err}") from err

    # ------------------------------------------------------------------------------ model
    def load(self, params: Params, cancel: CancelFn) -> Geometry:
        """The generator on the asked-for device and precision, through the shared component cache."""
        from ..models.mat.cpu_memory import keep_freed_memory

        model = self.component(params, "mat-generator", _load_generator)
        if self._runtime is not None and self._runtime.device == "cpu":
            keep_freed_memory()
        res = model.config.img_resolution  # a 256 checkpoint (CelebA-HQ 256) is framed at 256
        return Geometry(res, res)

    # ------------------------------------------------------------------------------ fill
    def fill(self, work: ModelInput, request: Request, params: Params, cancel: CancelFn) -> Iterator[Event]:
        import torch

        from ..models.mat import KeepMaps, SampleStreams, variant_inputs

        image, mask = work.image, work.mask
        model, runtime = self._model, self._runtime
        assert runtime is not None
        count = request.variants
        batches = _batches(count, params["batch_size"] or AUTO_BATCH.get(runtime.device.split(":")[0], 1))
        total = 1 + 2 * len(batches)
        near = _near_chain(request.meta.get(NEAR_KEY))
        spread = float(params["spread"]) if near else 0.0
        yield Progress(0, total, "encoding the image")

        synthesis = model.synthesis
        h, w = image.shape[:2]
        shapes = synthesis.keep_map_shapes(1, h, w)
        done = 1
        first: Variant | None = None
        with torch.inference_mode():
            img = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 127.5 - 1
            keep = torch.from_numpy(mask == 0)[None, None].float()
            enc = synthesis.encode(img.to(runtime.device), keep.to(runtime.device))
            check_cancel(cancel)
            for rows in batches:
                yield Progress(done, total, f"variants {rows.start + 1}-{rows.stop} of {count}")
                indices = [params["start_index"] + i for i in rows]
                seeds = [variant_seed(request.seed, i) for i in indices]
                inputs = [variant_inputs(sd, model.config.z_dim, shapes, near, spread) for sd in seeds]
                z = torch.cat([v.z for v in inputs]).to(runtime.device)
                ws = model.mapping(z, truncation_psi=params["truncation_psi"])
                noise_fn = SampleStreams([v.stream for v in inputs]).normal
                out = synthesis.fill(
                    enc,
                    ws,
                    KeepMaps.cat([v.keep_maps for v in inputs]),
                    params["noise_mode"],
                    noise_fn,
                    between_stages=lambda: check_cancel(cancel),
                )
                done += 2
                pixels = (out.image.float() * 127.5 + 127.5).round().clamp(0, 255).to(torch.uint8)
                pixels = pixels.permute(0, 2, 3, 1).cpu().numpy()
                for row, (index, seed) in enumerate(zip(indices, seeds, strict=True)):
                    meta = _variant_meta(seed, index, params, near, spread, runtime)
                    variant = Variant(np.ascontiguousarray(pixels[row]), index, seed, meta)
                    first = first or variant
                    yield variant
                check_cancel(cancel)
        yield Progress(total, total, "done")
        assert first is not None
        yield Result(first.image, dict(first.meta))


def _load_generator(path: Path, runtime: Runtime) -> Any:
    from ..models.bundle import BundleError
    from ..models.mat.checkpoint import load_generator

    try:
        model = load_generator(path)
    except (BundleError, ValueError, RuntimeError, TypeError, KeyError) as err:
        raise EngineError(f"cannot load MAT weights from {path}: {str(err).splitlines()[0]}") from err
    return model.requires_grad_(False).to(device=runtime.device, dtype=runtime.dtype)


def _batches(count: int, batch: int) -> list[range]:
    """The first variant alone, so it reaches the screen as fast as a single fill; then batches.

    A batch yields only when all of it is done, and on the CPU batching saves little (1.3x for 4),
    so a first batch of 4 would show the first variant after nearly 4 single fills.
    """
    if count <= 1:
        return [range(0, count)]
    return [range(0, 1)] + [range(s, min(s + batch, count)) for s in range(1, count, batch)]


def _near_chain(value: Any) -> tuple[tuple[int, float], ...]:
    """``Request.meta["mat_near"]`` (a tuple, or lists after a trip through JSON) as a NearChain."""
    if not value:
        return ()
    try:
        chain = tuple((int(s), float(sp)) for s, sp in value)
    except (TypeError, ValueError):
        raise BadRequest(f"meta[{NEAR_KEY!r}] must be a list of (seed, spread) pairs") from None
    return chain


def _variant_meta(
    seed: int,
    index: int,
    params: dict[str, Any],
    near: tuple[tuple[int, float], ...],
    spread: float,
    runtime: Runtime,
) -> dict[str, Any]:
    chain = (*near, (seed, spread)) if near else ((seed, 0.0),)
    meta: dict[str, Any] = {
        "engine": ENGINE_ID,
        "seed": seed,
        "index": index,
        "z_source": "near" if near else "seed",
        "truncation_psi": params["truncation_psi"],
        "noise_mode": params["noise_mode"],
        "precision": runtime.precision,
        FOLLOWUP_KEY: Followup(
            "More like this",
            meta={NEAR_KEY: chain},
            tip="New variants as small steps around this one (the spread setting says how far)",
        ),
    }
    if near:
        meta[NEAR_KEY] = near  # with this seed, what reproduces the variant alone
    return meta
