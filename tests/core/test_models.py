"""Invariants of the core models: validators, the run projection, checkpoint folding, ids and clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from runtime_core import (
    AgentSpec,
    Approval,
    ApprovalStatus,
    AssistantMessage,
    CheckpointDelta,
    CheckpointSnapshot,
    CheckpointState,
    CompleteTaskInput,
    Event,
    EventDraft,
    Limits,
    ManualClock,
    MessageEnvelope,
    MessageKind,
    PolicyDecision,
    PolicyOutcome,
    RecoveryConfig,
    Run,
    RunCreatedPayload,
    RunFailedPayload,
    RunStatus,
    SequentialIds,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    TurnDelta,
    TurnStartedPayload,
    UlidGenerator,
    Usage,
    error_reason,
    fold_checkpoints,
    is_completion_tool,
    match_tool_pattern,
)

from .strategies import models

T0 = datetime(2026, 1, 1, tzinfo=UTC)
AGENT = AgentSpec(name="a", model="scripted:demo")


def test_tool_names_follow_server_operation() -> None:
    assert ToolSpec(name="file:read", description="d").server == "file"
    assert ToolSpec(name="complete_task", description="d").server == ""
    for bad in ("read", "file:", "file read:x"):
        with pytest.raises(ValidationError):
            ToolSpec(name=bad, description="d")
    assert ToolSpec(name="x:y", description="d").effect.value == "unsafe"


def test_patterns_and_completion_names() -> None:
    assert match_tool_pattern("*", "file:read")
    assert match_tool_pattern("file:*", "file:read")
    assert not match_tool_pattern("file:*", "shell:run")
    assert match_tool_pattern("*:read", "file:read")
    assert is_completion_tool("complete_task")
    assert is_completion_tool("agent:complete_task")
    assert not is_completion_tool("complete_tasks")


def test_complete_task_input_cleans_and_rejects() -> None:
    parsed = CompleteTaskInput.model_validate({"summary": "  done ", "artifacts": [" a.md", "a.md", "b.md"]})
    assert parsed.summary == "done"
    assert parsed.artifacts == ("a.md", "b.md")
    assert CompleteTaskInput.model_validate({"summary": "x", "artifacts": []}).artifacts is None
    for bad in ({"summary": "   "}, {"summary": "x", "artifacts": [" "]}, {"summary": "x", "unknown": 1}, {}):
        with pytest.raises(ValidationError):
            CompleteTaskInput.model_validate(bad)


def test_policy_decision_fields_must_agree() -> None:
    PolicyDecision(allowed=True, requires_confirmation=True, policy_decision=PolicyOutcome.ALLOW_WITH_CONFIRM)
    with pytest.raises(ValidationError, match="contradicts"):
        PolicyDecision(allowed=False, policy_decision=PolicyOutcome.ALLOW)


def test_agent_spec_refuses_grace_beyond_max_turns() -> None:
    with pytest.raises(ValidationError, match="grace_turns"):
        AgentSpec(name="a", model="x:y", limits=Limits(max_turns=2), recovery=RecoveryConfig(grace_turns=2))
    with pytest.raises(ValidationError):
        AgentSpec(name="a", model="no-provider-prefix")


def test_approval_and_message_envelope_shapes() -> None:
    call = ToolCall(id="c", name="shell:run")
    pending = Approval(id="ap", run_id="r", tool_call=call, reason="why", requested_at=T0, expires_at=T0)
    assert pending.is_expired(T0)
    assert not pending.is_expired(T0 - timedelta(seconds=1))
    with pytest.raises(ValidationError, match="needs resolved_at"):
        Approval(id="ap", run_id="r", tool_call=call, reason="why", requested_at=T0, status=ApprovalStatus.DENIED)
    with pytest.raises(ValidationError, match="correlation_id"):
        MessageEnvelope(id="m", sender="a", kind=MessageKind.RESPONSE, timestamp=T0)


def test_event_type_must_match_payload() -> None:
    draft = EventDraft.of(TurnStartedPayload(), id="e", ts=T0, agent_id="a", turn=1)
    assert draft.type.value == "turn.started"
    with pytest.raises(ValidationError, match="does not match"):
        EventDraft(id="e", type="run.started", ts=T0, agent_id="a", payload=TurnStartedPayload())
    with pytest.raises(ValidationError):
        EventDraft.of(TurnStartedPayload(), id="e", ts=datetime(2026, 1, 1), agent_id="a")  # naive time


def _event(payload: object, seq: int, turn: int = 0) -> Event:
    draft = EventDraft.of(payload, id=f"e{seq}", ts=T0 + timedelta(seconds=seq), agent_id="a", turn=turn)  # type: ignore[arg-type]
    return Event.placed(draft, run_id="run_1", seq=seq)


def test_run_projection_needs_run_created_and_validates_reasons() -> None:
    run = Run.created(_event(RunCreatedPayload(agent=AGENT, task="t"), 1))
    assert run.root_run_id == "run_1"
    assert run.status is RunStatus.QUEUED
    with pytest.raises(ValueError, match=r"run\.created"):
        Run.created(_event(TurnStartedPayload(), 1))
    with pytest.raises(ValidationError, match="terminal reason"):
        run.model_validate({**run.model_dump(), "status": "failed", "reason": "because"})
    assert error_reason("TIMEOUT") == "error:TIMEOUT"
    with pytest.raises(ValueError, match="invalid error code"):
        error_reason("with space")
    for reason in ("completed", "cancelled", "tired", "error:"):
        with pytest.raises(ValidationError, match="not a failure reason"):
            RunFailedPayload(reason=reason, message="m")


def test_placed_events_equal_validated_ones() -> None:
    event = _event(TurnStartedPayload(), 2, turn=1)
    assert Event.model_validate(event.model_dump()) == event


def _delta(turn: int) -> TurnDelta:
    call = ToolCall(id=f"c{turn}", name="file:read")
    return TurnDelta(
        messages=(AssistantMessage(tool_calls=(call,)),),
        usage=Usage(input_tokens=turn),
        sop_phase=None if turn % 2 else f"p{turn}",
        variables={"last": turn},
    )


def test_pending_tool_calls_are_calls_without_results() -> None:
    state = CheckpointState().apply(1, _delta(1)).apply(2, _delta(2))
    assert [c.id for c in state.pending_tool_calls] == ["c1", "c2"]
    answered = state.apply(3, TurnDelta(messages=(ToolResultMessage(tool_call_id="c1", tool_name="x", content=""),)))
    assert [c.id for c in answered.pending_tool_calls] == ["c2"]
    assert answered.sop_phase == "p2"
    assert answered.variables == {"last": 2}
    assert answered.usage.input_tokens == 3


@settings(max_examples=60)
@given(deltas=st.lists(models(TurnDelta), min_size=1, max_size=12), interval=st.integers(1, 5))
def test_fold_with_snapshots_equals_fold_of_all_deltas(deltas: list[TurnDelta], interval: int) -> None:
    plain = [CheckpointDelta(run_id="r", turn=i, created_at=T0, delta=d) for i, d in enumerate(deltas, 1)]
    mixed: list[CheckpointDelta | CheckpointSnapshot] = []
    for row in plain:
        if row.turn % interval == 0:
            mixed.append(
                CheckpointSnapshot(run_id="r", turn=row.turn, created_at=T0, state=fold_checkpoints(plain[: row.turn]))
            )
        else:
            mixed.append(row)
    assert fold_checkpoints(mixed) == fold_checkpoints(plain)
    middle = len(deltas) // 2
    assert fold_checkpoints(mixed, at_turn=middle) == fold_checkpoints(plain[:middle])


def test_snapshot_turn_must_match_its_state() -> None:
    with pytest.raises(ValidationError, match="holds the state of turn"):
        CheckpointSnapshot(run_id="r", turn=2, created_at=T0, state=CheckpointState(turn=1))


def test_ulids_are_unique_and_sorted() -> None:
    ids = UlidGenerator()
    values = [ids.new_id("run") for _ in range(2000)]
    assert len(set(values)) == len(values)
    assert values == sorted(values)
    assert all(v.startswith("run_") and len(v) == 30 for v in values)


def test_sequential_ids_count_per_prefix() -> None:
    ids = SequentialIds()
    assert [ids.new_id("run"), ids.new_id("evt"), ids.new_id("run")] == ["run_000001", "evt_000001", "run_000002"]


def test_manual_clock_ticks_and_advances() -> None:
    clock = ManualClock(T0, tick=timedelta(milliseconds=5))
    assert clock.now() == T0
    assert clock.now() == T0 + timedelta(milliseconds=5)
    clock.advance(timedelta(seconds=1))
    assert clock.monotonic() == pytest.approx(1.01)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="aware"):
        ManualClock(datetime(2026, 1, 1))
