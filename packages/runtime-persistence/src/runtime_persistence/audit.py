"""Audit export: a run's log, record and approvals as a self-checking bundle, and the verifier.

`export_audit` writes a **bundle directory** (created whole: it is written beside the target and renamed
into place, so a crashed export leaves no half bundle):

| file | holds |
|---|---|
| ``events.jsonl`` | every event of the run log, one per line, in ``seq`` order |
| ``run.json`` | the run record (``runtime_core.Run``) |
| ``approvals.jsonl`` | every approval of the run, one per line, by request time (then id) |
| ``manifest.json`` | run id, counts, schema revision, export time, exporter, and the digests below |

Records are written as **canonical JSON**: keys sorted at every level, no whitespace, UTF-8 (non-ASCII
characters as they are), one record per line, each line ending in a line feed. Exporting the same run twice
gives byte-identical data files. For each data file the manifest holds the sha256 of its bytes, its size,
its number of lines and the sha256 of every line (without its line feed), so that a verifier can name the
line that changed. The manifest's own ``digest`` is the sha256 of the canonical JSON of every other field
of the manifest: it covers the file digests, so the whole bundle hangs on that one value. Keep it
somewhere else (a ticket, a ledger) to detect a bundle rewritten consistently, digests included.

`verify_audit` recomputes every digest and count and reports each difference, and checks what the bundle
claims about the run: every line is a valid record of that run, ``seq`` is dense from 1, and the run
record equals the projection of the events (``Run.created`` then ``Run.apply``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from enum import StrEnum
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError
from sqlalchemy import Engine

from runtime_core.approvals import Approval, ApprovalStore
from runtime_core.clock import Clock, SystemClock
from runtime_core.events import Event
from runtime_core.runs import Run
from runtime_core.stores import RunStore
from runtime_persistence.approvals import SqlApprovalStore
from runtime_persistence.runs import SqlRunStore
from runtime_persistence.schema import SCHEMA_REVISION

__all__ = [
    "AUDIT_FORMAT",
    "AuditCounts",
    "AuditFile",
    "AuditManifest",
    "AuditProblem",
    "AuditProblemKind",
    "AuditVerification",
    "export_audit",
    "verify_audit",
]

AUDIT_FORMAT: Final = "agent-runtime-audit"
"""The ``format`` of an audit bundle's manifest."""

MANIFEST_FILE: Final = "manifest.json"
EVENTS_FILE: Final = "events.jsonl"
RUN_FILE: Final = "run.json"
APPROVALS_FILE: Final = "approvals.jsonl"
_DATA_FILES: Final = (EVENTS_FILE, RUN_FILE, APPROVALS_FILE)
_MAX_LINE_PROBLEMS: Final = 100  # per file: a shifted file would otherwise report every line
_MODEL_CONFIG: Final = ConfigDict(frozen=True, extra="forbid")
_SHA256: Final = r"^[0-9a-f]{64}$"


class AuditFile(BaseModel):
    """What the manifest records about one data file of a bundle.

    Attributes:
        sha256: sha256 of the file's bytes.
        size: Its size in bytes.
        lines: Its number of lines (records).
        line_sha256: sha256 of each line, without its line feed.
    """

    model_config = _MODEL_CONFIG

    sha256: str = Field(pattern=_SHA256)
    size: NonNegativeInt
    lines: NonNegativeInt
    line_sha256: tuple[str, ...] = ()


class AuditCounts(BaseModel):
    """How many records a bundle holds.

    Attributes:
        events: Events in ``events.jsonl`` (the run's ``last_seq``).
        approvals: Approvals in ``approvals.jsonl``.
    """

    model_config = _MODEL_CONFIG

    events: NonNegativeInt
    approvals: NonNegativeInt


