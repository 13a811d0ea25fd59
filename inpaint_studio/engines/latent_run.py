"""From a latent denoising loop to the engine's events, one way for every latent-diffusion engine.

An engine builds its step iterator (``models/diffusion/sampling.py``'s ``StepState`` per step) and the
compositor's plan; :func:`stream_fill` then honours cancel before every step, yields Progress and a
placed Preview per step (the SD-1.5 latent-to-RGB projection, or a real VAE decode every
``decode_every`` steps), decodes the final latents and yields one placed Variant per seed (when there
are several) and the Result. Fills come at the mask's bounding box with their
:class:`~inpaint_studio.engines.base.Placement`: outside the mask the photo stays byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .base import (
    CancelFn,
    Engine,
    EngineError,
    Event,
    Preview,
    Progress,
    Request,
    Result,
    Variant,
    check_cancel,
)
from .latent_compositor import LATENT_FACTOR, LatentFill, plan_latent_fill
from .runtime import Runtime, resolve_runtime
from .seeds import variant_seed


@dataclass(frozen=True)
class PasteOptions:
    """How fills go back into the photo, and how previews are made."""

    feather: int = 4
    color_match: bool = True
    decode_every: int = 0


def stream_fill(
    parts: Any,
    plan: LatentFill,
    request: Request,
    states: Iterator[Any],
    seeds: Sequence[int],
    options: PasteOptions,
    meta: Mapping[str, Any],
    cancel: CancelFn,
    decode: Callable[[Any], np.ndarray] | None = None,
) -> Iterator[Event]:
    """Events of one run; ``states`` yields a ``StepState`` per step (see the module docstring).

    ``decode`` turns (B, 4, h, w) latents into (B, H, W, 3) floats in [0, 1] (default: the model's VAE;
    ASUKA passes its own decoder).
    """
    from ..models.diffusion.previews import latents_to_rgb
    from ..models.diffusion.sampling import decode_latents

    if decode is None:

        def decode(latents: Any) -> np.ndarray:
            return decode_latents(parts, latents)

    weight = plan.placement(request.mask, options.feather)  # once per run, not per preview

    def place(work_image: np.ndarray, color_match: bool = options.color_match) -> tuple[np.ndarray, Any]:
        return plan.place(work_image, request.image, request.mask, options.feather, color_match, weight)

    latents, total = None, 0
    while True:
        check_cancel(cancel)
        state = next(states, None)
        if state is None:
            break
        latents, total = state.latents, state.steps
        yield Progress(state.step, state.steps, f"step {state.step}/{state.steps}")
        every = options.decode_every
        if every and (state.step % every == 0 or state.step == state.steps):
            check_cancel(cancel)
            shown = to_uint8(decode(state.denoised[:1]))[0]
        else:
            small = latents_to_rgb(state.denoised[:1])[0]
            shown = cv2.resize(small, plan.work_size, interpolation=cv2.INTER_LINEAR)
        fill, placement = place(shown, color_match=False)  # a preview: no colour match
        yield Preview(fill, state.step, state.steps, placement=placement)
    if latents is None:
        raise EngineError("the sampler made no step: raise the number of steps")
    check_cancel(cancel)
    yield Progress(total, total, "decoding")
    placed = [place(img) for img in to_uint8(decode(latents))]
    if len(placed) > 1:
        for i, (fill, placement) in enumerate(placed):
            yield Variant(fill, i, seeds[i], {**meta, "seed": seeds[i]}, placement=placement)
    yield Result(placed[0][0], {**meta, "seed": seeds[0], "seeds": list(seeds)}, placement=placed[0][1])


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] to uint8, rounded."""
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)


def is_out_of_memory(err: BaseException) -> bool:
    """True for a CPU MemoryError or a CUDA / MPS out-of-memory error."""
    return (
        isinstance(err, MemoryError)
        or type(err).__name__ == "OutOfMemoryError"
        or "out of memory" in str(err)
    )


