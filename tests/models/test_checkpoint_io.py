"""Weights on disk: safetensors bundles, and pickles read without running any code."""

from __future__ import annotations

import collections
import os
import pickle

import pytest
import torch

from inpaint_studio.models.bundle import BundleError, list_bundles, load_bundle, read_config, save_bundle
from inpaint_studio.models.safe_pickle import Opaque, UnsafeCheckpointError, find_tensors, safe_load


def test_bundle_roundtrip_with_parts(tmp_path):
    state = {"w": torch.randn(3, 4), "b": torch.zeros(4, dtype=torch.float16)}
    save_bundle(tmp_path / "one", "inpnet", {"depth": 2}, state, extra={"trained_steps": 10})
    b = load_bundle(tmp_path / "one", engine="inpnet")
    assert b.arch == {"depth": 2} and b.extra == {"trained_steps": 10}
    assert torch.equal(b.state_dict["w"], state["w"]) and b.state_dict["b"].dtype == torch.float16
    save_bundle(
        tmp_path / "two",
        "maskgit",
        {"v": 1},
        {"vqgan": {"a": torch.ones(1)}, "transformer": {"b": torch.ones(2)}},
    )
    two = load_bundle(tmp_path / "two")
    assert set(two.parts) == {"vqgan", "transformer"}
    with pytest.raises(BundleError, match="not 'mat'"):
        load_bundle(tmp_path / "two", engine="mat")
    (tmp_path / "two" / "vqgan.safetensors").unlink()
    with pytest.raises(BundleError, match="incomplete"):
        load_bundle(tmp_path / "two")
    assert list_bundles(tmp_path)[0].name in {"one", "two"} and len(list_bundles(tmp_path)) == 2
    with pytest.raises(BundleError, match="no config.json"):
        read_config(tmp_path)


def test_safe_load_reads_torch_zip_legacy_and_raw_pickles(tmp_path):
    sd = collections.OrderedDict(a=torch.randn(3), b=torch.nn.Parameter(torch.ones(2, 2)))
    torch.save({"model": sd, "epoch": 3}, tmp_path / "zip.pth")
    torch.save(sd, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with open(tmp_path / "raw.pkl", "wb") as f:
        pickle.dump({"G_ema": {"w": torch.arange(4.0).half()}}, f)
    assert torch.equal(safe_load(tmp_path / "zip.pth")["model"]["a"], sd["a"])
    assert torch.equal(safe_load(tmp_path / "legacy.pt")["b"], sd["b"])
    assert safe_load(tmp_path / "raw.pkl")["G_ema"]["w"].dtype == torch.float16


class _Persistent:
    """Stands in for a class the checkpoint's own source would define (StyleGAN persistence)."""

    def __init__(self):
        self.weights = {"conv.weight": torch.ones(2, 2)}


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_unknown_classes_become_inert_records(tmp_path):
    with open(tmp_path / "p.pkl", "wb") as f:
        pickle.dump({"G_ema": _Persistent()}, f)
    obj = safe_load(tmp_path / "p.pkl")["G_ema"]
    assert isinstance(obj, Opaque) and obj.opaque_name.endswith("_Persistent")
    assert "state.weights.conv.weight" in find_tensors(obj)


@pytest.mark.parametrize("fmt", ["pkl", "zip"])
def test_code_in_a_pickle_is_refused_not_run(tmp_path, fmt):
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil.{fmt}"
    if fmt == "pkl":
        with open(path, "wb") as f:
            pickle.dump({"x": _Evil(marker)}, f)
    else:
        torch.save({"x": _Evil(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match="could run code"):
        safe_load(path)
    assert not marker.exists()


def test_a_bundle_refers_to_a_base_model_by_path_without_copying_it(tmp_path):
    import torch

    from inpaint_studio.models.bundle import (
        BundleError,
        base_model_of,
        base_model_reference,
        save_bundle,
    )

    base = tmp_path / "sd15-inpainting"
    (base / "unet").mkdir(parents=True)
    (base / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"x" * 4096)
    ref = base_model_reference(base, "sd15-inpainting")
    folder = save_bundle(tmp_path / "asuka", "asuka", {}, {"w": torch.zeros(2)}, extra={"base_model": ref})
    assert base_model_of(folder) == (base.resolve(), "sd15-inpainting")
    assert sum(f.stat().st_size for f in folder.iterdir()) < 4096, "the base model is not copied in"
    plain = save_bundle(tmp_path / "plain", "mat", {}, {"w": torch.zeros(2)})
    assert base_model_of(plain) is None
    (base / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    (base / "unet").rmdir()
    base.rmdir()
    with pytest.raises(BundleError, match="not there any more"):
        base_model_of(folder)
