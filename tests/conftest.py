"""Root fixtures: no test may reach the network beyond loopback (STYLE: no test reaches the internet)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from runtime_core import check_trusted

# Every model the hot path builds without validation is validated anyway under test (see `trusted`).
check_trusted(True)

_LOOPBACK_NAMES = {"localhost", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"}


class NetworkBlockedError(OSError):
    """Raised instead of connecting anywhere but loopback or a Unix socket."""


def _allowed(address: Any) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX path (or abstract namespace)
        return True
    if isinstance(address, tuple) and address:
        host = address[0]
        if isinstance(host, bytes):
            host = host.decode()
        return isinstance(host, str) and (host in _LOOPBACK_NAMES or host.startswith("127."))
    return False


def _check(address: Any) -> None:
    if not _allowed(address):
        raise NetworkBlockedError(f"network access outside loopback is blocked in tests: {address!r}")


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection

    def connect(self: socket.socket, address: Any) -> None:
        if self.family != socket.AF_UNIX:
            _check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family != socket.AF_UNIX:
            _check(address)
        return real_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        _check(address)  # before name resolution, so not even DNS leaves the machine
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)


def test_non_loopback_connection_is_blocked() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(NetworkBlockedError):
        sock.connect(("10.255.255.1", 80))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(NetworkBlockedError):
        sock.connect_ex(("10.255.255.1", 80))
    with pytest.raises(NetworkBlockedError):
        socket.create_connection(("10.255.255.1", 80), timeout=0.01)
    with pytest.raises(NetworkBlockedError):
        socket.create_connection(("example.com", 443), timeout=0.01)


def test_loopback_connection_is_allowed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=1) as client:
            peer, _ = server.accept()
            with peer:
                client.sendall(b"ping")
                assert peer.recv(4) == b"ping"
