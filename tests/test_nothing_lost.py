"""Nothing lost (reliability issue, items 1-6, 11): inputs never overwritten, alpha and 16-bit depth
kept outside the mask, lossy output said aloud, file modes and symlinks kept, no orphan temp files,
autosave offered after a PID reuse, the documented mask rule, EXIF-rotated masks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from inpaint_studio.cli import main
from inpaint_studio.core.imageio import load_mask, read_image, save_image

H, W = 40, 56
REPO = Path(__file__).resolve().parents[1]


def _photo() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return np.dstack([xx * 4, yy * 6, (xx + yy) * 2]).astype(np.uint8)


def _mask_array() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[10:25, 15:35] = 255
    return m


def _fill(image: Path, mask: Path, out: Path, *extra: str) -> int:
    return main(["fill", str(image), "--mask", str(mask), "-o", str(out), "-q", *extra])


@pytest.fixture
def mask_file(tmp_path) -> Path:
    Image.fromarray(_mask_array()).save(tmp_path / "mask.png")
    return tmp_path / "mask.png"


# ------------------------------------------------------------------------- 1. never overwrite
def test_batch_name_clash_writes_both_and_says_so(tmp_path, capsys):
    (tmp_path / "in").mkdir(), (tmp_path / "m").mkdir()
    Image.fromarray(_photo()).save(tmp_path / "in" / "photo.png")
    Image.fromarray(_photo()[::-1].copy()).save(tmp_path / "in" / "photo.jpg", quality=95)
    Image.fromarray(_mask_array()).save(tmp_path / "m" / "photo.png")
    assert (
        main(["fill", str(tmp_path / "in"), "--mask", str(tmp_path / "m"), "-o", str(tmp_path / "o"), "-q"])
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["photo_jpg.png", "photo_png.png"]
    assert "share the name" in capsys.readouterr().err


def test_output_into_the_input_folder_is_refused_and_originals_stay(tmp_path, capsys):
    (tmp_path / "in").mkdir(), (tmp_path / "m").mkdir()
    Image.fromarray(_photo()).save(tmp_path / "in" / "a.png")
    Image.fromarray(_mask_array()).save(tmp_path / "m" / "a.png")
    before = (tmp_path / "in" / "a.png").read_bytes()
    assert (
        main(["fill", str(tmp_path / "in"), "--mask", str(tmp_path / "m"), "-o", str(tmp_path / "in")]) == 2
    )
    assert "would replace input" in capsys.readouterr().err
    assert (tmp_path / "in" / "a.png").read_bytes() == before
    assert _fill(tmp_path / "in" / "a.png", tmp_path / "m" / "a.png", tmp_path / "m" / "a.png") == 2
    assert (tmp_path / "in" / "a.png").read_bytes() == before


def test_skip_existing_resumes_a_batch(tmp_path, capsys):
    (tmp_path / "in").mkdir(), (tmp_path / "m").mkdir()
    for name in ("a", "b"):
        Image.fromarray(_photo()).save(tmp_path / "in" / f"{name}.png")
        Image.fromarray(_mask_array()).save(tmp_path / "m" / f"{name}.png")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "a.png").write_bytes(b"done before")
    args = ["fill", str(tmp_path / "in"), "--mask", str(tmp_path / "m"), "-o", str(tmp_path / "o"), "-q"]
    assert main([*args, "--skip-existing"]) == 0
    assert (tmp_path / "o" / "a.png").read_bytes() == b"done before" and (tmp_path / "o" / "b.png").is_file()
    assert "1 skipped" in capsys.readouterr().err


# ------------------------------------------------------------------------- 2. alpha and depth
def test_rgba_alpha_is_kept_outside_the_mask(tmp_path, mask_file):
    rgba = np.dstack([_photo(), np.tile(np.arange(W, dtype=np.uint8) * 4, (H, 1))])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut.png")
    assert _fill(tmp_path / "cut.png", mask_file, tmp_path / "out.png") == 0
    out = np.asarray(Image.open(tmp_path / "out.png"))
    keep = _mask_array() == 0
    assert out.shape == (H, W, 4) and np.array_equal(out[keep], rgba[keep])
    assert np.array_equal(out[..., 3], rgba[..., 3])  # the fill replaces colour, not transparency
    grey = rgba[..., 0]
    Image.fromarray(np.dstack([grey, rgba[..., 3]]), "LA").save(tmp_path / "la.png")
    assert _fill(tmp_path / "la.png", mask_file, tmp_path / "out_la.png") == 0
    out = np.asarray(Image.open(tmp_path / "out_la.png"))
    assert np.array_equal(out[..., 3], rgba[..., 3]) and np.array_equal(out[keep][:, 0], grey[keep])


def test_16bit_grey_and_colour_keep_their_depth_outside_the_mask(tmp_path, mask_file):
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 65536, (H, W), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    colour = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c16.png"), colour[..., ::-1])
    keep = _mask_array() == 0
    for name, original, suffix in (
        ("g16.png", grey, ".png"),
        ("c16.png", colour, ".png"),
        ("g16.png", grey, ".tif"),
        ("c16.png", colour, ".tif"),
    ):
        out_path = tmp_path / f"out_{name}{suffix}"
        assert _fill(tmp_path / name, mask_file, out_path) == 0
        out = cv2.imread(str(out_path), cv2.IMREAD_UNCHANGED)
        out = out if out.ndim == 2 else out[..., ::-1]
        assert out.dtype == np.uint16 and np.array_equal(out[keep], original[keep]), name
        assert not np.array_equal(out[~keep], original[~keep])


def test_jpeg_output_says_what_it_drops_and_takes_quality(tmp_path, mask_file, capsys):
    rgba = np.dstack([_photo(), np.full((H, W), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut.png")
    assert _fill(tmp_path / "cut.png", mask_file, tmp_path / "o.jpg", "--quality", "80") == 0
    err = capsys.readouterr().err
    assert "JPEG is lossy" in err and "quality 80" in err and "alpha" in err
    assert _fill(tmp_path / "cut.png", mask_file, tmp_path / "o.webp", "--quality", "100") == 0
    assert "lossy" not in capsys.readouterr().err  # WebP at 100 is lossless
    out = np.asarray(Image.open(tmp_path / "o.webp").convert("RGBA"))
    assert np.array_equal(out[_mask_array() == 0], rgba[_mask_array() == 0])


# ------------------------------------------------------------------------- 4. modes and links
def test_new_files_get_the_umask_mode_and_replaced_files_keep_theirs(tmp_path):
    old = os.umask(0o022)
    try:
        save_image(tmp_path / "new.png", _photo())
        assert (tmp_path / "new.png").stat().st_mode & 0o777 == 0o644
        (tmp_path / "new.png").chmod(0o640)
        save_image(tmp_path / "new.png", _photo())
        assert (tmp_path / "new.png").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_a_symlinked_target_is_written_through(tmp_path):
    (tmp_path / "real").mkdir()
    save_image(tmp_path / "real" / "a.png", _photo())
    (tmp_path / "link.png").symlink_to(tmp_path / "real" / "a.png")
    save_image(tmp_path / "link.png", _photo()[::-1].copy())
    assert (tmp_path / "link.png").is_symlink()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "real" / "a.png")), _photo()[::-1])


# ------------------------------------------------------------------------- 5. temp files
def test_stale_temp_files_are_swept_and_live_ones_kept(tmp_path):
    stale = tmp_path / ".a.png.0123456789ab.istmp"
    stale.write_bytes(b"left by a killed save")
    live = tmp_path / ".b.png.ba9876543210.istmp"
    live.write_bytes(b"being written")
    legacy = tmp_path / ".a.png.k3j4h5g6.tmp"
    legacy.write_bytes(b"old mkstemp orphan")
    fresh = tmp_path / ".c.png.00aa11bb22cc.istmp"
    fresh.write_bytes(b"created a moment ago, not locked yet")
    for path in (stale, live, legacy):
        os.utime(path, (0, 0))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import fcntl, sys, time
            f = open({str(live)!r}, "rb"); fcntl.flock(f, fcntl.LOCK_EX); print("held", flush=True); time.sleep(30)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        save_image(tmp_path / "a.png", _photo())
        assert not stale.exists() and not legacy.exists() and live.exists() and fresh.exists()
    finally:
        holder.kill()
        holder.wait()


def test_sigterm_removes_the_temp_file_of_a_save(tmp_path):
    script = textwrap.dedent(f"""
        import time
        from inpaint_studio.core.atomic import atomic_write, sigterm_cleanup
        with sigterm_cleanup(), atomic_write({str(tmp_path / "big.isproj")!r}) as f:
            f.write(b"x" * 1000); f.flush(); print("writing", flush=True); time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.terminate()
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143 and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------- 6. autosave lock
def test_autosave_is_offered_after_a_crash_even_when_the_pid_is_reused(tmp_path):
    import json

    from inpaint_studio.core.autosave import AutosaveStore

    folder = tmp_path / "autosave"
    script = textwrap.dedent(f"""
        import os
        from inpaint_studio.core.autosave import AutosaveStore
        from inpaint_studio.core.document import Document
        doc = Document(8, 6)
        AutosaveStore({str(folder)!r}).save(doc, title="crashed.jpg")
        print(doc.id, flush=True)
        os._exit(1)  # a crash: no discard, no clean-up
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    doc_id = proc.stdout.strip()
    record = folder / f"{doc_id}.json"
    info = json.loads(record.read_text())
    info["pid"] = 1 if os.getpid() != 1 else os.getpid()  # the PID now names a live process (PID 1)
    record.write_text(json.dumps(info))
    store = AutosaveStore(folder)
    assert [e.document_id for e in store.recoverable()] == [doc_id]


# ------------------------------------------------------------------------- 11. the mask rule
def test_mask_rule_alpha_first_then_brightest_channel(tmp_path):
    m = _mask_array()
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = 255  # transparent pixels that are white: alpha decides
    rgba[..., 3] = m
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.array_equal(load_mask(tmp_path / "a.png"), m)
    red = np.zeros((H, W, 3), np.uint8)
    red[..., 0] = m  # pure red strokes are a full hole, not 76
    Image.fromarray(red).save(tmp_path / "r.png")
    assert np.array_equal(load_mask(tmp_path / "r.png"), m)
    soft = (m // 2).astype(np.uint8)
    Image.fromarray(soft).save(tmp_path / "s.png")
    assert np.array_equal(load_mask(tmp_path / "s.png"), soft)


def test_mask_in_the_pre_rotation_orientation_is_rotated_and_said(tmp_path, capsys):
    stored = _photo()  # H x W as stored; EXIF 6 shows it W x H
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    Image.fromarray(_mask_array()).save(tmp_path / "m.png")  # drawn on the stored pixels
    assert read_image(tmp_path / "r.jpg").rgb.shape == (W, H, 3)
    assert _fill(tmp_path / "r.jpg", tmp_path / "m.png", tmp_path / "o.png") == 0
    assert "before its EXIF rotation" in capsys.readouterr().err
    assert np.asarray(Image.open(tmp_path / "o.png")).shape == (W, H, 3)
    Image.fromarray(np.zeros((W + 1, H), np.uint8)).save(tmp_path / "bad.png")
    assert _fill(tmp_path / "r.jpg", tmp_path / "bad.png", tmp_path / "o2.png") == 2
    assert "EXIF-rotated" in capsys.readouterr().err