class AuditManifest(BaseModel):
    """The manifest of an audit bundle (``manifest.json``).

    Attributes:
        format: Always `AUDIT_FORMAT`.
        format_version: The bundle layout's version (1).
        run_id: The exported run.
        exported_at: When the bundle was written.
        schema_revision: The database schema revision the run was read from (``None`` for a store that is
            not a database).
        exporter: The package and version that wrote the bundle.
        counts: Records per file.
        files: Digests, sizes and line counts of the data files, by file name.
        digest: sha256 of the canonical JSON of every other field of the manifest.
    """

    model_config = _MODEL_CONFIG

    format: Literal["agent-runtime-audit"] = AUDIT_FORMAT
    format_version: Literal[1] = 1
    run_id: str = Field(min_length=1)
    exported_at: AwareDatetime
    schema_revision: str | None
    exporter: str
    counts: AuditCounts
    files: dict[str, AuditFile]
    digest: str = Field(pattern=_SHA256)


class AuditProblemKind(StrEnum):
    """What kind of difference `verify_audit` found."""

    MISSING_FILE = "missing_file"
    """A file of the bundle is missing."""
    UNEXPECTED_FILE = "unexpected_file"
    """The bundle holds a file the manifest does not list."""
    MANIFEST_INVALID = "manifest_invalid"
    """``manifest.json`` is not a manifest this version can read."""
    MANIFEST_DIGEST = "manifest_digest"
    """The manifest's fields do not match its digest: the manifest was changed."""
    FILE_DIGEST = "file_digest"
    """A data file's bytes do not match the manifest's digest."""
    LINE_DIGEST = "line_digest"
    """A line does not match the manifest's digest for it."""
    LINE_COUNT = "line_count"
    """A data file has more or fewer lines than the manifest says."""
    COUNT = "count"
    """A count of the manifest does not match the records."""
    INVALID_RECORD = "invalid_record"
    """A line is not a valid record (event, run or approval)."""
    RUN_ID = "run_id"
    """A record belongs to another run than the bundle's."""
    SEQ = "seq"
    """``seq`` is not dense from 1 in line order."""
    PROJECTION = "projection"
    """The run record is not the projection of the events."""


class AuditProblem(BaseModel):
    """One difference between a bundle and what it should be.

    Attributes:
        kind: What kind of difference.
        message: What exactly differs.
        file: The file concerned, if one is.
        line: The line concerned (from 1), if one is.
    """

    model_config = _MODEL_CONFIG

    kind: AuditProblemKind
    message: str
    file: str | None = None
    line: int | None = None


class AuditVerification(BaseModel):
    """The verdict of `verify_audit`.

    Attributes:
        path: The bundle directory.
        ok: Whether nothing differs (``problems`` is empty).
        run_id: The run the bundle is about (from its manifest, else its run record), if readable.
        manifest: The manifest, if it could be read.
        problems: Every difference found.
    """

    model_config = _MODEL_CONFIG

    path: str
    ok: bool
    run_id: str | None = None
    manifest: AuditManifest | None = None
    problems: tuple[AuditProblem, ...] = ()


