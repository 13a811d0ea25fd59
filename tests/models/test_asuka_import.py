"""Released ASUKA checkpoints and LDM VAE files -> weights folders, through the restricted unpickler."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from inpaint_studio.models.asuka.decoder import AsukaDecoder
from inpaint_studio.models.asuka.importer import (
    CheckpointError,
    decoder_from_ldm,
    import_alignment,
    import_decoder,
    import_prior,
    load_part,
    save_part,
)
from inpaint_studio.models.asuka.prior import AsukaPrior
from inpaint_studio.models.safe_pickle import UnsafeCheckpointError

# The released depths (12 encoder, 8 decoder blocks) at a tiny width: the same key names as mae_300.pth.
# Heads as the importer infers them: 64-wide in the encoder, 16 in the decoder.
TINY_PRIOR = dict(img_size=32, patch_size=2, embed_dim=64, depth=12, num_heads=1, decoder_embed_dim=32,
                  decoder_depth=8, decoder_num_heads=16, feature_layer=6)  # fmt: skip


def _prior_inputs():
    g = torch.Generator().manual_seed(3)
    imgs, mask = torch.randn(2, 3, 32, 32, generator=g), torch.zeros(2, 1, 32, 32)
    mask[0, :, 4:20, 7:13] = 1
    mask[1, :, 10:31, 1:9] = 1
    return imgs, mask


def test_released_prior_checkpoint_imports(tmp_path, reference_dir):
    released = json.loads(
        (reference_dir("asuka_prior") / "asuka_mae_vit_base_patch16_finetune_keys.json").read_text()
    )["keys"]
    torch.manual_seed(0)
    model = AsukaPrior(**TINY_PRIOR).eval()
    model.alpha.data.fill_(0.4)
    state = model.state_dict()
    assert set(state) == set(released)  # the names of the released file, only smaller
    src = tmp_path / "mae_300.pth"
    torch.save({"model": {**state, "decoder_aux.weight": torch.zeros(3)}, "epoch": 300}, src)
    folder = import_prior(src, tmp_path / "store" / "prior")
    loaded = load_part(folder, engine="asuka-prior")
    assert isinstance(loaded, AsukaPrior) and loaded.config == model.config
    assert json.loads((folder / "config.json").read_text())["dropped_keys"] == ["decoder_aux.weight"]
    with torch.no_grad():
        assert torch.equal(loaded(*_prior_inputs()), model(*_prior_inputs()))


def test_prior_without_position_tables_gets_them_rebuilt_and_bad_shapes_are_refused(tmp_path):
    model = AsukaPrior(**TINY_PRIOR)
    state = {k: v for k, v in model.state_dict().items() if "pos_embed" not in k}
    torch.save({"model": state}, tmp_path / "a.pth")
    loaded = load_part(import_prior(tmp_path / "a.pth", tmp_path / "a"))
    assert torch.equal(loaded.decoder_pos_embed, model.decoder_pos_embed)
    state["decoder_pred.weight"] = torch.zeros(5, 32)
    torch.save({"model": state}, tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match="decoder_pred.weight has shape"):
        import_prior(tmp_path / "b.pth", tmp_path / "b")
    torch.save({"model": {"head.weight": torch.zeros(2)}}, tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match="not an ASUKA prior"):
        import_prior(tmp_path / "c.pth", tmp_path / "c")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_malicious_checkpoint_is_refused(tmp_path):
    src = tmp_path / "mae_300.pth"
    src.write_bytes(pickle.dumps({"model": _Evil()}))
    with pytest.raises(UnsafeCheckpointError):
        import_prior(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- alignment
def _release_alignment_state(dim: int, depth: int = 4, prior_dim: int = 512, mlp: int = 4) -> dict:
    """A state dict in the released nn.Sequential layout, modulation included, random values."""
    g = torch.Generator().manual_seed(5)
    state = {
        "0.weight": torch.randn(dim, prior_dim, generator=g) * 0.05,
        "0.bias": torch.randn(dim, generator=g) * 0.1,
    }
    for i in range(1, depth + 1):
        state[f"{i}.linear1.weight"] = torch.randn((3 + mlp) * dim, dim, generator=g) * dim**-0.5
        state[f"{i}.linear1.bias"] = torch.randn((3 + mlp) * dim, generator=g) * 0.1
        state[f"{i}.linear2.weight"] = torch.randn(dim, (1 + mlp) * dim, generator=g) * (5 * dim) ** -0.5
        state[f"{i}.linear2.bias"] = torch.randn(dim, generator=g) * 0.1
        state[f"{i}.norm.query_norm.scale"] = 1 + 0.1 * torch.randn(64, generator=g)
        state[f"{i}.norm.key_norm.scale"] = 1 + 0.1 * torch.randn(64, generator=g)
        state[f"{i}.modulation.lin.weight"] = torch.randn(3 * dim, dim, generator=g)
        state[f"{i}.modulation.lin.bias"] = torch.randn(3 * dim, generator=g)
    state[f"{depth + 1}.weight"] = 1 + 0.1 * torch.randn(dim, generator=g)
    state[f"{depth + 1}.bias"] = 0.1 * torch.randn(dim, generator=g)
    return state


def _reference_alignment(state: dict, x: torch.Tensor, depth: int = 4) -> torch.Tensor:
    """The released module's forward written out with explicit softmax attention."""
    x = x @ state["0.weight"].T + state["0.bias"]
    n, length, dim = x.shape
    heads = dim // 64
    for i in range(1, depth + 1):
        h = torch.nn.functional.layer_norm(x, (dim,), eps=1e-6) @ state[f"{i}.linear1.weight"].T
        h = h + state[f"{i}.linear1.bias"]
        qkv, mlp = h[..., : 3 * dim], h[..., 3 * dim :]
        q, k, v = qkv.reshape(n, length, 3, heads, 64).permute(2, 0, 3, 1, 4)

        def rms(t, scale):
            return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6) * scale

        q, k = rms(q, state[f"{i}.norm.query_norm.scale"]), rms(k, state[f"{i}.norm.key_norm.scale"])
        attn = torch.softmax(q @ k.transpose(-1, -2) / 8.0, dim=-1) @ v
        attn = attn.transpose(1, 2).reshape(n, length, dim)
        gelu = torch.nn.functional.gelu(mlp, approximate="tanh")
        x = x + torch.cat([attn, gelu], -1) @ state[f"{i}.linear2.weight"].T + state[f"{i}.linear2.bias"]
    w, b = state[f"{depth + 1}.weight"], state[f"{depth + 1}.bias"]
    return torch.nn.functional.layer_norm(x, (dim,), w, b, eps=1e-5)


