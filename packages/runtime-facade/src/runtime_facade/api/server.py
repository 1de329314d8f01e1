"""`serve`: the runtime and its HTTP API under uvicorn (``agent-runtime serve``)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import uvicorn

from runtime_core.exceptions import ConfigurationError
from runtime_facade.api.app import create_app
from runtime_facade.api.metrics import PrometheusExport
from runtime_facade.config import ProjectConfig
from runtime_facade.runtime import create_runtime

__all__ = ["resolve_token", "serve"]

_log = logging.getLogger("runtime_facade.api")

LEASE_TTL = timedelta(seconds=30)
"""The server renews the leases of the runs it drives; a killed server's runs are free after this long."""

_SHUTDOWN_GRACE_S = 5
"""Seconds open event streams get to finish when the server stops, before they are cut."""


def resolve_token(config: ProjectConfig, *, token_file: str | os.PathLike[str] | None = None) -> str | None:
    """The bearer token of the API; ``None`` when none is configured.

    The first of: `token_file`, ``server.token`` (``AGENT_RUNTIME_SERVER_TOKEN``), ``server.token_file``.

    Raises:
        ConfigurationError: The token file cannot be read, or the token is blank.
    """
    if token_file is not None:
        return _read_token(Path(token_file).expanduser(), "token_file")
    if config.server.token is not None:
        token = config.server.token.get_secret_value().strip()
        if not token:
            raise ConfigurationError("AGENT_RUNTIME_SERVER_TOKEN is blank", setting="server.token")
        return token
    path = config.resolve(config.server.token_file)
    return None if path is None else _read_token(path, "server.token_file")


def _read_token(path: Path, setting: str) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigurationError(f"cannot read the token file {str(path)!r}: {reason}", setting=setting) from None
    if not token:
        raise ConfigurationError(f"the token file {str(path)!r} is empty", setting=setting)
    return token


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _listen(host: str, port: int) -> socket.socket:
    """Bind before serving, so that a taken port is one clear error and port 0's real port can be logged."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as error:
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {error.strerror or error}", setting="server.port"
        ) from None


def serve(
    config: ProjectConfig,
    *,
    database: str | None = None,
    host: str | None = None,
    port: int | None = None,
    token_file: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve the HTTP API until interrupted (SIGINT or SIGTERM), then close the runtime.

    Runs wait in the server for approval answers; leases last 30 s, so a run of a killed server can be
    resumed by another (or by this one restarted) with ``steal`` at once, or without it after 30 s.

    Args:
        config: The project configuration (database, defaults of the runtime, ``[server]``).
        database: A SQLAlchemy URL instead of the configuration's database.
        host: The interface to bind instead of ``server.host``.
        port: The TCP port instead of ``server.port`` (0: any free port, logged).
        token_file: A file holding the bearer token, instead of the configured token.
        announce: Called with the server's URL once it listens (default: an INFO record of this module's
            logger, ``Agent Runtime API listening on <url>``).

    Raises:
        ConfigurationError: No token is configured and `host` is not a loopback address, the token cannot be
            read, or the address cannot be bound (and what `create_runtime` raises).
    """
    host = host or config.server.host
    port = config.server.port if port is None else port
    token = resolve_token(config, token_file=token_file)
    if token is None and not _is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve on {host} without a bearer token: set AGENT_RUNTIME_SERVER_TOKEN or "
            "server.token_file (or pass a token file), or bind a loopback address such as 127.0.0.1",
            setting="server.host",
        )
    asyncio.run(_serve(config, database, host, port, token, announce or _announce))


def _announce(url: str) -> None:
    _log.info("Agent Runtime API listening on %s", url)


async def _serve(
    config: ProjectConfig,
    database: str | None,
    host: str,
    port: int,
    token: str | None,
    announce: Callable[[str], None],
) -> None:
    export = PrometheusExport()
    runtime = create_runtime(database, config=config, approval_wait=True, lease_ttl=LEASE_TTL, telemetry=export.bridge)
    try:
        app = create_app(runtime, token=token, agents_dir=config.root, metrics=export)
        sock = _listen(host, port)
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        announce(f"http://{shown}:{bound}")
        if token is None:
            _log.warning("no bearer token configured: serving without authentication on %s", host)
        server = uvicorn.Server(
            # log_config=None: the server is a library call here; whoever runs it configures logging.
            uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=_SHUTDOWN_GRACE_S, lifespan="off")
        )
        await server.serve(sockets=[sock])
    finally:
        await runtime.aclose()
        export.shutdown()
