"""Approvals: a tool call waiting for a human (or a handler) to allow or deny it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import AwareDatetime, Field, model_validator

from runtime_core._base import FrozenModel
from runtime_core.tools import ToolCall

__all__ = [
    "Approval",
    "ApprovalDecision",
    "ApprovalHandler",
    "ApprovalResolution",
    "ApprovalStatus",
    "ApprovalStore",
]


class ApprovalStatus(StrEnum):
    """Life cycle of an approval request."""

    PENDING = "pending"
    ALLOWED = "allowed"
    DENIED = "denied"
    EXPIRED = "expired"


class ApprovalDecision(StrEnum):
    """The answer to an approval request."""

    ALLOW = "allow"
    DENY = "deny"


class Approval(FrozenModel):
    """A stored approval request and, once resolved, its resolution."""

    id: str = Field(min_length=1)
    run_id: str = Field(min_length=1)
    tool_call: ToolCall
    reason: str
    requested_at: AwareDatetime
    expires_at: AwareDatetime | None = None
    status: ApprovalStatus = ApprovalStatus.PENDING
    resolved_at: AwareDatetime | None = None
    resolved_by: str | None = None
    note: str | None = None
    sticky: bool = Field(default=False, description="Allow this tool for the rest of the run.")

    @model_validator(mode="after")
    def _resolution_matches_status(self) -> Approval:
        pending = self.status is ApprovalStatus.PENDING
        if pending and self.resolved_at is not None:
            raise ValueError("a pending approval has no resolved_at")
        if not pending and self.resolved_at is None:
            raise ValueError(f"a {self.status.value} approval needs resolved_at")
        return self

    def resolved(self, resolution: ApprovalResolution, *, at: datetime) -> Approval:
        """Return this approval answered by `resolution` at `at` (for approval store implementations)."""
        status = (
            ApprovalStatus.EXPIRED
            if resolution.expired
            else ApprovalStatus.ALLOWED
            if resolution.decision is ApprovalDecision.ALLOW
            else ApprovalStatus.DENIED
        )
        return self.model_copy(
            update={
                "status": status,
                "resolved_at": at,
                "resolved_by": resolution.resolved_by,
                "note": resolution.note,
                "sticky": resolution.sticky,
            }
        )

    def is_expired(self, now: datetime) -> bool:
        """Whether a pending approval has passed its expiry at `now`."""
        return self.status is ApprovalStatus.PENDING and self.expires_at is not None and now >= self.expires_at


class ApprovalResolution(FrozenModel):
    """An answer to an approval, from a handler, the CLI or the HTTP API (or its expiry: a denial)."""

    approval_id: str = Field(min_length=1)
    decision: ApprovalDecision
    note: str | None = None
    resolved_by: str | None = None
    sticky: bool = Field(default=False, description="Allow this tool without asking for the rest of the run.")
    expired: bool = Field(default=False, description="Nobody answered before the approval expired (a denial).")

    @model_validator(mode="after")
    def _expiry_denies(self) -> ApprovalResolution:
        if self.expired and self.decision is not ApprovalDecision.DENY:
            raise ValueError("an expired approval resolves to deny")
        return self


@runtime_checkable
class ApprovalHandler(Protocol):
    """Answers approval requests in process (a UI prompt, a rule, a test)."""

    async def decide(self, approval: Approval) -> ApprovalResolution | None:
        """Return a resolution, or ``None`` to leave the approval pending for an external resolver."""
        ...


@runtime_checkable
class ApprovalStore(Protocol):
    """Where approval requests wait for an answer; durable stores let another process resolve them."""

    async def create(self, approval: Approval) -> Approval:
        """Store a new pending approval.

        Raises:
            AlreadyExistsError: The id is taken.
        """
        ...

    async def get(self, approval_id: str) -> Approval:
        """Return an approval. Raises `NotFoundError`."""
        ...

    async def list(self, *, run_id: str | None = None, status: ApprovalStatus | None = None) -> Sequence[Approval]:
        """Return approvals, oldest first, optionally only a run's or only those with `status`."""
        ...

    async def resolve(self, resolution: ApprovalResolution, *, at: datetime) -> Approval:
        """Record the answer to a pending approval and return the resolved approval.

        Raises:
            NotFoundError: No such approval.
            ApprovalResolvedError: The approval was already resolved (or expired).
        """
        ...
