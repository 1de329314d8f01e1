"""Plug points of the tool pipeline: rate limiting, result caching and retries.

The agent loop runs each tool call through policy, argument validation, sandbox preflight, the rate
limiter, the result cache, the tool itself and output spooling. The limiter and the cache are pluggable
(in-process implementations ship with the execution plane; a shared one can live in Redis or a database).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from runtime_core.tools import ToolCall, ToolContext, ToolError, ToolResult, ToolSpec

__all__ = ["RateLimiter", "ToolResultCache", "ToolRetryPolicy"]


@runtime_checkable
class RateLimiter(Protocol):
    """Grants or refuses permits for tool calls."""

    async def acquire(self, call: ToolCall, spec: ToolSpec) -> float | None:
        """Take a permit for `call`.

        Returns:
            ``None`` when the call may run now; otherwise the seconds after which a permit may be free
            (the call then fails with ``RATE_LIMITED`` and the model sees the delay).
        """
        ...


@runtime_checkable
class ToolResultCache(Protocol):
    """Remembers successful results of read-only tools.

    The pipeline consults it only for tools whose effect is ``none``, stores only successful results,
    and calls `invalidate` whenever a tool with effects runs, since any effect may change what a read
    returns.
    """

    async def get(self, call: ToolCall, context: ToolContext) -> ToolResult | None:
        """Return the cached result of an equal call (same tool, arguments and workspace), if any."""
        ...

    async def put(self, call: ToolCall, context: ToolContext, result: ToolResult) -> None:
        """Remember `result` for calls equal to `call`."""
        ...

    async def invalidate(self) -> None:
        """Forget everything (a tool with effects ran)."""
        ...


@runtime_checkable
class ToolRetryPolicy(Protocol):
    """Decides whether a failed tool call is tried again (the control plane's `ErrorRecovery` is one)."""

    def retry_delay(self, spec: ToolSpec, error: ToolError, attempt: int) -> float | None:
        """Return the seconds to wait before trying `spec` again after `error` on attempt `attempt` (1 first).

        ``None`` gives up: the failure goes to the model. A policy must never retry a tool whose effects
        are not safe to repeat (``compensable`` or ``unsafe``).
        """
        ...
