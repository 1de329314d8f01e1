"""The run log: event envelopes and one payload model per event type.

The run log is append-only and the source of truth of a run. Writers build an
[`EventDraft`][runtime_core.events.EventDraft]; the run store assigns ``run_id`` and a dense ``seq`` and
returns the recorded [`Event`][runtime_core.events.Event].
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Annotated, Literal, Protocol, Self, runtime_checkable

from pydantic import (
    AwareDatetime,
    Field,
    JsonValue,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    field_validator,
    model_validator,
)

from runtime_core._base import FrozenModel, trusted
from runtime_core.agents import AgentSpec
from runtime_core.approvals import ApprovalDecision, ApprovalResolution
from runtime_core.budgets import BudgetState
from runtime_core.messages import AssistantMessage
from runtime_core.messaging import MessageEnvelope
from runtime_core.policy import PolicyDecision
from runtime_core.providers import FinishReason
from runtime_core.reasons import TerminalReason, is_valid_reason
from runtime_core.tools import ToolCall, ToolEffect, ToolError, ToolResult
from runtime_core.usage import Usage

__all__ = [
    "ApprovalRequestedPayload",
    "ApprovalResolvedPayload",
    "BudgetDebitedPayload",
    "CheckpointSavedPayload",
    "CompletionRecordedPayload",
    "ContextCompactedPayload",
    "ErrorPayload",
    "Event",
    "EventDraft",
    "EventPayload",
    "EventSink",
    "EventType",
    "GateFailedPayload",
    "MessageDeliveredPayload",
    "ModelRequestedPayload",
    "ModelRespondedPayload",
    "PhaseAdvancedPayload",
    "PolicyDecidedPayload",
    "RecoveryStartedPayload",
    "RoutingDecidedPayload",
    "RunCancelledPayload",
    "RunCompletedPayload",
    "RunCreatedPayload",
    "RunFailedPayload",
    "RunPausedPayload",
    "RunResumedPayload",
    "RunStartedPayload",
    "SubagentFinishedPayload",
    "SubagentSpawnedPayload",
    "ToolCalledPayload",
    "ToolFailedPayload",
    "ToolFinishedPayload",
    "ToolStartedPayload",
    "TurnFinishedPayload",
    "TurnStartedPayload",
    "event_types",
]


class EventType(StrEnum):
    """Every event type of the run log."""

    RUN_CREATED = "run.created"
    RUN_STARTED = "run.started"
    TURN_STARTED = "turn.started"
    ROUTING_DECIDED = "routing.decided"
    MODEL_REQUESTED = "model.requested"
    MODEL_RESPONDED = "model.responded"
    CONTEXT_COMPACTED = "context.compacted"
    TOOL_CALLED = "tool.called"
    POLICY_DECIDED = "policy.decided"
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_RESOLVED = "approval.resolved"
    TOOL_STARTED = "tool.started"
    TOOL_FINISHED = "tool.finished"
    TOOL_FAILED = "tool.failed"
    BUDGET_DEBITED = "budget.debited"
    RECOVERY_STARTED = "recovery.started"
    COMPLETION_RECORDED = "completion.recorded"
    CHECKPOINT_SAVED = "checkpoint.saved"
    PHASE_ADVANCED = "phase.advanced"
    GATE_FAILED = "gate.failed"
    SUBAGENT_SPAWNED = "subagent.spawned"
    SUBAGENT_FINISHED = "subagent.finished"
    MESSAGE_DELIVERED = "message.delivered"
    TURN_FINISHED = "turn.finished"
    RUN_PAUSED = "run.paused"
    RUN_RESUMED = "run.resumed"
    RUN_COMPLETED = "run.completed"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"
    ERROR = "error"


_EVENT_TYPES: dict[str, EventType] = {member.value: member for member in EventType}


def event_types(names: Iterable[str]) -> frozenset[EventType]:
    """The event types `names` (members or their dot names) name, for filtering a run log.

    Raises:
        ValueError: A name is not an event type (the message lists the valid ones), or `names` is one string.
    """
    if isinstance(names, str):
        raise ValueError(f"event types are a collection of names, not one string: [{names!r}], not {names!r}")
    wanted: set[EventType] = set()
    for name in names:
        member = _EVENT_TYPES.get(name)
        if member is None:
            raise ValueError(f"{name!r} is not an event type; the types are: {', '.join(_EVENT_TYPES)}")
        wanted.add(member)
    return frozenset(wanted)


class RunCreatedPayload(FrozenModel):
    """A run was created (always ``seq`` 1)."""

    type: Literal["run.created"] = "run.created"
    agent: AgentSpec
    task: str
    parent_run_id: str | None = None
    root_run_id: str | None = None
    depth: NonNegativeInt = 0
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class RunStartedPayload(FrozenModel):
    """A worker started (or resumed) driving the run."""

    type: Literal["run.started"] = "run.started"
    worker: str | None = None
    resumed: bool = False


class TurnStartedPayload(FrozenModel):
    """A turn began."""

    type: Literal["turn.started"] = "turn.started"
    recovery: bool = False


class RoutingDecidedPayload(FrozenModel):
    """The model for this turn was chosen."""

    type: Literal["routing.decided"] = "routing.decided"
    requested: str
    resolved: str
    reason: str
    fallback_from: str | None = None
    health: str | None = None


class ModelRequestedPayload(FrozenModel):
    """A model call was sent."""

    type: Literal["model.requested"] = "model.requested"
    model: str
    message_count: NonNegativeInt
    tool_names: tuple[str, ...] = ()
    estimated_input_tokens: NonNegativeInt | None = None


class ModelRespondedPayload(FrozenModel):
    """A model call returned; the reply is recorded in full so replay needs no network."""

    type: Literal["model.responded"] = "model.responded"
    model: str
    message: AssistantMessage
    usage: Usage = Usage()
    finish_reason: FinishReason = FinishReason.STOP
    latency_ms: NonNegativeFloat = 0.0


class ContextCompactedPayload(FrozenModel):
    """The conversation was compacted."""

    type: Literal["context.compacted"] = "context.compacted"
    strategy: str
    messages_before: NonNegativeInt
    messages_after: NonNegativeInt
    tokens_before: NonNegativeInt
    tokens_after: NonNegativeInt
    summary: str | None = None


class ToolCalledPayload(FrozenModel):
    """The model asked for a tool call."""

    type: Literal["tool.called"] = "tool.called"
    call: ToolCall


class PolicyDecidedPayload(FrozenModel):
    """The policy engine decided on a tool call."""

    type: Literal["policy.decided"] = "policy.decided"
    tool_name: str
    decision: PolicyDecision


class ApprovalRequestedPayload(FrozenModel):
    """A tool call waits for approval; the run is ``waiting_approval`` until it is resolved."""

    type: Literal["approval.requested"] = "approval.requested"
    approval_id: str
    call: ToolCall
    reason: str
    reason_code: str = "approval_required"
    expires_at: AwareDatetime | None = None


class ApprovalResolvedPayload(FrozenModel):
    """An approval was resolved (``expired`` resolves to deny)."""

    type: Literal["approval.resolved"] = "approval.resolved"
    approval_id: str
    decision: ApprovalDecision
    expired: bool = False
    resolved_by: str | None = None
    note: str | None = None
    sticky: bool = False

    @classmethod
    def of(cls, resolution: ApprovalResolution) -> ApprovalResolvedPayload:
        """The event recording `resolution`."""
        return cls(
            approval_id=resolution.approval_id,
            decision=resolution.decision,
            expired=resolution.expired,
            resolved_by=resolution.resolved_by,
            note=resolution.note,
            sticky=resolution.sticky,
        )

    def resolution(self, approval_id: str | None = None) -> ApprovalResolution:
        """The recorded answer, for the same approval or (given `approval_id`) for another one."""
        return ApprovalResolution(
            approval_id=approval_id or self.approval_id,
            decision=self.decision,
            note=self.note,
            resolved_by=self.resolved_by,
            sticky=self.sticky,
            expired=self.expired,
        )


class ToolStartedPayload(FrozenModel):
    """A tool is about to run. Durable before any tool whose effect is not ``none`` executes."""

    type: Literal["tool.started"] = "tool.started"
    tool_name: str
    effect: ToolEffect
    idempotency_key: str
    attempt: PositiveInt = 1


class ToolFinishedPayload(FrozenModel):
    """A tool call succeeded."""

    type: Literal["tool.finished"] = "tool.finished"
    result: ToolResult


class ToolFailedPayload(FrozenModel):
    """A tool call failed (the error result is what the model sees)."""

    type: Literal["tool.failed"] = "tool.failed"
    result: ToolResult
    attempt: PositiveInt = 1
    will_retry: bool = False

    @model_validator(mode="after")
    def _has_error(self) -> Self:
        if self.result.error is None:
            raise ValueError("tool.failed needs a result with an error")
        return self

    @property
    def error(self) -> ToolError:
        """The failure."""
        assert self.result.error is not None  # guaranteed by the validator
        return self.result.error


class BudgetDebitedPayload(FrozenModel):
    """Consumption was charged against the budget."""

    type: Literal["budget.debited"] = "budget.debited"
    usage: Usage
    state: BudgetState


class RecoveryStartedPayload(FrozenModel):
    """The recovery turn began: only ``complete_task`` is exposed until the deadline."""

    type: Literal["recovery.started"] = "recovery.started"
    trigger: Literal["max_turns", "soft_budget", "wall_time"]
    max_turns: PositiveInt
    grace_turns: NonNegativeInt
    deadline_s: NonNegativeFloat


class CompletionRecordedPayload(FrozenModel):
    """``complete_task`` was accepted."""

    type: Literal["completion.recorded"] = "completion.recorded"
    summary: str
    artifacts: tuple[str, ...] = ()
    next_steps: str | None = None


class CheckpointSavedPayload(FrozenModel):
    """A checkpoint row was written in the same transaction."""

    type: Literal["checkpoint.saved"] = "checkpoint.saved"
    kind: Literal["delta", "snapshot"]
    parent_turn: NonNegativeInt | None = None
    final: bool = False


class PhaseAdvancedPayload(FrozenModel):
    """The SOP moved to the next phase."""

    type: Literal["phase.advanced"] = "phase.advanced"
    role: str
    from_phase: str | None
    to_phase: str


class GateFailedPayload(FrozenModel):
    """A quality gate blocked a phase transition."""

    type: Literal["gate.failed"] = "gate.failed"
    role: str
    phase: str
    gate: str
    reason: str | None = None


class SubagentSpawnedPayload(FrozenModel):
    """A child run was delegated."""

    type: Literal["subagent.spawned"] = "subagent.spawned"
    child_run_id: str
    role: str
    task: str
    depth: PositiveInt


class SubagentFinishedPayload(FrozenModel):
    """A child run ended; its usage rolls up into the parent."""

    type: Literal["subagent.finished"] = "subagent.finished"
    child_run_id: str
    status: str
    reason: str | None = None
    usage: Usage = Usage()


class MessageDeliveredPayload(FrozenModel):
    """A bus message was delivered to or from this run's agent."""

    type: Literal["message.delivered"] = "message.delivered"
    envelope: MessageEnvelope


