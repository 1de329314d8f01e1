"""A throwaway PostgreSQL server for tests and benchmarks (DESIGN §13).

``PostgresServer`` runs ``initdb`` into a fresh temporary directory and starts ``postgres`` on it, listening on
127.0.0.1 only, on a free random port, with its Unix socket inside that directory and trust authentication
(nothing else can reach a loopback-only throwaway cluster). ``fsync`` stays on, so commit latencies measured
against it are real. ``stop()`` shuts the server down (immediate mode by default) and deletes the directory;
it also runs when the ``with`` block fails, at interpreter exit for a server nobody stopped, and, on Linux,
the kernel stops the server when the process that started it dies (``PR_SET_PDEATHSIG``).

PostgreSQL refuses to run as root: when the tests run as root the server runs as the ``postgres`` system
user (or ``os_user``), otherwise as the current user.

The binaries are found through ``bindir``, else ``pg_config --bindir``, else the usual install locations
(``/usr/lib/postgresql/<major>/bin``, the newest first, ...), else ``initdb`` on ``PATH``.

With ``url`` (``PostgresServer.from_environment()`` reads it from ``AGENT_RUNTIME_TEST_POSTGRES_URL``) no
server is started: databases are created on (and dropped from) that existing server instead.

This module imports only the standard library; psycopg is imported where a connection is needed, so that
benchmarks and any test environment with psycopg can use it.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import quote, unquote, urlsplit, urlunsplit

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "ENV_URL",
    "PostgresServer",
    "PostgresStartError",
    "PostgresUnavailableError",
    "find_bindir",
]

ENV_URL = "AGENT_RUNTIME_TEST_POSTGRES_URL"
SUPERUSER = "postgres"

# Start-up speed and quiet logs; everything that matters for durability (fsync, synchronous_commit,
# full_page_writes, wal_level) keeps PostgreSQL's defaults so that benchmark numbers are real.
DEFAULT_SETTINGS: Mapping[str, str] = {
    "shared_buffers": "32MB",
    "max_connections": "100",
    "fsync": "on",
    "synchronous_commit": "on",
    "jit": "off",  # JIT compilation only adds latency to the small queries of tests
    "timezone": "UTC",
    "logging_collector": "off",  # the log goes to stderr, which is server.log in the temp dir
    "log_min_messages": "warning",
    "log_checkpoints": "off",  # on by default since PostgreSQL 15
    "log_line_prefix": "%m [%p] ",
}

_SEARCH_GLOBS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # RHEL, Fedora (PGDG)
    "/opt/homebrew/opt/postgresql@*/bin",  # Homebrew on Apple silicon
    "/usr/local/opt/postgresql@*/bin",  # Homebrew on Intel
    "/usr/local/pgsql/bin",  # built from source
    "/Applications/Postgres.app/Contents/Versions/*/bin",
)
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS; leave room for "/.s.PGSQL.65535"
_LOG_TAIL_LINES = 40
_PORT_ATTEMPTS = 5  # a random free port can be taken between choosing it and the server binding it


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server can be started here: the binaries or a non-root user to run them are missing."""


class PostgresStartError(RuntimeError):
    """``initdb`` or the server failed to start; the message ends with the tail of the server log.

    Attributes:
        log_tail: the last lines of the log (empty when there was none).
    """

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message, log_tail)
        self.log_tail = log_tail

    def __str__(self) -> str:
        message = self.args[0]
        return f"{message}\n--- log tail ---\n{self.log_tail}" if self.log_tail else message


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", str(path)))


