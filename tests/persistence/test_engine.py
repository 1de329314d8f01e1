"""Engines: SQLite pragmas, URLs, the embedded default, connections kept open and no thread hop."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.pool import ConnectionPoolEntry

from runtime_core import ConfigurationError, TurnStartedPayload
from runtime_persistence import (
    DEFAULT_DATA_DIR,
    DEFAULT_DATABASE_NAME,
    SqlRunStore,
    create_engine,
    default_sqlite_url,
)
from tests.persistence.support import draft, migrated_engine, new_run


def _pragmas(url: str, **options: Any) -> dict[str, Any]:
    engine = create_engine(url, **options)
    try:
        with engine.connect() as connection:
            return {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "wal_autocheckpoint")
            }
    finally:
        engine.dispose()


def test_sqlite_defaults_are_durable(tmp_path: Path) -> None:
    pragmas = _pragmas(f"sqlite:///{tmp_path / 'a.db'}")
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "busy_timeout": 5000,
        "wal_autocheckpoint": 150,
    }


@pytest.mark.parametrize(("level", "value"), [("OFF", 0), ("normal", 1), ("FULL", 2), ("EXTRA", 3)])
def test_sqlite_synchronous_is_configurable(tmp_path: Path, level: str, value: int) -> None:
    pragmas = _pragmas(f"sqlite:///{tmp_path / 'a.db'}", synchronous=level, busy_timeout_s=0.25)
    assert pragmas["synchronous"] == value
    assert pragmas["busy_timeout"] == 250
    assert pragmas["journal_mode"] == "wal"


def test_bad_settings_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="synchronous level") as raised:
        create_engine(f"sqlite:///{tmp_path / 'a.db'}", synchronous="sometimes")
    assert raised.value.setting == "database.synchronous"
    with pytest.raises(ConfigurationError, match="busy_timeout_s"):
        create_engine("sqlite://", busy_timeout_s=-1)
    with pytest.raises(ConfigurationError, match="unsupported database") as unsupported:
        create_engine("mysql://user:secret@db/x")
    assert "secret" not in str(unsupported.value)
    with pytest.raises(ConfigurationError, match="psycopg 3"):
        create_engine("postgresql+psycopg2://db/x")
    with pytest.raises(ConfigurationError, match="sqlite3"):
        create_engine("sqlite+pysqlcipher://")


@pytest.mark.parametrize(
    "url", ["postgresql://u@127.0.0.1:1/x", "postgres://u@127.0.0.1:1/x", "postgresql+psycopg://u@h/x"]
)
def test_postgres_urls_use_psycopg(url: str) -> None:
    engine = create_engine(url)  # connects lazily: nothing is reached here
    try:
        assert engine.dialect.name == "postgresql"
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_postgres_without_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "psycopg" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ImportError, match=r"runtime-persistence\[postgres\]"):
        create_engine("postgresql://u@h/x")


def test_default_sqlite_url_creates_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = default_sqlite_url(tmp_path / "project")
    assert url == f"sqlite:///{tmp_path / 'project' / DEFAULT_DATA_DIR / DEFAULT_DATABASE_NAME}"
    assert (tmp_path / "project" / DEFAULT_DATA_DIR).is_dir()
    monkeypatch.chdir(tmp_path)
    assert default_sqlite_url() == f"sqlite:///{tmp_path / DEFAULT_DATA_DIR / DEFAULT_DATABASE_NAME}"
    assert not (tmp_path / DEFAULT_DATA_DIR / DEFAULT_DATABASE_NAME).exists(), "no database before it is used"


def test_in_memory_database_is_shared_by_the_engine() -> None:
    with migrated_engine("sqlite://") as engine:

        async def scenario() -> None:
            store = SqlRunStore(engine)
            run_id, _ = await new_run(store)
            other = SqlRunStore(engine)
            assert (await other.get_run(run_id)).id == run_id
            await store.close()
            await other.close()

        asyncio.run(scenario())


def test_sqlite_store_keeps_one_connection_and_runs_inline(tmp_path: Path) -> None:
    """One pool checkout for the store's lifetime; every statement on the caller's thread; one commit per append."""
    with migrated_engine(f"sqlite:///{tmp_path / 'a.db'}") as engine:
        checkouts: list[int] = []
        statements: list[tuple[int, str]] = []

        @event.listens_for(engine, "checkout")
        def count(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
            checkouts.append(1)
            dbapi_connection.set_trace_callback(lambda sql: statements.append((threading.get_ident(), sql)))

        async def scenario() -> None:
            store = SqlRunStore(engine)
            _, lease = await new_run(store)
            statements.clear()
            for turn in range(1, 21):
                await store.append(lease, [draft(TurnStartedPayload(), turn=turn)])
            await store.close()

        asyncio.run(scenario())
        assert len(checkouts) == 1
        assert {thread for thread, _ in statements} == {threading.get_ident()}
        begins = [sql for _, sql in statements if sql.startswith("BEGIN")]
        commits = [sql for _, sql in statements if sql == "COMMIT"]
        assert begins == ["BEGIN IMMEDIATE"] * 20
        assert len(commits) == 20
