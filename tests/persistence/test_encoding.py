"""How the run store encodes its rows (runtime_persistence._encoding), on both databases.

Events keep their envelope in columns and their payload without defaults, large documents are compressed,
checkpoints reference the messages that events carry, and ids are stored only when they are not the loop's
``<run_id>.<seq>``, with duplicates still refused in either form. Every test reads back exactly what was
written, also through a store that did not write it.
"""

from __future__ import annotations

import json
import zlib
from datetime import UTC
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import Engine, select

from runtime_core import (
    AssistantMessage,
    CheckpointDelta,
    CheckpointSnapshot,
    CheckpointState,
    CheckpointStatus,
    DuplicateEventError,
    Event,
    EventDraft,
    ModelRespondedPayload,
    ToolCall,
    ToolFinishedPayload,
    ToolResult,
    ToolResultMessage,
    TurnDelta,
    TurnFinishedPayload,
    TurnStartedPayload,
    UserMessage,
)
from runtime_core.events import EventPayload
from runtime_persistence import (
    SPOOL_URI_PREFIX,
    CheckpointRow,
    EventRow,
    SpoolReferenceRow,
    SqlRunStore,
    create_engine,
)
from runtime_persistence._encoding import COMPRESS_FROM, omits_defaults, pack, sqlite_timestamp, unpack
from tests.persistence.support import T0, draft, new_run, spooled_result, with_store

# ~2 KB of words: compressed when stored (a tool result or reply of a real run is like it).
_PAGE = " ".join(f"line {n}: the quick brown fox jumps over the lazy dog" for n in range(40))


def _reread(engine: Engine, run_id: str) -> tuple[list[Event], Any]:
    """The run's events and latest state as a store that did not write them reads them."""

    async def scenario(store: SqlRunStore) -> tuple[list[Event], Any]:
        return list(await store.read_events(run_id)), (await store.load(run_id)).state

    result: tuple[list[Event], Any] = with_store(engine, scenario)
    return result


def _rows(engine: Engine, table: Any, run_id: str, *columns: Any) -> list[tuple[Any, ...]]:
    key = table.seq if table is EventRow else table.turn
    with engine.connect() as connection:
        query = select(*columns).where(table.run_id == run_id).order_by(key)
        return [tuple(row) for row in connection.execute(query)]


def _loop_event(payload: EventPayload, run_id: str, seq: int, turn: int = 1, call: str | None = None) -> Event:
    """An event as the agent loop records it: its id is ``<run_id>.<seq>``."""
    return Event.recorded(payload, run_id=run_id, seq=seq, ts=T0, agent_id="agent", turn=turn, tool_call_id=call)


def _turn(run_id: str, seq: int, turn: int, text: str) -> tuple[list[Event], AssistantMessage, ToolResultMessage]:
    """One loop turn's events (from `seq` on): a reply calling a tool and the tool's result."""
    call = ToolCall(id=f"call_{turn}", name="fetch", arguments={"page": turn})
    reply = AssistantMessage(content=f"reply {turn}: {text}", tool_calls=(call,))
    result = ToolResult(tool_call_id=call.id, tool_name=call.name, content=f"page {turn}: {text}")
    events = [
        _loop_event(ModelRespondedPayload(model="m", message=reply), run_id, seq, turn),
        _loop_event(ToolFinishedPayload(result=result), run_id, seq + 1, turn, call.id),
    ]
    # The message the loop adds for the result: equal to the one the event carries, not the same object.
    message = ToolResultMessage(tool_call_id=call.id, tool_name=call.name, content=result.content)
    return events, reply, message


