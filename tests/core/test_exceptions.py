"""The exception hierarchy: shape, misuse vs run failure, and pickling."""

from __future__ import annotations

import inspect
import pickle
from datetime import UTC, datetime

import pytest

import runtime_core
from runtime_core import exceptions
from runtime_core.exceptions import (
    AgentRuntimeError,
    AlreadyExistsError,
    ApprovalResolvedError,
    BudgetExhaustedError,
    CheckpointChainError,
    ConfigurationError,
    DuplicateEventError,
    FencingError,
    LeaseHeldError,
    NotFoundError,
    ProviderError,
    RunError,
    StoreError,
    ToolDefinitionError,
    ToolExecutionError,
    UserError,
)

SAMPLES: list[AgentRuntimeError] = [
    AgentRuntimeError("root"),
    UserError("misuse"),
    ConfigurationError("bad value", setting="budget.max_tokens"),
    ToolDefinitionError("bad", tool_name="x:y"),
    NotFoundError("run", "run_1"),
    AlreadyExistsError("run", "run_1"),
    ApprovalResolvedError("apr_1", "denied"),
    RunError("failed", run_id="run_1", reason="no_completion"),
    BudgetExhaustedError("out of tokens", run_id="run_1", limit="tokens"),
    ToolExecutionError("nope", code="TIMEOUT", tool_name="shell:run", details={"after_s": 3}),
    ProviderError("busy", provider="openai", status_code=429, body="slow down", retryable=True),
    StoreError("refused"),
    FencingError(run_id="run_1", token=1, current_token=2),
    LeaseHeldError(run_id="run_1", owner="w", expires_at=datetime(2026, 1, 1, tzinfo=UTC)),
    DuplicateEventError("evt_1"),
    CheckpointChainError("gap", run_id="run_1", turn=3, parent_turn=1),
]


def test_every_exception_is_sampled_and_exported() -> None:
    defined = {obj for _, obj in inspect.getmembers(exceptions, inspect.isclass) if issubclass(obj, AgentRuntimeError)}
    assert defined == {type(e) for e in SAMPLES}
    assert {cls.__name__ for cls in defined} <= set(runtime_core.__all__)
    assert set(exceptions.__all__) == {cls.__name__ for cls in defined}


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_pickle_round_trip_keeps_type_message_and_attributes(error: AgentRuntimeError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


def test_misuse_is_apart_from_run_failure() -> None:
    assert issubclass(ConfigurationError, UserError)
    assert issubclass(NotFoundError, UserError)
    assert issubclass(BudgetExhaustedError, RunError)
    assert not issubclass(RunError, UserError)
    assert not issubclass(UserError, RunError)
    for cls in (FencingError, LeaseHeldError, DuplicateEventError, CheckpointChainError):
        assert issubclass(cls, StoreError)


def test_messages_are_actionable() -> None:
    assert str(NotFoundError("run", "run_9")) == "run 'run_9' not found"
    assert "another writer took the run over" in str(FencingError(run_id="r", token=1, current_token=4))
    assert BudgetExhaustedError("x", run_id="r", limit="turns").reason == "budget_exhausted"
