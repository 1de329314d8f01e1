"""Migrations: explicit upgrade/downgrade on both databases, a schema equal to the models, and `check`."""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import pickle
import zlib
from collections.abc import Iterator
from datetime import timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import TypeAdapter
from sqlalchemy import Engine, bindparam, inspect, text

from runtime_core import (
    AgentSpec,
    AssistantMessage,
    Checkpoint,
    CheckpointDelta,
    CheckpointSnapshot,
    CheckpointState,
    CheckpointStatus,
    ConfigurationError,
    Event,
    ModelRespondedPayload,
    Run,
    RunCreatedPayload,
    ToolCall,
    ToolFinishedPayload,
    ToolResult,
    ToolResultMessage,
    TurnDelta,
    TurnFinishedPayload,
    TurnStartedPayload,
    Usage,
    UserMessage,
    fold_checkpoints,
)
from runtime_core.events import EventPayload
from runtime_persistence import (
    SCHEMA_REVISION,
    VERSION_TABLE,
    DatabaseError,
    SchemaOutdatedError,
    SqlApprovalStore,
    SqlRunStore,
    SqlSpoolStore,
    UtcDateTime,
    alembic_config,
    check,
    create_engine,
    current,
    downgrade,
    head_revision,
    metadata,
    upgrade,
)
from runtime_persistence._revisions import outdated_error
from runtime_persistence.migrations.env import include_object
from tests.persistence.support import T0, new_run, spooled_result

TABLES = {"runs", "events", "checkpoints", "leases", "approvals", "spool", "spool_references", "artifacts", "lineage"}


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = create_engine(url)
    yield engine
    engine.dispose()


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(inspect(connection).get_table_names())


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "version_table": VERSION_TABLE, "include_object": include_object},
        )
        return list(compare_metadata(context, metadata))


def test_the_models_describe_the_newest_revision() -> None:
    assert head_revision() == SCHEMA_REVISION
    script = ScriptDirectory.from_config(alembic_config())
    assert [revision.revision for revision in script.walk_revisions()] == [SCHEMA_REVISION, "0003", "0002", "0001"]
    assert set(metadata.tables) == TABLES


def test_upgrade_downgrade_upgrade(engine: Engine) -> None:
    assert current(engine) is None
    assert _tables(engine) == set()
    upgrade(engine)
    assert current(engine) == SCHEMA_REVISION
    assert _tables(engine) == TABLES | {VERSION_TABLE}
    upgrade(engine)  # already at head: nothing to do
    downgrade(engine, "base")
    assert current(engine) is None
    assert _tables(engine) == {VERSION_TABLE}
    upgrade(engine)
    assert current(engine) == SCHEMA_REVISION
    assert _differences(engine) == []


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    upgrade(engine)
    assert _differences(engine) == []


