"""The crash test: real processes killed with SIGKILL at many points, then resumed in a new process.

Each time: no recorded event is lost, ``seq`` stays dense, the run completes or waits with
``unknown_outcome``, and the unsafe side effect happened at most once (exactly once when the run completes
without an approval).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runtime_core.events import Event
from runtime_persistence import SqlRunStore, create_engine

AGENT = Path(__file__).with_name("crash_agent.py")
ROOT = Path(__file__).resolve().parents[2]
KILL_POINTS = [
    "before_append:1",  # the run exists (run.created) but never started
    "after_append:1",  # started, before turn 1
    "before_append:2",  # turn 1 (read-only) done in memory, not committed
    "after_append:2",  # turn 1 committed
    "before_append:3",  # turn 2's write-ahead not committed: the unsafe tool never ran
    "after_append:3",  # write-ahead committed, the tool not yet run
    "in_tool_before",  # inside the tool, before its effect
    "in_tool_after",  # inside the tool, after its effect
    "before_append:4",  # after the tool, before the turn-end commit
    "after_append:4",  # turn 2 committed
    "before_append:5",  # completion not committed
]


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(AGENT), *args], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )


def outcome(process: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert process.returncode == 0, process.stderr[-3000:]
    result: dict[str, Any] = json.loads(process.stdout.strip().splitlines()[-1])
    return result


def read_log(db: Path, run_id: str) -> list[Event]:
    engine = create_engine(f"sqlite:///{db}")

    async def read() -> list[Event]:
        store = SqlRunStore(engine)
        try:
            return list(await store.read_events(run_id))
        finally:
            await store.close()

    try:
        return asyncio.run(read())
    finally:
        engine.dispose()


def assert_dense(events: list[Event]) -> None:
    assert [event.seq for event in events] == list(range(1, len(events) + 1))


@pytest.mark.parametrize("kill", KILL_POINTS)
def test_sigkill_then_resume(tmp_path: Path, kill: str) -> None:
    db, ledger, run_id = tmp_path / "runtime.db", tmp_path / "ledger.txt", "run_crash"
    crashed = agent(str(db), str(ledger), "start", run_id, kill)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    before = read_log(db, run_id)
    assert_dense(before)
    lines_at_crash = ledger.read_text().splitlines() if ledger.exists() else []
    assert len(lines_at_crash) <= 1

    result = outcome(agent(str(db), str(ledger), "resume", run_id, "none"))
    after = read_log(db, run_id)
    assert_dense(after)
    assert [e.model_dump() for e in after[: len(before)]] == [e.model_dump() for e in before]  # nothing lost
    lines = ledger.read_text().splitlines() if ledger.exists() else []

    if result["status"] == "completed":
        assert lines == ["paid"]  # completed without an approval: exactly once
        return
    # The tool had started and its outcome is unknown: the run waits for a human, nothing re-ran.
    assert result == {"status": "waiting_approval", "reason": "unknown_outcome"}
    assert kill in ("after_append:3", "in_tool_before", "in_tool_after", "before_append:4")
    assert lines == lines_at_crash

    # A human denies the re-run: the run completes, and the effect still happened at most once.
    denied = outcome(agent(str(db), str(ledger), "resume", run_id, "deny"))
    assert denied == {"status": "completed", "reason": "completed"}
    assert (ledger.read_text().splitlines() if ledger.exists() else []) == lines_at_crash
    assert_dense(read_log(db, run_id))


def test_no_crash_completes_with_one_effect(tmp_path: Path) -> None:
    db, ledger = tmp_path / "runtime.db", tmp_path / "ledger.txt"
    assert outcome(agent(str(db), str(ledger), "start", "run_ok", "none")) == {
        "status": "completed",
        "reason": "completed",
    }
    assert ledger.read_text().splitlines() == ["paid"]
