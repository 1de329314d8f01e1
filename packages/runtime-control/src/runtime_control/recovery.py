"""Error recovery for tools: transient failures are retried with backoff, permanent ones go to the model."""

from __future__ import annotations

import random
import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat

from runtime_core.tools import ToolEffect, ToolError, ToolErrorCode, ToolSpec

__all__ = ["ErrorCategory", "ErrorRecovery"]


class ErrorCategory(StrEnum):
    """How a tool failure is treated."""

    TRANSIENT = "transient"
    """Network trouble, timeouts, rate limits: trying again may work."""
    PERMANENT = "permanent"
    """Bad arguments, missing resources, refusals: trying again cannot work."""


_TRANSIENT_CODES = frozenset({ToolErrorCode.TIMEOUT, ToolErrorCode.RATE_LIMITED})
_TRANSIENT_MESSAGE = re.compile(
    r"connection (?:reset|refused|aborted|closed)|network|temporar(?:y|ily)|unavailable|timed? ?out|"
    r"try again|too many requests|\b(?:429|502|503|504)\b",
    re.IGNORECASE,
)
_REPEATABLE = frozenset({ToolEffect.NONE, ToolEffect.IDEMPOTENT})


class ErrorRecovery(BaseModel):
    """The tool retry policy of the spec: a `runtime_core.pipeline.ToolRetryPolicy`.

    Transient failures (``TIMEOUT``, ``RATE_LIMITED``, and ``EXECUTION_FAILED`` whose message speaks of
    the network, a timeout or an unavailable service) of tools that are safe to repeat (effect ``none``
    or ``idempotent``) are retried up to `max_retries` times, waiting `backoff_s` times `multiplier` to
    the power of the attempt, at most `max_backoff_s`, with `jitter` (a fraction added at random). A
    ``RATE_LIMITED`` failure that says when to come back (``retry_after_s``) waits that long instead.
    Everything else is permanent: the model sees the error in its next turn.

    Args:
        max_retries: Retries after the first attempt (the spec's default: 2).
        backoff_s: The first wait (1 s).
        multiplier: Growth of the wait per attempt (2).
        max_backoff_s: Cap on one wait (10 s).
        jitter: Up to this fraction of the wait is added at random, so that many runs do not retry in step.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_retries: NonNegativeInt = 2
    backoff_s: NonNegativeFloat = 1.0
    multiplier: float = Field(default=2.0, ge=1.0)
    max_backoff_s: PositiveFloat = 10.0
    jitter: float = Field(default=0.1, ge=0.0, le=1.0)

    def classify(self, error: ToolError) -> ErrorCategory:
        """Whether `error` is worth another attempt."""
        if error.code in _TRANSIENT_CODES:
            return ErrorCategory.TRANSIENT
        if error.code is ToolErrorCode.EXECUTION_FAILED and _TRANSIENT_MESSAGE.search(error.message):
            return ErrorCategory.TRANSIENT
        return ErrorCategory.PERMANENT

    def retry_delay(self, spec: ToolSpec, error: ToolError, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up (see the class)."""
        if attempt > self.max_retries or spec.effect not in _REPEATABLE:
            return None
        if self.classify(error) is ErrorCategory.PERMANENT:
            return None
        retry_after = error.details.get("retry_after_s")
        if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
            return min(float(retry_after), self.max_backoff_s)
        wait = min(self.backoff_s * self.multiplier ** (attempt - 1), self.max_backoff_s)
        return wait * (1.0 + random.random() * self.jitter)
