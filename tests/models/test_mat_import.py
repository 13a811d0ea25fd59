"""Importing MAT checkpoints: the official StyleGAN-style .pkl, IOPaint's .pth, safetensors.

The official-format pickle is built here from plain tensors: each network module becomes a
"persistent object" pickled as a call to ``torch_utils.persistence._reconstruct_persistent_obj``
with a meta dict (source text, class name, and the module's ``__dict__`` state), torch containers
stay plain ``torch.nn`` objects, as in the real files. The fake persistence module exists only
while pickling; the importer must get the weights out without it and without running anything.
"""

from __future__ import annotations

import collections
import os
import pickle
import sys
import types
from pathlib import Path

import pytest
import torch

from inpaint_studio.engines.base import EngineError
from inpaint_studio.engines.mat import MatEngine
from inpaint_studio.models.bundle import load_bundle, read_config
from inpaint_studio.models.mat import MatConfig, MatGenerator
from inpaint_studio.models.mat.checkpoint import (
    CheckpointError,
    conform,
    load_generator,
    read_checkpoint,
    read_state_dict,
)
from inpaint_studio.models.safe_pickle import UnsafeCheckpointError

CONFIG = MatConfig.tiny(img_resolution=128)


def _reconstruct_persistent_obj(meta):  # stands in for StyleGAN's loader while pickling only
    raise AssertionError("the importer must never call the persistence loader")


class _EasyDict(dict):
    pass


class _Persistent:
    """Pickles like a StyleGAN persistent network module."""

    def __init__(self, class_name: str, state: dict, module_src: str) -> None:
        self.meta = {
            "type": "class",
            "version": 6,
            "module_src": module_src,
            "class_name": class_name,
            "state": state,
        }

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


def _as_pickled_tree(module: torch.nn.Module, module_src: str) -> object:
    """Mirror ``module`` the way the official pickle stores it (persistent records + torch containers)."""
    children = collections.OrderedDict(
        (n, _as_pickled_tree(c, module_src)) for n, c in module.named_children()
    )
    params = collections.OrderedDict(
        (n, None if p is None else torch.nn.Parameter(p.detach().clone()))
        for n, p in module._parameters.items()
    )
    buffers = collections.OrderedDict(
        (n, None if b is None else b.detach().clone()) for n, b in module._buffers.items()
    )
    if isinstance(module, (torch.nn.ModuleList, torch.nn.Sequential, torch.nn.AdaptiveAvgPool2d)):
        plain = type(module).__new__(type(module))
        plain.__dict__.update(module.__dict__)
        plain.__dict__["_modules"] = children
        return plain
    state = {
        "training": False,
        "_parameters": params,
        "_buffers": buffers,
        "_non_persistent_buffers_set": set(),
        "_modules": children,
        "_init_args": (),
        "_init_kwargs": _EasyDict(z_dim=CONFIG.z_dim, img_resolution=CONFIG.img_resolution),
    }
    return _Persistent(f"networks.mat.{type(module).__name__}", state, module_src)


@pytest.fixture
def fake_stylegan_modules():
    """Register torch_utils.persistence / dnnlib.util only while the test pickles."""
    persistence = types.ModuleType("torch_utils.persistence")
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    dnnlib_util = types.ModuleType("dnnlib.util")
    dnnlib_util.EasyDict = _EasyDict
    names = {
        "torch_utils": types.ModuleType("torch_utils"),
        "torch_utils.persistence": persistence,
        "dnnlib": types.ModuleType("dnnlib"),
        "dnnlib.util": dnnlib_util,
    }
    saved = {
        (_reconstruct_persistent_obj, "__module__"): _reconstruct_persistent_obj.__module__,
        (_EasyDict, "__module__"): _EasyDict.__module__,
        (_EasyDict, "__qualname__"): _EasyDict.__qualname__,
    }
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _EasyDict.__module__ = "dnnlib.util"
    _EasyDict.__qualname__ = "EasyDict"
    sys.modules.update(names)
    yield
    for name in names:
        sys.modules.pop(name, None)
    for (obj, attr), value in saved.items():
        setattr(obj, attr, value)


def write_official_pkl(
    path: Path, model: MatGenerator, module_src: str = "import os\n", critic: torch.nn.Module | None = None
) -> None:
    tree = _as_pickled_tree(model, module_src)
    data = {
        "training_set_kwargs": {"resolution": CONFIG.img_resolution},
        "val_set_kwargs": None,
        "G": tree,
        "D": None if critic is None else _as_pickled_tree(critic, module_src),
        "G_ema": tree,
        "augment_pipe": None,
    }
    with path.open("wb") as f:
        pickle.dump(data, f, protocol=3)


def same_architecture(a: MatConfig, b: MatConfig) -> bool:
    with torch.device("meta"):
        shapes_a = {k: v.shape for k, v in MatGenerator(a).state_dict().items()}
        shapes_b = {k: v.shape for k, v in MatGenerator(b).state_dict().items()}
    return shapes_a == shapes_b and a.stage1_heads == b.stage1_heads and a.use_noise == b.use_noise


@pytest.fixture
def tiny_model() -> MatGenerator:
    torch.manual_seed(0)
    model = MatGenerator(CONFIG)
    with torch.no_grad():
        model.mapping.w_avg.normal_()
    return model