def test_events_keep_their_envelope_in_columns_and_large_payloads_compressed(engine: Engine) -> None:
    async def scenario(store: SqlRunStore) -> tuple[str, list[Event]]:
        run_id, lease = await new_run(store)
        events, _, _ = _turn(run_id, 2, 1, _PAGE)
        explicit = draft(TurnFinishedPayload(tool_calls=1), turn=1)
        written = [*events, Event.placed(explicit, run_id=run_id, seq=4)]
        await store.append(lease, written)
        return run_id, written

    run_id, written = with_store(engine, scenario)
    read, _ = _reread(engine, run_id)
    assert read[1:] == written
    assert [event.model_dump_json() for event in read[1:]] == [event.model_dump_json() for event in written]
    rows = _rows(engine, EventRow, run_id, EventRow.id, EventRow.type, EventRow.data, EventRow.data_zlib)
    (_, (reply_id, _, reply_data, reply_zlib), (_, _, _, result_zlib), (finished_id, _, finished_data, _)) = rows
    assert reply_id is None, "the loop's ids are not stored"
    assert finished_id == written[2].id, "other ids are"
    assert (reply_data, type(reply_zlib)) == (None, bytes), "a large payload is compressed"
    document = json.loads(zlib.decompress(reply_zlib))
    assert not {"type", "usage"} & document.keys(), "no type, no defaults"
    assert document["message"]["content"] == f"reply 1: {_PAGE}"
    assert result_zlib is not None
    assert json.loads(finished_data) == {"tool_calls": 1}, "small payloads stay JSON text, without defaults"


@pytest.mark.parametrize("level", [1, 6, 9])
def test_documents_compressed_by_any_zlib_read_back(level: int) -> None:
    # Rows written before the store compressed with ISA-L (and by migration 0003) hold zlib's own streams.
    document = json.dumps({"content": f"reply 1: {_PAGE}"})
    assert unpack(None, zlib.compress(document.encode(), level)) == document.encode()
    data, packed = pack(document)
    assert data is None
    assert packed is not None
    assert zlib.decompress(packed) == document.encode(), "what the store writes, any zlib reads"


def test_documents_naming_spooled_content_are_compressed_and_their_entries_recorded(engine: Engine) -> None:
    first, again, in_checkpoint = (spooled_result(d * 64, _PAGE, call_id=f"call_{d}") for d in "aab")
    assert len(first.model_dump_json()) > COMPRESS_FROM

    async def scenario(store: SqlRunStore) -> tuple[str, str]:
        run_id, lease = await new_run(store)
        await store.append(lease, [_loop_event(ToolFinishedPayload(result=first), run_id, 2, call="call_a")])
        # The same entry named again, and another named only by a message the checkpoint holds inline.
        message = ToolResultMessage.of(in_checkpoint)
        checkpoint = CheckpointDelta(run_id=run_id, turn=1, created_at=T0, delta=TurnDelta(messages=(message,)))
        await store.append(
            lease, [_loop_event(ToolFinishedPayload(result=again), run_id, 3, call="call_a")], checkpoint
        )
        other, _ = await new_run(store, task=f"summarise {SPOOL_URI_PREFIX}{'c' * 64}")  # named by run.created
        return run_id, other

    run_id, other = with_store(engine, scenario)
    rows = _rows(engine, EventRow, run_id, EventRow.data, EventRow.data_zlib)[1:]
    assert [data for data, _ in rows] == [None, None], "the documents are compressed like any other"
    assert all(first.spool.uri in zlib.decompress(data_zlib).decode() for _, data_zlib in rows)  # type: ignore[union-attr]
    ((checkpoint_zlib,),) = _rows(engine, CheckpointRow, run_id, CheckpointRow.data_zlib)
    assert checkpoint_zlib is not None
    with engine.connect() as connection:
        recorded = set(connection.execute(select(SpoolReferenceRow.content_hash, SpoolReferenceRow.run_id)))
    assert recorded == {("a" * 64, run_id), ("b" * 64, run_id), ("c" * 64, other)}
    events, state = _reread(engine, run_id)
    assert [event.payload.result for event in events[1:]] == [first, again]  # type: ignore[union-attr]
    assert state.messages[-1] == ToolResultMessage.of(in_checkpoint)


