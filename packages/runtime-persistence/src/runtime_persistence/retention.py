"""Retention: delete old finished runs, whole, and the spooled outputs nothing references any more.

`prune` deletes **delegation trees**, never parts of one: a run goes only when it and every run of its
tree (the runs sharing its ``root_run_id``: the root and every sub-agent under it) have a status in
``statuses`` (terminal ones only: never a queued, running, waiting or paused run) and were last updated
(their last event, for a finished run its end) before the cutoff, ``now - older_than``. So a parent never
loses the log of a sub-agent it still reports on, and a sub-agent never outlives its parent's log.

With a run go its events, checkpoints, lease, approvals, artifacts (valid and quarantined) and lineage
row. Trees are deleted in batches, one transaction per batch, so a batch is whole or absent even if the
process dies, and other writers wait at most one batch for the database.

**Spool entries** are content-addressed and shared between runs, so they are not deleted with a run. An
entry is *referenced* while a remaining run has written an event or checkpoint that holds its reference
URI (``db://spool/<sha256>``: `ToolResult.spool` in ``tool.finished`` events, the disclosure line of a
truncated tool result in checkpoints), or an artifact holds it. The run store records the entries a run's
events and checkpoints name in ``spool_references`` as it writes them (their documents may be compressed;
a checkpoint replaced later within its turn leaves its rows, so an entry stays referenced while the run
exists), so only those rows and the artifacts, whose JSON is plain text, are read. After the runs,
`prune` deletes the entries older than the cutoff that nothing references: the cutoff also spares
outputs spooled by a turn still in progress, whose reference is committed only at the turn's end. This
step is one transaction, lookups and deletes together (on SQLite other writers wait for it; on PostgreSQL
only writers naming an entry it has locked do).

An entry's age (``created_at``) counts from the last write that stored or named it: the spool store's
insert of equal content, and every write of the run and artifact stores naming it, move it forward in
their own transactions (`runtime_persistence.spool.NAME_ENTRY`). The delete checks the age again, row by
row, so a PostgreSQL writer that names an entry after the lookup either committed before the delete
reaches the row (which is then too young) or holds the row until it commits (the delete waits, then
finds it too young). Candidates are locked in hash order, the order writers name entries in. An entry the
prune locked first is deleted: a writer naming it from an old copy (a fork or cached result of a run being
pruned) then records a reference to content that is gone. Ages come from the writers' clocks and the cutoff
from the prune's: skew beyond `older_than` defeats the refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, NonNegativeInt
from sqlalchemy import Engine, bindparam, case, delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from runtime_core.clock import Clock, SystemClock
from runtime_core.runs import RunStatus
from runtime_persistence._database import SQLITE_BEGIN_KEY, _database_error
from runtime_persistence._revisions import outdated_error, schema_revisions
from runtime_persistence.schema import SCHEMA_REVISION, metadata
from runtime_persistence.spool import SPOOL_URI_PREFIX, spool_hashes

__all__ = ["TERMINAL_STATUSES", "PruneReport", "prune"]

TERMINAL_STATUSES: Final = frozenset(status for status in RunStatus if status.is_terminal)
"""The statuses `prune` may delete: ``completed``, ``failed`` and ``cancelled`` (the default)."""

_runs = metadata.tables["runs"]
_events = metadata.tables["events"]
_checkpoints = metadata.tables["checkpoints"]
_leases = metadata.tables["leases"]
_approvals = metadata.tables["approvals"]
_artifacts = metadata.tables["artifacts"]
_lineage = metadata.tables["lineage"]
_spool = metadata.tables["spool"]
_spool_references = metadata.tables["spool_references"]

# (report field, table, column holding the run id), children of ``runs`` first.
_RUN_TABLES: Final = (
    ("events", _events, _events.c.run_id),
    ("spool_references", _spool_references, _spool_references.c.run_id),
    ("checkpoints", _checkpoints, _checkpoints.c.run_id),
    ("leases", _leases, _leases.c.run_id),
    ("approvals", _approvals, _approvals.c.run_id),
    ("artifacts", _artifacts, _artifacts.c.run_id),
    ("lineage", _lineage, _lineage.c.id),
    ("runs", _runs, _runs.c.id),
)
_CHUNK: Final = 500  # ids per IN list: far below every database's limit on bound parameters
_VACUUM_TABLES: Final = "runs, events, checkpoints, leases, approvals, artifacts, lineage, spool, spool_references"


class PruneReport(BaseModel):
    """What `prune` deleted (or, in a dry run, would delete).

    Attributes:
        dry_run: Nothing was deleted: the counts say what would be.
        cutoff: Runs last updated, and spool entries last stored or named, before this instant were candidates.
        run_ids: The runs deleted, in the order of their trees.
        runs: Number of runs deleted.
        events: Events of those runs.
        spool_references: The rows recording which spool entries those runs name.
        checkpoints: Checkpoint rows of those runs.
        leases: Lease rows of those runs.
        approvals: Approvals of those runs.
        artifacts: Artifacts of those runs (valid and quarantined).
        lineage: Lineage rows of those runs.
        spool: Spool entries no remaining run references.
        vacuumed: The database was compacted afterwards (``vacuum=True``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    dry_run: bool
    cutoff: AwareDatetime
    run_ids: tuple[str, ...] = ()
    runs: NonNegativeInt = 0
    events: NonNegativeInt = 0
    spool_references: NonNegativeInt = 0
    checkpoints: NonNegativeInt = 0
    leases: NonNegativeInt = 0
    approvals: NonNegativeInt = 0
    artifacts: NonNegativeInt = 0
    lineage: NonNegativeInt = 0
    spool: NonNegativeInt = 0
    vacuumed: bool = False


async def prune(
    engine: Engine,
    *,
    older_than: timedelta,
    statuses: Collection[RunStatus] = TERMINAL_STATUSES,
    dry_run: bool = False,
    clock: Clock | None = None,
    batch_size: int = 100,
    spool: bool = True,
    vacuum: bool = False,
) -> PruneReport:
    """Delete finished runs last updated more than `older_than` ago, and unreferenced spool entries.

    The work runs in a worker thread (it may scan large tables), on its own connections; each batch is one
    transaction. See the module documentation for what is deleted and why.

    Args:
        engine: The database (migrated with `upgrade`).
        older_than: Age a run must have reached since its last update (and a spool entry since it was last
            stored or named) to be deleted. Keep it well above the longest turn and the skew between the
            writers' clocks and `clock`: a spool entry is judged by the writer's clock that last named it.
        statuses: The statuses to delete; terminal statuses only (default all of them, `TERMINAL_STATUSES`).
        dry_run: Count what would be deleted, delete nothing.
        clock: Time source of the cutoff (default the system clock).
        batch_size: Delegation trees per transaction.
        spool: Also delete spool entries that no remaining event, checkpoint or artifact references.
        vacuum: Afterwards, give the space back to the file system (SQLite: ``PRAGMA wal_checkpoint(TRUNCATE)``
            and ``VACUUM``, which rewrites the file and needs as much free disk; PostgreSQL:
            ``VACUUM (ANALYZE)`` of the runtime's tables). Ignored in a dry run.

    Returns:
        What was deleted, or would be in a dry run.

    Raises:
        ValueError: `older_than` is negative, `batch_size` is not positive, or `statuses` is empty or names a
            status that is not terminal.
        SchemaOutdatedError: The schema is not at the revision this version needs.
        DatabaseError: The database failed; batches committed before stay deleted.
    """
    if older_than < timedelta(0):
        raise ValueError(f"older_than must not be negative, got {older_than}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    wanted = frozenset(RunStatus(status) for status in statuses)
    if not wanted or not wanted <= TERMINAL_STATUSES:
        unfinished = sorted(status.value for status in wanted - TERMINAL_STATUSES)
        raise ValueError(
            f"prune deletes finished runs only (statuses among {sorted(s.value for s in TERMINAL_STATUSES)}), "
            f"got {unfinished or 'no status'}"
        )
    cutoff = (clock or SystemClock()).now() - older_than
    pruner = _Pruner(engine, cutoff=cutoff, statuses=wanted, dry_run=dry_run, batch_size=batch_size)
    return await asyncio.to_thread(pruner.run, spool=spool, vacuum=vacuum and not dry_run)


@dataclass
class _Pruner:
    engine: Engine
    cutoff: datetime
    statuses: frozenset[RunStatus]
    dry_run: bool
    batch_size: int
    counts: dict[str, int] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)

    def run(self, *, spool: bool, vacuum: bool) -> PruneReport:
        with self._transaction("prune") as connection:
            revisions = schema_revisions(connection)
        if revisions != [SCHEMA_REVISION]:
            raise outdated_error(self.engine, revisions)
        after = ""
        while True:
            with self._transaction("prune_runs") as connection:
                roots = self._next_trees(connection, after)
                if not roots:
                    break
                self._prune_trees(connection, roots)
            after = roots[-1]
        if spool:
            with self._transaction("prune_spool") as connection:
                self._prune_spool(connection)
        if vacuum:
            self._vacuum()
        return PruneReport(
            dry_run=self.dry_run,
            cutoff=self.cutoff,
            run_ids=tuple(self.run_ids),
            vacuumed=vacuum,
            **self.counts,
        )

    @contextmanager
    def _transaction(self, operation: str) -> Iterator[Connection]:
        """One transaction; a write on SQLite takes the write lock at ``BEGIN`` (see `runtime_persistence.engine`)."""
        try:
            with self.engine.connect() as connection:
                if self.engine.dialect.name == "sqlite" and not self.dry_run:
                    connection.info[SQLITE_BEGIN_KEY] = "BEGIN IMMEDIATE"
                with connection.begin():
                    yield connection
        except DBAPIError as exc:
            raise _database_error(operation, exc) from exc

    def _next_trees(self, connection: Connection, after: str) -> list[str]:
        """The next `batch_size` roots after `after` whose every run may go (keyset pagination)."""
        keep = case(
            (_runs.c.status.in_([s.value for s in self.statuses]) & (_runs.c.updated_at < self.cutoff), 0), else_=1
        )
        query = (
            select(_runs.c.root_run_id)
            .where(_runs.c.root_run_id > after)
            .group_by(_runs.c.root_run_id)
            .having(func.sum(keep) == 0)
            .order_by(_runs.c.root_run_id)
            .limit(self.batch_size)
        )
        return list(connection.execute(query).scalars())

    def _prune_trees(self, connection: Connection, roots: Sequence[str]) -> None:
        run_ids: list[str] = []
        for chunk in _chunks(roots):
            query = select(_runs.c.id).where(_runs.c.root_run_id.in_(chunk)).order_by(_runs.c.root_run_id, _runs.c.id)
            run_ids.extend(connection.execute(query).scalars())
        for name, table, column in _RUN_TABLES:
            for chunk in _chunks(run_ids):
                if self.dry_run:
                    counted = connection.execute(select(func.count()).select_from(table).where(column.in_(chunk)))
                    self._add(name, counted.scalar_one())
                else:
                    self._add(name, connection.execute(delete(table).where(column.in_(chunk))).rowcount)
        self.run_ids.extend(run_ids)

    def _prune_spool(self, connection: Connection) -> None:
        old = select(_spool.c.content_hash).where(_spool.c.created_at < self.cutoff)
        candidates = set(connection.execute(old).scalars())
        if not candidates:
            return
        # In a dry run the runs to prune are still there: what they reference does not count.
        pruned = set(self.run_ids) if self.dry_run else set()
        referenced: set[str] = set()
        # The run logs' references: looked up by hash in the rows the run store wrote.
        for chunk in _chunks(sorted(candidates)):
            named = select(_spool_references.c.content_hash, _spool_references.c.run_id).where(
                _spool_references.c.content_hash.in_(chunk)
            )
            referenced.update(content_hash for content_hash, owner in connection.execute(named) if owner not in pruned)
        # The artifacts' references: their JSON is plain text, searched where it names the spool at all.
        artifacts = (
            select(_artifacts.c.run_id, _artifacts.c.data)
            .where(_artifacts.c.data.contains(SPOOL_URI_PREFIX, autoescape=True))
            .execution_options(yield_per=1000)  # streamed: every artifact may name the spool
        )
        for owner, text in connection.execute(artifacts):
            if owner not in pruned:
                referenced.update(spool_hashes(text))
        unreferenced = sorted(candidates - referenced)
        if self.dry_run:
            self._add("spool", len(unreferenced))
            return
        # Still old when the delete reaches the row: a writer naming the entry since the lookup made it younger,
        # and on PostgreSQL a writer still in its transaction holds the row until it commits (see NAME_ENTRY).
        still_old = (_spool.c.content_hash.in_(bindparam("hashes", expanding=True)), _spool.c.created_at < self.cutoff)
        # PostgreSQL: the rows are locked in hash order first, the order writers lock them in, so that a writer
        # naming several entries and the delete never wait for each other both ways (SQLite: one writer at a time).
        lock = (
            select(_spool.c.content_hash).where(*still_old).order_by(_spool.c.content_hash).with_for_update()
            if connection.dialect.name == "postgresql"
            else None
        )
        statement = delete(_spool).where(*still_old)
        for chunk in _chunks(unreferenced):
            if lock is not None:
                connection.execute(lock, {"hashes": chunk})
            self._add("spool", connection.execute(statement, {"hashes": chunk}).rowcount)

    def _vacuum(self) -> None:
        raw = self.engine.raw_connection()
        try:
            driver: Any = raw.driver_connection
            if self.engine.dialect.name == "sqlite":
                # The sqlite3 connection is in autocommit mode (see runtime_persistence.engine): no transaction.
                driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                driver.execute("VACUUM")
            else:
                driver.autocommit = True  # VACUUM cannot run inside a transaction
                try:
                    driver.execute(f"VACUUM (ANALYZE) {_VACUUM_TABLES}")
                finally:
                    driver.autocommit = False
        except self.engine.dialect.loaded_dbapi.Error as exc:
            wrapped = DBAPIError.instance(None, None, exc, self.engine.dialect.loaded_dbapi.Error)
            if not isinstance(wrapped, DBAPIError):  # pragma: no cover - instance() wraps driver errors
                raise
            raise _database_error("vacuum", wrapped) from exc
        finally:
            raw.close()

    def _add(self, name: str, count: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + count


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]