def test_released_alignment_module_imports_and_computes_the_release_forward(tmp_path):
    state = _release_alignment_state(128)
    src = tmp_path / "asuka_alignment_clip.pt"
    torch.save(state, src)
    folder = import_alignment(src, tmp_path / "align")
    model = load_part(folder, engine="asuka-align")
    assert model.config == dict(prior_dim=512, cond_dim=128, depth=4, head_dim=64, mlp_ratio=4.0)
    dropped = json.loads((folder / "config.json").read_text())["dropped_keys"]
    assert sorted(dropped) == sorted(k for k in state if "modulation" in k)
    prior = torch.randn(2, 256, 512)
    with torch.no_grad():
        out = model(prior)
    assert out.shape == (2, 256, 128)
    torch.testing.assert_close(out, _reference_alignment(state, prior), atol=2e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- decoder
def _ldm_decoder_state(ch: int = 32, mult=(1, 2), z: int = 4, res: int = 2) -> dict[str, torch.Tensor]:
    """A tiny LDM-layout VAE decoder (the key names of taming / ldm ``Decoder``), random values."""
    g = torch.Generator().manual_seed(7)

    def conv(o, i, k=3):
        return {
            "weight": torch.randn(o, i, k, k, generator=g) * (i * k * k) ** -0.5,
            "bias": 0.1 * torch.randn(o, generator=g),
        }

    def norm(c):
        return {"weight": 1 + 0.1 * torch.randn(c, generator=g), "bias": 0.1 * torch.randn(c, generator=g)}

    def put(prefix, d):
        state.update({f"{prefix}.{k}": v for k, v in d.items()})

    def resnet(prefix, i, o):
        put(f"{prefix}.norm1", norm(i)), put(f"{prefix}.conv1", conv(o, i)), put(f"{prefix}.norm2", norm(o))
        put(f"{prefix}.conv2", conv(o, o))
        if i != o:
            put(f"{prefix}.nin_shortcut", conv(o, i, 1))

    state: dict[str, torch.Tensor] = {}
    top = ch * mult[-1]
    put("conv_in", conv(top, z))
    resnet("mid.block_1", top, top)
    put("mid.attn_1.norm", norm(top))
    for name in ("q", "k", "v", "proj_out"):
        put(f"mid.attn_1.{name}", conv(top, top, 1))
    resnet("mid.block_2", top, top)
    c_in = top
    for level in reversed(range(len(mult))):
        c_out = ch * mult[level]
        for b in range(res + 1):
            resnet(f"up.{level}.block.{b}", c_in, c_out)
            c_in = c_out
        if level:
            put(f"up.{level}.upsample.conv", conv(c_out, c_out))
    put("norm_out", norm(ch))
    put("conv_out", conv(3, ch))
    return state


def test_decoder_from_a_single_file_sd_checkpoint():
    from diffusers import AutoencoderKL

    ldm = _ldm_decoder_state()
    whole = {f"first_stage_model.decoder.{k}": v for k, v in ldm.items()}
    whole["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(1)  # the rest of an SD file
    arch = dict(block_out_channels=(32, 64), layers_per_block=2)
    model = decoder_from_ldm(whole, **arch).eval()
    vae = AutoencoderKL(block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, layers_per_block=2).eval()  # fmt: skip
    ours_to_vae = {
        k.removeprefix("decoder."): v for k, v in model.state_dict().items() if k.startswith("decoder.")
    }
    vae.decoder.load_state_dict(ours_to_vae)
    assert torch.equal(
        model.decoder.mid_block.attentions[0].to_q.weight, ldm["mid.attn_1.q.weight"][:, :, 0, 0]
    )
    z = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(model(z, torch.zeros(1, 3, 8, 8), torch.ones(1, 1, 8, 8)), vae.decoder(z))
    with pytest.raises(CheckpointError, match="no VAE decoder"):
        decoder_from_ldm({"model.diffusion_model.x": torch.zeros(1)})


def test_official_decoder_checkpoint_imports(tmp_path):
    ldm = _ldm_decoder_state()
    g = torch.Generator().manual_seed(9)
    condition = {}
    for i, (o, c, k) in enumerate([(32, 4, 3), (64, 32, 3), (64, 64, 4)]):
        condition[f"encoder.layers.{i}.weight"] = torch.randn(o, c, k, k, generator=g) * 0.1
        condition[f"encoder.layers.{i}.bias"] = torch.randn(o, generator=g) * 0.1
    official = {**ldm, **condition, "up_layers.0.deconv.weight": torch.zeros(64, 32, 4, 4)}
    ckpt = {
        "state_dict": {
            **{f"decoder.{k}": v for k, v in official.items()},
            "encoder.conv_in.weight": torch.zeros(1),
        }
    }
    torch.save(ckpt, tmp_path / "asuka_decoder.ckpt")
    folder = import_decoder(tmp_path / "asuka_decoder.ckpt", tmp_path / "dec")
    model = load_part(folder, engine="asuka-decoder")
    assert isinstance(model, AsukaDecoder) and model.config["block_out_channels"] == [32, 64]
    assert torch.equal(model.condition.layers[2].weight, condition["encoder.layers.2.weight"])
    assert torch.equal(model.decoder.conv_out.weight, ldm["conv_out.weight"])
    assert json.loads((folder / "config.json").read_text())["dropped_keys"] == ["up_layers.0.deconv.weight"]
    again = load_part(save_part(model, tmp_path / "again"))
    z, image, mask = torch.randn(1, 4, 3, 5), torch.rand(1, 3, 6, 10), torch.zeros(1, 1, 6, 10)
    mask[..., 1:4, 2:6] = 1
    with torch.no_grad():
        assert torch.equal(again(z, image, mask), model(z, image, mask))


def test_prior_can_start_from_a_plain_mae():
    from inpaint_studio.models.asuka.importer import prior_from_mae
    from inpaint_studio.models.mae.mae import MaskedAutoencoderViT

    torch.manual_seed(0)
    mae = MaskedAutoencoderViT(img_size=48, patch_size=4, embed_dim=64, depth=2, num_heads=1,
                               decoder_embed_dim=32, decoder_depth=3, decoder_num_heads=16)  # fmt: skip
    prior, fresh = prior_from_mae(mae.state_dict(), img_size=64, feature_layer=2)
    assert prior.grid == 16 and prior.config["decoder_depth"] == 3 and prior.config["depth"] == 2
    assert torch.equal(prior.blocks[1].attn.qkv.weight, mae.blocks[1].attn.qkv.weight)
    assert torch.equal(prior.decoder_pred.weight, mae.decoder_pred.weight)
    assert torch.equal(prior.mask_token, mae.mask_token)
    assert fresh == sorted(["alpha", "pos_embed", "decoder_pos_embed", "decoder_patch_embed.proj.weight",
                            "decoder_patch_embed.proj.bias"])  # fmt: skip
    assert prior.pos_embed.shape == (1, 256, 64) and prior.alpha.item() == 1.0
    with pytest.raises(CheckpointError, match="not an MAE"):
        prior_from_mae({"head.weight": torch.zeros(1)})