def test_checkpoints_reference_the_messages_of_events(engine: Engine) -> None:
    async def scenario(store: SqlRunStore) -> tuple[str, CheckpointState]:
        run_id, lease = await new_run(store)
        state = CheckpointState(messages=(UserMessage(content="read the document"),))
        seq, parent = 2, None
        for turn in range(1, 31):
            events, reply, message = _turn(run_id, seq, turn, _PAGE if turn % 7 == 0 else "short")
            seq += len(events) + 1
            # The write-ahead boundary (the reply) and the turn end (the result), like the loop's.
            opening = CheckpointDelta(
                run_id=run_id, turn=turn, parent_turn=parent, created_at=T0, delta=TurnDelta(messages=(reply,))
            )
            await store.append(lease, events[:1], opening)
            delta = TurnDelta(messages=(reply, message))
            state = state.apply(turn, delta)
            final: CheckpointDelta | CheckpointSnapshot = CheckpointDelta(
                run_id=run_id, turn=turn, parent_turn=parent, status=CheckpointStatus.FINAL, created_at=T0, delta=delta
            )
            if turn % 10 == 0:
                final = CheckpointSnapshot(
                    run_id=run_id,
                    turn=turn,
                    parent_turn=parent,
                    status=CheckpointStatus.FINAL,
                    created_at=T0,
                    state=state,
                )
            await store.append(lease, [*events[1:], _loop_event(TurnFinishedPayload(), run_id, seq - 1, turn)], final)
            parent = turn
        assert (await store.load(run_id)).state == state
        return run_id, state

    run_id, state = with_store(engine, scenario)
    _, loaded = _reread(engine, run_id)
    assert loaded == state
    assert [message.model_dump_json() for message in loaded.messages] == [m.model_dump_json() for m in state.messages]
    rows = _rows(engine, CheckpointRow, run_id, CheckpointRow.turn, CheckpointRow.data, CheckpointRow.data_zlib)
    documents = {turn: json.loads(data if data is not None else zlib.decompress(packed)) for turn, data, packed in rows}
    assert documents[1] == {"messages": [2, 3]}, "the reply and the result, as the seq of their events"
    snapshot = documents[30]["messages"]
    assert snapshot[0] == {"role": "user", "content": "read the document"}, "a message no event carries is inline"
    assert all(type(item) is int for item in snapshot[1:]), "a snapshot is the list of references, not copies"
    assert len(snapshot) == 61


def test_a_message_the_event_does_not_reproduce_is_stored_whole(engine: Engine) -> None:
    async def scenario(store: SqlRunStore) -> tuple[str, TurnDelta]:
        run_id, lease = await new_run(store)
        events, reply, message = _turn(run_id, 2, 1, "text")
        edited = message.model_copy(update={"content": "a view of the result"})
        same_but_float = reply.model_copy(
            update={"tool_calls": (reply.tool_calls[0].model_copy(update={"arguments": {"page": 1.0}}),)}
        )
        assert same_but_float == reply, "equal in Python, not in JSON"
        delta = TurnDelta(messages=(same_but_float, edited))
        await store.append(lease, events, CheckpointDelta(run_id=run_id, turn=1, created_at=T0, delta=delta))
        return run_id, delta

    run_id, delta = with_store(engine, scenario)
    ((data,),) = _rows(engine, CheckpointRow, run_id, CheckpointRow.data)
    assert [item["role"] for item in json.loads(data)["messages"]] == ["assistant", "tool"]
    _, loaded = _reread(engine, run_id)
    assert [message.model_dump_json() for message in loaded.messages] == [m.model_dump_json() for m in delta.messages]


