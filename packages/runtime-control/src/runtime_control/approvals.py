"""The approval broker: tool calls that wait for a human, a rule or a timeout to allow or deny them.

[`ApprovalBroker`][runtime_control.approvals.ApprovalBroker] is the agent loop's
[`ApprovalHandler`][runtime_core.approvals.ApprovalHandler]. It stores every request in an
[`ApprovalStore`][runtime_core.approvals.ApprovalStore] and waits for the answer, which comes from:

- [`resolve`][runtime_control.approvals.ApprovalBroker.resolve] on the same broker, from another task or
  thread: the waiting call wakes at once;
- anyone writing the resolution into the store, such as the CLI or the HTTP API of another process over a
  durable store: the broker polls the store every ``poll_interval_s`` seconds;
- an ``auto`` rule, which may answer in process as soon as the request is stored;
- the timeout: nobody answered in time, and the request resolves to an expired denial.

Two kinds of time are involved. Timestamps (``expires_at``, ``resolved_at``) come from the injected
[`Clock`][runtime_core.clock.Clock], so they are deterministic under a ``ManualClock``. The waiting itself
runs on real asyncio time (the event loop's monotonic clock): a broker with ``timeout_s=300`` waits 300
real seconds whatever a manual clock says, because nothing would ever advance a manual clock while the
run is blocked on a human.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta

from runtime_core.approvals import Approval, ApprovalDecision, ApprovalResolution, ApprovalStatus, ApprovalStore
from runtime_core.clock import Clock, SystemClock
from runtime_core.exceptions import AlreadyExistsError, ApprovalResolvedError, ConfigurationError, NotFoundError
from runtime_core.memory import InMemoryApprovalStore

__all__ = ["DEFAULT_APPROVAL_TIMEOUT_S", "TIMEOUT_RESOLVER", "ApprovalBroker", "ApprovalRule"]

DEFAULT_APPROVAL_TIMEOUT_S = 300.0
"""How long a request waits for an answer by default, in seconds, before it resolves to deny."""

TIMEOUT_RESOLVER = "timeout"
"""The ``resolved_by`` of an approval that expired."""

ApprovalRule = Callable[[Approval], ApprovalResolution | None]
"""An in-process rule: answers a stored request at once, or returns ``None`` to let it wait."""


def _resolution_of(approval: Approval) -> ApprovalResolution:
    # The inverse of `Approval.resolved`: the answer recorded on a resolved approval.
    return ApprovalResolution(
        approval_id=approval.id,
        decision=ApprovalDecision.ALLOW if approval.status is ApprovalStatus.ALLOWED else ApprovalDecision.DENY,
        note=approval.note,
        resolved_by=approval.resolved_by,
        sticky=approval.sticky,
        expired=approval.status is ApprovalStatus.EXPIRED,
    )


def _expiry(approval_id: str) -> ApprovalResolution:
    return ApprovalResolution(
        approval_id=approval_id, decision=ApprovalDecision.DENY, expired=True, resolved_by=TIMEOUT_RESOLVER
    )


def _settle(future: asyncio.Future[ApprovalResolution], resolution: ApprovalResolution) -> None:
    if not future.done():
        future.set_result(resolution)


def _seconds(value: float, setting: str, *, allowed: str = "a positive number of seconds") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{setting} must be {allowed}, got {value!r}", setting=setting)
    return float(value)


class ApprovalBroker:
    """An approval handler backed by an approval store: stores each request and waits for its answer.

    ``decide`` stores the request, with ``expires_at = requested_at + timeout_s`` unless the request
    already carries an expiry, then returns the first of:

    1. the answer of the ``auto`` rule, if it gives one (recorded in the store like any other answer);
    2. ``None`` at once when ``wait=False``: the run stops in ``waiting_approval`` and an external resolver
       answers through the store (the durable path);
    3. the answer given by `resolve` (immediately) or written into the store by anyone else (seen within
       ``poll_interval_s``);
    4. at the timeout, an expired denial (``decision=deny, expired=True, resolved_by="timeout"``), recorded
       in the store. If an answer landed in the store first, that answer wins.

    A request whose id is already in the store (a resumed run asking again with the same approval) is
    not stored twice: an answered request returns its stored answer, a pending one is waited for again
    (the timeout starts afresh). Cancelling a waiting ``decide`` leaves the request pending in the store,
    to be answered later, and leaves no task or future behind.

    Example:
        ```python
        broker = ApprovalBroker(timeout_s=60, clock=clock)
        loop = AgentLoop(providers=providers, policy=engine, approvals=broker, clock=clock)
        ...  # elsewhere, while a run waits in broker.decide(approval):
        [request] = await broker.pending(run_id)
        await broker.resolve(request.id, "allow", note="fine", resolved_by="alice")
        ```

    Args:
        store: Where requests wait; defaults to a new `InMemoryApprovalStore`. A durable store (from the
            persistence plane) lets another process resolve them and lets requests survive a restart.
        timeout_s: Seconds a request waits (real time) before it resolves to deny; ``None`` waits forever.
        poll_interval_s: How often a waiting ``decide`` reads the store for answers written by others.
        auto: An in-process rule that may answer a request as soon as it is stored.
        wait: ``False`` returns ``None`` right after storing (and after ``auto``) instead of waiting.
        clock: Source of the ``expires_at`` and ``resolved_at`` timestamps; use the agent's clock.

    Raises:
        ConfigurationError: ``timeout_s`` or ``poll_interval_s`` is not a positive number of seconds.
    """

    def __init__(
        self,
        store: ApprovalStore | None = None,
        *,
        timeout_s: float | None = DEFAULT_APPROVAL_TIMEOUT_S,
        poll_interval_s: float = 1.0,
        auto: ApprovalRule | None = None,
        wait: bool = True,
        clock: Clock | None = None,
    ) -> None:
        self._store: ApprovalStore = store if store is not None else InMemoryApprovalStore()
        self._timeout_s = (
            None
            if timeout_s is None
            else _seconds(timeout_s, "timeout_s", allowed="None or a positive number of seconds")
        )
        self._poll_interval_s = _seconds(poll_interval_s, "poll_interval_s")
        self._auto = auto
        self._wait = wait
        self._clock: Clock = clock or SystemClock()
        # Futures of waiting `decide` calls by approval id; `resolve` may run on another thread's loop.
        self._lock = threading.Lock()
        self._waiters: dict[str, set[asyncio.Future[ApprovalResolution]]] = {}

    @property
    def store(self) -> ApprovalStore:
        """The store the requests wait in."""
        return self._store

    @property
    def timeout_s(self) -> float | None:
        """Seconds a request waits before it resolves to deny (``None``: forever)."""
        return self._timeout_s

    @property
    def poll_interval_s(self) -> float:
        """Seconds between two reads of the store while waiting."""
        return self._poll_interval_s

    async def decide(self, approval: Approval) -> ApprovalResolution | None:
        """Store an approval request and return its answer (see the class description for the order).

        Args:
            approval: A pending request.

        Returns:
            The resolution, or ``None`` with ``wait=False`` when the ``auto`` rule did not answer.

        Raises:
            ApprovalResolvedError: `approval` is not pending.
            AlreadyExistsError: The store holds another request (other run or tool call) with this id.
            ConfigurationError: The ``auto`` rule answered another approval id.
        """
        stored = await self._submit(approval)
        if stored.status is not ApprovalStatus.PENDING:
            return _resolution_of(stored)
        if self._auto is not None:
            answer = self._auto(stored)
            if answer is not None:
                if answer.approval_id != stored.id:
                    raise ConfigurationError(
                        f"the auto approval rule answered approval {answer.approval_id!r} when asked about "
                        f"{stored.id!r}",
                        setting="auto",
                    )
                return await self._record(answer)
        if not self._wait:
            return None
        return await self._wait_for(stored)

    async def resolve(
        self,
        approval_id: str,
        decision: ApprovalDecision | str,
        *,
        note: str | None = None,
        resolved_by: str | None = None,
        sticky: bool = False,
    ) -> Approval:
        """Answer a pending request; a ``decide`` waiting for it (in any task or thread) returns at once.

        Args:
            approval_id: The request.
            decision: ``allow`` or ``deny`` (an `ApprovalDecision` or its value).
            note: Shown to the model with a denial and recorded in the run log.
            resolved_by: Who answered (a user name, ``"cli"``, ...).
            sticky: With ``allow``: allow this tool without asking for the rest of the run.

        Returns:
            The resolved approval, as stored.

        Raises:
            ConfigurationError: `decision` is neither allow nor deny, or ``sticky`` is set on a denial.
            NotFoundError: No such approval.
            ApprovalResolvedError: The approval was answered already or expired; the first answer stays.
        """
        try:
            choice = ApprovalDecision(decision)
        except ValueError:
            raise ConfigurationError(
                f"unknown approval decision {decision!r}; use one of allow, deny", setting="decision"
            ) from None
        if sticky and choice is ApprovalDecision.DENY:
            raise ConfigurationError("sticky applies to allow decisions only", setting="sticky")
        if not approval_id:
            raise NotFoundError("approval", approval_id)
        resolution = ApprovalResolution(
            approval_id=approval_id, decision=choice, note=note, resolved_by=resolved_by, sticky=sticky
        )
        resolved = await self._store.resolve(resolution, at=self._clock.now())
        self._notify(_resolution_of(resolved))
        return resolved

    async def pending(self, run_id: str | None = None) -> Sequence[Approval]:
        """Return the requests still waiting for an answer, oldest first, optionally only a run's."""
        return await self._store.list(run_id=run_id, status=ApprovalStatus.PENDING)

    async def expire_overdue(self) -> Sequence[Approval]:
        """Resolve every pending request whose ``expires_at`` has passed (by the clock) as an expired denial.

        A waiting ``decide`` expires its own request; call this for requests nobody waits for (stored with
        ``wait=False``, or left behind by a process that stopped), for example before listing or resuming.

        Returns:
            The approvals this call expired, oldest first.
        """
        now = self._clock.now()
        expired: list[Approval] = []
        for approval in await self.pending():
            if not approval.is_expired(now):
                continue
            try:
                resolved = await self._store.resolve(_expiry(approval.id), at=now)
            except ApprovalResolvedError:
                continue  # answered meanwhile: that answer stands
            self._notify(_resolution_of(resolved))
            expired.append(resolved)
        return expired

    async def _submit(self, approval: Approval) -> Approval:
        """Store the request (with its expiry), or return the stored one when this request was stored before."""
        if approval.status is not ApprovalStatus.PENDING:
            raise ApprovalResolvedError(approval.id, approval.status.value)
        request = approval
        if request.expires_at is None and self._timeout_s is not None:
            expires_at = approval.requested_at + timedelta(seconds=self._timeout_s)
            request = approval.model_copy(update={"expires_at": expires_at})
        try:
            return await self._store.create(request)
        except AlreadyExistsError:
            stored = await self._store.get(approval.id)
            if (stored.run_id, stored.tool_call) != (approval.run_id, approval.tool_call):
                raise
            return stored

    async def _record(self, resolution: ApprovalResolution) -> ApprovalResolution:
        """Store an answer and wake the waiters; if another answer got there first, return that one."""
        try:
            resolved = await self._store.resolve(resolution, at=self._clock.now())
        except ApprovalResolvedError:
            return _resolution_of(await self._store.get(resolution.approval_id))
        answer = _resolution_of(resolved)
        self._notify(answer)
        return answer

    async def _wait_for(self, approval: Approval) -> ApprovalResolution:
        """Wait on real asyncio time for an answer: from `resolve` at once, from the store by polling."""
        loop = asyncio.get_running_loop()
        deadline = None
        if approval.expires_at is not None:
            deadline = loop.time() + max(0.0, (approval.expires_at - approval.requested_at).total_seconds())
        future: asyncio.Future[ApprovalResolution] = loop.create_future()
        with self._lock:
            self._waiters.setdefault(approval.id, set()).add(future)
        try:
            while True:
                # Read the store first: an answer may have landed before the future was registered.
                current = await self._store.get(approval.id)
                if current.status is not ApprovalStatus.PENDING:
                    return _resolution_of(current)
                if future.done():
                    return future.result()
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return await self._record(_expiry(approval.id))
                delay = self._poll_interval_s if remaining is None else min(self._poll_interval_s, remaining)
                # `asyncio.wait` on a bare future starts no task and, unlike `wait_for`, does not cancel it.
                await asyncio.wait((future,), timeout=delay)
                if future.done():
                    return future.result()
        finally:
            with self._lock:
                waiters = self._waiters.get(approval.id)
                if waiters is not None:
                    waiters.discard(future)
                    if not waiters:
                        del self._waiters[approval.id]
            future.cancel()  # a no-op once it holds a result

    def _notify(self, resolution: ApprovalResolution) -> None:
        """Hand an answer to every `decide` waiting for it, on the event loop each one runs on."""
        with self._lock:
            futures = tuple(self._waiters.get(resolution.approval_id, ()))
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for future in futures:
            loop = future.get_loop()
            if loop is running:
                _settle(future, resolution)
                continue
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits there any more
                loop.call_soon_threadsafe(_settle, future, resolution)
