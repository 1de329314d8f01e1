"""The SQL artifact store: typed artifact envelopes, validated on the way in, and a quarantine.

Every submission is validated twice before it is stored:

1. as an `ArtifactEnvelope` (id, type among `ArtifactType`, schema version, title, aware ``created_at``,
   a JSON object as payload, ...). An envelope built without validation (``model_construct``) is
   validated again here;
2. its payload against the payload schema registered for its declared type (``payload_schemas``, a
   pydantic model per `ArtifactType`; `DEFAULT_PAYLOAD_SCHEMAS` by default).

A submission that fails either check is **quarantined**: kept in the ``artifacts`` table with status
``quarantined``, under a fresh quarantine id, as a `QuarantinedArtifact` that holds what was submitted and
why it was refused. It is never returned by `SqlArtifactStore.get` or `SqlArtifactStore.list`, so nothing
downstream (gates, reports, a parent run) reads an artifact that does not mean what its type says.

The run log has no event type for a quarantine: a writer records it as an ``error`` event built with
`QuarantinedArtifact.error_payload`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy import Engine, bindparam, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from runtime_core.artifacts import ArtifactEnvelope, ArtifactType
from runtime_core.clock import Clock, SystemClock
from runtime_core.events import ErrorPayload
from runtime_core.exceptions import AlreadyExistsError, NotFoundError, StoreError
from runtime_core.ids import IdGenerator, UlidGenerator
from runtime_persistence._database import Database
from runtime_persistence.schema import metadata
from runtime_persistence.spool import NAME_ENTRY, named_entries, spool_hashes

__all__ = [
    "ArtifactQuarantinedError",
    "DEFAULT_PAYLOAD_SCHEMAS",
    "QUARANTINE_ERROR_CODE",
    "ArtifactIssue",
    "ArtifactStatus",
    "QuarantinedArtifact",
    "SqlArtifactStore",
]

QUARANTINE_ERROR_CODE: Final = "artifact_quarantined"
"""The ``code`` of the ``error`` event that records a quarantine (see `QuarantinedArtifact.error_payload`)."""

_MAX_ISSUES: Final = 50
_MAX_INT: Final = 2**31 - 1  # the largest INTEGER on PostgreSQL
_MODEL_CONFIG: Final = ConfigDict(frozen=True, extra="forbid")


class ArtifactStatus(StrEnum):
    """What an ``artifacts`` row holds."""

    VALID = "valid"
    """A validated `ArtifactEnvelope`."""
    QUARANTINED = "quarantined"
    """A refused submission (`QuarantinedArtifact`)."""


class _TestReportPayload(BaseModel):
    """A ``TestReport`` payload: the quality gates read ``status`` (``"passed"`` means the tests pass)."""

    model_config = ConfigDict(extra="allow")

    status: str = Field(min_length=1)


DEFAULT_PAYLOAD_SCHEMAS: Final[Mapping[ArtifactType, type[BaseModel]]] = {
    ArtifactType.TEST_REPORT: _TestReportPayload,
}
"""The payload schemas a store checks by default: those of the types the runtime itself reads.

