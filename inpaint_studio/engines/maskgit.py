"""MaskGIT engine: the fill is decoded token by token over a few steps, with a preview per step.

Flow at model resolution (native = token grid x VQGAN factor, 256 px for the public f16 models):
the photo (hole pre-filled so the object being removed does not leak into its neighbours) is
encoded to VQGAN tokens; tokens whose hole fraction exceeds ``token_threshold`` become unknown;
the transformer decodes them over ``steps`` steps exactly as the official JAX decoder (see
``models/maskgit/decoding.py``); known tokens never change. After every step a Preview shows the
committed tokens plus the current argmax guess for the rest, with ``overlay`` = the still-unknown
token cells (255). ``variants`` N decodes N fills in one batch, variant i with its own seed
``engines.seeds.variant_seed(seed, i)`` (so a variant reproduces alone, and the next take's
variants never repeat this one's).

Token lock (keep part of a preview and re-decode only the rest): every Result / Variant carries
``meta["step_tokens"]`` (steps x gh x gw int, the tokens each preview showed; -1 rows for steps
not run). To keep some of them, send the same image, mask and settings again with
``Request.meta["maskgit_lock"] = TokenLock(tokens=step_tokens[k], keep=KEEP, start_step=k)``
where KEEP is a bool token grid (``keep_mask_to_grid`` maps a painted full-size mask to it).
Kept tokens are fixed like known ones; the remaining unknown tokens are decoded again from
schedule step ``start_step`` with the request's seed. Every Preview but the last offers exactly
that as a follow-up ("Vary from this step", ``meta["followup"]``, see ``engines/followup.py``):
the tokens that step had decided (of the first variant) are kept, the rest decoded again from
the next step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .base import (
    Availability,
    BadRequest,
    CancelFn,
    EngineError,
    EngineInfo,
    Event,
    Preview,
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

ENGINE_ID = "maskgit"
TITLE = "MaskGIT"
HINT = (
    "train with `inpaint-studio-train maskgit-vqgan` then `inpaint-studio-train maskgit`, or import the "
    "valeoai MaskGIT release with `inpaint-studio import maskgit MaskGIT_ImageNet_256.pth` "
    "(its taming VQGAN `last.ckpt` must lie beside it or in ../VQGAN/)"
)
LOCK_KEY = "maskgit_lock"
PREVIEW_MODES = ("atlas", "crop", "full", "off")
CROP_MARGIN = 2  # context tokens around the hole when the crop preview runs the real decoder


@dataclass(frozen=True)
class TokenLock:
    """Tokens to keep from an earlier run (see the module docstring). Grids are (gh, gw)."""

    tokens: np.ndarray  # int code ids, e.g. Result.meta["step_tokens"][k]
    keep: np.ndarray  # bool, True = keep that token
    start_step: int = 0  # schedule step the re-decode of the rest starts at

    @classmethod
    def coerce(cls, value: Any) -> TokenLock:
        if isinstance(value, TokenLock):
            return value
        if isinstance(value, Mapping) and "tokens" in value and "keep" in value:
            return cls(
                np.asarray(value["tokens"]), np.asarray(value["keep"]), int(value.get("start_step", 0))
            )
        raise BadRequest(f"meta[{LOCK_KEY!r}] must be a TokenLock or a dict with 'tokens' and 'keep'")


def keep_mask_to_grid(keep: np.ndarray, meta: Mapping[str, Any], min_fraction: float = 0.5) -> np.ndarray:
    """Full-size painted mask (uint8/bool HxW, nonzero = keep) -> bool token grid of a run.

    ``meta`` is the Result.meta of the run whose tokens are kept; a token is kept when at least
    ``min_fraction`` of its pixels are painted.
    """
    x0, y0, x1, y1 = meta["box"]
    work_w, work_h = meta["work_size"]
    gh, gw = meta["grid"]
    factor = int(meta["factor"])
    crop = (np.asarray(keep)[y0:y1, x0:x1] > 0).astype(np.float32)
    crop = cv2.resize(crop, (work_w, work_h), interpolation=cv2.INTER_AREA)
    padded = np.zeros((gh * factor, gw * factor), np.float32)
    padded[:work_h, :work_w] = crop
    frac = padded.reshape(gh, factor, gw, factor).mean(axis=(1, 3))
    return frac >= min_fraction


def _framing() -> tuple[Param, ...]:
    """Framing knobs without the 'original' strategy: the transformer has a fixed token grid."""
    out = []
    for p in framing_params("crop", default_context=0.5):
        if p.name == "strategy":
            p = replace(
                p,
                choices=("crop", "resize"),
                help="crop: a square around the mask scaled to the "
                "model's size; resize: the whole image scaled to it",
            )
        out.append(p)
    return tuple(out)


class MaskGitEngine(ModelEngine):
    info = EngineInfo(
        id=ENGINE_ID,
        title=TITLE,
        description="Predicts VQGAN tokens with a bidirectional transformer and reveals the most confident "
        "ones over a few steps: watch the fill form, pick among variants, keep parts you like.",
        params=(
            Param("steps", "int", 12, minimum=1, maximum=32, help="decoding steps (8-12 is the sweet spot)"),
            Param(
                "schedule",
                "choice",
                "cosine",
                choices=("cosine", "linear", "square", "arccos"),
                help="how fast tokens are revealed: cosine (default) reveals few early, many late",
            ),
            Param(
                "temperature",
                "float",
                1.0,
                minimum=0.05,
                maximum=5.0,
                step=0.05,
                help="softmax temperature for sampling tokens; lower = safer, higher = more varied",
            ),
            Param(
                "choice_temperature",
                "float",
                4.5,
                minimum=0.0,
                maximum=20.0,
                step=0.5,
                help="randomness in which tokens are kept each step (annealed to 0)",
            ),
            Param(
                "token_threshold",
                "float",
                0.0,
                minimum=0.0,
                maximum=0.99,
                step=0.05,
                help="a token is regenerated when more than this fraction of its pixels is in the hole",
            ),
            Param(
                "prefill",
                "choice",
                "telea",
                choices=("telea", "mean", "original"),
                help="what the encoder sees inside the hole: a quick diffusion fill, the mean colour, or "
                "the original pixels",
            ),
            Param(
                "preview",
                "choice",
                "atlas",
                choices=PREVIEW_MODES,
                help="per-step previews: atlas (fast, patch per token), crop (real decoder on the hole), "
                "full (real decoder, whole image), off",
            ),
            Param(
                "class_id",
                "int",
                -1,
                minimum=-1,
                maximum=1_000_000,
                help="class-conditioned weights only (e.g. ImageNet): steer the fill to a class; -1 = none",
            ),
            *_framing(),
            *runtime_params("fp32"),
        ),
        yields_variants=True,
        yields_previews=True,
        native_size=256,
        pad_multiple=16,
        training_hint=HINT,
    )

    def __init__(self, weights: str | Path | None = None, device: str | None = None) -> None:
        super().__init__(weights, device)
        self._given: tuple[Any, Any, Any] | None = None  # models handed over by from_models
        self._atlas: Any = None

    # ------------------------------------------------------------------ availability / weights
    hint = HINT

    @classmethod
    def availability(cls, weights: str | Path | None = None) -> Availability:
        avail = super().availability(weights)
        if not avail.ok or avail.weights is None:
            return avail
        from ..models.bundle import read_config

        parts = set(read_config(avail.weights).get("parts") or [])
        missing = {"vqgan", "transformer"} - parts
        if missing:
            return Availability(
                False, f"{avail.weights} lacks the {' and '.join(sorted(missing))} part; {HINT}"
            )
        return avail

    @classmethod
    def import_weights(cls, source: Path, dest: Path) -> Path:
        """valeoai ``.pth`` + taming ``.ckpt`` (beside it or in ../VQGAN/), or a folder with both."""
        from ..models.maskgit.importer import MaskGitImportError, read_valeoai_checkpoint
        from ..models.vqgan.importer import TamingImportError, read_taming_checkpoint

        pth, ckpt = _find_pair(Path(source))
        try:
            vq_config, vq_state = read_taming_checkpoint(ckpt)
            tf_config, tf_state = read_valeoai_checkpoint(pth, codebook_size=vq_config.n_embed)
        except (TamingImportError, MaskGitImportError) as err:
            raise EngineError(str(err)) from None
        vq_config = vq_config.with_resolution(tf_config.grid_size * vq_config.factor)
        from ..models.maskgit.checkpoint import save_maskgit
        from ..models.maskgit.transformer import MaskGitTransformer
        from ..models.vqgan import VQGAN

        vqgan, transformer = VQGAN(vq_config), MaskGitTransformer(tf_config)
        vqgan.load_state_dict(vq_state)
        transformer.load_state_dict(tf_state)
        extra = {"source": {"transformer": str(pth), "vqgan": str(ckpt)}, "origin": "valeoai v1.0 + taming"}
        return save_maskgit(dest, vqgan, transformer, extra)

    @classmethod
    def from_models(cls, vqgan: Any, transformer: Any, device: str = "cpu") -> MaskGitEngine:
        """An engine around models already in memory (trainer samples, benchmarks); no weights folder."""
        import torch

        engine = cls(device=device)
        engine._given = (vqgan.eval().to(device), transformer.eval().to(device), torch.device(device))
        return engine

    def _load(self, params: Params) -> tuple[Any, Any, Any]:
        """(vqgan, transformer, torch device): models given to :meth:`from_models`, else the shared ones."""
        import torch

        if self._given is not None:
            return self._given
        vqgan, transformer, atlas = self.component(params, "maskgit", _load_maskgit)
        if self._atlas is None:
            self._atlas = atlas  # None: rendered lazily, code by code
        assert self._runtime is not None
        return vqgan, transformer, torch.device(self._runtime.device)

    def load(self, params: Params, cancel: CancelFn) -> Geometry:
        """Load the VQGAN and transformer; the framing works at their token grid x VQGAN factor."""
        vqgan, transformer, _ = self._load(params)
        grid = transformer.config.grid_size
        return Geometry(grid * vqgan.factor, vqgan.factor)

    # ------------------------------------------------------------------ run
    def fill(self, work: ModelInput, request: Request, params: Params, cancel: CancelFn) -> Iterator[Event]:
        import torch

        from ..models.maskgit.decoding import iterative_decode, make_generators

        image, mask = work.image, work.mask
        vqgan, transformer, device = self._load(params)
        cfg, factor = transformer.config, vqgan.factor
        gh, gw = image.shape[0] // factor, image.shape[1] // factor
        if (gh, gw) != (cfg.grid_size, cfg.grid_size) or image.shape[0] % factor or image.shape[1] % factor:
            raise BadRequest(
                f"MaskGIT works on {cfg.grid_size * factor}x{cfg.grid_size * factor} px; got {image.shape[1]}x"
                f"{image.shape[0]} (use the crop or resize strategy)"
            )
        steps, variants = int(params["steps"]), int(request.variants)
        class_ids = self._class_ids(params["class_id"], cfg, variants, device)
        timing = {"encode": 0.0, "transformer": 0.0, "preview": 0.0, "decode": 0.0}

        check_cancel(cancel)
        yield Progress(0, steps, "encoding")
        t0 = time.perf_counter()
        with torch.no_grad():
            pixels = _to_tensor(_prefill(image, mask, params["prefill"]), device)
            pixels = pixels.to(next(vqgan.parameters()).dtype)
            known_tokens = vqgan.encode_indices(pixels)[0]  # (gh, gw)
        timing["encode"] = time.perf_counter() - t0

        hole = torch.from_numpy(mask > 0).to(device)
        frac = hole.float().view(gh, factor, gw, factor).mean(dim=(1, 3))
        unknown = frac > float(params["token_threshold"])
        touched = frac > 0  # tokens whose pixels reach the hole: what previews must show
        tokens = known_tokens.clone()
        start_step = 0
        locked = torch.zeros_like(unknown)
        lock = request.meta.get(LOCK_KEY) if getattr(request, "meta", None) else None
        if lock is not None:
            lock = TokenLock.coerce(lock)
            tokens, still_unknown, start_step = _apply_lock(lock, tokens, unknown, steps, cfg.codebook_size)
            locked, unknown = unknown & ~still_unknown, still_unknown

        seeds = [variant_seed(request.seed, i) for i in range(variants)]
        batch_tokens = tokens.view(1, -1).repeat(variants, 1)
        batch_unknown = unknown.view(1, -1).repeat(variants, 1)
        step_tokens = np.full((variants, steps, gh, gw), -1, np.int32)
        final = batch_tokens
        preview_mode = params["preview"]
        if bool(unknown.any()):
            decoder = iterative_decode(
                transformer,
                batch_tokens,
                batch_unknown,
                steps=steps,
                schedule=params["schedule"],
                temperature=float(params["temperature"]),
                choice_temperature=float(params["choice_temperature"]),
                generators=make_generators(seeds),
                class_ids=class_ids,
                start_step=start_step,
            )
            while True:
                check_cancel(cancel)
                t0 = time.perf_counter()
                state = next(decoder, None)
                timing["transformer"] += time.perf_counter() - t0
                if state is None:
                    break
                step_tokens[:, state.step] = state.preview.view(variants, gh, gw).cpu().numpy()
                final = state.tokens
                yield Progress(state.step + 1, steps, f"step {state.step + 1}/{steps}")
                if preview_mode != "off":
                    check_cancel(cancel)
                    t0 = time.perf_counter()
                    shown = state.preview[0].view(gh, gw)
                    picture = self._preview(vqgan, image, shown, touched, preview_mode)
                    overlay = _overlay(state.unknown[0].view(gh, gw), factor)
                    timing["preview"] += time.perf_counter() - t0
                    meta = _vary_from_step(state, unknown | locked, steps, gh, gw)
                    yield Preview(picture, state.step + 1, steps, overlay=overlay, meta=meta)
        check_cancel(cancel)
        t0 = time.perf_counter()
        with torch.no_grad():
            images = _to_uint8(vqgan.decode_indices(final.view(variants, gh, gw)))
        timing["decode"] = time.perf_counter() - t0

        base_meta = {
            "steps": steps,
            "schedule": params["schedule"],
            "start_step": start_step,
            "grid": (gh, gw),
            "factor": factor,
            "box": work.frame.box,
            "work_size": work.frame.work_size,
            "unknown": unknown.cpu().numpy(),  # tokens decoded in this run
            "locked": locked.cpu().numpy(),  # hole tokens kept from a TokenLock
            "timing": timing,
        }
        metas = [
            {
                **base_meta,
                "seed": seeds[i],
                "step_tokens": step_tokens[i],
                "tokens": final[i].view(gh, gw).cpu().numpy(),
            }
            for i in range(variants)
        ]
        if variants > 1:
            for i in range(variants):
                yield Variant(images[i], i, seeds[i], metas[i])
        yield Result(images[0], metas[0])

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _class_ids(class_id: int, cfg: Any, variants: int, device: Any) -> Any:
        import torch

        if class_id < 0:
            return None
        if not cfg.has_class_token:
            raise BadRequest("these MaskGIT weights are unconditional: set class_id to -1")
        if class_id >= cfg.num_classes:
            raise BadRequest(f"class_id must be below {cfg.num_classes} for these weights")
        return torch.full((variants,), class_id, dtype=torch.long, device=device)

    def _preview(self, vqgan: Any, image: np.ndarray, tokens: Any, touched: Any, mode: str) -> np.ndarray:
        """Preview image at model size: the decoded tokens over the hole's token window."""
        import torch

        f = vqgan.factor
        out = image.copy()
        gh, gw = tokens.shape
        rows = torch.nonzero(touched.any(dim=1)).flatten()
        cols = torch.nonzero(touched.any(dim=0)).flatten()
        if len(rows) == 0:
            return out
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        with torch.no_grad():
            if mode == "full":
                out[:] = _to_uint8(vqgan.decode_indices(tokens.view(1, gh, gw)))[0]
                return out
            if mode == "atlas":
                if self._atlas is None:
                    from ..models.vqgan.atlas import CodeAtlas

                    self._atlas = CodeAtlas(vqgan)
                window = self._atlas.render(tokens[y0:y1, x0:x1].unsqueeze(0))
                out[y0 * f : y1 * f, x0 * f : x1 * f] = _to_uint8(window)[0]
                return out
            # crop: the real decoder on the window plus a margin of context tokens
            m = CROP_MARGIN
            cy0, cy1, cx0, cx1 = max(0, y0 - m), min(gh, y1 + m), max(0, x0 - m), min(gw, x1 + m)
            window = _to_uint8(vqgan.decode_indices(tokens[cy0:cy1, cx0:cx1].unsqueeze(0)))[0]
            oy, ox = (y0 - cy0) * f, (x0 - cx0) * f
            out[y0 * f : y1 * f, x0 * f : x1 * f] = window[oy : oy + (y1 - y0) * f, ox : ox + (x1 - x0) * f]
            return out


