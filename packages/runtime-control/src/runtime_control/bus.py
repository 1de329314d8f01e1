"""The event bus: typed events fanned out in process to handlers, waiters and async streams.

Every published event travels in a [`BusEvent`][runtime_control.bus.BusEvent] envelope (type, payload,
id, timestamp, source, correlation id, priority). Subscriptions select events by type:

- an exact type: ``"tool.called"``;
- a prefix: ``"tool.*"`` (every type starting with ``"tool."``; the spec's ``"tool:*"`` form works the
  same way for colon-separated types);
- everything: ``"*"``.

The bus is an [`EventSink`][runtime_core.events.EventSink]: the agent loop hands it the run-log events
of each committed boundary with [`emit`][runtime_control.bus.EventBus.emit]; other typed payloads go
through [`publish`][runtime_control.bus.EventBus.publish]. The HTTP API (server-sent events) and telemetry
read it through [`stream`][runtime_control.bus.EventBus.stream].

Delivery rules:

- Handlers run in priority order (critical, high, normal, low), ties in subscription order.
- A synchronous handler runs inside ``publish``/``emit``, so it must be quick. An ``async`` handler is
  started as a task on the running event loop; at most ``max_concurrent_handlers`` (100) run at once per
  loop, the others wait their turn.
- A handler or filter that raises is logged on the ``runtime_control.bus`` logger and counted in
  [`stats`][runtime_control.bus.EventBus.stats]; the publisher and the other handlers carry on.
- A subscription made inside a running event loop is delivered on that loop, even when the event is
  published from another thread.
- The bus keeps a bounded history (1000 events, 5 minutes by default) that subscriptions may replay.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from runtime_control.exceptions import StreamOverflowError
from runtime_core.clock import Clock, SystemClock
from runtime_core.events import Event, EventType
from runtime_core.ids import IdGenerator, UlidGenerator

__all__ = [
    "BusEvent",
    "BusStats",
    "EventBus",
    "EventFilter",
    "EventHandler",
    "EventStream",
    "OverflowPolicy",
    "Priority",
    "Subscription",
]

logger = logging.getLogger("runtime_control.bus")

_P = TypeVar("_P")


class Priority(StrEnum):
    """Priority of a handler (delivery order) or of an event (a hint for consumers)."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Sort key: higher runs first."""
        return _RANKS[self]


_RANKS = {Priority.CRITICAL: 3, Priority.HIGH: 2, Priority.NORMAL: 1, Priority.LOW: 0}
# Run-log events that signal trouble travel with a higher priority; everything else is normal.
_RUN_EVENT_PRIORITY = {EventType.ERROR: Priority.HIGH, EventType.RUN_FAILED: Priority.HIGH}


@dataclass(frozen=True, slots=True)
class BusEvent(Generic[_P]):
    """An event on the bus: a typed payload in the envelope of the spec (§3.9).

    Attributes:
        type: Dot-separated event type (``"tool.called"``).
        payload: The event's data; for run-log events, the recorded `runtime_core.events.Event`.
        id: Unique id (the run-log event id for run-log events).
        timestamp: When the event happened (aware UTC).
        source: Who published it (the agent id for run-log events).
        correlation_id: Groups related events (the run id for run-log events).
        priority: Importance, for consumers that triage.
    """

    type: str
    payload: _P
    id: str
    timestamp: datetime
    source: str | None = None
    correlation_id: str | None = None
    priority: Priority = Priority.NORMAL


EventHandler = Callable[[BusEvent[Any]], Awaitable[None] | None]
"""A subscriber: a function or an ``async`` function taking a `BusEvent`."""

EventFilter = Callable[[BusEvent[Any]], bool]
"""A predicate that selects, among the events matching a pattern, those to deliver."""


@dataclass(frozen=True, slots=True)
class BusStats:
    """Counters of an event bus since it was created.

    Attributes:
        published: Events published or emitted.
        delivered: Handler invocations (a filtered-out event is not delivered).
        handler_errors: Handlers and filters that raised.
        dropped: Events dropped by streams that overflowed.
    """

    published: int = 0
    delivered: int = 0
    handler_errors: int = 0
    dropped: int = 0


