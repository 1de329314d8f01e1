"""The SQL artifact store: typed envelopes validated on the way in, invalid ones quarantined; both databases."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import Engine, insert, inspect, select

from runtime_core import (
    AlreadyExistsError,
    ArtifactEnvelope,
    ArtifactStore,
    ArtifactType,
    EventDraft,
    InMemoryArtifactStore,
    ManualClock,
    NotFoundError,
    SequentialIds,
    StoreError,
)
from runtime_core.events import EventType
from runtime_persistence import (
    DEFAULT_PAYLOAD_SCHEMAS,
    QUARANTINE_ERROR_CODE,
    ArtifactQuarantinedError,
    ArtifactRow,
    ArtifactStatus,
    QuarantinedArtifact,
    SqlArtifactStore,
    SqlRunStore,
    create_engine,
    downgrade,
    upgrade,
)
from tests.persistence.support import T0, backend_url, migrated_engine, new_id, new_run

STORES = ("memory", "sqlite", "postgresql")


def _run(scenario: Callable[[SqlArtifactStore], Awaitable[None]], engine: Engine, **options: Any) -> None:
    async def main() -> None:
        store = SqlArtifactStore(engine, ids=SequentialIds(), clock=ManualClock(T0), **options)
        try:
            await scenario(store)
        finally:
            await store.close()

    asyncio.run(main())


def artifact(
    kind: ArtifactType = ArtifactType.PLAN_CARD,
    *,
    run_id: str | None = "run_a",
    seconds: int = 0,
    **fields: Any,
) -> ArtifactEnvelope:
    values: dict[str, Any] = {
        "id": new_id("art"),
        "type": kind,
        "title": f"a {kind.value}",
        "payload": {"steps": ["read", "write"]},
        "run_id": run_id,
        "agent_id": "planner",
        "created_at": T0 + timedelta(seconds=seconds),
        **fields,
    }
    return ArtifactEnvelope(**values)


# The protocol, on the in-memory reference store and on both databases.


@pytest.fixture(params=STORES)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], ArtifactStore]]:
    if request.param == "memory":
        yield InMemoryArtifactStore
        return
    url = backend_url(request, tmp_path)
    with migrated_engine(url) as engine:
        yield lambda: SqlArtifactStore(engine)


def test_every_store_keeps_artifacts_by_id_and_lists_a_runs_in_creation_order(
    any_store: Callable[[], ArtifactStore],
) -> None:
    async def scenario() -> None:
        store = any_store()
        first, second = artifact(seconds=1), artifact(ArtifactType.REPORT_CARD, seconds=2)
        other = artifact(run_id="run_b")
        for item in (first, second, other):
            await store.put(item)
        assert await store.get(first.id) == first
        assert list(await store.list("run_a")) == [first, second]
        assert list(await store.list("run_b")) == [other]
        assert list(await store.list("run_c")) == []
        with pytest.raises(AlreadyExistsError) as taken:
            await store.put(first)
        assert (taken.value.resource, taken.value.key) == ("artifact", first.id)
        with pytest.raises(NotFoundError):
            await store.get("art_missing")
        if isinstance(store, SqlArtifactStore):
            await store.close()

    asyncio.run(scenario())


def test_the_sql_store_satisfies_the_protocol(engine: Engine) -> None:
    assert isinstance(SqlArtifactStore(engine), ArtifactStore)


def test_a_stored_artifact_round_trips_exactly(engine: Engine) -> None:
    async def scenario(store: SqlArtifactStore) -> None:
        rich = artifact(
            ArtifactType.DIFF_CARD,
            payload={"files": [{"path": "a.py", "added": 3}], "note": "ünïcode ✓", "ratio": 0.5, "none": None},
            render_hints={"collapsed": True},
            task_node_id="node_7",
            schema_version=2,
        )
        assert await store.submit(rich) == rich
        assert await store.get(rich.id) == rich
        assert list(await store.list_quarantined()) == []

    _run(scenario, engine)
    with engine.connect() as connection:
        row = connection.execute(select(ArtifactRow.status, ArtifactRow.type, ArtifactRow.schema_version)).one()
    assert tuple(row) == ("valid", "DiffCard", 2)


# Quarantine.


def test_an_envelope_built_without_validation_is_quarantined_by_put(engine: Engine) -> None:
    bad = ArtifactEnvelope.model_construct(
        id="art_bad",
        type=ArtifactType.PLAN_CARD,
        schema_version=0,
        title="a plan",
        payload={},
        run_id="run_a",
        created_at=datetime(2026, 1, 1),  # naive: refused
    )

    async def scenario(store: SqlArtifactStore) -> None:
        with pytest.raises(ArtifactQuarantinedError) as refused:
            await store.put(bad)
        quarantine = refused.value.quarantine
        assert quarantine.id == "quarantine_000001"
        assert (quarantine.artifact_id, quarantine.declared_type, quarantine.run_id) == ("art_bad", "PlanCard", "run_a")
        assert {issue.location for issue in quarantine.issues} == {"schema_version", "created_at"}
        assert quarantine.quarantined_at == T0
        assert isinstance(quarantine.submitted, dict)
        assert quarantine.submitted["title"] == "a plan"
        # Kept aside: never served as an artifact, found in the quarantine.
        with pytest.raises(NotFoundError):
            await store.get("art_bad")
        with pytest.raises(NotFoundError):
            await store.get(quarantine.id)
        assert list(await store.list("run_a")) == []
        assert await store.get_quarantined(quarantine.id) == quarantine
        assert list(await store.list_quarantined(run_id="run_a")) == [quarantine]
        assert list(await store.list_quarantined(run_id="run_b")) == []

    _run(scenario, engine)


@pytest.mark.parametrize(
    ("candidate", "location"),
    [
        ({"id": "art_1", "type": "Poster", "title": "t", "created_at": "2026-01-01T00:00:00Z"}, "type"),
        ({"type": "PlanCard", "title": "t", "created_at": "2026-01-01T00:00:00Z"}, "id"),
        ({"id": "art_1", "type": "PlanCard", "title": "t", "created_at": "2026-01-01T00:00:00Z", "x": 1}, "x"),
        (
            {"id": "art_1", "type": "PlanCard", "title": "t", "created_at": "2026-01-01T00:00:00Z", "payload": [1]},
            "payload",
        ),
        ('{"id": "art_1", "type": "PlanCard", "title": "t"}', "created_at"),
        (b"not json at all", ""),
    ],
    ids=["unknown-type", "no-id", "unknown-field", "payload-not-an-object", "json-text", "not-json"],
)
def test_invalid_submissions_are_quarantined_with_their_reasons(
    engine: Engine, candidate: dict[str, Any] | str | bytes, location: str
) -> None:
    async def scenario(store: SqlArtifactStore) -> None:
        outcome = await store.submit(candidate)
        assert isinstance(outcome, QuarantinedArtifact)
        assert location in {issue.location for issue in outcome.issues}
        assert await store.get_quarantined(outcome.id) == outcome
        if isinstance(candidate, dict):
            assert outcome.submitted == candidate
        elif isinstance(candidate, bytes):
            assert outcome.submitted == candidate.decode()

    _run(scenario, engine)


def test_a_payload_must_match_its_declared_type(engine: Engine) -> None:
    async def scenario(store: SqlArtifactStore) -> None:
        # The quality gates read TestReport.payload.status: a report without one is not a TestReport.
        no_status = artifact(ArtifactType.TEST_REPORT, payload={"passed": 3})
        outcome = await store.submit(no_status)
        assert isinstance(outcome, QuarantinedArtifact)
        assert [issue.location for issue in outcome.issues] == ["payload.status"]
        assert outcome.artifact_id == no_status.id
        report = artifact(ArtifactType.TEST_REPORT, payload={"status": "passed", "passed": 3})
        assert await store.submit(report) == report
        assert list(await store.list("run_a")) == [report]

    _run(scenario, engine)
    assert ArtifactType.TEST_REPORT in DEFAULT_PAYLOAD_SCHEMAS


class PlanPayload(BaseModel):
    steps: list[str]


def test_payload_schemas_are_configurable(engine: Engine) -> None:
    async def scenario(store: SqlArtifactStore) -> None:
        outcome = await store.submit(artifact(payload={"steps": "not a list"}))
        assert isinstance(outcome, QuarantinedArtifact)
        assert [issue.location for issue in outcome.issues] == ["payload.steps"]
        assert isinstance(await store.submit(artifact()), ArtifactEnvelope)
        # Only the registered schemas apply: without the default one, any TestReport payload is accepted.
        assert isinstance(await store.submit(artifact(ArtifactType.TEST_REPORT, payload={})), ArtifactEnvelope)

    _run(scenario, engine, payload_schemas={ArtifactType.PLAN_CARD: PlanPayload})


def test_a_quarantined_id_stays_free_for_the_corrected_artifact(engine: Engine) -> None:
    async def scenario(store: SqlArtifactStore) -> None:
        fixed = artifact(ArtifactType.TEST_REPORT, payload={"status": "failed"})
        broken = fixed.model_copy(update={"payload": {}})  # model_copy does not validate: a bad payload
        first = await store.submit(broken)
        assert isinstance(first, QuarantinedArtifact)
        assert await store.submit(fixed) == fixed
        assert await store.get(fixed.id) == fixed
        # An invalid artifact whose id is taken is still quarantined (not refused as a duplicate).
        again = await store.submit(broken)
        assert isinstance(again, QuarantinedArtifact)
        assert again.id != first.id
        assert [q.id for q in await store.list_quarantined()] == [first.id, again.id]
        # A valid artifact under a taken id is refused, not quarantined.
        with pytest.raises(AlreadyExistsError):
            await store.submit(fixed)

    _run(scenario, engine)


def test_a_quarantine_becomes_an_error_event_in_the_run_log(engine: Engine) -> None:
    async def scenario() -> None:
        runs = SqlRunStore(engine)
        artifacts = SqlArtifactStore(engine, clock=ManualClock(T0))
        try:
            run_id, lease = await new_run(runs)
            outcome = await artifacts.submit({"id": "art_9", "type": "TestReport", "title": "tests", "run_id": run_id})
            assert isinstance(outcome, QuarantinedArtifact)
            payload = outcome.error_payload()
            assert (payload.code, payload.stage, payload.recoverable) == (QUARANTINE_ERROR_CODE, "artifact", True)
            assert "art_9" in payload.message
            assert outcome.id in payload.message
            assert "TestReport" in payload.message
            draft = EventDraft.of(payload, id=new_id("evt"), ts=T0, agent_id="agent", turn=1)
            [event] = await runs.append(lease, [draft])
            assert event.type is EventType.ERROR
            assert (await runs.read_events(run_id))[-1] == event
        finally:
            await artifacts.close()
            await runs.close()

    asyncio.run(scenario())


def test_the_quarantine_error_keeps_its_record_through_pickling(engine: Engine) -> None:
    async def scenario(store: SqlArtifactStore) -> None:
        with pytest.raises(ArtifactQuarantinedError) as refused:
            await store.put(artifact(ArtifactType.TEST_REPORT, payload={}))
        error = refused.value
        assert isinstance(error, StoreError)
        copy = pickle.loads(pickle.dumps(error))
        assert (type(copy), str(copy), copy.quarantine) == (ArtifactQuarantinedError, str(error), error.quarantine)

    _run(scenario, engine)


def test_many_issues_are_summarised(engine: Engine) -> None:
    async def scenario(store: SqlArtifactStore) -> None:
        outcome = await store.submit({"unexpected": 1, "other": 2})
        assert isinstance(outcome, QuarantinedArtifact)
        assert outcome.artifact_id is None
        assert len(outcome.issues) > 3
        assert "an artifact without an id" in outcome.summary
        assert f"and {len(outcome.issues) - 3} more" in outcome.summary

    _run(scenario, engine)


# The migration that added the status column.


def test_revision_0002_keeps_existing_artifacts_and_drops_quarantined_ones_on_downgrade(url: str) -> None:
    engine = create_engine(url)
    try:
        upgrade(engine, "0001")
        shape_0001 = _shape(engine)
        old = artifact()
        with engine.begin() as connection:
            connection.execute(
                insert(ArtifactRow.__table__).values(  # the 0001 columns: no status
                    id=old.id,
                    type=old.type.value,
                    schema_version=1,
                    title=old.title,
                    run_id=old.run_id,
                    created_at=old.created_at,
                    data=old.model_dump_json(),
                )
            )
        upgrade(engine)

        async def scenario(store: SqlArtifactStore) -> None:
            assert await store.get(old.id) == old
            assert isinstance(await store.submit({"id": "art_x"}), QuarantinedArtifact)

        _run(scenario, engine)
        downgrade(engine, "0001")
        assert _shape(engine) == shape_0001
        with engine.connect() as connection:
            assert list(connection.execute(select(ArtifactRow.__table__.c.id)).scalars()) == [old.id]
        upgrade(engine)
        with engine.connect() as connection:
            assert connection.execute(select(ArtifactRow.status)).scalar_one() == ArtifactStatus.VALID
    finally:
        engine.dispose()


def _shape(engine: Engine) -> tuple[object, ...]:
    """The ``artifacts`` table as the database describes it: columns, primary key and indexes."""
    with engine.connect() as connection:
        inspector = inspect(connection)
        columns = [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns("artifacts")]
        key = inspector.get_pk_constraint("artifacts")
        indexes = sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes("artifacts"))
    return columns, (key["name"], key["constrained_columns"]), indexes