# ---------------------------------------------------------------------------------- helpers
def _prefill(image: np.ndarray, mask: np.ndarray, how: str) -> np.ndarray:
    """What the encoder sees: the hole's content must not leak into the known tokens around it."""
    hole = mask > 0
    if how == "original" or not hole.any():
        return image
    if how == "mean":
        out = image.copy()
        known = image[~hole]
        out[hole] = known.mean(axis=0).round().astype(np.uint8) if len(known) else 127
        return out
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    filled = cv2.inpaint(bgr, hole.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
    return cv2.cvtColor(filled, cv2.COLOR_BGR2RGB)


def _apply_lock(
    lock: TokenLock, tokens: Any, unknown: Any, steps: int, codebook: int
) -> tuple[Any, Any, int]:
    import torch

    grid = tuple(tokens.shape)
    if lock.tokens.shape != grid or lock.keep.shape != grid:
        raise BadRequest(
            f"token lock is {lock.tokens.shape}/{lock.keep.shape}, but this run's token grid is {grid}"
        )
    if not 0 <= lock.start_step < steps:
        raise BadRequest(f"token lock start_step must lie in [0, {steps}), got {lock.start_step}")
    keep = torch.from_numpy(lock.keep.astype(bool)).to(tokens.device) & unknown
    locked = torch.from_numpy(lock.tokens.astype(np.int64)).to(tokens.device)
    if bool(keep.any()) and (int(locked[keep].min()) < 0 or int(locked[keep].max()) >= codebook):
        raise BadRequest(f"locked tokens must be code ids in [0, {codebook})")
    tokens = torch.where(keep, locked, tokens)
    return tokens, unknown & ~keep, lock.start_step


def _vary_from_step(state: Any, hole: Any, steps: int, gh: int, gw: int) -> dict[str, Any]:
    """A preview's follow-up: keep what step ``state.step`` decided, decode the rest again.

    ``hole``: the tokens this run filled, those it decoded and those an earlier lock kept.
    """
    if state.step + 1 >= steps:
        return {}  # the last step decided everything: nothing is left to vary
    decided = hole & ~state.unknown[0].view(gh, gw)
    lock = TokenLock(
        tokens=state.preview[0].view(gh, gw).cpu().numpy().astype(np.int64),
        keep=decided.cpu().numpy(),
        start_step=state.step + 1,
    )
    tip = f"Keep the tokens decided by step {state.step + 1} and decode the rest again"
    return {FOLLOWUP_KEY: Followup("Vary from this step", meta={LOCK_KEY: lock}, tip=tip)}


def _to_tensor(image: np.ndarray, device: Any) -> Any:
    import torch

    x = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    return x.permute(2, 0, 1).unsqueeze(0).float() / 127.5 - 1.0


def _to_uint8(x: Any) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> B x H x W x 3 uint8."""
    import torch

    x = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to("cpu", dtype=torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def _overlay(unknown: Any, factor: int) -> np.ndarray:
    grid = unknown.cpu().numpy().astype(np.uint8) * 255
    return np.kron(grid, np.ones((factor, factor), np.uint8))


def _find_pair(source: Path) -> tuple[Path, Path]:
    """The transformer ``.pth`` and VQGAN ``.ckpt`` of a valeoai download, from a file or folder."""
    if source.is_dir():
        pths, ckpts = sorted(source.rglob("*.pth")), sorted(source.rglob("*.ckpt"))
    elif source.suffix == ".pth":
        pths = [source]
        ckpts = sorted(source.parent.glob("*.ckpt")) or sorted(
            (source.parent.parent / "VQGAN").glob("*.ckpt")
        )
    elif source.suffix == ".ckpt":
        raise EngineError(
            f"{source.name} is a VQGAN tokenizer only; MaskGIT also needs its transformer: import the valeoai "
            "MaskGIT_ImageNet_256.pth (with this .ckpt beside it or in ../VQGAN/), or train one with "
            "`inpaint-studio-train maskgit`"
        )
    else:
        raise EngineError(f"{source} is neither a valeoai .pth nor a folder holding one")
    if len(pths) != 1 or len(ckpts) != 1:
        raise EngineError(
            f"need exactly one transformer .pth and one taming VQGAN .ckpt near {source}; found "
            f"{len(pths)} .pth ({', '.join(p.name for p in pths) or 'none'}) and {len(ckpts)} .ckpt"
        )
    return pths[0], ckpts[0]


def _load_maskgit(path: Path, runtime: Runtime) -> tuple[Any, Any, Any]:
    from ..models.maskgit.checkpoint import load_atlas, load_maskgit

    try:
        vqgan, transformer, _ = load_maskgit(path, device=runtime.device)
    except ValueError as err:
        raise EngineError(f"cannot load MaskGIT weights from {path}: {err}") from None
    return vqgan.to(runtime.dtype), transformer.to(runtime.dtype), load_atlas(path, vqgan)
