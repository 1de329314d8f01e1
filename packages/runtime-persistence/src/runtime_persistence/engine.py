"""Database engines: SQLite (embedded, the default) and PostgreSQL (through psycopg).

`create_engine` returns a SQLAlchemy `Engine` configured for the stores:

- **SQLite**: WAL journal (readers never block the writer), ``synchronous`` configurable with ``FULL``
  (an fsync per commit: a committed boundary survives a power loss) as the default, a busy timeout so
  that writers in other processes wait instead of failing, a WAL checkpoint every 150 pages (SQLite's
  default is 1000; see `_WAL_AUTOCHECKPOINT_PAGES`), foreign keys enforced, and transactions the
  stores begin themselves: ``BEGIN IMMEDIATE`` for writes, so a write transaction holds the database's
  write lock from its first statement and never fails half-way on a lock upgrade. Connections are pooled
  and long-lived; the stores keep one open for their lifetime.
- **PostgreSQL**: the psycopg 3 driver (``pip install "runtime-persistence[postgres]"``); a
  ``postgresql://`` or ``postgres://`` URL selects it.

Nothing here creates or migrates tables: see `runtime_persistence.upgrade`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Final, Literal

import sqlalchemy
from sqlalchemy import Engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from runtime_core.exceptions import ConfigurationError
from runtime_persistence._database import SQLITE_BEGIN_KEY

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_DATABASE_NAME",
    "SqliteSynchronous",
    "create_engine",
    "default_sqlite_url",
]

SqliteSynchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
"""SQLite's ``PRAGMA synchronous`` levels. ``FULL`` is the durable default; ``NORMAL`` in WAL mode may lose
the last commits (never the database) on a power loss, not on a process crash."""

DEFAULT_DATA_DIR: Final = ".agent-runtime"
"""The directory of the embedded database, relative to the project directory."""

DEFAULT_DATABASE_NAME: Final = "runtime.db"
"""The file name of the embedded database."""

_SYNCHRONOUS_LEVELS: Final = ("OFF", "NORMAL", "FULL", "EXTRA")
_WAL_AUTOCHECKPOINT_PAGES: Final = 150
"""WAL pages after which a commit copies the WAL into the database file and the WAL starts over (SQLite's
default: 1000). An fsync of a WAL that grew since the last one also commits the file system's journal (the
new size and blocks), about 1.5 times the cost of one that overwrites frames in place, and SQLite reuses
the WAL file from its start after each checkpoint, never shrinking it. The WAL stops growing after the
first checkpoint, so a smaller threshold shortens the commits that pay for growth after a connection opens
the database, for more frequent but smaller checkpoints. An agent turn's two commits write about 6 pages
each (schema revision 0003): 150 pages end the growth after ~25 commits, a run's first ~12 turns, and a
500-turn run costs no more in total than with 300 (bench/README.md)."""
_POSTGRES_DRIVER: Final = "postgresql+psycopg"
_POSTGRES_EXTRA: Final = "runtime-persistence[postgres]"


def default_sqlite_url(project_dir: str | os.PathLike[str] | None = None) -> str:
    """Return the URL of the embedded database, ``<project_dir>/.agent-runtime/runtime.db``.

    The directory is created if it does not exist (the database file is created by the first connection,
    its tables by `runtime_persistence.upgrade`).

    Args:
        project_dir: The directory that holds ``.agent-runtime``; default the current working directory.

    Returns:
        A ``sqlite:///`` URL with an absolute path.
    """
    base = Path(project_dir) if project_dir is not None else Path.cwd()
    directory = base.resolve() / DEFAULT_DATA_DIR
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / DEFAULT_DATABASE_NAME}"


def create_engine(
    url: str | URL,
    *,
    synchronous: SqliteSynchronous | str = "FULL",
    busy_timeout_s: float = 5.0,
    echo: bool = False,
) -> Engine:
    """Create a SQLAlchemy engine configured for the Agent Runtime stores.

    Args:
        url: A SQLAlchemy URL: ``sqlite:///path/to/runtime.db`` (see `default_sqlite_url`),
            ``sqlite://`` for a private in-memory database, or ``postgresql://user:password@host/db``
            (``postgresql+psycopg://`` is the same; psycopg 3 is the only PostgreSQL driver supported).
        synchronous: SQLite only: ``PRAGMA synchronous`` (``OFF``, ``NORMAL``, ``FULL`` or ``EXTRA``).
        busy_timeout_s: SQLite only: how long a statement waits for another connection's write lock.
        echo: Log every statement (SQLAlchemy's ``echo``), for debugging.

    Returns:
        The engine. Dispose of it (``engine.dispose()``) when done.

    Raises:
        ConfigurationError: The URL names another database, or `synchronous` is not a level.
        ImportError: A PostgreSQL URL without psycopg installed (the message names the extra).
    """
    parsed = make_url(url)
    backend = parsed.drivername.partition("+")[0]
    if backend == "sqlite":
        return _sqlite_engine(parsed, synchronous=synchronous, busy_timeout_s=busy_timeout_s, echo=echo)
    if backend in ("postgresql", "postgres"):
        return _postgres_engine(parsed, echo=echo)
    raise ConfigurationError(
        f"unsupported database {parsed.render_as_string(hide_password=True)!r}: "
        "Agent Runtime stores run on SQLite (sqlite:///path) or PostgreSQL (postgresql://...)",
        setting="database.url",
    )


def _sqlite_engine(url: URL, *, synchronous: str, busy_timeout_s: float, echo: bool) -> Engine:
    level = synchronous.upper()
    if level not in _SYNCHRONOUS_LEVELS:
        raise ConfigurationError(
            f"synchronous={synchronous!r} is not a SQLite synchronous level: "
            f"use one of {', '.join(_SYNCHRONOUS_LEVELS)}",
            setting="database.synchronous",
        )
    if busy_timeout_s < 0:
        raise ConfigurationError(
            f"busy_timeout_s must be >= 0, got {busy_timeout_s}", setting="database.busy_timeout_s"
        )
    if url.drivername != "sqlite":
        raise ConfigurationError(
            f"SQLite driver {url.drivername!r} is not supported: use sqlite:// (the standard library's sqlite3)",
            setting="database.url",
        )
    options: dict[str, Any] = {"echo": echo}
    if url.database in (None, "", ":memory:"):
        # One connection shared by every user of the engine: each new one would be another, empty database.
        options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    engine = sqlalchemy.create_engine(url, **options)
    busy_timeout_ms = round(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # sqlite3 must not open transactions on its own: the "begin" listener below emits BEGIN itself
        # (the recipe of SQLAlchemy's SQLite dialect documentation), which also makes DDL transactional.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {level}")
            cursor.execute(f"PRAGMA wal_autocheckpoint = {_WAL_AUTOCHECKPOINT_PAGES}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # A store asks for BEGIN IMMEDIATE before a write transaction: the write lock is taken (or waited
        # for, up to busy_timeout) at BEGIN, not at the first write, where a deferred transaction that
        # already read could only fail with SQLITE_BUSY.
        connection.exec_driver_sql(connection.info.pop(SQLITE_BEGIN_KEY, "BEGIN"))

    return engine


def _postgres_engine(url: URL, *, echo: bool) -> Engine:
    if url.drivername.partition("+")[2] not in ("", "psycopg"):
        raise ConfigurationError(
            f"PostgreSQL driver {url.drivername!r} is not supported: use postgresql:// or postgresql+psycopg:// "
            "(psycopg 3)",
            setting="database.url",
        )
    if importlib.util.find_spec("psycopg") is None:
        raise ImportError(
            f'PostgreSQL support needs psycopg: install it with `pip install "{_POSTGRES_EXTRA}"`',
            name="psycopg",
        )
    url = url.set(drivername=_POSTGRES_DRIVER)
    connect_args: dict[str, Any] = {}
    if "application_name" not in url.query:
        connect_args["application_name"] = "agent-runtime"
    return sqlalchemy.create_engine(url, echo=echo, connect_args=connect_args)
