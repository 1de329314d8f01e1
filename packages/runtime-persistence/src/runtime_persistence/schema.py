"""The SQL schema of Agent Runtime: one set of tables for SQLite and PostgreSQL.

Every record the runtime persists is a pydantic model. Most rows keep that model's JSON (``data``, written
with ``model_dump_json`` and read back with ``model_validate_json``) next to the columns the stores
filter, order and check constraints on: the JSON is the record, the columns an index into it. JSON is
stored as ``TEXT`` on both databases: nothing is parsed twice on the way in, and the hot path needs no
JSON operators (PostgreSQL users can still query it with ``data::jsonb``).

The run log and the checkpoints, which hold a run's conversation, are stored more compactly (see
``runtime_persistence._encoding``): their columns hold the envelope, ``data`` only the rest, a checkpoint
references the messages that events already hold, and large documents are zlib-compressed into
``data_zlib`` instead. The stores read back exactly the events and states that were written.

Timestamps are `UtcDateTime` columns: timezone-aware in Python, stored in UTC on both databases (SQLite
has no timezone type, so ordering by time would otherwise break on mixed offsets).

The schema changes only through the Alembic migrations shipped in ``runtime_persistence/migrations``;
`SCHEMA_REVISION` names the revision these models describe, and a test checks that the migrated schema
matches them exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "SCHEMA_REVISION",
    "ApprovalRow",
    "ArtifactRow",
    "Base",
    "CheckpointRow",
    "EventRow",
    "LeaseRow",
    "LineageRow",
    "RunRow",
    "SpoolReferenceRow",
    "SpoolRow",
    "UtcDateTime",
    "metadata",
]

SCHEMA_REVISION = "0004"
"""The migration revision these models describe (the head of ``runtime_persistence/migrations``)."""

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint and index names are derived, so migrations can name them on every database."""


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp, stored in UTC.

    PostgreSQL stores it as ``timestamp with time zone``; SQLite, which has no timezone type, as UTC text.
    Values read back are aware ``datetime`` objects in UTC. Naive values are refused: a time without a
    zone is ambiguous in a log that outlives the machine that wrote it.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware timestamp to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Agent Runtime stores timezone-aware timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return the stored timestamp as an aware UTC datetime."""
        return None if value is None else as_utc(value)


def as_utc(value: datetime) -> datetime:
    """A timestamp read back from a `UtcDateTime` column as an aware UTC datetime (naive means UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the Agent Runtime tables (their `MetaData` has a naming convention)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime(), str: String()}


metadata = Base.metadata
"""All Agent Runtime tables (the migrations' ``target_metadata``)."""