class TurnFinishedPayload(FrozenModel):
    """A turn ended."""

    type: Literal["turn.finished"] = "turn.finished"
    usage: Usage = Usage()
    tool_calls: NonNegativeInt = 0
    duration_ms: NonNegativeFloat = 0.0


class RunPausedPayload(FrozenModel):
    """The run was paused (a pause or step signal)."""

    type: Literal["run.paused"] = "run.paused"
    reason: str | None = None


class RunResumedPayload(FrozenModel):
    """The run was resumed."""

    type: Literal["run.resumed"] = "run.resumed"
    reason: str | None = None


class RunCompletedPayload(FrozenModel):
    """The run completed through ``complete_task``."""

    type: Literal["run.completed"] = "run.completed"
    summary: str


class RunFailedPayload(FrozenModel):
    """The run failed; ``partial_output`` keeps what it produced."""

    type: Literal["run.failed"] = "run.failed"
    reason: str
    message: str
    partial_output: str | None = None

    @field_validator("reason")
    @classmethod
    def _failure_reason(cls, reason: str) -> str:
        if not is_valid_reason(reason) or reason in (TerminalReason.COMPLETED, TerminalReason.CANCELLED):
            raise ValueError(
                f"{reason!r} is not a failure reason: use no_completion, recovery_failed, budget_exhausted, "
                "policy_denied or error:<code>"
            )
        return reason


