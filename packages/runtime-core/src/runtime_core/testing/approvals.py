"""The approval store conformance kit: what every `ApprovalStore` must do, as executable checks.

Like the run store kit, the checks need only pytest-free Python: each is an ``async`` function taking a
fresh store and raising [`ConformanceFailure`][runtime_core.testing.ConformanceFailure] when the store
falls short. `ApprovalStoreConformance` wraps them as pytest test methods::

    class TestMyApprovalStore(ApprovalStoreConformance):
        async def make_store(self) -> ApprovalStore:
            return MyApprovalStore(...)

"Oldest first" means in the order of ``requested_at``; the checks create approvals in that order too.
They use fresh random ids and run ids and filter by them, so a store that is not empty (a shared test
database) passes as well. Timestamps are whole seconds, which every backend keeps exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from runtime_core.approvals import Approval, ApprovalDecision, ApprovalResolution, ApprovalStatus, ApprovalStore
from runtime_core.exceptions import AlreadyExistsError, ApprovalResolvedError, NotFoundError
from runtime_core.testing._harness import StoreConformance
from runtime_core.testing.conformance import ConformanceFailure, _expect, _new_id
from runtime_core.tools import ToolCall

__all__ = ["APPROVAL_STORE_CHECKS", "ApprovalStoreConformance"]

_T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def _expect_raises(error: type[Exception], action: Awaitable[Any], message: str) -> Exception:
    # Unlike a bare `pytest.raises`, a wrong exception type is a conformance failure that says what was expected.
    try:
        await action
    except error as raised:
        return raised
    except Exception as other:
        raise ConformanceFailure(
            f"{message}: expected {error.__name__}, got {type(other).__name__}: {other}"
        ) from other
    raise ConformanceFailure(f"{message}: expected {error.__name__}, nothing was raised")


def _approval(run_id: str, *, seconds: int = 0, tool: str = "shell:run", expires: bool = True) -> Approval:
    """A pending request, `seconds` after the kit's epoch, with nested arguments to round-trip."""
    call = ToolCall(
        id=_new_id("call"),
        name=tool,
        arguments={"command": "rm -rf build", "options": {"cwd": "/work", "env": ["A=1", "B=2"], "timeout": 1.5}},
    )
    requested_at = _T0 + timedelta(seconds=seconds)
    return Approval(
        id=_new_id("apr"),
        run_id=run_id,
        tool_call=call,
        reason=f"{tool} needs approval",
        requested_at=requested_at,
        expires_at=requested_at + timedelta(minutes=5) if expires else None,
    )


def _resolution(
    approval: Approval,
    decision: ApprovalDecision = ApprovalDecision.ALLOW,
    *,
    note: str | None = None,
    resolved_by: str | None = None,
    sticky: bool = False,
    expired: bool = False,
) -> ApprovalResolution:
    return ApprovalResolution(
        approval_id=approval.id,
        decision=decision,
        note=note,
        resolved_by=resolved_by,
        sticky=sticky,
        expired=expired,
    )


def _ids(approvals: Sequence[Approval]) -> list[str]:
    return [approval.id for approval in approvals]


async def check_create_get_list(store: ApprovalStore) -> None:
    """Created approvals read back unchanged; ``list`` filters by run and status, oldest first."""
    run_a, run_b = _new_id("run"), _new_id("run")
    first = _approval(run_a, seconds=1)
    other = _approval(run_b, seconds=2, tool="file:write", expires=False)
    second = _approval(run_a, seconds=3, tool="web:fetch")
    for approval in (first, other, second):
        created = await store.create(approval)
        _expect(created == approval, f"create returned {created!r}, not the approval it was given")
        _expect(created.status is ApprovalStatus.PENDING, "a created approval is pending")
    for approval in (first, other, second):
        stored = await store.get(approval.id)
        _expect(stored == approval, f"get({approval.id!r}) differs from what was created: {stored!r}")

    ours = {first.id, other.id, second.id}
    everything = [a for a in await store.list() if a.id in ours]
    _expect(_ids(everything) == [first.id, other.id, second.id], f"list() is not oldest first: {_ids(everything)}")
    by_run = await store.list(run_id=run_a)
    _expect(_ids(by_run) == [first.id, second.id], f"list(run_id=...) gave {_ids(by_run)}")
    _expect(_ids(await store.list(run_id=run_b)) == [other.id], "list(run_id=...) mixes runs")
    _expect(list(await store.list(run_id=_new_id("run"))) == [], "list of a run without approvals is empty")
    pending = [a for a in await store.list(status=ApprovalStatus.PENDING) if a.id in ours]
    _expect(_ids(pending) == [first.id, other.id, second.id], f"list(status=pending) gave {_ids(pending)}")
    _expect(list(await store.list(run_id=run_a, status=ApprovalStatus.ALLOWED)) == [], "nothing is allowed yet")

    allowed = await store.resolve(_resolution(first, resolved_by="alice"), at=_T0 + timedelta(seconds=10))
    still_pending = await store.list(run_id=run_a, status=ApprovalStatus.PENDING)
    _expect(
        _ids(still_pending) == [second.id], f"a resolved approval is still listed as pending: {_ids(still_pending)}"
    )
    listed = await store.list(run_id=run_a, status=ApprovalStatus.ALLOWED)
    _expect(list(listed) == [allowed], f"list(status=allowed) should hold the resolved approval, got {_ids(listed)}")
    _expect(_ids(await store.list(run_id=run_a)) == [first.id, second.id], "resolving changed the list order")


