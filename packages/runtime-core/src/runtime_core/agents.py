"""What an agent is: instructions, model, tools, limits, recovery and budget."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, JsonValue, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from runtime_core._base import FrozenModel
from runtime_core.budgets import Budget

__all__ = ["DEFAULT_WARNING_TEMPLATE", "AgentSpec", "ExecutionMode", "Limits", "RecoveryConfig"]

DEFAULT_WARNING_TEMPLATE = (
    "Final warning: the turn limit ({max_turns}) is almost reached. Call complete_task now with a "
    "summary of what you did, the artifacts you produced and the next steps. No other tool is available."
)


class ExecutionMode(StrEnum):
    """How the tools of one turn run."""

    INTERACTIVE = "interactive"
    """Exactly one tool call per turn."""
    BATCH = "batch"
    """Dependency-safe parallel groups, capped by ``max_parallel``."""


class Limits(FrozenModel):
    """Turn and time limits of a run."""

    max_turns: PositiveInt = 50
    tool_timeout_s: PositiveFloat = 120.0
    model_timeout_s: PositiveFloat = 300.0
    max_parallel: PositiveInt = 5


class RecoveryConfig(FrozenModel):
    """The recovery turn: one final chance to call ``complete_task`` before the limit."""

    enabled: bool = True
    grace_turns: NonNegativeInt = 2
    grace_timeout_s: PositiveFloat = 60.0
    warning_template: str = DEFAULT_WARNING_TEMPLATE
    hard_limit: bool = True


class AgentSpec(FrozenModel):
    """Everything needed to run an agent, as recorded in ``run.created``.

    ``model`` is ``"<provider>:<model>"`` (``"openai:gpt-4.1"``, ``"scripted:demo"``); ``tools`` are tool
    name patterns (``"file:*"``) selecting from the registry.
    """

    name: str = Field(min_length=1, max_length=200)
    model: str = Field(pattern=r"^[A-Za-z0-9_.-]+:.+$")
    instructions: str = ""
    tools: tuple[str, ...] = ("*",)
    mode: ExecutionMode = ExecutionMode.BATCH
    limits: Limits = Limits()
    recovery: RecoveryConfig = RecoveryConfig()
    budget: Budget | None = None
    role: str | None = None
    policy: str | None = Field(default=None, description="Policy preset name or policy file reference.")
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _grace_fits(self) -> AgentSpec:
        if self.recovery.enabled and self.recovery.grace_turns >= self.limits.max_turns:
            raise ValueError(
                f"recovery.grace_turns ({self.recovery.grace_turns}) must be below limits.max_turns "
                f"({self.limits.max_turns})"
            )
        return self
