"""The throwaway PostgreSQL server of the tests (tests/postgres.py) and the fixtures built on it."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy

from tests import postgres
from tests.persistence.conftest import ENV_SKIP, postgres_unavailable
from tests.postgres import ENV_URL, PostgresServer, PostgresStartError, PostgresUnavailableError, find_bindir


@pytest.fixture(scope="module")
def server(postgres_bindir: Path) -> Iterator[PostgresServer]:
    """A throwaway server of this module's own (the session one may be an external server)."""
    with PostgresServer(bindir=postgres_bindir) as started:
        yield started


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A temp dir the server's system user can enter (pytest's tmp_path is private to the test user)."""
    with tempfile.TemporaryDirectory(prefix="pg-base-") as name:
        os.chmod(name, 0o755)
        yield Path(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _server_pids(server: PostgresServer) -> set[int]:
    """The postmaster and every process it started that PostgreSQL reports (backends, checkpointer, ...)."""
    with server.connect() as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity").fetchall()
    return {server.pid, *(pid for (pid,) in rows)}


def _tables(url: str) -> set[str]:
    engine = sqlalchemy.create_engine(url)
    try:
        return set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_server_accepts_psycopg_and_sqlalchemy_connections(server: PostgresServer, postgres_bindir: Path) -> None:
    version = subprocess.run(
        [str(postgres_bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    with psycopg.connect(server.conninfo) as conn:
        user, server_version = conn.execute("SELECT current_user, current_setting('server_version')").fetchone() or ()
    assert user == "postgres"
    assert server_version.split()[0] in version

    assert server.url == f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/postgres"
    engine = sqlalchemy.create_engine(server.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT 40 + 2")).scalar_one() == 42
    finally:
        engine.dispose()


def test_databases_are_isolated(server: PostgresServer) -> None:
    first, second = server.create_database("iso_first"), server.create_database("iso_second")
    assert first.endswith("/iso_first")
    assert second.endswith("/iso_second")
    with server.connect("iso_first") as conn:
        conn.execute("CREATE TABLE runs (id int PRIMARY KEY)")
        conn.execute("INSERT INTO runs VALUES (1)")

    assert _tables(first) == {"runs"}
    assert _tables(second) == set()
    with server.connect("iso_second") as conn, pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT * FROM runs")


def test_drop_database_disconnects_its_sessions(server: PostgresServer) -> None:
    server.create_database("dropped")
    with server.connect("dropped") as leaked:  # a pool a test forgot to dispose
        server.drop_database("dropped")
        with pytest.raises(psycopg.OperationalError):
            leaked.execute("SELECT 1")
    with server.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'dropped'").fetchone() == (0,)


def test_database_names_are_plain_identifiers(server: PostgresServer) -> None:
    for bad in ("a-b", "x; DROP DATABASE postgres", "template1", "", "1abc"):
        with pytest.raises(ValueError, match="database names"):
            server.create_database(bad)


def test_listens_on_127_0_0_1_only_with_the_socket_in_its_directory(server: PostgresServer) -> None:
    with server.connect() as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW unix_socket_directories").fetchone() == (str(server.directory),)
        assert conn.execute("SELECT host(inet_server_addr())").fetchone() == ("127.0.0.1",)
    assert server.directory is not None
    assert (server.directory / f".s.PGSQL.{server.port}").is_socket()
    with psycopg.connect(host=str(server.directory), port=server.port, user="postgres", dbname="postgres") as conn:
        assert conn.execute("SELECT inet_server_addr()").fetchone() == (None,)  # None: over the Unix socket

    # The kernel's view, where it is readable: the port listens on 127.0.0.1 and on no other address.
    if Path("/proc/net/tcp").exists():
        listening = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, port = local.split(":")
                if state == "0A" and int(port, 16) == server.port:  # 0A: LISTEN
                    listening.add(address)
        assert listening == {"0100007F"}  # 127.0.0.1, little-endian hex


def test_durability_settings_are_postgres_defaults(server: PostgresServer) -> None:
    with server.connect() as conn:
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            assert conn.execute(f"SHOW {name}").fetchone() == ("on",)


def test_restart_keeps_committed_data_and_stop_removes_everything(postgres_bindir: Path) -> None:
    server = PostgresServer(bindir=postgres_bindir).start()
    try:
        directory, port = server.directory, server.port
        assert directory is not None
        assert (directory / "data" / "PG_VERSION").is_file()
        with server.connect() as conn:
            conn.execute("CREATE TABLE t (v text)")
            conn.execute("INSERT INTO t VALUES ('committed')")
        first_pid = server.pid

        server.restart("immediate")  # a crash as far as the database is concerned
        assert not _alive(first_pid)
        assert server.port == port
        with server.connect() as conn:
            assert conn.execute("SELECT v FROM t").fetchall() == [("committed",)]
        pids = _server_pids(server)
        assert len(pids) >= 4  # postmaster, checkpointer, walwriter, this backend, ...
    finally:
        server.stop()

    assert not directory.exists()
    assert [pid for pid in pids if _alive(pid)] == []
    assert server.directory is None
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.port
    server.stop()  # idempotent


def test_a_failing_with_block_still_stops_the_server(postgres_bindir: Path) -> None:
    seen: list[tuple[Path | None, int]] = []

    def use_and_fail() -> None:
        with PostgresServer(bindir=postgres_bindir, settings={"fsync": "off"}) as server:
            seen.append((server.directory, server.pid))
            with server.connect() as conn:
                assert conn.execute("SHOW fsync").fetchone() == ("off",)  # settings= overrides the defaults
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        use_and_fail()
    [(directory, pid)] = seen
    assert directory is not None
    assert not directory.exists()
    assert not _alive(pid)


def test_a_port_taken_before_the_server_binds_it_is_replaced(
    postgres_bindir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_free_port = postgres._free_port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        taken: int = squatter.getsockname()[1]
        chosen = iter([taken])
        monkeypatch.setattr(postgres, "_free_port", lambda: next(chosen, None) or real_free_port())
        with PostgresServer(bindir=postgres_bindir) as server:
            assert server.port != taken
            assert "could not bind" in server.log_tail()  # the first attempt, retried on another port
            with server.connect() as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_failed_start_reports_the_log_tail_and_cleans_up(postgres_bindir: Path, reachable_dir: Path) -> None:
    server = PostgresServer(bindir=postgres_bindir, base_dir=reachable_dir, settings={"shared_buffers": "plenty"})
    with pytest.raises(PostgresStartError) as caught:
        server.start()
    assert 'invalid value for parameter "shared_buffers"' in caught.value.log_tail
    assert "--- log tail ---" in str(caught.value)
    assert "exited during start-up" in str(caught.value)
    assert list(reachable_dir.iterdir()) == []


def test_an_existing_server_is_used_not_started(server: PostgresServer) -> None:
    external = PostgresServer(url=server.url)  # any of postgresql://, postgres://, postgresql+psycopg://
    with external:
        assert external.is_external
        assert external.data_dir is None
        url = external.create_database("made_through_external")
        assert url == server.url_for("made_through_external")
        external.drop_database("made_through_external")
    with server.connect() as conn:  # stopping the handle left the server running
        assert conn.execute("SELECT 1").fetchone() == (1,)

    with pytest.raises(PostgresStartError, match="cannot connect"):
        PostgresServer(url=f"postgresql://postgres@127.0.0.1:{server.port}/no_such_database").start()
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        PostgresServer(url="mysql://root@127.0.0.1/x")


def test_from_environment_prefers_the_url(monkeypatch: pytest.MonkeyPatch, server: PostgresServer) -> None:
    monkeypatch.setenv(ENV_URL, server.conninfo)
    assert PostgresServer.from_environment().is_external
    monkeypatch.setenv(ENV_URL, "")
    assert not PostgresServer.from_environment(bindir=server._bindir).is_external


def test_find_bindir(postgres_bindir: Path, tmp_path: Path) -> None:
    assert (postgres_bindir / "initdb").is_file()
    assert find_bindir(postgres_bindir) == postgres_bindir
    with pytest.raises(PostgresUnavailableError, match=f"not found; looked in: {tmp_path}.*{ENV_URL}"):
        find_bindir(tmp_path)


def test_postgres_url_is_a_fresh_database(postgres_url: str, postgres_server: PostgresServer) -> None:
    assert postgres_url.startswith("postgresql+psycopg://")
    database = postgres_url.rsplit("/", 1)[1]
    assert database.startswith("t_test_postgres_url_is_a_fresh_database_")
    assert _tables(postgres_url) == set()
    with postgres_server.connect(database) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (database,)


def test_missing_postgres_fails_unless_a_skip_is_requested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_SKIP, raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.fail.Exception, match=f"must run.*{ENV_SKIP}=1"):
        postgres_unavailable("no binaries")

    monkeypatch.setenv(ENV_SKIP, "1")
    with pytest.raises(pytest.skip.Exception, match=f"{ENV_SKIP}=1: no binaries"):
        postgres_unavailable("no binaries")

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not honoured in CI"):
        postgres_unavailable("no binaries")