def test_autogenerate_ignores_other_applications_tables(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE their_table (id INTEGER PRIMARY KEY)"))
    assert _differences(engine) == []
    downgrade(engine, "base")
    assert _tables(engine) == {VERSION_TABLE, "their_table"}, "downgrade drops only Agent Runtime's tables"


def test_check_raises_until_upgraded(engine: Engine) -> None:
    with pytest.raises(SchemaOutdatedError, match=r"upgrade\(engine\)") as never:
        check(engine)
    assert never.value.current is None
    assert never.value.required == SCHEMA_REVISION
    assert not never.value.ahead
    upgrade(engine)
    check(engine)
    downgrade(engine, "base")  # behind: the version table is there, the revision is not
    with pytest.raises(SchemaOutdatedError) as behind:
        check(engine)
    assert behind.value.current is None
    assert not behind.value.ahead


def test_check_names_a_revision_from_a_newer_version(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(SchemaOutdatedError, match="newer version") as ahead:
        check(engine)
    assert (ahead.value.current, ahead.value.ahead) == ("9999", True)
    assert ahead.value.url == engine.url.render_as_string(hide_password=True)


def test_schema_errors_hide_the_password_and_pickle() -> None:
    engine = create_engine("postgresql://agent:secret@127.0.0.1:1/runs")  # never connected
    try:
        error = outdated_error(engine, ["0000"])
    finally:
        engine.dispose()
    assert "secret" not in str(error)
    assert "***" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.current, copy.required, copy.ahead) == (
        SchemaOutdatedError,
        str(error),
        "0000",
        SCHEMA_REVISION,
        True,
    )
    assert isinstance(copy, ConfigurationError)
    assert copy.setting == "database.url"


def test_stores_check_the_schema_on_first_use(engine: Engine) -> None:
    async def scenario() -> None:
        for store in (SqlRunStore(engine), SqlApprovalStore(engine), SqlSpoolStore(engine)):
            with pytest.raises(SchemaOutdatedError):
                await _first_use(store)
            await store.close()
        upgrade(engine)
        run_store = SqlRunStore(engine)
        assert list(await run_store.list_runs()) == []
        await run_store.close()

    asyncio.run(scenario())


async def _first_use(store: SqlRunStore | SqlApprovalStore | SqlSpoolStore) -> None:
    if isinstance(store, SqlRunStore):
        await store.list_runs()
    elif isinstance(store, SqlApprovalStore):
        await store.list()
    else:
        await store.get("0" * 64)


def test_nothing_migrates_implicitly(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'untouched.db'}")
    try:
        SqlRunStore(engine)
        SqlApprovalStore(engine)
        assert _tables(engine) == set()
        assert current(engine) is None
    finally:
        engine.dispose()


def test_migration_modules_import_cleanly() -> None:
    env = importlib.import_module("runtime_persistence.migrations.env")
    assert callable(env.run_online)
    initial = importlib.import_module("runtime_persistence.migrations.versions.0001_initial")
    assert initial.revision == "0001"
    assert initial.down_revision is None
    status = importlib.import_module("runtime_persistence.migrations.versions.0002_artifact_status")
    assert (status.revision, status.down_revision) == ("0002", "0001")
    compact = importlib.import_module("runtime_persistence.migrations.versions.0003_compact_run_log")
    assert (compact.revision, compact.down_revision) == ("0003", "0002")
    references = importlib.import_module("runtime_persistence.migrations.versions.0004_spool_references")
    assert (references.revision, references.down_revision) == (SCHEMA_REVISION, "0003")


def test_offline_mode_renders_the_sql(tmp_path: Path) -> None:
    config = alembic_config(f"sqlite:///{tmp_path / 'never-created.db'}")
    buffer = io.StringIO()
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    rendered = buffer.getvalue()
    assert "CREATE TABLE events" in rendered
    assert "CREATE TABLE spool_references" in rendered  # revision 0004's table (its backfill needs rows)
    assert VERSION_TABLE in rendered
    assert not (tmp_path / "never-created.db").exists()


@pytest.mark.parametrize("operation", ["upgrade", "downgrade", "current", "check"])
def test_an_unreachable_database_is_a_database_error(operation: str) -> None:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    arguments = ("base",) if operation == "downgrade" else ()
    try:
        with pytest.raises(DatabaseError) as error:
            {"upgrade": upgrade, "downgrade": downgrade, "current": current, "check": check}[operation](
                engine, *arguments
            )
        assert error.value.operation == operation
        assert error.value.retryable
    finally:
        engine.dispose()


# -- revision 0003: the rows of revision 0002 are converted, both ways ----------------------------------------

_OLD = "0002"
_PAGE = " ".join(f"line {n}: the quick brown fox jumps over the lazy dog" for n in range(40))


def _old_run(run_id: str) -> tuple[list[Event], list[Checkpoint]]:
    """A run as revision 0002 stored it: events (one with an explicit id, one at another UTC offset, large
    texts) and checkpoints (snapshots and a delta, messages inline)."""
    created = RunCreatedPayload(agent=AgentSpec(name="old", model="scripted:none"), task="read the document")
    call = ToolCall(id="call_1", name="fetch", arguments={"page": 1})
    reply = AssistantMessage(content=f"reply: {_PAGE}", tool_calls=(call,))
    result = ToolResult(tool_call_id="call_1", tool_name="fetch", content=f"page: {_PAGE}")
    offset = timezone(timedelta(hours=-5))
    payloads: list[tuple[EventPayload, str | None]] = [
        (created, None),
        (TurnStartedPayload(), None),
        (ModelRespondedPayload(model="m", message=reply), None),
        (ToolFinishedPayload(result=result), "call_1"),
        (TurnFinishedPayload(tool_calls=1), None),
    ]
    events = [
        Event.recorded(
            payload, run_id=run_id, seq=seq, ts=T0.astimezone(offset), agent_id="old", turn=1, tool_call_id=call_id
        )
        for seq, (payload, call_id) in enumerate(payloads, 1)
    ]
    events[0] = events[0].model_copy(update={"id": f"evt_{run_id}", "turn": 0})
    user = UserMessage(content="read the document")
    message = ToolResultMessage(tool_call_id="call_1", tool_name="fetch", content=result.content)
    state = CheckpointState(messages=(user,))
    checkpoints: list[Checkpoint] = [
        CheckpointSnapshot(run_id=run_id, turn=0, status=CheckpointStatus.FINAL, created_at=T0, state=state),
        CheckpointDelta(
            run_id=run_id,
            turn=1,
            parent_turn=0,
            status=CheckpointStatus.FINAL,
            created_at=T0,
            delta=TurnDelta(messages=(reply, message), usage=Usage(input_tokens=3)),
        ),
    ]
    return events, checkpoints


def _insert_old(engine: Engine, run_id: str, events: list[Event], checkpoints: list[Checkpoint]) -> None:
    run = Run.created(events[0]).apply(*events[1:])
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO runs (id, status, reason, parent_run_id, root_run_id, depth, created_at, updated_at, "
                "turns, last_seq, checkpoint_turn, checkpoint_parent_turn, data) VALUES (:id, :status, NULL, NULL, "
                ":id, 0, :created_at, :updated_at, :turns, :last_seq, 1, 0, :data)"
            ).bindparams(bindparam("created_at", type_=UtcDateTime()), bindparam("updated_at", type_=UtcDateTime())),
            {
                "id": run_id,
                "status": run.status.value,
                "created_at": run.created_at,
                "updated_at": run.updated_at,
                "turns": run.turns,
                "last_seq": run.last_seq,
                "data": run.model_dump_json(),
            },
        )
        connection.execute(
            text("INSERT INTO leases (run_id, owner, token) VALUES (:run_id, NULL, 0)"), {"run_id": run_id}
        )
        connection.execute(
            text(
                "INSERT INTO events (run_id, seq, id, type, turn, ts, data) VALUES "
                "(:run_id, :seq, :id, :type, :turn, :ts, :data)"
            ).bindparams(bindparam("ts", type_=UtcDateTime())),
            [
                {
                    "run_id": run_id,
                    "seq": e.seq,
                    "id": e.id,
                    "type": e.type.value,
                    "turn": e.turn,
                    "ts": e.ts,
                    "data": e.model_dump_json(),
                }
                for e in events
            ],
        )
        connection.execute(
            text(
                "INSERT INTO checkpoints (run_id, turn, kind, parent_turn, status, created_at, data) VALUES "
                "(:run_id, :turn, :kind, :parent_turn, :status, :created_at, :data)"
            ).bindparams(bindparam("created_at", type_=UtcDateTime())),
            [
                {
                    "run_id": run_id,
                    "turn": c.turn,
                    "kind": c.kind,
                    "parent_turn": c.parent_turn,
                    "status": c.status.value,
                    "created_at": c.created_at,
                    "data": c.model_dump_json(),
                }
                for c in checkpoints
            ],
        )


