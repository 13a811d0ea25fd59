"""The document: a layer stack, one fill mask, and the undo history that every edit goes through.

Views (the Qt canvas, the layer panel) subscribe to the signals; they never change pixels
behind the history's back. Pixel edits go through :meth:`Document.edit` (brush strokes) or
:meth:`Document.replace_pixels` (whole-image operations such as grow or invert).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import masks as mask_ops
from .compositing import composite_rgb, composite_rgba
from .geometry import Rect
from .history import (
    TILE,
    Command,
    FunctionCommand,
    History,
    PixelEdit,
    changed_tiles,
    tile_rect,
    tile_slices,
    tiles_in,
)
from .layers import EDITABLE_PROPS, Layer, LayerKind, blank_rgba, check_opacity, rgba_from_rgb
from .signals import Signal

MASK = "mask"  # the target id of the fill mask in edits and signals


@dataclass
class MaskStyle:
    """How the mask overlay is shown (not part of the pixels)."""

    color: tuple[int, int, int] = (255, 40, 80)
    opacity: float = 0.5
    visible: bool = True


class Document:
    """Layers bottom-to-top, all the document's size; the mask is uint8 HxW, 255 = fill."""

    def __init__(self, width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"document size must be positive, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        self._layers: list[Layer] = []
        self.mask = np.zeros((self.height, self.width), np.uint8)
        self.mask_style = MaskStyle()
        self.active_layer_id: str | None = None
        self.history = History()
        self.id = uuid.uuid4().hex
        self.meta: dict[str, Any] = {}
        # (target id or MASK, Rect) after pixels changed
        self.pixels_changed = Signal()
        # after layers were added, removed, moved or had their properties changed
        self.layers_changed = Signal()
        self.active_layer_changed = Signal()
        self.mask_style_changed = Signal()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_image(
        cls, rgb: np.ndarray, alpha: np.ndarray | None = None, name: str = "Background"
    ) -> Document:
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError("image must be RGB uint8 HxWx3")
        doc = cls(rgb.shape[1], rgb.shape[0])
        layer = Layer(name, "image", rgba_from_rgb(rgb, alpha))
        doc._layers.append(layer)
        doc.active_layer_id = layer.id
        return doc

    # ------------------------------------------------------------------ access
    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def layers(self) -> tuple[Layer, ...]:
        """Bottom to top."""
        return tuple(self._layers)

    def layer(self, layer_id: str) -> Layer:
        for ly in self._layers:
            if ly.id == layer_id:
                return ly
        raise KeyError(f"no layer with id {layer_id!r}")

    def index_of(self, layer_id: str) -> int:
        return self._layers.index(self.layer(layer_id))

    @property
    def active_layer(self) -> Layer | None:
        if self.active_layer_id is None:
            return None
        try:
            return self.layer(self.active_layer_id)
        except KeyError:
            return None

    def set_active_layer(self, layer_id: str | None) -> None:
        if layer_id is not None:
            self.layer(layer_id)
        if layer_id != self.active_layer_id:
            self.active_layer_id = layer_id
            self.active_layer_changed.emit(layer_id)

    def pixels(self, target: str) -> np.ndarray:
        """The live array of a layer (HxWx4) or of the mask (HxW). Edit it only inside an edit."""
        return self.mask if target == MASK else self.layer(target).pixels

    @property
    def modified(self) -> bool:
        return not self.history.is_clean

    # ------------------------------------------------------------------ compositing
    def composite(self, rect: Rect | None = None, background: int = 255) -> np.ndarray:
        """RGB of the visible layers flattened over white: what a fill sees."""
        return composite_rgb(self._layers, self.shape, rect, background)

    def composite_rgba(self, rect: Rect | None = None) -> np.ndarray:
        return composite_rgba(self._layers, self.shape, rect)

    # ------------------------------------------------------------------ pixel edits
    @contextmanager
    def edit(self, target: str, label: str) -> Iterator[PixelEditSession]:
        """Group pixel changes (a whole brush stroke) into one undo step."""
        session = PixelEditSession(self, target, label)
        try:
            yield session
        finally:
            session.commit()

    def begin_edit(self, target: str, label: str) -> PixelEditSession:
        """The same as :meth:`edit` for callers that span events (mouse press ... release)."""
        return PixelEditSession(self, target, label)

    def replace_pixels(self, target: str, new: np.ndarray, label: str) -> bool:
        """Set a whole target's pixels; only the changed tiles go into the history."""
        arr = self.pixels(target)
        if new.shape != arr.shape or new.dtype != arr.dtype:
            raise ValueError(f"new pixels must be {arr.dtype} {arr.shape}, got {new.dtype} {new.shape}")
        keys = changed_tiles(arr, new)
        if not keys:
            return False
        tiles = {}
        for key in keys:
            sl = tile_slices(*key)
            tiles[key] = arr[sl].copy()
            arr[sl] = new[sl]
        self.history.push(PixelEdit(target, tiles, label))
        self.pixels_changed.emit(target, tile_rect(keys, arr.shape))
        return True

    # mask conveniences (each one undo step)
    def set_mask(self, new_mask: np.ndarray, label: str = "Set mask") -> bool:
        return self.replace_pixels(MASK, new_mask, label)

    def clear_mask(self) -> bool:
        return self.set_mask(np.zeros_like(self.mask), "Clear mask")

    def invert_mask(self) -> bool:
        return self.set_mask(mask_ops.invert(self.mask), "Invert mask")

    def grow_mask(self, radius: int) -> bool:
        return self.set_mask(mask_ops.grow(self.mask, radius), f"Grow mask {radius}px")

    def shrink_mask(self, radius: int) -> bool:
        return self.set_mask(mask_ops.shrink(self.mask, radius), f"Shrink mask {radius}px")

    def feather_mask(self, radius: float) -> bool:
        return self.set_mask(mask_ops.feather(self.mask, radius), f"Feather mask {radius:g}px")

    def combine_mask(self, shape_mask: np.ndarray, mode: mask_ops.Mode, label: str) -> bool:
        return self.set_mask(mask_ops.combine(self.mask, shape_mask, mode), label)

    def set_mask_style(self, **changes: Any) -> None:
        for key, value in changes.items():
            if key == "opacity":
                value = check_opacity(value)
            if not hasattr(self.mask_style, key):
                raise ValueError(f"unknown mask style property {key!r}")
            setattr(self.mask_style, key, value)
        self.mask_style_changed.emit()

    # ------------------------------------------------------------------ layer structure
    def add_layer(self, layer: Layer, index: int | None = None, label: str | None = None) -> Layer:
        if layer.shape != self.shape:
            raise ValueError(
                f"layer is {layer.shape[1]}x{layer.shape[0]}, document is {self.width}x{self.height}"
            )
        if index is None:
            index = len(self._layers)
        if not 0 <= index <= len(self._layers):
            raise ValueError(f"layer index {index} out of range 0..{len(self._layers)}")
        previous_active = self.active_layer_id

        def do(doc: Document) -> None:
            doc._layers.insert(index, layer)
            doc.layers_changed.emit()
            doc.set_active_layer(layer.id)

        def undo(doc: Document) -> None:
            doc._layers.remove(layer)
            doc.layers_changed.emit()
            doc.set_active_layer(
                previous_active if previous_active in {ly.id for ly in doc._layers} else None
            )

        self._apply(FunctionCommand(label or f"Add layer '{layer.name}'", do, undo, layer.pixels.nbytes))
        return layer

    def new_layer(self, name: str, kind: LayerKind = "paint", index: int | None = None) -> Layer:
        """An empty (transparent) layer, above the active one by default."""
        if index is None:
            active = self.active_layer
            index = self.index_of(active.id) + 1 if active else len(self._layers)
        return self.add_layer(Layer(name, kind, blank_rgba(self.shape)), index)

    def add_result_layer(
        self, rgb: np.ndarray, mask: np.ndarray, name: str, meta: dict | None = None
    ) -> Layer:
        """A fill result as a layer that covers only the filled area (alpha = the mask)."""
        if rgb.shape[:2] != self.shape or mask.shape != self.shape:
            raise ValueError("result and mask must have the document's size")
        layer = Layer(name, "result", rgba_from_rgb(rgb, mask.copy()), meta=dict(meta or {}))
        return self.add_layer(layer, label=f"Fill: {name}")

    def remove_layer(self, layer_id: str) -> None:
        layer = self.layer(layer_id)
        index = self.index_of(layer_id)
        was_active = self.active_layer_id == layer_id

        def do(doc: Document) -> None:
            doc._layers.remove(layer)
            doc.layers_changed.emit()
            if was_active:
                below = doc._layers[min(index, len(doc._layers) - 1)].id if doc._layers else None
                doc.set_active_layer(below)

        def undo(doc: Document) -> None:
            doc._layers.insert(index, layer)
            doc.layers_changed.emit()
            if was_active:
                doc.set_active_layer(layer.id)

        self._apply(FunctionCommand(f"Delete layer '{layer.name}'", do, undo, layer.pixels.nbytes))

    def move_layer(self, layer_id: str, new_index: int) -> None:
        layer = self.layer(layer_id)
        old_index = self.index_of(layer_id)
        new_index = max(0, min(new_index, len(self._layers) - 1))
        if new_index == old_index:
            return

        def move(to: int):
            def run(doc: Document) -> None:
                doc._layers.remove(layer)
                doc._layers.insert(to, layer)
                doc.layers_changed.emit()

            return run

        self._apply(FunctionCommand(f"Move layer '{layer.name}'", move(new_index), move(old_index)))

    def set_layer_props(self, layer_id: str, **props: Any) -> None:
        """Change name / visible / opacity as one undo step; repeated opacity drags merge."""
        layer = self.layer(layer_id)
        unknown = set(props) - set(EDITABLE_PROPS)
        if unknown:
            raise ValueError(
                f"cannot set {', '.join(sorted(unknown))}; editable: {', '.join(EDITABLE_PROPS)}"
            )
        if "opacity" in props:
            props["opacity"] = check_opacity(props["opacity"])
        if "name" in props:
            props["name"] = str(props["name"]).strip() or layer.name
        if "visible" in props:
            props["visible"] = bool(props["visible"])
        old = {k: getattr(layer, k) for k in props}
        if old == props:
            return

        def setter(values: dict[str, Any]):
            def run(doc: Document) -> None:
                for k, v in values.items():
                    setattr(layer, k, v)
                doc.layers_changed.emit()
                doc.pixels_changed.emit(layer.id, Rect.full(doc.shape))

            return run

        key = (layer_id, tuple(sorted(props))) if set(props) == {"opacity"} else None
        what = ", ".join(sorted(props))
        self._apply(
            FunctionCommand(f"Layer '{layer.name}': {what}", setter(props), setter(old), merge_key=key)
        )

    def duplicate_layer(self, layer_id: str) -> Layer:
        layer = self.layer(layer_id)
        return self.add_layer(layer.copy(f"{layer.name} copy"), self.index_of(layer_id) + 1)

    def merge_down(self, layer_id: str) -> None:
        """Blend a layer into the one below it; one undo step."""
        index = self.index_of(layer_id)
        if index == 0:
            raise ValueError("the bottom layer has nothing below it to merge into")
        upper, lower = self._layers[index], self._layers[index - 1]
        merged = composite_rgba([_as_opaque_props(lower), upper], self.shape)
        self._compound(
            f"Merge '{upper.name}' down",
            lambda: (self.replace_pixels(lower.id, merged, "merge"), self.remove_layer(upper.id)),
        )

    def flatten(self) -> None:
        """Replace all layers by one image layer of the visible composite; one undo step."""
        if not self._layers:
            return
        flat = Layer("Flattened", "image", self.composite_rgba())
        ids = [ly.id for ly in self._layers]

        def steps() -> None:
            self.add_layer(flat, len(self._layers))
            for lid in ids:
                self.remove_layer(lid)

        self._compound("Flatten image", steps)

    # ------------------------------------------------------------------ undo / redo
    def undo(self) -> bool:
        return self.history.undo(self)

    def redo(self) -> bool:
        return self.history.redo(self)

    # ------------------------------------------------------------------ internals
    def _apply(self, command: Command) -> None:
        command.redo(self)
        self.history.push(command)

    def _compound(self, label: str, steps) -> None:
        """Run ``steps`` (which push commands) and fold what they pushed into one command."""
        start = self.history.index
        steps()
        self.history.fold_since(start, label)


def _as_opaque_props(layer: Layer) -> Layer:
    """The lower layer of a merge as it looks (its opacity baked in, shown even if hidden)."""
    px = layer.pixels.copy()
    if layer.opacity < 1.0:
        px[..., 3] = np.rint(px[..., 3] * layer.opacity).astype(np.uint8)
    return Layer(layer.name, layer.kind, px, visible=True, opacity=1.0, id=layer.id)


class PixelEditSession:
    """Collects the original tiles a stroke touches; :meth:`commit` records one undo step."""

    def __init__(self, doc: Document, target: str, label: str) -> None:
        self.doc = doc
        self.target = target
        self.label = label
        self._array = doc.pixels(target)
        self._saved: dict[tuple[int, int], np.ndarray] = {}
        self._done = False

    def touch(self, rect: Rect) -> Rect:
        """Call before changing pixels inside ``rect``: saves their tiles once."""
        rect = rect.clipped(self._array.shape)
        for key in tiles_in(rect):
            if key not in self._saved:
                self._saved[key] = self._array[tile_slices(*key)].copy()
        return rect

    def changed(self, rect: Rect) -> None:
        if not rect.empty:
            self.doc.pixels_changed.emit(self.target, rect)

    @property
    def array(self) -> np.ndarray:
        return self._array

    def mask_dab(self, x: float, y: float, size: float, hardness: float, mode: mask_ops.Mode = "add") -> Rect:
        if self.target != MASK:
            raise ValueError("mask_dab edits the mask; use color_dab on layers")
        self.touch(mask_ops.dab_rect(x, y, size, self._array.shape))
        rect = mask_ops.stamp_dab(self._array, x, y, size, hardness, mode)
        self.changed(rect)
        return rect

    def color_dab(
        self,
        x: float,
        y: float,
        size: float,
        hardness: float,
        color: tuple[int, int, int],
        opacity: float = 1.0,
        erase: bool = False,
    ) -> Rect:
        """Paint (or erase) one dab of ``color`` on an RGBA layer."""
        from .paint import stamp_color_dab

        if self.target == MASK:
            raise ValueError("color_dab paints layers; use mask_dab on the mask")
        self.touch(mask_ops.dab_rect(x, y, size, self._array.shape))
        rect = stamp_color_dab(self._array, x, y, size, hardness, color, opacity, erase)
        self.changed(rect)
        return rect

    def commit(self) -> bool:
        """Record the edit (only tiles that really changed). Returns whether anything changed."""
        if self._done:
            return False
        self._done = True
        tiles = {k: v for k, v in self._saved.items() if not np.array_equal(v, self._array[tile_slices(*k)])}
        self._saved = {}
        if not tiles:
            return False
        self.doc.history.push(PixelEdit(self.target, tiles, self.label))
        return True

    def cancel(self) -> None:
        """Put every touched tile back as it was and record nothing."""
        if self._done:
            return
        self._done = True
        for key, tile in self._saved.items():
            self._array[tile_slices(*key)] = tile
        if self._saved:
            self.changed(tile_rect(list(self._saved), self._array.shape))
        self._saved = {}


__all__ = ["MASK", "TILE", "Document", "MaskStyle", "PixelEditSession"]