def test_official_pkl_imports_weights_without_running_its_code(
    tmp_path, tiny_model, fake_stylegan_modules
) -> None:
    marker = tmp_path / "ran"
    source = tmp_path / "Places_512_FullData.pkl"
    write_official_pkl(source, tiny_model, module_src=f"open({str(marker)!r}, 'w').close()\n")
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        sys.modules.pop(name, None)  # the importer must not need them

    dest = MatEngine.import_weights(source, tmp_path / "store" / "places")
    assert not marker.exists()
    config = read_config(dest)
    assert config["engine"] == "mat" and config["source_format"] == "official-pkl"
    assert same_architecture(MatConfig.from_dict(config["arch"]), CONFIG)
    stored = load_bundle(dest, engine="mat").state_dict
    expected = tiny_model.state_dict()
    assert stored.keys() == expected.keys()
    assert all(torch.equal(stored[k], expected[k]) for k in expected)
    loaded = load_generator(dest)
    assert loaded.config.use_noise and not loaded.training


def test_official_pkl_also_gives_its_discriminator_for_fine_tuning(
    tmp_path, tiny_model, fake_stylegan_modules
) -> None:
    from inpaint_studio.models.mat import DiscriminatorConfig
    from inpaint_studio.models.mat.discriminator import MatDiscriminator

    critic = MatDiscriminator(DiscriminatorConfig(img_resolution=128, channel_base=2048, channel_max=16))
    source = tmp_path / "CelebA-HQ_512.pkl"
    write_official_pkl(source, tiny_model, critic=critic)
    generator, fmt, critic_state = read_checkpoint(source)
    assert fmt == "official-pkl" and generator.keys() == tiny_model.state_dict().keys()
    expected = critic.state_dict()
    assert critic_state is not None and critic_state.keys() == expected.keys()
    assert all(torch.equal(critic_state[k], expected[k]) for k in expected)
    plain = tmp_path / "G.pth"
    torch.save(tiny_model.state_dict(), plain)
    assert read_checkpoint(plain)[1:] == ("state-dict", None)  # only the .pkl files hold a critic


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, tiny_model, fake_stylegan_modules) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    tree = _as_pickled_tree(tiny_model, "")
    tree.meta["state"]["_buffers"]["payload"] = Evil()
    source = tmp_path / "evil.pkl"
    with source.open("wb") as f:
        pickle.dump({"G_ema": tree}, f, protocol=3)
    with pytest.raises(UnsafeCheckpointError, match="could run code"):
        read_state_dict(source)
    with pytest.raises(UnsafeCheckpointError):
        MatEngine.import_weights(source, tmp_path / "dest")
    assert not marker.exists()
    assert not (tmp_path / "dest").exists()


def test_builtins_exec_in_a_pickle_is_refused(tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Exec:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    source = tmp_path / "evil.pth"
    torch.save({"G_ema": Exec()}, source)
    with pytest.raises(UnsafeCheckpointError):
        read_state_dict(source)
    assert not marker.exists()


def test_iopaint_pth_without_noise_entries(tmp_path, tiny_model) -> None:
    state = {k: v for k, v in tiny_model.state_dict().items() if "noise_" not in k}
    source = tmp_path / "Places_512_FullData_G.pth"
    torch.save(state, source)
    dest = MatEngine.import_weights(source, tmp_path / "iopaint")
    config = read_config(dest)
    assert config["source_format"] == "state-dict" and config["noise_layers"] is False
    model = load_generator(dest)
    assert not model.config.use_noise
    assert torch.equal(model.state_dict()["mapping.w_avg"], tiny_model.mapping.w_avg)


def test_safetensors_fp16_without_fixed_buffers(tmp_path, tiny_model) -> None:
    from safetensors.torch import save_file

    state = {
        k: v.half().contiguous()
        for k, v in tiny_model.state_dict().items()
        if not k.endswith(("resample_filter", "attn_mask"))
    }
    source = tmp_path / "MAT_Places512_G_fp16.safetensors"
    save_file(state, str(source))
    model = load_generator(MatEngine.import_weights(source, tmp_path / "st"))
    reference = tiny_model.state_dict()
    assert torch.equal(
        model.state_dict()["synthesis.first_stage.tran.0.blocks.1.attn_mask"],
        reference["synthesis.first_stage.tran.0.blocks.1.attn_mask"],
    )
    torch.testing.assert_close(
        model.state_dict()["mapping.fc0.weight"], reference["mapping.fc0.weight"], rtol=1e-3, atol=1e-2
    )


def test_incomplete_or_foreign_state_dicts_are_rejected(tmp_path, tiny_model) -> None:
    state = tiny_model.state_dict()
    with pytest.raises(CheckpointError, match="missing"):
        conform({k: v for k, v in state.items() if not k.startswith("synthesis.to_style.fc")})
    with pytest.raises(CheckpointError, match="unexpected"):
        conform({**state, "synthesis.extra.weight": torch.zeros(1)})
    partial_noise = {k: v for k, v in state.items() if not k.endswith("Dec_32x32.conv0.noise_strength")}
    with pytest.raises(CheckpointError, match="incomplete"):
        conform(partial_noise)
    source = tmp_path / "other.pth"
    torch.save({"model": {"encoder.weight": torch.zeros(2)}}, source)
    with pytest.raises(EngineError, match="cannot import other.pth as MAT weights"):
        MatEngine.import_weights(source, tmp_path / "x")