A ``TestReport`` payload needs a non-empty ``status`` (the ``tests_pass`` gate looks for ``"passed"``).
Other types accept any JSON object unless a schema is registered for them (``payload_schemas``).
"""


class ArtifactIssue(BaseModel):
    """One reason a submission was refused.

    Attributes:
        location: Dotted path of the offending field (``"payload.status"``); empty for the whole submission.
        message: What is wrong with it.
    """

    model_config = _MODEL_CONFIG

    location: str
    message: str


class QuarantinedArtifact(BaseModel):
    """A submission that failed validation, kept aside with the reasons.

    The declared fields (``artifact_id``, ``declared_type``, ``run_id``, ...) are what the submission said,
    when it said it as a string; ``submitted`` is the whole submission as JSON (or its text when it was not
    JSON).

    Attributes:
        id: The quarantine id (``quarantine_...``), under which `SqlArtifactStore.get_quarantined` finds it.
        artifact_id: The id the submission declared, if any.
        declared_type: The type it declared, if any (maybe not an `ArtifactType`).
        run_id: The run it declared, if any.
        agent_id: The agent it declared, if any.
        task_node_id: The task node it declared, if any.
        issues: Why it was refused (at least one).
        submitted: What was submitted.
        quarantined_at: When it was quarantined.
    """

    model_config = _MODEL_CONFIG

    id: str = Field(min_length=1)
    artifact_id: str | None = None
    declared_type: str | None = None
    run_id: str | None = None
    agent_id: str | None = None
    task_node_id: str | None = None
    issues: tuple[ArtifactIssue, ...] = Field(min_length=1)
    submitted: JsonValue = None
    quarantined_at: AwareDatetime

    @property
    def summary(self) -> str:
        """One line: which artifact was quarantined, and the first reasons."""
        what = f"artifact {self.artifact_id!r}" if self.artifact_id else "an artifact without an id"
        kind = f" ({self.declared_type})" if self.declared_type else ""
        reasons = "; ".join(
            f"{issue.location}: {issue.message}" if issue.location else issue.message for issue in self.issues[:3]
        )
        more = f" (and {len(self.issues) - 3} more)" if len(self.issues) > 3 else ""
        return f"{what}{kind} was quarantined as {self.id}: {reasons}{more}"

    def error_payload(self) -> ErrorPayload:
        """The payload of the ``error`` event that records this quarantine in the run log.

        Its ``code`` is `QUARANTINE_ERROR_CODE`, its ``stage`` ``"artifact"``; it is recoverable (the run
        can go on without the artifact, or submit a corrected one).
        """
        return ErrorPayload(code=QUARANTINE_ERROR_CODE, message=self.summary, stage="artifact", recoverable=True)


_artifacts = metadata.tables["artifacts"]
_INSERT = insert(_artifacts)
_GET = select(_artifacts.c.data).where(_artifacts.c.id == bindparam("id"), _artifacts.c.status == bindparam("status"))
_LIST = (
    select(_artifacts.c.data)
    .where(_artifacts.c.run_id == bindparam("run_id"), _artifacts.c.status == ArtifactStatus.VALID.value)
    .order_by(_artifacts.c.created_at, _artifacts.c.id)
)


class ArtifactQuarantinedError(StoreError):
    """`SqlArtifactStore.put` refused an invalid artifact and kept it in quarantine.

    Unlike other store errors, something was written: the quarantine record. Use
    `SqlArtifactStore.submit` to get the outcome as a value instead.

    Attributes:
        quarantine: The quarantine record (its ``error_payload()`` is the run log's ``error`` event).
    """

    def __init__(self, quarantine: QuarantinedArtifact) -> None:
        super().__init__(quarantine.summary)
        self.quarantine = quarantine


class SqlArtifactStore:
    """An `ArtifactStore` on SQLite or PostgreSQL that validates artifacts and quarantines invalid ones.

    Args:
        engine: The database (an engine from `create_engine`, migrated with `upgrade`).
        payload_schemas: A pydantic model per artifact type that its payload must satisfy (types without
            one accept any JSON object). Default `DEFAULT_PAYLOAD_SCHEMAS`.
        clock: Time source of ``quarantined_at``, and of the age of the spool entries an artifact names.
        ids: Source of quarantine ids.
        check_schema: Verify the schema revision on first use.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        payload_schemas: Mapping[ArtifactType, type[BaseModel]] | None = None,
        clock: Clock | None = None,
        ids: IdGenerator | None = None,
        check_schema: bool = True,
    ) -> None:
        self._db = Database(engine, check_schema=check_schema)
        self._schemas = dict(DEFAULT_PAYLOAD_SCHEMAS if payload_schemas is None else payload_schemas)
        self._clock = clock or SystemClock()
        self._ids = ids or UlidGenerator()

    @property
    def engine(self) -> Engine:
        """The engine the store runs on."""
        return self._db.engine

    async def close(self) -> None:
        """Return the store's connection to the engine (the engine stays open)."""
        await self._db.close()

    async def put(self, artifact: ArtifactEnvelope) -> None:
        """Validate and store a new artifact.

        Raises:
            AlreadyExistsError: A valid artifact with this id is stored already.
            ArtifactQuarantinedError: The artifact is invalid; it was quarantined instead.
        """
        outcome = await self.submit(artifact)
        if isinstance(outcome, QuarantinedArtifact):
            raise ArtifactQuarantinedError(outcome)

    async def submit(
        self, candidate: ArtifactEnvelope | Mapping[str, Any] | str | bytes
    ) -> ArtifactEnvelope | QuarantinedArtifact:
        """Validate a submission and store it as an artifact, or quarantine it.

        Args:
            candidate: An envelope, its fields as a mapping, or its JSON text (as a model or a tool would
                produce it).

        Returns:
            The stored, validated envelope, or the quarantine record of an invalid submission (turn it into
            the run log's ``error`` event with `QuarantinedArtifact.error_payload`).

        Raises:
            AlreadyExistsError: The submission is valid but a valid artifact with its id is stored already.
        """
        envelope, issues = self._validate(candidate)
        if envelope is not None:
            try:
                await self._insert("put_artifact", _valid_row(envelope))
            except IntegrityError:
                raise AlreadyExistsError("artifact", envelope.id) from None
            return envelope
        quarantine = _quarantine(candidate, issues, self._ids.new_id("quarantine"), self._clock.now())
        await self._insert("quarantine_artifact", _quarantine_row(quarantine))
        return quarantine

    async def _insert(self, operation: str, row: dict[str, Any]) -> None:
        """Insert an artifact row; the spool entries its JSON names are named again in the same transaction."""
        named = spool_hashes(row["data"])
        at = self._clock.now()

        def work(connection: Connection) -> None:
            connection.execute(_INSERT, row)
            if named:
                connection.execute(NAME_ENTRY, named_entries(named, at))

        await self._db.write(operation, work)

    async def get(self, artifact_id: str) -> ArtifactEnvelope:
        """Return a valid artifact.

        Raises:
            NotFoundError: No valid artifact has this id (quarantined submissions are not artifacts).
        """
        data = await self._db.read("get_artifact", lambda c: _scalar(c, artifact_id, ArtifactStatus.VALID))
        if data is None:
            raise NotFoundError("artifact", artifact_id)
        return ArtifactEnvelope.model_validate_json(data)

    async def list(self, run_id: str) -> Sequence[ArtifactEnvelope]:
        """Return a run's valid artifacts in creation order (``created_at``, then id)."""
        rows = await self._db.read("list_artifacts", lambda c: c.execute(_LIST, {"run_id": run_id}).scalars().all())
        return [ArtifactEnvelope.model_validate_json(data) for data in rows]

    async def get_quarantined(self, quarantine_id: str) -> QuarantinedArtifact:
        """Return a quarantine record by its quarantine id.

        Raises:
            NotFoundError: No such quarantine record.
        """
        data = await self._db.read(
            "get_quarantined_artifact", lambda c: _scalar(c, quarantine_id, ArtifactStatus.QUARANTINED)
        )
        if data is None:
            raise NotFoundError("quarantined artifact", quarantine_id)
        return QuarantinedArtifact.model_validate_json(data)

    async def list_quarantined(self, *, run_id: str | None = None) -> Sequence[QuarantinedArtifact]:
        """Return quarantine records, oldest first, optionally only those that declared `run_id`."""
        query = (
            select(_artifacts.c.data)
            .where(_artifacts.c.status == ArtifactStatus.QUARANTINED.value)
            .order_by(_artifacts.c.created_at, _artifacts.c.id)
        )
        if run_id is not None:
            query = query.where(_artifacts.c.run_id == run_id)
        rows = await self._db.read("list_quarantined_artifacts", lambda c: c.execute(query).scalars().all())
        return [QuarantinedArtifact.model_validate_json(data) for data in rows]

    def _validate(
        self, candidate: ArtifactEnvelope | Mapping[str, Any] | str | bytes
    ) -> tuple[ArtifactEnvelope | None, tuple[ArtifactIssue, ...]]:
        try:
            if isinstance(candidate, str | bytes):
                envelope = ArtifactEnvelope.model_validate_json(candidate)
            elif isinstance(candidate, ArtifactEnvelope):
                # Validated again: an envelope may have been built without validation (model_construct).
                envelope = ArtifactEnvelope.model_validate(dict(candidate.__dict__))
            else:
                envelope = ArtifactEnvelope.model_validate(dict(candidate))
        except ValidationError as error:
            return None, _issues(error, prefix="")
        schema = self._schemas.get(envelope.type)
        if schema is not None:
            try:
                schema.model_validate(envelope.payload)
            except ValidationError as error:
                return None, _issues(error, prefix="payload")
        return envelope, ()


