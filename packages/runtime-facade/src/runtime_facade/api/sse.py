"""Server-Sent Events of a run's log: ``id: <seq>``, ``event: <type>``, ``data: <event JSON>``.

A client resumes after the last event it saw with the ``Last-Event-ID`` header (which browsers'
``EventSource`` sends on reconnection by itself); the stream ends after the run's terminal event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Final

from runtime_core.events import Event
from runtime_facade.api.models import ErrorBody, ErrorDetail, ErrorType

__all__ = ["HEARTBEAT_S", "event_stream", "format_event"]

HEARTBEAT_S: Final = 15.0
"""Seconds of silence after which a comment line is sent (it keeps proxies from closing an idle stream)."""

_log = logging.getLogger("runtime_facade.api")
_END: Final = object()


def format_event(event: Event) -> bytes:
    """One SSE message (the JSON of an event holds no line break, so one ``data`` line suffices)."""
    return f"id: {event.seq}\nevent: {event.type.value}\ndata: {event.model_dump_json()}\n\n".encode()


def _error_message(message: str) -> bytes:
    body = ErrorBody(error=ErrorDetail(type=ErrorType.UNAVAILABLE, message=message))
    return f"event: error\ndata: {body.model_dump_json()}\n\n".encode()


async def event_stream(events: AsyncIterator[Event], *, heartbeat_s: float = HEARTBEAT_S) -> AsyncIterator[bytes]:
    """Encode `events` as SSE messages, with a comment line after every `heartbeat_s` of silence.

    The events are read by a task of their own: waiting for the next one with a timeout on the iterator
    itself would cancel (and so close) it at the first heartbeat. A failure once the response has started
    cannot change its status any more, so it ends the stream with an ``error`` message.
    """
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=256)

    async def pump() -> None:
        try:
            async for event in events:
                await queue.put(event)
        except Exception as error:
            _log.error("the event stream failed", exc_info=error)
            await queue.put(error)
        else:
            await queue.put(_END)

    reader = asyncio.create_task(pump())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), heartbeat_s)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if item is _END:
                return
            if isinstance(item, Exception):
                yield _error_message(f"the event stream failed: {item}")
                return
            assert isinstance(item, Event)  # the pump puts events, one error or the end
            yield format_event(item)
    finally:
        reader.cancel()
        with suppress(asyncio.CancelledError):
            await reader
