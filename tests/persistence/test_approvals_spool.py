"""Approvals resolved from another process, and the content-addressed spool, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from runtime_core import (
    Approval,
    ApprovalStatus,
    InMemorySpoolStore,
    NotFoundError,
    SpoolStore,
    ToolCall,
)
from runtime_persistence import SPOOL_URI_PREFIX, SpoolRow, SqlApprovalStore, SqlSpoolStore, create_engine
from tests.persistence.support import T0, new_id

ROOT = Path(__file__).resolve().parents[2]

_RESOLVER = """
import asyncio, sys
from datetime import datetime
from runtime_core import ApprovalDecision, ApprovalResolution
from runtime_persistence import SqlApprovalStore, create_engine

async def main(url, approval_id, at):
    engine = create_engine(url)
    store = SqlApprovalStore(engine)
    try:
        resolution = ApprovalResolution(approval_id=approval_id, decision=ApprovalDecision.DENY, resolved_by="ops")
        await store.resolve(resolution, at=datetime.fromisoformat(at))
    finally:
        await store.close()
        engine.dispose()

asyncio.run(main(*sys.argv[1:]))
"""


def test_an_approval_is_resolved_by_another_process_and_survives_restarts(url: str, engine: Engine) -> None:
    request = Approval(
        id=new_id("apr"),
        run_id=new_id("run"),
        tool_call=ToolCall(id="call_1", name="shell:run", arguments={"command": "make deploy"}),
        reason="shell needs approval",
        requested_at=T0,
        expires_at=T0 + timedelta(minutes=5),
    )

    async def create() -> None:
        store = SqlApprovalStore(engine)
        await store.create(request)
        await store.close()

    asyncio.run(create())
    at = T0 + timedelta(minutes=1)
    subprocess.run(
        [sys.executable, "-c", _RESOLVER, url, request.id, at.isoformat()], check=True, cwd=ROOT, timeout=120
    )

    async def read() -> Approval:
        restarted = create_engine(url)  # a new process would start from scratch too
        store = SqlApprovalStore(restarted)
        try:
            assert list(await store.list(status=ApprovalStatus.PENDING)) == []
            return await store.get(request.id)
        finally:
            await store.close()
            restarted.dispose()

    resolved = asyncio.run(read())
    assert resolved.status is ApprovalStatus.DENIED
    assert (resolved.resolved_by, resolved.resolved_at) == ("ops", at)


def _spool(engine: Engine, scenario: object) -> object:
    async def main() -> object:
        store = SqlSpoolStore(engine)
        try:
            return await scenario(store)  # type: ignore[operator]
        finally:
            await store.close()

    return asyncio.run(main())


@pytest.mark.parametrize("content", [b"", b"one line", b"two\nlines\n", b"\x00\xff binary\n\x00", b"x" * 300_000])
def test_spool_round_trip(engine: Engine, content: bytes) -> None:
    async def scenario(store: SqlSpoolStore) -> None:
        assert isinstance(store, SpoolStore)
        reference = await store.put(content)
        expected = await InMemorySpoolStore().put(content)
        assert reference.model_copy(update={"uri": expected.uri}) == expected
        assert reference.uri == f"{SPOOL_URI_PREFIX}{reference.content_hash}"
        assert await store.get(reference.content_hash) == content

    _spool(engine, scenario)


def test_spool_stores_equal_content_once(engine: Engine) -> None:
    async def scenario(store: SqlSpoolStore) -> None:
        first = await store.put(b"same output\n")
        assert await store.put(b"same output\n") == first
        with pytest.raises(NotFoundError) as missing:
            await store.get("0" * 64)
        assert missing.value.resource == "spool entry"

    _spool(engine, scenario)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(SpoolRow)).scalar_one() == 1


def test_concurrent_writers_of_the_same_content_all_succeed(url: str, engine: Engine) -> None:
    content = b"big tool output\n" * 4096
    barrier = threading.Barrier(4)
    hashes: list[str] = []

    def writer() -> None:
        own = create_engine(url, busy_timeout_s=30)

        async def put() -> str:
            store = SqlSpoolStore(own)
            try:
                barrier.wait()
                return (await store.put(content)).content_hash
            finally:
                await store.close()

        try:
            hashes.append(asyncio.run(put()))
        finally:
            own.dispose()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(hashes) == 4
    assert len(set(hashes)) == 1
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(SpoolRow)).scalar_one() == 1