async def check_duplicate_id(store: ApprovalStore) -> None:
    """Creating an id twice raises `AlreadyExistsError` and keeps the first request."""
    original = _approval(_new_id("run"))
    await store.create(original)
    impostor = original.model_copy(update={"reason": "a different request", "run_id": _new_id("run")})
    raised = await _expect_raises(AlreadyExistsError, store.create(impostor), "creating an approval id twice")
    _expect(
        isinstance(raised, AlreadyExistsError) and raised.key == original.id, "AlreadyExistsError names the approval"
    )
    _expect(await store.get(original.id) == original, "a refused create changed the stored approval")
    _expect(list(await store.list(run_id=impostor.run_id)) == [], "a refused create was listed")


async def check_unknown_id(store: ApprovalStore) -> None:
    """``get`` and ``resolve`` of an unknown id raise `NotFoundError`."""
    missing = _approval(_new_id("run"))
    raised = await _expect_raises(NotFoundError, store.get(missing.id), "get of an unknown approval")
    _expect(isinstance(raised, NotFoundError) and raised.key == missing.id, "NotFoundError names the approval")
    await _expect_raises(NotFoundError, store.resolve(_resolution(missing), at=_T0), "resolve of an unknown approval")
    _expect(list(await store.list(run_id=missing.run_id)) == [], "resolving an unknown approval created it")


async def check_resolve(store: ApprovalStore) -> None:
    """Allow, deny and expiry set the status and record when, by whom, the note and stickiness."""
    run_id = _new_id("run")
    cases: list[tuple[ApprovalStatus, Callable[[Approval], ApprovalResolution]]] = [
        (ApprovalStatus.ALLOWED, lambda a: _resolution(a, note="looks safe", resolved_by="alice", sticky=True)),
        (ApprovalStatus.DENIED, lambda a: _resolution(a, ApprovalDecision.DENY, note="not on main", resolved_by="bob")),
        (ApprovalStatus.EXPIRED, lambda a: _resolution(a, ApprovalDecision.DENY, resolved_by="timeout", expired=True)),
        (ApprovalStatus.ALLOWED, _resolution),  # nobody named, no note: those fields stay empty
    ]
    for index, (status, answer) in enumerate(cases):
        approval = await store.create(_approval(run_id, seconds=index))
        resolution = answer(approval)
        at = _T0 + timedelta(minutes=1, seconds=index)
        resolved = await store.resolve(resolution, at=at)
        expected = approval.resolved(resolution, at=at)
        _expect(
            resolved.status is status,
            f"answer {index} should leave the approval {status.value}, got {resolved.status.value}",
        )
        _expect(resolved.resolved_at == at, f"resolved_at should be {at}, got {resolved.resolved_at}")
        _expect(
            (resolved.resolved_by, resolved.note, resolved.sticky)
            == (resolution.resolved_by, resolution.note, resolution.sticky),
            f"resolved_by, note and sticky not recorded for {status.value}: {resolved!r}",
        )
        _expect(resolved == expected, f"resolve changed other fields of the request: {resolved!r}")
        _expect(await store.get(approval.id) == resolved, f"get does not return the {status.value} approval")


