"""The run store conformance kit passes on the in-memory store and catches broken stores."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from runtime_core import Checkpoint, Event, EventDraft, InMemoryRunStore, Lease, RunStore
from runtime_core.testing import RUN_STORE_CHECKS, ConformanceFailure, RunStoreConformance


class TestInMemoryRunStore(RunStoreConformance):
    async def make_store(self) -> RunStore:
        return InMemoryRunStore()


class _Unfenced(InMemoryRunStore):
    """Ignores fencing: writes with whatever the current lease is."""

    async def append(
        self, lease: Lease, events: Sequence[EventDraft], checkpoint: Checkpoint | None = None
    ) -> Sequence[Event]:
        current = await self.acquire_lease(lease.run_id, "intruder", ttl=timedelta(minutes=1), steal=True)
        return await super().append(current, events, checkpoint)


class _NotAtomic(InMemoryRunStore):
    """Writes a boundary one event at a time, so a failure leaves part of it behind."""

    async def append(
        self, lease: Lease, events: Sequence[EventDraft], checkpoint: Checkpoint | None = None
    ) -> Sequence[Event]:
        recorded: list[Event] = []
        for draft in events:
            recorded.extend(await super().append(lease, [draft]))
        recorded.extend(await super().append(lease, [], checkpoint))
        return recorded


class _ForgetsSnapshots(InMemoryRunStore):
    """Drops the deltas folded into snapshots but loads as if snapshots were deltas (loses history)."""

    async def append(
        self, lease: Lease, events: Sequence[EventDraft], checkpoint: Checkpoint | None = None
    ) -> Sequence[Event]:
        if checkpoint is not None and checkpoint.kind == "snapshot":
            checkpoint = None
        return await super().append(lease, events, checkpoint)


class _SparseSeq(InMemoryRunStore):
    """Leaves a gap in seq after every append."""

    async def append(
        self, lease: Lease, events: Sequence[EventDraft], checkpoint: Checkpoint | None = None
    ) -> Sequence[Event]:
        recorded = await super().append(lease, events, checkpoint)
        return [event.model_copy(update={"seq": event.seq * 2}) for event in recorded]

    async def read_events(self, run_id: str, *, after_seq: int = 0, limit: int | None = None) -> Sequence[Event]:
        events = await super().read_events(run_id, after_seq=0)
        shifted = [e.model_copy(update={"seq": e.seq if e.seq == 1 else e.seq * 2}) for e in events]
        kept = [e for e in shifted if e.seq > after_seq]
        return kept if limit is None else kept[:limit]


@pytest.mark.parametrize(
    ("broken", "failing_check"),
    [
        (_Unfenced, "fencing"),
        (_NotAtomic, "atomic_boundary"),
        (_ForgetsSnapshots, "load_folds_snapshots_and_deltas"),
        (_SparseSeq, "append_order_and_dense_seq"),
    ],
)
def test_broken_stores_fail_the_kit(broken: type[InMemoryRunStore], failing_check: str) -> None:
    class Kit(RunStoreConformance):
        async def make_store(self) -> RunStore:
            return broken()

    check = dict(RUN_STORE_CHECKS)[failing_check]
    with pytest.raises(ConformanceFailure):
        Kit().run_check(check)


def test_kit_requires_make_store() -> None:
    with pytest.raises(NotImplementedError, match="make_store"):
        RunStoreConformance().run_check(dict(RUN_STORE_CHECKS)["fencing"])


def test_kit_lists_every_check_as_a_test() -> None:
    names = {name for name in dir(RunStoreConformance) if name.startswith("test_")}
    assert names == {f"test_{name}" for name, _ in RUN_STORE_CHECKS}
