"""A token-bucket rate limiter for tool calls, per tool name pattern."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runtime_core.clock import Clock, SystemClock
from runtime_core.tools import ToolCall, ToolSpec, match_tool_pattern

__all__ = ["Rate", "TokenBucketRateLimiter"]


@dataclass(frozen=True, slots=True)
class Rate:
    """A sustained rate with a burst allowance.

    Attributes:
        per_second: Permits added per second.
        burst: Bucket size: how many calls may run back to back.
    """

    per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError(f"a rate needs per_second > 0 and burst >= 1, got {self}")


class _Bucket:
    __slots__ = ("level", "stamp")

    def __init__(self, level: float, stamp: float) -> None:
        self.level = level
        self.stamp = stamp


class TokenBucketRateLimiter:
    """A `runtime_core.pipeline.RateLimiter` with one token bucket per tool.

    The first pattern (in mapping order) matching a tool's name sets its rate; tools no pattern matches
    are not limited. A refused call fails with ``RATE_LIMITED`` at once rather than waiting, so a turn
    never stalls; the model sees how long to wait.

    Args:
        rates: Tool name patterns (``"web:*"``, ``"shell:run"``) and their rates.
        clock: Time source (its monotonic clock).
    """

    def __init__(self, rates: Mapping[str, Rate], *, clock: Clock | None = None) -> None:
        self._rates = dict(rates)
        self._clock = clock or SystemClock()
        self._buckets: dict[str, _Bucket] = {}

    def _rate(self, name: str) -> Rate | None:
        return next((rate for pattern, rate in self._rates.items() if match_tool_pattern(pattern, name)), None)

    async def acquire(self, call: ToolCall, spec: ToolSpec) -> float | None:
        """Take a permit for `call`; return ``None`` if granted, else seconds until one is free."""
        rate = self._rate(spec.name)
        if rate is None:
            return None
        now = self._clock.monotonic()
        bucket = self._buckets.get(spec.name)
        if bucket is None:
            bucket = self._buckets[spec.name] = _Bucket(float(rate.burst), now)
        bucket.level = min(float(rate.burst), bucket.level + (now - bucket.stamp) * rate.per_second)
        bucket.stamp = now
        if bucket.level >= 1.0:
            bucket.level -= 1.0
            return None
        return (1.0 - bucket.level) / rate.per_second