async def export_audit(
    source: Engine | RunStore,
    run_id: str,
    path: str | os.PathLike[str],
    *,
    approvals: ApprovalStore | None = None,
    clock: Clock | None = None,
) -> AuditManifest:
    """Write the audit bundle of a run to the directory `path` (see the module documentation).

    The events exported are those up to the run record's ``last_seq`` when it is read, so the record and
    the events agree even while the run goes on.

    Args:
        source: A database (an engine from `create_engine`, migrated with `upgrade`) or a run store.
        run_id: The run.
        path: The bundle directory to create; it must not exist, or be empty.
        approvals: Where the run's approvals are (default: the database's for an engine or a
            `SqlRunStore`; none for another run store).
        clock: Time source of the export time.

    Returns:
        The manifest written.

    Raises:
        NotFoundError: No such run.
        FileExistsError: `path` exists and is not an empty directory.
    """
    target = Path(path)
    await asyncio.to_thread(_check_target, target)
    owned: list[SqlRunStore | SqlApprovalStore] = []
    store: RunStore
    if isinstance(source, Engine):
        sql_store = SqlRunStore(source)
        owned.append(sql_store)
        store = sql_store
    else:
        store = source
    if approvals is None and isinstance(store, SqlRunStore):
        approvals = SqlApprovalStore(store.engine)
        owned.append(approvals)
    try:
        run = await store.get_run(run_id)
        events = await store.read_events(run_id, limit=run.last_seq)
        requests = [] if approvals is None else list(await approvals.list(run_id=run_id))
    finally:
        for owned_store in owned:
            await owned_store.close()
    requests.sort(key=lambda approval: (approval.requested_at, approval.id))
    contents = {
        EVENTS_FILE: _jsonl(event.model_dump_json() for event in events),
        RUN_FILE: _jsonl([run.model_dump_json()]),
        APPROVALS_FILE: _jsonl(approval.model_dump_json() for approval in requests),
    }
    fields: dict[str, Any] = {
        "format": AUDIT_FORMAT,
        "format_version": 1,
        "run_id": run_id,
        "exported_at": (clock or SystemClock()).now(),
        "schema_revision": SCHEMA_REVISION if isinstance(store, SqlRunStore) else None,
        "exporter": f"runtime-persistence {version('runtime-persistence')}",
        "counts": AuditCounts(events=len(events), approvals=len(requests)),
        "files": {name: _describe(content) for name, content in contents.items()},
    }
    unsigned = AuditManifest(**fields, digest="0" * 64)
    manifest = unsigned.model_copy(update={"digest": _manifest_digest(json.loads(unsigned.model_dump_json()))})
    await asyncio.to_thread(_write_bundle, target, contents, manifest)
    return manifest


def verify_audit(path: str | os.PathLike[str]) -> AuditVerification:
    """Check an audit bundle: digests, counts, records, dense ``seq`` and the run projection.

    It reads files only (no database); from async code call it with ``asyncio.to_thread``.

    Args:
        path: The bundle directory.

    Returns:
        The verdict, with every difference found (``ok`` when there is none).
    """
    return _Verifier(Path(path)).verify()


