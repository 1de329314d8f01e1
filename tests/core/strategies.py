"""Hypothesis strategies for every pydantic model of runtime_core, derived from the field annotations.

Cross-field invariants (a snapshot's turn equals its state's, an event's type equals its payload's, ...)
are restored by the fix-ups in `_FIXUPS`; a model that gains a new invariant fails loudly here until a
fix-up is added.
"""

from __future__ import annotations

import enum
import re
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel, JsonValue, ValidationError
from pydantic.fields import FieldInfo

from runtime_core import (
    Approval,
    ApprovalDecision,
    ApprovalResolution,
    ApprovalStatus,
    CheckpointSnapshot,
    CompleteTaskInput,
    Event,
    EventDraft,
    EventType,
    MessageEnvelope,
    MessageKind,
    PolicyDecision,
    PolicyOutcome,
    Run,
    RunFailedPayload,
    RunStatus,
    ToolError,
    ToolErrorCode,
    ToolFailedPayload,
)
from runtime_core.agents import AgentSpec

_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
DATETIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        for name in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            value = getattr(item, name, None)
            if value is not None:
                found[name] = value
    return found


def _numbers(kind: type, limits: dict[str, Any]) -> st.SearchStrategy[Any]:
    if kind is int:
        low = limits.get("ge", limits["gt"] + 1 if "gt" in limits else -1000)
        high = limits.get("le", limits["lt"] - 1 if "lt" in limits else 10**9)
        return st.integers(low, high)
    return st.floats(
        min_value=limits.get("ge", limits.get("gt", -1e6)),
        max_value=limits.get("le", limits.get("lt", 1e6)),
        exclude_min="gt" in limits,
        exclude_max="lt" in limits,
        allow_nan=False,
        allow_infinity=False,
    )


def _strings(limits: dict[str, Any]) -> st.SearchStrategy[str]:
    pattern = limits.get("pattern")
    if pattern is not None:
        maximum = limits.get("max_length", 200)
        return st.from_regex(re.compile(pattern), fullmatch=True).filter(lambda s: 0 < len(s) <= maximum)
    return st.text(min_size=limits.get("min_length", 0), max_size=min(limits.get("max_length", 20), 20))


def for_annotation(annotation: Any, metadata: list[Any] | None = None) -> st.SearchStrategy[Any]:
    """Return a strategy producing valid values for `annotation` with pydantic constraint `metadata`."""
    metadata = list(metadata or [])
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        for item in extra:
            metadata.extend(item.metadata if isinstance(item, FieldInfo) else [item])
        return for_annotation(base, metadata)
    limits = _bounds(metadata)
    if annotation is JsonValue or annotation is typing.Any:
        return JSON
    if annotation is AwareDatetime or annotation is datetime:
        return DATETIMES
    if annotation is type(None):
        return st.none()
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return st.one_of([for_annotation(arm, metadata) for arm in typing.get_args(annotation)])
    if origin is tuple:
        item, *_ = typing.get_args(annotation)
        return st.lists(for_annotation(item), max_size=3).map(tuple)
    if origin is dict:
        _, value = typing.get_args(annotation)
        return st.dictionaries(st.text(max_size=8), for_annotation(value), max_size=3)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return st.sampled_from(list(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return models(annotation)
    if annotation is bool:
        return st.booleans()
    if annotation in (int, float):
        return _numbers(annotation, limits)
    if annotation is str:
        return _strings(limits)
    raise TypeError(f"no strategy for {annotation!r}; extend tests/core/strategies.py")


def _fix_policy_decision(v: dict[str, Any]) -> dict[str, Any]:
    outcome = (
        PolicyOutcome.DENY
        if not v["allowed"]
        else PolicyOutcome.ALLOW_WITH_CONFIRM
        if v["requires_confirmation"]
        else PolicyOutcome.ALLOW
    )
    return {**v, "policy_decision": outcome}


def _fix_approval(v: dict[str, Any]) -> dict[str, Any]:
    pending = v["status"] is ApprovalStatus.PENDING
    return {**v, "resolved_at": None if pending else v["resolved_at"] or v["requested_at"] + timedelta(seconds=1)}


def _fix_run(v: dict[str, Any]) -> dict[str, Any]:
    status: RunStatus = v["status"]
    if status.is_terminal:
        return {**v, "reason": {"completed": "completed", "cancelled": "cancelled"}.get(status, "error:TIMEOUT")}
    if status in (RunStatus.QUEUED, RunStatus.RUNNING):
        return {**v, "reason": None}
    return v


def _fix_agent(v: dict[str, Any]) -> dict[str, Any]:
    limits, recovery = v["limits"], v["recovery"]
    if recovery.enabled and recovery.grace_turns >= limits.max_turns:
        limits = limits.model_copy(update={"max_turns": recovery.grace_turns + 1})
    return {**v, "limits": limits}


def _fix_envelope(v: dict[str, Any]) -> dict[str, Any]:
    if v["kind"] is MessageKind.RESPONSE and v["correlation_id"] is None:
        v = {**v, "correlation_id": "corr"}
    if v["kind"] is MessageKind.EVENT and v["topic"] is None:
        v = {**v, "topic": "topic"}
    return v


def _fix_tool_failed(v: dict[str, Any]) -> dict[str, Any]:
    result = v["result"]
    if result.error is None:
        result = result.model_copy(update={"error": ToolError(code=ToolErrorCode.TIMEOUT, message="slow")})
    return {**v, "result": result}


def _fix_complete_task(v: dict[str, Any]) -> dict[str, Any]:
    artifacts = v["artifacts"]
    if artifacts is not None:
        artifacts = tuple(dict.fromkeys(a.strip() for a in artifacts if a.strip())) or None
    return {**v, "summary": v["summary"].strip() or "done", "artifacts": artifacts}


_FIXUPS: dict[type[BaseModel], Callable[[dict[str, Any]], dict[str, Any]]] = {
    PolicyDecision: _fix_policy_decision,
    Approval: _fix_approval,
    Run: _fix_run,
    AgentSpec: _fix_agent,
    MessageEnvelope: _fix_envelope,
    ToolFailedPayload: _fix_tool_failed,
    CompleteTaskInput: _fix_complete_task,
    RunFailedPayload: lambda v: {**v, "reason": "error:TIMEOUT"},
    EventDraft: lambda v: {**v, "type": EventType(v["payload"].type)},
    Event: lambda v: {**v, "type": EventType(v["payload"].type)},
    CheckpointSnapshot: lambda v: {**v, "turn": v["state"].turn},
    ApprovalResolution: lambda v: {**v, "decision": ApprovalDecision.DENY} if v["expired"] else v,
}


def _validate(model: type[BaseModel], values: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(values)
    except ValidationError as error:  # pragma: no cover - a missing fix-up; make it obvious
        raise AssertionError(f"strategy for {model.__name__} built an invalid value: {error}") from error


@cache
def models(model: type[BaseModel]) -> st.SearchStrategy[BaseModel]:
    """A strategy of valid instances of `model`, every field generated."""
    fields = {
        name: st.deferred(lambda info=info: for_annotation(info.annotation, list(info.metadata)))
        for name, info in model.model_fields.items()
    }
    fix = _FIXUPS.get(model, lambda values: values)
    return st.fixed_dictionaries(fields).map(fix).map(lambda values: _validate(model, values))
