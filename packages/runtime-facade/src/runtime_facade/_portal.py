"""A private event loop in a daemon thread, for the runtime's synchronous conveniences."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


class Portal:
    """Runs coroutines on one long-lived event loop, from synchronous code.

    One loop for every call (not ``asyncio.run`` per call) because the runtime's async resources, such as
    its HTTP client's connections and the approval broker's waiters, belong to the loop that made them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run `coroutine` on the portal's loop and wait for its result (its exception is re-raised)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coroutine.close()
            raise RuntimeError("a synchronous runtime method was called from async code: await the async one")
        return asyncio.run_coroutine_threadsafe(coroutine, self._start()).result()

    def close(self) -> None:
        """Stop the loop and its thread (idempotent)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="agent-runtime-sync", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop
