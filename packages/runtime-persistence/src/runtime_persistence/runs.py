"""The SQL run store: the run log, turn checkpoints, the run projection and write fencing.

Every append is one transaction, on SQLite and PostgreSQL alike:

1. lock and read the run's lease row and run row (PostgreSQL: ``SELECT ... FOR UPDATE``; SQLite: the
   transaction began with ``BEGIN IMMEDIATE`` and holds the database's write lock), and refuse a stale
   fencing token with `FencingError`;
2. check the checkpoint against the chain (the run row remembers the newest checkpoint's turn and parent);
3. insert the events at the next dense ``seq`` values (one ``executemany``), insert the checkpoint row
   or replace the same turn's row, and update the run row (projection, ``last_seq``, newest checkpoint);
   refresh the age of the spool entries the documents name and record them in ``spool_references``;
4. commit: one fsync'd commit per append.

A refused append raises before anything is written and rolls back; nothing of it is visible to anyone.

Rows are encoded as ``runtime_persistence._encoding`` describes: events without what their columns hold,
checkpoints referencing the messages that events hold, large documents compressed. To reference messages,
the store keeps, per run it writes, the messages its events carry (`MessageIndex`) next to the run's
parsed projection; both are dropped when the run row is not the one this store last wrote or read.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Engine,
    Integer,
    String,
    bindparam,
    case,
    exists,
    false,
    func,
    insert,
    literal_column,
    null,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from runtime_core import trusted
from runtime_core.checkpoints import (
    Checkpoint,
    CheckpointDelta,
    CheckpointSnapshot,
    CheckpointState,
    CheckpointStatus,
    TurnDelta,
    check_chain,
    fold_checkpoints,
)
from runtime_core.clock import Clock, SystemClock
from runtime_core.events import Event, EventDraft, EventType, event_types
from runtime_core.exceptions import (
    AlreadyExistsError,
    DuplicateEventError,
    FencingError,
    LeaseHeldError,
    NotFoundError,
)
from runtime_core.messages import Message
from runtime_core.runs import Run, RunStatus
from runtime_core.stores import Lease, LoadedRun
from runtime_persistence._database import Database, Direct, Prepared
from runtime_persistence._encoding import (
    EVENT_COLUMNS,
    MESSAGE_EVENT_TYPES,
    MessageIndex,
    StoredDelta,
    StoredState,
    checkpoint_document,
    decode_events,
    event_columns,
    event_place,
    message_of,
    pack,
    read_payload,
    resolve_messages,
    sqlite_timestamp,
    stored_references,
    unpack,
)
from runtime_persistence.exceptions import DatabaseError
from runtime_persistence.schema import metadata
from runtime_persistence.spool import NAME_ENTRY, named_entries, spool_hashes

__all__ = ["SqlRunStore"]

_runs = metadata.tables["runs"]
_events = metadata.tables["events"]
_checkpoints = metadata.tables["checkpoints"]
_leases = metadata.tables["leases"]
_spool_references = metadata.tables["spool_references"]

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
# An event stored without its id (``<run_id>.<seq>``, see runtime_persistence._encoding) whose id another
# row holds explicitly gets a NULL ``type`` (``taken_id`` is its id, NULL for the other rows), so that the
# NOT NULL constraint refuses it as the unique index refuses a repeated explicit id: in the same statement,
# with no round trip, whatever the database. (The other way round, an explicit id of the form
# ``<run_id>.<seq>`` naming an event recorded without its id, is rare: the store looks it up, see
# `_claimed_places`.)
_ID_TAKEN = exists().where(_events.c.id == bindparam("taken_id", type_=String()))
_INSERT_EVENTS = insert(_events).values(
    {column.key: bindparam(column.key) for column in _events.c if column.key != "type"}
    | {"type": case((_ID_TAKEN, null()), else_=bindparam("type", type_=String()))}
)
_IMPLICIT_AT = select(_events.c.seq).where(
    _events.c.run_id == bindparam("run_id"), _events.c.seq == bindparam("seq"), _events.c.id.is_(None)
)
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
        data_zlib=bindparam("data_zlib"),
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
_MAX_RUNS = 1024
"""Runs whose parsed projection and message index a store keeps (the cache starts over when full)."""
_MAX_TYPE_FILTERS = 64
"""Statements a store keeps compiled for reading events of a set of types (they are compiled again when full)."""
_EXPLICIT_IDS = select(_events.c.id).where(_events.c.id.in_(bindparam("ids", expanding=True)))
_IMPLICIT_PLACES = select(_events.c.run_id, _events.c.seq).where(
    tuple_(_events.c.run_id, _events.c.seq).in_(bindparam("places", expanding=True)), _events.c.id.is_(None)
)
_READ_EVENTS = (
    select(*(_events.c[column] for column in EVENT_COLUMNS))
    .where(_events.c.run_id == bindparam("run_id"), _events.c.seq > bindparam("after_seq"))
    .order_by(_events.c.seq)
)


def _type_in(types: Iterable[EventType]) -> Any:
    """``type IN (...)`` of `types` as literals (as in `_load_statement`; the values of EventType are safe)."""
    return _events.c.type.in_([literal_column(f"'{kind.value}'") for kind in sorted(types)])


# The events a load's checkpoint rows reference: all in one range of the run's log.
_MESSAGE_EVENTS = select(_events.c.seq, _events.c.type, _events.c.data, _events.c.data_zlib).where(
    _events.c.run_id == bindparam("run_id"),
    _events.c.seq.between(bindparam("first"), bindparam("last")),
    _type_in(MESSAGE_EVENT_TYPES),
)


def _load_statement(*, bounded: bool) -> Any:
    """Checkpoint rows from the nearest snapshot (at or before ``:at_turn`` if `bounded`) on, in turn order."""
    snapshot = select(_checkpoints.c.turn).where(
        # Literals, not bound parameters: the statement runs as `Prepared`, whose parameters are all supplied.
        _checkpoints.c.run_id == bindparam("run_id"),
        _checkpoints.c.kind == literal_column("'snapshot'"),
    )
    rows = select(
        _checkpoints.c.turn,
        _checkpoints.c.kind,
        _checkpoints.c.parent_turn,
        _checkpoints.c.status,
        _checkpoints.c.created_at,
        _checkpoints.c.data,
        _checkpoints.c.data_zlib,
    ).where(_checkpoints.c.run_id == bindparam("run_id"))
    if bounded:
        snapshot = snapshot.where(_checkpoints.c.turn <= bindparam("at_turn"))
        rows = rows.where(_checkpoints.c.turn <= bindparam("at_turn"))
    # Walking back from the newest row stops at the first snapshot: at most K rows, whatever the run's length.
    # Literals, not bound parameters, here too; SQLite renders an OFFSET with every LIMIT (a bound 0 otherwise).
    one, zero = literal_column("1", Integer()), literal_column("0", Integer())
    nearest = snapshot.order_by(_checkpoints.c.turn.desc()).limit(one).offset(zero).scalar_subquery()
    return rows.where(_checkpoints.c.turn >= func.coalesce(nearest, zero)).order_by(_checkpoints.c.turn)


_LOAD_LATEST = _load_statement(bounded=False)
_LOAD_AT_TURN = _load_statement(bounded=True)


@dataclass(slots=True)
class _RunCache:
    """What a store knows of a run it writes.

    The run row's ``data`` as the store last wrote or read it, that text parsed, and the messages the run's
    events carry.
    """

    data: str
    run: Run
    messages: MessageIndex


class _ReadStatements:
    """The statements of the reads of many rows, compiled for one engine (see `Database.read_direct`)."""

    def __init__(self, db: Database) -> None:
        self.get_run: Prepared = db.prepare(_GET_RUN)
        self.run_exists: Prepared = db.prepare(_RUN_EXISTS)
        self.events: Prepared = db.prepare(_READ_EVENTS)
        self.events_limited: Prepared = db.prepare(_limited(_READ_EVENTS))
        self._db = db
        self._events_of: dict[tuple[frozenset[EventType], bool], Prepared] = {}
        self.load_latest: Prepared = db.prepare(_LOAD_LATEST)
        self.load_at_turn: Prepared = db.prepare(_LOAD_AT_TURN)
        self.message_events: Prepared = db.prepare(_MESSAGE_EVENTS)
        dialect = db.engine.dialect
        # The driver's timestamps as Core returns them (aware, UTC): the column type's own processing, or on
        # SQLite the same in one call (read once per event and checkpoint row).
        processor = (
            sqlite_timestamp
            if dialect.name == "sqlite"
            else _events.c.ts.type.dialect_impl(dialect).result_processor(dialect, None)
        )
        assert processor is not None  # UtcDateTime processes what it reads, on every dialect
        # UtcDateTime's processor returns aware datetimes (SQLAlchemy types it as returning Any).
        self.timestamp: Callable[[Any], datetime] = processor  # type: ignore[assignment]

    def events_read(self, types: frozenset[EventType] | None, *, limited: bool) -> Prepared:
        """The statement that reads a run's events, only those of `types` if given (compiled once per set)."""
        if types is None:
            return self.events_limited if limited else self.events
        key = (types, limited)
        prepared = self._events_of.get(key)
        if prepared is None:
            statement = _READ_EVENTS.where(_type_in(types) if types else false())
            if len(self._events_of) >= _MAX_TYPE_FILTERS:
                self._events_of.clear()  # a caller with ever new sets of types compiles again, no more
            prepared = self._events_of[key] = self._db.prepare(_limited(statement) if limited else statement)
        return prepared


