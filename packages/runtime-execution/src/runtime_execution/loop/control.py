"""Control signals of a running agent: pause, resume, step, inject a thought, cancel.

Signals are taken between turns (pause, step, injected thoughts) or at once (cancel, which interrupts the
model call or the tools in flight). Call them from the event loop that drives the run.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType
from typing import Any

__all__ = ["RunControl"]


class _Section:
    """The interruptible section of a `RunControl` (a plain class: entered twice per turn, it must be cheap)."""

    __slots__ = ("_control",)

    def __init__(self, control: RunControl) -> None:
        self._control = control

    def __enter__(self) -> None:
        if self._control._cancelled:
            raise asyncio.CancelledError
        self._control._interruptible = True

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._control._interruptible = False


class RunControl:
    """The signal box of one run, shared by the driver and whoever controls it.

    A run starts unpaused. `pause` takes effect before the next turn; `step` lets exactly one more turn
    run and then pauses again; `inject` queues a thought the model reads before its next call;
    `cancel` stops the run as soon as possible with status ``cancelled``.
    """

    def __init__(self) -> None:
        self._runnable = asyncio.Event()
        self._runnable.set()
        self._steps: int | None = None
        self._thoughts: deque[str] = deque()
        self._cancel_reason: str | None = None
        self._cancelled = False
        self._pause_reason: str | None = None
        self._resume_reason: str | None = None
        self._task: asyncio.Task[Any] | None = None
        self._interruptible = False
        self._section = _Section(self)

    # -- signals -------------------------------------------------------------------------------------

    def pause(self, reason: str | None = None) -> None:
        """Pause before the next turn (the current turn finishes first)."""
        self._runnable.clear()
        self._steps = None
        self._pause_reason = reason

    def resume(self, reason: str | None = None) -> None:
        """Let a paused run go on."""
        self._steps = None
        self._resume_reason = reason
        self._runnable.set()

    def step(self, reason: str | None = None) -> None:
        """Run exactly one more turn, then pause again."""
        self._steps = 1
        self._resume_reason = reason
        self._runnable.set()

    def inject(self, thought: str) -> None:
        """Queue a thought; the model reads it (as a user message) before its next call.

        Raises:
            ValueError: `thought` is blank.
        """
        if not thought.strip():
            raise ValueError("an injected thought cannot be blank")
        self._thoughts.append(thought)

    def cancel(self, reason: str | None = None) -> None:
        """Stop the run now: the model call or tools in flight are interrupted."""
        if self._cancelled:
            return
        self._cancelled = True
        self._cancel_reason = reason
        self._runnable.set()
        if self._interruptible and self._task is not None and not self._task.done():
            self._task.cancel()

    # -- state ---------------------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """Whether the run will wait before its next turn."""
        return not self._runnable.is_set()

    @property
    def cancelled(self) -> bool:
        """Whether `cancel` was called."""
        return self._cancelled

    @property
    def cancel_reason(self) -> str | None:
        """The reason given to `cancel`."""
        return self._cancel_reason

    # -- driver side ---------------------------------------------------------------------------------

    def bind(self, task: asyncio.Task[Any]) -> None:
        """Attach the task driving the run, so that `cancel` can interrupt it."""
        self._task = task

    def interruptible(self) -> _Section:
        """Mark a section (a model call, running tools) that `cancel` may interrupt: ``with ...:``.

        Outside such sections a cancellation is only noted and the driver acts on it at its next check,
        so that it never interrupts a write to the run log. Entering a section of a run that is already
        cancelled raises `asyncio.CancelledError` at once.
        """
        return self._section

    def take_thoughts(self) -> list[str]:
        """Remove and return the queued thoughts."""
        thoughts = list(self._thoughts)
        self._thoughts.clear()
        return thoughts

    def take_pause_reason(self) -> str | None:
        """Return the reason of the pending pause (once)."""
        reason, self._pause_reason = self._pause_reason, None
        return reason

    def take_resume_reason(self) -> str | None:
        """Return the reason of the last resume or step (once)."""
        reason, self._resume_reason = self._resume_reason, None
        return reason

    async def wait_runnable(self) -> None:
        """Wait until the run is not paused."""
        await self._runnable.wait()

    def turn_started(self) -> None:
        """Count a turn against a pending `step`: after it, the run pauses again."""
        if self._steps is not None:
            self._steps -= 1
            if self._steps <= 0:
                self._steps = None
                self._runnable.clear()
