"""Image I/O against what people really have: odd modes, EXIF rotation, damage, huge files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inpaint_studio.core import imageio
from inpaint_studio.core.imageio import ImageError, load_image, load_mask, read_image, save_image


def _rgb(h: int = 20, w: int = 30) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb_png_roundtrip_is_exact(tmp_path):
    img = _rgb()
    save_image(tmp_path / "a.png", img)
    assert np.array_equal(load_image(tmp_path / "a.png"), img)


def test_exif_orientation_is_applied(tmp_path):
    img = _rgb(10, 40)  # wide
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    Image.fromarray(img).save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=100)
    out = load_image(tmp_path / "r.jpg")
    assert out.shape == (40, 10, 3)  # tall after orientation


def test_rgba_keeps_alpha_and_flattens_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top opaque red-ish, bottom transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    loaded = read_image(tmp_path / "a.png")
    assert loaded.alpha is not None and loaded.alpha[3, 0] == 0 and loaded.alpha[0, 0] == 255
    flat = load_image(tmp_path / "a.png")
    assert tuple(flat[0, 0]) == (200, 0, 0)
    assert tuple(flat[3, 0]) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "CMYK", "1", "I;16", "I", "F"])
def test_odd_modes_become_rgb(tmp_path, mode):
    base = Image.fromarray(_rgb(16, 16))
    if mode == "I;16":
        im = Image.fromarray(np.arange(256, dtype=np.uint16).reshape(16, 16) * 257)
        path = tmp_path / "x.png"
    elif mode == "I":
        im = Image.fromarray(np.arange(256, dtype=np.int32).reshape(16, 16) * 257)
        path = tmp_path / "x.tif"
    elif mode == "F":
        im = Image.fromarray(np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16))
        path = tmp_path / "x.tif"
    else:
        im = base.convert(mode)
        path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    im.save(path)
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (16, 16, 3)
    if mode in ("I;16", "I", "F"):
        assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255  # full range preserved, not clipped


def test_palette_with_transparency_gets_alpha(tmp_path):
    im = Image.new("P", (4, 4), 0)
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    im.putpixel((0, 0), 1)
    im.info["transparency"] = 0
    im.save(tmp_path / "p.png", transparency=0)
    loaded = read_image(tmp_path / "p.png")
    assert loaded.alpha is not None and loaded.alpha[0, 0] == 255 and loaded.alpha[1, 1] == 0


def test_huge_image_is_refused_before_decoding(tmp_path, monkeypatch):
    save_image(tmp_path / "big.png", _rgb(100, 100))
    with pytest.raises(ImageError, match="above the"):
        load_image(tmp_path / "big.png", limit=5000)
    monkeypatch.setenv(imageio.MAX_PIXELS_ENV, "5000")
    with pytest.raises(ImageError, match="above the 5,000-pixel limit"):
        load_image(tmp_path / "big.png")


def test_truncated_and_garbage_files_give_one_line_errors(tmp_path):
    save_image(tmp_path / "ok.png", _rgb(64, 64))
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"this is not an image at all")
    (tmp_path / "empty.jpg").write_bytes(b"")
    for name in ("cut.png", "junk.png", "empty.jpg", "missing.png"):
        with pytest.raises(ImageError) as info:
            load_image(tmp_path / name)
        assert "\n" not in str(info.value) and name in str(info.value)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_save_formats(tmp_path, suffix):
    yy, xx = np.mgrid[0:32, 0:48]
    img = np.dstack([xx * 5, yy * 7, (xx + yy) * 3]).astype(np.uint8)  # smooth: fair to lossy codecs
    save_image(tmp_path / f"o{suffix}", img, quality=95)
    back = load_image(tmp_path / f"o{suffix}")
    assert back.shape == img.shape
    error = np.abs(back.astype(int) - img).mean()
    assert error == 0 if suffix == ".png" else error < 4


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    save_image(target, _rgb())
    before = target.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", explode)
    with pytest.raises(OSError):
        save_image(target, _rgb(5, 5))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]  # no temp file left behind


def test_unknown_save_suffix(tmp_path):
    with pytest.raises(ImageError, match="cannot save"):
        save_image(tmp_path / "x.gif", _rgb())


def test_load_mask_grey_colour_and_alpha(tmp_path):
    m = np.zeros((10, 12), np.uint8)
    m[2:5, 3:7] = 255
    Image.fromarray(m).save(tmp_path / "g.png")
    assert np.array_equal(load_mask(tmp_path / "g.png"), m)
    Image.fromarray(np.dstack([m, m, m])).save(tmp_path / "c.png")
    assert np.array_equal(load_mask(tmp_path / "c.png"), m)
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 3] = m
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.array_equal(load_mask(tmp_path / "a.png"), m)
    with pytest.raises(ImageError, match="12x10 but the image is 5x5"):
        load_mask(tmp_path / "g.png", shape=(5, 5))
