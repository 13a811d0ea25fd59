"""Document, layers and the undo history (including its memory bound)."""

from __future__ import annotations

import numpy as np
import pytest

from inpaint_studio.core.document import MASK, Document
from inpaint_studio.core.geometry import Rect
from inpaint_studio.core.layers import Layer


def _doc(h: int = 120, w: int = 160) -> Document:
    rng = np.random.default_rng(1)
    return Document.from_image(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_stroke_is_one_undo_step_and_redo_restores():
    doc = _doc()
    with doc.edit(MASK, "Mask brush") as s:
        for x in range(20, 100, 4):
            s.mask_dab(x, 60, 16, 0.8)
    painted = doc.mask.copy()
    assert painted.any() and doc.history.labels == ["Mask brush"] and doc.modified
    doc.undo()
    assert not doc.mask.any()
    doc.redo()
    assert np.array_equal(doc.mask, painted)


def test_signals_report_changed_rectangles():
    doc = _doc()
    seen = []
    doc.pixels_changed.connect(lambda target, rect: seen.append((target, rect)))
    with doc.edit(MASK, "dab") as s:
        s.mask_dab(30, 30, 10, 1.0)
    assert seen and seen[0][0] == MASK and seen[0][1].intersects(Rect(30, 30, 1, 1))
    doc.undo()
    assert len(seen) == 2


def test_empty_stroke_records_nothing_and_cancel_restores():
    doc = _doc()
    with doc.edit(MASK, "nothing"):
        pass
    assert doc.history.labels == []
    session = doc.begin_edit(MASK, "cancelled")
    session.mask_dab(50, 50, 30, 1.0)
    session.cancel()
    assert not doc.mask.any() and doc.history.labels == []


def test_undo_memory_follows_touched_pixels_not_image_size():
    """200 strokes on a 4000x3000 image: history holds tiles touched, not 200 copies."""
    rng = np.random.default_rng(2)
    doc = Document.from_image(np.zeros((3000, 4000, 3), np.uint8))
    for i in range(200):
        x, y = rng.uniform(100, 3900), rng.uniform(100, 2900)
        with doc.edit(MASK, f"stroke {i}") as s:
            for j in range(10):
                s.mask_dab(x + 3 * j, y + 2 * j, 24, 0.7)
    full_copy = doc.mask.nbytes  # 12 MB
    assert len(doc.history.labels) == 200
    assert doc.history.nbytes < 2 * full_copy  # ~ 200 strokes x a few 64x64 tiles
    assert doc.history.nbytes < 200 * 6 * 64 * 64  # at most a handful of tiles per stroke
    for _ in range(200):
        doc.undo()
    assert not doc.mask.any()


def test_whole_image_ops_store_only_changed_tiles():
    doc = Document.from_image(np.zeros((1000, 1000, 3), np.uint8))
    shape = np.zeros_like(doc.mask)
    shape[100:150, 100:150] = 255
    doc.set_mask(shape)
    doc.grow_mask(5)
    assert doc.history.nbytes < 10 * 64 * 64 * 2
    doc.invert_mask()
    assert doc.mask[0, 0] == 255
    for _ in range(3):
        doc.undo()
    assert not doc.mask.any()


def test_layer_ops_undo_redo():
    doc = _doc()
    base = doc.layers[0]
    paint = doc.new_layer("Paint")
    assert [ly.name for ly in doc.layers] == ["Background", "Paint"] and doc.active_layer is paint
    with doc.edit(paint.id, "Paint brush") as s:
        s.color_dab(40, 40, 20, 1.0, (255, 0, 0))
    assert tuple(doc.composite()[40, 40]) == (255, 0, 0)
    doc.set_layer_props(paint.id, opacity=0.5)
    doc.set_layer_props(paint.id, opacity=0.25)  # a drag: merges into one step
    assert doc.history.labels[-1].endswith("opacity") and len(doc.history.labels) == 3
    doc.set_layer_props(paint.id, visible=False, name="Hidden")
    assert np.array_equal(doc.composite(), base.pixels[..., :3])
    doc.move_layer(paint.id, 0)
    assert doc.layers[0] is paint
    dup = doc.duplicate_layer(base.id)
    assert dup.name == "Background copy" and len(doc.layers) == 3
    doc.remove_layer(dup.id)
    while doc.history.can_undo:
        doc.undo()
    assert [ly.name for ly in doc.layers] == ["Background"]
    while doc.history.can_redo:
        doc.redo()
    assert [ly.name for ly in doc.layers] == ["Hidden", "Background"] and paint.opacity == 0.25


def test_merge_down_and_flatten_are_single_steps():
    doc = _doc()
    paint = doc.new_layer("Paint")
    with doc.edit(paint.id, "brush") as s:
        s.color_dab(40, 40, 20, 1.0, (0, 255, 0))
    before = doc.composite()
    doc.merge_down(paint.id)
    assert len(doc.layers) == 1 and np.array_equal(doc.composite(), before)
    doc.undo()
    assert len(doc.layers) == 2
    result = doc.add_result_layer(
        np.zeros((120, 160, 3), np.uint8), np.full((120, 160), 255, np.uint8), "fill"
    )
    assert result.kind == "result"
    doc.flatten()
    assert len(doc.layers) == 1 and not doc.composite().any()
    doc.undo()
    assert len(doc.layers) == 3
    with pytest.raises(ValueError):
        doc.merge_down(doc.layers[0].id)


def test_result_layer_covers_only_the_mask():
    doc = _doc()
    mask = np.zeros((120, 160), np.uint8)
    mask[10:20, 10:20] = 255
    doc.add_result_layer(np.zeros((120, 160, 3), np.uint8), mask, "fill")
    comp = doc.composite()
    assert not comp[10:20, 10:20].any()
    assert np.array_equal(comp[50:, 50:], doc.layers[0].pixels[50:, 50:, :3])


def test_validation_errors_are_precise():
    doc = _doc()
    with pytest.raises(ValueError, match="opacity"):
        doc.set_layer_props(doc.layers[0].id, opacity=2)
    with pytest.raises(ValueError, match="cannot set"):
        doc.set_layer_props(doc.layers[0].id, pixels=None)
    with pytest.raises(ValueError, match="document is"):
        doc.add_layer(Layer("x", "paint", np.zeros((5, 5, 4), np.uint8)))
    with pytest.raises(ValueError):
        Layer("x", "weird", np.zeros((5, 5, 4), np.uint8))  # type: ignore[arg-type]


def test_history_clean_state_and_limits():
    doc = _doc()
    doc.history.limit_steps = 3
    for i in range(5):
        with doc.edit(MASK, f"s{i}") as s:
            s.mask_dab(10 + 20 * i, 10, 8, 1.0)
    assert doc.history.labels == ["s2", "s3", "s4"]
    doc.history.mark_clean()
    assert not doc.modified
    doc.undo()
    assert doc.modified
    doc.redo()
    assert not doc.modified
    doc.history.jump_to(doc, 0)
    assert doc.history.index == 0 and doc.history.can_redo
