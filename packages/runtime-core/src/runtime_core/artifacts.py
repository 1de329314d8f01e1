"""Artifacts: typed, non-message outputs of a run (plans, reports, diffs)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import AwareDatetime, Field, JsonValue, PositiveInt

from runtime_core._base import FrozenModel

__all__ = ["ArtifactEnvelope", "ArtifactStore", "ArtifactType"]


class ArtifactType(StrEnum):
    """Kinds of artifact envelope (names as in the spec)."""

    PLAN_CARD = "PlanCard"
    DIFF_CARD = "DiffCard"
    REPORT_CARD = "ReportCard"
    CHECKLIST_CARD = "ChecklistCard"
    TEST_REPORT = "TestReport"
    REVIEW_REPORT = "ReviewReport"
    IMAGE_ARTIFACT = "ImageArtifact"
    LAYOUT_GRAPH = "LayoutGraph"
    VISUAL_DIFF_REPORT = "VisualDiffReport"


class ArtifactEnvelope(FrozenModel):
    """A typed artifact with its provenance."""

    id: str = Field(min_length=1)
    type: ArtifactType
    schema_version: PositiveInt = 1
    title: str
    payload: dict[str, JsonValue] = Field(default_factory=dict)
    run_id: str | None = None
    agent_id: str | None = None
    task_node_id: str | None = None
    created_at: AwareDatetime
    render_hints: dict[str, JsonValue] | None = None


@runtime_checkable
class ArtifactStore(Protocol):
    """Stores artifact envelopes."""

    async def put(self, artifact: ArtifactEnvelope) -> None:
        """Store `artifact` (its id must be new)."""
        ...

    async def get(self, artifact_id: str) -> ArtifactEnvelope:
        """Return an artifact; raise `NotFoundError` if absent."""
        ...

    async def list(self, run_id: str) -> Sequence[ArtifactEnvelope]:
        """Return a run's artifacts in creation order."""
        ...
