"""The SQL run store beyond the conformance kit: exact round trips, errors, bounded loads, a locked database."""

from __future__ import annotations

import asyncio
import pickle
import sqlite3
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from runtime_core import (
    CheckpointDelta,
    CheckpointSnapshot,
    CheckpointStatus,
    DuplicateEventError,
    Event,
    FencingError,
    Lease,
    NotFoundError,
    RunStartedPayload,
    StoreError,
    TurnDelta,
    TurnFinishedPayload,
    TurnStartedPayload,
    UserMessage,
    fold_checkpoints,
)
from runtime_persistence import DatabaseError, EventRow, SqlRunStore, create_engine
from runtime_persistence import runs as runs_module
from tests.persistence.support import T0, TTL, draft, migrated_engine, new_run, with_store


def test_recorded_events_are_kept_and_stored_without_their_envelope(engine: Engine) -> None:
    async def scenario(store: SqlRunStore) -> tuple[list[Event], list[Event]]:
        run_id, lease = await new_run(store)
        offset = timezone(timedelta(hours=2))
        written = [
            Event.recorded(TurnStartedPayload(), run_id=run_id, seq=2, ts=T0.astimezone(offset), agent_id="a", turn=1),
            Event.recorded(RunStartedPayload(worker="w"), run_id=run_id, seq=3, ts=T0, agent_id="a", turn=1),
        ]
        returned = await store.append(lease, written)
        assert all(got is sent for got, sent in zip(returned, written, strict=True)), "placed events are kept"
        return written, list(await store.read_events(run_id, after_seq=1))

    written, read = with_store(engine, scenario)
    assert read == written
    assert [event.model_dump_json() for event in read] == [event.model_dump_json() for event in written]
    columns = (EventRow.id, EventRow.ts_offset, EventRow.agent_id, EventRow.v, EventRow.data, EventRow.data_zlib)
    with engine.connect() as connection:
        rows = connection.execute(
            select(*columns).where(EventRow.run_id == written[0].run_id, EventRow.seq > 1).order_by(EventRow.seq)
        ).all()
    assert [tuple(row) for row in rows] == [
        (None, 7200, "a", 1, "{}", None),  # the loop's id, the offset, no payload field but defaults
        (None, None, "a", 1, '{"worker":"w"}', None),
    ], "the columns hold the envelope, data the payload without its type and defaults"


def test_drafts_with_a_wrong_place_are_placed_by_the_store(engine: Engine) -> None:
    async def scenario(store: SqlRunStore) -> None:
        run_id, lease = await new_run(store)
        stray = Event.recorded(TurnStartedPayload(), run_id="elsewhere", seq=99, ts=T0, agent_id="a", turn=1)
        (placed,) = await store.append(lease, [stray])
        assert (placed.run_id, placed.seq, placed.id) == (run_id, 2, stray.id)

    with_store(engine, scenario)


def test_refused_appends_write_nothing(engine: Engine) -> None:
    async def scenario(store: SqlRunStore) -> None:
        run_id, lease = await new_run(store)
        repeated = draft(TurnStartedPayload(), turn=1)
        with pytest.raises(DuplicateEventError) as in_batch:
            await store.append(lease, [repeated, draft(TurnFinishedPayload(), turn=1), repeated])
        assert in_batch.value.event_id == repeated.id
        with pytest.raises(NotFoundError):
            await store.append(lease.model_copy(update={"run_id": "run_missing"}), [draft(TurnStartedPayload())])
        with pytest.raises(NotFoundError):
            await store.release_lease(lease.model_copy(update={"run_id": "run_missing"}))
        stale = await store.acquire_lease(run_id, "writer-a", ttl=TTL)  # a renewal issues a new token
        with pytest.raises(FencingError) as fenced:
            await store.append(lease, [draft(TurnStartedPayload())])
        assert (fenced.value.token, fenced.value.current_token) == (lease.token, stale.token)
        assert [event.seq for event in await store.read_events(run_id)] == [1]
        assert (await store.get_run(run_id)).last_seq == 1

    with_store(engine, scenario)