def test_a_rolled_back_boundary_leaves_no_reference_behind(engine: Engine) -> None:
    async def scenario(store: SqlRunStore) -> tuple[str, AssistantMessage]:
        _, taken_lease = await new_run(store)
        taken = draft(TurnStartedPayload())
        await store.append(taken_lease, [taken])
        run_id, lease = await new_run(store)
        events, reply, _ = _turn(run_id, 2, 1, "text")
        with pytest.raises(DuplicateEventError):  # refused by the database, after the events were placed
            await store.append(lease, [events[0], taken])
        delta = TurnDelta(messages=(reply,))
        await store.append(lease, [], CheckpointDelta(run_id=run_id, turn=1, created_at=T0, delta=delta))
        assert (await store.load(run_id)).state.messages == (reply,)
        return run_id, reply

    run_id, reply = with_store(engine, scenario)
    ((data,),) = _rows(engine, CheckpointRow, run_id, CheckpointRow.data)
    assert json.loads(data)["messages"] == [json.loads(reply.model_dump_json())], "inline: seq 2 was never written"


def test_ids_are_unique_in_either_form(engine: Engine) -> None:
    async def scenario(store: SqlRunStore) -> None:
        run_id, lease = await new_run(store)
        recorded = _loop_event(TurnStartedPayload(), run_id, 2)
        await store.append(lease, [recorded])
        # A retried boundary: the loop's id of an event already recorded, now at the next place.
        retried = EventDraft.model_validate(recorded.model_dump(exclude={"run_id", "seq"}))
        with pytest.raises(DuplicateEventError) as error:
            await store.append(lease, [retried])
        assert error.value.event_id == recorded.id
        # An id recorded explicitly (in another run) before the loop records its own event of that id.
        other, other_lease = await new_run(store)
        await store.append(
            other_lease, [EventDraft.model_validate({**draft(TurnStartedPayload()).model_dump(), "id": f"{run_id}.3"})]
        )
        with pytest.raises(DuplicateEventError) as error:
            await store.append(lease, [_loop_event(TurnStartedPayload(), run_id, 3)])
        assert error.value.event_id == f"{run_id}.3"
        assert [event.seq for event in await store.read_events(run_id)] == [1, 2]
        # An id of that form for a place that holds another id is free.
        await store.append(
            lease, [EventDraft.model_validate({**draft(TurnStartedPayload()).model_dump(), "id": f"{other}.1"})]
        )
        assert (await store.read_events(run_id))[-1].id == f"{other}.1"

    with_store(engine, scenario)


class _Leaf(BaseModel):
    kind: str = "leaf"


class _Branch(BaseModel):
    kind: str = "branch"


class _Tree(BaseModel):
    child: _Leaf | _Branch = _Leaf()


def test_defaults_are_left_out_only_where_that_reads_back_the_same() -> None:
    assert omits_defaults(TurnStartedPayload)
    assert omits_defaults(ModelRespondedPayload)
    assert not omits_defaults(_Tree), "a default may tell the members of a union apart"
    assert not omits_defaults(TurnDelta), "messages are a union"
    assert omits_defaults(TurnDelta, besides=frozenset({"messages"}))
    assert _Tree.model_validate_json(_Tree(child=_Branch()).model_dump_json(exclude_defaults=True)) != _Tree(
        child=_Branch()
    )


@pytest.mark.parametrize(
    "stored",
    [
        "2026-02-01 12:30:45.123456",  # as Core writes it (UTC, no offset)
        "2026-02-01 12:30:45.123456+00:00",  # as the driver's datetime adapter writes it
        "2026-02-01 12:30:45+02:00",
        "2026-02-01 12:30:45",
    ],
)
def test_sqlite_timestamps_read_as_core_reads_them(stored: str) -> None:
    engine = create_engine("sqlite://")
    try:
        dialect = engine.dialect
        core = EventRow.__table__.c.ts.type.dialect_impl(dialect).result_processor(dialect, None)
        assert core is not None
        expected = core(stored)
        read = sqlite_timestamp(stored)
        assert (read, read.tzinfo, type(read)) == (expected, expected.tzinfo, type(expected))
        assert read.tzinfo is UTC
    finally:
        engine.dispose()
