"""The shared import step: engines' importers, model parts, and the sd15 placement in the store."""

from __future__ import annotations

import json
import os

import pytest

from inpaint_studio.hub.install import NoImporter
from inpaint_studio.model_import import import_checkpoint, import_targets


def test_targets_cover_every_catalogue_import_step():
    from inpaint_studio.hub.catalogue import builtin

    targets = set(import_targets())
    assert {e.import_target for e in builtin()} <= targets


def test_sd15_checkpoint_is_linked_into_a_store_folder_the_engine_reads(tmp_path):
    from inpaint_studio.models.diffusion.source import model_source

    src = tmp_path / "downloads" / "sd-v1-5-inpainting.ckpt"
    src.parent.mkdir()
    src.write_bytes(b"\0" * 1000)  # the placement never opens the checkpoint
    dest = tmp_path / "models" / "sd15" / "sd15-inpainting"
    written = import_checkpoint("sd15", src, dest)
    assert json.loads((written / "config.json").read_text())["base_model"] == "sd-v1-5-inpainting.ckpt"
    placed = written / "sd-v1-5-inpainting.ckpt"
    assert placed.read_bytes() == src.read_bytes()
    assert os.stat(placed).st_ino == os.stat(src).st_ino  # a hard link: no second copy
    found = model_source(written)
    assert found.kind == "single_file" and found.path == placed.resolve()


def test_engines_without_an_importer_and_unknown_targets(tmp_path):
    (tmp_path / "x.pkl").write_bytes(b"x")
    with pytest.raises(NoImporter):
        import_checkpoint("classical", tmp_path / "x.pkl", tmp_path / "out")
    with pytest.raises(ValueError, match="unknown import target"):
        import_checkpoint("nope", tmp_path / "x.pkl", tmp_path / "out")
