"""The SQL spool store: large tool outputs, addressed by the sha256 of their content and stored once."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from runtime_core.clock import Clock, SystemClock
from runtime_core.exceptions import NotFoundError
from runtime_core.spool import SpoolRef
from runtime_persistence._database import Database
from runtime_persistence.schema import metadata

__all__ = ["NAME_ENTRY", "SPOOL_URI_PREFIX", "SqlSpoolStore", "named_entries", "spool_hashes"]

SPOOL_URI_PREFIX = "db://spool/"
"""The prefix of the ``uri`` of content spooled to the database (the content hash follows)."""

_SPOOL_URI = re.compile(re.escape(SPOOL_URI_PREFIX) + r"([0-9a-f]{64})")


def spool_hashes(text: str) -> list[str]:
    """The content hashes of the spool entries `text` names by their URI (``db://spool/<sha256>``), in order."""
    return _SPOOL_URI.findall(text) if SPOOL_URI_PREFIX in text else []


_spool = metadata.tables["spool"]
_GET = select(_spool.c.content).where(_spool.c.content_hash == bindparam("content_hash"))

NAME_ENTRY: Final = (
    update(_spool)
    .where(_spool.c.content_hash == bindparam("b_content_hash"), _spool.c.created_at < bindparam("b_named_at"))
    .values(created_at=bindparam("b_named_at"))
)
"""Refreshes the age of an entry that a write about to commit names (for the stores of this package).

Retention deletes an entry only if it is still older than its cutoff when the delete reaches its row
(`runtime_persistence.retention`). A writer that names an old entry (a fork's snapshot, a cached tool
result) updates the entry's row in its own transaction, before committing the reference: a concurrent
prune either sees the reference, or waits for the row and then finds it too young to delete. The age
only moves forward, whatever the writer's clock says."""


def named_entries(hashes: Collection[str], at: datetime) -> list[dict[str, Any]]:
    """The parameters of `NAME_ENTRY` for `hashes` named at `at`, in hash order (rows are locked in one order)."""
    return [{"b_content_hash": content_hash, "b_named_at": at} for content_hash in sorted(hashes)]


class SqlSpoolStore:
    """A content-addressed `SpoolStore` on SQLite or PostgreSQL.

    Equal contents are stored once: putting content that is already there only refreshes its age (see
    `runtime_persistence.retention`) and returns the same reference.

    Args:
        engine: The database (an engine from `create_engine`, migrated with `upgrade`).
        clock: Time source for the ``created_at`` of new entries (used by retention).
        check_schema: Verify the schema revision on first use.
    """

    def __init__(self, engine: Engine, *, clock: Clock | None = None, check_schema: bool = True) -> None:
        self._db = Database(engine, check_schema=check_schema)
        self._clock = clock or SystemClock()
        dialect = postgresql if self._db.dialect == "postgresql" else sqlite
        # Concurrent writers of the same content both succeed, one row is kept.
        insert = dialect.insert(_spool)
        # Storing equal content again refreshes its age, forward only (as NAME_ENTRY): retention must not
        # prune an entry that a turn in progress has just spooled again (its reference commits later).
        self._insert = insert.on_conflict_do_update(
            index_elements=[_spool.c.content_hash],
            set_={"created_at": insert.excluded.created_at},
            where=_spool.c.created_at < insert.excluded.created_at,
        )

    @property
    def engine(self) -> Engine:
        """The engine the store runs on."""
        return self._db.engine

    async def close(self) -> None:
        """Return the store's connection to the engine (the engine stays open)."""
        await self._db.close()

    async def put(self, content: bytes) -> SpoolRef:
        """Store `content` under its sha256 (once; storing it again refreshes its age) and return its reference."""
        digest = hashlib.sha256(content).hexdigest()
        reference = SpoolRef(
            content_hash=digest,
            byte_size=len(content),
            line_count=content.count(b"\n") + (1 if content and not content.endswith(b"\n") else 0),
            uri=f"{SPOOL_URI_PREFIX}{digest}",
        )
        row: dict[str, Any] = {
            "content_hash": digest,
            "byte_size": reference.byte_size,
            "line_count": reference.line_count,
            "created_at": self._clock.now(),
            "content": content,
        }

        def work(connection: Connection) -> None:
            connection.execute(self._insert, row)

        await self._db.write("spool_put", work)
        return reference

    async def get(self, content_hash: str) -> bytes:
        """Return the content stored under `content_hash`.

        Raises:
            NotFoundError: Nothing is stored under that hash.
        """
        content = await self._db.read("spool_get", lambda c: c.execute(_GET, {"content_hash": content_hash}).scalar())
        if content is None:
            raise NotFoundError("spool entry", content_hash)
        return bytes(content)
