"""The run log writer of one run: buffers a boundary's events, commits them with a checkpoint, fans out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from runtime_core.checkpoints import Checkpoint
from runtime_core.clock import Clock
from runtime_core.events import Event, EventDraft, EventPayload, EventSink
from runtime_core.redaction import Redactor
from runtime_core.stores import Lease, RunStore

__all__ = ["Recorder"]

_log = logging.getLogger("runtime_execution.loop")


class Recorder:
    """Writes one run's log through the run store, one boundary (transaction) at a time.

    Events are buffered by `add` and written by `commit` together with the boundary's checkpoint row,
    atomically; then the recorded events go to the sink and to the live listeners. Nothing is visible to
    anyone before its boundary committed, so a crash loses only an uncommitted boundary.
    """

    def __init__(
        self,
        store: RunStore,
        lease: Lease,
        *,
        agent_id: str,
        next_seq: int,
        clock: Clock,
        sink: EventSink | None,
        listener: Callable[[Sequence[Event]], None],
        lease_ttl: timedelta,
        redactor: Redactor | None = None,
    ) -> None:
        self._store = store
        self._lease = lease
        self._agent_id = agent_id
        self._next_seq = next_seq
        self._clock = clock
        self._sink = sink
        self._listener = listener
        self._lease_ttl = lease_ttl
        self._redactor = redactor
        self._pending: list[EventDraft] = []
        self._lock = asyncio.Lock()  # a lease renewal never races an append that uses the old token
        self._beat: asyncio.TimerHandle | None = None
        self._renewal: asyncio.Task[None] | None = None
        self.last_seq = 0

    @property
    def lease(self) -> Lease:
        """The write lease in use."""
        return self._lease

    def add(
        self, payload: EventPayload, *, turn: int, tool_call_id: str | None = None, ts: datetime | None = None
    ) -> None:
        """Buffer an event for the next commit.

        `ts` defaults to now; the events of one step (a model reply, its budget debit and its tool calls;
        a turn's end, its checkpoint and a terminal event) share the step's time.
        """
        # Drafts are committed in the order they are added: the seq the store will give each is known.
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        if self._redactor is not None:
            payload = self._redactor.redact(payload)
        self._pending.append(
            Event.recorded(
                payload,
                run_id=self._lease.run_id,
                seq=seq,
                ts=ts or self._clock.now(),
                agent_id=self._agent_id,
                turn=turn,
                tool_call_id=tool_call_id,
            )
        )

    async def commit(self, checkpoint: Checkpoint | None = None) -> Sequence[Event]:
        """Write the buffered events and `checkpoint` in one transaction, then publish them."""
        if not self._pending and checkpoint is None:
            return ()
        drafts, self._pending = self._pending, []
        if checkpoint is not None and self._redactor is not None:
            checkpoint = self._redactor.redact(checkpoint)
        lock = self._lock
        await lock.acquire()  # no `async with`: its `__aenter__` is one more coroutine per boundary
        try:
            events = await self._store.append(self._lease, drafts, checkpoint)
        finally:
            lock.release()
        if events:
            self.last_seq = events[-1].seq
            self._listener(events)
            if self._sink is not None:
                try:
                    self._sink.emit(events)
                except Exception:  # the events are recorded; a broken subscriber must not end the run
                    _log.exception("event sink %r failed on events %d-%d", self._sink, events[0].seq, self.last_seq)
        return events

    def start_heartbeat(self) -> None:
        """Renew the lease every third of its lifetime, until `stop_heartbeat`.

        A timer rather than a task: between renewals it costs nothing, and a run that ends within a
        third of the lease's lifetime (most do) never spawns anything. A renewal that fails ends the
        heartbeat (the next append then meets the fencing error, if the lease was lost).
        """
        self._beat = asyncio.get_running_loop().call_later(self._lease_ttl.total_seconds() / 3, self._renew_due)

    def _renew_due(self) -> None:
        self._beat = None
        self._renewal = asyncio.create_task(self._renew(), name=f"lease-renewal-{self._lease.run_id}")

    async def _renew(self) -> None:
        async with self._lock:
            self._lease = await self._store.acquire_lease(self._lease.run_id, self._lease.owner, ttl=self._lease_ttl)
        self.start_heartbeat()

    async def stop_heartbeat(self) -> None:
        """Stop renewing the lease (and wait for a renewal in flight to wind down)."""
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        renewal, self._renewal = self._renewal, None
        if renewal is not None:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewal

    async def release(self) -> None:
        """Give the lease back."""
        await self._store.release_lease(self._lease)