class RunCancelledPayload(FrozenModel):
    """The run was cancelled."""

    type: Literal["run.cancelled"] = "run.cancelled"
    reason: str | None = None


class ErrorPayload(FrozenModel):
    """A recoverable or unrecoverable error worth recording."""

    type: Literal["error"] = "error"
    code: str
    message: str
    stage: str | None = None
    recoverable: bool = False


EventPayload = Annotated[
    RunCreatedPayload
    | RunStartedPayload
    | TurnStartedPayload
    | RoutingDecidedPayload
    | ModelRequestedPayload
    | ModelRespondedPayload
    | ContextCompactedPayload
    | ToolCalledPayload
    | PolicyDecidedPayload
    | ApprovalRequestedPayload
    | ApprovalResolvedPayload
    | ToolStartedPayload
    | ToolFinishedPayload
    | ToolFailedPayload
    | BudgetDebitedPayload
    | RecoveryStartedPayload
    | CompletionRecordedPayload
    | CheckpointSavedPayload
    | PhaseAdvancedPayload
    | GateFailedPayload
    | SubagentSpawnedPayload
    | SubagentFinishedPayload
    | MessageDeliveredPayload
    | TurnFinishedPayload
    | RunPausedPayload
    | RunResumedPayload
    | RunCompletedPayload
    | RunFailedPayload
    | RunCancelledPayload
    | ErrorPayload,
    Field(discriminator="type"),
]
"""The payload of any event, discriminated by ``type``."""