class RunRow(Base):
    """A run record: the projection of its run log (``runtime_core.Run``), updated by every append.

    ``data`` is the `Run`'s JSON; the columns repeat what listing and filtering need, and
    ``checkpoint_turn``/``checkpoint_parent_turn`` remember the newest checkpoint row so that an append
    checks the checkpoint chain without reading the checkpoints table.
    """

    __tablename__ = "runs"
    __table_args__ = (Index(None, "status", "created_at"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    status: Mapped[str]
    reason: Mapped[str | None]
    parent_run_id: Mapped[str | None] = mapped_column(index=True)
    root_run_id: Mapped[str] = mapped_column(index=True)
    depth: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    turns: Mapped[int]
    last_seq: Mapped[int]
    checkpoint_turn: Mapped[int | None]
    checkpoint_parent_turn: Mapped[int | None]
    data: Mapped[str] = mapped_column(Text)


class EventRow(Base):
    """One entry of a run log (``runtime_core.Event``): ``seq`` is dense from 1 per run.

    The primary key ``(run_id, seq)`` makes a gap or a second writer at the same place impossible. The
    columns hold the envelope: ``id`` is ``NULL`` for the id the agent loop gives events,
    ``<run_id>.<seq>``, which the primary key makes unique; other ids are unique across all runs (an
    index of them, and the run store checks the two forms against each other), so a retried boundary is
    refused as a duplicate. ``ts`` is the time in UTC and ``ts_offset`` the UTC offset in seconds of a
    time written in another zone (``NULL`` for UTC). The payload's JSON is ``data``, or compressed in
    ``data_zlib`` (see ``runtime_persistence._encoding``).
    """

    __tablename__ = "events"
    __table_args__ = (
        Index(
            "uq_events_id",
            "id",
            unique=True,
            sqlite_where=text("id IS NOT NULL"),
            postgresql_where=text("id IS NOT NULL"),
        ),
    )

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    id: Mapped[str | None]
    type: Mapped[str]
    turn: Mapped[int]
    ts: Mapped[datetime]
    ts_offset: Mapped[int | None]
    agent_id: Mapped[str]
    tool_call_id: Mapped[str | None]
    v: Mapped[int] = mapped_column(server_default="1")
    data: Mapped[str | None] = mapped_column(Text)
    data_zlib: Mapped[bytes | None] = mapped_column(LargeBinary)


class CheckpointRow(Base):
    """A checkpoint row (``runtime_core.Checkpoint``): one turn's delta, or a snapshot of the whole state.

    One row per ``(run_id, turn)``: a turn's row is created at turn start, replaced at each tool call and
    result, and finalised at turn end (``status``). ``parent_turn`` points at the previous row's turn.
    The delta (or the snapshot's state) is ``data``, or compressed in ``data_zlib``; its messages are
    references to the events that carry them where possible (see ``runtime_persistence._encoding``).
    """

    __tablename__ = "checkpoints"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    turn: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str]
    parent_turn: Mapped[int | None]
    status: Mapped[str]
    created_at: Mapped[datetime]
    data: Mapped[str | None] = mapped_column(Text)
    data_zlib: Mapped[bytes | None] = mapped_column(LargeBinary)


class LeaseRow(Base):
    """A run's write lease and its fencing token.

    The row is created with the run (token 0, no owner) and never deleted while the run exists: ``token``
    is the newest token ever issued for the run, also after a release (``owner`` and ``expires_at`` are
    then ``NULL``). An append locks this row and compares tokens inside its transaction.
    """

    __tablename__ = "leases"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    owner: Mapped[str | None]
    token: Mapped[int]
    expires_at: Mapped[datetime | None]


class ApprovalRow(Base):
    """An approval request (``runtime_core.Approval``), resolvable from any process sharing the database.

    ``run_id`` is not a foreign key: approvals may belong to runs kept in another store.
    """

    __tablename__ = "approvals"

    id: Mapped[str] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(index=True)
    requested_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    data: Mapped[str] = mapped_column(Text)


class SpoolRow(Base):
    """Spooled content (large tool outputs), addressed by the sha256 of its bytes and stored once."""

    __tablename__ = "spool"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    byte_size: Mapped[int]
    line_count: Mapped[int]
    created_at: Mapped[datetime]
    content: Mapped[bytes] = mapped_column(LargeBinary)


class SpoolReferenceRow(Base):
    """A run whose log names spooled content: one row per ``(content_hash, run_id)``.

    Written in the transaction that writes an event or checkpoint holding the content's URI
    (``db://spool/<sha256>``), and deleted with the run. Retention looks here for the entries still
    referenced, instead of reading (and decompressing) the run log.
    """

    __tablename__ = "spool_references"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True, index=True)


class ArtifactRow(Base):
    """A typed artifact (``runtime_core.ArtifactEnvelope``), or a submission that failed validation.

    ``status`` is ``valid`` for a stored artifact, whose ``data`` is the envelope's JSON, or
    ``quarantined`` for a submission kept aside (``runtime_persistence.QuarantinedArtifact``: what was
    submitted and why it was refused, in ``data``); the other columns of a quarantined row hold what the
    submission declared, as far as it could be read.
    """

    __tablename__ = "artifacts"

    id: Mapped[str] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(server_default="valid")
    type: Mapped[str]
    schema_version: Mapped[int]
    title: Mapped[str]
    run_id: Mapped[str | None] = mapped_column(index=True)
    agent_id: Mapped[str | None]
    task_node_id: Mapped[str | None]
    created_at: Mapped[datetime]
    data: Mapped[str] = mapped_column(Text)


class LineageRow(Base):
    """An agent run in a delegation tree (``runtime_core.LineageEntry``).

    ``usage`` and ``aggregated_usage`` are the JSON of ``runtime_core.Usage`` (own and with descendants).
    """

    __tablename__ = "lineage"

    id: Mapped[str] = mapped_column(primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(index=True)
    role: Mapped[str]
    status: Mapped[str]
    depth: Mapped[int]
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    usage: Mapped[str] = mapped_column(Text)
    aggregated_usage: Mapped[str] = mapped_column(Text)
