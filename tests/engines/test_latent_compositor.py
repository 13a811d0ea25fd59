"""The latent-fill compositor: no step on the 8-pixel grid, small masks upscaled, colour match, a feather
that feathers inside the mask, exact paste-back. A fake latent model stands in for the diffusion model."""

from __future__ import annotations

import numpy as np
import pytest
import sd_tiny

from inpaint_studio.engines import latent_compositor as lc
from inpaint_studio.engines.framing import feather_alpha


def fake_latent_model(work_image: np.ndarray, work_mask: np.ndarray, latent_mask: np.ndarray) -> np.ndarray:
    """What an inpainting model does with its inputs: cells of the latent mask are repainted (here: the
    true picture, slightly brighter, as a plausible fill would be), other cells come back as the masked
    image it was given (black where the pixel mask is)."""
    repaint = np.kron(latent_mask, np.ones((8, 8), np.float32)).astype(bool)
    masked = np.where(work_mask[..., None] > 0, 0, work_image)
    fill = np.clip(work_image.astype(int) + 6, 0, 255).astype(np.uint8)
    return np.where(repaint[..., None], fill, masked)


def _fill(image: np.ndarray, mask: np.ndarray, resolution: int = 64, **paste) -> np.ndarray:
    plan = lc.plan_latent_fill(image.shape[:2], mask, resolution=resolution)
    work_mask = plan.work_mask(mask)
    out = fake_latent_model(plan.work_image(image), work_mask, plan.latent_mask(work_mask))
    return plan.paste(out, image, mask, **paste)


def _edge_step(result: np.ndarray, x_edge: int) -> float:
    """Largest horizontal jump across the mask's left edge (rows inside the mask)."""
    row = result[24:40].astype(float)
    return float(np.abs(np.diff(row[:, x_edge - 2 : x_edge + 3], axis=1)).max())


def _box_mask(x0: int) -> np.ndarray:
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, x0:48] = 255
    return mask


def test_a_mask_edge_off_the_latent_grid_leaves_no_step():
    image = sd_tiny.gradient_image(64)
    aligned = _edge_step(_fill(image, _box_mask(16), feather=3), 16)
    off_grid = _edge_step(_fill(image, _box_mask(21), feather=3), 21)
    assert off_grid <= aligned + 2, (off_grid, aligned)
    assert aligned < 12  # the fill's +6 brightness, feathered: no hard seam in either case


def test_the_seam_test_catches_a_nearest_neighbour_latent_mask(monkeypatch):
    """Resizing the mask to latent size instead of max-pooling leaves hole pixels in kept cells."""
    image = sd_tiny.gradient_image(64)
    baseline = _edge_step(_fill(image, _box_mask(21), feather=3), 21)

    def nearest(self, work_mask):  # noqa: ANN001
        return work_mask[4::8, 4::8].astype(np.float32)

    monkeypatch.setattr(lc.LatentFill, "latent_mask", nearest)
    seamed = _edge_step(_fill(image, _box_mask(21), feather=3), 21)
    assert seamed > baseline + 40


def test_a_small_mask_is_filled_from_an_upscaled_crop():
    mask = np.zeros((400, 600), np.uint8)
    mask[200:220, 300:324] = 255
    plan = lc.plan_latent_fill(mask.shape, mask, resolution=512)
    assert max(plan.work_size) == 512 and plan.scale > 8
    x0, y0, x1, y1 = plan.box
    assert x0 <= 300 and y0 <= 200 and x1 >= 324 and y1 >= 220  # the crop holds the whole hole
    hole_at_model = plan.work_mask(mask).sum(axis=1).max()
    assert hole_at_model >= 24 * 8  # the 24 px hole is painted over hundreds of model pixels
    assert all(side % 8 == 0 for side in plan.work_size)


def test_a_big_mask_is_scaled_down_to_the_model_size_and_slivers_are_widened():
    mask = np.zeros((2000, 3000), np.uint8)
    mask[100:1900, 200:2800] = 255
    plan = lc.plan_latent_fill(mask.shape, mask, resolution=512)
    assert max(plan.work_size) == 512 and plan.scale < 1
    stroke = np.zeros((600, 800), np.uint8)
    stroke[300:304, 100:700] = 255
    thin = lc.plan_latent_fill(stroke.shape, stroke, resolution=512)
    assert min(thin.work_size) >= max(thin.work_size) // 2 - 8


def test_colour_match_moves_the_fill_toward_its_ring():
    image = sd_tiny.gradient_image(64)
    mask = _box_mask(16)
    plan = lc.plan_latent_fill(image.shape[:2], mask, resolution=64)
    cast = np.clip(plan.work_image(image).astype(int) + np.array([40, -20, 10]), 0, 255).astype(np.uint8)
    hole = mask > 0
    plain = plan.paste(cast, image, mask, feather=0, color_match=False)
    matched = plan.paste(cast, image, mask, feather=0, color_match=True)
    truth = image[hole].mean(axis=0)
    err_plain = np.abs(plain[hole].mean(axis=0) - truth).sum()
    err_matched = np.abs(matched[hole].mean(axis=0) - truth).sum()
    assert err_matched < 0.25 * err_plain, (err_plain, err_matched)


def test_feather_ramps_inside_the_mask_only():
    mask = _box_mask(16)
    alpha = feather_alpha(mask, 4)
    assert (alpha[mask == 0] == 0).all()
    row = alpha[32, 14:24]
    assert row[0] == row[1] == 0 and 0 < row[2] < 0.5 and row[-1] == 1.0
    assert np.all(np.diff(row) >= 0)  # rises monotonically: it feathers, no step
    stroke = np.zeros((32, 32), np.uint8)
    stroke[10:13, :] = 255
    assert feather_alpha(stroke, 8).max() == 1.0  # a thin stroke still gets the whole fill somewhere


@pytest.mark.parametrize("color_match", [False, True])
def test_every_pixel_outside_the_mask_is_the_input(color_match):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)
    mask = np.zeros((90, 70), np.uint8)
    mask[30:61, 11:43] = 255
    mask[29, 11:43] = 90
    out = _fill(image, mask, resolution=128, feather=5, color_match=color_match)
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert not np.array_equal(out[mask == 255], image[mask == 255])


def test_max_pool_marks_every_cell_a_hole_pixel_touches():
    mask = np.zeros((16, 16), np.uint8)
    mask[7, 8] = 1
    assert lc.max_pool_mask(mask, 8).tolist() == [[0.0, 1.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="multiple of 8"):
        lc.max_pool_mask(np.zeros((12, 16), np.uint8), 8)
