"""The core conformance kits against the SQL stores, on SQLite and on PostgreSQL (DESIGN §13)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from runtime_core import ApprovalStore, RunStore
from runtime_core.testing import ApprovalStoreConformance, RunStoreConformance
from runtime_persistence import SqlApprovalStore, SqlRunStore
from tests.persistence.support import migrated_engine


class _SqliteDatabase:
    engine: Engine

    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> Iterator[None]:
        with migrated_engine(f"sqlite:///{tmp_path / 'runtime.db'}") as engine:
            self.engine = engine
            yield


class _PostgresDatabase:
    engine: Engine

    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> Iterator[None]:
        with migrated_engine(postgres_url) as engine:
            self.engine = engine
            yield


class _RunStores(RunStoreConformance):
    engine: Engine

    async def make_store(self) -> RunStore:
        return SqlRunStore(self.engine)

    async def close_store(self, store: RunStore) -> None:
        assert isinstance(store, SqlRunStore)
        await store.close()


class _ApprovalStores(ApprovalStoreConformance):
    engine: Engine

    async def make_store(self) -> ApprovalStore:
        return SqlApprovalStore(self.engine)

    async def close_store(self, store: ApprovalStore) -> None:
        assert isinstance(store, SqlApprovalStore)
        await store.close()


class TestSqliteRunStore(_SqliteDatabase, _RunStores):
    """`SqlRunStore` on SQLite."""


class TestPostgresRunStore(_PostgresDatabase, _RunStores):
    """`SqlRunStore` on PostgreSQL."""


class TestSqliteApprovalStore(_SqliteDatabase, _ApprovalStores):
    """`SqlApprovalStore` on SQLite."""


class TestPostgresApprovalStore(_PostgresDatabase, _ApprovalStores):
    """`SqlApprovalStore` on PostgreSQL."""


def test_stores_satisfy_the_protocols(tmp_path: Path) -> None:
    with migrated_engine(f"sqlite:///{tmp_path / 'runtime.db'}") as engine:
        assert isinstance(SqlRunStore(engine), RunStore)
        assert isinstance(SqlApprovalStore(engine), ApprovalStore)