def _old_rows(engine: Engine, run_id: str) -> tuple[list[Event], list[Checkpoint]]:
    """The rows of revision 0002, parsed as that revision's store parsed them."""
    adapter = TypeAdapter[Checkpoint](Checkpoint)
    with engine.connect() as connection:
        events = connection.execute(
            text("SELECT data FROM events WHERE run_id = :run_id ORDER BY seq"), {"run_id": run_id}
        ).scalars()
        parsed = [Event.model_validate_json(data) for data in events]
        rows = connection.execute(
            text("SELECT data FROM checkpoints WHERE run_id = :run_id ORDER BY turn"), {"run_id": run_id}
        ).scalars()
        return parsed, [adapter.validate_json(data) for data in rows]


def test_upgrade_converts_the_rows_of_0002_and_downgrade_converts_them_back(engine: Engine) -> None:
    upgrade(engine, _OLD)
    run_id = "run_written_by_0002"
    events, checkpoints = _old_run(run_id)
    _insert_old(engine, run_id, events, checkpoints)
    upgrade(engine)

    async def read_and_extend() -> tuple[list[Event], CheckpointState, list[Event], Checkpoint]:
        store = SqlRunStore(engine)
        try:
            read = list(await store.read_events(run_id))
            loaded = await store.load(run_id)
            # A turn written by this revision: its snapshot references the converted events' messages.
            lease = await store.acquire_lease(run_id, "new", ttl=timedelta(minutes=5))
            extra = [Event.recorded(TurnStartedPayload(), run_id=run_id, seq=6, ts=T0, agent_id="old", turn=2)]
            snapshot = CheckpointSnapshot(
                run_id=run_id,
                turn=2,
                parent_turn=1,
                status=CheckpointStatus.FINAL,
                created_at=T0,
                state=loaded.state.model_copy(update={"turn": 2}),
            )
            await store.append(lease, extra, snapshot)
            return read, loaded.state, extra, snapshot
        finally:
            await store.close()

    read, state, extra, snapshot = asyncio.run(read_and_extend())
    assert read == events
    assert [event.model_dump_json() for event in read] == [event.model_dump_json() for event in events]
    assert state == fold_checkpoints(checkpoints)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT data, data_zlib FROM checkpoints WHERE turn = 2")).one()
    document = stored[0] if stored[0] is not None else zlib.decompress(stored[1])
    assert json.loads(document)["messages"][1:] == [3, 4], "the new snapshot references the converted events"

    downgrade(engine, _OLD)
    old_events, old_checkpoints = _old_rows(engine, run_id)
    assert old_events == [*events, *extra]
    assert [e.model_dump_json() for e in old_events] == [e.model_dump_json() for e in [*events, *extra]]
    assert old_checkpoints == [*checkpoints, snapshot], "references resolved into copies again"
    assert _differences_at(engine, _OLD) == []

    upgrade(engine)
    again, _ = _reread(engine, run_id)
    assert again == [*events, *extra]


