"""A built-in catalogue entry end to end: its real Hub address (served by the loopback Hub), the
checksum the Hub reports, and its real import step into the store."""

from __future__ import annotations

import pytest

from inpaint_studio import cli_models
from inpaint_studio.hub import store
from inpaint_studio.hub.catalogue import builtin

# the released depths at a tiny width: the key names of mae_300.pth, only smaller
TINY_PRIOR = dict(img_size=32, patch_size=2, embed_dim=64, depth=12, num_heads=1, decoder_embed_dim=32,
                  decoder_depth=8, decoder_num_heads=16, feature_layer=6)  # fmt: skip


def test_asuka_prior_entry_downloads_from_its_hub_path_and_imports(server, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from inpaint_studio.models.asuka.importer import load_part
    from inpaint_studio.models.asuka.prior import AsukaPrior

    torch.manual_seed(0)
    model = AsukaPrior(**TINY_PRIOR).eval()
    src = tmp_path / "mae_300.pth"
    torch.save({"model": model.state_dict(), "epoch": 300}, src)
    entry = builtin().get("asuka-mae-prior")
    source = entry.files[0].source
    server.state.hub[(source.repo_id, source.revision, source.filename)] = src.read_bytes()

    assert cli_models.main(["download", entry.id, "--endpoint", server.base, "-q"]) == 0
    out = capsys.readouterr().out
    assert "installed asuka-mae-prior as asuka-prior/asuka-mae-prior" in out
    assert "sha256 (as the Hub reports it)" in out
    assert server.state.requests[0][:2] == ("HEAD", "/yikaiwang/ASUKA-FLUX.1-Fill/resolve/main/mae_300.pth")
    loaded = load_part(store.weights_dir("asuka-prior", entry.id), engine="asuka-prior")
    assert isinstance(loaded, AsukaPrior) and loaded.config == model.config
    assert store.entry_status(entry).state == "installed"
    assert not store.entry_download_dir(entry.id).exists()
    assert cli_models.main(["list", "--engine", "asuka"]) == 0
    listing = capsys.readouterr().out
    assert "installed: asuka-prior/asuka-mae-prior" in listing and "[asuka-prior]" not in listing


def test_sd15_entry_is_refused_before_downloading_when_the_hub_serves_another_file(server, capsys):
    entry = builtin().get("sd15-inpainting")
    source = entry.files[0].source
    server.state.hub[(source.repo_id, source.revision, source.filename)] = b"not the RunwayML checkpoint"
    assert cli_models.main(["download", entry.id, "--endpoint", server.base, "-q"]) == 1
    err = capsys.readouterr().err
    assert "nothing was downloaded" in err and len(err.strip().splitlines()) == 1
    assert not any(method == "GET" for method, _, _ in server.state.requests)