def find_bindir(bindir: str | os.PathLike[str] | None = None) -> Path:
    """Return the directory holding the PostgreSQL server binaries (``initdb`` and ``postgres``).

    Args:
        bindir: use this directory (it must hold the binaries) instead of searching.

    Raises:
        PostgresUnavailableError: no directory with the binaries was found; the message lists where it looked.
    """
    candidates: list[Path] = []
    if bindir is not None:
        candidates.append(Path(bindir))
    else:
        pg_config = shutil.which("pg_config")
        if pg_config is not None:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
                candidates.append(Path(out.stdout.strip()))
        for pattern in _SEARCH_GLOBS:
            candidates.extend(sorted((Path(p) for p in glob.glob(pattern)), key=_version_key, reverse=True))
        initdb = shutil.which("initdb")
        if initdb is not None:
            candidates.append(Path(initdb).resolve().parent)
    for candidate in candidates:
        if all(os.access(candidate / tool, os.X_OK) for tool in ("initdb", "postgres")):
            return candidate
    looked = ", ".join(str(c) for c in candidates) or "nowhere (no pg_config, no known install directory)"
    raise PostgresUnavailableError(
        "PostgreSQL server binaries (initdb, postgres) not found; looked in: "
        f"{looked}. Install the PostgreSQL server (Debian: apt-get install postgresql) or set {ENV_URL} "
        "to the URL of an existing server."
    )


def _parse_url(url: str) -> tuple[str, str]:
    """Split an existing server's URL into (netloc with credentials, database), checking its scheme."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgres", "postgresql+psycopg"} or not parts.hostname:
        raise ValueError(f"not a PostgreSQL URL (postgresql://user[:password]@host[:port]/database): {url!r}")
    return parts.netloc, unquote(parts.path.lstrip("/")) or "postgres"


def _check_database_name(name: str) -> str:
    # Kept to plain identifiers so that names need no quoting in URLs or SQL, and never name a system database.
    if not _DATABASE_NAME.fullmatch(name) or name in {"postgres", "template0", "template1"}:
        raise ValueError(f"database names are letters, digits and _ (not a system database): {name!r}")
    return name


class _RunAs:
    """The account the server processes run as (the current user unless running as root)."""

    def __init__(self, os_user: str | None) -> None:
        self.name: str | None = None
        self.uid = os.getuid()
        self.gid = os.getgid()
        self.groups: list[int] = []
        self.home: str | None = None
        if sys.platform == "win32" or os.geteuid() != 0:
            return  # not root: run as the current user (only root can switch users)
        import pwd  # POSIX only, like running as another user

        name = os_user or SUPERUSER
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise PostgresUnavailableError(
                f"PostgreSQL refuses to run as root and there is no {name!r} system user to run it as: "
                f"create one (useradd --system {name}) or pass os_user="
            ) from None
        if entry.pw_uid == 0:
            raise PostgresUnavailableError(f"PostgreSQL refuses to run as root; {name!r} is root")
        self.name, self.uid, self.gid, self.home = name, entry.pw_uid, entry.pw_gid, entry.pw_dir
        self.groups = os.getgrouplist(name, entry.pw_gid)

    @property
    def switches(self) -> bool:
        return self.name is not None and self.uid != os.geteuid()

    def popen_kwargs(self) -> dict[str, Any]:
        if not self.switches:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": self.groups}

    def can_traverse(self, path: Path) -> bool:
        """Whether this account can reach ``path`` (every ancestor searchable), judged from the mode bits."""
        if not self.switches:
            return True
        for directory in (path, *path.parents):
            mode = directory.stat().st_mode
            owner = directory.stat().st_uid
            if owner == self.uid:
                bit = stat.S_IXUSR
            elif directory.stat().st_gid in self.groups:
                bit = stat.S_IXGRP
            else:
                bit = stat.S_IXOTH
            if not mode & bit:
                return False
        return True


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel send SIGQUIT (immediate shutdown) when this thread dies (Linux)."""
    # PR_SET_PDEATHSIG fires when the *thread* that forked exits: only safe from the main thread, which
    # lives as long as the process. Elsewhere the atexit hook is the only safety net.
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        # Runs in the child after the uid switch (the kernel clears the setting when credentials change).
        prctl(pr_set_pdeathsig, int(signal.SIGQUIT), 0, 0, 0)

    return preexec


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