def _scalar(connection: Connection, key: str, status: ArtifactStatus) -> str | None:
    data: str | None = connection.execute(_GET, {"id": key, "status": status.value}).scalar()
    return data


def _issues(error: ValidationError, *, prefix: str) -> tuple[ArtifactIssue, ...]:
    issues = tuple(
        ArtifactIssue(
            location=".".join(str(part) for part in (prefix, *entry["loc"]) if part != ""), message=entry["msg"]
        )
        for entry in error.errors(include_url=False, include_context=False)[:_MAX_ISSUES]
    )
    return issues or (ArtifactIssue(location=prefix, message=str(error)),)


def _submitted(candidate: ArtifactEnvelope | Mapping[str, Any] | str | bytes) -> JsonValue:
    """The submission as JSON: parsed if it is JSON text, its fields otherwise (odd values as their repr)."""
    if isinstance(candidate, str | bytes):
        text = candidate.decode(errors="replace") if isinstance(candidate, bytes) else candidate
        try:
            parsed: JsonValue = json.loads(text)
        except ValueError:
            return text
        return parsed
    fields = dict(candidate.__dict__) if isinstance(candidate, ArtifactEnvelope) else dict(candidate)
    jsonable: JsonValue = to_jsonable_python(fields, fallback=repr)
    return jsonable


