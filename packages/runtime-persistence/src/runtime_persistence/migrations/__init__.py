"""Schema migrations: explicit calls, never implicit (STYLE anti-pattern 4).

The Alembic environment ships inside this package (``env.py``, ``script.py.mako`` and ``versions/``
beside this module) and its configuration is built here, in code: users need no ``alembic.ini``.
Alembic records the revision in a private table, ``agent_runtime_alembic_version``, so that the
database may hold other applications' Alembic histories too.

Nothing migrates on import or when a store is created: the owner of the database calls `upgrade` (the
embedded default database of the CLI may do it for its own file; a user-supplied URL is never upgraded
unasked). `check` — and every store on first use — raises `SchemaOutdatedError` when the schema is not
the one this version needs.

For maintainers, `alembic_config` gives the configuration for Alembic's command API
(``alembic.command.revision(alembic_config(url), autogenerate=True, rev_id="0005", message="...")``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from runtime_persistence._database import SQLITE_BEGIN_KEY, database_errors
from runtime_persistence._revisions import (
    SCRIPT_LOCATION,
    VERSION_TABLE,
    head_revision,
    known_revisions,
    outdated_error,
    schema_revisions,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from alembic.config import Config

# Alembic is imported inside the functions that use it (see runtime_persistence._revisions for why).

__all__ = [
    "SCRIPT_LOCATION",
    "VERSION_TABLE",
    "alembic_config",
    "check",
    "current",
    "downgrade",
    "head_revision",
    "known_revisions",
    "upgrade",
]

_PG_MIGRATION_LOCK: Final = 0x6167_656E_7472_7431  # pg_advisory_xact_lock key: "agentrt1"


def alembic_config(url: str | URL | None = None) -> Config:
    """Return the Alembic configuration of the shipped migrations.

    Args:
        url: The database for Alembic commands that open their own connection (``sqlalchemy.url``);
            `upgrade`, `downgrade` and friends pass their engine's connection instead.

    Returns:
        A configuration for ``alembic.command`` functions.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url is not None:
        rendered = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database up to `revision` (default the newest), in one transaction.

    Concurrent upgrades of one database wait for each other (SQLite: the write lock; PostgreSQL: an
    advisory lock), and the later one finds the work done.

    Args:
        engine: An engine from `runtime_persistence.create_engine`.
        revision: The target revision, ``"head"`` for the newest.

    Raises:
        DatabaseError: The database cannot be reached or failed.
    """
    from alembic import command

    with database_errors("upgrade"):
        _run(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database down to `revision` (``"base"`` drops every Agent Runtime table and its data).

    Args:
        engine: An engine from `runtime_persistence.create_engine`.
        revision: The target revision, or ``"base"``.

    Raises:
        DatabaseError: The database cannot be reached or failed.
    """
    from alembic import command

    with database_errors("downgrade"):
        _run(engine, lambda config: command.downgrade(config, revision))


def current(engine: Engine) -> str | None:
    """Return the database's schema revision, or ``None`` if it was never migrated (or migrated down to base).

    Args:
        engine: An engine from `runtime_persistence.create_engine`.

    Raises:
        DatabaseError: The database cannot be reached or failed.
    """
    with database_errors("current"), engine.connect() as connection, connection.begin():
        revisions = schema_revisions(connection)
    return revisions[0] if revisions else None


def check(engine: Engine) -> None:
    """Verify that the database schema is the one this version of runtime-persistence needs.

    Args:
        engine: An engine from `runtime_persistence.create_engine`.

    Raises:
        SchemaOutdatedError: The schema is missing or behind (run `upgrade`), or at a revision this
            version does not know (written by a newer version).
        DatabaseError: The database cannot be reached or failed.
    """
    with database_errors("check"), engine.connect() as connection, connection.begin():
        revisions = schema_revisions(connection)
    if revisions != [head_revision()]:
        raise outdated_error(engine, revisions)


def _run(engine: Engine, action: Callable[[Config], None]) -> None:
    """Run an Alembic command on one of `engine`'s connections, in one transaction, under a migration lock."""
    config = alembic_config()
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.info[SQLITE_BEGIN_KEY] = "BEGIN IMMEDIATE"  # SQLite's DDL is transactional too
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            config.attributes["connection"] = connection
            action(config)
