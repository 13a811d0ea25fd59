"""MaskGIT golden tests: valeoai v1.0 logits and the official decoders' tokens-per-step tables."""

from __future__ import annotations

import json

import pytest
import torch

from inpaint_studio.models.maskgit import (
    MaskGitConfig,
    MaskGitTransformer,
    iterative_decode,
    jax_masked_counts,
    make_generators,
    valeoai_reveal_counts,
)
from inpaint_studio.models.maskgit.importer import convert_valeoai_state, read_valeoai_checkpoint


@pytest.fixture(scope="module")
def golden(reference_dir):
    from safetensors.torch import load_file

    ref = reference_dir("maskgit")
    info = json.loads((ref / "config.json").read_text())
    weights = load_file(str(ref / "maskgit_small_weights.safetensors"))
    config, state = convert_valeoai_state(weights, info["config"]["codebook_size"], info["config"]["heads"])
    model = MaskGitTransformer(config).eval()
    model.load_state_dict(state, strict=True)
    return {
        "ref": ref,
        "info": info,
        "weights": weights,
        "model": model,
        "tensors": load_file(str(ref / "maskgit_small_golden.safetensors")),
        "schedules": json.loads((ref / "schedules.json").read_text()),
    }


def test_config_inferred_from_valeoai_weights(golden):
    c, cfg = golden["model"].config, golden["info"]["config"]
    assert (c.hidden_dim, c.depth, c.mlp_dim, c.codebook_size, c.num_classes) == (
        cfg["hidden_dim"],
        cfg["depth"],
        cfg["mlp_dim"],
        cfg["codebook_size"],
        cfg["nclass"],
    )
    assert c.grid_size == cfg["f_factor"] and c.seq_len == 17 and c.vocab_size == 140
    assert c.mask_id == 128 and c.no_class_id == 139


@pytest.mark.parametrize("key, conditional", [("logits", False), ("logits_all_conditional", True)])
def test_logits_match_valeoai(golden, key, conditional):
    g, model = golden["tensors"], golden["model"]
    drop = torch.zeros(2, dtype=torch.bool) if conditional else g["drop_label"].bool()
    class_ids = torch.where(drop, -1, g["labels"])
    with torch.no_grad():
        logits = model.forward_all(g["codes_in"], class_ids)[:, :16, :129]
    torch.testing.assert_close(logits, g[key], atol=1e-4, rtol=1e-5)
    with torch.no_grad():
        codebook_logits = model(g["codes_in"], class_ids)
    torch.testing.assert_close(codebook_logits, g[key][..., :128], atol=1e-4, rtol=1e-5)


def test_mask_token_layout_in_golden_inputs(golden):
    g, model = golden["tensors"], golden["model"]
    assert torch.equal(g["codes_in"] == model.config.mask_id, g["token_mask"].bool())


def test_released_256_key_layout(golden):
    """The released 256 px model: every key maps, the shapes fit, 174,160,874 parameters."""
    info = golden["info"]
    shapes = dict(info["released_256_keys"])
    for i in range(1, info["released_256_config"]["depth"]):  # the list holds layer 0 only
        shapes.update(
            {
                k.replace("layers.0.", f"layers.{i}."): v
                for k, v in info["released_256_keys"].items()
                if k.startswith("transformer.layers.0.")
            }
        )
    fake = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    config, state = convert_valeoai_state(fake, codebook_size=1024, heads=16)
    assert config.num_classes == 1000 and config.grid_size == 16 and config.depth == 24
    with torch.device("meta"):
        model = MaskGitTransformer(config)
    assert sum(p.numel() for p in model.parameters()) == info["released_256_num_params"]
    assert set(state) == set(model.state_dict())


def test_valeoai_training_checkpoint_import(golden, tmp_path):
    path = tmp_path / "current.pth"
    ddp = {f"module.{k}": v for k, v in golden["weights"].items()}
    torch.save(
        {"iter": 10, "global_epoch": 1, "model_state_dict": ddp, "optimizer_state_dict": {"state": {}}}, path
    )
    config, state = read_valeoai_checkpoint(path, codebook_size=128, heads=4)
    assert config == golden["model"].config
    for k, v in golden["model"].state_dict().items():
        assert torch.equal(state[k], v), k


@pytest.mark.parametrize("n", [256, 1024])
def test_jax_schedule_tables(golden, n):
    table = golden["schedules"]["jax_parallel_decode"]
    keys = [k for k in table if k.startswith(f"N{n}_")]
    assert len(keys) == 12
    for key in keys:
        _, steps, name = key.split("_")
        assert jax_masked_counts(n, int(steps[1:]), name) == table[key]["masked_after_step"], key


def test_valeoai_adap_sche_tables(golden):
    table = golden["schedules"]["valeoai_v1_adap_sche"]
    assert len(table) == 50
    for key, expected in table.items():
        n, steps, mode = key.split("_")
        assert valeoai_reveal_counts(int(n[1:]), int(steps[4:]), mode) == expected, key


@pytest.mark.parametrize("steps", [8, 12, 16])
def test_decoder_follows_jax_table(golden, steps):
    """The real decoder (random model, 16x16 grid) leaves exactly the tabulated counts masked."""
    table = golden["schedules"]["jax_parallel_decode"]
    torch.manual_seed(0)
    model = MaskGitTransformer(
        MaskGitConfig(
            codebook_size=32, grid_size=16, hidden_dim=16, depth=1, heads=2, mlp_dim=16, dropout=0.0
        )
    ).eval()
    tokens = torch.zeros(2, 256, dtype=torch.long)
    unknown = torch.ones(2, 256, dtype=torch.bool)
    for name in ("cosine", "uniform", "pow2", "pow2.5"):
        states = list(
            iterative_decode(
                model, tokens, unknown, steps=steps, schedule=name, generators=make_generators([0, 1])
            )
        )
        expected = table[f"N256_T{steps}_{name}"]
        for state, count, temp in zip(
            states[:-1],
            expected["masked_after_step"],
            expected["choice_temperature_per_step (4.5*(1-ratio))"],
            strict=False,
        ):
            assert state.unknown.sum(dim=1).tolist() == [count, count], (name, state.step)
            assert abs(4.5 * (1 - (state.step + 1) / steps) - temp) < 1e-9
        assert not states[-1].unknown.any() and (states[-1].tokens < 32).all()


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="divisible"):
        MaskGitConfig(hidden_dim=30, heads=4)
    with pytest.raises(ValueError, match="output_bias"):
        MaskGitConfig(output_bias="row")
    c = MaskGitConfig(num_classes=0, grid_size=4)
    assert MaskGitConfig.from_dict(c.to_dict()) == c
    assert c.vocab_size == c.codebook_size + 1 and c.seq_len == 16
    with pytest.raises(ValueError):
        c.no_class_id  # noqa: B018
