"""A loopback HTTP server for the model manager's tests, and a guard that fails any connection that
is not to 127.0.0.1 / ::1 (so no test ever reaches the real network).

The server serves plain files (with HTTP Range), can break a transfer mid-way or trickle it, and
answers Hugging Face ``resolve`` requests the way the Hub does for LFS files: a HEAD/GET that
redirects to a CDN address, with ``X-Repo-Commit``, ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_RESOLVE = re.compile(r"^/(?:(spaces|datasets)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class NetworkForbidden(AssertionError):
    pass


def guard_sockets(monkeypatch) -> None:
    """Let sockets connect to loopback only; anything else fails the test."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def check(address) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in LOOPBACK and not host.startswith("127."):
            raise NetworkForbidden(f"a test tried to connect to {address!r}: only loopback is allowed")

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            check(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            check(address)
        return real_connect_ex(self, address)

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, bytes):
            host = host.decode()
        if host is not None:
            check((host,))
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@dataclass
class Served:
    files: dict[str, bytes] = field(default_factory=dict)  # URL path -> body
    hub: dict[tuple[str, str, str], bytes] = field(default_factory=dict)  # (repo, revision, file) -> body
    hub_sha_override: dict[tuple[str, str, str], str] = field(default_factory=dict)
    hub_git_files: set[tuple[str, str, str]] = field(
        default_factory=set
    )  # small files served as plain Git blobs
    break_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before closing (once)
    delay_per_kib: float = 0.0
    ignore_range: bool = False
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Range header
    sent: dict[str, int] = field(default_factory=dict)  # path -> body bytes sent in total
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(state: Served):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet test output
            pass

        def _record(self) -> str:
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            with state.lock:
                state.requests.append((self.command, path, self.headers.get("Range")))
            return path

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path = self._record()
            match = _RESOLVE.match(path)
            if match:
                return self._resolve(match)
            data = state.files.get(path)
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send_bytes(path, data, body)

        def _resolve(self, match: re.Match) -> None:
            kind, repo, revision, filename = match.groups()
            key = (f"{kind}/{repo}" if kind else repo, revision, filename)
            data = state.hub.get(key)
            if data is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if key in state.hub_git_files:  # no redirect, no LFS headers: the ETag is the Git blob id
                self.send_response(200)
                self.send_header("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
                blob_id = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                self.send_header("ETag", f'"{blob_id}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(data)
                return
            sha = state.hub_sha_override.get(key, hashlib.sha256(data).hexdigest())
            cdn = f"/cdn/{sha}/{filename.rsplit('/', 1)[-1]}"
            state.files[cdn] = data
            port = self.server.server_address[1]
            self.send_response(302)  # to another host name, as the Hub sends LFS files to its CDN
            self.send_header("Location", f"http://localhost:{port}{cdn}")
            self.send_header("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", '"not-the-file-hash"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send_bytes(self, path: str, data: bytes, body: bool) -> None:
            start = 0
            rng = self.headers.get("Range")
            if rng and not state.ignore_range:
                m = re.match(r"bytes=(\d+)-$", rng)
                start = int(m.group(1)) if m else 0
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if not body:
                return
            with state.lock:
                limit = state.break_after.pop(path, None)
            pos, sent = start, 0
            while pos < len(data):
                if limit is not None and sent >= limit:
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                step = 1024 if limit is None else min(1024, limit - sent)
                chunk = data[pos : pos + step]
                with state.lock:  # counted before the write, so a client that has read it sees the count
                    state.sent[path] = state.sent.get(path, 0) + len(chunk)
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                pos += len(chunk)
                sent += len(chunk)
                if state.delay_per_kib:
                    time.sleep(state.delay_per_kib)

    return Handler


class LoopbackServer:
    """``with LoopbackServer() as srv: srv.url("/a.bin")``; ``srv.state`` says what was asked and sent."""

    def __init__(self) -> None:
        self.state = Served()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="loopback-http", daemon=True
        )

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
