"""ApprovalBroker: requests wait in a store until a resolver, a rule or the timeout answers them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from runtime_control.approvals import DEFAULT_APPROVAL_TIMEOUT_S, TIMEOUT_RESOLVER, ApprovalBroker
from runtime_core import (
    Approval,
    ApprovalDecision,
    ApprovalHandler,
    ApprovalResolution,
    ApprovalStatus,
    InMemoryApprovalStore,
    ManualClock,
    ToolCall,
)
from runtime_core.exceptions import AlreadyExistsError, ApprovalResolvedError, ConfigurationError, NotFoundError

T = TypeVar("T")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NEVER_POLL = 30.0  # longer than any test may take: a waiter that wakes did not wake by polling


def _approval(approval_id: str = "apr_1", *, run_id: str = "run_1", tool: str = "shell:run", **fields: Any) -> Approval:
    call = ToolCall(id=f"call_{approval_id}", name=tool, arguments={"command": "make deploy"})
    return Approval(
        id=approval_id, run_id=run_id, tool_call=call, reason=f"{tool} needs approval", requested_at=T0, **fields
    )


def _run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(scenario(), timeout=2))


async def _until_pending(broker: ApprovalBroker, count: int = 1) -> list[Approval]:
    for _ in range(400):
        pending = list(await broker.pending())
        if len(pending) >= count:
            return pending
        await asyncio.sleep(0.005)
    raise AssertionError(f"fewer than {count} pending approvals appeared")


def test_broker_is_an_approval_handler() -> None:
    broker = ApprovalBroker()
    assert isinstance(broker, ApprovalHandler)
    assert isinstance(broker.store, InMemoryApprovalStore)
    assert (broker.timeout_s, broker.poll_interval_s) == (DEFAULT_APPROVAL_TIMEOUT_S, 1.0)


@pytest.mark.parametrize(
    ("decision", "sticky", "status"),
    [("allow", True, ApprovalStatus.ALLOWED), ("allow", False, ApprovalStatus.ALLOWED), ("deny", False, "denied")],
)
def test_resolved_from_another_task(decision: str, sticky: bool, status: str) -> None:
    clock = ManualClock(T0 + timedelta(seconds=30))
    broker = ApprovalBroker(clock=clock, poll_interval_s=NEVER_POLL, timeout_s=60)

    async def scenario() -> tuple[ApprovalResolution | None, float, Approval, Approval]:
        waiting = asyncio.create_task(broker.decide(_approval()))
        [pending] = await _until_pending(broker)
        assert not waiting.done()  # the run waits
        started = time.monotonic()
        resolved = await broker.resolve("apr_1", decision, note="checked", resolved_by="alice", sticky=sticky)
        result = await waiting
        return result, time.monotonic() - started, pending, resolved

    result, elapsed, pending, resolved = _run(scenario)
    assert pending.status is ApprovalStatus.PENDING
    assert pending.expires_at == T0 + timedelta(seconds=60)
    assert elapsed < 0.5  # woken by resolve, not by polling the store
    assert result == ApprovalResolution(
        approval_id="apr_1", decision=ApprovalDecision(decision), note="checked", resolved_by="alice", sticky=sticky
    )
    assert resolved.status == status
    assert resolved.resolved_at == T0 + timedelta(seconds=30)  # the injected clock
    assert (resolved.note, resolved.resolved_by, resolved.sticky) == ("checked", "alice", sticky)
    assert asyncio.run(broker.store.get("apr_1")) == resolved
    assert asyncio.run(broker.pending()) == []


def test_timeout_resolves_to_an_expired_denial() -> None:
    clock = ManualClock(T0)
    broker = ApprovalBroker(clock=clock, timeout_s=0.05, poll_interval_s=NEVER_POLL)

    async def scenario() -> tuple[ApprovalResolution | None, float]:
        started = time.monotonic()
        result = await broker.decide(_approval())
        return result, time.monotonic() - started

    result, elapsed = _run(scenario)
    assert 0.04 <= elapsed < 1  # real asyncio time, although the manual clock never moved
    assert result == ApprovalResolution(
        approval_id="apr_1", decision=ApprovalDecision.DENY, expired=True, resolved_by=TIMEOUT_RESOLVER
    )
    stored = asyncio.run(broker.store.get("apr_1"))
    assert stored.status is ApprovalStatus.EXPIRED
    assert stored.expires_at == T0 + timedelta(seconds=0.05)
    assert (stored.resolved_at, stored.resolved_by) == (T0, "timeout")


def test_a_request_with_its_own_expiry_keeps_it() -> None:
    broker = ApprovalBroker(timeout_s=None, poll_interval_s=NEVER_POLL)
    approval = _approval(expires_at=T0 + timedelta(seconds=0.05))

    result = _run(lambda: broker.decide(approval))

    assert result is not None
    assert result.expired
    assert asyncio.run(broker.store.get("apr_1")).expires_at == approval.expires_at


def test_without_timeout_a_request_waits_until_answered() -> None:
    broker = ApprovalBroker(timeout_s=None, poll_interval_s=0.01)

    async def scenario() -> tuple[ApprovalResolution | None, Approval]:
        waiting = asyncio.create_task(broker.decide(_approval()))
        [pending] = await _until_pending(broker)
        await asyncio.sleep(0.1)  # ten polls later, still waiting
        assert not waiting.done()
        await broker.resolve("apr_1", ApprovalDecision.ALLOW)
        return await waiting, pending

    result, pending = _run(scenario)
    assert pending.expires_at is None
    assert result == ApprovalResolution(approval_id="apr_1", decision=ApprovalDecision.ALLOW)


def test_a_resolution_written_into_the_store_is_picked_up_by_polling() -> None:
    # Another process shares the (durable) store but not the broker: only polling can notice its answer.
    store = InMemoryApprovalStore()
    broker = ApprovalBroker(store, poll_interval_s=0.02, timeout_s=5)
    other_process = InMemoryApprovalStore.resolve

    async def scenario() -> tuple[ApprovalResolution | None, float]:
        waiting = asyncio.create_task(broker.decide(_approval()))
        await _until_pending(broker)
        started = time.monotonic()
        answer = ApprovalResolution(approval_id="apr_1", decision=ApprovalDecision.DENY, note="no", resolved_by="cli")
        await other_process(store, answer, at=T0 + timedelta(minutes=1))
        return await asyncio.wait_for(waiting, timeout=1), time.monotonic() - started

    result, elapsed = _run(scenario)
    assert result == ApprovalResolution(
        approval_id="apr_1", decision=ApprovalDecision.DENY, note="no", resolved_by="cli"
    )
    assert elapsed < 0.5


class _AnsweredAsTheTimerFires(InMemoryApprovalStore):
    """Another resolver's answer lands just before the broker records the expiry."""

    async def resolve(self, resolution: ApprovalResolution, *, at: datetime) -> Approval:
        if resolution.expired:
            human = ApprovalResolution(approval_id=resolution.approval_id, decision="allow", resolved_by="human")
            await super().resolve(human, at=at)
        return await super().resolve(resolution, at=at)