_RUNNING: set[PostgresServer] = set()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):
            server.stop()


class PostgresServer:
    """A throwaway PostgreSQL server in a temporary directory, or a handle on an existing server.

    Use it as a context manager (``with PostgresServer() as server: ...``) or call ``start()`` and
    ``stop()``. Each test should work in its own database: ``create_database()`` returns its SQLAlchemy URL.

    Args:
        bindir: directory of the PostgreSQL binaries (default: ``find_bindir()``).
        url: an existing server's URL (``postgresql://user[:password]@host:port/database``; the database
            is the one connected to for ``CREATE DATABASE``): start nothing, create databases there.
        os_user: the system user the server runs as when the tests run as root (default ``postgres``).
        base_dir: where the temporary directory is created (default: the system temp dir).
        settings: server settings (``postgresql.conf`` names) overriding ``DEFAULT_SETTINGS``.
        startup_timeout: seconds to wait for the server to accept connections.
    """

    def __init__(
        self,
        *,
        bindir: str | os.PathLike[str] | None = None,
        url: str | None = None,
        os_user: str | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self._external = _parse_url(url) if url is not None else None
        self._bindir = None if url is not None else find_bindir(bindir)
        self._os_user = os_user
        self._base_dir = Path(base_dir) if base_dir is not None else None
        self._settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self._startup_timeout = startup_timeout
        self._run_as: _RunAs | None = None
        self._tempdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._started = False

    @classmethod
    def from_environment(cls, **kwargs: Any) -> PostgresServer:
        """Use the server named by ``AGENT_RUNTIME_TEST_POSTGRES_URL`` if set, else a throwaway one.

        Args:
            **kwargs: passed to the constructor for a throwaway server.
        """
        url = os.environ.get(ENV_URL, "").strip()
        return cls(url=url) if url else cls(**kwargs)

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server (run ``initdb`` first); for an existing server, check that it answers.

        Raises:
            PostgresStartError: ``initdb`` or the server failed; the message includes the log tail.
            PostgresUnavailableError: no account to run the server as.
            RuntimeError: already started.
        """
        if self._started:
            raise RuntimeError("this PostgresServer is already started")
        if self._external is not None:
            try:
                with self.connect():
                    pass
            except Exception as exc:  # psycopg.OperationalError, without importing psycopg here
                raise PostgresStartError(f"cannot connect to the existing server {self.url!r}: {exc}") from exc
            self._started = True
            return self
        self._run_as = run_as = _RunAs(self._os_user)
        self._tempdir = self._make_tempdir(run_as)
        _RUNNING.add(self)
        self._started = True
        try:
            self._initdb(run_as)
            self._launch(run_as)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, mode: Literal["immediate", "fast"] = "immediate") -> None:
        """Stop the server, wait for it to exit and delete its directory. Idempotent; a no-op when external.

        Args:
            mode: ``immediate`` (SIGQUIT, no shutdown checkpoint: fastest) or ``fast`` (SIGINT, clean).
        """
        try:
            self._terminate(mode)
        finally:
            _RUNNING.discard(self)
            self._started = False
            self._port = None
            if self._tempdir is not None:
                tempdir, self._tempdir = self._tempdir, None
                shutil.rmtree(tempdir)

    def restart(self, mode: Literal["immediate", "fast"] = "immediate") -> None:
        """Stop the server process and start it again on the same data and port.

        ``immediate`` is a crash as far as the database is concerned: what was committed must survive it.

        Args:
            mode: how the server is stopped (see ``stop``).
        """
        if self._external is not None or self._process is None or self._run_as is None:
            raise RuntimeError("restart() needs a running throwaway server")
        self._terminate(mode)
        try:
            self._launch(self._run_as, port=self._port)
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = "external" if self._external is not None else f"data={self.data_dir}"
        state = "running" if self._started else "stopped"
        return f"<PostgresServer {state} {where} url={self.url if self._started else None!r}>"

    # -- addresses ----------------------------------------------------------------------------------------------

    @property
    def is_external(self) -> bool:
        """Whether this is a handle on an existing server (``url=``) rather than a throwaway one."""
        return self._external is not None

    @property
    def port(self) -> int:
        """The TCP port of a throwaway server (on 127.0.0.1)."""
        if self._port is None:
            raise RuntimeError("the server is not running")
        return self._port

    @property
    def pid(self) -> int:
        """The process id of a throwaway server's postmaster."""
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process.pid

    @property
    def directory(self) -> Path | None:
        """The temporary directory (data directory, Unix socket and logs) of a throwaway server."""
        return self._tempdir

    @property
    def data_dir(self) -> Path | None:
        """The data directory of a throwaway server (``None`` when external or stopped)."""
        return None if self._tempdir is None else self._tempdir / "data"

    @property
    def log_path(self) -> Path | None:
        """The server log of a throwaway server (its stderr)."""
        return None if self._tempdir is None else self._tempdir / "server.log"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the maintenance database (``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``)."""
        return self.url_for(self._maintenance_database)

    @property
    def conninfo(self) -> str:
        """libpq URL of the maintenance database, for ``psycopg.connect``."""
        return self.conninfo_for(self._maintenance_database)

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of ``database`` on this server."""
        return "postgresql+psycopg://" + self.conninfo_for(database).removeprefix("postgresql://")

    def conninfo_for(self, database: str) -> str:
        """libpq URL (``postgresql://...``) of ``database`` on this server."""
        netloc = self._external[0] if self._external is not None else f"{SUPERUSER}@127.0.0.1:{self.port}"
        return urlunsplit(("postgresql", netloc, "/" + quote(database), "", ""))

    @property
    def _maintenance_database(self) -> str:
        return self._external[1] if self._external is not None else "postgres"

    # -- databases ----------------------------------------------------------------------------------------------

    def connect(self, database: str | None = None, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        """Open a psycopg connection (autocommit by default) to ``database`` (default: the maintenance one)."""
        import psycopg

        target = self._maintenance_database if database is None else database
        return psycopg.connect(self.conninfo_for(target), autocommit=autocommit, connect_timeout=10)

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its SQLAlchemy URL.

        Args:
            name: the database name (letters, digits, ``_``); default: a fresh unique ``test_...`` name.
        """
        from psycopg import sql

        name = _check_database_name(name if name is not None else f"test_{uuid.uuid4().hex[:16]}")
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists, disconnecting its remaining sessions (leaked pools included)."""
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(_check_database_name(name)))
            )

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of the server log (empty when external or stopped)."""
        return "" if self.log_path is None else _tail(self.log_path, lines)

    # -- internals ----------------------------------------------------------------------------------------------

    def _make_tempdir(self, run_as: _RunAs) -> Path:
        base = self._base_dir or Path(tempfile.gettempdir())
        # The server user must reach the directory, and the Unix socket path must fit in sun_path.
        if self._base_dir is None and (
            len(str(base.resolve())) > _SOCKET_PATH_MAX - 30 or not run_as.can_traverse(base.resolve())
        ):
            base = Path("/tmp")  # short, and traversable by every user
        tempdir = Path(tempfile.mkdtemp(prefix="agent-runtime-pg-", dir=base)).resolve()
        if run_as.switches:
            os.chown(tempdir, run_as.uid, run_as.gid)
            if not run_as.can_traverse(tempdir):
                shutil.rmtree(tempdir)
                raise PostgresUnavailableError(f"user {run_as.name!r} cannot reach {tempdir}; pass base_dir=")
        return tempdir

    def _child_env(self, run_as: _RunAs) -> dict[str, str]:
        # PG* variables (PGDATA, PGPORT, PGHOST, ...) of the developer's shell must not steer the server.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["LC_ALL"] = "C"  # messages in English (start-up errors are matched) and no locale warnings
        if run_as.switches and run_as.name is not None and run_as.home is not None:
            env.update(HOME=run_as.home, USER=run_as.name, LOGNAME=run_as.name)
        return env

    def _paths(self) -> tuple[Path, Path]:
        if self._tempdir is None or self._bindir is None:
            raise RuntimeError("the server is not started")
        return self._tempdir, self._bindir

    def _initdb(self, run_as: _RunAs) -> None:
        tempdir, bindir = self._paths()
        log = tempdir / "initdb.log"
        command = [
            str(bindir / "initdb"),
            f"--pgdata={tempdir / 'data'}",
            f"--username={SUPERUSER}",
            "--auth=trust",  # loopback and a private socket directory only: nothing else can connect
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # initdb's own flush only; the server keeps fsync on
            "--no-instructions",
        ]
        with log.open("wb") as out:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tempdir,
                env=self._child_env(run_as),
                timeout=self._startup_timeout,
                check=False,
                **run_as.popen_kwargs(),
            )
        if result.returncode != 0:
            raise PostgresStartError(f"initdb failed with exit status {result.returncode}", _tail(log))

    def _launch(self, run_as: _RunAs, port: int | None = None) -> None:
        """Start the postmaster and wait until it is ready, retrying on another port if the one chosen is taken."""
        for _attempt in range(_PORT_ATTEMPTS if port is None else 1):
            self._port = port if port is not None else _free_port()
            log = self._paths()[0] / "server.log"
            seen = log.stat().st_size if log.exists() else 0  # judge this attempt by its own log lines
            self._process = self._spawn(run_as, self._port)
            failure = self._wait_ready()
            if failure is None:
                return
            self._terminate("immediate")
            with log.open("rb") as lines:
                lines.seek(seen)
                attempt_log = lines.read().decode(errors="replace")
            if port is None and "could not bind" in attempt_log:
                continue
            raise PostgresStartError(failure, "\n".join(attempt_log.splitlines()[-_LOG_TAIL_LINES:]))
        raise PostgresStartError(f"no free port after {_PORT_ATTEMPTS} attempts", self.log_tail())

    def _spawn(self, run_as: _RunAs, port: int) -> subprocess.Popen[bytes]:
        tempdir, bindir = self._paths()
        command = [
            str(bindir / "postgres"),
            "-D",
            str(tempdir / "data"),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={tempdir}",
        ]
        for name, value in self._settings.items():
            command += ["-c", f"{name}={value}"]
        with (tempdir / "server.log").open("ab") as log:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tempdir,
                env=self._child_env(run_as),
                start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, which stops the server
                preexec_fn=_parent_death_signal(),  # only prctl(), see there
                **run_as.popen_kwargs(),
            )

    def _wait_ready(self) -> str | None:
        """Wait for the postmaster to report ``ready`` in ``postmaster.pid``; return why not, or ``None``."""
        tempdir, _ = self._paths()
        process = self._process
        if process is None:
            raise RuntimeError("the server is not started")
        pid_file = tempdir / "data" / "postmaster.pid"
        deadline = time.monotonic() + self._startup_timeout
        delay = 0.005
        while time.monotonic() < deadline:
            status = process.poll()
            if status is not None:
                return f"the PostgreSQL server exited during start-up with status {status}"
            with contextlib.suppress(OSError):
                # Lines: pid, data dir, start time, port, socket dir, listen address, shmem key, status.
                lines = pid_file.read_text().splitlines()
                if len(lines) >= 8 and lines[0].strip() == str(process.pid) and lines[7].strip() == "ready":
                    return None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return f"the PostgreSQL server was not ready after {self._startup_timeout:g}s"

    def _terminate(self, mode: Literal["immediate", "fast"]) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT if mode == "immediate" else signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        else:
            process.wait()
