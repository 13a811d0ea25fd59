"""Model-manager fixtures: loopback-only sockets for every test here, and a loopback file server."""

from __future__ import annotations

import pytest
from loopback import LoopbackServer, guard_sockets


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    guard_sockets(monkeypatch)


@pytest.fixture
def server():
    with LoopbackServer() as srv:
        yield srv