def out_of_memory_hint(title: str, work_size: tuple[int, int], variants: int) -> str:
    """What to do when a run did not fit: the message of the EngineError an engine raises."""
    w, h = work_size
    return (
        f"{title} ran out of memory at {w}x{h} with {variants} variant(s): lower the resolution "
        "or the number of variants, use precision bf16/fp16, or another device"
    )


def missing_libraries() -> str:
    """'' when diffusers and transformers are installed, else the one-line reason and the fix."""
    import importlib.util

    missing = [name for name in ("diffusers", "transformers") if importlib.util.find_spec(name) is None]
    return f"needs {' and '.join(missing)}: pip install diffusers transformers" if missing else ""


@dataclass(frozen=True)
class LatentRun:
    """One run as the engine's :meth:`LatentEngine.fill_latent` gets it."""

    parts: Any  # what load_parts returned
    plan: LatentFill  # the compositor's crop, resize and latent grid
    request: Request
    params: dict[str, Any]  # resolved
    runtime: Runtime

    def work_inputs(self) -> tuple[np.ndarray, np.ndarray, Any, Any]:
        """(work image uint8, work mask 0/1, pixels in [-1, 1] as 1x3xHxW, mask as 1x1xHxW) at
        model resolution: what every latent engine feeds its VAE and UNet."""
        import torch

        image = self.plan.work_image(self.request.image)
        mask = self.plan.work_mask(self.request.mask)
        pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0 * 2 - 1
        return image, mask, pixels, torch.from_numpy(mask)[None, None].float()

    def seeded_generators(self) -> tuple[list[int], list[Any]]:
        """One seed per variant (``engines.seeds.variant_seed``) and one CPU generator each: the
        same seed draws the same noise on every device, and a variant reproduces alone."""
        import torch

        seeds = [variant_seed(self.request.seed, i) for i in range(self.request.variants)]
        return seeds, [torch.Generator("cpu").manual_seed(s) for s in seeds]


class LatentEngine(Engine):
    """Base of the latent-diffusion engines (sd15, asuka, mta): the one straight line of a run.

    The request is resolved once, the device and precision once; the engine loads its parts
    (:meth:`load_parts`), the compositor plans the crop once, and :meth:`fill_latent` yields the
    events; running out of memory becomes one message here for every engine.
    """

    def load_parts(self, runtime: Runtime, params: dict[str, Any]) -> Any:
        """The networks of one run, from the component cache."""
        raise NotImplementedError

    def sd_parts(self, parts: Any) -> Any:
        """The SD-1.5 parts inside what :meth:`load_parts` returned (its VAE is checked)."""
        return parts

    def fill_latent(self, run: LatentRun, cancel: CancelFn) -> Iterator[Event]:
        """Yield the run's events (usually through :func:`stream_fill`)."""
        raise NotImplementedError

    def run(self, request: Request, cancel: CancelFn = lambda: False) -> Iterator[Event]:
        from ..models.diffusion.sampling import vae_factor

        params = self.resolve(request)
        runtime = resolve_runtime(params, self.device_preference)
        yield Progress(0, int(params["steps"]), f"loading {self.info.title}")
        parts = self.load_parts(runtime, params)
        check_cancel(cancel)
        sd = self.sd_parts(parts)
        if vae_factor(sd) != LATENT_FACTOR:
            raise EngineError(f"{sd.source.path}: its VAE is not SD-1.5's (8 pixels per latent cell)")
        plan = plan_latent_fill(
            request.image.shape[:2], request.mask, int(params["resolution"]), params["context"]
        )
        try:
            yield from self.fill_latent(LatentRun(parts, plan, request, params, runtime), cancel)
        except (MemoryError, RuntimeError) as err:
            if isinstance(err, EngineError) or not is_out_of_memory(err):
                raise
            raise EngineError(out_of_memory_hint(self.info.title, plan.work_size, request.variants)) from err
