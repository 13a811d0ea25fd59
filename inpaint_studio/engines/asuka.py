"""ASUKA on Stable Diffusion 1.5: a prompt-free fill that continues the photo instead of inventing objects.

ASUKA (Wang, Cao et al., "Towards Context-Stable and Visual-Consistent Image Inpainting") keeps the SD-1.5
inpainting UNet frozen and changes what conditions it and what decodes it:

* the condition: the MAE prior's tokens of (masked image, mask) (``models/asuka/prior.py``, N x 256 x 512),
  turned by the alignment module into the UNet's cross-attention input (N x 256 x 768) in place of CLIP's
  77 text tokens, so the fill is steered by what the surrounding picture suggests, not by words;
* the decoder: ``models/asuka/decoder.py``, the VAE decoder plus a condition encoder over (masked image,
  mask) that takes the known region's colours from the photo; ``decoder=vanilla`` decodes with the model's
  own VAE instead, to compare.

"Prior strength" s blends the prior with the empty condition (CLIP's empty prompt): the noise prediction
is ``eps(empty) + s * (eps(prior) - eps(empty))``. The two conditions have different lengths (77 and 256
tokens), so the blend is made on the UNet's predictions, not on the tokens; s = 1 (the paper) and s = 0 run
one UNet pass per step, anything else two. Everything else is ``sd15``'s: the shared latent compositor, the
sampling loop (``models/diffusion/sampling.py``), one generator per variant (``variant_seed``), a preview
every step, cancel between steps, and the parts from the shared component cache (the UNet and VAE are
``sd15``'s copies when both run on the same model).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .asuka_weights import ALIGN, DECODER, ENGINE_ID, PRIOR, AsukaFolderError, AsukaWeights, find_asuka
from .base import (
    Availability,
    CancelFn,
    EngineError,
    EngineInfo,
    Event,
    WeightsMissing,
    check_cancel,
)
from .latent_compositor import LATENT_FACTOR
from .latent_params import latent_fill_params, scheduler_param, steps_param
from .latent_run import (
    LatentEngine,
    LatentRun,
    PasteOptions,
    missing_libraries,
    stream_fill,
)
from .params import Param
from .runtime import Runtime

TITLE = "ASUKA (SD-1.5)"
DECODERS = ("asuka", "vanilla")
HINT = (
    "ASUKA needs a Stable Diffusion 1.5 inpainting model plus its three parts: import the released prior "
    "(`inpaint-studio import asuka-prior mae_300.pth`) or train it (`inpaint-studio-train asuka-prior`), "
    "then "
    "`inpaint-studio-train asuka-align` and `inpaint-studio-train asuka-decoder`"
)


@dataclass(frozen=True)
class AsukaParts:
    """The networks of one run: SD-1.5's (``SD15Parts``) and ASUKA's, from the component cache."""

    sd: Any
    prior: Any
    align: Any
    decoder: Any | None  # None: decoder=vanilla, the VAE decodes
    weights: AsukaWeights


class AsukaEngine(LatentEngine):
    info = EngineInfo(
        id=ENGINE_ID,
        title=TITLE,
        description="Prompt-free Stable Diffusion 1.5 fill steered by what the surrounding picture "
        "suggests (an MAE prior), decoded so the colours match the photo: for removing things "
        "without new objects appearing.",
        params=(
            steps_param(),
            scheduler_param(),
            Param(
                "prior_strength",
                "float",
                1.0,
                minimum=0.0,
                maximum=2.0,
                step=0.1,
                help="1: the picture's prior alone (the paper); 0: the empty prompt only; between: a blend "
                "(two model passes per step)",
            ),
            Param(
                "decoder",
                "choice",
                "asuka",
                choices=DECODERS,
                help="asuka: the decoder that takes the known colours from the photo; vanilla: the "
                "model's own VAE decoder (to compare)",
            ),
            *latent_fill_params(
                False,
                "shift the fill's colour by the drift on the ring around the mask (the ASUKA decoder needs "
                "none; useful with the vanilla one)",
            ),
        ),
        takes_prompt=False,
        yields_variants=True,
        yields_previews=True,
        native_size=512,
        pad_multiple=8,
        training_hint=HINT,
    )

    # ------------------------------------------------------------------ weights
    @classmethod
    def availability(cls, weights: str | Path | None = None) -> Availability:
        """Runs with the model, prior and alignment module; a missing decoder is named (decoder=vanilla
        still runs)."""
        libraries = missing_libraries()
        if libraries:
            return Availability(False, f"{TITLE} {libraries}")
        try:
            found = find_asuka(weights)
        except AsukaFolderError as err:
            return Availability(False, str(err))
        if found.missing(decoder=False):
            return Availability(False, found.explain(decoder=False), weights=found.folder)
        note = found.explain() if found.missing() else ""
        return Availability(True, note, weights=found.folder)

    def load(self, runtime: Runtime, with_decoder: bool = True) -> AsukaParts:
        """All parts on the runtime's device and precision, each through the shared component cache."""
        from ..models.diffusion.loading import ModelLoadError, load_sd15

        try:
            found = find_asuka(self.weights)
        except AsukaFolderError as err:
            raise WeightsMissing(str(err)) from None
        if found.missing(decoder=with_decoder):
            raise WeightsMissing(found.explain(decoder=with_decoder))
        try:
            sd = load_sd15(found.base, runtime.device, runtime.precision)
        except ModelLoadError as err:
            raise EngineError(str(err)) from None
        prior = _load_part(found, PRIOR, runtime)
        align = _load_part(found, ALIGN, runtime)
        decoder = _load_part(found, DECODER, runtime) if with_decoder else None
        parts = AsukaParts(sd, prior, align, decoder, found)
        _check_fit(parts)
        return parts

    # ------------------------------------------------------------------ run
    def load_parts(self, runtime: Runtime, params: dict[str, Any]) -> Any:
        return self.load(runtime, with_decoder=params["decoder"] == "asuka")

    def sd_parts(self, parts: Any) -> Any:
        return parts.sd

    def fill_latent(self, run: LatentRun, cancel: CancelFn) -> Iterator[Event]:
        import torch

        from ..models.diffusion.sampling import Sampling, conditioned_steps

        parts: AsukaParts = run.parts
        plan, request, params, runtime = run.plan, run.request, run.params, run.runtime
        work_image, work_mask, pixels, pixel_mask = run.work_inputs()
        latent_mask = torch.from_numpy(plan.latent_mask(work_mask))[None, None]
        seeds, generators = run.seeded_generators()
        sampling = Sampling(steps=int(params["steps"]), guidance=1.0, scheduler=params["scheduler"])
        strength = float(params["prior_strength"])
        conditioning = prior_conditioning(parts, work_image, work_mask, strength)
        check_cancel(cancel)
        states = conditioned_steps(
            parts.sd, pixels, pixel_mask, latent_mask, conditioning, generators, sampling
        )
        found = parts.weights
        meta = {
            "box": plan.box,
            "work_size": plan.work_size,
            "scheduler": sampling.scheduler,
            "steps": sampling.steps,
            "prior_strength": strength,
            "decoder": params["decoder"],
            "device": runtime.device,
            "precision": runtime.precision,
            "model": str(found.base.path),
            "parts": {p: str(path) for p, path in found.parts.items()},
        }
        options = PasteOptions(
            int(params["feather"]), bool(params["color_match"]), int(params["decode_every"])
        )
        yield from stream_fill(
            parts.sd,
            plan,
            request,
            states,
            seeds,
            options,
            meta,
            cancel,
            decode=lambda latents: decode_fills(parts, latents, pixels, pixel_mask),
        )


