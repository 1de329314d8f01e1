"""Audit export and verification: a real agent run on both databases, and every kind of tampering."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from runtime_control import ApprovalBroker
from runtime_core import (
    AgentSpec,
    Approval,
    ApprovalDecision,
    ApprovalResolution,
    InMemoryRunStore,
    ManualClock,
    NotFoundError,
    RunStatus,
    ToolCall,
)
from runtime_core.policy import PolicyDecision, PolicyOutcome
from runtime_execution import AgentLoop, ScriptedProvider, builtin_tools
from runtime_persistence import (
    AUDIT_FORMAT,
    SCHEMA_REVISION,
    AuditManifest,
    AuditProblemKind,
    AuditVerification,
    SqlApprovalStore,
    SqlRunStore,
    export_audit,
    verify_audit,
)
from tests.persistence.support import BACKENDS, T0, backend_url, migrated_engine

SCRIPT = {
    "steps": [
        {"tool_calls": [{"name": "file:list", "arguments": {}}]},
        {"text": "Listed them.", "tool_calls": [{"name": "file:read", "arguments": {"path": "notes.txt"}}]},
        {"tool_calls": [{"name": "complete_task", "arguments": {"summary": "listed and read the files"}}]},
    ]
}
DATA_FILES = ("events.jsonl", "run.json", "approvals.jsonl")


class AskAboutFiles:
    def evaluate(self, call: ToolCall, spec: Any, context: Any) -> PolicyDecision:
        if call.name == "file:list":
            return PolicyDecision(
                allowed=True, requires_confirmation=True, policy_decision=PolicyOutcome.ALLOW_WITH_CONFIRM
            )
        return PolicyDecision(allowed=True, policy_decision=PolicyOutcome.ALLOW)


def _allow(approval: Approval) -> ApprovalResolution:
    return ApprovalResolution(approval_id=approval.id, decision=ApprovalDecision.ALLOW, resolved_by="auditor")


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine(backend_url(request, tmp_path)) as engine:
        yield engine


def _agent_run(engine: Engine, workspace: Path) -> str:
    """Drive a scripted agent to completion on the SQL stores, with one approval on the way."""
    (workspace / "notes.txt").write_text("remember the milk\n")

    async def main() -> str:
        store = SqlRunStore(engine)
        approvals = SqlApprovalStore(engine)
        clock = ManualClock(T0)
        try:
            loop = AgentLoop(
                providers=[ScriptedProvider(SCRIPT)],
                tools=builtin_tools(),
                store=store,
                policy=AskAboutFiles(),
                approvals=ApprovalBroker(approvals, auto=_allow, clock=clock),
                workspace=workspace,
                clock=clock,
            )
            result = await loop.run(AgentSpec(name="auditee", model="scripted:audit"), "List and read the files")
            assert result.status is RunStatus.COMPLETED, result
            return result.run_id
        finally:
            await approvals.close()
            await store.close()

    return asyncio.run(main())


@pytest.fixture
def exported(engine: Engine, tmp_path: Path) -> tuple[Engine, str, Path, AuditManifest]:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    run_id = _agent_run(engine, workspace)
    bundle = tmp_path / "bundle"
    manifest = asyncio.run(export_audit(engine, run_id, bundle, clock=ManualClock(T0)))
    return engine, run_id, bundle, manifest


def _kinds(verification: AuditVerification) -> set[AuditProblemKind]:
    return {problem.kind for problem in verification.problems}


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _reseal(bundle: Path) -> None:
    """Rewrite the manifest to match the files as they are now: a consistent forgery of the digests."""
    document = json.loads((bundle / "manifest.json").read_bytes())
    for name in DATA_FILES:
        content = (bundle / name).read_bytes()
        lines = content.splitlines()
        document["files"][name] = {
            "sha256": hashlib.sha256(content).hexdigest(),
            "size": len(content),
            "lines": len(lines),
            "line_sha256": [hashlib.sha256(line).hexdigest() for line in lines],
        }
    document["counts"]["events"] = len(_lines(bundle / "events.jsonl"))
    unsigned = {key: value for key, value in document.items() if key != "digest"}
    document["digest"] = hashlib.sha256(_canonical(unsigned)).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(document, indent=2))


# A real agent run, exported and verified.


def test_the_export_of_a_real_agent_run_verifies(exported: tuple[Engine, str, Path, AuditManifest]) -> None:
    engine, run_id, bundle, manifest = exported
    assert sorted(path.name for path in bundle.iterdir()) == sorted([*DATA_FILES, "manifest.json"])
    assert (manifest.format, manifest.format_version, manifest.run_id) == (AUDIT_FORMAT, 1, run_id)
    assert manifest.schema_revision == SCHEMA_REVISION
    assert manifest.exported_at == T0
    assert manifest.exporter.startswith("runtime-persistence ")
    assert AuditManifest.model_validate_json((bundle / "manifest.json").read_bytes()) == manifest

    async def recorded() -> tuple[Any, list[Any], list[Approval]]:
        store, approvals = SqlRunStore(engine), SqlApprovalStore(engine)
        try:
            return (
                await store.get_run(run_id),
                list(await store.read_events(run_id)),
                list(await approvals.list(run_id=run_id)),
            )
        finally:
            await store.close()
            await approvals.close()

    run, events, approvals = asyncio.run(recorded())
    assert manifest.counts.events == len(events) == run.last_seq > 10
    assert manifest.counts.approvals == len(approvals) == 1
    lines = _lines(bundle / "events.jsonl")
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, len(events) + 1))
    assert [json.loads(line) for line in lines] == [json.loads(event.model_dump_json()) for event in events]
    assert all(line == _canonical(json.loads(line)) for line in lines), "canonical JSON: sorted keys, no spaces"
    assert json.loads((bundle / "run.json").read_bytes()) == json.loads(run.model_dump_json())
    [approval_line] = _lines(bundle / "approvals.jsonl")
    assert Approval.model_validate_json(approval_line) == approvals[0]
    for name in DATA_FILES:
        content = (bundle / name).read_bytes()
        assert manifest.files[name].sha256 == hashlib.sha256(content).hexdigest()
        assert manifest.files[name].size == len(content)

    verification = verify_audit(bundle)
    assert verification.ok, verification.problems
    assert verification.problems == ()
    assert verification.run_id == run_id
    assert verification.manifest == manifest
    json.loads(verification.model_dump_json())  # a verdict a CLI can print


def test_exporting_again_writes_the_same_bytes(exported: tuple[Engine, str, Path, AuditManifest]) -> None:
    engine, run_id, bundle, manifest = exported

    async def export_from_the_store() -> AuditManifest:
        store = SqlRunStore(engine)
        try:
            return await export_audit(store, run_id, bundle.with_name("again"), clock=ManualClock(T0))
        finally:
            await store.close()

    again = asyncio.run(export_from_the_store())
    assert again == manifest
    for name in (*DATA_FILES, "manifest.json"):
        assert (bundle / name).read_bytes() == (bundle.with_name("again") / name).read_bytes(), name


# Tampering.


def test_a_changed_event_line_is_named(exported: tuple[Engine, str, Path, AuditManifest]) -> None:
    _, _, bundle, _ = exported
    path = bundle / "events.jsonl"
    lines = _lines(path)
    event = json.loads(lines[2])
    event["agent_id"] = "someone-else"
    lines[2] = _canonical(event)
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    verification = verify_audit(bundle)
    assert not verification.ok
    assert _kinds(verification) == {AuditProblemKind.FILE_DIGEST, AuditProblemKind.LINE_DIGEST}
    [changed] = [p for p in verification.problems if p.kind is AuditProblemKind.LINE_DIGEST]
    assert (changed.file, changed.line) == ("events.jsonl", 3)
    assert "events.jsonl line 3" in changed.message


def test_a_removed_event_line_breaks_counts_digests_and_seq(exported: tuple[Engine, str, Path, AuditManifest]) -> None:
    _, _, bundle, manifest = exported
    path = bundle / "events.jsonl"
    lines = _lines(path)
    del lines[4]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    verification = verify_audit(bundle)
    assert {
        AuditProblemKind.FILE_DIGEST,
        AuditProblemKind.LINE_COUNT,
        AuditProblemKind.LINE_DIGEST,
        AuditProblemKind.COUNT,
        AuditProblemKind.SEQ,
    } == _kinds(verification)
    seq = [p for p in verification.problems if p.kind is AuditProblemKind.SEQ]
    assert seq[0].line == 5
    assert "holds seq 6" in seq[0].message
    count = next(p for p in verification.problems if p.kind is AuditProblemKind.COUNT)
    assert f"holds {manifest.counts.events - 1} records, the manifest counts {manifest.counts.events}" in count.message


@pytest.mark.parametrize("name", [*DATA_FILES, "manifest.json"])
def test_a_deleted_file_is_reported(exported: tuple[Engine, str, Path, AuditManifest], name: str) -> None:
    _, _, bundle, _ = exported
    (bundle / name).unlink()
    verification = verify_audit(bundle)
    assert not verification.ok
    assert [(p.kind, p.file) for p in verification.problems] == [(AuditProblemKind.MISSING_FILE, name)]


def test_a_changed_manifest_is_reported(exported: tuple[Engine, str, Path, AuditManifest]) -> None:
    _, _, bundle, manifest = exported
    document = json.loads((bundle / "manifest.json").read_bytes())
    document["counts"]["events"] += 1
    (bundle / "manifest.json").write_text(json.dumps(document))
    verification = verify_audit(bundle)
    assert _kinds(verification) == {AuditProblemKind.MANIFEST_DIGEST, AuditProblemKind.COUNT}
    assert verification.manifest is not None
    assert verification.manifest.counts.events == manifest.counts.events + 1


def test_an_unreadable_manifest_is_reported_and_the_data_still_checked(
    exported: tuple[Engine, str, Path, AuditManifest],
) -> None:
    _, run_id, bundle, _ = exported
    (bundle / "manifest.json").write_text('{"format": "something else"}')
    verification = verify_audit(bundle)
    assert [p.kind for p in verification.problems] == [AuditProblemKind.MANIFEST_INVALID]
    assert verification.run_id == run_id  # from run.json


def test_a_consistent_forgery_is_caught_by_the_projection(exported: tuple[Engine, str, Path, AuditManifest]) -> None:
    _, _, bundle, _ = exported
    run = json.loads((bundle / "run.json").read_bytes())
    run["status"], run["reason"] = "failed", "no_completion"
    (bundle / "run.json").write_bytes(_canonical(run) + b"\n")
    _reseal(bundle)
    verification = verify_audit(bundle)
    assert [p.kind for p in verification.problems] == [AuditProblemKind.PROJECTION]
    assert "reason, status" in verification.problems[0].message


def test_events_out_of_order_are_caught_by_seq(exported: tuple[Engine, str, Path, AuditManifest]) -> None:
    _, _, bundle, _ = exported
    path = bundle / "events.jsonl"
    lines = _lines(path)
    lines[3], lines[4] = lines[4], lines[3]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    _reseal(bundle)
    verification = verify_audit(bundle)
    assert [(p.kind, p.line) for p in verification.problems] == [(AuditProblemKind.SEQ, 4), (AuditProblemKind.SEQ, 5)]


def test_records_must_be_valid_and_of_the_bundles_run(exported: tuple[Engine, str, Path, AuditManifest]) -> None:
    _, _, bundle, _ = exported
    events = _lines(bundle / "events.jsonl")
    foreign = json.loads(events[1])
    foreign["run_id"] = "run_other"
    events[1] = _canonical(foreign)
    events[2] = b'{"not": "an event"}'
    (bundle / "events.jsonl").write_bytes(b"".join(line + b"\n" for line in events))
    _reseal(bundle)
    verification = verify_audit(bundle)
    assert [(p.kind, p.line) for p in verification.problems] == [
        (AuditProblemKind.RUN_ID, 2),
        (AuditProblemKind.INVALID_RECORD, 3),
    ]


def test_an_extra_file_is_reported(exported: tuple[Engine, str, Path, AuditManifest]) -> None:
    _, _, bundle, _ = exported
    (bundle / "notes.txt").write_text("slipped in")
    verification = verify_audit(bundle)
    assert [(p.kind, p.file) for p in verification.problems] == [(AuditProblemKind.UNEXPECTED_FILE, "notes.txt")]


def test_a_missing_bundle_is_reported(tmp_path: Path) -> None:
    verification = verify_audit(tmp_path / "nowhere")
    assert not verification.ok
    assert _kinds(verification) == {AuditProblemKind.MISSING_FILE}


# Where bundles go, and what they come from.


def test_the_bundle_directory_must_be_new_or_empty(exported: tuple[Engine, str, Path, AuditManifest]) -> None:
    engine, run_id, bundle, _ = exported
    with pytest.raises(FileExistsError):
        asyncio.run(export_audit(engine, run_id, bundle))
    empty = bundle.with_name("empty")
    empty.mkdir()
    asyncio.run(export_audit(engine, run_id, empty))
    assert verify_audit(empty).ok
    assert not [path for path in bundle.parent.iterdir() if path.name.endswith(".partial")]


def test_an_unknown_run_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    with pytest.raises(NotFoundError):
        asyncio.run(export_audit(engine, "run_missing", exports / "bundle"))
    assert list(exports.iterdir()) == []


def test_any_run_store_can_be_exported(tmp_path: Path) -> None:
    async def main() -> tuple[str, AuditManifest]:
        store = InMemoryRunStore()
        loop = AgentLoop(providers=[ScriptedProvider(SCRIPT)], tools=builtin_tools(), store=store, workspace=tmp_path)
        (tmp_path / "notes.txt").write_text("hello\n")
        result = await loop.run(AgentSpec(name="memory", model="scripted:audit"), "List and read the files")
        return result.run_id, await export_audit(store, result.run_id, tmp_path / "bundle")

    run_id, manifest = asyncio.run(main())
    assert manifest.schema_revision is None
    assert manifest.counts.approvals == 0
    verification = verify_audit(tmp_path / "bundle")
    assert verification.ok, verification.problems
    assert verification.run_id == run_id
