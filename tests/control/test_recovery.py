"""Tool error recovery: which failures are retried, and how long to wait."""

from __future__ import annotations

import pytest

from runtime_control import ErrorCategory, ErrorRecovery
from runtime_core.tools import ToolEffect, ToolError, ToolErrorCode, ToolSpec

READ = ToolSpec(name="web:get", description="read", effect=ToolEffect.NONE)
WRITE = ToolSpec(name="kv:put", description="write", effect=ToolEffect.IDEMPOTENT)
PAY = ToolSpec(name="bank:pay", description="pay", effect=ToolEffect.UNSAFE)
UNDO = ToolSpec(name="job:start", description="start", effect=ToolEffect.COMPENSABLE)


def error(code: ToolErrorCode, message: str = "failed", **details: object) -> ToolError:
    return ToolError(code=code, message=message, details=details)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("failure", "category"),
    [
        (error(ToolErrorCode.TIMEOUT), ErrorCategory.TRANSIENT),
        (error(ToolErrorCode.RATE_LIMITED), ErrorCategory.TRANSIENT),
        (error(ToolErrorCode.EXECUTION_FAILED, "ConnectError: connection refused"), ErrorCategory.TRANSIENT),
        (error(ToolErrorCode.EXECUTION_FAILED, "HTTP 503 Service Unavailable"), ErrorCategory.TRANSIENT),
        (error(ToolErrorCode.EXECUTION_FAILED, "ValueError: bad input"), ErrorCategory.PERMANENT),
        (error(ToolErrorCode.INVALID_ARGUMENTS, "connection refused"), ErrorCategory.PERMANENT),
        (error(ToolErrorCode.RESOURCE_NOT_FOUND), ErrorCategory.PERMANENT),
        (error(ToolErrorCode.PERMISSION_DENIED), ErrorCategory.PERMANENT),
    ],
)
def test_classification(failure: ToolError, category: ErrorCategory) -> None:
    assert ErrorRecovery().classify(failure) is category


def test_exponential_backoff_with_the_spec_defaults() -> None:
    recovery = ErrorRecovery(jitter=0.0)
    timeout = error(ToolErrorCode.TIMEOUT)
    assert [recovery.retry_delay(READ, timeout, attempt) for attempt in (1, 2, 3)] == [1.0, 2.0, None]


def test_backoff_is_capped_and_jittered() -> None:
    recovery = ErrorRecovery(max_retries=10, backoff_s=1.0, multiplier=3.0, max_backoff_s=5.0, jitter=0.5)
    delays = [recovery.retry_delay(READ, error(ToolErrorCode.TIMEOUT), attempt) for attempt in range(1, 11)]
    assert all(delay is not None and 1.0 <= delay <= 7.5 for delay in delays)
    assert all(delay is not None and delay >= 5.0 for delay in delays[3:])


def test_rate_limits_wait_as_long_as_they_say() -> None:
    limited = error(ToolErrorCode.RATE_LIMITED, "slow down", retry_after_s=3.5)
    assert ErrorRecovery().retry_delay(READ, limited, 1) == 3.5
    assert ErrorRecovery(max_backoff_s=2.0).retry_delay(READ, limited, 1) == 2.0


@pytest.mark.parametrize("spec", [PAY, UNDO])
def test_tools_that_are_not_safe_to_repeat_are_never_retried(spec: ToolSpec) -> None:
    assert ErrorRecovery().retry_delay(spec, error(ToolErrorCode.TIMEOUT), 1) is None


def test_idempotent_tools_are_retried_and_permanent_errors_never() -> None:
    assert ErrorRecovery().retry_delay(WRITE, error(ToolErrorCode.TIMEOUT), 1) is not None
    assert ErrorRecovery().retry_delay(READ, error(ToolErrorCode.INVALID_ARGUMENTS), 1) is None
    assert ErrorRecovery(max_retries=0).retry_delay(READ, error(ToolErrorCode.TIMEOUT), 1) is None
