"""The demo's pieces in process: its workspace, its run with the approval and the replay, its counts."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from runtime_core.events import Event
from runtime_core.runs import RunStatus
from runtime_facade import create_runtime
from runtime_facade.cli.progress import ProgressView
from runtime_facade.demo import SEED_FILES, prepare_workspace, run_demo, workspace_diff


def test_the_workspace_is_a_committed_git_repository(tmp_path: Path) -> None:
    workspace = prepare_workspace(tmp_path)
    assert sorted(path.name for path in workspace.iterdir() if path.name != ".git") == sorted(SEED_FILES)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=workspace, capture_output=True, text=True, check=True)
    assert status.stdout == ""
    assert workspace_diff(workspace) == ""


def test_the_demo_run_is_approved_completes_and_replays_identically(tmp_path: Path) -> None:
    workspace = prepare_workspace(tmp_path)
    seen: list[Event] = []
    asked: list[str] = []

    async def main() -> None:
        async with create_runtime() as runtime:
            outcome = await run_demo(
                runtime, workspace, on_event=seen.append, on_approval=lambda approval: asked.append(approval.id)
            )
        assert outcome.ok
        assert outcome.result.status is RunStatus.COMPLETED
        assert outcome.replay.identical
        assert [approval.id for approval in outcome.approvals] == asked
        assert len(asked) == 1
        assert dict(outcome.tools) == {
            "file:list": 1,
            "file:read": 2,
            "file:edit": 1,
            "shell:run": 1,
            "complete_task": 1,
        }
        # The resumed turn decides the edit again: counted once, as replay compares it.
        assert dict(outcome.policy) == {"allow": 4, "ask": 1}
        assert outcome.usage.total_tokens == 3090
        assert '+    return f"Hello, {name}!"' in outcome.diff

    asyncio.run(main())
    assert [event.seq for event in seen] == list(range(1, len(seen) + 1))  # each event once, in order
    assert (workspace / "greet.py").read_text() == 'def greet(name):\n    return f"Hello, {name}!"\n'


def test_the_live_view_draws_the_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workspace = prepare_workspace(tmp_path)

    async def main() -> None:
        async with create_runtime() as runtime:
            with ProgressView(live=True) as view:
                await run_demo(runtime, workspace, on_event=view.show, on_approval=lambda _: view.note("approving"))

    asyncio.run(main())
    shown = capsys.readouterr().err
    assert "turn 4" in shown
    assert "approving" in shown
    assert shown.count("policy ask file:edit") == 1  # not again when the run resumes
    assert "completed: Fixed the missing comma" in shown