class _Verifier:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[AuditProblem] = []
        self.manifest: AuditManifest | None = None

    def verify(self) -> AuditVerification:
        self.manifest = self._read_manifest()
        expected = list(_DATA_FILES)
        if self.manifest is not None:
            for name in _DATA_FILES:
                if name not in self.manifest.files:
                    self._problem(
                        AuditProblemKind.MANIFEST_INVALID, f"{MANIFEST_FILE} does not list {name}", MANIFEST_FILE
                    )
            expected += [name for name in self.manifest.files if name not in _DATA_FILES]
        contents = {name: self._read_file(name) for name in expected}
        self._check_unexpected(expected)
        run_id = self.manifest.run_id if self.manifest is not None else None
        run = self._parse_run(contents.get(RUN_FILE))
        run_id = run_id or (run.id if run is not None else None)
        events = self._parse_events(contents.get(EVENTS_FILE), run_id)
        self._check_approvals(contents.get(APPROVALS_FILE), run_id)
        self._check_run(run, run_id, events)
        self._check_counts(contents)
        return AuditVerification(
            path=str(self.root),
            ok=not self.problems,
            run_id=run_id,
            manifest=self.manifest,
            problems=tuple(self.problems),
        )

    def _problem(self, kind: AuditProblemKind, message: str, file: str | None = None, line: int | None = None) -> None:
        self.problems.append(AuditProblem(kind=kind, message=message, file=file, line=line))

    def _read_manifest(self) -> AuditManifest | None:
        location = self.root / MANIFEST_FILE
        if not self.root.is_dir():
            self._problem(AuditProblemKind.MISSING_FILE, f"{self.root} is not a directory")
            return None
        if not location.is_file():
            self._problem(AuditProblemKind.MISSING_FILE, f"{MANIFEST_FILE} is missing", MANIFEST_FILE)
            return None
        try:
            document = json.loads(location.read_bytes())
            manifest = AuditManifest.model_validate(document)
        except (ValueError, ValidationError) as error:
            self._problem(
                AuditProblemKind.MANIFEST_INVALID, f"{MANIFEST_FILE} is not a manifest: {error}", MANIFEST_FILE
            )
            return None
        if _manifest_digest(document) != manifest.digest:
            self._problem(
                AuditProblemKind.MANIFEST_DIGEST,
                f"the fields of {MANIFEST_FILE} do not match its digest {manifest.digest}: the manifest was changed",
                MANIFEST_FILE,
            )
        return manifest

    def _read_file(self, name: str) -> bytes | None:
        location = self.root / name
        if not location.is_file():
            self._problem(AuditProblemKind.MISSING_FILE, f"{name} is missing", name)
            return None
        content = location.read_bytes()
        if self.manifest is not None and name in self.manifest.files:
            self._check_digests(name, content, self.manifest.files[name])
        return content

    def _check_digests(self, name: str, content: bytes, recorded: AuditFile) -> None:
        actual = _describe(content)
        if actual.sha256 == recorded.sha256:
            return
        self._problem(
            AuditProblemKind.FILE_DIGEST,
            f"{name} has sha256 {actual.sha256} ({actual.size} bytes), the manifest records {recorded.sha256} "
            f"({recorded.size} bytes)",
            name,
        )
        if actual.lines != recorded.lines:
            self._problem(
                AuditProblemKind.LINE_COUNT,
                f"{name} has {actual.lines} lines, the manifest records {recorded.lines}",
                name,
            )
        changed = [
            number
            for number, (found, expected) in enumerate(zip(actual.line_sha256, recorded.line_sha256, strict=False), 1)
            if found != expected
        ]
        for number in changed[:_MAX_LINE_PROBLEMS]:
            self._problem(AuditProblemKind.LINE_DIGEST, f"{name} line {number} was changed", name, number)
        if len(changed) > _MAX_LINE_PROBLEMS:
            self._problem(
                AuditProblemKind.LINE_DIGEST,
                f"{name}: {len(changed) - _MAX_LINE_PROBLEMS} more changed lines (not listed)",
                name,
            )

    def _check_unexpected(self, expected: Sequence[str]) -> None:
        if not self.root.is_dir():
            return
        known = {MANIFEST_FILE, *expected}
        for entry in sorted(self.root.iterdir()):
            if entry.name not in known:
                self._problem(AuditProblemKind.UNEXPECTED_FILE, f"{entry.name} is not part of the bundle", entry.name)

    def _parse_run(self, content: bytes | None) -> Run | None:
        if content is None:
            return None
        lines = _lines(content)
        if len(lines) != 1:
            self._problem(AuditProblemKind.INVALID_RECORD, f"{RUN_FILE} holds {len(lines)} records, not 1", RUN_FILE)
            return None
        try:
            return Run.model_validate_json(lines[0])
        except ValidationError as error:
            self._problem(AuditProblemKind.INVALID_RECORD, f"{RUN_FILE} is not a run record: {error}", RUN_FILE, 1)
            return None

    def _parse_events(self, content: bytes | None, run_id: str | None) -> list[Event] | None:
        """The events, or ``None`` when any is missing, invalid, of another run or out of place."""
        if content is None:
            return None
        events: list[Event] = []
        whole = True
        for number, line in enumerate(_lines(content), 1):
            try:
                event = Event.model_validate_json(line)
            except ValidationError as error:
                self._problem(
                    AuditProblemKind.INVALID_RECORD, f"line {number} is not an event: {error}", EVENTS_FILE, number
                )
                whole = False
                continue
            if run_id is not None and event.run_id != run_id:
                self._problem(
                    AuditProblemKind.RUN_ID,
                    f"line {number} is an event of run {event.run_id!r}, not {run_id!r}",
                    EVENTS_FILE,
                    number,
                )
                whole = False
            if event.seq != number:
                self._problem(
                    AuditProblemKind.SEQ,
                    f"line {number} holds seq {event.seq}: seq must be dense from 1, in order",
                    EVENTS_FILE,
                    number,
                )
                whole = False
            events.append(event)
        return events if whole else None

    def _check_approvals(self, content: bytes | None, run_id: str | None) -> None:
        if content is None:
            return
        for number, line in enumerate(_lines(content), 1):
            try:
                approval = Approval.model_validate_json(line)
            except ValidationError as error:
                self._problem(
                    AuditProblemKind.INVALID_RECORD,
                    f"line {number} is not an approval: {error}",
                    APPROVALS_FILE,
                    number,
                )
                continue
            if run_id is not None and approval.run_id != run_id:
                self._problem(
                    AuditProblemKind.RUN_ID,
                    f"line {number} is an approval of run {approval.run_id!r}, not {run_id!r}",
                    APPROVALS_FILE,
                    number,
                )

    def _check_run(self, run: Run | None, run_id: str | None, events: list[Event] | None) -> None:
        if run is None:
            return
        if run_id is not None and run.id != run_id:
            self._problem(AuditProblemKind.RUN_ID, f"{RUN_FILE} is run {run.id!r}, not {run_id!r}", RUN_FILE, 1)
        if events is None:
            return  # the events are not whole: the problems found say why, a projection would only repeat them
        if not events:
            self._problem(
                AuditProblemKind.PROJECTION, f"{EVENTS_FILE} holds no event, not even run.created", EVENTS_FILE
            )
            return
        try:
            projected = Run.created(events[0]).apply(*events[1:])
        except ValueError as error:
            self._problem(AuditProblemKind.PROJECTION, f"the events do not project to a run: {error}", EVENTS_FILE, 1)
            return
        recorded, expected = _plain(run), _plain(projected)
        differing = sorted(key for key in recorded.keys() | expected.keys() if recorded.get(key) != expected.get(key))
        if differing:
            self._problem(
                AuditProblemKind.PROJECTION,
                f"{RUN_FILE} differs from the projection of the events in {', '.join(differing)}",
                RUN_FILE,
                1,
            )

    def _check_counts(self, contents: dict[str, bytes | None]) -> None:
        if self.manifest is None:
            return
        counts = self.manifest.counts
        for name, recorded in ((EVENTS_FILE, counts.events), (APPROVALS_FILE, counts.approvals)):
            content = contents.get(name)
            if content is not None and (found := len(_lines(content))) != recorded:
                self._problem(
                    AuditProblemKind.COUNT, f"{name} holds {found} records, the manifest counts {recorded}", name
                )


