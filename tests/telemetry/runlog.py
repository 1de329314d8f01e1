"""A builder of run logs for the bridge tests: recorded events with dense seqs and known timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runtime_core.agents import AgentSpec
from runtime_core.approvals import ApprovalDecision
from runtime_core.events import (
    ApprovalRequestedPayload,
    ApprovalResolvedPayload,
    CheckpointSavedPayload,
    CompletionRecordedPayload,
    ContextCompactedPayload,
    ErrorPayload,
    Event,
    EventPayload,
    ModelRequestedPayload,
    ModelRespondedPayload,
    PolicyDecidedPayload,
    RecoveryStartedPayload,
    RunCompletedPayload,
    RunCreatedPayload,
    RunFailedPayload,
    RunStartedPayload,
    SubagentSpawnedPayload,
    ToolCalledPayload,
    ToolFailedPayload,
    ToolFinishedPayload,
    ToolStartedPayload,
    TurnFinishedPayload,
    TurnStartedPayload,
)
from runtime_core.messages import AssistantMessage
from runtime_core.policy import PolicyDecision, PolicyOutcome
from runtime_core.providers import FinishReason
from runtime_core.tools import ToolCall, ToolEffect, ToolError, ToolErrorCode, ToolResult
from runtime_core.usage import Usage

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
MODEL = "openai:gpt-test"


def ns(ts: datetime) -> int:
    """Nanoseconds since the epoch, as the bridge gives spans."""
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


class RunLog:
    """Appends events of one run; every event is 1 ms after the previous one."""

    def __init__(self, run_id: str = "run_1", agent: str = "writer", *, start_seq: int = 1) -> None:
        self.run_id = run_id
        self.agent = agent
        self.events: list[Event] = []
        self._seq = start_seq
        self._ts = T0
        self.turn = 0

    def add(self, payload: EventPayload, *, tool_call_id: str | None = None) -> Event:
        event = Event.recorded(
            payload,
            run_id=self.run_id,
            seq=self._seq,
            ts=self._ts,
            agent_id=self.agent,
            turn=self.turn,
            tool_call_id=tool_call_id,
        )
        self._seq += 1
        self._ts += timedelta(milliseconds=1)
        self.events.append(event)
        return event

    # -- building blocks ---------------------------------------------------------------------------------

    def created(self, *, parent_run_id: str | None = None) -> Event:
        agent = AgentSpec(name=self.agent, model=MODEL)
        return self.add(RunCreatedPayload(agent=agent, task="write", parent_run_id=parent_run_id))

    def started(self, *, resumed: bool = False) -> Event:
        return self.add(RunStartedPayload(worker="w", resumed=resumed))

    def turn_start(self, *, recovery: bool = False) -> Event:
        self.turn += 1
        return self.add(TurnStartedPayload(recovery=recovery))

    def model_call(self, input_tokens: int, output_tokens: int, *calls: ToolCall, cost: float = 0.0) -> None:
        self.add(ModelRequestedPayload(model=MODEL, message_count=1))
        self.add(
            ModelRespondedPayload(
                model=MODEL,
                message=AssistantMessage(content=None if calls else "text", tool_calls=calls),
                usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens, requests=1, cost_usd=cost),
                finish_reason=FinishReason.TOOL_CALLS if calls else FinishReason.STOP,
                latency_ms=250.0,
            )
        )
        for call in calls:
            self.add(ToolCalledPayload(call=call), tool_call_id=call.id)

    def tool_ok(self, call: ToolCall, *, cached: bool = False, effect: ToolEffect | None = None) -> Event:
        if effect is not None:
            self.add(
                ToolStartedPayload(tool_name=call.name, effect=effect, idempotency_key=call.id), tool_call_id=call.id
            )
        result = ToolResult(tool_call_id=call.id, tool_name=call.name, content="ok", duration_ms=2.0, cached=cached)
        return self.add(ToolFinishedPayload(result=result), tool_call_id=call.id)

    def tool_error(
        self, call: ToolCall, code: ToolErrorCode = ToolErrorCode.EXECUTION_FAILED, *, will_retry: bool = False
    ) -> Event:
        result = ToolResult(
            tool_call_id=call.id,
            tool_name=call.name,
            content="Error",
            error=ToolError(code=code, message="it broke"),
            duration_ms=1.0,
        )
        return self.add(ToolFailedPayload(result=result, will_retry=will_retry), tool_call_id=call.id)

    def policy(self, call: ToolCall, outcome: PolicyOutcome) -> Event:
        decision = PolicyDecision(
            allowed=outcome is not PolicyOutcome.DENY,
            requires_confirmation=outcome is PolicyOutcome.ALLOW_WITH_CONFIRM,
            policy_decision=outcome,
            reason_code="rule",
        )
        return self.add(PolicyDecidedPayload(tool_name=call.name, decision=decision), tool_call_id=call.id)

    def approval(self, call: ToolCall, decision: ApprovalDecision) -> None:
        self.add(ApprovalRequestedPayload(approval_id=f"ap_{call.id}", call=call, reason="risky"), tool_call_id=call.id)
        self.add(ApprovalResolvedPayload(approval_id=f"ap_{call.id}", decision=decision), tool_call_id=call.id)

    def turn_end(self, input_tokens: int = 0, output_tokens: int = 0, tool_calls: int = 0) -> Event:
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, requests=1)
        self.add(TurnFinishedPayload(usage=usage, tool_calls=tool_calls, duration_ms=5.0))
        return self.add(CheckpointSavedPayload(kind="delta", final=True))

    def recovery(self) -> Event:
        return self.add(RecoveryStartedPayload(trigger="max_turns", max_turns=3, grace_turns=1, deadline_s=60.0))

    def compacted(self, before: int, after: int) -> Event:
        return self.add(
            ContextCompactedPayload(
                strategy="sliding_window",
                messages_before=10,
                messages_after=4,
                tokens_before=before,
                tokens_after=after,
            )
        )

    def error(self, code: str = "provider_error") -> Event:
        return self.add(ErrorPayload(code=code, message="the provider failed", stage="model"))

    def spawned(self, child_run_id: str, call: ToolCall) -> Event:
        payload = SubagentSpawnedPayload(child_run_id=child_run_id, role="helper", task="help", depth=1)
        return self.add(payload, tool_call_id=call.id)

    def completed(self) -> Event:
        self.add(CompletionRecordedPayload(summary="done"))
        return self.add(RunCompletedPayload(summary="done"))

    def failed(self, reason: str = "recovery_failed") -> Event:
        return self.add(RunFailedPayload(reason=reason, message="no completion"))


def call(name: str, call_id: str) -> ToolCall:
    """A tool call."""
    return ToolCall(id=call_id, name=name, arguments={})
