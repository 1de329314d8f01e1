"""Schema revisions: what the database records, what the shipped migrations know, and the error between them.

Alembic is imported only where the migration scripts must be read (the error path and the migration
functions): it adds about a third of a second to the import of the package, which every CLI start and
every worker would pay without migrating anything.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Final

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import Connection

from runtime_persistence.exceptions import SchemaOutdatedError
from runtime_persistence.schema import SCHEMA_REVISION

__all__ = [
    "SCRIPT_LOCATION",
    "VERSION_TABLE",
    "head_revision",
    "known_revisions",
    "outdated_error",
    "schema_revisions",
]

VERSION_TABLE: Final = "agent_runtime_alembic_version"
"""The table where Alembic records the schema revision (private name: the database may hold others)."""

SCRIPT_LOCATION: Final = Path(__file__).resolve().parent / "migrations"
"""The Alembic script directory shipped in the package (``env.py``, ``script.py.mako``, ``versions/``)."""


def schema_revisions(connection: Connection) -> list[str] | None:
    """Return the revisions recorded in the version table, or ``None`` when there is no such table."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return [row[0] for row in connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))]


@functools.cache
def known_revisions() -> frozenset[str]:
    """Return every revision of the shipped migrations."""
    from alembic.script import ScriptDirectory

    return frozenset(script.revision for script in ScriptDirectory(str(SCRIPT_LOCATION)).walk_revisions())


@functools.cache
def head_revision() -> str:
    """Return the newest revision of the shipped migrations (the one this version needs)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(SCRIPT_LOCATION)).get_current_head()
    if head is None:  # pragma: no cover - the package always ships its migrations
        raise RuntimeError(f"no migrations found in {SCRIPT_LOCATION}")
    return head


def outdated_error(engine: Engine, revisions: list[str] | None) -> SchemaOutdatedError:
    """The error for a database whose version table holds `revisions` (``None``: no version table)."""
    current = revisions[0] if revisions else None
    ahead = current is not None and current not in known_revisions()
    url = engine.url.render_as_string(hide_password=True)
    return SchemaOutdatedError(current=current, required=SCHEMA_REVISION, url=url, ahead=ahead)
