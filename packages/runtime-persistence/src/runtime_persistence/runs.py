"""The SQL run store: the run log, turn checkpoints, the run projection and write fencing.

Every append is one transaction, on SQLite and PostgreSQL alike:

1. lock and read the run's lease row and run row (PostgreSQL: ``SELECT ... FOR UPDATE``; SQLite: the
   transaction began with ``BEGIN IMMEDIATE`` and holds the database's write lock), and refuse a stale
   fencing token with `FencingError`;
2. check the checkpoint against the chain (the run row remembers the newest checkpoint's turn and parent);
3. insert the events at the next dense ``seq`` values (one ``executemany``), insert the checkpoint row
   or replace the same turn's row, and update the run row (projection, ``last_seq``, newest checkpoint);
4. commit: one fsync'd commit per append.

A refused append raises before anything is written and rolls back; nothing of it is visible to anyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Final

from pydantic import TypeAdapter
from sqlalchemy import Engine, bindparam, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from runtime_core.checkpoints import Checkpoint, CheckpointSnapshot, check_chain, fold_checkpoints
from runtime_core.clock import Clock, SystemClock
from runtime_core.events import Event, EventDraft, EventType
from runtime_core.exceptions import (
    AlreadyExistsError,
    DuplicateEventError,
    FencingError,
    LeaseHeldError,
    NotFoundError,
)
from runtime_core.runs import Run, RunStatus
from runtime_core.stores import Lease, LoadedRun
from runtime_persistence._database import Database, Direct, Prepared
from runtime_persistence.exceptions import DatabaseError
from runtime_persistence.schema import metadata

__all__ = ["SqlRunStore"]

_runs = metadata.tables["runs"]
_events = metadata.tables["events"]
_checkpoints = metadata.tables["checkpoints"]
_leases = metadata.tables["leases"]

_CHECKPOINT: Final = TypeAdapter[Checkpoint](Checkpoint)

# Statements are built once: SQLAlchemy compiles each once per engine and caches it.
_LOCK_RUN = (
    select(
        _leases.c.token,
        _leases.c.owner,
        _runs.c.last_seq,
        _runs.c.checkpoint_turn,
        _runs.c.checkpoint_parent_turn,
        _runs.c.data,
    )
    .join_from(_leases, _runs, _leases.c.run_id == _runs.c.id)
    .where(_leases.c.run_id == bindparam("run_id"))
    # Both rows are locked, so PostgreSQL re-reads both if it had to wait for another writer's commit.
    .with_for_update()
)
_LOCK_LEASE = (
    select(_leases.c.token, _leases.c.owner, _leases.c.expires_at)
    .where(_leases.c.run_id == bindparam("run_id"))
    .with_for_update()
)
_TAKE_LEASE = (
    update(_leases)
    .where(_leases.c.run_id == bindparam("b_run_id"))
    .values(owner=bindparam("owner"), token=bindparam("token"), expires_at=bindparam("expires_at"))
)
_RELEASE_LEASE = (
    update(_leases)
    .where(
        _leases.c.run_id == bindparam("b_run_id"),
        _leases.c.token == bindparam("b_token"),
        _leases.c.owner.is_not(None),
    )
    .values(owner=None, expires_at=None)
)
_INSERT_RUN = insert(_runs)
_INSERT_EVENTS = insert(_events)
_INSERT_LEASE = insert(_leases)
_INSERT_CHECKPOINT = insert(_checkpoints)
_REPLACE_CHECKPOINT = (
    update(_checkpoints)
    .where(_checkpoints.c.run_id == bindparam("b_run_id"), _checkpoints.c.turn == bindparam("b_turn"))
    .values(
        kind=bindparam("kind"),
        parent_turn=bindparam("parent_turn"),
        status=bindparam("status"),
        created_at=bindparam("created_at"),
        data=bindparam("data"),
    )
)
_UPDATE_RUN = (
    update(_runs)
    .where(_runs.c.id == bindparam("b_id"))
    .values(
        updated_at=bindparam("updated_at"),
        turns=bindparam("turns"),
        last_seq=bindparam("last_seq"),
        checkpoint_turn=bindparam("checkpoint_turn"),
        checkpoint_parent_turn=bindparam("checkpoint_parent_turn"),
        data=bindparam("data"),
    )
)
_UPDATE_RUN_STATUS = _UPDATE_RUN.values(status=bindparam("status"), reason=bindparam("reason"))
_UPDATE_RUN_CHECKPOINT = (
    update(_runs)
    .where(_runs.c.id == bindparam("b_id"))
    .values(checkpoint_turn=bindparam("checkpoint_turn"), checkpoint_parent_turn=bindparam("checkpoint_parent_turn"))
)
_GET_RUN = select(_runs.c.data).where(_runs.c.id == bindparam("run_id"))
_RUN_EXISTS = select(_runs.c.id).where(_runs.c.id == bindparam("run_id"))
_MAX_PROJECTIONS = 1024
"""Runs whose parsed projection a store keeps (runs being written; the cache starts over when full)."""
_EXISTING_EVENT_IDS = select(_events.c.id).where(_events.c.id.in_(bindparam("ids", expanding=True)))


def _load_statement(*, bounded: bool) -> Any:
    """Checkpoint rows from the nearest snapshot (at or before ``:at_turn`` if `bounded`) on, in turn order."""
    snapshot = select(_checkpoints.c.turn).where(
        _checkpoints.c.run_id == bindparam("run_id"), _checkpoints.c.kind == "snapshot"
    )
    rows = select(_checkpoints.c.data).where(_checkpoints.c.run_id == bindparam("run_id"))
    if bounded:
        snapshot = snapshot.where(_checkpoints.c.turn <= bindparam("at_turn"))
        rows = rows.where(_checkpoints.c.turn <= bindparam("at_turn"))
    # Walking back from the newest row stops at the first snapshot: at most K rows, whatever the run's length.
    nearest = snapshot.order_by(_checkpoints.c.turn.desc()).limit(1).scalar_subquery()
    return rows.where(_checkpoints.c.turn >= func.coalesce(nearest, 0)).order_by(_checkpoints.c.turn)


_LOAD_LATEST = _load_statement(bounded=False)
_LOAD_AT_TURN = _load_statement(bounded=True)


class _AppendStatements:
    """The append's statements, compiled for one engine (they run on the driver: see `Database.write_direct`)."""

    def __init__(self, db: Database) -> None:
        self.lock_run: Prepared = db.prepare(_LOCK_RUN)
        self.insert_events: Prepared = db.prepare(_INSERT_EVENTS)
        self.insert_checkpoint: Prepared = db.prepare(_INSERT_CHECKPOINT)
        self.replace_checkpoint: Prepared = db.prepare(_REPLACE_CHECKPOINT)
        self.update_run: Prepared = db.prepare(_UPDATE_RUN)
        self.update_run_status: Prepared = db.prepare(_UPDATE_RUN_STATUS)
        self.update_run_checkpoint: Prepared = db.prepare(_UPDATE_RUN_CHECKPOINT)