def test_an_answer_that_beats_the_expiry_wins() -> None:
    broker = ApprovalBroker(_AnsweredAsTheTimerFires(), timeout_s=0.02, poll_interval_s=NEVER_POLL)

    result = _run(lambda: broker.decide(_approval()))

    assert result == ApprovalResolution(approval_id="apr_1", decision=ApprovalDecision.ALLOW, resolved_by="human")
    assert asyncio.run(broker.store.get("apr_1")).status is ApprovalStatus.ALLOWED


def test_resolve_racing_the_timeout_always_agrees_with_the_store() -> None:
    broker = ApprovalBroker(timeout_s=0.01, poll_interval_s=NEVER_POLL)

    async def scenario() -> list[tuple[ApprovalResolution | None, Approval, Approval | Exception]]:
        rounds = []
        for index in range(16):
            approval_id = f"apr_{index}"
            waiting = asyncio.create_task(broker.decide(_approval(approval_id)))
            await asyncio.sleep(0.002 * (index % 8 + 1))  # from well before to well after the timeout

            async def answer(approval_id: str = approval_id) -> Approval | Exception:
                try:
                    return await broker.resolve(approval_id, "allow", resolved_by="human")
                except (ApprovalResolvedError, NotFoundError) as error:
                    return error

            answered = await answer()
            result = await waiting
            rounds.append((result, await broker.store.get(approval_id), answered))
        return rounds

    rounds = _run(scenario)
    outcomes = set()
    for result, stored, answered in rounds:
        assert stored.status is not ApprovalStatus.PENDING
        assert result == ApprovalResolution(
            approval_id=stored.id,
            decision=ApprovalDecision.ALLOW if stored.status is ApprovalStatus.ALLOWED else ApprovalDecision.DENY,
            resolved_by=stored.resolved_by,
            expired=stored.status is ApprovalStatus.EXPIRED,
        )
        if isinstance(answered, Approval):  # the resolver won: decide returned its answer
            assert answered == stored
            assert stored.status is ApprovalStatus.ALLOWED
        elif isinstance(answered, ApprovalResolvedError):  # the timeout won: the late answer was refused
            assert stored.status is ApprovalStatus.EXPIRED
        outcomes.add(stored.status)
    assert outcomes == {ApprovalStatus.ALLOWED, ApprovalStatus.EXPIRED}  # both sides won some rounds


