"""The exception hierarchy of Agent Runtime.

Every error the runtime raises derives from [`AgentRuntimeError`][runtime_core.exceptions.AgentRuntimeError]::

    AgentRuntimeError
    ├── UserError                   misuse: fix the calling code or configuration
    │   ├── ConfigurationError
    │   ├── ToolDefinitionError
    │   ├── NotFoundError
    │   ├── AlreadyExistsError
    │   └── ApprovalResolvedError   an approval was already answered (or expired)
    ├── RunError                    a run could not go on (carries run_id and reason)
    │   └── BudgetExhaustedError
    ├── ToolExecutionError          a tool failed (carries a ToolErrorCode); the model sees it
    ├── ProviderError               a model provider failed (status code, body, retryable)
    └── StoreError                  a store refused a write or read
        ├── FencingError            a stale writer tried to append
        ├── LeaseHeldError          another live writer holds the run
        ├── DuplicateEventError
        └── CheckpointChainError

All of them carry typed attributes and survive pickling (they cross process boundaries in workers).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

__all__ = [
    "AgentRuntimeError",
    "AlreadyExistsError",
    "ApprovalResolvedError",
    "BudgetExhaustedError",
    "CheckpointChainError",
    "ConfigurationError",
    "DuplicateEventError",
    "FencingError",
    "LeaseHeldError",
    "NotFoundError",
    "ProviderError",
    "RunError",
    "StoreError",
    "ToolDefinitionError",
    "ToolExecutionError",
    "UserError",
]


def _restore(cls: type[AgentRuntimeError], args: tuple[Any, ...], state: dict[str, Any]) -> AgentRuntimeError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class AgentRuntimeError(Exception):
    """Root of every error raised by Agent Runtime.

    Attributes:
        message: Human-readable description, also the first argument of the exception.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only attributes, which the default pickling protocol cannot rebuild.
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class UserError(AgentRuntimeError):
    """The runtime was used incorrectly; the fix is in the calling code or configuration."""


class ConfigurationError(UserError):
    """A configuration value is invalid.

    Attributes:
        setting: Dotted name of the offending setting, when known.
    """

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class ToolDefinitionError(UserError):
    """A Python function cannot be turned into a tool (unsupported signature, bad name, ...).

    Attributes:
        tool_name: The tool name that was being defined.
    """

    def __init__(self, message: str, *, tool_name: str) -> None:
        super().__init__(message)
        self.tool_name = tool_name


class NotFoundError(UserError):
    """A referenced object does not exist.

    Attributes:
        resource: Kind of object (``"run"``, ``"approval"``, ``"artifact"``, ...).
        key: The identifier that was looked up.
    """

    def __init__(self, resource: str, key: str) -> None:
        super().__init__(f"{resource} {key!r} not found")
        self.resource = resource
        self.key = key


class AlreadyExistsError(UserError):
    """An object with this identifier already exists.

    Attributes:
        resource: Kind of object (``"run"``, ``"artifact"``, ...).
        key: The identifier that is taken.
    """

    def __init__(self, resource: str, key: str) -> None:
        super().__init__(f"{resource} {key!r} already exists")
        self.resource = resource
        self.key = key


class ApprovalResolvedError(UserError):
    """An approval was answered already (or expired) and cannot be resolved again.

    Attributes:
        approval_id: The approval.
        status: Its status (``allowed``, ``denied`` or ``expired``).
    """

    def __init__(self, approval_id: str, status: str) -> None:
        super().__init__(f"approval {approval_id!r} is already {status}")
        self.approval_id = approval_id
        self.status = status


class RunError(AgentRuntimeError):
    """A run could not continue.

    Attributes:
        run_id: The run that failed.
        reason: Terminal reason recorded for the run (for example ``"no_completion"``).
    """

    def __init__(self, message: str, *, run_id: str, reason: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.reason = reason


class BudgetExhaustedError(RunError):
    """A hard budget limit was reached.

    Attributes:
        limit: Name of the exhausted limit (``"tokens"``, ``"cost_usd"``, ``"turns"``, ...).
    """

    def __init__(self, message: str, *, run_id: str, limit: str) -> None:
        super().__init__(message, run_id=run_id, reason="budget_exhausted")
        self.limit = limit


class ToolExecutionError(AgentRuntimeError):
    """A tool call failed; the pipeline turns it into an error result the model can read.

    Attributes:
        code: A ``ToolErrorCode`` value (kept as ``str`` so this module has no model imports).
        tool_name: The failing tool, when known.
        details: JSON-compatible context for the model and the run log.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "EXECUTION_FAILED",
        tool_name: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.tool_name = tool_name
        self.details = details or {}

    @classmethod
    def invalid_arguments(cls, tool_name: str, error: ValidationError) -> ToolExecutionError:
        """The ``INVALID_ARGUMENTS`` error for arguments that failed validation, with JSON-safe details."""
        errors = error.errors(include_url=False, include_context=False)
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        return cls(
            f"invalid arguments for {tool_name}: {problems}{more}",
            code="INVALID_ARGUMENTS",
            tool_name=tool_name,
            details={"errors": to_jsonable_python(errors, fallback=repr)},
        )


class ProviderError(AgentRuntimeError):
    """A model provider call failed.

    Attributes:
        provider: Provider name (``"openai"``, ``"anthropic"``, ...).
        status_code: HTTP status code, if the failure was an HTTP response.
        body: Response body (truncated by the provider), if any.
        retryable: Whether retrying the same request may succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status_code: int | None = None,
        body: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status_code = status_code
        self.body = body
        self.retryable = retryable


class StoreError(AgentRuntimeError):
    """A store refused an operation. Nothing of the refused operation was written."""


class FencingError(StoreError):
    """An append carried a fencing token older than the run's current lease.

    Attributes:
        run_id: The run being written.
        token: The stale token the writer presented.
        current_token: The token of the lease that superseded it.
    """

    def __init__(self, *, run_id: str, token: int, current_token: int) -> None:
        super().__init__(
            f"run {run_id!r}: fencing token {token} is stale (current lease holds {current_token}); "
            "another writer took the run over"
        )
        self.run_id = run_id
        self.token = token
        self.current_token = current_token


class LeaseHeldError(StoreError):
    """Another writer holds a live lease on the run.

    Attributes:
        run_id: The run.
        owner: The current lease holder.
        expires_at: When the current lease expires unless renewed.
    """

    def __init__(self, *, run_id: str, owner: str, expires_at: datetime) -> None:
        super().__init__(f"run {run_id!r} is leased by {owner!r} until {expires_at.isoformat()}")
        self.run_id = run_id
        self.owner = owner
        self.expires_at = expires_at


class DuplicateEventError(StoreError):
    """An event id was already recorded.

    Attributes:
        event_id: The duplicated id.
    """

    def __init__(self, event_id: str) -> None:
        super().__init__(f"event {event_id!r} is already recorded")
        self.event_id = event_id


class CheckpointChainError(StoreError):
    """A checkpoint does not extend the run's checkpoint chain.

    Attributes:
        run_id: The run.
        turn: Turn of the rejected checkpoint.
        parent_turn: The parent it named, which the store does not hold.
    """

    def __init__(self, message: str, *, run_id: str, turn: int, parent_turn: int | None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.turn = turn
        self.parent_turn = parent_turn
