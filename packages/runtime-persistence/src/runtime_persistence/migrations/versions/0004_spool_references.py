"""Spool references: the spool entries each run names, kept in a table instead of searched for in the log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

Until this revision an event or checkpoint document that named spooled content (``db://spool/<sha256>``:
a spooled tool result and its truncated view) was stored uncompressed, so that retention could search the
run log's text for the URIs it holds, a scan of the whole log. From here the run store writes one
``spool_references`` row per ``(content_hash, run_id)`` in the transaction that writes such a document, and
compresses the document like any other; retention looks the entries up in the table.

The upgrade creates the table and fills it from the documents that name the spool (at revision 0003 none
of them is compressed, so SQL finds them). The downgrade stores uncompressed again, for the runs the table
lists, every compressed document that names the spool (revision 0003's retention searches the text), then
drops the table. Offline (``--sql``), only the table is created or dropped: rows cannot be read there, so
render the SQL of this revision for databases without spooled outputs only.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Sequence
from typing import TypeVar

import sqlalchemy as sa
from alembic import context, op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_T = TypeVar("_T")
_BATCH = 1000  # rows per statement
_SPOOL_URI_PREFIX = "db://spool/"
_SPOOL_URI = re.compile(re.escape(_SPOOL_URI_PREFIX) + r"([0-9a-f]{64})")

_AFTER = (sa.bindparam("after_run_id", type_=sa.String()), sa.bindparam("after_key", type_=sa.Integer()))
_spool_references = sa.table(
    "spool_references", sa.column("content_hash", sa.String()), sa.column("run_id", sa.String())
)
# The documents of the run log at revision 0003, with the columns of their primary keys.
_documents = (
    (
        sa.table(
            "events",
            sa.column("run_id", sa.String()),
            sa.column("seq", sa.Integer()),
            sa.column("data", sa.Text()),
            sa.column("data_zlib", sa.LargeBinary()),
        ),
        "seq",
    ),
    (
        sa.table(
            "checkpoints",
            sa.column("run_id", sa.String()),
            sa.column("turn", sa.Integer()),
            sa.column("data", sa.Text()),
            sa.column("data_zlib", sa.LargeBinary()),
        ),
        "turn",
    ),
)


def upgrade() -> None:
    """Create ``spool_references`` and record in it the spool entries the stored documents name."""
    op.create_table(
        "spool_references",
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_spool_references_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("content_hash", "run_id", name=op.f("pk_spool_references")),
    )
    op.create_index(op.f("ix_spool_references_run_id"), "spool_references", ["run_id"])
    if context.is_offline_mode():
        return
    connection = op.get_bind()
    found: set[tuple[str, str]] = set()
    for table, _ in _documents:
        naming = sa.select(table.c.run_id, table.c.data).where(
            table.c.data.contains(_SPOOL_URI_PREFIX, autoescape=True)
        )
        for run_id, data in connection.execute(naming.execution_options(yield_per=_BATCH)):
            found.update((content_hash, run_id) for content_hash in _SPOOL_URI.findall(data))
    rows = [{"content_hash": content_hash, "run_id": run_id} for content_hash, run_id in sorted(found)]
    for chunk in _chunks(rows):
        connection.execute(_spool_references.insert(), chunk)


def downgrade() -> None:
    """Store the compressed documents that name the spool as text again, then drop ``spool_references``."""
    if not context.is_offline_mode():
        connection = op.get_bind()
        run_ids = sorted(connection.execute(sa.select(_spool_references.c.run_id).distinct()).scalars())
        for chunk in _chunks(run_ids):
            for table, key in _documents:
                _decompress_naming(connection, table, key, chunk)
    op.drop_index(op.f("ix_spool_references_run_id"), table_name="spool_references")
    op.drop_table("spool_references")


def _decompress_naming(connection: sa.Connection, table: sa.TableClause, key: str, run_ids: Sequence[str]) -> None:
    """Store as text the compressed documents of `table` that name the spool, in the runs `run_ids`.

    A page of `_BATCH` compressed rows at a time (keyset pagination), each page's updates written before the
    next is read: memory stays bounded by the page, however long the runs.
    """
    place = sa.tuple_(table.c.run_id, table.c[key])
    page = (
        sa.select(table.c.run_id, table.c[key], table.c.data_zlib)
        .where(table.c.run_id.in_(run_ids), table.c.data_zlib.is_not(None), place > sa.tuple_(*_AFTER))
        .order_by(table.c.run_id, table.c[key])
        .limit(_BATCH)
    )
    store = (
        sa.update(table)
        .where(table.c.run_id == sa.bindparam("b_run_id"), table.c[key] == sa.bindparam("b_key"))
        .values(data=sa.bindparam("data"), data_zlib=None)
    )
    after: dict[str, object] = {"after_run_id": "", "after_key": -1}
    while rows := connection.execute(page, after).all():
        naming = []
        for run_id, at, data_zlib in rows:
            document = zlib.decompress(data_zlib).decode()
            if _SPOOL_URI_PREFIX in document:
                naming.append({"b_run_id": run_id, "b_key": at, "data": document})
        if naming:
            connection.execute(store, naming)
        after = {"after_run_id": rows[-1][0], "after_key": rows[-1][1]}


def _chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), _BATCH):
        yield values[start : start + _BATCH]
