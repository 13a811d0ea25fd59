"""Which part of the picture a layer change can affect, so the canvas re-renders only that.

A result layer covers only its fill; adding, hiding, moving or fading it changes the composite
inside the layer's content box and nowhere else. :class:`LayerDamage` keeps, per layer, a box
that contains all its non-transparent pixels (exact when measured, grown by small edits), and
turns "the layer stack changed" into the rectangle that really needs repainting.
"""

from __future__ import annotations

from ..core.document import Document
from ..core.geometry import Rect, nonzero_box
from ..core.layers import Layer

LARGE_EDIT = 0.25  # an edit covering this share of the picture is worth measuring exactly


def content_box(layer: Layer) -> Rect:
    """The bounding box of the layer's non-transparent pixels (empty if none)."""
    return nonzero_box(layer.pixels[..., 3])


def _state(layer: Layer) -> tuple:
    return (layer.visible, layer.opacity, layer.name)


class LayerDamage:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self._boxes: dict[str, Rect] = {}
        self._stack = self._snapshot()

    def _snapshot(self) -> list[tuple[Layer, tuple]]:
        return [(ly, _state(ly)) for ly in self.doc.layers]

    def box(self, layer: Layer) -> Rect:
        box = self._boxes.get(layer.id)
        if box is None:
            box = content_box(layer)
            self._boxes[layer.id] = box
        return box

    def pixels_changed(self, layer_id: str, rect: Rect) -> Rect:
        """The part of ``rect`` that can look different (``rect`` itself for small edits)."""
        full = Rect.full(self.doc.shape)
        old = self._boxes.get(layer_id)
        if rect.area < LARGE_EDIT * full.area:
            if old is not None:
                self._boxes[layer_id] = old.union(rect)
            return rect
        try:
            layer = self.doc.layer(layer_id)
        except KeyError:
            return rect
        new = content_box(layer)
        self._boxes[layer_id] = new
        if old is None:
            return rect
        return _intersect(rect, old.union(new))

    def stack_changed(self) -> Rect | None:
        """The area a structural change (add, remove, move, show/hide, opacity) can affect;
        None when nothing visible changed."""
        old, new = self._stack, self._snapshot()
        self._stack = new
        old_ids = [ly.id for ly, _ in old]
        new_ids = [ly.id for ly, _ in new]
        old_state = {ly.id: st for ly, st in old}
        layers = {ly.id: ly for ly, _ in old} | {ly.id: ly for ly, _ in new}
        touched = set(old_ids) ^ set(new_ids)
        for ly, st in new:
            if ly.id in old_state and old_state[ly.id][:2] != st[:2]:
                touched.add(ly.id)
        common_old = [i for i in old_ids if i in set(new_ids)]
        common_new = [i for i in new_ids if i in set(old_ids)]
        if common_old != common_new:  # a move: the layers that changed place relative to others
            touched |= {a for a, b in zip(common_old, common_new, strict=True) if a != b}
        area: Rect | None = None
        for lid in touched:
            box = self.box(layers[lid])
            area = box if area is None else area.union(box)
        for lid in set(old_ids) - set(new_ids):
            self._boxes.pop(lid, None)
        if area is not None and area.empty:
            return None
        return area


def _intersect(a: Rect, b: Rect) -> Rect:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.right, b.right), min(a.bottom, b.bottom)
    return Rect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))
