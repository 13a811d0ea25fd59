"""Project files, autosave and crash recovery."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from inpaint_studio.core import project as project_mod
from inpaint_studio.core.autosave import AutosaveStore
from inpaint_studio.core.document import MASK, Document
from inpaint_studio.core.project import ProjectError, load_project, save_project


def _rich_doc() -> Document:
    rng = np.random.default_rng(3)
    doc = Document.from_image(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))
    paint = doc.new_layer("Paint")
    with doc.edit(paint.id, "brush") as s:
        s.color_dab(20, 20, 12, 0.5, (10, 200, 30), opacity=0.7)
    with doc.edit(MASK, "mask") as s:
        s.mask_dab(40, 30, 15, 0.3)
    doc.set_layer_props(paint.id, opacity=0.6, name="My paint")
    doc.add_result_layer(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), doc.mask, "fill", {"seed": 7})
    doc.set_mask_style(color=(0, 128, 255), opacity=0.3)
    return doc


def test_save_and_reopen_gives_identical_pixels(tmp_path):
    doc = _rich_doc()
    path = save_project(doc, tmp_path / "p.isproj")
    back = load_project(path)
    assert [(ly.id, ly.name, ly.kind, ly.visible, ly.opacity) for ly in back.layers] == [
        (ly.id, ly.name, ly.kind, ly.visible, ly.opacity) for ly in doc.layers
    ]
    for a, b in zip(doc.layers, back.layers, strict=True):
        assert np.array_equal(a.pixels, b.pixels)
    assert back.layers[-1].meta == {"seed": 7}
    assert np.array_equal(back.mask, doc.mask)
    assert back.mask_style.color == (0, 128, 255) and back.mask_style.opacity == 0.3
    assert np.array_equal(back.composite(), doc.composite())
    assert back.active_layer_id == doc.active_layer_id and not back.modified


def test_damaged_projects_give_clear_errors(tmp_path):
    good = save_project(_rich_doc(), tmp_path / "good.isproj")
    (tmp_path / "junk.isproj").write_bytes(b"nope")
    with pytest.raises(ProjectError, match="not a project file"):
        load_project(tmp_path / "junk.isproj")
    with zipfile.ZipFile(good) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(members["manifest.json"])
    layer_file = manifest["layers"][0]["file"]

    def write(name: str, drop: str | None = None, manifest_override: dict | None = None) -> None:
        with zipfile.ZipFile(tmp_path / name, "w") as zf:
            for n, data in members.items():
                if n == drop:
                    continue
                if n == "manifest.json" and manifest_override is not None:
                    data = json.dumps(manifest_override).encode()
                zf.writestr(n, data)

    write("missing.isproj", drop=layer_file)
    with pytest.raises(ProjectError, match="missing"):
        load_project(tmp_path / "missing.isproj")
    write("newer.isproj", manifest_override={**manifest, "version": 99})
    with pytest.raises(ProjectError, match="newer"):
        load_project(tmp_path / "newer.isproj")
    write("nomanifest.isproj", drop="manifest.json")
    with pytest.raises(ProjectError, match="manifest"):
        load_project(tmp_path / "nomanifest.isproj")


def test_interrupted_save_keeps_previous_project(tmp_path, monkeypatch):
    doc = _rich_doc()
    path = save_project(doc, tmp_path / "p.isproj")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(project_mod, "encode_png", boom)
    with pytest.raises(OSError):
        save_project(doc, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.isproj"]


def test_autosave_recovery_after_crash(tmp_path, monkeypatch):
    store = AutosaveStore(tmp_path / "autosave")
    doc = _rich_doc()
    store.save(doc, title="holiday.jpg", source="/photos/holiday.jpg")
    assert store.recoverable() == []  # our own process is alive: nothing to recover
    assert AutosaveStore(tmp_path / "autosave").recoverable() == []  # held by a live owner (its flock)
    store.release_all()  # what the OS does when the app crashes: the lock goes, the files stay
    record = tmp_path / "autosave" / f"{doc.id}.json"
    info = json.loads(record.read_text())
    info["pid"] = os.getpid()  # the recorded PID now belongs to a live process (PID reuse)
    record.write_text(json.dumps(info))
    entries = store.recoverable()
    assert [e.document_id for e in entries] == [doc.id] and "holiday.jpg" in entries[0].describe()
    recovered = store.recover(entries[0])
    assert np.array_equal(recovered.composite(), doc.composite()) and recovered.modified
    store.discard(doc.id)
    assert store.recoverable() == [] and not any((tmp_path / "autosave").iterdir())
