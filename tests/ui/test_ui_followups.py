"""Follow-ups: "More like this" on a variant and "Vary from this step" on a step preview, run
through the real controller and worker thread with an engine that offers them."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from ui_fakes import VARIANT_COLORS, FollowupEngine
from ui_helpers import wait_job

from inpaint_studio.engines.followup import FOLLOWUP_KEY
from inpaint_studio.engines.seeds import next_take_seed


@pytest.fixture
def followups(window):
    """The window with the follow-up engine chosen, a fixed seed and a square mask."""
    FollowupEngine.requests.clear()
    window.catalog.add(FollowupEngine)
    panel = window.engine_panel
    panel.refresh(select="followups")
    assert panel.engine_id == "followups"
    panel.new_seed.setChecked(False)
    panel.seed.setValue(100)
    m = np.zeros(window.document.shape, np.uint8)
    m[40:80, 50:100] = 255
    window.document.set_mask(m)
    return window


def test_more_like_this_reruns_with_the_variants_overrides_and_keeps_the_earlier_ones(followups, qtbot):
    window, vp = followups, followups.variants_panel
    doc = window.document
    window.engine_panel.variants.setValue(2)
    window.act_fill.trigger()
    wait_job(qtbot, window)
    first = FollowupEngine.requests[-1]
    assert vp.count() == 2 and vp.more_button.isVisible()
    # keep the first variant as a layer: the follow-up must still fill the picture as it was
    vp.accept(0)
    assert [ly.kind for ly in doc.layers] == ["image", "result"]
    assert FOLLOWUP_KEY not in doc.layers[1].meta, "offers are not stored with a layer"
    vp.list.setCurrentItem(vp.thumb_items()[1])
    assert vp.more_button.isEnabled() and vp.more_button.text() == "More like this"
    with qtbot.waitSignal(window.controller.job_finished, timeout=10000) as blocker:
        qtbot.mouseClick(vp.more_button, Qt.MouseButton.LeftButton)
    child = blocker.args[0]
    assert child.status == "done" and child.parent_id is not None
    second = FollowupEngine.requests[-1]
    assert second.params["near_index"] == 1 and second.params["near_seed"] == 100
    assert second.params["steps"] == first.params["steps"], "the other settings are kept"
    assert second.seed == next_take_seed(100, 0) and second.variants == 2, "a follow-up never reuses a seed"
    assert np.array_equal(second.mask, first.mask)
    assert np.array_equal(second.image, first.image), "the same picture, not the one with the layer"
    # the new variants join the list; the earlier ones stay browsable and can still be accepted
    # one numbering per fill: the follow-up's variants continue it
    assert [it.text() for it in vp.thumb_items()] == ["1.1", "1.2", "1.3", "1.4"]
    assert vp.list.currentItem() is vp.thumb_items()[2] and window.canvas.overlay_owner is vp
    p = window.canvas.map_from_image(75.2, 60.2).toPoint()
    c = window.canvas.grab().toImage().pixelColor(p)
    assert (c.red(), c.green(), c.blue()) == VARIANT_COLORS[3], "the follow-up's first variant is shown"
    vp.list.setCurrentItem(vp.thumb_items()[1])
    older = vp.accept_selected()
    assert older.meta["variant"] == 1 and older.meta["params"]["near_index"] == -1
    vp.list.setCurrentItem(vp.thumb_items()[3])
    newer = vp.accept_selected()
    assert newer.meta["params"]["near_index"] == 1 and FOLLOWUP_KEY not in newer.meta
    assert len(doc.layers) == 4
    # the same offer again, from the context menu: new samples around the same reference
    menu = vp.context_menu(vp.thumb_items()[1])
    action = next(a for a in menu.actions() if a.text() == "More like this")
    with qtbot.waitSignal(window.controller.job_finished, timeout=10000):
        action.trigger()
    menu.close()
    third = FollowupEngine.requests[-1]
    assert third.params["near_index"] == 1 and third.params["near_seed"] == 100
    assert third.seed == next_take_seed(100, 1) and third.seed not in (100, second.seed)
    assert vp.count() == 6
    # a plain Fill adds a new group on top; the earlier fill's results stay
    window.act_fill.trigger()
    wait_job(qtbot, window)
    assert vp.count() == 8 and FollowupEngine.requests[-1].params.get("near_index", -1) == -1
    assert [it.text() for it in vp.thumb_items()][:2] == ["2.1", "2.2"]


def test_vary_from_this_step_reruns_with_the_steps_request_meta(followups, qtbot):
    window, sp = followups, followups.steps_panel
    window.engine_panel.variants.setValue(1)
    window.engine_panel.form.set_values({"steps": 4})
    window.act_fill.trigger()
    wait_job(qtbot, window)
    first = FollowupEngine.requests[-1]
    assert first.meta == {}
    assert [ly.kind for ly in window.document.layers] == ["image", "result"]
    assert FOLLOWUP_KEY not in window.document.layers[1].meta
    assert sp.vary_button.isVisible() and sp.step_label.text() == "Result"
    assert not sp.vary_button.isEnabled(), "nothing to vary from the result"
    sp.slider.setValue(3)
    assert not sp.vary_button.isEnabled(), "the last step offers nothing"
    sp.slider.setValue(1)
    assert sp.vary_button.isEnabled() and sp.vary_button.text() == "Vary from this step"
    assert "after step 2" in sp.vary_button.toolTip()
    with qtbot.waitSignal(window.controller.job_finished, timeout=10000) as blocker:
        qtbot.mouseClick(sp.vary_button, Qt.MouseButton.LeftButton)
    assert blocker.args[0].status == "done"
    second = FollowupEngine.requests[-1]
    assert second.meta == {"from_step": 2}
    assert second.params == first.params and second.seed == next_take_seed(first.seed, 0)
    assert np.array_equal(second.image, first.image) and np.array_equal(second.mask, first.mask)
    assert [f.step for f in sp.job.previews] == [3, 4], "the new run's steps replace the old ones"
    assert len(window.document.layers) == 3


def test_a_follow_up_asked_before_the_worker_built_the_picture_waits_for_it(followups, qtbot, monkeypatch):
    """The worker flattens the layers when a fill starts; a follow-up asked for before that (the
    picture is still None on the job) must not fail or read a missing picture: it runs after the
    parent, on the very picture the parent filled."""
    import threading
    import time

    from inpaint_studio.engines.followup import Followup
    from inpaint_studio.session import jobs

    window = followups
    release = threading.Event()
    flatten = jobs.composite_rgb

    def slow_flatten(*args, **kwargs):
        release.wait(5.0)
        return flatten(*args, **kwargs)

    monkeypatch.setattr(jobs, "composite_rgb", slow_flatten)
    parent = window.fill()
    time.sleep(0.05)
    assert parent.image is None, "the worker is still flattening"
    child = window.controller.follow_up(parent, Followup("More like this", params={"near_index": 0}), key="x")
    release.set()
    qtbot.waitUntil(lambda: child.finished, timeout=10000)
    wait_job(qtbot, window)
    assert parent.status == "done" and child.status == "done", child.error
    first, second = FollowupEngine.requests[-2:]
    assert np.array_equal(second.image, first.image) and second.params["near_index"] == 0
