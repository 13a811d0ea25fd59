"""The engine contract: static info, a request, a stream of events, cooperative cancel.

An engine never touches Qt. The app's runner (a QThread) and the CLI both iterate
``engine.run(request, cancel)`` and react to the events; ``cancel()`` is polled between steps.
Images in are RGB uint8 HxWx3; masks are uint8 HxW with 255 = fill, 0 = keep (values in between
are a soft edge). Images out are either the full picture or, with a :class:`Placement`, the fill at
the mask's bounding box, pasted once where it lands (a layer in the app, a file in the CLI).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..core.compositing import blend_opaque
from ..core.geometry import nonzero_box
from .params import Param, resolve_params

CancelFn = Callable[[], bool]


class EngineError(RuntimeError):
    """A failure the person can act on; its message says what happened and what to do."""


class WeightsMissing(EngineError):
    """The engine has no weights to run with."""


class BadRequest(EngineError, ValueError):
    """The image, mask or parameters cannot be used."""


class Cancelled(Exception):
    """The run was cancelled by the person; not an error."""


def check_cancel(cancel: CancelFn) -> None:
    """Raise :class:`Cancelled` when the person asked to stop. Call between steps."""
    if cancel():
        raise Cancelled()


# ----------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    text: str = ""


@dataclass(frozen=True)
class Placement:
    """Where a fill goes in the full image, and with what weight: pasted once, where it lands.

    ``box`` (x0, y0, x1, y1) is the mask's bounding box in the full image; ``alpha`` (uint8, box
    size) is the fill's weight: the person's mask (soft edges included) times any inward feather,
    0 outside the mask. The app makes a layer of (fill, alpha); the CLI blends the fill into the
    photo with :meth:`paste`. Both use ``core.compositing``'s one blend over an opaque picture, so
    they agree pixel for pixel and a soft edge is blended once.
    """

    box: tuple[int, int, int, int]
    alpha: np.ndarray

    def paste(self, fill: np.ndarray, image: np.ndarray) -> np.ndarray:
        """A copy of the full ``image`` with ``fill`` blended in; pixels with alpha 0 stay identical."""
        x0, y0, x1, y1 = self.box
        out = image.copy()
        blend_opaque(out[y0:y1, x0:x1], fill, self.alpha)
        return out


@dataclass(frozen=True)
class _Placed:
    """An event whose ``image`` is either the whole picture (``placement`` None) or a fill at the
    mask's bounding box, to be placed by ``placement``."""

    def composited(self, image: np.ndarray) -> np.ndarray:
        """This event's picture at the full size of ``image`` (the request's image)."""
        placement: Placement | None = self.placement  # type: ignore[attr-defined]
        picture: np.ndarray = self.image  # type: ignore[attr-defined]
        return picture if placement is None else placement.paste(picture, image)


@dataclass(frozen=True)
class Preview(_Placed):
    """An intermediate image (e.g. a MaskGIT step or a diffusion latent decode).

    ``overlay`` optionally marks (uint8, the image's size, 255 = still unknown) which part of the
    fill is still undecided, so a UI can tint it. ``meta`` may offer a follow-up run from this
    step (see ``engines/followup.py``).
    """

    image: np.ndarray
    step: int
    steps: int
    overlay: np.ndarray | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    placement: Placement | None = None


@dataclass(frozen=True)
class Variant(_Placed):
    """One of several alternative fills. ``seed`` reproduces this variant alone (a one-variant
    request with that seed and the same ``meta`` inputs); ``meta`` holds what else reproduces it
    and may offer a follow-up run such as "More like this" (see ``engines/followup.py``)."""

    image: np.ndarray
    index: int
    seed: int
    meta: Mapping[str, Any] = field(default_factory=dict)
    placement: Placement | None = None


@dataclass(frozen=True)
class Result(_Placed):
    image: np.ndarray
    meta: Mapping[str, Any] = field(default_factory=dict)
    placement: Placement | None = None


Event = Progress | Preview | Variant | Result


