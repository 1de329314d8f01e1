"""The request and response bodies of the HTTP API (they make the OpenAPI document precise).

Runs, events, approvals and replay reports are returned as the runtime's own models (`Run`, `Event`,
`Approval`, `ReplayReport`); the models here wrap lists, carry requests and shape errors.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from runtime_core.approvals import Approval, ApprovalDecision
from runtime_core.events import Event
from runtime_core.runs import Run

__all__ = [
    "AgentSource",
    "ApprovalList",
    "CancelRequest",
    "CreateRunRequest",
    "ErrorBody",
    "ErrorDetail",
    "ErrorType",
    "EventList",
    "ForkRequest",
    "Health",
    "Problem",
    "ReplayRequest",
    "ResolveApprovalRequest",
    "ResumeRequest",
    "RunList",
]

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
"""What a client-chosen run id may be (the runtime appends ``.<seq>`` to make event ids)."""

# NUL cannot be stored in a PostgreSQL text column: refused at the edge instead of failing in the store.
_Text = Annotated[str, Field(pattern=r"^[^\x00]*$")]


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AgentSource(_Request):
    """An agent: the text of an agent file, or the path of one on the server (give one of them).

    Attributes:
        agent: An agent file's TOML text; the paths it names (instructions file, scenario, policy file,
            workspace) are relative to the server's agents directory and may not leave it.
        agent_path: An agent file on the server, relative to its agents directory (it may not leave it).
    """

    agent: Annotated[_Text, Field(min_length=1, max_length=1_000_000)] | None = None
    agent_path: Annotated[_Text, Field(min_length=1, max_length=4096)] | None = None

    @model_validator(mode="after")
    def _not_both(self) -> AgentSource:
        if self.agent is not None and self.agent_path is not None:
            raise ValueError("give agent (an agent file's text) or agent_path (a file on the server), not both")
        return self


class CreateRunRequest(AgentSource):
    """``POST /v1/runs``: start a run.

    Attributes:
        task: What the agent should do.
        workspace: Root of the file and shell tools, relative to the agents directory, which it may not
            leave (default: the agent's).
        run_id: Use this id instead of a generated one.
        metadata: Stored with the run.
    """

    task: Annotated[_Text, Field(min_length=1, max_length=1_000_000)]
    workspace: Annotated[_Text, Field(min_length=1, max_length=4096)] | None = None
    run_id: Annotated[str, Field(pattern=RUN_ID_PATTERN)] | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_agent(self) -> CreateRunRequest:
        if self.agent is None and self.agent_path is None:
            raise ValueError("give agent (an agent file's text) or agent_path (a file on the server)")
        return self


class CancelRequest(_Request):
    """``POST /v1/runs/{run_id}/cancel``.

    Attributes:
        reason: Recorded in ``run.cancelled`` and in the denial of its pending approvals.
    """

    reason: Annotated[_Text, Field(min_length=1, max_length=10_000)] | None = None


class ResumeRequest(_Request):
    """``POST /v1/runs/{run_id}/resume``.

    Attributes:
        steal: Take the run over even if another worker's lease is still live (that worker is known dead,
            for example a server that was killed).
    """

    steal: bool = False


class ForkRequest(AgentSource):
    """``POST /v1/runs/{run_id}/fork``: a new run from the end of one of its turns, optionally with another agent.

    Attributes:
        at_turn: A finished turn of the run.
    """

    at_turn: Annotated[int, Field(ge=0, le=2**31 - 1)]


class ReplayRequest(AgentSource):
    """``POST /v1/runs/{run_id}/replay``: re-drive the run offline, with its own agent or another one."""


class ResolveApprovalRequest(_Request):
    """``POST /v1/approvals/{approval_id}``: answer an approval request.

    Attributes:
        decision: ``allow`` or ``deny``.
        note: Recorded with the answer.
        sticky: With ``allow``: allow this tool without asking for the rest of the run.
        resolved_by: Who answered (default ``http-api``).
    """

    decision: ApprovalDecision
    note: Annotated[_Text, Field(max_length=10_000)] | None = None
    sticky: bool = False
    resolved_by: Annotated[_Text, Field(min_length=1, max_length=200)] | None = None


class RunList(BaseModel):
    """``GET /v1/runs``: the most recent runs, newest first."""

    runs: list[Run]


class EventList(BaseModel):
    """``GET /v1/runs/{run_id}/events`` with ``Accept: application/json``: the events recorded so far."""

    events: list[Event]


class ApprovalList(BaseModel):
    """``GET /v1/approvals``."""

    approvals: list[Approval]


class Health(BaseModel):
    """``GET /healthz``.

    Attributes:
        status: Always ``ok`` when the server answers.
        version: The version of runtime-facade.
    """

    status: str = "ok"
    version: str


class ErrorType(StrEnum):
    """What kind of error a response carries (``error.type``)."""

    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INVALID_REQUEST = "invalid_request"
    INVALID_AGENT = "invalid_agent"
    CONFLICT = "conflict"
    LEASE_HELD = "lease_held"
    APPROVAL_RESOLVED = "approval_resolved"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class Problem(BaseModel):
    """One problem of an invalid request or agent file.

    Attributes:
        location: Where: a dotted field name (``body.task``, ``limits.max_turns``).
        message: What is wrong.
        line: The line of the agent file, when the problem is in one.
    """

    location: str
    message: str
    line: int | None = None


class ErrorDetail(BaseModel):
    """The ``error`` member of an error response.

    Attributes:
        type: The kind of error (stable; branch on it).
        message: A human-readable description.
        problems: Every problem, for an invalid request or agent file.
    """

    type: ErrorType
    message: str
    problems: list[Problem] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {"type": ..., "message": ..., "problems": [...]}}``."""

    error: ErrorDetail