def test_wait_false_leaves_the_request_pending_for_an_external_resolver() -> None:
    clock = ManualClock(T0)
    broker = ApprovalBroker(wait=False, clock=clock)
    approval = _approval()

    async def scenario() -> tuple[ApprovalResolution | None, list[Approval], ApprovalResolution | None]:
        first = await broker.decide(approval)
        pending = list(await broker.pending(run_id="run_1"))
        assert await broker.pending(run_id="run_2") == []
        await broker.resolve("apr_1", "allow", resolved_by="cli", sticky=True)
        resumed = await broker.decide(approval)  # the resumed run asks again with the same request
        return first, pending, resumed

    first, pending, resumed = _run(scenario)
    assert first is None
    assert [p.id for p in pending] == ["apr_1"]
    assert pending[0].expires_at == T0 + timedelta(seconds=DEFAULT_APPROVAL_TIMEOUT_S)
    assert resumed == ApprovalResolution(
        approval_id="apr_1", decision=ApprovalDecision.ALLOW, resolved_by="cli", sticky=True
    )


def test_a_resumed_pending_request_is_waited_for_again() -> None:
    broker = ApprovalBroker(timeout_s=5, poll_interval_s=NEVER_POLL)

    async def scenario() -> ApprovalResolution | None:
        assert await ApprovalBroker(broker.store, wait=False).decide(_approval()) is None  # before the restart
        waiting = asyncio.create_task(broker.decide(_approval()))
        await asyncio.sleep(0.02)
        await broker.resolve("apr_1", "deny", note="no deploys on Friday")
        return await waiting

    result = _run(scenario)
    assert result == ApprovalResolution(
        approval_id="apr_1", decision=ApprovalDecision.DENY, note="no deploys on Friday"
    )
    assert len(asyncio.run(broker.store.list())) == 1


def test_expire_overdue_resolves_requests_nobody_waits_for() -> None:
    clock = ManualClock(T0)
    broker = ApprovalBroker(wait=False, timeout_s=60, clock=clock)

    async def scenario() -> tuple[list[Approval], list[Approval], list[Approval]]:
        await broker.decide(_approval("apr_old"))
        await broker.decide(_approval("apr_new").model_copy(update={"requested_at": T0 + timedelta(seconds=50)}))
        clock.advance(timedelta(seconds=30))
        none_yet = list(await broker.expire_overdue())
        clock.advance(timedelta(seconds=45))
        expired = list(await broker.expire_overdue())
        return none_yet, expired, list(await broker.pending())

    none_yet, expired, pending = _run(scenario)
    assert none_yet == []
    assert [(a.id, a.status, a.resolved_by) for a in expired] == [("apr_old", ApprovalStatus.EXPIRED, "timeout")]
    assert [a.id for a in pending] == ["apr_new"]


def test_auto_rule_answers_at_once_and_is_recorded() -> None:
    def read_only(approval: Approval) -> ApprovalResolution | None:
        if approval.tool_call.name == "file:read":
            return ApprovalResolution(approval_id=approval.id, decision="allow", resolved_by="rule:read-only")
        return None

    broker = ApprovalBroker(auto=read_only, wait=False)

    async def scenario() -> tuple[ApprovalResolution | None, ApprovalResolution | None]:
        return (
            await broker.decide(_approval("apr_read", tool="file:read")),
            await broker.decide(_approval("apr_shell", tool="shell:run")),
        )

    read, shell = _run(scenario)
    assert read == ApprovalResolution(
        approval_id="apr_read", decision=ApprovalDecision.ALLOW, resolved_by="rule:read-only"
    )
    assert shell is None  # the rule had nothing to say: left for a resolver
    assert asyncio.run(broker.store.get("apr_read")).status is ApprovalStatus.ALLOWED
    assert [a.id for a in asyncio.run(broker.pending())] == ["apr_shell"]


