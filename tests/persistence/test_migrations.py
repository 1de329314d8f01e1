"""Migrations: explicit upgrade/downgrade on both databases, a schema equal to the models, and `check`."""

from __future__ import annotations

import asyncio
import importlib
import io
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from runtime_core import ConfigurationError
from runtime_persistence import (
    SCHEMA_REVISION,
    VERSION_TABLE,
    DatabaseError,
    SchemaOutdatedError,
    SqlApprovalStore,
    SqlRunStore,
    SqlSpoolStore,
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

TABLES = {"runs", "events", "checkpoints", "leases", "approvals", "spool", "artifacts", "lineage"}


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
    assert [revision.revision for revision in script.walk_revisions()] == [SCHEMA_REVISION, "0002", "0001"]
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
    assert (compact.revision, compact.down_revision) == (SCHEMA_REVISION, "0002")


def test_offline_mode_renders_the_sql(tmp_path: Path) -> None:
    config = alembic_config(f"sqlite:///{tmp_path / 'never-created.db'}")
    buffer = io.StringIO()
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    rendered = buffer.getvalue()
    assert "CREATE TABLE events" in rendered
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
