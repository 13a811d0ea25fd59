"""BrushNet golden parity: the fork's residuals and its injected UNet output (../shared/reference/brushnet).

The reference was made with TencentARC's fork; here the branch is ours and the UNet is stock
diffusers with forward hooks. Tolerance: the folder's README (atol = rtol = 1e-5; the official run
differs from itself by up to 1.5e-6 across thread counts).
"""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("diffusers")

from inpaint_studio.models.diffusion.brushnet import BrushBranch  # noqa: E402
from inpaint_studio.models.diffusion.brushnet_hooks import inject_residuals  # noqa: E402
from inpaint_studio.models.diffusion.brushnet_import import (  # noqa: E402
    FORK_PREFIXES,
    branch_from_brushnet,
    config_from_fork,
    config_from_shapes,
    fork_key_to_ours,
    import_brushnet,
    load_branch,
    our_key_to_fork,
)

TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def ref(reference_dir):
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    folder = reference_dir("brushnet")
    config = json.loads((folder / "config.json").read_text())
    unet = UNet2DConditionModel(**config["unet_config_constructor"])
    unet.load_state_dict(load_file(folder / "tiny_unet_weights.safetensors"), strict=True)
    return {
        "folder": folder,
        "config": config,
        "unet": unet.eval(),
        "fork": load_file(folder / "brushnet_weights.safetensors"),
        "golden": load_file(folder / "brushnet_golden.safetensors"),
    }


def _branch_folder(ref, tmp_path):
    """A released-style BrushNet folder: the fork's config.json + diffusion_pytorch_model.safetensors."""
    folder = tmp_path / "brushnet_ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(ref["config"]["brushnet_config_full"]))
    (folder / "diffusion_pytorch_model.safetensors").symlink_to(
        ref["folder"] / "brushnet_weights.safetensors"
    )
    return folder


def _run(branch, ref):
    g = ref["golden"]
    with torch.no_grad():
        out = branch(g["noisy_latent"], g["timestep"], g["masked_image_latent"], g["mask_keep"])
        with inject_residuals(ref["unet"], out.residuals):
            injected = ref["unet"](
                g["noisy_latent"], g["timestep"], encoder_hidden_states=g["encoder_hidden_states"]
            )
    return out.residuals, injected.sample


def _golden_residuals(g):
    down = [g[f"brushnet_down_{i:02d}"] for i in range(6)]
    up = [g[f"brushnet_up_{i:02d}"] for i in range(7)]
    return [*down, g["brushnet_mid"], *up]


def test_key_map_covers_the_fork_checkpoint(ref):
    fork = ref["fork"]
    config = config_from_fork(ref["config"]["brushnet_config_full"])
    assert config == config_from_shapes(fork)
    ours = BrushBranch(config).state_dict()
    mapped = {fork_key_to_ours(k): k for k in fork}
    assert len(mapped) == len(fork)
    assert set(mapped) == set(ours)
    for our_key, fork_key in mapped.items():
        assert ours[our_key].shape == fork[fork_key].shape, our_key
        assert our_key_to_fork(our_key) == fork_key
    assert any(k.startswith(tuple(FORK_PREFIXES)) for k in fork)


def test_residuals_and_injected_unet_match_the_fork(ref, tmp_path):
    branch = branch_from_brushnet(_branch_folder(ref, tmp_path))
    residuals, injected = _run(branch, ref)
    got = residuals.all()
    want = _golden_residuals(ref["golden"])
    assert len(got) == len(want) == 14
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.shape == b.shape
        assert torch.allclose(a, b, **TOL), f"residual {i}: max error {(a - b).abs().max().item():.3g}"
    target = ref["golden"]["unet_out_brushnet"]
    assert torch.allclose(injected, target, **TOL), (
        f"injected UNet: {(injected - target).abs().max().item():.3g}"
    )


def test_stock_unet_matches_the_fork_without_residuals_and_hooks_are_gone_after(ref, tmp_path):
    g = ref["golden"]
    branch = branch_from_brushnet(_branch_folder(ref, tmp_path))
    _run(branch, ref)  # installs and removes the hooks
    with torch.no_grad():
        plain = ref["unet"](
            g["noisy_latent"], g["timestep"], encoder_hidden_states=g["encoder_hidden_states"]
        ).sample
    assert torch.allclose(plain, g["unet_out_plain"], **TOL)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in ref["unet"].modules())


def test_from_unet_reproduces_the_forks_initialisation(ref):
    """Every tensor the README marks as a from_unet copy is bit-equal; the re-drawn parts start at zero."""
    branch = BrushBranch.from_unet(ref["unet"])
    ours = branch.state_dict()
    for fork_key, value in ref["fork"].items():
        mine = ours[fork_key_to_ours(fork_key)]
        if fork_key.startswith(("brushnet_down_blocks.", "brushnet_mid_block.", "brushnet_up_blocks.")):
            assert not mine.any(), fork_key
        elif fork_key == "conv_in_condition.weight":
            assert torch.equal(mine[:, :8], value[:, :8])
            assert not mine[:, 8].any()
        else:
            assert torch.equal(mine, value), fork_key


def test_single_file_bin_and_bundle_round_trip(ref, tmp_path):
    fork_file = ref["folder"] / "brushnet_weights.safetensors"
    want = _run(branch_from_brushnet(fork_file), ref)[1]  # a lone file: layout read off the shapes
    assert torch.allclose(want, ref["golden"]["unet_out_brushnet"], **TOL)

    bin_folder = tmp_path / "bin_ckpt"
    bin_folder.mkdir()
    torch.save(ref["fork"], bin_folder / "diffusion_pytorch_model.bin")
    assert torch.equal(_run(branch_from_brushnet(bin_folder), ref)[1], want)

    bundle = import_brushnet(_branch_folder(ref, tmp_path), tmp_path / "store" / "brushnet")
    assert torch.equal(_run(load_branch(bundle), ref)[1], want)