class OverflowPolicy(StrEnum):
    """What a stream does when its queue is full (the consumer is slower than the publishers)."""

    DROP_OLDEST = "drop_oldest"
    """Discard the oldest queued event and count it in `EventStream.dropped`; the stream stays live."""
    ERROR = "error"
    """Stop receiving; iteration yields the queued events, then raises `StreamOverflowError`."""


def _matcher(pattern: str) -> Callable[[str], bool]:
    """Return the test of an event type against `pattern` (exact, ``prefix.*``/``prefix:*`` or ``*``)."""
    if pattern == "*":
        return lambda event_type: True
    head, star, tail = pattern.partition("*")
    if not star:
        if not pattern:
            raise ValueError("an event pattern cannot be empty")
        return pattern.__eq__
    if tail or not head or head[-1] not in ".:":
        raise ValueError(f"invalid event pattern {pattern!r}: use an exact type, 'prefix.*', 'prefix:*' or '*'")
    return lambda event_type: event_type.startswith(head)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Subscription:
    """A registered handler; [`unsubscribe`][runtime_control.bus.Subscription.unsubscribe] ends it.

    Attributes:
        id: Unique id of the subscription.
        pattern: The event pattern it matches.
        priority: Delivery priority.
        once: Whether it ends after its first delivery.
    """

    def __init__(
        self,
        bus: EventBus,
        *,
        id: str,
        pattern: str,
        matches: Callable[[str], bool],
        handler: EventHandler,
        priority: Priority,
        once: bool,
        filter: EventFilter | None,
        loop: asyncio.AbstractEventLoop | None,
        order: int,
    ) -> None:
        self.id = id
        self.pattern = pattern
        self.priority = priority
        self.once = once
        self._bus = bus
        self._matches = matches
        self._handler = handler
        self._filter = filter
        self._loop = loop
        self._order = order
        self._active = True

    @property
    def active(self) -> bool:
        """Whether the subscription still receives events."""
        return self._active

    def unsubscribe(self) -> None:
        """Stop receiving events (idempotent)."""
        self._bus._remove(self)

    def __repr__(self) -> str:
        return f"Subscription({self.id!r}, {self.pattern!r}, priority={self.priority.value}, active={self._active})"