async def check_resolve_twice(store: ApprovalStore) -> None:
    """A second answer raises `ApprovalResolvedError` with the stored status, and the first answer stays."""
    run_id = _new_id("run")
    cases: list[tuple[Callable[[Approval], ApprovalResolution], ApprovalDecision]] = [
        (_resolution, ApprovalDecision.DENY),
        (lambda a: _resolution(a, ApprovalDecision.DENY, note="no"), ApprovalDecision.ALLOW),
        (lambda a: _resolution(a, ApprovalDecision.DENY, expired=True), ApprovalDecision.ALLOW),
    ]
    for index, (first, second) in enumerate(cases):
        approval = await store.create(_approval(run_id, seconds=index))
        kept = await store.resolve(first(approval), at=_T0 + timedelta(minutes=1))
        late = _resolution(
            approval, second, note="too late", resolved_by="mallory", sticky=second is ApprovalDecision.ALLOW
        )
        raised = await _expect_raises(
            ApprovalResolvedError,
            store.resolve(late, at=_T0 + timedelta(minutes=2)),
            f"resolving an approval already {kept.status.value}",
        )
        _expect(
            isinstance(raised, ApprovalResolvedError)
            and (raised.approval_id, raised.status) == (approval.id, kept.status.value),
            f"ApprovalResolvedError should name the approval and status {kept.status.value!r}",
        )
        _expect(await store.get(approval.id) == kept, f"a refused answer overwrote the {kept.status.value} one")


async def check_concurrent_resolutions(store: ApprovalStore) -> None:
    """Of several tasks answering one approval at once, exactly one wins and its answer is stored."""
    run_id = _new_id("run")
    for round_ in range(3):
        approval = await store.create(_approval(run_id, seconds=round_))
        contenders = [
            _resolution(
                approval,
                ApprovalDecision.ALLOW if index % 2 else ApprovalDecision.DENY,
                resolved_by=f"resolver-{index}",
                note=f"answer {index}",
            )
            for index in range(8)
        ]
        outcomes = await asyncio.gather(
            *(store.resolve(resolution, at=_T0 + timedelta(minutes=1)) for resolution in contenders),
            return_exceptions=True,
        )
        winners = [outcome for outcome in outcomes if isinstance(outcome, Approval)]
        refused = [outcome for outcome in outcomes if isinstance(outcome, ApprovalResolvedError)]
        others = [outcome for outcome in outcomes if not isinstance(outcome, Approval | ApprovalResolvedError)]
        _expect(others == [], f"concurrent resolve raised something else than ApprovalResolvedError: {others!r}")
        _expect(len(winners) == 1, f"exactly one concurrent resolution must win, {len(winners)} did")
        _expect(len(refused) == len(contenders) - 1, "every losing resolution raises ApprovalResolvedError")
        stored = await store.get(approval.id)
        _expect(stored == winners[0], f"the stored answer {stored.resolved_by!r} is not the winner's")


Check = Callable[[ApprovalStore], Awaitable[None]]

APPROVAL_STORE_CHECKS: Sequence[tuple[str, Check]] = (
    ("create_get_list", check_create_get_list),
    ("duplicate_id", check_duplicate_id),
    ("unknown_id", check_unknown_id),
    ("resolve", check_resolve),
    ("resolve_twice", check_resolve_twice),
    ("concurrent_resolutions", check_concurrent_resolutions),
)
"""Every approval store check, by name, for runners other than pytest."""


class ApprovalStoreConformance(StoreConformance[ApprovalStore]):
    """Base class of a pytest test class that holds a store to the approval store contract.

    Override `make_store` (and `close_store` if the store holds resources); see `StoreConformance`.
    """

    def test_create_get_list(self) -> None:
        """See `check_create_get_list`."""
        self.run_check(check_create_get_list)

    def test_duplicate_id(self) -> None:
        """See `check_duplicate_id`."""
        self.run_check(check_duplicate_id)

    def test_unknown_id(self) -> None:
        """See `check_unknown_id`."""
        self.run_check(check_unknown_id)

    def test_resolve(self) -> None:
        """See `check_resolve`."""
        self.run_check(check_resolve)

    def test_resolve_twice(self) -> None:
        """See `check_resolve_twice`."""
        self.run_check(check_resolve_twice)

    def test_concurrent_resolutions(self) -> None:
        """See `check_concurrent_resolutions`."""
        self.run_check(check_concurrent_resolutions)
