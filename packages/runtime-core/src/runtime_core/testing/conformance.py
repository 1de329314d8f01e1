"""The run store conformance kit: what every `RunStore` must do, as executable checks.

The checks need only pytest-free Python: each is an ``async`` function taking a fresh store and raising
[`ConformanceFailure`][runtime_core.testing.ConformanceFailure] with an explanation when the store falls
short. `RunStoreConformance` wraps them as pytest test methods.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from runtime_core.agents import AgentSpec
from runtime_core.checkpoints import (
    Checkpoint,
    CheckpointDelta,
    CheckpointSnapshot,
    CheckpointStatus,
    TurnDelta,
    fold_checkpoints,
)
from runtime_core.events import (
    ApprovalRequestedPayload,
    EventDraft,
    EventPayload,
    EventType,
    ModelRespondedPayload,
    RunCreatedPayload,
    RunFailedPayload,
    RunStartedPayload,
    ToolCalledPayload,
    TurnFinishedPayload,
    TurnStartedPayload,
)
from runtime_core.exceptions import (
    AlreadyExistsError,
    CheckpointChainError,
    DuplicateEventError,
    FencingError,
    LeaseHeldError,
    NotFoundError,
)
from runtime_core.messages import AssistantMessage, Message, ToolResultMessage, UserMessage
from runtime_core.runs import RunStatus
from runtime_core.stores import Lease, RunStore
from runtime_core.testing._harness import StoreConformance
from runtime_core.tools import ToolCall
from runtime_core.usage import Usage

__all__ = ["RUN_STORE_CHECKS", "ConformanceFailure", "RunStoreConformance"]

_TTL = timedelta(minutes=5)
_T0 = datetime(2026, 1, 1, tzinfo=UTC)


class ConformanceFailure(AssertionError):
    """A store violated the run store contract."""


def _expect(condition: bool, message: str) -> None:
    # Explicit raise rather than `assert`: the kit must also hold under `python -O`.
    if not condition:
        raise ConformanceFailure(message)


async def _expect_raises(error: type[BaseException], action: Awaitable[Any], message: str) -> BaseException:
    try:
        await action
    except error as raised:
        return raised
    raise ConformanceFailure(f"{message}: expected {error.__name__}, nothing was raised")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _draft(payload: EventPayload, *, turn: int = 0, seconds: int = 0, tool_call_id: str | None = None) -> EventDraft:
    return EventDraft.of(
        payload,
        id=_new_id("evt"),
        ts=_T0 + timedelta(seconds=seconds),
        agent_id="agent",
        turn=turn,
        tool_call_id=tool_call_id,
    )


async def _new_run(store: RunStore, *, seconds: int = 0) -> tuple[str, Lease]:
    run_id = _new_id("run")
    payload = RunCreatedPayload(agent=AgentSpec(name="conformance", model="scripted:none"), task="check the store")
    await store.create_run(run_id, _draft(payload, seconds=seconds))
    lease = await store.acquire_lease(run_id, "writer-a", ttl=_TTL)
    return run_id, lease


def _turn_events(turn: int, count: int) -> list[EventDraft]:
    events = [_draft(TurnStartedPayload(), turn=turn)]
    for index in range(count - 2):
        call = ToolCall(id=f"call_{turn}_{index}", name="file:read", arguments={"path": f"f{index}.txt"})
        events.append(_draft(ToolCalledPayload(call=call), turn=turn, tool_call_id=call.id))
    events.append(_draft(TurnFinishedPayload(tool_calls=max(0, count - 2)), turn=turn))
    return events


def _turn_delta(turn: int) -> TurnDelta:
    call = ToolCall(id=f"call_{turn}", name="file:read", arguments={"path": f"turn{turn}.txt", "n": turn})
    messages: tuple[Message, ...] = (
        UserMessage(content=f"step {turn}"),
        AssistantMessage(content=None, tool_calls=(call,)),
        ToolResultMessage(tool_call_id=call.id, tool_name=call.name, content=f"contents of turn {turn}"),
    )
    return TurnDelta(
        messages=messages,
        usage=Usage(input_tokens=10 * turn, output_tokens=turn, requests=1, cost_usd=0.001 * turn),
        sop_phase="implement" if turn % 3 == 0 else None,
        variables={f"v{turn % 2}": turn},
    )


async def check_create_and_read(store: RunStore) -> None:
    """A created run is queued, holds ``run.created`` at seq 1, and unknown ids raise `NotFoundError`."""
    run_id, _ = await _new_run(store)
    run = await store.get_run(run_id)
    _expect(run.id == run_id and run.status is RunStatus.QUEUED, f"new run should be queued, got {run.status}")
    _expect(run.last_seq == 1, f"a new run's last_seq is 1, got {run.last_seq}")
    events = await store.read_events(run_id)
    _expect([e.seq for e in events] == [1], f"a new run holds exactly seq 1, got {[e.seq for e in events]}")
    _expect(events[0].type.value == "run.created", "seq 1 is run.created")
    _expect(events[0].run_id == run_id, "recorded events carry their run_id")
    loaded = await store.load(run_id)
    _expect(loaded.checkpoint_turn is None and loaded.state.messages == (), "a new run has no checkpoint")
    created = _draft(RunCreatedPayload(agent=run.agent, task="again"))
    await _expect_raises(AlreadyExistsError, store.create_run(run_id, created), "creating a run twice")
    missing = _new_id("run")
    await _expect_raises(NotFoundError, store.get_run(missing), "get_run of an unknown run")
    await _expect_raises(NotFoundError, store.read_events(missing), "read_events of an unknown run")
    await _expect_raises(NotFoundError, store.load(missing), "load of an unknown run")
    await _expect_raises(NotFoundError, store.acquire_lease(missing, "w", ttl=_TTL), "lease of an unknown run")


async def check_append_order_and_dense_seq(store: RunStore) -> None:
    """Appended events keep their order, get dense ``seq`` values and read back unchanged."""
    run_id, lease = await _new_run(store)
    drafts: list[EventDraft] = []
    for turn, size in enumerate((2, 5, 3, 1, 4), start=1):
        batch = _turn_events(turn, size) if size > 1 else [_draft(RunStartedPayload(worker="w"), turn=turn)]
        recorded = await store.append(lease, batch)
        _expect(len(recorded) == len(batch), "append returns one event per draft")
        drafts.extend(batch)
    events = await store.read_events(run_id)
    seqs = [e.seq for e in events]
    _expect(seqs == list(range(1, len(drafts) + 2)), f"seq must be dense from 1, got {seqs}")
    for draft, event in zip(drafts, events[1:], strict=True):
        _expect(event.id == draft.id, f"event order changed at seq {event.seq}")
        _expect(event.payload == draft.payload, f"payload of seq {event.seq} changed in the store")
        _expect(
            (event.ts, event.turn, event.tool_call_id, event.agent_id)
            == (draft.ts, draft.turn, draft.tool_call_id, draft.agent_id),
            f"envelope fields of seq {event.seq} changed in the store",
        )
    tail = await store.read_events(run_id, after_seq=3, limit=4)
    _expect([e.seq for e in tail] == [4, 5, 6, 7], f"read_events(after_seq=3, limit=4) gave {[e.seq for e in tail]}")
    _expect((await store.get_run(run_id)).last_seq == len(drafts) + 1, "run.last_seq follows the log")
    _expect(list(await store.append(lease, [])) == [], "an empty append records nothing")


async def check_read_events_by_type(store: RunStore) -> None:
    """``read_events(types=...)`` returns only those types, in order, after `after_seq`, `limit` counting them."""
    run_id, lease = await _new_run(store)
    for turn in (1, 2, 3):
        await store.append(lease, _turn_events(turn, 4))  # turn.started, tool.called x 2, turn.finished
    every = await store.read_events(run_id)
    wanted = {EventType.RUN_CREATED, EventType.TOOL_CALLED}
    expected = [e.seq for e in every if e.type in wanted]
    chosen = await store.read_events(run_id, types=wanted)
    _expect([e.seq for e in chosen] == expected, f"read_events(types=...) gave {[e.seq for e in chosen]}")
    _expect(
        [e.id for e in chosen] == [e.id for e in every if e.type in wanted], "a filtered read returns the same events"
    )
    named = await store.read_events(run_id, after_seq=3, limit=3, types=["tool.called", "turn.finished"])
    _expect(
        [(e.seq, e.type) for e in named]
        == [(e.seq, e.type) for e in every if e.seq > 3 and e.type in {"tool.called", "turn.finished"}][:3],
        f"read_events(after_seq=3, limit=3, types=dot names) gave {[(e.seq, e.type.value) for e in named]}",
    )
    _expect(list(await store.read_events(run_id, types=())) == [], "read_events(types=()) returns no event")
    await _expect_raises(ValueError, store.read_events(run_id, types=["tool.calld"]), "an unknown event type")
    await _expect_raises(ValueError, store.read_events(run_id, types="tool.called"), "types given as one string")
    await _expect_raises(
        NotFoundError, store.read_events(_new_id("run"), types=wanted), "read_events(types=...) of an unknown run"
    )


async def check_atomic_boundary(store: RunStore) -> None:
    """A refused append writes nothing: no event and no checkpoint of its boundary."""
    run_id, lease = await _new_run(store)
    first = _turn_events(1, 3)
    await store.append(lease, first, CheckpointDelta(run_id=run_id, turn=1, created_at=_T0, delta=_turn_delta(1)))
    before = await store.read_events(run_id)
    state_before = (await store.load(run_id)).state

    duplicate = [*_turn_events(2, 3), first[1]]
    ok_checkpoint = CheckpointDelta(run_id=run_id, turn=2, parent_turn=1, created_at=_T0, delta=_turn_delta(2))
    await _expect_raises(DuplicateEventError, store.append(lease, duplicate, ok_checkpoint), "a duplicate event id")
    broken_chain = CheckpointDelta(run_id=run_id, turn=2, parent_turn=7, created_at=_T0, delta=_turn_delta(2))
    await _expect_raises(
        CheckpointChainError, store.append(lease, _turn_events(2, 3), broken_chain), "a checkpoint with a wrong parent"
    )
    foreign = CheckpointDelta(run_id=_new_id("run"), turn=2, parent_turn=1, created_at=_T0, delta=_turn_delta(2))
    await _expect_raises(
        CheckpointChainError, store.append(lease, _turn_events(2, 3), foreign), "another run's checkpoint"
    )
    after = await store.read_events(run_id)
    _expect([e.id for e in after] == [e.id for e in before], "a refused append left events behind")
    loaded = await store.load(run_id)
    _expect(loaded.state == state_before and loaded.checkpoint_turn == 1, "a refused append changed the checkpoint")
    recorded = await store.append(lease, _turn_events(2, 3), ok_checkpoint)
    _expect(recorded[0].seq == before[-1].seq + 1, "seq continues densely after refused appends")


async def check_load_folds_snapshots_and_deltas(store: RunStore) -> None:
    """``load`` equals folding every delta from the start, with or without snapshots in between."""
    run_id, lease = await _new_run(store)
    written: list[Checkpoint] = []
    reference: list[Checkpoint] = []
    parent: int | None = None
    for turn in range(1, 10):
        delta = CheckpointDelta(run_id=run_id, turn=turn, parent_turn=parent, created_at=_T0, delta=_turn_delta(turn))
        reference.append(delta)
        row: Checkpoint = delta
        if turn % 4 == 0:  # a snapshot every K=4 turns, as the persistence plane writes them
            row = CheckpointSnapshot(
                run_id=run_id, turn=turn, parent_turn=parent, created_at=_T0, state=fold_checkpoints(reference)
            )
        opening = CheckpointDelta(run_id=run_id, turn=turn, parent_turn=parent, created_at=_T0)
        await store.append(lease, [_draft(TurnStartedPayload(), turn=turn)], opening)
        await store.append(
            lease,
            [_draft(TurnFinishedPayload(), turn=turn)],
            row.model_copy(update={"status": CheckpointStatus.FINAL}),
        )
        written.append(row)
        parent = turn
    loaded = await store.load(run_id)
    _expect(loaded.checkpoint_turn == 9, f"the last checkpoint is turn 9, got {loaded.checkpoint_turn}")
    _expect(loaded.state == fold_checkpoints(reference), "load differs from folding every delta")
    _expect(loaded.state.turn == 9, "the loaded state is at the last turn")
    for at_turn in (1, 4, 6):
        past = await store.load(run_id, at_turn=at_turn)
        _expect(
            past.state == fold_checkpoints(reference[:at_turn]),
            f"load(at_turn={at_turn}) differs from folding deltas 1..{at_turn}",
        )
    older = CheckpointDelta(run_id=run_id, turn=3, parent_turn=2, created_at=_T0)
    await _expect_raises(CheckpointChainError, store.append(lease, [], older), "rewriting an older turn")


async def check_fencing(store: RunStore) -> None:
    """Only the current lease writes: a taken-over writer is refused and a live lease is not taken silently."""
    run_id, lease_a = await _new_run(store)
    await store.append(lease_a, [_draft(RunStartedPayload(worker="a"))])
    await _expect_raises(
        LeaseHeldError, store.acquire_lease(run_id, "writer-b", ttl=_TTL), "taking a live lease without steal"
    )
    lease_b = await store.acquire_lease(run_id, "writer-b", ttl=_TTL, steal=True)
    _expect(lease_b.token > lease_a.token, "a new lease must carry a larger fencing token")
    before = await store.read_events(run_id)
    raised = await _expect_raises(
        FencingError, store.append(lease_a, [_draft(RunStartedPayload(worker="a"))]), "append with a stale token"
    )
    _expect(isinstance(raised, FencingError) and raised.current_token == lease_b.token, "FencingError names the token")
    _expect(len(await store.read_events(run_id)) == len(before), "a fenced append wrote events")
    await store.append(lease_b, [_draft(RunStartedPayload(worker="b"))])
    await store.release_lease(lease_a)  # a stale release must not drop the current lease
    await store.append(lease_b, [_draft(TurnStartedPayload(), turn=1)])
    await store.release_lease(lease_b)
    await _expect_raises(
        FencingError, store.append(lease_b, [_draft(TurnStartedPayload(), turn=1)]), "append after release"
    )
    short = await store.acquire_lease(run_id, "writer-c", ttl=timedelta(milliseconds=1))
    await asyncio.sleep(0.01)
    lease_d = await store.acquire_lease(run_id, "writer-d", ttl=_TTL)  # expired: no steal needed
    _expect(lease_d.token > short.token, "taking over an expired lease issues a larger token")
    await _expect_raises(FencingError, store.append(short, []), "append with an expired, taken-over lease")


async def check_concurrent_appends(store: RunStore) -> None:
    """Concurrent appends interleave only at boundaries: seq stays dense and each batch contiguous."""
    run_id, lease = await _new_run(store)
    writers, rounds, size = 8, 6, 3

    async def writer(index: int) -> list[list[str]]:
        batches = []
        for round_ in range(rounds):
            batch = _turn_events(index * rounds + round_ + 1, size)
            await store.append(lease, batch)
            batches.append([d.id for d in batch])
        return batches

    results = await asyncio.gather(*(writer(i) for i in range(writers)))
    events = await store.read_events(run_id)
    seqs = [e.seq for e in events]
    _expect(seqs == list(range(1, writers * rounds * size + 2)), "concurrent appends broke dense seq")
    position = {e.id: e.seq for e in events}
    for batches in results:
        for batch in batches:
            places = [position[event_id] for event_id in batch]
            _expect(places == list(range(places[0], places[0] + size)), f"a batch was split or reordered: {places}")


async def check_run_projection(store: RunStore) -> None:
    """The run record follows its log: status, reason, turns, usage; list_runs filters and orders."""
    run_id, lease = await _new_run(store, seconds=10)
    await store.append(lease, [_draft(RunStartedPayload(), seconds=11)])
    _expect((await store.get_run(run_id)).status is RunStatus.RUNNING, "run.started makes the run running")
    call = ToolCall(id="call_x", name="shell:run", arguments={"command": "rm -rf build"})
    reply = AssistantMessage(tool_calls=(call,))
    usage = Usage(input_tokens=120, output_tokens=30, requests=1, cost_usd=0.25)
    await store.append(
        lease,
        [
            _draft(TurnStartedPayload(), turn=1, seconds=12),
            _draft(ModelRespondedPayload(model="m", message=reply, usage=usage), turn=1, seconds=12),
            _draft(TurnFinishedPayload(usage=usage), turn=1, seconds=13),
            _draft(ApprovalRequestedPayload(approval_id="ap_1", call=call, reason="shell"), turn=1, seconds=14),
        ],
    )
    waiting = await store.get_run(run_id)
    _expect(
        waiting.status is RunStatus.WAITING_APPROVAL, f"approval.requested -> waiting_approval, got {waiting.status}"
    )
    _expect(waiting.reason == "approval_required", f"waiting reason is recorded, got {waiting.reason!r}")
    _expect(waiting.turns == 1 and waiting.usage == usage, "turns and usage follow the log")
    failed = RunFailedPayload(reason="error:TIMEOUT", message="gave up")
    await store.append(lease, [_draft(failed, turn=1, seconds=15)])
    run = await store.get_run(run_id)
    _expect(run.status is RunStatus.FAILED and run.reason == "error:TIMEOUT", "run.failed sets status and reason")
    _expect(run.updated_at == _T0 + timedelta(seconds=15), "updated_at follows the last event")
    other_id, _ = await _new_run(store, seconds=20)
    newest = await store.list_runs(limit=2)
    _expect([r.id for r in newest][:1] == [other_id], "list_runs returns the newest run first")
    failed_runs = await store.list_runs(status=RunStatus.FAILED)
    _expect(run_id in {r.id for r in failed_runs}, "list_runs(status=failed) finds the failed run")
    _expect(other_id not in {r.id for r in failed_runs}, "list_runs(status=failed) filters other statuses")


Check = Callable[[RunStore], Awaitable[None]]

RUN_STORE_CHECKS: Sequence[tuple[str, Check]] = (
    ("create_and_read", check_create_and_read),
    ("append_order_and_dense_seq", check_append_order_and_dense_seq),
    ("read_events_by_type", check_read_events_by_type),
    ("atomic_boundary", check_atomic_boundary),
    ("load_folds_snapshots_and_deltas", check_load_folds_snapshots_and_deltas),
    ("fencing", check_fencing),
    ("concurrent_appends", check_concurrent_appends),
    ("run_projection", check_run_projection),
)
"""Every check, by name, for runners other than pytest."""


class RunStoreConformance(StoreConformance[RunStore]):
    """Base class of a pytest test class that holds a store to the run store contract.

    Override `make_store` (and `close_store` if the store holds resources); see `StoreConformance`.
    """

    def test_create_and_read(self) -> None:
        """See `check_create_and_read`."""
        self.run_check(check_create_and_read)

    def test_append_order_and_dense_seq(self) -> None:
        """See `check_append_order_and_dense_seq`."""
        self.run_check(check_append_order_and_dense_seq)

    def test_read_events_by_type(self) -> None:
        """See `check_read_events_by_type`."""
        self.run_check(check_read_events_by_type)

    def test_atomic_boundary(self) -> None:
        """See `check_atomic_boundary`."""
        self.run_check(check_atomic_boundary)

    def test_load_folds_snapshots_and_deltas(self) -> None:
        """See `check_load_folds_snapshots_and_deltas`."""
        self.run_check(check_load_folds_snapshots_and_deltas)

    def test_fencing(self) -> None:
        """See `check_fencing`."""
        self.run_check(check_fencing)

    def test_concurrent_appends(self) -> None:
        """See `check_concurrent_appends`."""
        self.run_check(check_concurrent_appends)

    def test_run_projection(self) -> None:
        """See `check_run_projection`."""
        self.run_check(check_run_projection)
