"""Catalogue facts, the download -> import flow, and the store listing (loopback server only)."""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest

from inpaint_studio.hub import store
from inpaint_studio.hub.catalogue import (
    BUILTIN,
    Catalogue,
    CatalogueEntry,
    HubSource,
    ManualSource,
    RemoteFile,
    UrlSource,
    builtin,
)
from inpaint_studio.hub.download import ChecksumError
from inpaint_studio.hub.install import ManualOnly, NoImporter, install

A, B = os.urandom(40_000), os.urandom(25_000)


def _entry(server, target="fake", sha_a=None, **kw) -> CatalogueEntry:
    server.state.files["/a.pth"] = A
    server.state.hub[("org/repo", "main", "ckpt/b.bin")] = B
    return CatalogueEntry(
        id="fake-model",
        engine="fake",
        title="A fake two-file model",
        files=(
            RemoteFile(
                "a.pth", UrlSource(server.url("/a.pth")), sha256=sha_a or hashlib.sha256(A).hexdigest()
            ),
            RemoteFile("ckpt/b.bin", HubSource("org/repo", "ckpt/b.bin"), size=len(B)),
        ),
        license="MIT",
        homepage="https://example.invalid",
        import_target=target,
        import_from="folder",
        **kw,
    )


def _importer(calls):
    def importer(target, source, dest):
        calls.append((target, source))
        assert (source / "a.pth").read_bytes() == A and (source / "ckpt" / "b.bin").read_bytes() == B
        dest.mkdir(parents=True)
        (dest / "config.json").write_text(json.dumps({"engine": target}))
        (dest / "model.safetensors").write_bytes(A[:1000])
        return dest

    return importer


def test_builtin_catalogue_is_well_formed():
    cat = builtin()
    assert len({e.id for e in cat}) == len(cat) == len(BUILTIN)
    for entry in cat:
        for f in entry.files:
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256)
            if isinstance(f.source, UrlSource | ManualSource):
                url = f.source.url if isinstance(f.source, UrlSource) else f.source.page
                assert url.startswith("https://")
            if isinstance(f.source, HubSource) and f.source.revision != "main":
                assert re.fullmatch(r"[0-9a-f]{40}", f.source.revision)  # a pinned commit, not a short hash
    ids = {e.id for e in cat}
    assert {
        "mat-places512",
        "mat-celeba512",
        "mae-pretrain-base",
        "maskgit-imagenet256",
        "sd15-inpainting",
    } <= ids
    assert {"brushnet-segmentation-sd15", "brushnet-random-sd15", "asuka-mae-prior"} <= ids
    with pytest.raises(KeyError, match="unknown model id"):
        cat.get("nope")


def test_catalogue_refuses_made_up_digests():
    with pytest.raises(ValueError, match="64 hex"):
        RemoteFile("x", UrlSource("https://e.invalid/x"), sha256="abc")
    with pytest.raises(ValueError, match="relative path"):
        RemoteFile("../x", UrlSource("https://e.invalid/x"))


def test_install_downloads_imports_and_lists_with_sha256(server):
    calls = []
    progress = []
    result = install(
        _entry(server),
        importer=_importer(calls),
        progress=progress.append,
        chunk_size=4096,
        endpoint=server.base,
    )
    assert calls and result.weights == store.weights_dir("fake", "fake-model")
    assert result.kept is None and not store.entry_download_dir("fake-model").exists()  # raw download removed
    assert (
        "a.pth: size, sha256" in result.message
        and "b.bin: size, sha256 (as the Hub reports it)" in result.message
    )
    assert {p.index for p in progress} == {0, 1} and progress[-1].done == len(B)
    [item] = store.list_installed("fake")
    assert item.kind == "weights" and item.catalogue_id == "fake-model"
    digests = {f.name: f.sha256 for f in item.files}
    assert digests["model.safetensors"] == hashlib.sha256(A[:1000]).hexdigest()
    assert store.entry_status(result.entry).state == "installed"
    assert store.remove("fake", "fake-model") and store.list_installed("fake") == []


def test_without_an_importer_the_verified_download_stays(server):
    def no_importer(target, source, dest):
        raise NoImporter("this build has no fake engine yet")

    entry = _entry(server)
    result = install(entry, importer=no_importer, endpoint=server.base)
    assert result.weights is None and result.kept == store.entry_download_dir(entry.id)
    assert "models import fake" in result.message
    assert store.entry_status(entry).state == "downloaded"
    [item] = store.list_installed("fake")
    assert item.kind == "download" and item.size == len(A) + len(B)


def test_a_bad_file_fails_the_install_and_nothing_is_imported(server):
    calls = []
    with pytest.raises(ChecksumError, match="removed"):
        install(_entry(server, sha_a="3" * 64), importer=_importer(calls), endpoint=server.base)
    assert calls == [] and not store.weights_dir("fake", "fake-model").exists()


def test_a_partial_entry_shows_as_partial_and_resumes(server):
    entry = _entry(server)
    server.state.break_after["/a.pth"] = 10_000
    with pytest.raises(Exception, match="resume"):
        install(entry, chunk_size=2048, endpoint=server.base)
    status = store.entry_status(entry)
    assert status.state == "partial"
    result = install(
        entry, chunk_size=2048, endpoint=server.base
    )  # no importer: downloaded and verified only
    assert result.kept is not None and store.entry_status(entry).state == "downloaded"


def test_manual_entries_explain_what_to_do():
    entry = Catalogue(BUILTIN).get("mat-celeba512")
    assert not entry.downloadable
    with pytest.raises(ManualOnly, match="models import mat"):
        install(entry)


def test_remove_refuses_paths():
    with pytest.raises(ValueError):
        store.remove("mat", "../etc")
    with pytest.raises(FileNotFoundError):
        store.remove("mat", "never-installed")


def test_the_manager_loads_without_torch_qt_or_huggingface_hub():
    import subprocess
    import sys

    code = (
        "import sys; import inpaint_studio.hub.install, inpaint_studio.hub.store, inpaint_studio.hub.catalogue; "
        "print(sorted(m for m in ('torch', 'PySide6', 'huggingface_hub') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _weights_folder(engine: str, name: str):
    folder = store.weights_dir(engine, name)
    folder.mkdir(parents=True)
    (folder / store.CONFIG_NAME).write_text("{}", encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"x" * 100)
    return folder


def test_remove_finishes_when_a_file_vanishes_mid_delete(monkeypatch):
    """The Models dialog's checksum pass renames its cache's .tmp file while a delete walks the folder;
    Python 3.11's rmtree then stops with FileNotFoundError, which once left config.json behind."""
    folder = _weights_folder("toy", "toy-big")
    real_rmtree, calls = store.shutil.rmtree, []

    def rmtree_that_trips_once(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            raise FileNotFoundError(2, "No such file or directory", str(path / ".checksums.json.tmp"))
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(store.shutil, "rmtree", rmtree_that_trips_once)
    assert store.remove("toy", "toy-big") == [folder]
    assert len(calls) == 2 and not folder.exists() and store.list_installed("toy") == []
    assert list(folder.parent.iterdir()) == []  # no hidden leftover either


def test_a_folder_being_removed_is_not_listed_and_its_cache_does_not_come_back():
    folder = _weights_folder("toy", "toy-big")
    hidden = folder.with_name(".toy-big.removing-1-2")
    folder.rename(hidden)  # what remove() does first
    assert store.list_installed("toy") == []
    assert store.folder_files(folder) == ()  # a late checksum pass on the old path writes nothing
    assert not folder.exists()
