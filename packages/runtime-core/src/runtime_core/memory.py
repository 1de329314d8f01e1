"""In-memory reference stores: the executable specification of the store protocols.

They keep everything in process memory and are the default when no database is configured. Every
operation takes a lock and does not await while holding it, so each call is atomic for threads and
tasks alike.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from runtime_core.approvals import Approval, ApprovalResolution, ApprovalStatus
from runtime_core.artifacts import ArtifactEnvelope
from runtime_core.checkpoints import Checkpoint, check_chain, fold_checkpoints
from runtime_core.clock import Clock, SystemClock
from runtime_core.events import Event, EventDraft, EventType, event_types
from runtime_core.exceptions import (
    AlreadyExistsError,
    ApprovalResolvedError,
    DuplicateEventError,
    FencingError,
    LeaseHeldError,
    NotFoundError,
)
from runtime_core.runs import Run, RunStatus
from runtime_core.spool import SpoolRef
from runtime_core.stores import Lease, LoadedRun

__all__ = ["InMemoryApprovalStore", "InMemoryArtifactStore", "InMemoryRunStore", "InMemorySpoolStore"]


@dataclass
class _RunRecord:
    projected: Run  # the run as of `events[:applied]`: `run` brings it up to date when it is read
    events: list[Event]
    checkpoints: list[Checkpoint] = field(default_factory=list)
    lease: Lease | None = None
    token: int = 0
    applied: int = 1

    @property
    def run(self) -> Run:
        """The run's projection after every recorded event.

        Appends do not project (a writer rarely reads the run back): the events recorded since the
        last read are applied here, in one pass.
        """
        if self.applied < len(self.events):
            self.projected = self.projected.apply(*self.events[self.applied :])
            self.applied = len(self.events)
        return self.projected


class InMemoryRunStore:
    """A `RunStore` in process memory.

    Args:
        clock: Time source for lease expiry.
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._runs: dict[str, _RunRecord] = {}
        self._event_ids: set[str] = set()

    def _record(self, run_id: str) -> _RunRecord:
        try:
            return self._runs[run_id]
        except KeyError:
            raise NotFoundError("run", run_id) from None

    async def create_run(self, run_id: str, created: EventDraft) -> Run:
        """Create a run from its ``run.created`` draft."""
        if created.type is not EventType.RUN_CREATED:
            raise ValueError(f"a run is created by a run.created draft, not {created.type.value}")
        with self._lock:
            if run_id in self._runs:
                raise AlreadyExistsError("run", run_id)
            if created.id in self._event_ids:
                raise DuplicateEventError(created.id)
            event = Event.placed(created, run_id=run_id, seq=1)
            run = Run.created(event)
            self._runs[run_id] = _RunRecord(projected=run, events=[event])
            self._event_ids.add(created.id)
            return run

    async def acquire_lease(self, run_id: str, owner: str, *, ttl: timedelta, steal: bool = False) -> Lease:
        """Take or renew the run's lease with a new fencing token."""
        with self._lock:
            record = self._record(run_id)
            now = self._clock.now()
            held = record.lease
            if held is not None and held.owner != owner and held.expires_at > now and not steal:
                raise LeaseHeldError(run_id=run_id, owner=held.owner, expires_at=held.expires_at)
            record.token += 1
            record.lease = Lease(run_id=run_id, owner=owner, token=record.token, expires_at=now + ttl)
            return record.lease

    async def release_lease(self, lease: Lease) -> None:
        """Drop `lease` if it is still the current one."""
        with self._lock:
            record = self._record(lease.run_id)
            if record.lease is not None and record.lease.token == lease.token:
                record.lease = None

    async def append(
        self, lease: Lease, events: Sequence[EventDraft], checkpoint: Checkpoint | None = None
    ) -> Sequence[Event]:
        """Record one boundary atomically."""
        with self._lock:
            record = self._record(lease.run_id)
            if record.lease is None or record.lease.token != lease.token:
                raise FencingError(run_id=lease.run_id, token=lease.token, current_token=record.token)
            ids = {draft.id for draft in events}
            if len(ids) != len(events) or not self._event_ids.isdisjoint(ids):
                raise DuplicateEventError(_first_duplicate([draft.id for draft in events], self._event_ids))
            run_id, recorded = lease.run_id, record.events
            replace = _check_chain(run_id, record, checkpoint) if checkpoint is not None else False
            # Validation is complete: from here on nothing can fail, so the boundary is all-or-nothing.
            placed = Event.placed_all(events, run_id=run_id, after_seq=len(recorded))  # seq is dense from 1
            recorded.extend(placed)
            self._event_ids.update(ids)
            if checkpoint is not None:
                if replace:
                    record.checkpoints[-1] = checkpoint
                else:
                    record.checkpoints.append(checkpoint)
            return placed

    async def get_run(self, run_id: str) -> Run:
        """Return a run."""
        with self._lock:
            return self._record(run_id).run

    async def list_runs(self, *, status: RunStatus | None = None, limit: int = 100) -> Sequence[Run]:
        """Return runs, newest first."""
        with self._lock:
            runs = [r.run for r in self._runs.values() if status is None or r.run.status is status]
        runs.sort(key=lambda run: (run.created_at, run.id), reverse=True)
        return runs[:limit]

    async def read_events(
        self,
        run_id: str,
        *,
        after_seq: int = 0,
        limit: int | None = None,
        types: Collection[str] | None = None,
    ) -> Sequence[Event]:
        """Return events after `after_seq` (only those of `types`, if given)."""
        wanted = None if types is None else event_types(types)
        with self._lock:
            events = self._record(run_id).events[after_seq:]
        if wanted is not None:
            events = [event for event in events if event.type in wanted]
        return events if limit is None else events[:limit]

    async def load(self, run_id: str, *, at_turn: int | None = None) -> LoadedRun:
        """Return the run with its folded state."""
        with self._lock:
            record = self._record(run_id)
            run, checkpoints = record.run, list(record.checkpoints)
        folded = [c for c in checkpoints if at_turn is None or c.turn <= at_turn]
        return LoadedRun(
            run=run,
            state=fold_checkpoints(folded),
            checkpoint_turn=folded[-1].turn if folded else None,
        )


