"""Time sources. Inject a [`ManualClock`][runtime_core.clock.ManualClock] to make runs deterministic."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Source of wall-clock and monotonic time."""

    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Return seconds from an arbitrary origin that never goes backwards (for durations)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Return `time.monotonic()`."""
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to; for tests and deterministic replay.

    Args:
        start: Initial time (aware). Defaults to 2026-01-01T00:00:00Z.
        tick: Amount added after every `now()` call, so successive timestamps differ.
    """

    def __init__(self, start: datetime | None = None, *, tick: timedelta = timedelta(0)) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._tick = tick
        self._origin = self._now

    def now(self) -> datetime:
        """Return the current manual time, then advance it by `tick`."""
        current = self._now
        self._now += self._tick
        return current

    def monotonic(self) -> float:
        """Return seconds elapsed since the clock's start."""
        return (self._now - self._origin).total_seconds()

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward."""
        if delta < timedelta(0):
            raise ValueError("a clock never goes backwards")
        self._now += delta
