"""Layers: full-document-size RGBA pixels plus the properties the layer panel edits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

LayerKind = Literal["image", "paint", "result"]
LAYER_KINDS: tuple[str, ...] = ("image", "paint", "result")
EDITABLE_PROPS = ("name", "visible", "opacity")


def new_layer_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(eq=False)
class Layer:
    """One layer. ``pixels`` is straight (non-premultiplied) RGBA uint8 HxWx4."""

    name: str
    kind: LayerKind
    pixels: np.ndarray
    visible: bool = True
    opacity: float = 1.0
    id: str = field(default_factory=new_layer_id)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ValueError(f"layer kind must be one of {', '.join(LAYER_KINDS)}, not {self.kind!r}")
        p = self.pixels
        if not isinstance(p, np.ndarray) or p.dtype != np.uint8 or p.ndim != 3 or p.shape[2] != 4:
            raise ValueError("layer pixels must be uint8 RGBA of shape HxWx4")
        self.opacity = check_opacity(self.opacity)

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[0], self.pixels.shape[1]

    def copy(self, name: str | None = None) -> Layer:
        return Layer(
            name=name or self.name,
            kind=self.kind,
            pixels=self.pixels.copy(),
            visible=self.visible,
            opacity=self.opacity,
            meta=dict(self.meta),
        )


def check_opacity(value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {value}")
    return value


def rgba_from_rgb(rgb: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    if alpha is None:
        alpha = np.full(rgb.shape[:2], 255, np.uint8)
    return np.dstack([rgb, alpha])


def blank_rgba(shape: tuple[int, int]) -> np.ndarray:
    return np.zeros((shape[0], shape[1], 4), np.uint8)
