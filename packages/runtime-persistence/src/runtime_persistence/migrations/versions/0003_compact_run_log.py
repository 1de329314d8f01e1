"""A compact run log: the envelope in columns, checkpoints that reference events, large documents compressed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-02-01

Before this revision every event row held the whole event's JSON and every checkpoint row the whole
checkpoint's, so a run's conversation was stored in its events, again in every checkpoint delta and again
in every snapshot. From here (``runtime_persistence._encoding`` describes the encoding):

- ``events`` gets the envelope's columns ``ts_offset``, ``agent_id``, ``tool_call_id`` and ``v``; ``id``
  becomes ``NULL`` for the loop's ids (``<run_id>.<seq>``), so the unique constraint on it becomes a unique
  index of the other ids; ``data`` holds the payload's JSON only, or is ``NULL`` when ``data_zlib`` holds it
  compressed.
- ``checkpoints``' ``data`` holds the delta (or the snapshot's state without its ``turn``), or is ``NULL``
  when ``data_zlib`` holds it compressed.

The upgrade converts every row: payloads lose their ``type`` (they keep their default values, which the new
encoding may leave out but need not), and a checkpoint message that an event of the run carries with the
same JSON becomes a reference to that event; the downgrade converts them back, resolving the references.
The conversion works on the JSON documents (the ``json`` and ``zlib`` modules): it does not depend on the
models of the version that runs it. Offline (``--sql``), only the schema changes are rendered: the rows
cannot be converted in SQL, so render the SQL of this revision for empty databases only. Batch mode copies
the tables on SQLite; they are spelled out here (``copy_from``) at each step, so that the copies need no
reflection.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import sqlalchemy as sa
from alembic import context, op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000  # rows converted per statement
_COMPRESS_FROM = 512  # the encoding's rules at this revision (runtime_persistence._encoding)
_SPOOL_URI_PREFIX = "db://spool/"
_MESSAGE_EVENTS = ("model.responded", "tool.finished", "tool.failed")

_events = sa.table(
    "events",
    sa.column("run_id", sa.String()),
    sa.column("seq", sa.Integer()),
    sa.column("id", sa.String()),
    sa.column("type", sa.String()),
    sa.column("turn", sa.Integer()),
    sa.column("ts", sa.DateTime(timezone=True)),
    sa.column("ts_offset", sa.Integer()),
    sa.column("agent_id", sa.String()),
    sa.column("tool_call_id", sa.String()),
    sa.column("v", sa.Integer()),
    sa.column("data", sa.Text()),
    sa.column("data_zlib", sa.LargeBinary()),
)
_checkpoints = sa.table(
    "checkpoints",
    sa.column("run_id", sa.String()),
    sa.column("turn", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("parent_turn", sa.Integer()),
    sa.column("status", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("data", sa.Text()),
    sa.column("data_zlib", sa.LargeBinary()),
)


_Stage = Literal["0002", "converting", "0003"]


def _events_table(stage: _Stage) -> sa.Table:
    """The ``events`` table at revision 0002, at 0003, or in between.

    In between ("converting") it has 0003's columns without the index of ids, ``agent_id`` still nullable.
    """
    metadata = sa.MetaData()
    sa.Table("runs", metadata, sa.Column("id", sa.String(), primary_key=True))
    compact = stage != "0002"
    columns: list[sa.Column[Any]] = [
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(), nullable=compact),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.Text(), nullable=compact),
    ]
    extra: list[sa.Index | sa.UniqueConstraint] = [sa.UniqueConstraint("id", name="uq_events_id")]
    if compact:
        columns += [
            sa.Column("ts_offset", sa.Integer(), nullable=True),
            sa.Column("agent_id", sa.String(), nullable=stage == "converting"),
            sa.Column("tool_call_id", sa.String(), nullable=True),
            sa.Column("v", sa.Integer(), server_default="1", nullable=False),
            sa.Column("data_zlib", sa.LargeBinary(), nullable=True),
        ]
        extra = [] if stage == "converting" else [_id_index()]
    return sa.Table(
        "events",
        metadata,
        *columns,
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_events_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "seq", name="pk_events"),
        *extra,
    )


def _id_index() -> sa.Index:
    return sa.Index(
        "uq_events_id",
        "id",
        unique=True,
        sqlite_where=sa.text("id IS NOT NULL"),
        postgresql_where=sa.text("id IS NOT NULL"),
    )


def _checkpoints_table(stage: _Stage) -> sa.Table:
    """The ``checkpoints`` table at revision 0002 or 0003."""
    metadata = sa.MetaData()
    sa.Table("runs", metadata, sa.Column("id", sa.String(), primary_key=True))
    compact = stage != "0002"
    return sa.Table(
        "checkpoints",
        metadata,
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("turn", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("parent_turn", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.Text(), nullable=compact),
        *([sa.Column("data_zlib", sa.LargeBinary(), nullable=True)] if compact else []),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_checkpoints_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "turn", name="pk_checkpoints"),
    )


def upgrade() -> None:
    """Add the columns, convert every row, then require ``agent_id`` and index the explicit ids."""
    with op.batch_alter_table("events", copy_from=_events_table("0002")) as batch_op:
        batch_op.drop_constraint("uq_events_id", type_="unique")
        batch_op.alter_column("id", existing_type=sa.String(), nullable=True)
        batch_op.alter_column("data", existing_type=sa.Text(), nullable=True)
        batch_op.add_column(sa.Column("ts_offset", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("agent_id", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("tool_call_id", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("v", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("data_zlib", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("checkpoints", copy_from=_checkpoints_table("0002")) as batch_op:
        batch_op.alter_column("data", existing_type=sa.Text(), nullable=True)
        batch_op.add_column(sa.Column("data_zlib", sa.LargeBinary(), nullable=True))
    if not context.is_offline_mode():
        _convert(_events, ("run_id", "seq"), _compact_event)
        messages = _EventMessages(op.get_bind())  # the events are converted: checkpoints reference them
        _convert(_checkpoints, ("run_id", "turn"), lambda row: _compact_checkpoint(row, messages))
    with op.batch_alter_table("events", copy_from=_events_table("converting")) as batch_op:
        batch_op.alter_column("agent_id", existing_type=sa.String(), nullable=False)
    index = _id_index()
    op.create_index(index.name, "events", ["id"], unique=True, **index.dialect_kwargs)


def downgrade() -> None:
    """Convert every row back (checkpoints first: they read the events), then drop the columns."""
    if not context.is_offline_mode():
        connection = op.get_bind()
        messages = _EventMessages(connection)
        _convert(_checkpoints, ("run_id", "turn"), lambda row: _full_checkpoint(row, messages))
        _convert(_events, ("run_id", "seq"), _full_event)
    with op.batch_alter_table("checkpoints", copy_from=_checkpoints_table("0003")) as batch_op:
        batch_op.drop_column("data_zlib")
        batch_op.alter_column("data", existing_type=sa.Text(), nullable=False)
    op.drop_index("uq_events_id", table_name="events")
    # Without its index the table is the one in between (whose agent_id, about to go, is nullable).
    with op.batch_alter_table("events", copy_from=_events_table("converting")) as batch_op:
        for column in ("data_zlib", "v", "tool_call_id", "agent_id", "ts_offset"):
            batch_op.drop_column(column)
        batch_op.alter_column("data", existing_type=sa.Text(), nullable=False)
        batch_op.alter_column("id", existing_type=sa.String(), nullable=False)
        batch_op.create_unique_constraint("uq_events_id", ["id"])


# -- the conversion -----------------------------------------------------------------------------------------


def _convert(table: sa.TableClause, key: tuple[str, str], convert: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Rewrite every row of `table` with the columns `convert` returns for it, a batch at a time."""
    connection = op.get_bind()
    where = sa.and_(*(table.c[name] == sa.bindparam(f"b_{name}") for name in key))
    changed = [column.name for column in table.columns if column.name not in key]
    statement = table.update().where(where).values({name: sa.bindparam(name) for name in changed})
    for batch in _batches(connection, table, key):
        updates = []
        for row in batch:
            values = convert(row)
            updates.append({**{f"b_{name}": row[name] for name in key}, **{name: values[name] for name in changed}})
        connection.execute(statement, updates)


