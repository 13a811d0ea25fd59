"""Resumable, verified, cancellable downloads against a loopback server (plain HTTP and the Hub path)."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest
from loopback import NetworkForbidden

from inpaint_studio.hub.catalogue import HubSource
from inpaint_studio.hub.download import (
    ChecksumError,
    DownloadCancelled,
    DownloadError,
    download_hub,
    download_url,
    part_path,
    verify_file,
)

DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
MD5 = hashlib.md5(DATA).hexdigest()


def test_the_guard_refuses_real_network():
    with pytest.raises(NetworkForbidden):
        socket.create_connection(("93.184.216.34", 80), timeout=1)


def test_full_download_verifies_and_reports_progress(server, tmp_path):
    server.state.files["/w.bin"] = DATA
    seen = []
    got = download_url(
        server.url("/w.bin"),
        tmp_path / "w.bin",
        size=len(DATA),
        sha256=SHA,
        progress=lambda d, t: seen.append((d, t)),
        chunk_size=8192,
    )
    assert (tmp_path / "w.bin").read_bytes() == DATA
    assert not part_path(tmp_path / "w.bin").exists()
    assert got.sha256 == SHA and got.checks == ("size", "sha256")
    assert seen[-1] == (len(DATA), len(DATA))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_resume_after_the_server_closes_mid_way(server, tmp_path):
    server.state.files["/w.bin"] = DATA
    server.state.break_after["/w.bin"] = 100_000
    dest = tmp_path / "w.bin"
    with pytest.raises(DownloadError, match="download again to resume") as info:
        download_url(server.url("/w.bin"), dest, size=len(DATA), sha256=SHA, chunk_size=4096)
    assert not isinstance(info.value, ChecksumError)
    kept = part_path(dest).stat().st_size
    assert 0 < kept <= 100_000 and not dest.exists()
    got = download_url(server.url("/w.bin"), dest, size=len(DATA), sha256=SHA, chunk_size=4096)
    assert dest.read_bytes() == DATA and got.sha256 == SHA
    assert server.state.requests[-1] == ("GET", "/w.bin", f"bytes={kept}-")
    assert server.state.sent["/w.bin"] == len(DATA)  # nothing fetched twice


def test_resume_from_an_existing_part_file_without_published_facts(server, tmp_path):
    server.state.files["/w.bin"] = DATA
    dest = tmp_path / "w.bin"
    part_path(dest).write_bytes(DATA[:1234])
    got = download_url(server.url("/w.bin"), dest)
    assert dest.read_bytes() == DATA and got.sha256 == SHA
    assert server.state.requests[-1][2] == "bytes=1234-"
    assert server.state.sent["/w.bin"] == len(DATA) - 1234
    assert got.checks == ("size",)  # only what the server stated; no checksum was published


def test_a_server_that_ignores_range_starts_over(server, tmp_path):
    server.state.files["/w.bin"] = DATA
    server.state.ignore_range = True
    dest = tmp_path / "w.bin"
    part_path(dest).write_bytes(b"x" * 500)  # garbage that must not stay in front
    download_url(server.url("/w.bin"), dest, sha256=SHA)
    assert dest.read_bytes() == DATA


def test_a_complete_part_file_is_finished_without_downloading(server, tmp_path):
    server.state.files["/w.bin"] = DATA
    dest = tmp_path / "w.bin"
    part_path(dest).write_bytes(DATA)
    download_url(server.url("/w.bin"), dest, sha256=SHA)  # size unknown: the server answers 416
    assert dest.read_bytes() == DATA and server.state.sent.get("/w.bin", 0) == 0


def test_bad_checksum_removes_the_file_and_says_so(server, tmp_path):
    server.state.files["/w.bin"] = DATA
    dest = tmp_path / "w.bin"
    with pytest.raises(ChecksumError, match="removed") as info:
        download_url(server.url("/w.bin"), dest, sha256="0" * 64)
    assert "sha256" in str(info.value) and "\n" not in str(info.value)
    assert not dest.exists() and not part_path(dest).exists()


def test_md5_and_published_md5_prefixes(server, tmp_path):
    server.state.files["/w.bin"] = DATA
    assert download_url(server.url("/w.bin"), tmp_path / "a", md5=MD5).checks == ("size", "md5")
    got = download_url(server.url("/w.bin"), tmp_path / "b", md5=MD5[:6])
    assert got.checks == ("size", "md5 prefix (6 digits)")
    wrong = "0" * 6 if not MD5.startswith("000000") else "ffffff"
    with pytest.raises(ChecksumError, match="md5"):
        download_url(server.url("/w.bin"), tmp_path / "c", md5=wrong)
    assert not (tmp_path / "c").exists()


def test_404_is_one_line_and_leaves_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_url(server.url("/missing.bin"), tmp_path / "m.bin")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_is_a_download_error(tmp_path):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot reach"):
        download_url(f"http://127.0.0.1:{port}/x", tmp_path / "x", timeout=2)


def test_cancel_mid_way_keeps_a_resumable_part(server, tmp_path):
    server.state.files["/w.bin"] = DATA
    dest = tmp_path / "w.bin"
    progress = []
    with pytest.raises(DownloadCancelled, match="resume"):
        download_url(
            server.url("/w.bin"),
            dest,
            sha256=SHA,
            progress=lambda d, t: progress.append(d),
            cancel=lambda: bool(progress) and progress[-1] >= 60_000,
            chunk_size=4096,
        )
    kept = part_path(dest).stat().st_size
    assert 60_000 <= kept < len(DATA) and not dest.exists()
    download_url(server.url("/w.bin"), dest, sha256=SHA)
    assert dest.read_bytes() == DATA


def test_size_that_differs_from_the_published_one_is_refused(server, tmp_path):
    server.state.files["/w.bin"] = DATA
    with pytest.raises(DownloadError, match="changed upstream"):
        download_url(server.url("/w.bin"), tmp_path / "w.bin", size=len(DATA) + 1)
    assert list(tmp_path.iterdir()) == []


def test_a_finished_file_is_reverified_not_refetched(server, tmp_path):
    dest = tmp_path / "w.bin"
    dest.write_bytes(DATA)
    assert download_url(server.url("/never"), dest, sha256=SHA).sha256 == SHA
    assert server.state.requests == []
    dest.write_bytes(DATA[:-1] + b"\0")
    with pytest.raises(ChecksumError, match="already on disk"):
        verify_file(dest, sha256=SHA)
    assert not dest.exists()


# ------------------------------------------------------------------------------------ Hugging Face path
def test_hub_download_uses_the_hub_metadata_and_resumes(server, tmp_path):
    source = HubSource("org/repo", "sub/w.bin", revision="main")
    server.state.hub[("org/repo", "main", "sub/w.bin")] = DATA
    server.state.break_after[f"/cdn/{SHA}/w.bin"] = 50_000
    dest = tmp_path / "w.bin"
    with pytest.raises(DownloadError, match="resume"):
        download_hub(source, dest, endpoint=server.base, chunk_size=4096)
    got = download_hub(source, dest, endpoint=server.base, chunk_size=4096)
    assert dest.read_bytes() == DATA
    assert got.checks == ("size", "sha256 (as the Hub reports it)")
    methods = [(m, p) for m, p, _ in server.state.requests]
    assert ("HEAD", "/org/repo/resolve/main/sub/w.bin") in methods
    assert server.state.requests[-1][2] is not None  # the second GET was a Range request


def test_hub_endpoint_comes_from_the_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", server.base)
    source = HubSource("org/space", "data/w.bin", revision="abc", repo_type="space")
    server.state.hub[("spaces/org/space", "abc", "data/w.bin")] = DATA
    download_hub(source, tmp_path / "w.bin", sha256=SHA)
    assert (tmp_path / "w.bin").read_bytes() == DATA
    assert server.state.requests[0][:2] == ("HEAD", "/spaces/org/space/resolve/abc/data/w.bin")


def test_hub_sha_that_differs_from_the_catalogue_fails_before_downloading(server, tmp_path):
    source = HubSource("org/repo", "w.bin")
    server.state.hub[("org/repo", "main", "w.bin")] = DATA
    with pytest.raises(ChecksumError, match="nothing was downloaded"):
        download_hub(source, tmp_path / "w.bin", sha256="1" * 64, endpoint=server.base)
    assert not any(m == "GET" for m, _, _ in server.state.requests)


def test_hub_corrupt_transfer_is_caught_by_the_hub_sha(server, tmp_path):
    source = HubSource("org/repo", "w.bin")
    server.state.hub[("org/repo", "main", "w.bin")] = DATA
    server.state.hub_sha_override[("org/repo", "main", "w.bin")] = "2" * 64
    with pytest.raises(ChecksumError, match="removed"):
        download_hub(source, tmp_path / "w.bin", endpoint=server.base)
    assert list(tmp_path.iterdir()) == []


def test_hub_missing_file_is_one_line(server, tmp_path):
    with pytest.raises(DownloadError) as info:
        download_hub(HubSource("org/repo", "nope.bin"), tmp_path / "n", endpoint=server.base)
    assert "org/repo" in str(info.value) and "\n" not in str(info.value)


def test_a_second_download_of_the_same_file_is_refused_while_one_runs(server, tmp_path):
    import threading

    server.state.files["/w.bin"] = DATA
    server.state.delay_per_kib = 0.002
    dest = tmp_path / "w.bin"
    started, errors = threading.Event(), []

    def first():
        try:
            download_url(
                server.url("/w.bin"), dest, sha256=SHA, progress=lambda d, t: started.set(), chunk_size=4096
            )
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    worker = threading.Thread(target=first)
    worker.start()
    assert started.wait(10)
    with pytest.raises(DownloadError, match="already being downloaded"):
        download_url(server.url("/w.bin"), dest, sha256=SHA)
    worker.join(20)
    assert not errors and dest.read_bytes() == DATA


def test_hub_plain_git_file_is_checked_by_size(server, tmp_path):
    body = b'{"_class_name": "BrushNetModel"}'
    server.state.hub[("org/repo", "main", "config.json")] = body
    server.state.hub_git_files.add(("org/repo", "main", "config.json"))
    got = download_hub(HubSource("org/repo", "config.json"), tmp_path / "config.json", endpoint=server.base)
    assert (tmp_path / "config.json").read_bytes() == body
    assert got.checks == ("size",)  # the Git blob id is no sha256 of the file: not used as one


def test_a_write_failure_is_one_line_and_keeps_what_arrived(server, tmp_path, monkeypatch):
    import builtins

    server.state.files["/w.bin"] = DATA
    real_open = builtins.open

    class FullDisk:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            self.n += len(b)
            if self.n > 50_000:
                raise OSError(28, "No space left on device")
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fake_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return FullDisk(f) if str(path).endswith(".part") and "b" in mode and "r" not in mode else f

    monkeypatch.setattr(builtins, "open", fake_open)
    with pytest.raises(DownloadError, match="No space left on device") as info:
        download_url(server.url("/w.bin"), tmp_path / "w.bin", sha256=SHA, chunk_size=8192)
    assert "\n" not in str(info.value) and part_path(tmp_path / "w.bin").stat().st_size <= 50_000