# ---------------------------------------------------------------------------------- the two changes
def prior_conditioning(
    parts: AsukaParts, work_image: np.ndarray, work_mask: np.ndarray, strength: float
) -> Any:
    """The UNet's cross-attention input: the aligned prior of (crop, mask), blended with the empty prompt.

    The crop is resized to the prior's square input (256 px at release size), as the official code resizes
    its 512 px input; a crop that is not square (at most 2:1, the compositor's limit) is squashed rather
    than padded, so every prior token covers picture.
    """
    import torch

    from ..models.asuka.prior import prepare_inputs
    from ..models.diffusion.sampling import Conditioning, encode_text

    empty = None if strength == 1.0 else encode_text(parts.sd, [""])
    if strength == 0.0:
        return Conditioning(empty)
    prior, align = parts.prior, parts.align
    device, dtype = next(prior.parameters()).device, next(prior.parameters()).dtype
    imgs, mask = prepare_inputs(work_image, work_mask * 255, size=prior.img_size, device=device)
    with torch.no_grad():
        aligned = align(prior(imgs.to(dtype), mask.to(dtype)))
    return Conditioning(aligned) if empty is None else Conditioning(aligned, empty, strength)


def decode_fills(parts: AsukaParts, latents: Any, pixels: Any, pixel_mask: Any) -> np.ndarray:
    """(B, 4, h, w) latents -> (B, H, W, 3) in [0, 1]: the ASUKA decoder over (crop, mask), or the VAE."""
    import torch

    from ..models.diffusion.sampling import decode_latents

    if parts.decoder is None:
        return decode_latents(parts.sd, latents)
    vae, decoder = parts.sd.vae, parts.decoder
    dtype = next(decoder.parameters()).dtype
    n = latents.shape[0]
    with torch.no_grad():
        z = latents.to(vae.dtype) / vae.config.scaling_factor
        if vae.post_quant_conv is not None:
            z = vae.post_quant_conv(z)
        image = pixels.to(z.device, dtype).expand(n, -1, -1, -1)
        mask = pixel_mask.to(z.device, dtype).expand(n, -1, -1, -1)
        out = decoder(z.to(dtype), image, mask)
    return (out.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()


# ---------------------------------------------------------------------------------- loading
def _load_part(found: AsukaWeights, part: str, runtime: Runtime) -> Any:
    """One ASUKA part (exactly what ``importer.save_part`` wrote) from the shared component cache."""
    from ..models.components import ComponentKey, shared_cache

    folder = found.parts[part]
    key = ComponentKey(str(folder.resolve()), part, runtime.precision, runtime.device)

    def load() -> Any:
        from ..models.asuka.importer import load_part

        try:
            model = load_part(folder, engine=part)
        except (ValueError, OSError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise EngineError(f"cannot load {part} from {folder}: {first}") from None
        return model.to(runtime.device, runtime.dtype).eval().requires_grad_(False)

    return shared_cache().get(key, load)


def _check_fit(parts: AsukaParts) -> None:
    """The parts must fit each other and the model; say which does not (the VAE is checked by
    ``LatentEngine.run`` for every diffusion engine)."""
    sd, found = parts.sd, parts.weights
    where = {p: found.parts.get(p) for p in (PRIOR, ALIGN, DECODER)}
    if not sd.inpainting:
        raise EngineError(f"{sd.source.path} is a text-to-image SD-1.5 model: ASUKA needs an inpainting one")
    width = int(sd.unet.config.cross_attention_dim)
    if parts.align.config["cond_dim"] != width:
        raise EngineError(
            f"the alignment module {where[ALIGN]} makes {parts.align.config['cond_dim']}-wide conditions, "
            f"but the UNet of {sd.source.path} reads {width}-wide ones: train it on this model"
        )
    if parts.align.config["prior_dim"] != parts.prior.feature_dim:
        raise EngineError(
            f"the alignment module {where[ALIGN]} reads {parts.align.config['prior_dim']}-wide priors, but "
            f"the prior {where[PRIOR]} gives {parts.prior.feature_dim}-wide ones: train it on this prior"
        )
    decoder = parts.decoder
    if decoder is not None and (
        decoder.scale != LATENT_FACTOR or decoder.config["latent_channels"] != sd.vae.config.latent_channels
    ):
        raise EngineError(
            f"the decoder {where[DECODER]} does not decode SD-1.5 latents (it takes "
            f"{decoder.config['latent_channels']} channels at 1/{decoder.scale}): train one on this model's "
            "VAE"
        )
