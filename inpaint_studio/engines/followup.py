"""Follow-ups: what an engine offers to do next from one of its outputs.

A Variant ("More like this") or a Preview ("Vary from this step") may carry, in its ``meta``
under :data:`FOLLOWUP_KEY`, a :class:`Followup`: a button label and what a new run changes
relative to the run that produced it, as parameter overrides and ``Request.meta`` entries. The
app repeats that run (the same image, mask, prompt, settings and variant count) with those
changes, so one mechanism serves every engine and the app needs no engine-specific code.

The overrides must pin the reference on their own (which variant, which tokens), never through
the request seed: asking for the same follow-up again, the app may move the seed to get new
samples around the same reference. A follow-up lives in memory only; it is not stored with a
layer (:func:`without_followup`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .base import Request

FOLLOWUP_KEY = "followup"


@dataclass(frozen=True)
class Followup:
    """A next run offered to the person: ``label`` names it on a button or menu entry."""

    label: str
    params: Mapping[str, Any] = field(default_factory=dict)  # parameter overrides
    meta: Mapping[str, Any] = field(default_factory=dict)  # Request.meta entries (e.g. a token lock)
    tip: str = ""  # one line for a tooltip

    def apply(self, request: Request, seed: int | None = None) -> Request:
        """The follow-up request: ``request`` with the overrides (and ``seed`` if given)."""
        return replace(
            request,
            params={**request.params, **self.params},
            meta={**request.meta, **self.meta},
            seed=request.seed if seed is None else int(seed),
        )


def followup_of(meta: Mapping[str, Any] | None) -> Followup | None:
    """The follow-up an event's meta offers, if any."""
    value = (meta or {}).get(FOLLOWUP_KEY)
    return value if isinstance(value, Followup) else None


def without_followup(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` minus its follow-up: what is worth keeping with a layer or a file."""
    return {k: v for k, v in meta.items() if k != FOLLOWUP_KEY}
