"""Helpers shared by the persistence tests: backends, migrated engines and run-log builders.

Every test that takes the ``url`` or ``engine`` fixtures of its module runs on SQLite (a file in the test's
temporary directory) and on PostgreSQL (a fresh database from the ``postgres_url`` fixture).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from runtime_core import AgentSpec, EventDraft, RunCreatedPayload, SpoolRef, ToolResult
from runtime_core.events import EventPayload
from runtime_core.stores import Lease, RunStore
from runtime_persistence import SPOOL_URI_PREFIX, SqlRunStore, create_engine, upgrade

BACKENDS = ("sqlite", "postgresql")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(minutes=5)


def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL for the backend named by ``request.param``."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runtime.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@contextmanager
def migrated_engine(url: str, **options: Any) -> Iterator[Engine]:
    """An engine on `url` with the schema at head, disposed of afterwards."""
    engine = create_engine(url, **options)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def draft(payload: EventPayload, *, turn: int = 0, seconds: int = 0) -> EventDraft:
    return EventDraft.of(payload, id=new_id("evt"), ts=T0 + timedelta(seconds=seconds), agent_id="agent", turn=turn)


async def new_run(store: RunStore, owner: str = "writer-a", *, task: str = "test the store") -> tuple[str, Lease]:
    """Create a run and take its lease."""
    run_id = new_id("run")
    payload = RunCreatedPayload(agent=AgentSpec(name="test", model="scripted:none"), task=task)
    await store.create_run(run_id, draft(payload))
    return run_id, await store.acquire_lease(run_id, owner, ttl=TTL)


def with_store(engine: Engine, scenario: Any) -> Any:
    """Run ``await scenario(store)`` on a new `SqlRunStore` of `engine`, closing the store after."""

    async def main() -> Any:
        store = SqlRunStore(engine)
        try:
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(main())


def spooled_result(digest: str, view: str, *, call_id: str, tool_name: str = "fetch") -> ToolResult:
    """A tool result whose output was spooled under `digest`: `view`, the disclosure line naming the entry's
    URI, and the reference, as the loop's output spooling records it."""
    uri = f"{SPOOL_URI_PREFIX}{digest}"
    content = f"{view}\n[output truncated: the full output is stored as sha256:{digest} at {uri}]"
    reference = SpoolRef(content_hash=digest, byte_size=10**6, line_count=10**4, uri=uri)
    return ToolResult(tool_call_id=call_id, tool_name=tool_name, content=content, spool=reference)
