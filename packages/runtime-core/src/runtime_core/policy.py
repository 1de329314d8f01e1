"""Policy rules and decisions, and the policy engine protocol."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import Field, JsonValue, NonNegativeInt, model_validator

from runtime_core._base import FrozenModel
from runtime_core.agents import ExecutionMode
from runtime_core.tools import ToolCall, ToolSpec

__all__ = [
    "ArgCondition",
    "ConditionOperator",
    "Escalation",
    "PolicyAction",
    "PolicyContext",
    "PolicyDecision",
    "PolicyEngine",
    "PolicyOutcome",
    "PolicyRule",
]


class PolicyAction(StrEnum):
    """What a matching rule does."""

    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"


class PolicyOutcome(StrEnum):
    """The ``policyDecision`` field of the spec's ``ToolPolicyDecision``."""

    ALLOW = "allow"
    ALLOW_WITH_CONFIRM = "allow_with_confirm"
    DENY = "deny"


class ConditionOperator(StrEnum):
    """Comparison applied to an argument value."""

    EQUALS = "equals"
    CONTAINS = "contains"
    MATCHES = "matches"
    LT = "lt"
    GT = "gt"


class ArgCondition(FrozenModel):
    """A condition on a tool argument, addressed by a dot path (``options.recursive``)."""

    path: str = Field(min_length=1, pattern=r"^[^.]+(\.[^.]+)*$")
    op: ConditionOperator
    value: JsonValue


class PolicyRule(FrozenModel):
    """A governance rule. Rules are evaluated by descending ``priority``; all criteria must match."""

    id: str = Field(min_length=1)
    action: PolicyAction
    tools: tuple[str, ...] = ("*",)
    conditions: tuple[ArgCondition, ...] = ()
    role: str | None = None
    phase: str | None = None
    min_depth: NonNegativeInt | None = None
    max_depth: NonNegativeInt | None = None
    priority: int = 0
    reason: str | None = None


class Escalation(FrozenModel):
    """The permission a denied call would need."""

    permission: str
    level: str
    resource: str | None = None
    reason: str | None = None


class PolicyDecision(FrozenModel):
    """The verdict on one tool call (the spec's ``ToolPolicyDecision`` plus the rule id)."""

    allowed: bool
    requires_confirmation: bool = False
    policy_decision: PolicyOutcome
    reason: str | None = None
    reason_code: str | None = None
    risk_tags: tuple[str, ...] = ()
    escalation: Escalation | None = None
    policy_rule_id: str | None = None
    policy_action: PolicyAction | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PolicyDecision:
        expected = (
            PolicyOutcome.DENY
            if not self.allowed
            else PolicyOutcome.ALLOW_WITH_CONFIRM
            if self.requires_confirmation
            else PolicyOutcome.ALLOW
        )
        if self.policy_decision is not expected:
            raise ValueError(
                f"policy_decision {self.policy_decision.value!r} contradicts allowed={self.allowed}, "
                f"requires_confirmation={self.requires_confirmation} (expected {expected.value!r})"
            )
        return self


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """Facts about the caller that rules can match on."""

    run_id: str
    agent_id: str
    turn: int = 0
    depth: int = 0
    role: str | None = None
    phase: str | None = None
    mode: ExecutionMode = ExecutionMode.BATCH


@runtime_checkable
class PolicyEngine(Protocol):
    """Decides whether a tool call may run. Must be fast (tens of microseconds) and side-effect free."""

    def evaluate(self, call: ToolCall, spec: ToolSpec | None, context: PolicyContext) -> PolicyDecision:
        """Return the decision for `call`; `spec` is ``None`` for a tool the registry does not know."""
        ...