class EventBus:
    """An in-process publish/subscribe bus with priorities, history, waiters and async streams.

    Args:
        clock: Time source for event timestamps and history expiry.
        ids: Id source for published events and subscriptions.
        history_limit: Most events kept for replay (0 keeps none).
        history_ttl: How long an event stays replayable.
        max_concurrent_handlers: Most ``async`` handlers running at once on one event loop.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        ids: IdGenerator | None = None,
        history_limit: int = 1000,
        history_ttl: timedelta = timedelta(minutes=5),
        max_concurrent_handlers: int = 100,
    ) -> None:
        if history_limit < 0:
            raise ValueError("history_limit cannot be negative")
        if history_ttl <= timedelta(0):
            raise ValueError("history_ttl must be positive")
        if max_concurrent_handlers < 1:
            raise ValueError("max_concurrent_handlers must be at least 1")
        self._clock = clock or SystemClock()
        self._ids = ids or UlidGenerator()
        self._ttl = history_ttl.total_seconds()
        self._max_handlers = max_concurrent_handlers
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []
        self._routes: dict[str, tuple[Subscription, ...]] = {}
        self._history: deque[tuple[float, BusEvent[Any]]] = deque(maxlen=history_limit)
        self._order = 0
        self._counters = {"published": 0, "delivered": 0, "handler_errors": 0, "dropped": 0}
        self._tasks: set[asyncio.Task[None]] = set()
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    # ----------------------------------------------------------------------------------------------
    # Publishing
    # ----------------------------------------------------------------------------------------------

    def publish(
        self,
        event_type: str,
        payload: _P,
        *,
        source: str | None = None,
        correlation_id: str | None = None,
        priority: Priority | str = Priority.NORMAL,
    ) -> BusEvent[_P]:
        """Publish a typed payload; return its envelope once every synchronous handler has run.

        Args:
            event_type: Dot-separated type (``"agent.spawned"``); no ``*``.
            payload: The event's data.
            source: Who publishes it.
            correlation_id: Groups related events (a run id, a request id).
            priority: Importance of the event (a `Priority` or its name).

        Returns:
            The published event.
        """
        if not event_type or "*" in event_type:
            raise ValueError(f"invalid event type {event_type!r}")
        event = BusEvent(
            type=event_type,
            payload=payload,
            id=self._ids.new_id("bus"),
            timestamp=self._clock.now(),
            source=source,
            correlation_id=correlation_id,
            priority=Priority(priority),
        )
        self._dispatch(event)
        return event

    def emit(self, events: Sequence[Event]) -> None:
        """Publish the recorded run-log events of one committed boundary (the `EventSink` protocol).

        Each event is published with its own type, id and timestamp, ``source`` = its agent id and
        ``correlation_id`` = its run id; ``error`` and ``run.failed`` travel with priority ``high``.
        """
        for event in events:
            self._dispatch(
                BusEvent(
                    type=event.type.value,
                    payload=event,
                    id=event.id,
                    timestamp=event.ts,
                    source=event.agent_id,
                    correlation_id=event.run_id,
                    priority=_RUN_EVENT_PRIORITY.get(event.type, Priority.NORMAL),
                )
            )

    # ----------------------------------------------------------------------------------------------
    # Subscribing
    # ----------------------------------------------------------------------------------------------

    def subscribe(
        self,
        pattern: str,
        handler: EventHandler,
        *,
        priority: Priority | str = Priority.NORMAL,
        once: bool = False,
        filter: EventFilter | None = None,
        replay: bool = False,
        replay_limit: int | None = None,
    ) -> Subscription:
        """Call `handler` with every event matching `pattern` from now on.

        Args:
            pattern: ``"tool.called"``, ``"tool.*"`` (or ``"tool:*"``), or ``"*"``.
            handler: A function or ``async`` function taking a `BusEvent`.
            priority: Handlers of higher priority run first (a `Priority` or its name).
            once: End the subscription after the first delivery.
            filter: Deliver only the events for which it returns true.
            replay: First deliver the matching events still in the history, oldest first.
            replay_limit: Replay at most this many (the most recent ones that pass the filter).

        Returns:
            The subscription; call ``unsubscribe()`` on it to stop.
        """
        subscription, history = self._add(pattern, handler, priority, once, filter, replay=replay)
        if replay:
            self._replay(subscription, history, replay_limit)
        return subscription

    async def wait_for(
        self,
        pattern: str,
        timeout: float | None = 30.0,  # noqa: ASYNC109 - the spec's waitFor owns its timeout (default 30 s)
        *,
        filter: EventFilter | None = None,
    ) -> BusEvent[Any]:
        """Wait for the next event matching `pattern` (and `filter`) published after this call.

        Args:
            pattern: Event pattern.
            timeout: Seconds to wait; ``None`` waits forever.
            filter: Only an event for which it returns true counts.

        Returns:
            The event.

        Raises:
            TimeoutError: No matching event was published in time.
        """
        future: asyncio.Future[BusEvent[Any]] = asyncio.get_running_loop().create_future()

        def resolve(event: BusEvent[Any]) -> None:
            if not future.done():
                future.set_result(event)

        subscription, _ = self._add(pattern, resolve, Priority.CRITICAL, True, filter, replay=False)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise TimeoutError(f"no event matching {pattern!r} within {timeout} s") from None
        finally:
            subscription.unsubscribe()

    def stream(
        self,
        pattern: str = "*",
        *,
        maxsize: int = 1000,
        overflow: OverflowPolicy = OverflowPolicy.DROP_OLDEST,
        filter: EventFilter | None = None,
        replay: bool = False,
        replay_limit: int | None = None,
    ) -> EventStream:
        """Open an async iterator over the events matching `pattern`, buffered in a bounded queue.

        The stream receives events from this call on (plus the replayed history). Close it with
        ``async with`` or ``close()``; breaking out of ``async for`` alone leaves it subscribed.

        Args:
            pattern: Event pattern.
            maxsize: Queue size.
            overflow: What happens when the queue is full (see `OverflowPolicy`).
            filter: Queue only the events for which it returns true.
            replay: Queue the matching events still in the history first.
            replay_limit: Replay at most this many (the most recent).

        Returns:
            The stream.

        Raises:
            RuntimeError: Called outside a running event loop.
        """
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        asyncio.get_running_loop()  # a stream belongs to the loop that iterates it
        stream = EventStream(pattern=pattern, maxsize=maxsize, overflow=overflow)
        subscription, history = self._add(pattern, stream._push, Priority.NORMAL, False, filter, replay=replay)
        stream._attach(subscription)
        if replay:
            self._replay(subscription, history, replay_limit)
        return stream

    # ----------------------------------------------------------------------------------------------
    # Inspection
    # ----------------------------------------------------------------------------------------------

    def history(self, pattern: str = "*", *, limit: int | None = None) -> list[BusEvent[Any]]:
        """Return the unexpired events of the history matching `pattern`, oldest first.

        Args:
            pattern: Event pattern.
            limit: Return at most this many (the most recent).
        """
        matches = _matcher(pattern)
        with self._lock:
            self._expire()
            events = [event for _, event in self._history if matches(event.type)]
        return events if limit is None else events[-limit:] if limit > 0 else []

    @property
    def stats(self) -> BusStats:
        """Counters since the bus was created."""
        with self._lock:
            return BusStats(**self._counters)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The active subscriptions, in subscription order."""
        with self._lock:
            return tuple(self._subscriptions)

    async def drain(self) -> None:
        """Wait until the ``async`` handlers started on the running event loop have finished."""
        loop = asyncio.get_running_loop()
        while pending := [task for task in list(self._tasks) if task.get_loop() is loop and not task.done()]:
            await asyncio.wait(pending)

    # ----------------------------------------------------------------------------------------------
    # Internals
    # ----------------------------------------------------------------------------------------------

    def _add(
        self,
        pattern: str,
        handler: EventHandler,
        priority: Priority | str,
        once: bool,
        filter: EventFilter | None,
        *,
        replay: bool,
    ) -> tuple[Subscription, list[BusEvent[Any]]]:
        """Register a subscription and, atomically with it, snapshot the history it may replay."""
        matches = _matcher(pattern)  # invalid patterns fail before anything is registered
        with self._lock:
            self._order += 1
            subscription = Subscription(
                self,
                id=self._ids.new_id("sub"),
                pattern=pattern,
                matches=matches,
                handler=handler,
                priority=Priority(priority),
                once=once,
                filter=filter,
                loop=_running_loop(),
                order=self._order,
            )
            self._subscriptions.append(subscription)
            self._routes.clear()
            history: list[BusEvent[Any]] = []
            if replay:
                self._expire()
                history = [event for _, event in self._history if subscription._matches(event.type)]
        return subscription, history

    def _remove(self, subscription: Subscription) -> bool:
        """End `subscription`; return whether this call ended it (false if it had already ended)."""
        with self._lock:
            if not subscription._active:
                return False
            subscription._active = False
            self._subscriptions.remove(subscription)
            self._routes.clear()
            return True

    def _replay(self, subscription: Subscription, history: list[BusEvent[Any]], limit: int | None) -> None:
        selected = [event for event in history if self._accepts(subscription, event)]
        if limit is not None:
            selected = selected[-limit:] if limit > 0 else []
        for event in selected:
            self._deliver(subscription, event, filtered=True)

    def _route(self, event_type: str) -> tuple[Subscription, ...]:
        """Return the subscriptions matching `event_type` in delivery order (cached; call under the lock)."""
        route = self._routes.get(event_type)
        if route is None:
            matching = [s for s in self._subscriptions if s._matches(event_type)]
            route = tuple(sorted(matching, key=lambda s: (-s.priority.rank, s._order)))
            self._routes[event_type] = route
        return route

    def _expire(self) -> None:
        """Drop expired events from the front of the history (call under the lock)."""
        now = self._clock.monotonic()
        while self._history and self._history[0][0] <= now:
            self._history.popleft()

    def _count(self, counter: str) -> None:
        with self._lock:
            self._counters[counter] += 1

    def _dispatch(self, event: BusEvent[Any]) -> None:
        with self._lock:
            if self._history.maxlen:
                self._expire()
                self._history.append((self._clock.monotonic() + self._ttl, event))
            route = self._route(event.type)
            self._counters["published"] += 1
        for subscription in route:
            self._deliver(subscription, event)

    def _deliver(self, subscription: Subscription, event: BusEvent[Any], *, filtered: bool = False) -> None:
        """Invoke the subscription on its own event loop when it has one that runs in another thread."""
        loop = subscription._loop
        if loop is not None and loop.is_running() and loop is not _running_loop():
            try:
                loop.call_soon_threadsafe(self._invoke, subscription, event, filtered)
            except RuntimeError:  # the loop closed in between: nobody is left to deliver to
                logger.debug("event %s not delivered to %r: its event loop closed", event.id, subscription)
            return
        self._invoke(subscription, event, filtered)

    def _accepts(self, subscription: Subscription, event: BusEvent[Any]) -> bool:
        """Apply the subscription's filter; a filter that raises rejects the event."""
        if subscription._filter is None:
            return True
        try:
            return bool(subscription._filter(event))
        except Exception:
            logger.exception("event filter of %r failed on %s event %s", subscription, event.type, event.id)
            self._count("handler_errors")
            return False

    def _invoke(self, subscription: Subscription, event: BusEvent[Any], filtered: bool) -> None:
        if not subscription._active or not (filtered or self._accepts(subscription, event)):
            return
        if subscription.once and not self._remove(subscription):
            return  # another thread delivered its one event first
        self._count("delivered")
        try:
            result = subscription._handler(event)
        except Exception:
            logger.exception("event handler of %r failed on %s event %s", subscription, event.type, event.id)
            self._count("handler_errors")
            return
        if inspect.isawaitable(result):
            self._start(result, subscription, event)

    def _start(self, awaitable: Awaitable[None], subscription: Subscription, event: BusEvent[Any]) -> None:
        loop = _running_loop()
        if loop is None:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            logger.error(
                "async event handler of %r skipped %s event %s: publish from a running event loop",
                subscription,
                event.type,
                event.id,
            )
            self._count("handler_errors")
            return
        with self._lock:
            semaphore = self._semaphores.get(loop)
            if semaphore is None:
                semaphore = self._semaphores[loop] = asyncio.Semaphore(self._max_handlers)
        task = loop.create_task(self._run(awaitable, semaphore, subscription, event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self, awaitable: Awaitable[None], semaphore: asyncio.Semaphore, subscription: Subscription, event: BusEvent[Any]
    ) -> None:
        try:
            async with semaphore:
                await awaitable
        except Exception:
            logger.exception("event handler of %r failed on %s event %s", subscription, event.type, event.id)
            self._count("handler_errors")
        finally:
            if inspect.iscoroutine(awaitable):  # cancelled before it started: close it without a warning
                awaitable.close()


class EventStream:
    """An async iterator over bus events, buffered in a bounded queue; made by `EventBus.stream`.

    Use it as ``async with bus.stream("run.*") as events: async for event in events: ...``.

    Attributes:
        pattern: The stream's event pattern.
        maxsize: Queue size.
        overflow: What happens when the queue is full.
    """

    def __init__(self, *, pattern: str, maxsize: int, overflow: OverflowPolicy) -> None:
        self.pattern = pattern
        self.maxsize = maxsize
        self.overflow = OverflowPolicy(overflow)
        self._queue: deque[BusEvent[Any]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._subscription: Subscription | None = None
        self._overflowed = False
        self._closed = False
        self._dropped = 0

    @property
    def dropped(self) -> int:
        """Events discarded because the queue was full (``OverflowPolicy.DROP_OLDEST``)."""
        return self._dropped

    @property
    def closed(self) -> bool:
        """Whether the stream no longer receives events (closed, or overflowed with ``ERROR``)."""
        return self._closed or self._overflowed

    def close(self) -> None:
        """Unsubscribe and end the iteration (queued events are discarded)."""
        self._closed = True
        self._queue.clear()
        self._stop()

    async def aclose(self) -> None:
        """Close the stream (for ``contextlib.aclosing`` and symmetry with async generators)."""
        self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BusEvent[Any]:
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._closed:
                raise StopAsyncIteration
            if self._overflowed:
                raise StreamOverflowError(pattern=self.pattern, maxsize=self.maxsize)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _attach(self, subscription: Subscription) -> None:
        self._subscription = subscription

    def _push(self, event: BusEvent[Any]) -> None:
        """Queue `event` (runs on the stream's event loop)."""
        if self.closed:
            return
        if len(self._queue) >= self.maxsize:
            if self.overflow is OverflowPolicy.ERROR:
                self._overflowed = True
                self._stop()
                return
            self._queue.popleft()
            self._dropped += 1
            if self._subscription is not None:
                self._subscription._bus._count("dropped")
        self._queue.append(event)
        self._wake()

    def _stop(self) -> None:
        if self._subscription is not None:
            self._subscription.unsubscribe()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
