"""``db upgrade|current|check``: the schema of the database runs are stored in.

The database is ``--db``, else ``[database] url`` of ``agent-runtime.toml`` (or ``AGENT_RUNTIME_DATABASE_URL``),
else the embedded default ``.agent-runtime/runtime.db`` of the project.
"""

from __future__ import annotations

import re

import click

from runtime_facade.cli.context import EXIT_FAILED, database_option, fail, schema_problem, state
from runtime_persistence import SchemaOutdatedError, check, create_engine, current, head_revision, upgrade

__all__ = ["db", "display_url"]

_PASSWORD = re.compile(r"(?<=://)([^:/@]+):[^@]*@")


def display_url(url: str) -> str:
    """`url` with its password, if any, hidden."""
    return _PASSWORD.sub(r"\1:***@", url)


@click.group()
def db() -> None:
    """Migrate and inspect the database schema."""


@db.command("upgrade")
@database_option
def upgrade_command() -> None:
    """Apply the pending schema migrations (safe to run again, and from several processes)."""
    url = state().database_url()
    engine = create_engine(url, synchronous=state().config.database.synchronous)
    try:
        upgrade(engine)
        click.echo(f"database {display_url(url)} is at schema revision {current(engine)}")
    finally:
        engine.dispose()


@db.command("current")
@database_option
def current_command() -> None:
    """Print the database's schema revision ('none' when it was never migrated)."""
    engine = create_engine(state().database_url(), synchronous=state().config.database.synchronous)
    try:
        click.echo(current(engine) or "none")
    finally:
        engine.dispose()


@db.command("check")
@database_option
def check_command() -> None:
    """Check that the schema is the one this version needs (exit status 1 when it is not)."""
    url = state().database_url()
    engine = create_engine(url, synchronous=state().config.database.synchronous)
    try:
        check(engine)
    except SchemaOutdatedError as error:
        raise fail(schema_problem(error), EXIT_FAILED) from None
    finally:
        engine.dispose()
    click.echo(f"database {display_url(url)} is up to date (schema revision {head_revision()})")