def test_load_reads_from_the_nearest_snapshot_only(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[Any] = []
    real = runs_module._StoredRow.of

    def counting(row: Any, timestamp: Any) -> Any:
        parsed.append(row)
        return real(row, timestamp)

    async def scenario(store: SqlRunStore) -> None:
        run_id, lease = await new_run(store)
        rows: list[Any] = []
        parent = None
        for turn in range(1, 31):
            delta = TurnDelta(messages=(UserMessage(content=f"turn {turn}"),))
            rows.append(CheckpointDelta(run_id=run_id, turn=turn, parent_turn=parent, created_at=T0, delta=delta))
            row: Any = rows[-1]
            if turn % 10 == 0:
                state = fold_checkpoints(rows)
                row = CheckpointSnapshot(run_id=run_id, turn=turn, parent_turn=parent, created_at=T0, state=state)
            await store.append(lease, [draft(TurnFinishedPayload(), turn=turn)], row)
            parent = turn
        monkeypatch.setattr(runs_module._StoredRow, "of", counting)
        latest = await store.load(run_id)
        assert latest.state == fold_checkpoints(rows), "turn 30 is a snapshot: one row"
        assert len(parsed) == 1, "turn 30 is a snapshot: one row"
        parsed.clear()
        past = await store.load(run_id, at_turn=25)
        assert past.state == fold_checkpoints(rows[:25]), "snapshot 20 and deltas 21-25"
        assert len(parsed) == 6, "snapshot 20 and deltas 21-25"
        parsed.clear()
        first = await store.load(run_id, at_turn=4)
        assert first.state == fold_checkpoints(rows[:4]), "no snapshot yet: deltas 1-4"
        assert len(parsed) == 4, "no snapshot yet: deltas 1-4"
        parsed.clear()
        before = await store.load(run_id, at_turn=0)
        assert before.checkpoint_turn is None
        assert before.state.messages == ()
        assert parsed == []

    with_store(engine, scenario)


def test_replacing_a_turn_keeps_one_row_per_turn(engine: Engine) -> None:
    async def scenario(store: SqlRunStore) -> None:
        run_id, lease = await new_run(store)
        for status, text in (
            (CheckpointStatus.OPEN, "started"),
            (CheckpointStatus.OPEN, "tool"),
            (CheckpointStatus.FINAL, "done"),
        ):
            delta = TurnDelta(messages=(UserMessage(content=text),))
            await store.append(
                lease, [], CheckpointDelta(run_id=run_id, turn=1, status=status, created_at=T0, delta=delta)
            )
        loaded = await store.load(run_id)
        assert [m.content for m in loaded.state.messages] == ["done"]
        assert (await store.get_run(run_id)).last_seq == 1, "a checkpoint-only append records no event"

    with_store(engine, scenario)


def test_appended_timestamps_are_stored_as_core_stores_them(tmp_path: Path) -> None:
    # The append sends its parameters as Core would (`Prepared`): on SQLite a timestamp is the same text
    # whichever path wrote it (no offset, all six digits of microseconds even when they are zero), so
    # timestamps compare and sort as text.
    async def scenario(store: SqlRunStore) -> str:
        run_id, lease = await new_run(store)  # run.created and the run row: written through Core, at T0
        delta = TurnDelta(messages=(UserMessage(content="hi"),))
        checkpoint = CheckpointDelta(run_id=run_id, turn=1, status=CheckpointStatus.FINAL, created_at=T0, delta=delta)
        await store.append(lease, [draft(TurnStartedPayload(), turn=1)], checkpoint)
        return run_id

    with migrated_engine(f"sqlite:///{tmp_path / 'runtime.db'}") as engine:
        run_id = with_store(engine, scenario)
    with sqlite3.connect(tmp_path / "runtime.db") as connection:
        stored = [
            *connection.execute("SELECT ts FROM events WHERE run_id = ? ORDER BY seq", (run_id,)),
            *connection.execute("SELECT created_at FROM checkpoints WHERE run_id = ?", (run_id,)),
            *connection.execute("SELECT created_at, updated_at FROM runs WHERE id = ?", (run_id,)),
        ]
    assert [value for row in stored for value in row] == ["2026-01-01 00:00:00.000000"] * 5


def test_list_runs_refuses_a_negative_limit(engine: Engine) -> None:
    async def scenario(store: SqlRunStore) -> None:
        with pytest.raises(ValueError, match="limit"):
            await store.list_runs(limit=-1)
        run_id, _ = await new_run(store)
        assert [run.id for run in await store.list_runs(limit=0)] == []
        assert [run.id for run in await store.list_runs(limit=1)] == [run_id]

    with_store(engine, scenario)


def test_a_locked_database_is_a_retryable_error_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "runtime.db"
    with migrated_engine(f"sqlite:///{path}"):
        pass
    engine = create_engine(f"sqlite:///{path}", busy_timeout_s=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:

        async def scenario(store: SqlRunStore) -> None:
            _, lease = await new_run(store)
            blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            with pytest.raises(DatabaseError) as locked:
                await store.append(lease, [draft(TurnStartedPayload(), turn=1)])
            assert locked.value.retryable
            assert locked.value.operation == "append"
            assert isinstance(locked.value, StoreError)
            blocker.execute("ROLLBACK")
            recorded = await store.append(lease, [draft(TurnStartedPayload(), turn=1)])
            assert [event.seq for event in recorded] == [2]

        with_store(engine, scenario)
    finally:
        blocker.close()
        engine.dispose()


def test_database_errors_pickle() -> None:
    error = DatabaseError("append failed: database is locked", operation="append", retryable=True)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.operation, copy.retryable) == (DatabaseError, str(error), "append", True)


def test_leases_renew_and_expire_with_the_store_clock(engine: Engine) -> None:
    from runtime_core import LeaseHeldError, ManualClock

    clock = ManualClock(T0)

    async def main() -> None:
        store = SqlRunStore(engine, clock=clock)
        try:
            run_id, lease = await new_run(store)
            assert lease.expires_at == T0 + TTL
            renewed = await store.acquire_lease(run_id, "writer-a", ttl=TTL)
            assert renewed.token == lease.token + 1
            with pytest.raises(LeaseHeldError) as held:
                await store.acquire_lease(run_id, "writer-b", ttl=TTL)
            assert (held.value.owner, held.value.expires_at) == ("writer-a", T0 + TTL)
            clock.advance(TTL + timedelta(seconds=1))
            taken: Lease = await store.acquire_lease(run_id, "writer-b", ttl=TTL)
            assert taken.token == renewed.token + 1
            with pytest.raises(FencingError):
                await store.append(renewed, [])
        finally:
            await store.close()

    asyncio.run(main())