class EventDraft(FrozenModel):
    """An event before the store places it in the run log.

    Build one with [`EventDraft.of`][runtime_core.events.EventDraft.of], which copies ``type`` from the
    payload.
    """

    id: str = Field(min_length=1)
    type: EventType
    ts: AwareDatetime
    turn: NonNegativeInt = 0
    agent_id: str
    tool_call_id: str | None = None
    payload: EventPayload
    v: PositiveInt = 1

    @model_validator(mode="after")
    def _type_matches_payload(self) -> Self:
        if self.type.value != self.payload.type:
            raise ValueError(f"event type {self.type.value!r} does not match payload type {self.payload.type!r}")
        return self

    @classmethod
    def of(
        cls,
        payload: EventPayload,
        *,
        id: str,
        ts: AwareDatetime,
        agent_id: str,
        turn: int = 0,
        tool_call_id: str | None = None,
    ) -> EventDraft:
        """Build a draft whose ``type`` is the payload's."""
        return EventDraft(
            id=id,
            type=EventType(payload.type),
            ts=ts,
            turn=turn,
            agent_id=agent_id,
            tool_call_id=tool_call_id,
            payload=payload,
        )


class Event(EventDraft):
    """A recorded event: a draft placed at ``seq`` (dense from 1) in the log of ``run_id``."""

    run_id: str = Field(min_length=1)
    seq: PositiveInt

    @staticmethod
    def id_for(run_id: str, seq: int) -> str:
        """The id the agent loop gives the event it records at `seq` of `run_id`: ``"<run_id>.<seq>"``.

        Drafts are committed in the order they are made, so the id is known before the commit, stays
        the same on every retry of the boundary (a retried boundary is refused as a duplicate) and costs
        nothing to compute.
        """
        return f"{run_id}.{seq}"

    @classmethod
    def placed(cls, draft: EventDraft, *, run_id: str, seq: int) -> Event:
        """Place `draft` in a run log (for run store implementations).

        A draft that already is an `Event` at this place (see `recorded`) is returned as it is.
        """
        return cls.placed_all((draft,), run_id=run_id, after_seq=seq - 1)[0]

    @classmethod
    def placed_all(cls, drafts: Sequence[EventDraft], *, run_id: str, after_seq: int) -> list[Event]:
        """Place one boundary's `drafts` after `after_seq` in the log of `run_id`, as `placed` does each."""
        return [
            # A draft the writer built as the event it expects (`recorded`) is kept: no copy, no call.
            draft
            if type(draft) is Event and draft.seq == after_seq + i and draft.run_id == run_id
            else trusted(cls, {**draft.__dict__, "run_id": run_id, "seq": after_seq + i})
            for i, draft in enumerate(drafts, 1)
        ]

    @classmethod
    def recorded(
        cls,
        payload: EventPayload,
        *,
        run_id: str,
        seq: int,
        ts: AwareDatetime,
        agent_id: str,
        turn: int,
        tool_call_id: str | None = None,
    ) -> Event:
        """Build the event a writer expects the store to record at `seq`, without validation.

        For writers on the hot path whose arguments are valid by construction (the payload is a
        validated model): it skips the validation that `EventDraft.of` does, and a store's `placed`
        keeps the object instead of copying it. Its id is `id_for(run_id, seq)`.
        """
        return trusted(
            cls,
            {
                "id": f"{run_id}.{seq}",
                "type": _EVENT_TYPES[payload.type],
                "ts": ts,
                "turn": turn,
                "agent_id": agent_id,
                "tool_call_id": tool_call_id,
                "payload": payload,
                "v": 1,
                "run_id": run_id,
                "seq": seq,
            },
        )


@runtime_checkable
class EventSink(Protocol):
    """Receives recorded events after their boundary committed (event bus, telemetry, SSE)."""

    def emit(self, events: Sequence[Event]) -> None:
        """Take the events of one committed boundary, in ``seq`` order. Must not block."""
        ...