def test_auto_rule_answering_another_approval_is_an_error() -> None:
    broker = ApprovalBroker(auto=lambda a: ApprovalResolution(approval_id="apr_other", decision="allow"))

    with pytest.raises(ConfigurationError, match="apr_other") as raised:
        _run(lambda: broker.decide(_approval()))
    assert raised.value.setting == "auto"


def test_resolving_an_unknown_approval_raises_not_found() -> None:
    broker = ApprovalBroker()

    with pytest.raises(NotFoundError) as raised:
        _run(lambda: broker.resolve("apr_missing", "allow"))
    assert (raised.value.resource, raised.value.key) == ("approval", "apr_missing")
    with pytest.raises(NotFoundError):
        _run(lambda: broker.resolve("", "allow"))


def test_resolving_twice_raises_and_keeps_the_first_answer() -> None:
    broker = ApprovalBroker(wait=False)

    async def scenario() -> Approval:
        await broker.decide(_approval())
        first = await broker.resolve("apr_1", "deny", note="no", resolved_by="alice")
        with pytest.raises(ApprovalResolvedError) as raised:
            await broker.resolve("apr_1", "allow", resolved_by="mallory")
        assert (raised.value.approval_id, raised.value.status) == ("apr_1", "denied")
        assert await broker.store.get("apr_1") == first
        return first

    assert _run(scenario).resolved_by == "alice"


@pytest.mark.parametrize(
    ("decision", "sticky", "setting"),
    [("maybe", False, "decision"), ("ALLOW", False, "decision"), ("deny", True, "sticky")],
)
def test_resolve_validates_the_decision(decision: str, sticky: bool, setting: str) -> None:
    broker = ApprovalBroker(wait=False)

    async def scenario() -> None:
        await broker.decide(_approval())
        with pytest.raises(ConfigurationError) as raised:
            await broker.resolve("apr_1", decision, sticky=sticky)
        assert raised.value.setting == setting
        assert [a.id for a in await broker.pending()] == ["apr_1"]  # nothing was recorded

    _run(scenario)


def test_decide_refuses_answered_or_conflicting_requests() -> None:
    broker = ApprovalBroker(wait=False)
    answer = ApprovalResolution(approval_id="apr_1", decision="allow")

    async def scenario() -> None:
        with pytest.raises(ApprovalResolvedError):
            await broker.decide(_approval().resolved(answer, at=T0))
        await broker.decide(_approval())
        with pytest.raises(AlreadyExistsError):  # same id, another run
            await broker.decide(_approval(run_id="run_2"))

    _run(scenario)


@pytest.mark.parametrize(
    "settings",
    [
        {"timeout_s": 0},
        {"timeout_s": -1.0},
        {"timeout_s": float("nan")},
        {"poll_interval_s": 0},
        {"poll_interval_s": True},
    ],
)
def test_invalid_durations_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as raised:
        ApprovalBroker(**settings)
    assert raised.value.setting == next(iter(settings))


def test_cancelling_a_waiting_decide_leaks_nothing() -> None:
    broker = ApprovalBroker(timeout_s=None, poll_interval_s=0.01)

    async def scenario() -> set[asyncio.Task[Any]]:
        waiting = asyncio.create_task(broker.decide(_approval()))
        await _until_pending(broker)
        await asyncio.sleep(0.03)  # a few polls in
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.sleep(0.03)  # anything left behind would still be running now
        assert broker._waiters == {}  # no future is kept for the cancelled wait
        await broker.resolve("apr_1", "allow")  # the request stayed pending and can still be answered
        return asyncio.all_tasks() - {asyncio.current_task()}

    # Not `_run`: its `wait_for` would be one more task. This scenario is the only task of its loop.
    assert asyncio.run(scenario()) == set()


def test_resolve_wakes_a_decide_waiting_on_another_threads_loop() -> None:
    broker = ApprovalBroker(timeout_s=5, poll_interval_s=NEVER_POLL)
    results: list[ApprovalResolution | None] = []
    worker = threading.Thread(target=lambda: results.append(asyncio.run(broker.decide(_approval()))))
    worker.start()

    async def scenario() -> float:
        await _until_pending(broker)
        await asyncio.sleep(0.02)  # let the worker's decide register its waiter
        started = time.monotonic()
        await broker.resolve("apr_1", "allow", resolved_by="main-thread")
        await asyncio.to_thread(worker.join, 2)
        return time.monotonic() - started

    elapsed = _run(scenario)
    assert not worker.is_alive()
    assert elapsed < 1
    assert [r.resolved_by if r else None for r in results] == ["main-thread"]