def _first_duplicate(ids: Sequence[str], recorded: set[str]) -> str:
    """The first of `ids` already in `recorded` or earlier in `ids` (there is one)."""
    seen: set[str] = set()
    for event_id in ids:
        if event_id in recorded or event_id in seen:
            return event_id
        seen.add(event_id)
    raise AssertionError("no duplicate event id")


def _check_chain(run_id: str, record: _RunRecord, checkpoint: Checkpoint) -> bool:
    last = record.checkpoints[-1] if record.checkpoints else None
    return check_chain(
        run_id,
        checkpoint,
        last_turn=last.turn if last is not None else None,
        last_parent=last.parent_turn if last is not None else None,
    )


class InMemorySpoolStore:
    """A content-addressed `SpoolStore` in process memory."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    async def put(self, content: bytes) -> SpoolRef:
        """Store `content` under its sha256."""
        digest = hashlib.sha256(content).hexdigest()
        self._blobs.setdefault(digest, content)
        return SpoolRef(
            content_hash=digest,
            byte_size=len(content),
            line_count=content.count(b"\n") + (1 if content and not content.endswith(b"\n") else 0),
            uri=f"memory://spool/{digest}",
        )

    async def get(self, content_hash: str) -> bytes:
        """Return the content stored under `content_hash`."""
        try:
            return self._blobs[content_hash]
        except KeyError:
            raise NotFoundError("spool entry", content_hash) from None


class InMemoryArtifactStore:
    """An `ArtifactStore` in process memory."""

    def __init__(self) -> None:
        self._artifacts: dict[str, ArtifactEnvelope] = {}

    async def put(self, artifact: ArtifactEnvelope) -> None:
        """Store a new artifact."""
        if artifact.id in self._artifacts:
            raise AlreadyExistsError("artifact", artifact.id)
        self._artifacts[artifact.id] = artifact

    async def get(self, artifact_id: str) -> ArtifactEnvelope:
        """Return an artifact."""
        try:
            return self._artifacts[artifact_id]
        except KeyError:
            raise NotFoundError("artifact", artifact_id) from None

    async def list(self, run_id: str) -> Sequence[ArtifactEnvelope]:
        """Return a run's artifacts in insertion order."""
        return [a for a in self._artifacts.values() if a.run_id == run_id]


class InMemoryApprovalStore:
    """An `ApprovalStore` in process memory (resolvable only from this process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._approvals: dict[str, Approval] = {}

    async def create(self, approval: Approval) -> Approval:
        """Store a new pending approval."""
        with self._lock:
            if approval.id in self._approvals:
                raise AlreadyExistsError("approval", approval.id)
            self._approvals[approval.id] = approval
        return approval

    async def get(self, approval_id: str) -> Approval:
        """Return an approval."""
        with self._lock:
            try:
                return self._approvals[approval_id]
            except KeyError:
                raise NotFoundError("approval", approval_id) from None

    async def list(self, *, run_id: str | None = None, status: ApprovalStatus | None = None) -> Sequence[Approval]:
        """Return approvals in creation order, filtered by run and status."""
        with self._lock:
            approvals = list(self._approvals.values())
        return [
            a for a in approvals if (run_id is None or a.run_id == run_id) and (status is None or a.status is status)
        ]

    async def resolve(self, resolution: ApprovalResolution, *, at: datetime) -> Approval:
        """Record the answer to a pending approval."""
        with self._lock:
            try:
                approval = self._approvals[resolution.approval_id]
            except KeyError:
                raise NotFoundError("approval", resolution.approval_id) from None
            if approval.status is not ApprovalStatus.PENDING:
                raise ApprovalResolvedError(approval.id, approval.status.value)
            resolved = approval.resolved(resolution, at=at)
            self._approvals[approval.id] = resolved
            return resolved
