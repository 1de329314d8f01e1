"""Lineage: who spawned whom, and what each branch of the tree spent."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field, NonNegativeInt

from runtime_core._base import FrozenModel
from runtime_core.usage import Usage

__all__ = ["LineageEntry", "LineageStatus"]


class LineageStatus(StrEnum):
    """State of an agent in the delegation tree."""

    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    RECOVERING = "recovering"


class LineageEntry(FrozenModel):
    """One agent run in a delegation tree.

    ``usage`` is the run's own consumption; ``aggregated_usage`` adds every descendant's, so totals are
    never counted twice.
    """

    id: str = Field(min_length=1, description="The run id of this agent.")
    parent_id: str | None = None
    role: str
    status: LineageStatus = LineageStatus.ACTIVE
    depth: NonNegativeInt = 0
    created_at: AwareDatetime
    completed_at: AwareDatetime | None = None
    usage: Usage = Usage()
    aggregated_usage: Usage = Usage()
