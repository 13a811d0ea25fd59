"""``inpaint-studio models``: the catalogue listing, download (real MAE import), Ctrl+C, import, remove."""

from __future__ import annotations

import functools
import hashlib
import json

import pytest

from inpaint_studio import cli_models
from inpaint_studio.cli import main
from inpaint_studio.hub import store
from inpaint_studio.hub.catalogue import BUILTIN, Catalogue, CatalogueEntry, RemoteFile, UrlSource


def _tiny_mae_bytes(tmp_path) -> bytes:
    torch = pytest.importorskip("torch")
    from inpaint_studio.models.mae.mae import MaskedAutoencoderViT

    torch.manual_seed(0)
    model = MaskedAutoencoderViT(
        img_size=32, patch_size=8, embed_dim=64, depth=1, num_heads=1, decoder_embed_dim=32, decoder_depth=1
    )
    path = tmp_path / "tiny.pth"
    torch.save({"model": model.state_dict()}, path)
    return path.read_bytes()


def _catalogue(server, data: bytes, sha256: str | None = None) -> Catalogue:
    server.state.files["/mae_tiny.pth"] = data
    entry = CatalogueEntry(
        id="mae-tiny",
        engine="mae",
        title="A tiny MAE",
        files=(
            RemoteFile(
                "mae_tiny.pth",
                UrlSource(server.url("/mae_tiny.pth")),
                sha256=sha256 or hashlib.sha256(data).hexdigest(),
            ),
        ),
        license="CC-BY-NC-4.0",
        homepage="https://example.invalid",
        import_target="mae",
    )
    return Catalogue([entry])


def test_models_lists_every_catalogue_entry(capsys):
    assert main(["models", "--no-sha256"]) == 0
    out = capsys.readouterr().out
    for entry in BUILTIN:
        assert entry.id in out
    assert "c6bbc15e" not in out  # digests are data, not listing noise
    assert "[sd15]" in out and "[asuka]" in out and "nothing is downloaded otherwise" in out


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    sd = next(e for e in data["catalogue"] if e["id"] == "sd15-inpainting")
    assert sd["size"] == 4_265_437_280 and sd["files"][0]["sha256"].startswith("c6bbc15e")
    assert data["installed"] == []


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["models", "download", "no-such-model"], "unknown model id"),
        (["models", "download", "mat-celeba512"], "cannot be downloaded automatically"),
        (["models", "remove", "mat", "nothing-here"], "nothing named"),
        (["models", "import", "mat", "/no/such/file.pkl"], "no such file"),
        (["models", "remove", "mat", "../x"], "not a valid name"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_download_imports_a_real_checkpoint_and_remove_deletes_it(server, tmp_path, capsys):
    cat = _catalogue(server, _tiny_mae_bytes(tmp_path))
    assert cli_models.main(["download", "mae-tiny", "-q"], catalogue=cat) == 0
    assert "installed mae-tiny as mae/mae-tiny" in capsys.readouterr().out
    assert cli_models.main(["list", "--engine", "mae"], catalogue=cat) == 0
    out = capsys.readouterr().out
    [item] = store.list_installed("mae")
    weights = next(f for f in item.files if f.name == "model.safetensors")
    assert f"sha256 {weights.sha256}" in out and "installed as mae/mae-tiny" in out
    from inpaint_studio.models.mae.importer import load_mae

    assert load_mae(item.path).patch_embed.proj.weight.shape[-1] == 8
    assert cli_models.main(["remove", "mae", "mae-tiny"], catalogue=cat) == 0
    assert store.list_installed("mae") == []


def test_checksum_failure_is_exit_1(server, tmp_path, capsys):
    cat = _catalogue(server, b"not the published file", sha256="4" * 64)
    assert cli_models.main(["download", "mae-tiny", "-q"], catalogue=cat) == 1
    err = capsys.readouterr().err
    assert "removed" in err and len(err.strip().splitlines()) == 1


def test_ctrl_c_keeps_a_part_file_and_the_same_command_resumes(server, tmp_path, capsys, monkeypatch):
    data = _tiny_mae_bytes(tmp_path)
    cat = _catalogue(server, data)
    server.state.delay_per_kib = 0.0005

    def interrupt(self, p):  # Ctrl+C arrives while bytes are flowing
        if p.done > 20_000:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_models._Bar, "__call__", interrupt)
    monkeypatch.setattr(cli_models, "install", functools.partial(cli_models.install, chunk_size=4096))
    assert cli_models.main(["download", "mae-tiny"], catalogue=cat) == 130
    assert "run `inpaint-studio models download mae-tiny` again to resume" in capsys.readouterr().err
    part = store.entry_download_dir("mae-tiny") / "mae_tiny.pth.part"
    kept = part.stat().st_size
    assert 20_000 <= kept < len(data)
    monkeypatch.setattr(cli_models._Bar, "__call__", lambda self, p: None)
    assert cli_models.main(["download", "mae-tiny"], catalogue=cat) == 0
    assert server.state.requests[-1][2] == f"bytes={kept}-"


def test_import_and_remove_through_the_cli(tmp_path, capsys):
    src = tmp_path / "mae_pretrain_tiny.pth"
    src.write_bytes(_tiny_mae_bytes(tmp_path))
    assert main(["models", "import", "mae", str(src), "--name", "mine"]) == 0
    assert capsys.readouterr().out.strip().endswith("mae/mine")
    assert main(["models", "remove", "mae", "mine"]) == 0
    assert main(["models", "import", "nosuch", str(src)]) == 2
    assert main(["models", "import", "classical", str(src)]) == 1  # an engine without an importer
    assert "no importer" in capsys.readouterr().err


def test_the_sd15_base_entry_downloads_into_the_place_mta_looks(server, tmp_path, capsys):
    """BrushNet names no base model: `models download sd15-base` (here from the loopback Hub) is all
    it takes for the mta engine to find one."""
    pytest.importorskip("diffusers")
    import sd_tiny
    from safetensors.torch import save_file

    from inpaint_studio.engines.mta import MtaEngine, find_base
    from inpaint_studio.models.bundle import save_bundle
    from inpaint_studio.models.diffusion.brushnet import BrushBranch
    from inpaint_studio.models.diffusion.source import store_base_model

    parts = sd_tiny.tiny_parts(4)
    file = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in sd_tiny.to_ldm(parts).items()}, str(file))
    entry = Catalogue(BUILTIN).get("sd15-base")
    source = entry.files[0].source
    server.state.hub[(source.repo_id, source.revision, source.filename)] = file.read_bytes()
    assert cli_models.main(["download", "sd15-base", "-q", "--endpoint", server.base]) == 0
    assert "installed sd15-base as sd15-base/sd15-base" in capsys.readouterr().out
    base = store_base_model()
    assert base == store.weights_dir("sd15-base", "sd15-base")
    branch = BrushBranch.from_unet(parts["unet"])
    alone = save_bundle(tmp_path / "branch", "mta", branch.config.to_dict(), branch.state_dict(), {})
    assert MtaEngine.availability(alone).ok and MtaEngine.availability(alone).reason == ""
    assert find_base(alone).path == (base / "v1-5-pruned-emaonly.safetensors").resolve()
    [item] = [i for i in store.list_installed() if i.catalogue_id == "sd15-base"]
    assert item.kind == "weights" and store.entry_status(entry).state == "installed"
