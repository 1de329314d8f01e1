"""The Alembic environment of Agent Runtime's schema (run by Alembic; importing it runs nothing).

`runtime_persistence.upgrade` and its siblings pass an open connection in ``config.attributes``; Alembic
commands run from a configuration with ``sqlalchemy.url`` (see `runtime_persistence.alembic_config`)
connect through `runtime_persistence.create_engine`. Offline mode (``--sql``) renders the SQL instead.

The version table has a private name, and autogenerate looks only at Agent Runtime's tables, so the
database may hold other applications' tables and Alembic histories.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from alembic.config import Config

from runtime_persistence._revisions import VERSION_TABLE
from runtime_persistence.engine import create_engine
from runtime_persistence.schema import metadata


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Leave tables that are not Agent Runtime's out of autogenerate (never propose dropping them)."""
    return not (type_ == "table" and reflected and name not in metadata.tables)


def _options() -> dict[str, Any]:
    return {
        "target_metadata": metadata,
        "version_table": VERSION_TABLE,
        "include_object": include_object,
        "render_as_batch": True,  # SQLite alters tables by copying them: later migrations need batch mode
        "compare_type": True,
    }


def run_offline(config: Config) -> None:
    """Render the migrations as SQL for ``sqlalchemy.url``'s dialect."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **_options())
    with context.begin_transaction():
        context.run_migrations()


def run_online(config: Config) -> None:
    """Run the migrations on the connection passed in, or on a new one to ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **_options())
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("no database: pass a connection in config.attributes or set sqlalchemy.url")
    engine = create_engine(url)
    try:
        with engine.connect() as new_connection:
            context.configure(connection=new_connection, **_options())
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


# Alembic installs `context.config` while it runs this file; imported anywhere else it does nothing.
_config: Config | None = getattr(context, "config", None)
if _config is not None:
    if context.is_offline_mode():
        run_offline(_config)
    else:
        run_online(_config)
