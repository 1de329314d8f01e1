"""Artifact quarantine: a ``status`` column on ``artifacts`` (``valid`` or ``quarantined``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-15

Rows written before this revision are valid artifacts: the column's server default says so. Batch mode
lets SQLite drop the column on downgrade (it copies the table; PostgreSQL alters it in place); the table
is spelled out here (``copy_from``) so that the copy needs no reflection and ``--sql`` renders it too.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _artifacts() -> sa.Table:
    """The ``artifacts`` table at this revision."""
    return sa.Table(
        "artifacts",
        sa.MetaData(),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.Column("agent_id", sa.String(), nullable=True),
        sa.Column("task_node_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), server_default="valid", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_artifacts"),
        sa.Index("ix_artifacts_run_id", "run_id"),
    )


def upgrade() -> None:
    """Add ``artifacts.status``; existing rows are ``valid``."""
    with op.batch_alter_table("artifacts") as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(), server_default="valid", nullable=False))


def downgrade() -> None:
    """Drop ``artifacts.status`` together with the quarantined rows, which revision 0001 cannot tell apart."""
    op.execute(sa.text("DELETE FROM artifacts WHERE status = 'quarantined'"))
    with op.batch_alter_table("artifacts", copy_from=_artifacts()) as batch_op:
        batch_op.drop_column("status")