class SqlRunStore:
    """A `RunStore` on SQLite or PostgreSQL.

    Create it on an engine from `create_engine` whose schema is migrated (`upgrade`); the first operation
    checks the schema revision and raises `SchemaOutdatedError` if it is not the one this version needs.
    Close it (`close`) to return its connection to the engine.

    On SQLite every operation runs inline on one connection the store keeps open (a durable append costs
    one fsync'd commit and no thread hop); on PostgreSQL each operation is one transaction in a worker
    thread, on a pooled connection.

    Args:
        engine: The database.
        clock: Time source for lease expiry (default the system clock).
        check_schema: Verify the schema revision on first use.
    """

    def __init__(self, engine: Engine, *, clock: Clock | None = None, check_schema: bool = True) -> None:
        self._db = Database(engine, check_schema=check_schema)
        self._clock = clock or SystemClock()
        self._sql = _AppendStatements(self._db)
        self._projections: dict[str, tuple[str, Run]] = {}
        """Per run, the run row's ``data`` as this store last wrote it, parsed: an append whose locked row
        still holds exactly that text skips parsing it again (any other text, e.g. after a rolled-back
        append or another writer's, is parsed)."""

    @property
    def engine(self) -> Engine:
        """The engine the store runs on."""
        return self._db.engine

    async def close(self) -> None:
        """Return the store's connection to the engine (the engine stays open: dispose of it yourself)."""
        await self._db.close()

    async def create_run(self, run_id: str, created: EventDraft) -> Run:
        """Create a run from its ``run.created`` draft, recorded as ``seq`` 1.

        Raises:
            AlreadyExistsError: `run_id` is taken.
            DuplicateEventError: The draft's id is already recorded.
            ValueError: `created` is not a ``run.created`` draft.
        """
        if created.type is not EventType.RUN_CREATED:
            raise ValueError(f"a run is created by a run.created draft, not {created.type.value}")
        event = Event.placed(created, run_id=run_id, seq=1)
        run = Run.created(event)

        def work(connection: Connection) -> None:
            connection.execute(_INSERT_RUN, _run_row(run, checkpoint_turn=None, checkpoint_parent_turn=None))
            connection.execute(_INSERT_EVENTS, [_event_row(event)])
            connection.execute(_INSERT_LEASE, {"run_id": run_id, "owner": None, "token": 0, "expires_at": None})

        try:
            await self._db.write("create_run", work)
        except IntegrityError as exc:
            if await self._db.read("create_run", lambda c: c.execute(_RUN_EXISTS, {"run_id": run_id}).first()):
                raise AlreadyExistsError("run", run_id) from None
            raise await self._duplicate_error("create_run", [event], exc) from None
        return run

    async def acquire_lease(self, run_id: str, owner: str, *, ttl: timedelta, steal: bool = False) -> Lease:
        """Take (or renew, for the same owner) the run's write lease with a new fencing token.

        Raises:
            NotFoundError: No such run.
            LeaseHeldError: Another owner's lease is live and `steal` is false.
        """

        def work(connection: Connection) -> Lease:
            row = connection.execute(_LOCK_LEASE, {"run_id": run_id}).first()
            if row is None:
                raise NotFoundError("run", run_id)
            token, holder, expires_at = row
            now = self._clock.now()
            if holder is not None and holder != owner and expires_at > now and not steal:
                raise LeaseHeldError(run_id=run_id, owner=holder, expires_at=expires_at)
            lease = Lease(run_id=run_id, owner=owner, token=token + 1, expires_at=now + ttl)
            connection.execute(
                _TAKE_LEASE,
                {"b_run_id": run_id, "owner": owner, "token": lease.token, "expires_at": lease.expires_at},
            )
            return lease

        return await self._db.write("acquire_lease", work)

    async def release_lease(self, lease: Lease) -> None:
        """Give up `lease` early; a stale lease (taken over or released) is ignored.

        Raises:
            NotFoundError: No such run.
        """

        def work(connection: Connection) -> None:
            released = connection.execute(_RELEASE_LEASE, {"b_run_id": lease.run_id, "b_token": lease.token})
            if released.rowcount == 0 and connection.execute(_RUN_EXISTS, {"run_id": lease.run_id}).first() is None:
                raise NotFoundError("run", lease.run_id)

        await self._db.write("release_lease", work)

    async def append(
        self, lease: Lease, events: Sequence[EventDraft], checkpoint: Checkpoint | None = None
    ) -> Sequence[Event]:
        """Record one boundary atomically: `events` at the next dense ``seq`` values and `checkpoint`.

        Raises:
            FencingError: `lease` is not the run's current lease.
            DuplicateEventError: An event id is already recorded (or repeated in `events`).
            CheckpointChainError: The checkpoint does not extend the run's chain.
            NotFoundError: No such run.
        """
        run_id = lease.run_id
        sql = self._sql

        def work(db: Direct) -> list[Event]:
            row = db.fetch_one(sql.lock_run, {"run_id": run_id})
            if row is None:
                raise NotFoundError("run", run_id)
            token, holder, last_seq, checkpoint_turn, checkpoint_parent, run_data = row
            if holder is None or token != lease.token:
                raise FencingError(run_id=run_id, token=lease.token, current_token=token)
            _check_batch(events)
            replace = checkpoint is not None and check_chain(
                run_id, checkpoint, last_turn=checkpoint_turn, last_parent=checkpoint_parent
            )
            if checkpoint is not None:
                checkpoint_turn, checkpoint_parent = checkpoint.turn, checkpoint.parent_turn
            chain = {"b_id": run_id, "checkpoint_turn": checkpoint_turn, "checkpoint_parent_turn": checkpoint_parent}
            placed = [Event.placed(draft, run_id=run_id, seq=last_seq + i) for i, draft in enumerate(events, 1)]
            update_run = self._project(run_data, placed, chain) if placed else None
            # Every check passed: only the database itself can still refuse the writes (a recorded event id),
            # and that rolls the whole boundary back. On PostgreSQL they go out with the commit, in one round trip.
            if checkpoint is not None:
                checkpoint_values = _checkpoint_row(checkpoint, replace=replace)
                db.execute(sql.replace_checkpoint if replace else sql.insert_checkpoint, checkpoint_values)
            if update_run is not None:
                db.execute_many(sql.insert_events, [_event_row(event) for event in placed])
                db.execute(*update_run)
            elif checkpoint is not None:
                db.execute(sql.update_run_checkpoint, chain)
            return placed

        try:
            return await self._db.write_direct("append", work)
        except IntegrityError as exc:
            raise await self._duplicate_error("append", events, exc) from None

    async def get_run(self, run_id: str) -> Run:
        """Return a run.

        Raises:
            NotFoundError: No such run.
        """
        data = await self._db.read("get_run", lambda c: c.execute(_GET_RUN, {"run_id": run_id}).scalar())
        if data is None:
            raise NotFoundError("run", run_id)
        return Run.model_validate_json(data)

    async def list_runs(self, *, status: RunStatus | None = None, limit: int = 100) -> Sequence[Run]:
        """Return runs, newest first (by creation time), optionally only those with `status`."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        query = select(_runs.c.data).order_by(_runs.c.created_at.desc(), _runs.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(_runs.c.status == status.value)
        rows = await self._db.read("list_runs", lambda c: c.execute(query).scalars().all())
        return [Run.model_validate_json(data) for data in rows]

    async def read_events(self, run_id: str, *, after_seq: int = 0, limit: int | None = None) -> Sequence[Event]:
        """Return a run's events with ``seq > after_seq``, in order, at most `limit` of them.

        Raises:
            NotFoundError: No such run.
        """
        query = (
            select(_events.c.data)
            .where(_events.c.run_id == run_id, _events.c.seq > after_seq)
            .order_by(_events.c.seq)
            .limit(limit)
        )

        def work(connection: Connection) -> Sequence[str] | None:
            rows = connection.execute(query).scalars().all()
            if not rows and connection.execute(_RUN_EXISTS, {"run_id": run_id}).first() is None:
                return None
            return rows

        rows = await self._db.read("read_events", work)
        if rows is None:
            raise NotFoundError("run", run_id)
        return [Event.model_validate_json(data) for data in rows]

    async def load(self, run_id: str, *, at_turn: int | None = None) -> LoadedRun:
        """Return a run and its state: the nearest snapshot folded with the deltas after it.

        Only those rows are read: the cost depends on the snapshot interval, not the run's length.

        Args:
            run_id: The run.
            at_turn: Rebuild the state as of this turn (fork, time travel); default the latest.

        Raises:
            NotFoundError: No such run.
        """
        statement = _LOAD_LATEST if at_turn is None else _LOAD_AT_TURN
        parameters = {"run_id": run_id, "at_turn": at_turn}

        def work(connection: Connection) -> tuple[str | None, Sequence[str]]:
            run_data = connection.execute(_GET_RUN, parameters).scalar()
            if run_data is None:
                return None, ()
            return run_data, connection.execute(statement, parameters).scalars().all()

        run_data, rows = await self._db.read("load", work)
        if run_data is None:
            raise NotFoundError("run", run_id)
        checkpoints = [_CHECKPOINT.validate_json(data) for data in rows]
        return LoadedRun(
            run=Run.model_validate_json(run_data),
            state=fold_checkpoints(checkpoints),
            checkpoint_turn=checkpoints[-1].turn if checkpoints else None,
        )

    def _project(self, run_data: str, placed: list[Event], chain: dict[str, Any]) -> tuple[Prepared, dict[str, Any]]:
        """The update of the run row after `placed`: its projection (`Run.apply`), ``last_seq`` and `chain`."""
        run_id = placed[0].run_id
        known = self._projections.get(run_id)
        before = known[1] if known is not None and known[0] == run_data else Run.model_validate_json(run_data)
        run = before.apply(*placed)
        data = run.model_dump_json()
        if len(self._projections) >= _MAX_PROJECTIONS:
            self._projections.clear()
        self._projections[run_id] = (data, run)
        values = {**chain, "updated_at": run.updated_at, "turns": run.turns, "last_seq": run.last_seq, "data": data}
        if (run.status, run.reason) == (before.status, before.reason):
            return self._sql.update_run, values
        # Only now are status and reason written: the index on status changes only when the status does.
        return self._sql.update_run_status, {**values, "status": run.status.value, "reason": run.reason}

    async def _duplicate_error(
        self, operation: str, events: Sequence[EventDraft], cause: IntegrityError
    ) -> DuplicateEventError | DatabaseError:
        """The error for a transaction refused by a constraint: a recorded event id, or else unexpected."""
        ids = [event.id for event in events]
        existing = set(
            await self._db.read(operation, lambda c: c.execute(_EXISTING_EVENT_IDS, {"ids": ids}).scalars().all())
        )
        duplicate = next((event_id for event_id in ids if event_id in existing), None)
        if duplicate is not None:
            return DuplicateEventError(duplicate)
        return DatabaseError(
            f"{operation} was refused by a database constraint: {cause.orig}", operation=operation, retryable=False
        )


def _check_batch(events: Sequence[EventDraft]) -> None:
    seen: set[str] = set()
    for event in events:
        if event.id in seen:
            raise DuplicateEventError(event.id)
        seen.add(event.id)


def _event_row(event: Event) -> dict[str, Any]:
    return {
        "run_id": event.run_id,
        "seq": event.seq,
        "id": event.id,
        "type": event.type.value,
        "turn": event.turn,
        "ts": event.ts,
        "data": event.model_dump_json(),
    }


def _checkpoint_row(checkpoint: Checkpoint, *, replace: bool) -> dict[str, Any]:
    keys = ("b_run_id", "b_turn") if replace else ("run_id", "turn")
    return {
        keys[0]: checkpoint.run_id,
        keys[1]: checkpoint.turn,
        "kind": "snapshot" if isinstance(checkpoint, CheckpointSnapshot) else "delta",
        "parent_turn": checkpoint.parent_turn,
        "status": checkpoint.status.value,
        "created_at": checkpoint.created_at,
        "data": checkpoint.model_dump_json(),
    }


def _run_row(run: Run, *, checkpoint_turn: int | None, checkpoint_parent_turn: int | None) -> dict[str, Any]:
    return {
        "id": run.id,
        "status": run.status.value,
        "reason": run.reason,
        "parent_run_id": run.parent_run_id,
        "root_run_id": run.root_run_id or run.id,
        "depth": run.depth,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "turns": run.turns,
        "last_seq": run.last_seq,
        "checkpoint_turn": checkpoint_turn,
        "checkpoint_parent_turn": checkpoint_parent_turn,
        "data": run.model_dump_json(),
    }
