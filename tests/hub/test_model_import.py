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


def test_sd15_targets_take_their_own_kind_of_model(tmp_path):
    """sd15 wants an inpainting model, sd15-base (MTA's base) a text-to-image one: a safetensors header
    and a diffusers folder say which, so the wrong one is refused at import, in one line."""
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    import sd_tiny
    from safetensors.torch import save_file

    from inpaint_studio.hub.install import ImportFailed
    from inpaint_studio.models.diffusion.source import model_source

    files = {}
    for channels in (4, 9):
        state = {k: v.contiguous() for k, v in sd_tiny.to_ldm(sd_tiny.tiny_parts(channels)).items()}
        files[channels] = tmp_path / f"sd-{channels}.safetensors"
        save_file(state, str(files[channels]))
    base = import_checkpoint("sd15-base", files[4], tmp_path / "models" / "sd15-base" / "a")
    assert json.loads((base / "config.json").read_text())["engine"] == "sd15-base"
    assert model_source(base).path == (base / "sd-4.safetensors").resolve()
    with pytest.raises(ImportFailed, match="is an inpainting model .*, not a text-to-image model"):
        import_checkpoint("sd15-base", files[9], tmp_path / "b")
    with pytest.raises(ImportFailed, match="is a text-to-image model .*, not an inpainting model"):
        import_checkpoint("sd15", files[4], tmp_path / "c")
    folder = sd_tiny.save_folder(sd_tiny.tiny_parts(9), tmp_path / "inpainting-folder")
    with pytest.raises(ImportFailed, match="Stable Diffusion 1.5 base weights: it is an inpainting"):
        import_checkpoint("sd15-base", folder, tmp_path / "d")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ImportFailed, match="not a readable safetensors file"):
        import_checkpoint("sd15-base", junk, tmp_path / "e")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_engines_without_an_importer_and_unknown_targets(tmp_path):
    (tmp_path / "x.pkl").write_bytes(b"x")
    with pytest.raises(NoImporter):
        import_checkpoint("classical", tmp_path / "x.pkl", tmp_path / "out")
    with pytest.raises(ValueError, match="unknown import target"):
        import_checkpoint("nope", tmp_path / "x.pkl", tmp_path / "out")


# ------------------------------------------------------------------ weights folders inpaint-studio wrote
def _export(run, engine="mat", base=None):
    """A trainer-style export ``RUN/weights`` with two parts (and the store's checksum cache beside them)."""
    torch = pytest.importorskip("torch")
    from inpaint_studio.models.bundle import save_bundle

    extra = {"trained": {"steps": 3}}
    if base is not None:
        extra["base_model"] = {"path": base, "kind": "sd15"}
    parts = {"model": {"w": torch.arange(6.0)}, "ema": {"w": torch.ones(2)}}
    folder = save_bundle(run / "weights", engine, {"width": 2}, parts, extra)
    (folder / ".checksums.json").write_text("{}")
    return folder


def test_a_trained_export_is_checked_and_copied_under_its_run_name(tmp_path):
    from inpaint_studio.model_import import destination
    from inpaint_studio.models.bundle import load_bundle

    (tmp_path / "base").mkdir()
    export = _export(tmp_path / "shop-run", base="../../base")  # relative: to the export folder
    dest = destination("mat", export)
    assert dest.parts[-3:] == ("models", "mat", "shop-run")
    written = import_checkpoint("mat", export, dest)
    assert written == dest and load_bundle(written, engine="mat").parts["ema"]["w"].tolist() == [1.0, 1.0]
    assert (written / "model.safetensors").read_bytes() == (export / "model.safetensors").read_bytes()
    assert not (written / ".checksums.json").exists()  # the cache is the store's to rebuild
    config = json.loads((written / "config.json").read_text())
    assert config["base_model"]["path"] == str((tmp_path / "base").resolve())  # still found from the copy
    assert config["trained"] == {"steps": 3}
    assert not any(p.name.startswith(".") for p in dest.parent.iterdir())  # no half-copy left beside it


def test_a_weights_folder_the_store_cannot_take_as_it_is_is_refused_and_nothing_is_replaced(tmp_path):
    from inpaint_studio.model_import import WeightsFolderRefused, destination

    export = _export(tmp_path / "run")
    with pytest.raises(WeightsFolderRefused, match="weights for mat, not mta.*models import mat"):
        import_checkpoint("mta", export, tmp_path / "out")
    taken = tmp_path / "store" / "mat" / "run"
    taken.mkdir(parents=True)
    (taken / "config.json").write_text("mine")
    with pytest.raises(WeightsFolderRefused, match="already holds weights.*--name"):
        import_checkpoint("mat", export, taken)
    assert (taken / "config.json").read_text() == "mine"
    data = (export / "ema.safetensors").read_bytes()
    (export / "ema.safetensors").write_bytes(data[:-4])  # a copy cut short
    with pytest.raises(WeightsFolderRefused, match="ema.safetensors is damaged"):
        import_checkpoint("mat", export, tmp_path / "out")
    (export / "ema.safetensors").unlink()
    with pytest.raises(WeightsFolderRefused, match="incomplete: ema.safetensors missing"):
        import_checkpoint("mat", export, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert isinstance(WeightsFolderRefused("x"), ValueError)  # the CLI's exit 2: the input's fault
    with pytest.raises(ValueError, match="not a valid name"):
        destination("mat", export, "../elsewhere")


def test_an_engine_part_goes_under_its_own_name_and_generic_files_take_their_folder_name(tmp_path):
    from inpaint_studio.model_import import destination, store_name

    part = _export(tmp_path / "decoder-run", engine="asuka-decoder")
    assert destination("asuka", part).parts[-2:] == ("asuka-decoder", "decoder-run")
    assert import_checkpoint("asuka", part, destination("asuka", part)).is_dir()
    ckpt = tmp_path / "segmentation_mask_brushnet_ckpt"
    ckpt.mkdir()
    (ckpt / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    (ckpt / "config.json").write_text(json.dumps({"_class_name": "BrushNetModel"}))  # a public folder
    assert store_name(ckpt / "diffusion_pytorch_model.safetensors") == "segmentation_mask_brushnet_ckpt"
    assert store_name(ckpt) == "segmentation_mask_brushnet_ckpt"
    assert store_name(tmp_path / "big-lama.pt") == "big-lama"
    assert destination("mta", ckpt).parts[-2:] == ("mta", "segmentation_mask_brushnet_ckpt")