def at_full_size(event: Event, image: np.ndarray) -> Event:
    """``event`` with its picture (and overlay) at the full size of ``image``, pasted, unplaced.

    For consumers that want whole pictures (benchmarks, trainer samples, tests); the app and the
    CLI place fills themselves.
    """
    if not isinstance(event, (Preview, Variant, Result)) or event.placement is None:
        return event
    full = event.placement.paste(event.image, image)
    if isinstance(event, Preview) and event.overlay is not None:
        x0, y0, x1, y1 = event.placement.box
        overlay = np.zeros(image.shape[:2], np.uint8)
        overlay[y0:y1, x0:x1] = event.overlay
        return replace(event, image=full, overlay=overlay, placement=None)
    return replace(event, image=full, placement=None)


# ----------------------------------------------------------------------------------- request
@dataclass(frozen=True)
class Request:
    """Everything one fill needs. ``variants`` > 1 asks engines that support it for N fills.

    ``prompt`` / ``negative_prompt`` condition engines that take text (``info.takes_prompt``); the
    others ignore them. ``meta`` carries engine-specific inputs that are not settings (no schema, not shown as a
    form), e.g. MaskGIT's token lock taken from an earlier run's ``Result.meta``.
    """

    image: np.ndarray
    mask: np.ndarray
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = 0
    variants: int = 1
    params: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def mask_box(self) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) of the mask's non-zero pixels, or None when it is empty (computed once)."""
        box = nonzero_box(self.mask)
        return None if box.empty else (box.x, box.y, box.right, box.bottom)

    def validate(self) -> None:
        """Raise :class:`BadRequest` with a one-line reason for unusable input."""
        img, mask = self.image, self.mask
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise BadRequest("image must be an RGB uint8 array of shape HxWx3")
        if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.ndim != 2:
            raise BadRequest("mask must be a uint8 array of shape HxW (255 = fill)")
        if mask.shape != img.shape[:2]:
            raise BadRequest(
                f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is {img.shape[1]}x{img.shape[0]}"
            )
        if self.mask_box is None:
            raise BadRequest("the mask is empty: paint the region to fill first")
        if self.variants < 1:
            raise BadRequest("variants must be at least 1")


# ----------------------------------------------------------------------------------- info
@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""
    weights: Path | None = None


@dataclass(frozen=True)
class EngineInfo:
    """What the app and CLI need to know about an engine before loading anything.

    ``native_size``: the square side the model works at (None: any size, e.g. classical).
    ``pad_multiple``: the model needs sides that are multiples of this.
    """

    id: str
    title: str
    description: str
    params: tuple[Param, ...] = ()
    takes_prompt: bool = False
    yields_variants: bool = False
    yields_previews: bool = False
    needs_weights: bool = True
    native_size: int | None = None
    pad_multiple: int = 1
    training_hint: str = ""

    @property
    def seeded(self) -> bool:
        """Whether a seed changes the fill: variants are draws from seeds, and an engine without them
        (classical, InP-Net) is deterministic, so the app neither asks for a seed nor records one."""
        return self.yields_variants


class Engine(abc.ABC):
    """Base of every engine. Subclasses set ``info`` and implement :meth:`run`.

    Construction is cheap; heavy loading happens lazily inside :meth:`run` (on the worker thread).
    """

    info: ClassVar[EngineInfo]

    def __init__(self, weights: str | Path | None = None, device: str | None = None) -> None:
        self.weights = Path(weights) if weights else None
        self.device_preference = device

    @classmethod
    def availability(cls, weights: str | Path | None = None) -> Availability:
        """Whether the engine can run, and if not, why and how to fix it. Must be cheap."""
        return Availability(True)

    def resolve(self, request: Request) -> dict[str, Any]:
        """Validate the request and return its parameters with defaults filled in."""
        request.validate()
        try:
            return resolve_params(self.info.params, request.params)
        except ValueError as err:
            raise BadRequest(str(err)) from None

    @classmethod
    def import_weights(cls, source: Path, dest: Path) -> Path:
        """Convert a public checkpoint (``source``) into a weights folder at ``dest``.

        Engines that can read official checkpoints override this; pickles go through
        ``models.safe_pickle`` so that nothing in them executes.
        """
        raise EngineError(f"{cls.info.title} has no importer for outside checkpoints")

    @abc.abstractmethod
    def run(self, request: Request, cancel: CancelFn = lambda: False) -> Iterator[Event]:
        """Yield Progress/Preview/Variant events and finally one Result (the chosen fill)."""