def _canonical(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _jsonl(records: Iterable[str]) -> bytes:
    """One canonical JSON line per record (each given as the JSON its model writes)."""
    return b"".join(_canonical(json.loads(record)) + b"\n" for record in records)


def _lines(content: bytes) -> list[bytes]:
    lines = content.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the line feed that ends the last line
    return lines


def _describe(content: bytes) -> AuditFile:
    lines = _lines(content)
    return AuditFile(
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        lines=len(lines),
        line_sha256=tuple(hashlib.sha256(line).hexdigest() for line in lines),
    )


def _manifest_digest(document: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a manifest document without its ``digest``."""
    return hashlib.sha256(_canonical({key: value for key, value in document.items() if key != "digest"})).hexdigest()


def _plain(run: Run) -> dict[str, Any]:
    plain: dict[str, Any] = json.loads(run.model_dump_json())
    return plain


def _check_target(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} exists and is not an empty directory: the bundle needs a new one")


def _write_bundle(target: Path, contents: dict[str, bytes], manifest: AuditManifest) -> None:
    """Write the bundle beside `target`, fsync it, and rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        manifest_json = json.dumps(json.loads(manifest.model_dump_json()), sort_keys=True, indent=2) + "\n"
        for name, content in {**contents, MANIFEST_FILE: manifest_json.encode()}.items():
            with (staging / name).open("wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
        if target.exists():
            target.rmdir()  # an empty directory (checked before): rename needs the name free
        staging.rename(target)
    except BaseException:
        for leftover in staging.glob("*") if staging.exists() else ():
            leftover.unlink()
        if staging.exists():
            staging.rmdir()
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX; other systems have no directory handles to sync)."""
    if os.name != "posix":  # pragma: no cover - the runtime's CI is POSIX
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
