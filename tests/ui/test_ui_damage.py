"""Layer-stack changes repaint only the area the changed layer covers."""

from __future__ import annotations

import numpy as np

from inpaint_studio.core.document import Document
from inpaint_studio.core.geometry import Rect
from inpaint_studio.core.layers import Layer
from inpaint_studio.session.damage import LayerDamage, content_box


def _doc():
    doc = Document.from_image(np.zeros((100, 200, 3), np.uint8))
    px = np.zeros((100, 200, 4), np.uint8)
    px[20:40, 50:90] = 255
    return doc, px


def test_content_box():
    doc, px = _doc()
    assert content_box(Layer("a", "paint", px)) == Rect(50, 20, 40, 20)
    assert content_box(Layer("b", "paint", np.zeros_like(px))).empty


def test_adding_hiding_moving_a_layer_damages_only_its_box():
    doc, px = _doc()
    damage = LayerDamage(doc)
    layer = doc.add_layer(Layer("fill", "result", px))
    assert damage.stack_changed() == Rect(50, 20, 40, 20)
    doc.set_layer_props(layer.id, opacity=0.5)
    assert damage.stack_changed() == Rect(50, 20, 40, 20)
    doc.set_layer_props(layer.id, name="renamed")
    assert damage.stack_changed() is None
    doc.move_layer(layer.id, 0)
    assert damage.stack_changed() == Rect(0, 0, 200, 100), "moving under the opaque picture touches both"
    doc.undo()
    damage.stack_changed()
    doc.remove_layer(layer.id)
    assert damage.stack_changed() == Rect(50, 20, 40, 20)


def test_large_edits_are_limited_to_old_and_new_content():
    doc, px = _doc()
    layer = doc.add_layer(Layer("paint", "paint", px))
    damage = LayerDamage(doc)
    damage.box(layer)
    new = px.copy()
    new[60:70, 100:120] = 255
    doc.replace_pixels(layer.id, new, "edit")
    full = Rect.full(doc.shape)
    assert damage.pixels_changed(layer.id, full) == Rect(50, 20, 70, 50)
    # small edits pass through and grow the box
    assert damage.pixels_changed(layer.id, Rect(0, 0, 5, 5)) == Rect(0, 0, 5, 5)
    assert damage.box(layer) == Rect(0, 0, 120, 70)