def _declared(submitted: JsonValue, key: str) -> str | None:
    value = submitted.get(key) if isinstance(submitted, dict) else None
    return value if isinstance(value, str) and value else None


def _quarantine(
    candidate: ArtifactEnvelope | Mapping[str, Any] | str | bytes,
    issues: tuple[ArtifactIssue, ...],
    quarantine_id: str,
    at: datetime,
) -> QuarantinedArtifact:
    submitted = _submitted(candidate)
    return QuarantinedArtifact(
        id=quarantine_id,
        artifact_id=_declared(submitted, "id"),
        declared_type=_declared(submitted, "type"),
        run_id=_declared(submitted, "run_id"),
        agent_id=_declared(submitted, "agent_id"),
        task_node_id=_declared(submitted, "task_node_id"),
        issues=issues,
        submitted=submitted,
        quarantined_at=at,
    )


def _valid_row(envelope: ArtifactEnvelope) -> dict[str, Any]:
    return {
        "id": envelope.id,
        "status": ArtifactStatus.VALID.value,
        "type": envelope.type.value,
        "schema_version": envelope.schema_version,
        "title": envelope.title,
        "run_id": envelope.run_id,
        "agent_id": envelope.agent_id,
        "task_node_id": envelope.task_node_id,
        "created_at": envelope.created_at,
        "data": envelope.model_dump_json(),
    }


def _quarantine_row(quarantine: QuarantinedArtifact) -> dict[str, Any]:
    # The columns repeat what the submission declared, as far as it can be read; the record is in ``data``.
    submitted = quarantine.submitted
    version = submitted.get("schema_version") if isinstance(submitted, dict) else None
    title = _declared(submitted, "title")
    return {
        "id": quarantine.id,
        "status": ArtifactStatus.QUARANTINED.value,
        "type": quarantine.declared_type or "",
        "schema_version": version if type(version) is int and 0 <= version <= _MAX_INT else 0,
        "title": title or "",
        "run_id": quarantine.run_id,
        "agent_id": quarantine.agent_id,
        "task_node_id": quarantine.task_node_id,
        "created_at": quarantine.quarantined_at,
        "data": quarantine.model_dump_json(),
    }
