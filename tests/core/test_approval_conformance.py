"""The approval store conformance kit passes on the in-memory store and catches broken stores."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import pytest

from runtime_core import Approval, ApprovalResolution, ApprovalStatus, ApprovalStore, InMemoryApprovalStore
from runtime_core.exceptions import NotFoundError
from runtime_core.testing import APPROVAL_STORE_CHECKS, ApprovalStoreConformance, ConformanceFailure


class TestInMemoryApprovalStore(ApprovalStoreConformance):
    async def make_store(self) -> ApprovalStore:
        return InMemoryApprovalStore()


def test_a_store_holding_other_approvals_passes() -> None:
    # A shared test database is not empty: the checks must not assume they see only their own approvals.
    shared = InMemoryApprovalStore()

    class Shared(ApprovalStoreConformance):
        async def make_store(self) -> ApprovalStore:
            return shared

    for _, check in APPROVAL_STORE_CHECKS:
        Shared().run_check(check)
    assert len(asyncio.run(shared.list())) > 10


class _NewestFirst(InMemoryApprovalStore):
    """Lists the newest approval first."""

    async def list(self, *, run_id: str | None = None, status: ApprovalStatus | None = None) -> Sequence[Approval]:
        return list(reversed(await super().list(run_id=run_id, status=status)))


class _IgnoresStatusFilter(InMemoryApprovalStore):
    """Lists every approval of the run, whatever status was asked for."""

    async def list(self, *, run_id: str | None = None, status: ApprovalStatus | None = None) -> Sequence[Approval]:
        return await super().list(run_id=run_id)


class _Overwrites(InMemoryApprovalStore):
    """Creating an existing id replaces the stored request."""

    async def create(self, approval: Approval) -> Approval:
        self._approvals[approval.id] = approval
        return approval


class _KeyError(InMemoryApprovalStore):
    """Leaks a KeyError for unknown ids."""

    async def get(self, approval_id: str) -> Approval:
        return self._approvals[approval_id]


class _ForgetsNote(InMemoryApprovalStore):
    """Drops the note and stickiness of an answer."""

    async def resolve(self, resolution: ApprovalResolution, *, at: datetime) -> Approval:
        return await super().resolve(resolution.model_copy(update={"note": None, "sticky": False}), at=at)


class _LastAnswerWins(InMemoryApprovalStore):
    """Accepts a second answer, overwriting the first."""

    async def resolve(self, resolution: ApprovalResolution, *, at: datetime) -> Approval:
        try:
            approval = self._approvals[resolution.approval_id]
        except KeyError:
            raise NotFoundError("approval", resolution.approval_id) from None
        resolved = approval.model_copy(update={"status": ApprovalStatus.PENDING, "resolved_at": None})
        self._approvals[approval.id] = resolved.resolved(resolution, at=at)
        return self._approvals[approval.id]


class _CheckThenAct(InMemoryApprovalStore):
    """Refuses a second answer, but reads and writes in two steps (a race between concurrent resolvers)."""

    async def resolve(self, resolution: ApprovalResolution, *, at: datetime) -> Approval:
        current = await self.get(resolution.approval_id)
        await asyncio.sleep(0)  # a database round trip between the read and the write
        if current.status is not ApprovalStatus.PENDING:
            return await super().resolve(resolution, at=at)  # raises ApprovalResolvedError
        self._approvals[current.id] = current.resolved(resolution, at=at)
        return self._approvals[current.id]


BROKEN = [
    (_NewestFirst, "create_get_list"),
    (_IgnoresStatusFilter, "create_get_list"),
    (_Overwrites, "duplicate_id"),
    (_KeyError, "unknown_id"),
    (_ForgetsNote, "resolve"),
    (_LastAnswerWins, "resolve_twice"),
    (_CheckThenAct, "concurrent_resolutions"),
]


def _kit(store_type: type[InMemoryApprovalStore]) -> ApprovalStoreConformance:
    class Kit(ApprovalStoreConformance):
        async def make_store(self) -> ApprovalStore:
            return store_type()

    return Kit()


@pytest.mark.parametrize(("broken", "failing_check"), BROKEN, ids=[name for _, name in BROKEN])
def test_broken_stores_fail_the_matching_check(broken: type[InMemoryApprovalStore], failing_check: str) -> None:
    with pytest.raises(ConformanceFailure):
        _kit(broken).run_check(dict(APPROVAL_STORE_CHECKS)[failing_check])


def test_a_racy_store_passes_the_sequential_checks() -> None:
    # The concurrency check is the only one that catches a check-then-act store: it is not redundant.
    kit = _kit(_CheckThenAct)
    for name, check in APPROVAL_STORE_CHECKS:
        if name != "concurrent_resolutions":
            kit.run_check(check)


def test_kit_requires_make_store() -> None:
    with pytest.raises(NotImplementedError, match="make_store"):
        ApprovalStoreConformance().run_check(dict(APPROVAL_STORE_CHECKS)["resolve"])


def test_kit_lists_every_check_as_a_test() -> None:
    names = {name for name in dir(ApprovalStoreConformance) if name.startswith("test_")}
    assert names == {f"test_{name}" for name, _ in APPROVAL_STORE_CHECKS}
