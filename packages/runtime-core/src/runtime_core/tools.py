"""Tools: specifications, calls, results, error codes, and the tool and registry protocols."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol, runtime_checkable

from pydantic import Field, JsonValue, NonNegativeFloat, PositiveFloat, StringConstraints, field_validator

from runtime_core._base import FrozenModel
from runtime_core.spool import SpoolRef

__all__ = [
    "COMPLETION_TOOL_NAME",
    "TOOL_NAME_PATTERN",
    "CompleteTaskInput",
    "ReconcilableTool",
    "Tool",
    "ToolCall",
    "ToolConcurrency",
    "ToolContext",
    "ToolEffect",
    "ToolError",
    "ToolErrorCode",
    "ToolName",
    "ToolRegistry",
    "ToolResult",
    "ToolSpec",
    "is_completion_tool",
    "match_tool_pattern",
]

COMPLETION_TOOL_NAME = "complete_task"
"""The one tool that ends a run; the only tool name exempt from the ``server:operation`` form."""

TOOL_NAME_PATTERN = r"^(?:complete_task|[A-Za-z0-9_-]+:[A-Za-z0-9_.-]+)$"

ToolName = Annotated[str, StringConstraints(pattern=TOOL_NAME_PATTERN, max_length=128)]
"""A tool name: ``server:operation`` (``file:read``), or ``complete_task``."""


def is_completion_tool(name: str) -> bool:
    """Whether `name` is the completion tool, bare or namespaced (``agent:complete_task``)."""
    return name == COMPLETION_TOOL_NAME or name.endswith(":" + COMPLETION_TOOL_NAME)


def match_tool_pattern(pattern: str, name: str) -> bool:
    """Match a tool name against a pattern: exact, ``*``, ``server:*`` or any shell-style glob."""
    return pattern == name or fnmatch.fnmatchcase(name, pattern)


class ToolEffect(StrEnum):
    """What running a tool does to the world; drives the side-effect ledger on resume and replay."""

    NONE = "none"
    """Read-only: safe to run again."""
    IDEMPOTENT = "idempotent"
    """Running again with the same idempotency key has no further effect."""
    COMPENSABLE = "compensable"
    """Has effects, but a reconcile hook can find out what happened and fix it up."""
    UNSAFE = "unsafe"
    """Has effects that must never be repeated silently."""


class ToolConcurrency(StrEnum):
    """Whether a tool may run beside others in a batch group."""

    PARALLEL = "parallel"
    EXCLUSIVE = "exclusive"


class ToolErrorCode(StrEnum):
    """Why a tool call failed."""

    EXECUTION_FAILED = "EXECUTION_FAILED"
    TIMEOUT = "TIMEOUT"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    PERMISSION_ESCALATION_REQUIRED = "PERMISSION_ESCALATION_REQUIRED"
    INVALID_ARGUMENTS = "INVALID_ARGUMENTS"
    SANDBOX_VIOLATION = "SANDBOX_VIOLATION"
    RESOURCE_NOT_FOUND = "RESOURCE_NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"
    CONFLICT = "CONFLICT"
    DRYRUN_REJECTED = "DRYRUN_REJECTED"
    RETRY_EXHAUSTED = "RETRY_EXHAUSTED"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    PROMPT_INJECTION_BLOCKED = "PROMPT_INJECTION_BLOCKED"
    DUPLICATE_FAILED_ACTION = "DUPLICATE_FAILED_ACTION"


def _empty_object_schema() -> dict[str, JsonValue]:
    return {"type": "object", "properties": {}}


class ToolSpec(FrozenModel):
    """What the model and the governance planes know about a tool.

    The default ``effect`` is ``unsafe``: a tool that does not say otherwise is never re-run silently.
    """

    name: ToolName
    description: str
    parameters: dict[str, JsonValue] = Field(
        default_factory=_empty_object_schema,
        description="JSON schema of the arguments object.",
    )
    effect: ToolEffect = ToolEffect.UNSAFE
    requires_confirmation: bool = False
    category: str = "general"
    concurrency: ToolConcurrency = ToolConcurrency.PARALLEL
    timeout_s: PositiveFloat | None = None

    @property
    def server(self) -> str:
        """The part before the colon (empty for ``complete_task``)."""
        return self.name.partition(":")[0] if ":" in self.name else ""

    @property
    def read_only(self) -> bool:
        """Whether the tool has no side effects."""
        return self.effect is ToolEffect.NONE


class ToolCall(FrozenModel):
    """A tool call requested by the model. ``id`` is stable and doubles as the idempotency key.

    A model may send argument text that is not a JSON object; the call then keeps that text in
    ``raw_arguments`` (with empty ``arguments``), so that the agent loop can show the model its mistake
    instead of failing the run.
    """

    id: str = Field(min_length=1)
    name: str = Field(min_length=1, description="As the model sent it; it may name no registered tool.")
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    raw_arguments: str | None = Field(
        default=None, description="The argument text as sent, when it was not a JSON object (arguments is empty)."
    )


class ToolError(FrozenModel):
    """A typed tool failure, as recorded and as shown to the model."""

    code: ToolErrorCode
    message: str
    details: dict[str, JsonValue] = Field(default_factory=dict)


class ToolResult(FrozenModel):
    """The outcome of one tool call.

    ``content`` is what the model sees (possibly a truncated view of a spooled output); ``data`` is the
    structured value the tool returned.
    """

    tool_call_id: str = Field(min_length=1)
    tool_name: str
    content: str
    data: JsonValue = None
    error: ToolError | None = None
    duration_ms: NonNegativeFloat = 0.0
    cached: bool = False
    spool: SpoolRef | None = None

    @property
    def is_error(self) -> bool:
        """Whether the call failed."""
        return self.error is not None


class CompleteTaskInput(FrozenModel):
    """Arguments of ``complete_task``: the completion contract's schema."""

    summary: str = Field(min_length=1)
    artifacts: tuple[str, ...] | None = None
    next_steps: str | None = Field(default=None, min_length=1)

    @field_validator("summary", mode="before")
    @classmethod
    def _strip_summary(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @field_validator("artifacts")
    @classmethod
    def _clean_artifacts(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        cleaned = tuple(dict.fromkeys(item.strip() for item in value))
        if any(not item for item in cleaned):
            raise ValueError("artifacts must be non-empty strings")
        return cleaned or None


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a running tool knows about the call it serves.

    Attributes:
        run_id: The run.
        tool_call_id: The call; also the idempotency key.
        agent_id: The agent that asked for the call.
        turn: Turn number.
        workspace: Root directory the tool may touch, if the run has one.
        extras: Plane-specific values (deadline, sandbox handles, ...).
    """

    run_id: str
    tool_call_id: str
    agent_id: str
    turn: int
    workspace: Path | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """Stable key for idempotent tools: the same across resumes of the same call."""
        return self.tool_call_id


@runtime_checkable
class Tool(Protocol):
    """A callable tool."""

    @property
    def spec(self) -> ToolSpec:
        """The tool's specification."""
        ...

    async def invoke(self, arguments: Mapping[str, Any], context: ToolContext) -> JsonValue:
        """Run the tool; raise `ToolExecutionError` on failure.

        Args:
            arguments: Arguments as sent by the model (the tool validates them).
            context: The call's context.

        Returns:
            A JSON-compatible value.
        """
        ...


@runtime_checkable
class ReconcilableTool(Tool, Protocol):
    """A ``compensable`` tool that can settle a call whose outcome is unknown after a crash."""

    async def reconcile(self, call: ToolCall, context: ToolContext) -> JsonValue:
        """Find out what the interrupted call did, repair it if needed, and return its result."""
        ...


@runtime_checkable
class ToolRegistry(Protocol):
    """Named tools available to a run."""

    def get(self, name: str) -> Tool | None:
        """Return the tool called `name`, or ``None``."""
        ...

    def specs(self) -> Sequence[ToolSpec]:
        """Return the specifications of every tool, sorted by name."""
        ...

    def view(self, allowed: Sequence[str]) -> ToolRegistry:
        """Return a read-only view holding only tools matching `allowed` patterns (plus completion)."""
        ...
