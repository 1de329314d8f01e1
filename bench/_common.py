"""What the benchmark scripts share: the no-network guard, versions, ratios and the build of ours measured.

The scripts import it as ``from _common import ...``: run as ``python bench/<script>.py``, the script's own
directory is the first entry of ``sys.path``.
"""

from __future__ import annotations

import importlib.metadata
import socket
import sys
from typing import Any

__all__ = [
    "NETWORK_ATTEMPTS",
    "NetworkBlockedError",
    "block_network",
    "compiled_modules",
    "describe_build",
    "ratio",
    "version",
]

NETWORK_ATTEMPTS: list[str] = []
"""What the guard refused, in order (a benchmark reports how many)."""


class NetworkBlockedError(OSError):
    """A framework tried to reach the network during the benchmark."""


def block_network(script: str) -> None:
    """Make every non-Unix socket connection and every name lookup fail (and count it), for the whole process.

    Only Python's ``socket`` module is patched: a C library's own sockets (libpq's, say) are not affected.

    Args:
        script: The benchmark's path, named in the error message (``"bench/loop_inmemory.py"``).
    """
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(what: str) -> NetworkBlockedError:
        NETWORK_ATTEMPTS.append(what)
        return NetworkBlockedError(f"{script} blocks the network: {what}")

    def connect(self: socket.socket, address: Any) -> None:
        if self.family != socket.AF_UNIX:
            raise refuse(f"connect {address!r}")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family != socket.AF_UNIX:
            raise refuse(f"connect_ex {address!r}")
        return real_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        raise refuse(f"create_connection {address!r}")

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise refuse(f"getaddrinfo {host!r}")

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.create_connection = create_connection  # type: ignore[assignment]
    socket.getaddrinfo = getaddrinfo


def version(dist: str) -> str | None:
    """The installed version of distribution `dist`, or ``None`` when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either was not measured (or the denominator is 0)."""
    return None if numerator is None or not denominator else numerator / denominator


def compiled_modules() -> list[str]:
    """The modules of our packages imported so far that run as compiled extensions (mypyc).

    Empty when ours runs as pure Python, as in the editable workspace venv; ``make bench-env`` builds the
    environment with the release build (see bench/README.md).
    """
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name.startswith("runtime_")
        and not name.endswith("__mypyc")  # the library holding the compiled code, not a module of ours
        and str(getattr(module, "__file__", "")).endswith((".so", ".pyd"))
    )


def describe_build(compiled: list[str]) -> str:
    """One line saying which build of ours a benchmark measured."""
    if not compiled:
        return "ours: pure Python (the release build compiles the agent loop: `make bench-env`)"
    return f"ours: release build, {len(compiled)} modules compiled with mypyc ({', '.join(compiled)})"
