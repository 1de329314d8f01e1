"""Retention: `prune` deletes old finished delegation trees whole, and spool entries nothing references."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, text

from runtime_core import (
    AgentSpec,
    Approval,
    ArtifactEnvelope,
    ArtifactType,
    EventDraft,
    ManualClock,
    RunCreatedPayload,
    RunStatus,
    ToolCall,
)
from runtime_core.checkpoints import CheckpointDelta, TurnDelta
from runtime_core.events import (
    ApprovalRequestedPayload,
    EventPayload,
    RunCancelledPayload,
    RunCompletedPayload,
    RunFailedPayload,
    RunPausedPayload,
    RunStartedPayload,
    ToolFinishedPayload,
)
from runtime_core.messages import ToolResultMessage
from runtime_core.tools import ToolResult
from runtime_persistence import (
    SPOOL_URI_PREFIX,
    TERMINAL_STATUSES,
    LineageRow,
    SchemaOutdatedError,
    SqlApprovalStore,
    SqlArtifactStore,
    SqlRunStore,
    SqlSpoolStore,
    create_engine,
    metadata,
    prune,
)
from tests.persistence.support import T0, TTL, migrated_engine, new_id, new_run, spooled_result

NOW = T0 + timedelta(days=30)
OLD = T0  # 30 days before NOW
RECENT = NOW - timedelta(days=1)
WEEK = timedelta(days=7)
RUN_TABLES = ("runs", "events", "spool_references", "checkpoints", "leases", "approvals", "artifacts", "lineage")


@dataclass
class World:
    """Runs, approvals, artifacts, lineage and spool entries in known states and ages."""

    engine: Engine
    runs: dict[str, str] = field(default_factory=dict)  # name -> run id
    spool: dict[str, str] = field(default_factory=dict)  # name -> content hash

    async def build(self) -> None:
        # Each run is written at its time: the spool entries it names are as old as its write (NAME_ENTRY).
        stores = {at: SqlRunStore(self.engine, clock=ManualClock(at)) for at in (OLD, RECENT)}
        approvals = SqlApprovalStore(self.engine)
        artifacts = SqlArtifactStore(self.engine)
        try:
            for name, created in (("a", OLD), ("b", OLD), ("c", OLD), ("d", RECENT), ("e", OLD), ("f", OLD)):
                await self._spool(name, created)
            # Old finished runs: they go.
            await self._run(stores, "old_completed", OLD, RunCompletedPayload(summary="done"), spool="a")
            await self._run(stores, "old_failed", OLD, RunFailedPayload(reason="no_completion", message="gave up"))
            await self._run(stores, "old_cancelled", OLD, RunCancelledPayload(), spool="c")
            await self._run(
                stores, "old_child", OLD, RunCompletedPayload(summary="sub"), parent="old_completed", spool="e"
            )
            # Recent, or not finished: they stay.
            await self._run(stores, "recent_completed", RECENT, RunCompletedPayload(summary="done"), spool="c")
            await self._run(stores, "old_running", OLD, None)
            await self._run(stores, "old_paused", OLD, RunPausedPayload())
            await self._run(stores, "old_waiting", OLD, "waiting", spool_in_checkpoint="f")
            # A finished root whose sub-agent still runs: the whole tree stays.
            await self._run(stores, "old_root_of_running", OLD, RunCompletedPayload(summary="done"))
            await self._run(stores, "running_child", OLD, None, parent="old_root_of_running")
            for name, run_id in self.runs.items():
                await approvals.create(
                    Approval(
                        id=f"apr_{run_id}",
                        run_id=run_id,
                        tool_call=ToolCall(id=f"call_{name}", name="shell:run", arguments={}),
                        reason="needs a human",
                        requested_at=OLD,
                    )
                )
                envelope = ArtifactEnvelope(
                    id=f"art_{run_id}", type=ArtifactType.REPORT_CARD, title=name, run_id=run_id, created_at=OLD
                )
                await artifacts.put(envelope)
                await artifacts.submit({"id": f"bad_{run_id}", "run_id": run_id})  # quarantined, of the run too
            with self.engine.begin() as connection:
                connection.execute(
                    insert(LineageRow.__table__),
                    [
                        {
                            "id": run_id,
                            "parent_id": None,
                            "role": "agent",
                            "status": "completed",
                            "depth": 0,
                            "created_at": OLD,
                            "usage": "{}",
                            "aggregated_usage": "{}",
                        }
                        for run_id in self.runs.values()
                    ],
                )
        finally:
            await artifacts.close()
            await approvals.close()
            for store in stores.values():
                await store.close()

    async def _spool(self, name: str, created: Any) -> None:
        store = SqlSpoolStore(self.engine, clock=ManualClock(created))
        try:
            reference = await store.put(f"output {name}\n".encode() * 300)
        finally:
            await store.close()
        self.spool[name] = reference.content_hash

    async def _run(
        self,
        stores: dict[Any, SqlRunStore],
        name: str,
        at: Any,
        end: EventPayload | str | None,
        *,
        parent: str | None = None,
        spool: str | None = None,
        spool_in_checkpoint: str | None = None,
    ) -> None:
        store = stores[at]
        run_id = new_id(name)
        parent_id = self.runs[parent] if parent else None
        created = RunCreatedPayload(
            agent=AgentSpec(name=name, model="scripted:none"),
            task="retention",
            parent_run_id=parent_id,
            root_run_id=parent_id,
            depth=1 if parent else 0,
        )
        await store.create_run(run_id, _draft(created, at))
        lease = await store.acquire_lease(run_id, "writer", ttl=TTL)
        events = [_draft(RunStartedPayload(worker="writer"), at)]
        if spool is not None:
            events.append(_draft(ToolFinishedPayload(result=self._result(spool)), at, turn=1))
        if end == "waiting":
            call = ToolCall(id="call_wait", name="shell:run", arguments={})
            events.append(_draft(ApprovalRequestedPayload(approval_id="apr_wait", call=call, reason="ask"), at, turn=1))
        elif end is not None:
            assert not isinstance(end, str)
            events.append(_draft(end, at, turn=1))
        checkpoint = None
        if spool_in_checkpoint is not None:
            # The turn is open: its tool result is only in the checkpoint row so far, as the model saw it.
            result = self._result(spool_in_checkpoint)
            message = ToolResultMessage(
                tool_call_id=result.tool_call_id, tool_name=result.tool_name, content=result.content
            )
            checkpoint = CheckpointDelta(run_id=run_id, turn=1, created_at=at, delta=TurnDelta(messages=(message,)))
        await store.append(lease, events, checkpoint)
        self.runs[name] = run_id

    def _result(self, name: str) -> ToolResult:
        # A view long enough to be stored compressed: retention cannot find the URI in the document's text.
        view = f"output {name}\n" * 100
        return spooled_result(self.spool[name], view, call_id=f"call_{name}", tool_name="shell:run")

    def run_counts(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            return {
                table: connection.execute(select(func.count()).select_from(metadata.tables[table])).scalar_one()
                for table in (*RUN_TABLES, "spool")
            }

    def remaining_runs(self) -> set[str]:
        names = {run_id: name for name, run_id in self.runs.items()}
        with self.engine.connect() as connection:
            return {names[run_id] for run_id in connection.execute(select(metadata.tables["runs"].c.id)).scalars()}

    def remaining_spool(self) -> set[str]:
        names = {digest: name for name, digest in self.spool.items()}
        with self.engine.connect() as connection:
            hashes = connection.execute(select(metadata.tables["spool"].c.content_hash)).scalars()
            return {names[digest] for digest in hashes}


def _draft(payload: EventPayload, at: Any, *, turn: int = 0) -> EventDraft:
    return EventDraft.of(payload, id=new_id("evt"), ts=at, agent_id="agent", turn=turn)


def _world(engine: Engine) -> World:
    world = World(engine)
    asyncio.run(world.build())
    return world


PRUNED = {"old_completed", "old_child", "old_failed", "old_cancelled"}


def test_old_finished_trees_go_and_everything_else_stays(engine: Engine) -> None:
    world = _world(engine)
    before = world.run_counts()
    report = asyncio.run(prune(engine, older_than=WEEK, clock=ManualClock(NOW)))
    assert report.cutoff == NOW - WEEK
    assert not report.dry_run
    assert world.remaining_runs() == set(world.runs) - PRUNED
    assert {name for name, run_id in world.runs.items() if run_id in report.run_ids} == PRUNED
    assert len(report.run_ids) == report.runs == 4
    # Each pruned run had: run.created, run.started and an end (plus a tool.finished for three of them).
    assert report.events == 4 * 3 + 3
    assert report.spool_references == 3, "the spool entries those three tool results name"
    assert (report.leases, report.approvals, report.artifacts, report.lineage) == (4, 4, 8, 4)
    assert report.checkpoints == 0
    after = world.run_counts()
    for table in RUN_TABLES:
        assert before[table] - after[table] == getattr(report, table), table
    # a: only an old pruned run referenced it. b: old, never referenced. c: a recent run still does.
    # d: too recent to judge. e: referenced by the pruned sub-agent only. f: only in a waiting run's open turn.
    assert world.remaining_spool() == {"c", "d", "f"}
    assert report.spool == 3
    with engine.connect() as connection:
        leftover = connection.execute(
            select(func.count())
            .select_from(metadata.tables["events"])
            .where(metadata.tables["events"].c.run_id.in_(report.run_ids))
        ).scalar_one()
    assert leftover == 0


def test_a_dry_run_counts_exactly_what_a_prune_deletes_and_deletes_nothing(engine: Engine) -> None:
    world = _world(engine)
    before = world.run_counts()
    dry = asyncio.run(prune(engine, older_than=WEEK, clock=ManualClock(NOW), dry_run=True, vacuum=True))
    assert dry.dry_run
    assert not dry.vacuumed
    assert world.run_counts() == before
    real = asyncio.run(prune(engine, older_than=WEEK, clock=ManualClock(NOW)))
    assert dry.model_dump(exclude={"dry_run"}) == real.model_dump(exclude={"dry_run"})
    again = asyncio.run(prune(engine, older_than=WEEK, clock=ManualClock(NOW)))
    assert (again.runs, again.events, again.spool, again.run_ids) == (0, 0, 0, ())


def test_small_batches_prune_the_same(engine: Engine) -> None:
    world = _world(engine)
    report = asyncio.run(prune(engine, older_than=WEEK, clock=ManualClock(NOW), batch_size=1))
    assert world.remaining_runs() == set(world.runs) - PRUNED
    assert report.runs == 4
    assert report.events == 15


def test_the_age_is_judged_from_the_last_update(engine: Engine) -> None:
    world = _world(engine)
    report = asyncio.run(prune(engine, older_than=timedelta(days=60), clock=ManualClock(NOW)))
    assert report.runs == 0
    assert report.spool == 0
    everything = asyncio.run(prune(engine, older_than=timedelta(0), clock=ManualClock(NOW)))
    assert world.remaining_runs() == {
        "old_running",
        "old_paused",
        "old_waiting",
        "old_root_of_running",
        "running_child",
    }
    assert everything.runs == 5
    assert world.remaining_spool() == {"f"}


def test_only_the_statuses_asked_for_go(engine: Engine) -> None:
    world = _world(engine)
    report = asyncio.run(prune(engine, older_than=WEEK, clock=ManualClock(NOW), statuses={RunStatus.FAILED}))
    assert world.remaining_runs() == set(world.runs) - {"old_failed"}
    assert report.runs == 1
    # old_completed's tree also needs "completed": its sub-agent and spool output stay.
    assert world.remaining_spool() >= {"a", "e"}


@pytest.mark.parametrize(
    "options",
    [
        {"statuses": {RunStatus.RUNNING}},
        {"statuses": {RunStatus.COMPLETED, RunStatus.WAITING_APPROVAL}},
        {"statuses": set()},
        {"older_than": timedelta(seconds=-1)},
        {"batch_size": 0},
    ],
    ids=["running", "waiting", "none", "negative-age", "no-batch"],
)
def test_misuse_is_refused_before_anything_happens(engine: Engine, options: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"older_than": WEEK, **options}
    with pytest.raises(ValueError, match=r"must|finished runs only"):
        asyncio.run(prune(engine, **arguments))


def test_the_default_statuses_are_the_terminal_ones() -> None:
    assert {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED} == TERMINAL_STATUSES


def test_vacuum_gives_the_space_back(engine: Engine) -> None:
    _world(engine)
    report = asyncio.run(prune(engine, older_than=WEEK, clock=ManualClock(NOW), vacuum=True))
    assert report.vacuumed
    assert report.runs == 4


def test_prune_checks_the_schema(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(SchemaOutdatedError):
            asyncio.run(prune(engine, older_than=WEEK))
    finally:
        engine.dispose()


def test_a_spool_entry_is_referenced_by_its_uri_anywhere_a_run_keeps_data(engine: Engine) -> None:
    async def scenario() -> tuple[str, str]:
        spool = SqlSpoolStore(engine, clock=ManualClock(OLD))
        artifacts = SqlArtifactStore(engine)
        try:
            kept = await spool.put(b"kept by an artifact\n" * 300)
            dropped = await spool.put(b"mentioned without its uri\n" * 300)
            await artifacts.put(
                ArtifactEnvelope(
                    id="art_standalone",
                    type=ArtifactType.REPORT_CARD,
                    title="the full log",
                    payload={"log": kept.uri, "hash_only": dropped.content_hash},
                    created_at=OLD,
                )
            )
        finally:
            await artifacts.close()
            await spool.close()
        return kept.content_hash, dropped.content_hash

    kept, dropped = asyncio.run(scenario())
    report = asyncio.run(prune(engine, older_than=WEEK, clock=ManualClock(NOW)))
    assert report.spool == 1
    with engine.connect() as connection:
        remaining = set(connection.execute(select(metadata.tables["spool"].c.content_hash)).scalars())
    assert remaining == {kept}
    assert dropped == hashlib.sha256(b"mentioned without its uri\n" * 300).hexdigest()


def _spool_ages(engine: Engine) -> dict[str, Any]:
    spool = metadata.tables["spool"]
    with engine.connect() as connection:
        return {
            digest: created for digest, created in connection.execute(select(spool.c.content_hash, spool.c.created_at))
        }


def test_a_write_naming_an_entry_makes_it_young_again_and_never_older(engine: Engine) -> None:
    async def scenario() -> tuple[str, str, str]:
        spool = SqlSpoolStore(engine, clock=ManualClock(OLD))
        old_spool = SqlSpoolStore(engine, clock=ManualClock(OLD - WEEK))
        old_store = SqlRunStore(engine, clock=ManualClock(OLD - WEEK))
        store = SqlRunStore(engine, clock=ManualClock(RECENT))
        artifacts = SqlArtifactStore(engine, clock=ManualClock(RECENT))
        try:
            by_run, by_artifact, by_old_writer = [
                (await spool.put(f"entry {name}\n".encode() * 300)).content_hash
                for name in ("run", "artifact", "old writer")
            ]
            # A run names an entry without spooling it again (a fork's snapshot, a cached tool result).
            _, lease = await new_run(store)
            named = _draft(ToolFinishedPayload(result=spooled_result(by_run, "view", call_id="call_1")), RECENT)
            await store.append(lease, [named])
            await artifacts.put(
                ArtifactEnvelope(
                    id="art_log",
                    type=ArtifactType.REPORT_CARD,
                    title="the full log",
                    payload={"log": f"{SPOOL_URI_PREFIX}{by_artifact}"},
                    created_at=RECENT,
                )
            )
            # A writer whose clock is behind the entry's age leaves it as it is, and so does storing it again.
            _, old_lease = await new_run(old_store)
            await old_store.append(
                old_lease,
                [_draft(ToolFinishedPayload(result=spooled_result(by_old_writer, "view", call_id="call_2")), OLD)],
            )
            await old_spool.put(b"entry run\n" * 300)
        finally:
            await artifacts.close()
            await store.close()
            await old_store.close()
            await old_spool.close()
            await spool.close()
        return by_run, by_artifact, by_old_writer

    by_run, by_artifact, by_old_writer = asyncio.run(scenario())
    ages = _spool_ages(engine)
    assert (ages[by_run], ages[by_artifact], ages[by_old_writer]) == (RECENT, RECENT, OLD)


def test_a_prune_racing_a_writer_that_names_old_entries_keeps_them(postgres_url: str) -> None:
    """PostgreSQL: the prune looks references up before a writer commits them, then deletes.

    The writer names three entries in hash order: the first and the last old and unreferenced (as in a
    fork's snapshot), the middle one young. A third transaction holds the middle one's row, so the writer
    stops there, holding the first; the prune starts then, finds no reference and goes for the old two.
    Each must wait for the other where they meet, never both ways (the last entry is stored first, so that
    a delete in the table's order would take it before the first), and both old entries survive with the
    writer's references.
    """
    with migrated_engine(postgres_url) as engine:
        asyncio.run(_race_prune_with_a_writer(engine))


async def _race_prune_with_a_writer(engine: Engine) -> None:
    contents = [f"output {n}\n".encode() * 300 for n in range(3)]
    first, middle, last = sorted(hashlib.sha256(content).hexdigest() for content in contents)
    by_hash = {hashlib.sha256(content).hexdigest(): content for content in contents}
    old_spool = SqlSpoolStore(engine, clock=ManualClock(OLD))
    young_spool = SqlSpoolStore(engine, clock=ManualClock(RECENT - timedelta(days=1)))  # older than the writer
    store = SqlRunStore(engine, clock=ManualClock(RECENT))
    try:
        for spool, digest in ((old_spool, last), (old_spool, first), (young_spool, middle)):
            await spool.put(by_hash[digest])
        run_id, lease = await new_run(store)
        named = [
            _draft(ToolFinishedPayload(result=spooled_result(digest, "view", call_id=f"call_{digest}")), RECENT)
            for digest in (first, middle, last)
        ]
        with engine.connect() as blocker, engine.connect() as monitor:
            blocker.begin()
            spool_table = metadata.tables["spool"]
            blocker.execute(
                select(spool_table.c.content_hash).where(spool_table.c.content_hash == middle).with_for_update()
            )
            writer = asyncio.create_task(store.append(lease, named))
            await _until(lambda: _waiting(monitor) == 1 or writer.done(), "the writer to wait for the blocker")
            assert not writer.done(), "the writer did not lock the middle entry's row"
            pruner = asyncio.create_task(prune(engine, older_than=WEEK, clock=ManualClock(NOW)))
            # The prune waits for the writer's row, or (were the writer not to hold the first entry) ends.
            await _until(lambda: _waiting(monitor) == 2 or pruner.done(), "the prune to reach the entries")
            blocker.rollback()
            await writer
            report = await pruner
    finally:
        await store.close()
        await young_spool.close()
        await old_spool.close()
    assert report.spool == 0
    assert set(_spool_ages(engine)) == {first, middle, last}
    references = metadata.tables["spool_references"]
    with engine.connect() as connection:
        named_rows = connection.execute(select(references.c.content_hash, references.c.run_id)).all()
    assert sorted(tuple(row) for row in named_rows) == [(first, run_id), (middle, run_id), (last, run_id)]


def _waiting(monitor: Any) -> int:
    """Backends of this database waiting for a lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    count: int = monitor.execute(query).scalar_one()
    monitor.rollback()  # a new snapshot for the next poll
    return count


async def _until(condition: Any, what: str, timeout_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
