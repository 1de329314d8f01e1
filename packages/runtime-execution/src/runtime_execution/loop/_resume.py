"""Where a resumed run picks up: the turn in progress and what the log knows about each of its calls."""

from __future__ import annotations

from collections.abc import Sequence

from runtime_core.events import (
    ApprovalRequestedPayload,
    ApprovalResolvedPayload,
    CheckpointSavedPayload,
    Event,
    ModelRespondedPayload,
    TurnStartedPayload,
)
from runtime_core.stores import LoadedRun, RunStore
from runtime_core.usage import Usage
from runtime_execution.loop._driver import ResumePoint

__all__ = ["resume_point", "tail_events"]

_FIRST_PAGE = 16  # a turn with one tool call logs about 8 events
_MAX_PAGE = 1024


async def tail_events(store: RunStore, loaded: LoadedRun) -> list[Event]:
    """The run's events from the first of its newest checkpoint's turn on (all a resume needs).

    Reads the log backwards a page at a time, each page twice the size of the one before, so resuming
    costs the same after 5 turns or 5,000 and reads at most about twice the events it keeps.
    """
    turn = loaded.checkpoint_turn or 0
    after = loaded.run.last_seq
    events: list[Event] = []
    size = _FIRST_PAGE
    while after > 0:
        first = max(0, after - size)
        page = list(await store.read_events(loaded.run.id, after_seq=first, limit=after - first))
        events[:0] = page
        if page and page[0].turn < turn:
            break
        after, size = first, min(2 * size, _MAX_PAGE)
    return [event for event in events if event.turn >= turn]


async def resume_point(store: RunStore, loaded: LoadedRun, events: Sequence[Event]) -> ResumePoint:
    """Read the log of a run to resume: the open turn (if any) and the ledger of its calls.

    `events` must hold at least every event of the newest checkpoint's turn (see `tail_events`). A run
    that had its recovery turn either ended with it or was stopped during it, so the recovery flag is in
    those events too.
    """
    recovered = any(event.type.value == "recovery.started" for event in events)
    last_saved = next((event for event in reversed(events) if isinstance(event.payload, CheckpointSavedPayload)), None)
    if last_saved is None or (isinstance(last_saved.payload, CheckpointSavedPayload) and last_saved.payload.final):
        return ResumePoint(recovered=recovered)
    number = last_saved.turn
    before = await store.load(loaded.run.id, at_turn=number - 1)
    turn_events = [event for event in events if event.turn == number]
    usage = sum((e.payload.usage for e in turn_events if isinstance(e.payload, ModelRespondedPayload)), Usage())
    started = {e.tool_call_id for e in turn_events if e.type.value == "tool.started" and e.tool_call_id}
    requested = {
        e.tool_call_id: e.payload.approval_id
        for e in turn_events
        if isinstance(e.payload, ApprovalRequestedPayload) and e.tool_call_id
    }
    answers = {e.payload.approval_id: e.payload for e in turn_events if isinstance(e.payload, ApprovalResolvedPayload)}
    return ResumePoint(
        recovered=recovered,
        number=number,
        parent=before.checkpoint_turn,
        messages=tuple(loaded.state.messages[len(before.state.messages) :]),
        usage=usage,
        recovery=any(isinstance(e.payload, TurnStartedPayload) and e.payload.recovery for e in turn_events),
        pending=loaded.state.pending_tool_calls,
        started=frozenset(started),
        approvals={call: approval for call, approval in requested.items() if approval not in answers},
        answered={call: answers[approval] for call, approval in requested.items() if approval in answers},
    )
