"""Timeouts for the driver's task that cost almost nothing when they do not fire.

`asyncio.timeout` schedules a timer when a section is entered and cancels it on exit: two heap operations
and a handful of objects, for a model call and a tool call every turn, although such a timeout (tens of
seconds) practically never fires within a turn of microseconds. A `Watchdog` keeps one timer per task
instead and moves a deadline: entering a section only writes the deadline (it re-arms the timer when the
deadline is earlier than the timer), and when the timer fires it either cancels the task, if the section
it guards is past its deadline, or re-arms itself for the current deadline.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

__all__ = ["Watchdog", "timeout"]

_current: ContextVar[Watchdog | None] = ContextVar("runtime_execution_watchdog", default=None)


class Watchdog:
    """One task's timeouts, bound by `watch` and given back by `close`.

    Args:
        task: The task whose sections it times.
    """

    __slots__ = ("_deadline", "_expired", "_handle", "_loop", "_task", "_token", "_when")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task = task
        self._loop = task.get_loop()
        self._deadline: float | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._when = 0.0
        self._expired = False
        self._token: Token[Watchdog | None] | None = None

    @classmethod
    def watch(cls) -> Watchdog:
        """Bind a watchdog to the current task: `timeout` uses it in this task until `close`."""
        task = asyncio.current_task()
        assert task is not None, "a watchdog times a task"
        watchdog = cls(task)
        watchdog._token = _current.set(watchdog)
        return watchdog

    def close(self) -> None:
        """Drop the timer and unbind (the task is done with its sections; an outer watchdog is back)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._deadline = None
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._when = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        deadline = self._deadline
        if deadline is None:
            return  # no section open: the next one re-arms
        if deadline <= self._when:
            self._expired = True
            self._task.cancel()
        else:
            self._arm(deadline)


class _Section:
    """One timed section of a watchdog's task (a plain context manager: nothing in it needs to await)."""

    __slots__ = ("_cancelling", "_deadline", "_outer", "_own", "_watchdog")

    def __init__(self, watchdog: Watchdog, seconds: float, *, own: bool) -> None:
        self._watchdog = watchdog
        self._deadline = watchdog._loop.time() + seconds
        self._own = own

    def __enter__(self) -> None:
        watchdog = self._watchdog
        self._cancelling = watchdog._task.cancelling()
        outer = self._outer = watchdog._deadline
        deadline = self._deadline if outer is None or self._deadline < outer else outer
        watchdog._deadline = deadline
        if watchdog._handle is None or watchdog._when > deadline:
            watchdog._arm(deadline)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        watchdog = self._watchdog
        watchdog._deadline = self._outer
        if self._own:
            watchdog.close()
        if watchdog._expired and self._deadline <= watchdog._when:
            # This section timed out (not an outer one). As with `asyncio.timeout`, the cancellation is
            # a timeout only if nobody else cancelled the task meanwhile.
            watchdog._expired = False
            if watchdog._task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
                raise TimeoutError from error


def timeout(seconds: float) -> _Section:
    """A section of at most `seconds`, like `asyncio.timeout`; cheap in a task that `Watchdog.watch` bound.

    Use it as ``with timeout(seconds):`` around awaits. A task without a watchdog of its own (a tool
    call run in a task of its own) gets a watchdog for the section alone: a timer set on entry and
    dropped on exit, as `asyncio.timeout` does.
    """
    task = asyncio.current_task()
    assert task is not None, "a timeout times a task"
    watchdog = _current.get()
    if watchdog is None or watchdog._task is not task:
        return _Section(Watchdog(task), seconds, own=True)
    return _Section(watchdog, seconds, own=False)
