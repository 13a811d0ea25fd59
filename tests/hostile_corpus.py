"""A deterministic corpus of hostile inputs, built by the tests themselves (nothing is committed).

Each :class:`Case` is a command line for ``inpaint_studio.cli.main`` (``{d}`` is the corpus folder)
with the exit code it must end with and a phrase its last stderr line must hold. Refusals
(exit code 1 or 2) must be exactly one stderr line; accepted odd inputs (exit 0) may add notes.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 48, 64


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    code: int
    says: str
    env: dict[str, str] = field(default_factory=dict)


def _photo() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return np.dstack([xx * 4, yy * 5, (xx + yy) * 2]).astype(np.uint8)


def _mask(value: int = 255) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[10:30, 20:40] = value
    return m


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _png_with_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR says width x height over a few bytes of data (a lying header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _float_tiff_bomb(path: Path) -> None:
    """A small float TIFF whose header is patched to claim 64 x 2,162,736 pixels (553 MB)."""
    Image.fromarray(np.zeros((70000, 64), np.float32)).save(path, compression="tiff_deflate")
    data = path.read_bytes()
    patched = data.replace(struct.pack("<I", 70000), struct.pack("<I", 2162736), 1)
    path.write_bytes(patched)


def _group4_flipped(path: Path) -> None:
    rng = np.random.default_rng(7)
    bits = rng.random((H, W)) > 0.5
    Image.fromarray(bits).convert("1").save(path, compression="group4")
    data = bytearray(path.read_bytes())
    for i in (8, 9, 10, 11, 12, 13):  # the start of the coded data: the decoder reports bad code words
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


class _System:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/inpaint_studio_pwned",))


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> None:
    with tarfile.open(path, "w") as tar:
        tar.addfile(member, io.BytesIO(data) if data else None)


def _lying_safetensors(kind: int) -> bytes:
    """Eight ways a safetensors header can lie about its contents."""
    good = b'{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}'
    body = b"\0" * 16
    variants = [
        struct.pack("<Q", 1 << 40) + good + body,  # header length far beyond the file
        struct.pack("<Q", len(good)) + good[:-5] + body,  # header length past the JSON
        struct.pack("<Q", 5) + b"nojso" + body,  # header is not JSON
        struct.pack("<Q", len(good)) + good.replace(b"[0,16]", b"[0,1600]") + body,  # data past the end
        struct.pack("<Q", len(good)) + good.replace(b"F32", b"X99") + body,  # unknown dtype
        struct.pack("<Q", len(good)) + good.replace(b"[2,2]", b"[99999,99999]") + body,  # shape != bytes
        struct.pack("<Q", len(good)) + good.replace(b"[0,16]", b"[16,0]") + body,  # reversed offsets
        b"\x01\x02",  # shorter than the 8-byte length
    ]
    return variants[kind]


def build(d: Path) -> list[Case]:
    """Write the corpus into ``d`` and return its cases."""
    d.mkdir(parents=True, exist_ok=True)
    photo, mask = _photo(), _mask()
    Image.fromarray(photo).save(d / "photo.png")
    Image.fromarray(photo).save(d / "photo.jpg", quality=95)
    Image.fromarray(mask).save(d / "mask.png")
    good = d / "photo.png"
    png = good.read_bytes()
    jpg = (d / "photo.jpg").read_bytes()
    out = str(d / "out.png")
    m = str(d / "mask.png")

    def fill(image: str | Path, *extra: str, mask_path: str = m, out_path: str = out) -> tuple[str, ...]:
        return ("fill", str(image), "--mask", mask_path, "-o", out_path, "-q", *extra)

    cases: list[Case] = []
    add = cases.append

    # --- broken image files
    (d / "cut.png").write_bytes(png[: len(png) // 2])
    add(Case("truncated png", fill(d / "cut.png"), 2, "corrupt or truncated"))
    (d / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
    add(Case("truncated jpeg", fill(d / "cut.jpg"), 2, "cut.jpg"))
    (d / "junk.png").write_bytes(b"GIF89a but not really" * 10)
    add(Case("garbage", fill(d / "junk.png"), 2, "junk.png"))
    (d / "empty.png").write_bytes(b"")
    add(Case("empty file", fill(d / "empty.png"), 2, "empty.png"))
    (d / "huge.png").write_bytes(_png_with_header(100_000, 100_000))
    add(Case("header claims 10 gigapixels", fill(d / "huge.png"), 2, "above the 150 MP limit"))
    (d / "zero.png").write_bytes(_png_with_header(0, 10))
    add(Case("header claims zero width", fill(d / "zero.png"), 2, "zero.png"))
    (d / "lie.png").write_bytes(_png_with_header(W, H))
    add(Case("header over too little data", fill(d / "lie.png"), 2, "lie.png"))
    _float_tiff_bomb(d / "bomb.tif")
    add(Case("float tiff bomb", fill(d / "bomb.tif"), 2, "decompression bomb"))
    _group4_flipped(d / "g4.tif")
    add(Case("byte-flipped group-4 tiff", fill(d / "g4.tif", mask_path=str(d / "mask.png")), 2, "corrupt"))
    (d / "text.tif").write_bytes(b"II*\0" + b"\xff" * 40)
    add(Case("tiff with a wild IFD offset", fill(d / "text.tif"), 2, "text.tif"))

    # --- not files
    (d / "folder.png").mkdir()
    add(Case("folder as image (batch without mask folder)", fill(d / "folder.png"), 2, "folder"))
    add(Case("folder as mask", fill(good, mask_path=str(d / "folder.png")), 2, "--mask is a folder"))
    os.mkfifo(d / "fifo.png")
    add(Case("fifo as image", fill(d / "fifo.png"), 2, "not a regular file"))
    (d / "zero_link.png").symlink_to("/dev/zero")
    add(Case("link to /dev/zero", fill(d / "zero_link.png"), 2, "not a regular file"))
    add(Case("fifo as mask", fill(good, mask_path=str(d / "fifo.png")), 2, "not a regular file"))
    add(Case("missing image", fill(d / "nope.png"), 2, "no such file"))

    # --- masks
    Image.fromarray(np.zeros((H, W), np.uint8)).save(d / "mask_empty.png")
    add(Case("empty mask", fill(good, mask_path=str(d / "mask_empty.png")), 2, "empty"))
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(d / "mask_small.png")
    add(Case("mask of another size", fill(good, mask_path=str(d / "mask_small.png")), 2, "but the image is"))
    Image.fromarray(np.full((H, W), 255, np.uint8)).save(d / "mask_full.png")
    add(Case("mask covers everything", fill(good, mask_path=str(d / "mask_full.png")), 0, "covers the whole"))

    # --- odd but legitimate images: accepted
    Image.fromarray(photo).convert("CMYK").save(d / "cmyk.jpg")
    add(Case("cmyk jpeg", fill(d / "cmyk.jpg"), 0, ""))
    Image.fromarray((np.arange(H * W).reshape(H, W) * 20).astype(np.uint16)).save(d / "grey16.png")
    add(Case("16-bit grey png", fill(d / "grey16.png"), 0, ""))
    Image.fromarray(photo).convert("LA").save(d / "la.png")
    add(Case("grey+alpha png", fill(d / "la.png"), 0, ""))
    Image.fromarray(photo).convert("P").save(d / "palette.gif")
    add(Case("palette gif", fill(d / "palette.gif"), 0, ""))
    f = np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W)
    f[0, 0] = np.inf
    Image.fromarray(f).save(d / "float_inf.tif")
    add(Case("float tiff with inf", fill(d / "float_inf.tif"), 0, "written as 8 bits"))

    # --- command line and environment
    add(
        Case(
            "max pixels abc", fill(good), 2, "INPAINT_STUDIO_MAX_PIXELS", {"INPAINT_STUDIO_MAX_PIXELS": "abc"}
        )
    )
    add(Case("max pixels 1e9", fill(good), 0, "", {"INPAINT_STUDIO_MAX_PIXELS": "1e9"}))
    add(Case("max pixels 50", fill(good), 2, "50-pixel limit", {"INPAINT_STUDIO_MAX_PIXELS": "50"}))
    add(Case("context nan", fill(good, "--set", "context=nan"), 2, "finite"))
    add(Case("context inf", fill(good, "--context", "inf"), 2, "context"))
    add(Case("100000 variants", fill(good, "--variants", "100000"), 2, "--variants must be between"))
    add(Case("quality 0", fill(good, "--quality", "0"), 2, "--quality"))
    (d / "a_file").write_bytes(b"x")
    add(Case("-o under a file", fill(good, out_path=str(d / "a_file" / "out.png")), 2, "a_file"))
    add(Case("-o unknown suffix", fill(good, out_path=str(d / "out.xyz")), 2, "cannot save"))
    add(Case("-o is the input", fill(good, out_path=str(good)), 2, "would replace input"))
    add(
        Case(
            "home under a file", fill(good), 2, "is a file", {"INPAINT_STUDIO_HOME": str(d / "a_file" / "h")}
        )
    )
    add(Case("cuda for classical", fill(good, "--device", "cuda"), 0, "runs on the CPU"))
    add(Case("unknown engine", fill(good, "--engine", "nope"), 2, "unknown engine"))
    add(Case("mat without weights", fill(good, "--engine", "mat"), 1, "not available"))

    # --- batches
    for sub in ("imgs", "masks"):
        (d / sub).mkdir()
    Image.fromarray(photo).save(d / "imgs" / "a.png")
    Image.fromarray(photo).save(d / "imgs" / "b.png")
    Image.fromarray(mask).save(d / "masks" / "a.png")  # b has no mask
    batch = ("fill", str(d / "imgs"), "--mask", str(d / "masks"), "-q")
    add(Case("batch into its own folder", (*batch, "-o", str(d / "imgs")), 2, "would replace input"))
    add(Case("batch with a missing mask", (*batch, "-o", str(d / "bout")), 2, "no mask for b.png"))

    # --- checkpoints for import
    def imp(engine: str, path: Path | str) -> tuple[str, ...]:
        return ("import", engine, str(path), "--out", str(d / f"import_{Path(path).name}"))

    (d / "notes.txt").write_text("not a checkpoint at all\n")
    add(Case("import a text file", imp("mat", d / "notes.txt"), 2, "notes.txt"))
    (d / "evil.pkl").write_bytes(pickle.dumps({"G_ema": _System()}))
    add(Case("import os.system pickle", imp("mat", d / "evil.pkl"), 2, "could run code"))
    (d / "evil2.pth").write_bytes(pickle.dumps(_System(), protocol=2))
    add(Case("import os.system .pth (mat)", imp("mat", d / "evil2.pth"), 2, "could run code"))
    (d / "mg_release").mkdir()
    (d / "mg_release" / "vqgan.ckpt").write_bytes(pickle.dumps(_System(), protocol=2))
    (d / "mg_release" / "transformer.pth").write_bytes(pickle.dumps(_System(), protocol=4))
    add(Case("import os.system release (maskgit)", imp("maskgit", d / "mg_release"), 2, "could run code"))
    fifo_member = tarfile.TarInfo("storages")  # torch extracts and opens this member first
    fifo_member.type = tarfile.FIFOTYPE
    _tar_with(d / "fifo.pth", fifo_member)
    add(Case("legacy tar with a fifo member", imp("mat", d / "fifo.pth"), 2, "not a regular file"))
    link_member = tarfile.TarInfo("storages")
    link_member.type, link_member.linkname = tarfile.SYMTYPE, "/dev/stdin"
    _tar_with(d / "link.pth", link_member)
    add(Case("legacy tar with a link to stdin", imp("mat", d / "link.pth"), 2, "not a regular file"))
    plain = tarfile.TarInfo("readme.txt")
    plain.size = 5
    _tar_with(d / "plain.pth", plain, b"hello")
    add(Case("plain tar as .pth", imp("mat", d / "plain.pth"), 2, "not a torch checkpoint"))
    (d / "empty_release").mkdir()
    add(Case("import an empty folder", imp("maskgit", d / "empty_release"), 2, "empty folder"))
    add(Case("import a fifo", imp("mat", d / "fifo.png"), 2, "not a regular file"))
    add(
        Case(
            "import a damaged file into --out under a file",
            ("import", "mat", str(d / "lie0.safetensors"), "--out", str(d / "a_file" / "w")),
            2,
            "",
        )
    )
    (d / "cut.pkl").write_bytes(pickle.dumps({"G_ema": {"w": list(range(100))}})[:30])
    add(Case("truncated pickle", imp("mat", d / "cut.pkl"), 2, "cut.pkl"))
    for kind in range(8):
        (d / f"lie{kind}.safetensors").write_bytes(_lying_safetensors(kind))
        add(
            Case(
                f"lying safetensors header {kind}", imp("mat", d / f"lie{kind}.safetensors"), 2, "safetensors"
            )
        )
    return cases