def _batches(connection: sa.Connection, table: sa.TableClause, key: tuple[str, str]) -> Iterator[list[dict[str, Any]]]:
    """The rows of `table` in key order, a batch at a time (each read before it is rewritten)."""
    columns = sa.tuple_(*(table.c[name] for name in key))
    query = sa.select(*table.c).order_by(*(table.c[name] for name in key)).limit(_BATCH)
    after: tuple[Any, ...] | None = None
    while True:
        page = query if after is None else query.where(columns > sa.tuple_(*after))
        rows = [dict(row) for row in connection.execute(page).mappings()]
        if not rows:
            return
        yield rows
        after = tuple(rows[-1][name] for name in key)


def _json(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _pack(document: str) -> tuple[str | None, bytes | None]:
    if len(document) < _COMPRESS_FROM or _SPOOL_URI_PREFIX in document:
        return document, None
    raw = document.encode()
    compressor = zlib.compressobj(1, zlib.DEFLATED, 14, 6)
    packed = compressor.compress(raw) + compressor.flush()
    if len(packed) > len(raw) - len(raw) // 8:
        return document, None
    return None, packed


def _unpack(row: dict[str, Any]) -> Any:
    return json.loads(row["data"] if row["data"] is not None else zlib.decompress(row["data_zlib"]))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _isoformat(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _compact_event(row: dict[str, Any]) -> dict[str, Any]:
    event = json.loads(row["data"])
    payload = {name: value for name, value in event["payload"].items() if name != "type"}
    offset = datetime.fromisoformat(event["ts"]).utcoffset()
    data, data_zlib = _pack(_json(payload))
    return {
        **row,
        "id": None if event["id"] == f"{row['run_id']}.{row['seq']}" else event["id"],
        "ts_offset": offset // timedelta(seconds=1) if offset else None,
        "agent_id": event["agent_id"],
        "tool_call_id": event.get("tool_call_id"),
        "v": event.get("v", 1),
        "data": data,
        "data_zlib": data_zlib,
    }


def _full_event(row: dict[str, Any]) -> dict[str, Any]:
    ts = _utc(row["ts"])
    if row["ts_offset"] is not None:
        ts = ts.astimezone(timezone(timedelta(seconds=row["ts_offset"])))
    event = {
        "id": row["id"] or f"{row['run_id']}.{row['seq']}",
        "type": row["type"],
        "ts": _isoformat(ts),
        "turn": row["turn"],
        "agent_id": row["agent_id"],
        "tool_call_id": row["tool_call_id"],
        "payload": {"type": row["type"], **_unpack(row)},
        "v": row["v"],
        "run_id": row["run_id"],
        "seq": row["seq"],
    }
    return {**row, "id": event["id"], "data": _json(event), "data_zlib": None}


def _compact_checkpoint(row: dict[str, Any], messages: _EventMessages) -> dict[str, Any]:
    checkpoint = json.loads(row["data"])
    if row["kind"] == "snapshot":
        body = {name: value for name, value in checkpoint["state"].items() if name != "turn"}
    else:
        body = checkpoint["delta"]
    body["messages"] = [messages.seq(row["run_id"], message) for message in body.get("messages", [])]
    data, data_zlib = _pack(_json(body))
    return {**row, "data": data, "data_zlib": data_zlib}


class _EventMessages:
    """The messages that a run's events carry (read when the run's first checkpoint asks; runs in turn)."""

    def __init__(self, connection: sa.Connection) -> None:
        self._connection = connection
        self._run_id: str | None = None
        self._messages: dict[int, dict[str, Any]] = {}
        self._seqs: dict[str, int] = {}

    def get(self, run_id: str, seq: int) -> dict[str, Any]:
        """The message the event at `seq` carries."""
        self._read(run_id)
        return self._messages[seq]

    def seq(self, run_id: str, message: Any) -> Any:
        """The ``seq`` of an event carrying `message` with the same JSON, else `message` itself."""
        self._read(run_id)
        return self._seqs.get(_json(message), message)

    def _read(self, run_id: str) -> None:
        if run_id == self._run_id:
            return
        self._run_id = run_id
        query = sa.select(_events.c.seq, _events.c.type, _events.c.data, _events.c.data_zlib).where(
            _events.c.run_id == run_id, _events.c.type.in_(_MESSAGE_EVENTS)
        )
        rows = self._connection.execute(query.order_by(_events.c.seq)).mappings()
        self._messages = {row["seq"]: _message(row["type"], _unpack(dict(row))) for row in rows}
        # JSON text, not dicts, is compared: 1 == 1.0 in Python, not in the message read back.
        self._seqs = {_json(message): seq for seq, message in self._messages.items()}


def _message(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The message an event carries (runtime_persistence._encoding.message_of, on JSON documents)."""
    if event_type == "model.responded":
        return {"role": "assistant", **payload["message"]}  # as dumped by revision 0002 (role first)
    result = payload["result"]
    return {
        "role": "tool",
        "tool_call_id": result["tool_call_id"],
        "tool_name": result["tool_name"],
        "content": result["content"],
        "is_error": result.get("error") is not None,
    }


def _full_checkpoint(row: dict[str, Any], messages: _EventMessages) -> dict[str, Any]:
    body = _unpack(row)
    body["messages"] = [
        messages.get(row["run_id"], item) if isinstance(item, int) else item for item in body.get("messages", [])
    ]
    checkpoint = {
        "kind": row["kind"],
        "run_id": row["run_id"],
        "turn": row["turn"],
        "parent_turn": row["parent_turn"],
        "status": row["status"],
        "created_at": _isoformat(_utc(row["created_at"])),
    }
    if row["kind"] == "snapshot":
        checkpoint["state"] = {"turn": row["turn"], **body}
    else:
        checkpoint["delta"] = body
    return {**row, "data": _json(checkpoint), "data_zlib": None}
