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

__all__ = ["resume_point"]


async def resume_point(store: RunStore, loaded: LoadedRun, events: Sequence[Event]) -> ResumePoint:
    """Read the log of a run to resume: the open turn (if any) and the ledger of its calls."""
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
