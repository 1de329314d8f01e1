"""Property: what `load` folds from the store equals the state rebuilt from the checkpoint chain written.

Hypothesis drives random runs through the store: turns (with gaps) whose row is written one to three
times (created at turn start, replaced at tool calls, finalised at turn end), each final row a delta or
a snapshot of the true state. For every turn ``k`` (and before the first and after the last),
``load(at_turn=k)`` must equal both `fold_checkpoints` of the rows the store holds up to ``k`` and the
state obtained by applying every turn's delta from the start, which the snapshots must agree with.

The boundary that finalises a turn records, as the agent loop does, an event for each assistant reply and
tool result of the turn, carrying the very message: the store then references those messages instead of
copying them (runtime_persistence._encoding), also from later snapshots and from a store that did not
write them; messages no event carries (user messages, failed tool results) stay inline. Some texts are
long enough to be compressed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from runtime_core import (
    AssistantMessage,
    Checkpoint,
    CheckpointDelta,
    CheckpointSnapshot,
    CheckpointState,
    CheckpointStatus,
    EventDraft,
    Message,
    ModelRespondedPayload,
    ToolFinishedPayload,
    ToolResult,
    ToolResultMessage,
    TurnDelta,
    TurnFinishedPayload,
    Usage,
    UserMessage,
    fold_checkpoints,
)
from runtime_persistence import SqlRunStore
from tests.persistence.support import T0, draft, migrated_engine, new_run

_LONG = " ".join(f"page {n} of a long tool output" for n in range(60))  # compressed when stored
_texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12) | st.just(_LONG)
_tool_results = st.builds(
    ToolResultMessage,
    tool_call_id=st.sampled_from(["call_1", "call_2"]),  # repeated ids: the store must compare the messages
    tool_name=st.just("fetch"),
    content=_texts,
    is_error=st.booleans(),
)
_deltas = st.builds(
    TurnDelta,
    messages=st.lists(
        st.one_of(st.builds(UserMessage, content=_texts), st.builds(AssistantMessage, content=_texts), _tool_results),
        max_size=3,
    ).map(tuple),
    usage=st.builds(Usage, input_tokens=st.integers(0, 500), output_tokens=st.integers(0, 500)),
    sop_phase=st.none() | st.sampled_from(["plan", "build", "review"]),
    variables=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(-5, 5) | st.none(), max_size=2),
)


@st.composite
def _turns(draw: st.DrawFn) -> list[dict[str, Any]]:
    turns, number = [], 0
    for _ in range(draw(st.integers(1, 9))):
        number += draw(st.integers(1, 3))  # turns may skip numbers (a resumed run, a fork)
        turns.append(
            {
                "turn": number,
                "drafts": draw(st.lists(_deltas, max_size=2)),  # rows replaced before the final one
                "delta": draw(_deltas),
                "snapshot": draw(st.booleans()),
            }
        )
    return turns


def _carrier(message: Message, turn: int) -> EventDraft | None:
    """The event that carries `message` as the agent loop records it, if the loop records one."""
    if isinstance(message, AssistantMessage):
        return draft(ModelRespondedPayload(model="m", message=message), turn=turn)
    if isinstance(message, ToolResultMessage) and not message.is_error:
        result = ToolResult(tool_call_id=message.tool_call_id, tool_name=message.tool_name, content=message.content)
        return draft(ToolFinishedPayload(result=result), turn=turn)
    return None


async def _drive(store: SqlRunStore, turns: list[dict[str, Any]]) -> None:
    run_id, lease = await new_run(store)
    written: dict[int, Checkpoint] = {}
    truth: dict[int, CheckpointState] = {}
    state, parent = CheckpointState(), None
    for plan in turns:
        turn = plan["turn"]
        for partial in plan["drafts"]:
            row = CheckpointDelta(run_id=run_id, turn=turn, parent_turn=parent, created_at=T0, delta=partial)
            await store.append(lease, [], row)
        state = state.apply(turn, plan["delta"])
        final: Checkpoint
        if plan["snapshot"]:
            final = CheckpointSnapshot(
                run_id=run_id, turn=turn, parent_turn=parent, status=CheckpointStatus.FINAL, created_at=T0, state=state
            )
        else:
            final = CheckpointDelta(
                run_id=run_id,
                turn=turn,
                parent_turn=parent,
                status=CheckpointStatus.FINAL,
                created_at=T0,
                delta=plan["delta"],
            )
        carriers = [_carrier(message, turn) for message in plan["delta"].messages]
        events = [event for event in carriers if event is not None]
        await store.append(lease, [*events, draft(TurnFinishedPayload(), turn=turn)], final)
        written[turn], truth[turn], parent = final, state, turn

    last = turns[-1]["turn"]
    for at_turn in range(0, last + 2):
        loaded = await store.load(run_id, at_turn=at_turn)
        rows = [written[turn] for turn in sorted(written) if turn <= at_turn]
        assert loaded.state == fold_checkpoints(rows)
        expected = truth[max(t for t in truth if t <= at_turn)] if rows else CheckpointState()
        assert loaded.state == expected
        assert loaded.checkpoint_turn == (rows[-1].turn if rows else None)
    latest = await store.load(run_id)
    assert latest.state == truth[last]
    assert latest.checkpoint_turn == last
    fresh = SqlRunStore(store.engine)  # knows nothing of the run: every reference is resolved from the log
    try:
        assert (await fresh.load(run_id)).state == truth[last]
    finally:
        await fresh.close()


def _check(engine: Engine, max_examples: int) -> None:
    @settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(turns=_turns())
    def prop(turns: list[dict[str, Any]]) -> None:
        async def scenario() -> None:
            store = SqlRunStore(engine)
            try:
                await _drive(store, turns)
            finally:
                await store.close()

        asyncio.run(scenario())

    prop()


def test_load_equals_the_fold_of_the_chain_on_sqlite(tmp_path: Path) -> None:
    with migrated_engine(f"sqlite:///{tmp_path / 'runtime.db'}") as engine:
        _check(engine, max_examples=60)


def test_load_equals_the_fold_of_the_chain_on_postgres(postgres_url: str) -> None:
    with migrated_engine(postgres_url) as engine:
        _check(engine, max_examples=20)
