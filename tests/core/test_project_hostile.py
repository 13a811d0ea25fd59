"""Malformed projects: every one is a single ProjectError with a reason, decided before big work.

Crafted cases from the hostile-input review plus a property-based test (hypothesis) over manifest
JSON and byte mutations of a real project file.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inpaint_studio.core.document import Document
from inpaint_studio.core.imageio import encode_png
from inpaint_studio.core.layers import Layer
from inpaint_studio.core.project import MAX_LAYERS, ProjectError, load_project, save_project


def _doc() -> Document:
    doc = Document(16, 12)
    rgba = np.zeros((12, 16, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    doc.add_layer(Layer("photo", "image", rgba, id="photo1"))
    doc.mask[2:5, 3:9] = 255
    return doc


def _manifest(tmp_path: Path) -> dict:
    save_project(_doc(), tmp_path / "good.isproj")
    with zipfile.ZipFile(tmp_path / "good.isproj") as zf:
        return json.loads(zf.read("manifest.json"))


def _write(path: Path, manifest: dict | str | bytes, extra: dict[str, bytes] | None = None) -> Path:
    doc = _doc()
    with zipfile.ZipFile(path, "w") as zf:
        body = manifest if isinstance(manifest, (str, bytes)) else json.dumps(manifest)
        zf.writestr("manifest.json", body)
        zf.writestr("mask.png", encode_png(doc.mask))
        for ly in doc.layers:
            zf.writestr(f"layers/{ly.id}.png", encode_png(ly.pixels))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def _refused(path: Path, says: str = "") -> str:
    with pytest.raises(ProjectError) as info:
        load_project(path)
    text = str(info.value)
    assert "\n" not in text and "()" not in text and "object at 0x" not in text, text
    assert says in text, text
    return text


def test_crafted_projects_are_refused_in_one_line(tmp_path):
    good = _manifest(tmp_path)
    layer_file = good["layers"][0]["file"]

    def variant(**changes):
        m = json.loads(json.dumps(good))
        m.update(changes)
        return m

    _refused(_write(tmp_path / "list.isproj", "[1, 2, 3]"), "not an inpaint-studio project")
    _refused(_write(tmp_path / "deep.isproj", "[" * 100_000 + "]" * 100_000), "")
    deep_meta = variant(meta=json.loads("[" * 200 + "]" * 200))
    _refused(_write(tmp_path / "deepmeta.isproj", deep_meta), "nests too deeply")
    bad_colour = variant(mask={**good["mask"], "color": "abc"})
    _refused(_write(tmp_path / "colour.isproj", bad_colour), "mask colour 'abc'")
    _refused(_write(tmp_path / "width.isproj", variant(width="abc")), "width")
    _refused(_write(tmp_path / "giant.isproj", variant(width=10**6, height=10**6)), "canvas")
    many = variant(layers=[{**good["layers"][0], "file": f"l{i}.png"} for i in range(MAX_LAYERS + 1)])
    _refused(_write(tmp_path / "many.isproj", many), f"more than the {MAX_LAYERS} allowed")
    dup = variant(layers=[good["layers"][0]] * 3)
    _refused(_write(tmp_path / "dup.isproj", dup), "share the file")
    _refused(
        _write(tmp_path / "opacity.isproj", variant(mask={**good["mask"], "opacity": float("nan")})),
        "opacity",
    )
    _refused(_write(tmp_path / "layers.isproj", variant(layers={"a": 1})), "not a list")
    _refused(_write(tmp_path / "mask_meta.isproj", variant(mask=[1])), "mask is not an object")
    # a layer that is not a PNG, a 16-bit mask (the dtype was the problem), a huge declared entry
    not_png = _write(tmp_path / "notpng.isproj", good)
    _replace(not_png, layer_file, b"definitely not a png")
    _refused(not_png, "not a readable PNG")
    wide = _write(tmp_path / "mask16.isproj", good)
    _replace(wide, "mask.png", encode_png(np.zeros((12, 16), np.uint16)))
    _refused(wide, "16x12 I;16 image, expected 16x12 L")
    bomb = _write(tmp_path / "bomb.isproj", good)
    _replace(bomb, layer_file, b"\0" * (64 << 20), compress=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20
    _refused(bomb, "declares 67,108,864 bytes")


def _replace(path: Path, name: str, data: bytes, compress: int = zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path) as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    entries[name] = data
    with zipfile.ZipFile(path, "w") as zf:
        for n, d in entries.items():
            zf.writestr(n, d, compress_type=compress if n == name else zipfile.ZIP_STORED)


def test_encrypted_member_and_unknown_compression_are_project_errors(tmp_path):
    save_project(_doc(), tmp_path / "p.isproj")
    data = bytearray((tmp_path / "p.isproj").read_bytes())
    central = data.rfind(b"PK\x01\x02", 0, len(data))
    first = data.find(b"PK\x01\x02")
    enc = bytearray(data)
    enc[first + 8] |= 0x01  # general-purpose flag: encrypted
    (tmp_path / "enc.isproj").write_bytes(bytes(enc))
    _refused(tmp_path / "enc.isproj")
    odd = bytearray(data)
    odd[first + 10 : first + 12] = (99).to_bytes(2, "little")  # compression method 99
    (tmp_path / "odd.isproj").write_bytes(bytes(odd))
    _refused(tmp_path / "odd.isproj")
    assert central > 0


def test_folder_and_fifo_are_not_projects(tmp_path):
    import os

    (tmp_path / "dir.isproj").mkdir()
    _refused(tmp_path / "dir.isproj", "is a folder")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.isproj")
        _refused(tmp_path / "fifo.isproj", "not a regular file")


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_FIELDS = ["format", "version", "width", "height", "document_id", "active_layer", "meta", "mask", "layers"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(_FIELDS + ["mask.color", "mask.file", "layers.0", "layers.0.file"]), value=_json)
def test_any_manifest_value_loads_or_is_one_project_error(tmp_path, field, value):
    manifest = _manifest(tmp_path)
    target, key = manifest, field
    if "." in field:
        head, rest = field.split(".", 1)
        target = manifest[head]
        if rest.startswith("0"):
            target, key = target, 0
            if rest != "0":
                target, key = target[0], rest.split(".", 1)[1]
        else:
            key = rest
    target[key] = value
    path = _write(tmp_path / "h.isproj", manifest)
    try:
        doc = load_project(path)
    except ProjectError as err:
        assert "\n" not in str(err)
    else:
        assert doc.composite().shape == (doc.height, doc.width, 4) or doc.composite().ndim == 3


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_byte_mutation_loads_or_is_one_project_error(tmp_path, data):
    save_project(_doc(), tmp_path / "m.isproj")
    raw = bytearray((tmp_path / "m.isproj").read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    (tmp_path / "m.isproj").write_bytes(bytes(raw))
    try:
        load_project(tmp_path / "m.isproj")
    except ProjectError as err:
        assert "\n" not in str(err)
