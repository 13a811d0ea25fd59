"""The real MaskGIT engine (tiny random weights) through the window: its step previews reach
the steps panel with their token overlay, and its batched variants reach the variants panel.
Random weights make noise, not pictures: this checks the plumbing, not fill quality."""

from __future__ import annotations

import numpy as np
import pytest
from ui_helpers import wait_job

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def maskgit_weights(tmp_path_factory):
    from inpaint_studio.models.maskgit import MaskGitConfig, MaskGitTransformer, save_maskgit
    from inpaint_studio.models.vqgan import VQGAN, VQGANConfig

    torch.manual_seed(0)
    vq = VQGAN(
        VQGANConfig(
            ch=32,
            ch_mult=(1, 1, 2),
            num_res_blocks=1,
            attn_resolutions=(),
            z_channels=32,
            embed_dim=16,
            n_embed=64,
            resolution=32,
        )
    )
    tf = MaskGitTransformer(
        MaskGitConfig(codebook_size=64, grid_size=8, hidden_dim=32, depth=1, heads=2, mlp_dim=64, dropout=0.0)
    )
    return save_maskgit(tmp_path_factory.mktemp("w") / "tiny", vq, tf)


def test_maskgit_previews_and_variants_reach_the_panels(window, qtbot, maskgit_weights):
    doc = window.document
    m = np.zeros(doc.shape, np.uint8)
    m[40:80, 50:100] = 255
    doc.set_mask(m)
    panel = window.engine_panel
    panel.set_weights_folder("maskgit", str(maskgit_weights))
    panel.select("maskgit")
    assert window.act_fill.isEnabled(), panel.reason.text()
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    panel.form.set_values({"steps": 4})
    panel.variants.setValue(1)
    window.act_fill.trigger()
    wait_job(qtbot, window, timeout=60000)
    job = window.steps_panel.job
    assert job.status == "done", job.error
    assert [f.step for f in job.previews] == [1, 2, 3, 4]
    assert any(f.overlay is not None and f.overlay.any() for f in job.previews[:-1]), "undecided tokens shown"
    assert [ly.kind for ly in doc.layers] == ["image", "result"]
    outside = m == 0
    assert np.array_equal(doc.composite()[outside], doc.layers[0].pixels[..., :3][outside])

    panel.variants.setValue(3)
    window.act_fill.trigger()
    wait_job(qtbot, window, timeout=60000)
    assert window.variants_panel.count() == 3 + 1, "the earlier single fill stays listed"
    assert len(doc.layers) == 2, "variants wait to be picked"
    window.variants_panel.accept(2)
    assert doc.layers[-1].meta["variant"] == 2
