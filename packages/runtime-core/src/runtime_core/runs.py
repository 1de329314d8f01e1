"""Runs: status, terminal reasons, and the run record projected from the run log."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import AwareDatetime, Field, JsonValue, NonNegativeInt, model_validator

from runtime_core._base import FrozenModel, trusted
from runtime_core.agents import AgentSpec
from runtime_core.events import (
    ApprovalRequestedPayload,
    Event,
    ModelRespondedPayload,
    RunCreatedPayload,
    RunFailedPayload,
)
from runtime_core.reasons import TerminalReason, is_valid_reason
from runtime_core.tools import CompleteTaskInput
from runtime_core.usage import Usage

__all__ = ["Run", "RunResult", "RunStatus"]

_NO_USAGE = Usage()


class RunStatus(StrEnum):
    """Where a run is in its life cycle."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Whether the run can no longer change."""
        return self in _TERMINAL


_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})
_PROJECTED = frozenset(
    {
        "run.started",
        "run.resumed",
        "approval.resolved",
        "approval.requested",
        "run.paused",
        "run.completed",
        "run.failed",
        "run.cancelled",
        "turn.finished",
        "model.responded",
    }
)
"""Event types that change a run record beyond ``last_seq`` and ``updated_at``."""


class Run(FrozenModel):
    """A run as the store lists it: a projection of its run log, kept current by `Run.apply`.

    ``reason`` is set for terminal runs (one of `TerminalReason` or ``error:<code>``) and for runs waiting
    for approval (``approval_required`` or ``unknown_outcome``).
    """

    id: str = Field(min_length=1)
    agent: AgentSpec
    task: str
    status: RunStatus = RunStatus.QUEUED
    reason: str | None = None
    parent_run_id: str | None = None
    root_run_id: str | None = None
    depth: NonNegativeInt = 0
    created_at: AwareDatetime
    updated_at: AwareDatetime
    turns: NonNegativeInt = 0
    usage: Usage = Usage()
    last_seq: NonNegativeInt = 0
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _reason_fits_status(self) -> Self:
        if self.status.is_terminal:
            if self.reason is None or not is_valid_reason(self.reason):
                raise ValueError(f"a {self.status.value} run needs a terminal reason, got {self.reason!r}")
        elif self.status in (RunStatus.QUEUED, RunStatus.RUNNING) and self.reason is not None:
            raise ValueError(f"a {self.status.value} run has no reason")
        return self

    @classmethod
    def created(cls, event: Event) -> Run:
        """Build the run record from its ``run.created`` event."""
        payload = event.payload
        if not isinstance(payload, RunCreatedPayload):
            raise ValueError(f"a run starts with run.created, not {event.type.value}")
        # Every value comes from the validated event (a new run is queued, without a reason).
        return trusted(
            cls,
            {
                "id": event.run_id,
                "agent": payload.agent,
                "task": payload.task,
                "status": RunStatus.QUEUED,
                "reason": None,
                "parent_run_id": payload.parent_run_id,
                "root_run_id": payload.root_run_id or event.run_id,
                "depth": payload.depth,
                "created_at": event.ts,
                "updated_at": event.ts,
                "turns": 0,
                "usage": _NO_USAGE,
                "last_seq": event.seq,
                "metadata": payload.metadata,
            },
        )

    def apply(self, *events: Event) -> Run:
        """Return the run after `events`, in order (the projection every run store maintains)."""
        status, reason, turns, usage, updated = self.status, self.reason, self.turns, self.usage, self.updated_at
        for event in events:
            if event.ts > updated:
                updated = event.ts
            payload = event.payload
            if payload.type not in _PROJECTED:
                continue
            match payload.type:
                case "run.started" | "run.resumed" | "approval.resolved":
                    if not status.is_terminal:
                        status, reason = RunStatus.RUNNING, None
                case "approval.requested":
                    assert isinstance(payload, ApprovalRequestedPayload)
                    status, reason = RunStatus.WAITING_APPROVAL, payload.reason_code
                case "run.paused":
                    status, reason = RunStatus.PAUSED, None
                case "run.completed":
                    status, reason = RunStatus.COMPLETED, TerminalReason.COMPLETED.value
                case "run.failed":
                    assert isinstance(payload, RunFailedPayload)
                    status, reason = RunStatus.FAILED, payload.reason
                case "run.cancelled":
                    status, reason = RunStatus.CANCELLED, TerminalReason.CANCELLED.value
                case "turn.finished":
                    turns = max(turns, event.turn)
                case "model.responded":
                    assert isinstance(payload, ModelRespondedPayload)
                    usage = usage + payload.usage
                case _:
                    pass
        last_seq = events[-1].seq if events else self.last_seq
        # Every value comes from a valid run or a validated event: copy without validation (hot path).
        return trusted(
            Run,
            {
                **self.__dict__,
                "status": status,
                "reason": reason,
                "turns": turns,
                "usage": usage,
                "updated_at": updated,
                "last_seq": last_seq,
            },
        )


class RunResult(FrozenModel):
    """Where a run stands when its driver returns: finished, or stopped waiting for someone.

    ``output`` is the completion summary of a completed run and the partial output (the model's last
    text) of a failed one. ``completion`` holds the accepted ``complete_task`` arguments.
    """

    run_id: str = Field(min_length=1)
    status: RunStatus
    reason: str | None = None
    output: str | None = None
    completion: CompleteTaskInput | None = None
    error: str | None = Field(default=None, description="What went wrong, for a failed run.")
    turns: NonNegativeInt = 0
    usage: Usage = Usage()
    last_seq: NonNegativeInt = 0

    @property
    def ok(self) -> bool:
        """Whether the run completed through ``complete_task``."""
        return self.status is RunStatus.COMPLETED
