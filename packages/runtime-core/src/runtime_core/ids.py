"""Identifier generation: sortable unique ids by default, sequential ids for deterministic tests."""

from __future__ import annotations

import os
import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["IdGenerator", "SequentialIds", "UlidGenerator"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]


@runtime_checkable
class IdGenerator(Protocol):
    """Source of unique string ids."""

    def new_id(self, prefix: str) -> str:
        """Return a new id such as ``run_01J...``; `prefix` names the kind of object."""
        ...


class UlidGenerator:
    """ULID-style ids: 48 bits of milliseconds then 80 random bits, Crockford base32.

    Ids sort by creation time; within one millisecond of one generator they stay strictly increasing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def new_id(self, prefix: str) -> str:
        """Return ``f"{prefix}_{ulid}"``."""
        with self._lock:
            value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
            if value <= self._last:  # same millisecond: keep the order monotonic
                value = self._last + 1
            self._last = value
        # 128 bits as 26 base32 digits, two digits (10 bits) per table lookup.
        return f"{prefix}_{''.join([_PAIRS[(value >> shift) & 1023] for shift in range(120, -1, -10)])}"


class SequentialIds:
    """Deterministic ids ``{prefix}_{n:06d}`` with one counter per prefix."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}

    def new_id(self, prefix: str) -> str:
        """Return the next id for `prefix`."""
        with self._lock:
            count = self._counters.get(prefix, 0) + 1
            self._counters[prefix] = count
        return f"{prefix}_{count:06d}"
