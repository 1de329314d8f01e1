"""An in-process LRU cache for results of read-only tools."""

from __future__ import annotations

import json
from collections import OrderedDict

from runtime_core.clock import Clock, SystemClock
from runtime_core.tools import ToolCall, ToolContext, ToolResult

__all__ = ["InMemoryToolCache"]


class InMemoryToolCache:
    """A `runtime_core.pipeline.ToolResultCache` in process memory, least recently used first out.

    Keys are the tool name, the arguments (canonical JSON) and the workspace. The agent loop only asks
    it about read-only tools and clears it whenever a tool with effects runs.

    Args:
        max_entries: Entries kept before the least recently used is dropped.
        ttl_s: Seconds an entry stays valid.
        clock: Time source (its monotonic clock).
    """

    def __init__(self, *, max_entries: int = 1024, ttl_s: float = 300.0, clock: Clock | None = None) -> None:
        if max_entries < 1 or ttl_s <= 0:
            raise ValueError("max_entries must be >= 1 and ttl_s > 0")
        self._max = max_entries
        self._ttl = ttl_s
        self._clock = clock or SystemClock()
        self._entries: OrderedDict[tuple[str, str, str], tuple[float, ToolResult]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _key(call: ToolCall, context: ToolContext) -> tuple[str, str, str]:
        arguments = json.dumps(call.arguments, sort_keys=True, separators=(",", ":"))
        return call.name, arguments, str(context.workspace)

    async def get(self, call: ToolCall, context: ToolContext) -> ToolResult | None:
        """Return the fresh cached result of an equal call, if any."""
        key = self._key(call, context)
        entry = self._entries.get(key)
        if entry is None or self._clock.monotonic() - entry[0] > self._ttl:
            self._entries.pop(key, None)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    async def put(self, call: ToolCall, context: ToolContext, result: ToolResult) -> None:
        """Remember `result`, evicting the least recently used entry when full."""
        key = self._key(call, context)
        self._entries[key] = (self._clock.monotonic(), result)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def invalidate(self) -> None:
        """Forget everything."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