def _reread(engine: Engine, run_id: str) -> tuple[list[Event], CheckpointState]:
    async def scenario() -> tuple[list[Event], CheckpointState]:
        store = SqlRunStore(engine)
        try:
            return list(await store.read_events(run_id)), (await store.load(run_id)).state
        finally:
            await store.close()

    return asyncio.run(scenario())


def _differences_at(engine: Engine, revision: str) -> list[object]:
    """What the schema at `revision` lacks to be revision 0003's (its columns are there again)."""
    with engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("events")}
    return sorted({"ts_offset", "agent_id", "tool_call_id", "v", "data_zlib"} & columns)


# -- revision 0004: the spool entries a run names are recorded in a table, not searched for ----------------


def _spooled(digit: str) -> ToolResult:
    return spooled_result(digit * 64, _PAGE, call_id=f"call_{digit}")


def _stored_documents(engine: Engine) -> dict[tuple[str, str, int], tuple[bool, bool]]:
    """Per row of events and checkpoints: (stored as text, names the spool)."""
    found = {}
    with engine.connect() as connection:
        for table, key in (("events", "seq"), ("checkpoints", "turn")):
            rows = connection.execute(text(f"SELECT run_id, {key}, data, data_zlib FROM {table}"))
            for run_id, place, data, data_zlib in rows:
                document = data if data is not None else zlib.decompress(data_zlib).decode()
                found[table, run_id, place] = (data is not None, "db://spool/" in document)
    return found


def _references(engine: Engine) -> set[tuple[str, str]]:
    with engine.connect() as connection:
        return {tuple(row) for row in connection.execute(text("SELECT content_hash, run_id FROM spool_references"))}


def test_downgrade_stores_documents_naming_the_spool_as_text_and_upgrade_records_their_entries(engine: Engine) -> None:
    upgrade(engine)
    named, in_checkpoint, plain = (
        _spooled("a"),
        _spooled("b"),
        ToolResult(tool_call_id="call_p", tool_name="fetch", content=f"page: {_PAGE}"),
    )

    async def write() -> tuple[str, str]:
        store = SqlRunStore(engine)
        try:
            run_id, lease = await new_run(store)
            message = ToolResultMessage.of(in_checkpoint)
            checkpoint = CheckpointDelta(run_id=run_id, turn=1, created_at=T0, delta=TurnDelta(messages=(message,)))
            events = [
                Event.recorded(ToolFinishedPayload(result=result), run_id=run_id, seq=seq, ts=T0, agent_id="a", turn=1)
                for seq, result in ((2, named), (3, plain))
            ]
            await store.append(lease, events, checkpoint)
            quiet, _ = await new_run(store)  # names no spool entry
            return run_id, quiet
        finally:
            await store.close()

    run_id, quiet = asyncio.run(write())
    references = {("a" * 64, run_id), ("b" * 64, run_id)}
    assert _references(engine) == references
    before, events_before = _stored_documents(engine), _reread(engine, run_id)
    assert before["events", run_id, 2] == before["checkpoints", run_id, 1] == (False, True), "compressed at head"
    assert before["events", run_id, 3] == (False, False)

    downgrade(engine, "0003")
    assert current(engine) == "0003"
    assert "spool_references" not in _tables(engine)
    after = _stored_documents(engine)
    # What revision 0003 wrote: documents naming the spool as text (its retention searches them), the others alike.
    assert after == {place: (True, True) if spool else (text_, spool) for place, (text_, spool) in before.items()}

    upgrade(engine)
    assert _references(engine) == references, "the entries named by the documents of revision 0003"
    assert _reread(engine, run_id) == events_before
    assert _differences(engine) == []
    assert not any(spool for (_, owner, _), (_, spool) in _stored_documents(engine).items() if owner == quiet)
