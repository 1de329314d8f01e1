"""The SQL approval store: approval requests any process sharing the database can resolve.

A resolution is one conditional update (``UPDATE ... WHERE id = :id AND status = 'pending'``): of several
processes or tasks answering one approval at once, exactly one changes the row, and the others find it
answered and raise `ApprovalResolvedError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from runtime_core.approvals import Approval, ApprovalResolution, ApprovalStatus
from runtime_core.exceptions import AlreadyExistsError, ApprovalResolvedError, NotFoundError
from runtime_persistence._database import Database
from runtime_persistence.schema import metadata

__all__ = ["SqlApprovalStore"]

_approvals = metadata.tables["approvals"]

_INSERT = insert(_approvals)
_GET = select(_approvals.c.data).where(_approvals.c.id == bindparam("id"))
_RESOLVE = (
    update(_approvals)
    .where(_approvals.c.id == bindparam("b_id"), _approvals.c.status == ApprovalStatus.PENDING.value)
    .values(status=bindparam("status"), resolved_at=bindparam("resolved_at"), data=bindparam("data"))
)


class SqlApprovalStore:
    """An `ApprovalStore` on SQLite or PostgreSQL: approvals survive restarts and resolve from any process.

    Args:
        engine: The database (an engine from `create_engine`, migrated with `upgrade`).
        check_schema: Verify the schema revision on first use.
    """

    def __init__(self, engine: Engine, *, check_schema: bool = True) -> None:
        self._db = Database(engine, check_schema=check_schema)

    @property
    def engine(self) -> Engine:
        """The engine the store runs on."""
        return self._db.engine

    async def close(self) -> None:
        """Return the store's connection to the engine (the engine stays open)."""
        await self._db.close()

    async def create(self, approval: Approval) -> Approval:
        """Store a new approval request.

        Raises:
            AlreadyExistsError: The id is taken.
        """
        row = _row(approval)
        try:
            await self._db.write("create_approval", lambda c: c.execute(_INSERT, row))
        except IntegrityError:
            raise AlreadyExistsError("approval", approval.id) from None
        return approval

    async def get(self, approval_id: str) -> Approval:
        """Return an approval.

        Raises:
            NotFoundError: No such approval.
        """
        data = await self._db.read("get_approval", lambda c: c.execute(_GET, {"id": approval_id}).scalar())
        if data is None:
            raise NotFoundError("approval", approval_id)
        return Approval.model_validate_json(data)

    async def list(self, *, run_id: str | None = None, status: ApprovalStatus | None = None) -> Sequence[Approval]:
        """Return approvals, oldest request first, optionally only a run's or only those with `status`."""
        query = select(_approvals.c.data).order_by(_approvals.c.requested_at, _approvals.c.id)
        if run_id is not None:
            query = query.where(_approvals.c.run_id == run_id)
        if status is not None:
            query = query.where(_approvals.c.status == status.value)
        rows = await self._db.read("list_approvals", lambda c: c.execute(query).scalars().all())
        return [Approval.model_validate_json(data) for data in rows]

    async def resolve(self, resolution: ApprovalResolution, *, at: datetime) -> Approval:
        """Record the answer to a pending approval, atomically, and return the resolved approval.

        Raises:
            NotFoundError: No such approval.
            ApprovalResolvedError: The approval was already resolved (or expired), maybe a moment ago by
                another process.
        """
        approval_id = resolution.approval_id

        def work(connection: Connection) -> Approval:
            data = connection.execute(_GET, {"id": approval_id}).scalar()
            if data is None:
                raise NotFoundError("approval", approval_id)
            approval = Approval.model_validate_json(data)
            if approval.status is not ApprovalStatus.PENDING:
                raise ApprovalResolvedError(approval_id, approval.status.value)
            resolved = approval.resolved(resolution, at=at)
            changed = connection.execute(
                _RESOLVE,
                {
                    "b_id": approval_id,
                    "status": resolved.status.value,
                    "resolved_at": resolved.resolved_at,
                    "data": resolved.model_dump_json(),
                },
            )
            if changed.rowcount != 1:
                # Answered between our read and our update (PostgreSQL): the row says by whom.
                winner = Approval.model_validate_json(connection.execute(_GET, {"id": approval_id}).scalar_one())
                raise ApprovalResolvedError(approval_id, winner.status.value)
            return resolved

        return await self._db.write("resolve_approval", work)


def _row(approval: Approval) -> dict[str, Any]:
    return {
        "id": approval.id,
        "run_id": approval.run_id,
        "status": approval.status.value,
        "requested_at": approval.requested_at,
        "expires_at": approval.expires_at,
        "resolved_at": approval.resolved_at,
        "data": approval.model_dump_json(),
    }