def _limited(statement: Any) -> Any:
    """`statement` with at most ``:limit`` rows (with an OFFSET literal: see `_load_statement`)."""
    return statement.limit(bindparam("limit")).offset(literal_column("0"))


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
        self.implicit_at: Prepared = db.prepare(_IMPLICIT_AT)
        # A run names the same spool entry again (another call with the same output): one row is kept.
        dialect = postgresql if db.dialect == "postgresql" else sqlite
        self.spool_references = dialect.insert(_spool_references).on_conflict_do_nothing()
        self.insert_spool_references: Prepared = db.prepare(self.spool_references)
        self.name_entry: Prepared = db.prepare(NAME_ENTRY)


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
        clock: Time source for lease expiry and for the age of the spool entries a run names (default the
            system clock).
        check_schema: Verify the schema revision on first use.
    """

    def __init__(self, engine: Engine, *, clock: Clock | None = None, check_schema: bool = True) -> None:
        self._db = Database(engine, check_schema=check_schema)
        self._clock = clock or SystemClock()
        self._sql = _AppendStatements(self._db)
        self._reads = _ReadStatements(self._db)
        self._runs: dict[str, _RunCache] = {}
        """Per run, the run row's ``data`` as this store last wrote (or read) it, parsed, and its messages:
        an append whose locked row still holds exactly that text skips parsing it again; any other text
        (after a rolled-back append, another writer's, a run created anew) starts the run's cache over."""

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
        row = _run_row(run, checkpoint_turn=None, checkpoint_parent_turn=None)
        spooled: set[str] = set()
        event_row = _event_row(event, spooled)

        def work(connection: Connection) -> None:
            for event_id, place in _claimed_places([event]):
                if connection.execute(_IMPLICIT_AT, place).first() is not None:
                    raise DuplicateEventError(event_id)
            connection.execute(_INSERT_RUN, row)
            connection.execute(_INSERT_EVENTS, [event_row])
            connection.execute(_INSERT_LEASE, {"run_id": run_id, "owner": None, "token": 0, "expires_at": None})
            if spooled:
                connection.execute(NAME_ENTRY, named_entries(spooled, self._clock.now()))
                connection.execute(self._sql.spool_references, _spool_reference_rows(run_id, spooled))

        try:
            await self._db.write("create_run", work)
        except IntegrityError as exc:
            if await self._db.read("create_run", lambda c: c.execute(_RUN_EXISTS, {"run_id": run_id}).first()):
                raise AlreadyExistsError("run", run_id) from None
            raise await self._duplicate_error("create_run", [event], exc) from None
        self._remember(run_id, _RunCache(row["data"], run, MessageIndex()))
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
            placed = Event.placed_all(events, run_id=run_id, after_seq=last_seq)
            for event_id, place in _claimed_places(placed):
                if db.fetch_one(sql.implicit_at, place) is not None:
                    raise DuplicateEventError(event_id)
            cache = self._cached(run_id, run_data)
            # The checkpoint may reference this boundary's events: they commit in the same transaction. Should
            # it roll back, the run row will not hold the text `_project` leaves in the cache, which starts over.
            cache.messages.add_events(placed)
            update_run = self._project(cache, placed, chain) if placed else None
            # Every check passed: only the database itself can still refuse the writes (a recorded event id),
            # and that rolls the whole boundary back. On PostgreSQL they go out with the commit, in one round trip.
            spooled: set[str] = set()
            if checkpoint is not None:
                checkpoint_values = _checkpoint_row(checkpoint, cache.messages, replace=replace, spooled=spooled)
                db.execute(sql.replace_checkpoint if replace else sql.insert_checkpoint, checkpoint_values)
            if update_run is not None:
                db.execute_many(sql.insert_events, [_event_row(event, spooled) for event in placed])
                db.execute(*update_run)
            elif checkpoint is not None:
                db.execute(sql.update_run_checkpoint, chain)
            if spooled:
                # Named again: younger than any prune's cutoff that has not reached the entry yet (see NAME_ENTRY).
                db.execute_many(sql.name_entry, named_entries(spooled, self._clock.now()))
                db.execute_many(sql.insert_spool_references, _spool_reference_rows(run_id, spooled))
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

    async def read_events(
        self,
        run_id: str,
        *,
        after_seq: int = 0,
        limit: int | None = None,
        types: Collection[str] | None = None,
    ) -> Sequence[Event]:
        """Return a run's events with ``seq > after_seq``, in order, at most `limit` of them.

        With `types`, only the events of those types, filtered by the database (the others are not read).

        Raises:
            NotFoundError: No such run.
            ValueError: One of `types` is not an event type.
        """
        sql = self._reads
        statement = sql.events_read(None if types is None else event_types(types), limited=limit is not None)
        parameters = {"run_id": run_id, "after_seq": after_seq, "limit": limit}

        def work(db: Direct) -> list[tuple[Any, ...]] | None:
            rows = db.fetch_all(statement, parameters)
            if not rows and db.fetch_one(sql.run_exists, parameters) is None:
                return None
            return rows

        rows = await self._db.read_direct("read_events", work)
        if rows is None:
            raise NotFoundError("run", run_id)
        return decode_events(run_id, rows, sql.timestamp)

    async def load(self, run_id: str, *, at_turn: int | None = None) -> LoadedRun:
        """Return a run and its state: the nearest snapshot folded with the deltas after it.

        Only those checkpoint rows are read (their number depends on the snapshot interval, not on the run's
        length), and the events that carry the messages they reference (as many as the state's messages).

        Args:
            run_id: The run.
            at_turn: Rebuild the state as of this turn (fork, time travel); default the latest.

        Raises:
            NotFoundError: No such run.
            DatabaseError: A checkpoint references an event that carries no message (a damaged database).
        """
        sql = self._reads
        statement = sql.load_latest if at_turn is None else sql.load_at_turn
        parameters = {"run_id": run_id, "at_turn": at_turn}

        def work(db: Direct) -> tuple[str | None, list[_StoredRow], dict[int, Message]]:
            found = db.fetch_one(sql.get_run, parameters)
            if found is None:
                return None, [], {}
            rows = [_StoredRow.of(row, sql.timestamp) for row in db.fetch_all(statement, parameters)]
            wanted = {seq for row in rows for seq in stored_references(row.stored.messages)}
            if not wanted:
                return found[0], rows, {}
            bounds = {"run_id": run_id, "first": min(wanted), "last": max(wanted)}
            carried: dict[int, Message] = {}
            for seq, event_type, data, data_zlib in db.fetch_all(sql.message_events, bounds):
                if seq in wanted:
                    message = message_of(read_payload(event_type, unpack(data, data_zlib)))
                    if message is not None:
                        carried[seq] = message
            return found[0], rows, carried

        run_data, rows, carried = await self._db.read_direct("load", work)
        if run_data is None:
            raise NotFoundError("run", run_id)
        try:
            checkpoints = [row.checkpoint(run_id, carried) for row in rows]
        except LookupError as exc:
            raise DatabaseError(f"load found a broken checkpoint: {exc}", operation="load", retryable=False) from None
        run = Run.model_validate_json(run_data)
        if not run.status.is_terminal:
            # A resumed loop goes on with these very messages: its next checkpoints reference them at once.
            self._cached(run_id, run_data, run).messages.add_loaded(carried)
        return LoadedRun(
            run=run,
            state=fold_checkpoints(checkpoints),
            checkpoint_turn=checkpoints[-1].turn if checkpoints else None,
        )

    def _cached(self, run_id: str, run_data: str, run: Run | None = None) -> _RunCache:
        """The store's cache of a run whose row holds `run_data` (parsed unless `run` is given or cached)."""
        known = self._runs.get(run_id)
        if known is not None and known.data == run_data:
            return known
        cache = _RunCache(run_data, run or Run.model_validate_json(run_data), MessageIndex())
        self._remember(run_id, cache)
        return cache

    def _remember(self, run_id: str, cache: _RunCache) -> None:
        if len(self._runs) >= _MAX_RUNS:
            self._runs.clear()
        self._runs[run_id] = cache

    def _project(self, cache: _RunCache, placed: list[Event], chain: dict[str, Any]) -> tuple[Prepared, dict[str, Any]]:
        """The update of the run row after `placed`: its projection (`Run.apply`), ``last_seq`` and `chain`."""
        before = cache.run
        run = before.apply(*placed)
        data = run.model_dump_json()
        cache.data, cache.run = data, run
        if run.status.is_terminal:
            self._runs.pop(run.id, None)  # its messages will not be referenced again: no need to keep them
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
        places = {place: event_id for event_id in ids if (place := event_place(event_id)) is not None}

        def work(connection: Connection) -> set[str]:
            recorded = set(connection.execute(_EXPLICIT_IDS, {"ids": ids}).scalars())
            if places:
                rows = connection.execute(_IMPLICIT_PLACES, {"places": list(places)})
                recorded.update(places[run_id, seq] for run_id, seq in rows)
            return recorded

        existing = await self._db.read(operation, work)
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


def _event_row(event: Event, spooled: set[str]) -> dict[str, Any]:
    """The values of `_INSERT_EVENTS` for `event`: its columns, and its id to look for if stored without it.

    The spool entries it names are added to `spooled`.
    """
    values = event_columns(event, spooled)
    values["taken_id"] = event.id if values["id"] is None else None
    return values


def _claimed_places(events: Sequence[Event]) -> list[tuple[str, dict[str, Any]]]:
    """The explicit ids of `events` that have the form ``<run_id>.<seq>``, with the place each names.

    Such an id is a duplicate when the event at that place is stored without its id, which is that one.
    """
    claimed = []
    for event in events:
        if event.id != Event.id_for(event.run_id, event.seq) and (place := event_place(event.id)) is not None:
            claimed.append((event.id, {"run_id": place[0], "seq": place[1]}))
    return claimed


def _spool_reference_rows(run_id: str, spooled: set[str]) -> list[dict[str, Any]]:
    return [{"content_hash": content_hash, "run_id": run_id} for content_hash in sorted(spooled)]


def _checkpoint_row(
    checkpoint: Checkpoint, messages: MessageIndex, *, replace: bool, spooled: set[str]
) -> dict[str, Any]:
    """The values of the checkpoint's insert (or replace); the spool entries it names are added to `spooled`."""
    keys = ("b_run_id", "b_turn") if replace else ("run_id", "turn")
    document = checkpoint_document(checkpoint, messages)
    spooled.update(spool_hashes(document))
    data, data_zlib = pack(document)
    return {
        keys[0]: checkpoint.run_id,
        keys[1]: checkpoint.turn,
        "kind": checkpoint.kind,
        "parent_turn": checkpoint.parent_turn,
        "status": checkpoint.status.value,
        "created_at": checkpoint.created_at,
        "data": data,
        "data_zlib": data_zlib,
    }


@dataclass(frozen=True, slots=True)
class _StoredRow:
    """A checkpoint row as loaded: its columns and its document, messages not yet resolved."""

    turn: int
    kind: str
    parent_turn: int | None
    status: CheckpointStatus
    created_at: datetime
    stored: StoredDelta | StoredState

    @classmethod
    def of(cls, row: Sequence[Any], timestamp: Callable[[Any], datetime]) -> _StoredRow:
        """Parse a row of the load statement (the driver's values; `timestamp` processes ``created_at``)."""
        turn, kind, parent_turn, status, created_at, data, data_zlib = row
        document = unpack(data, data_zlib)
        stored = (
            StoredState.model_validate_json(document)
            if kind == "snapshot"
            else StoredDelta.model_validate_json(document)
        )
        return cls(turn, kind, parent_turn, CheckpointStatus(status), timestamp(created_at), stored)

    def checkpoint(self, run_id: str, carried: dict[int, Message]) -> Checkpoint:
        """The checkpoint, every message reference resolved from `carried` (``seq`` to message).

        Raises:
            LookupError: A reference is not in `carried`.
        """
        where = f"the checkpoint of run {run_id!r} at turn {self.turn}"
        fields = {**self.stored.__dict__, "messages": resolve_messages(self.stored.messages, carried, where)}
        envelope = {
            "run_id": run_id,
            "turn": self.turn,
            "parent_turn": self.parent_turn,
            "status": self.status,
            "created_at": self.created_at,
        }
        # Every part is validated already (the document, the events' messages, the columns): no validation of
        # the whole conversation again, which would cost a resume more than reading it.
        if self.kind == "snapshot":
            state = trusted(CheckpointState, {**fields, "turn": self.turn})
            return trusted(CheckpointSnapshot, {**envelope, "state": state})
        return trusted(CheckpointDelta, {**envelope, "delta": trusted(TurnDelta, fields)})


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
