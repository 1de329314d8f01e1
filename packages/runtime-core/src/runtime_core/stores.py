"""The run store protocol: the run log, checkpoints and write fencing."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import Protocol, runtime_checkable

from pydantic import AwareDatetime, Field, PositiveInt

from runtime_core._base import FrozenModel
from runtime_core.checkpoints import Checkpoint, CheckpointState
from runtime_core.events import Event, EventDraft
from runtime_core.runs import Run, RunStatus

__all__ = ["Lease", "LoadedRun", "RunStore"]


class Lease(FrozenModel):
    """The right to write a run, proven by a fencing token.

    Tokens grow by one with every acquisition of a run, so a writer whose lease was taken over holds a
    smaller token than the current one and every append it tries is refused.
    """

    run_id: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    token: PositiveInt
    expires_at: AwareDatetime


class LoadedRun(FrozenModel):
    """A run with its state rebuilt from checkpoints."""

    run: Run
    state: CheckpointState
    checkpoint_turn: int | None = Field(description="Turn of the last checkpoint folded, or None if none.")


@runtime_checkable
class RunStore(Protocol):
    """Durable home of runs: an append-only log per run, its checkpoints and its lease.

    Implementations must pass the conformance kit in `runtime_core.testing`.
    """

    async def create_run(self, run_id: str, created: EventDraft) -> Run:
        """Create a run from its ``run.created`` draft, recorded as ``seq`` 1.

        Raises:
            AlreadyExistsError: `run_id` is taken.
            ValueError: `created` is not a ``run.created`` draft.
        """
        ...

    async def acquire_lease(self, run_id: str, owner: str, *, ttl: timedelta, steal: bool = False) -> Lease:
        """Take (or renew, for the same owner) the run's write lease with a new fencing token.

        Raises:
            NotFoundError: No such run.
            LeaseHeldError: Another owner's lease is live and `steal` is false.
        """
        ...

    async def release_lease(self, lease: Lease) -> None:
        """Give up a lease early; a stale lease is ignored."""
        ...

    async def append(
        self, lease: Lease, events: Sequence[EventDraft], checkpoint: Checkpoint | None = None
    ) -> Sequence[Event]:
        """Record one boundary: `events` at the next dense ``seq`` values and `checkpoint`, atomically.

        A checkpoint row is keyed by ``(run_id, turn)``: writing the same turn again replaces it (a turn's
        checkpoint is updated at each tool call and finalised at turn end); its ``parent_turn`` must be
        the previous checkpoint's turn.

        Raises:
            FencingError: `lease` is not the run's current lease.
            DuplicateEventError: An event id is already recorded.
            CheckpointChainError: The checkpoint does not extend the run's chain.
        """
        ...

    async def get_run(self, run_id: str) -> Run:
        """Return a run. Raises `NotFoundError`."""
        ...

    async def list_runs(self, *, status: RunStatus | None = None, limit: int = 100) -> Sequence[Run]:
        """Return runs, newest first."""
        ...

    async def read_events(
        self,
        run_id: str,
        *,
        after_seq: int = 0,
        limit: int | None = None,
        types: Collection[str] | None = None,
    ) -> Sequence[Event]:
        """Return a run's events with ``seq > after_seq`` in order, at most `limit` of them.

        With `types`, only the events of those types (`limit` counts those). Raises `NotFoundError`.
        """
        ...

    async def load(self, run_id: str, *, at_turn: int | None = None) -> LoadedRun:
        """Return a run and its state: the nearest snapshot folded with later deltas.

        Args:
            run_id: The run.
            at_turn: Rebuild the state as of this turn (fork, time travel); default the latest.

        Raises:
            NotFoundError: No such run.
        """
        ...
