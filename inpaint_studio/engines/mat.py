"""MAT: large-hole GAN inpainting with browsable variants.

Every variant has its own latent z and its own pair of bottleneck keep maps (the dropout official
MAT draws even in eval mode), all derived from (seed, index), so a variant is reproducible on its
own and whatever batch it runs in. The image-only part of the network (the first stage's encoder
and transformer down to the bottleneck, and the second-stage encoder's top levels outside the
hole) runs once per request; the rest runs in batches of variants, its full-resolution levels
only on a window around the hole when the hole is small enough for that to pay (exact up to float
rounding: see models/mat/window.py). "More like this" (``near_variant_index``) makes new variants
as small steps around a chosen variant's z, keeping its keep maps.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
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
from .device import pick_device
from .followup import FOLLOWUP_KEY, Followup
from .framed import FramedEngine
from .framing import framing_params
from .params import Param
from .weights import require_weights, weights_availability

ENGINE_ID = "mat"
HINT = "train with `inpaint-studio-train mat` or import the official checkpoint with `inpaint-studio import mat FILE`"
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
# Variants per batch when batch_size is 0. On the CPU (benchmarks/bench_mat.py, 2 threads, 512 px)
# 4 variants in one batch took 0.70-0.82 of the time of 4 separate engine runs; sharing the encoding
# with batches of 1 did as well in one run (0.76), so the gain is the shared encoding more than the
# batch. A batch of 4 peaks at about 3.7 GB resident (1.4 GB for one, 6.6 GB for 8).
AUTO_BATCH = {"cpu": 4, "cuda": 8, "mps": 4}


class MatEngine(FramedEngine):
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
                "near_variant_index",
                "int",
                -1,
                minimum=-1,
                advanced=True,
                help="more like this: the index of the variant to vary around (-1 = off)",
            ),
            Param(
                "near_variant_seed",
                "int",
                -1,
                minimum=-1,
                advanced=True,
                help="more like this: the seed of that variant's request (-1 = this request's seed)",
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
            Param(
                "precision",
                "choice",
                "auto",
                choices=PRECISIONS,
                help="auto: fp16 on a CUDA GPU, fp32 elsewhere; bf16 is faster on CPUs with bf16 support",
            ),
            *framing_params("crop", default_context=0.5),
        ),
        yields_variants=True,
        native_size=512,
        pad_multiple=512,
        training_hint=HINT,
    )

    def __init__(self, weights: str | Path | None = None, device: str | None = None) -> None:
        super().__init__(weights, device)
        self._model: Any = None
        self._model_key: tuple[str, str, str] | None = None

    @classmethod
    def availability(cls, weights: str | Path | None = None):  # noqa: ANN206 - base signature
        return weights_availability(ENGINE_ID, cls.info.title, weights, HINT)

    @classmethod
    def import_weights(cls, source: Path, dest: Path) -> Path:
        """Official ``.pkl``, IOPaint's ``.pth`` or a ``.safetensors`` state dict -> weights folder."""
        from ..models.mat.checkpoint import CheckpointError, import_checkpoint

        try:
            return import_checkpoint(source, dest)
        except CheckpointError as err:
            raise EngineError(f"cannot import {Path(source).name} as MAT weights: {err}") from err

    # ------------------------------------------------------------------------------ model
    def _load(self, precision: str) -> tuple[Any, str, Any]:
        import torch

        from ..models.bundle import BundleError
        from ..models.mat.checkpoint import load_generator
        from ..models.mat.cpu_memory import keep_freed_memory

        device = pick_device(self.device_preference)
        kind = device.split(":")[0]
        if precision == "auto":
            precision = "fp16" if kind == "cuda" else "fp32"
        if precision == "fp16" and kind == "cpu":
            raise BadRequest("fp16 needs a GPU; on the CPU use precision fp32 or bf16")
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        path = require_weights(ENGINE_ID, self.info.title, self.weights, HINT)
        key = (str(path), device, precision)
        if self._model_key != key:
            self._model = None  # free the old one first
            try:
                model = load_generator(path)
            except (BundleError, ValueError, RuntimeError, TypeError, KeyError) as err:
                raise EngineError(f"cannot load MAT weights from {path}: {str(err).splitlines()[0]}") from err
            self._model = model.requires_grad_(False).to(device=device, dtype=dtype)
            self._model_key = key
            # a 256 checkpoint (official CelebA-HQ 256) works at 256: frame for the weights' size
            res = model.config.img_resolution
            self.info = replace(type(self).info, native_size=res, pad_multiple=res)
        if kind == "cpu":
            keep_freed_memory()
        return self._model, device, dtype

    # ------------------------------------------------------------------------------ fill
    def run(self, request: Request, cancel: CancelFn = lambda: False) -> Iterator[Event]:
        params = self.resolve(request)  # reject a bad request before loading weights
        yield Progress(0, 1, "loading MAT")
        self._load(params["precision"])
        check_cancel(cancel)
        yield from super().run(request, cancel)

    def fill(
        self, image: np.ndarray, mask: np.ndarray, request: Request, params: dict[str, Any], cancel: CancelFn
    ) -> Iterator[Event]:
        import torch

        from ..models.mat import KeepMaps, SampleStreams, variant_inputs

        count = request.variants
        check_cancel(cancel)
        model, device, dtype = self._load(params["precision"])
        kind = device.split(":")[0]
        batch = params["batch_size"] or AUTO_BATCH.get(kind, 1)
        batches = [range(s, min(s + batch, count)) for s in range(0, count, batch)]
        total = 1 + 2 * len(batches)
        near = None
        if params["near_variant_index"] >= 0:
            ref_seed = request.seed if params["near_variant_seed"] < 0 else params["near_variant_seed"]
            near = (ref_seed, params["near_variant_index"], params["spread"])
        yield Progress(0, total, "encoding the image")

        synthesis = model.synthesis
        h, w = image.shape[:2]
        shapes = synthesis.keep_map_shapes(1, h, w)
        done = 1
        first: Variant | None = None
        with torch.inference_mode():
            img = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 127.5 - 1
            keep = torch.from_numpy(mask == 0)[None, None].float()
            enc = synthesis.encode(img.to(device), keep.to(device))
            check_cancel(cancel)
            for rows in batches:
                yield Progress(done, total, f"variants {rows.start + 1}-{rows.stop} of {count}")
                indices = [params["start_index"] + i for i in rows]
                inputs = [variant_inputs(request.seed, i, model.config.z_dim, shapes, near) for i in indices]
                z = torch.cat([v.z for v in inputs]).to(device)
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
                for row, index in enumerate(indices):
                    meta = self._variant_meta(request.seed, index, params, near, dtype)
                    variant = Variant(np.ascontiguousarray(pixels[row]), index, request.seed, meta)
                    first = first or variant
                    yield variant
                check_cancel(cancel)
        yield Progress(total, total, "done")
        assert first is not None
        yield Result(first.image, dict(first.meta))

    @staticmethod
    def _variant_meta(
        seed: int, index: int, params: dict[str, Any], near: tuple[int, int, float] | None, dtype: Any
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "engine": ENGINE_ID,
            "seed": seed,
            "index": index,
            "z_source": "seed" if near is None else "near",
            "truncation_psi": params["truncation_psi"],
            "noise_mode": params["noise_mode"],
            "precision": str(dtype).removeprefix("torch."),
        }
        if near is not None:
            meta.update(near_variant_seed=near[0], near_variant_index=near[1], spread=near[2])
        else:  # a variant made "near" another is not reproducible as a reference (its z is a step away)
            meta[FOLLOWUP_KEY] = Followup(
                "More like this",
                params={"near_variant_index": index, "near_variant_seed": seed},
                tip=f"New variants as small steps around variant {index + 1} (the spread setting says how far)",
            )
        return meta
