"""The ``agent-runtime`` CLI end to end, in real subprocesses: exit codes, ``--json`` output and bad input.

Every process works in a temporary project directory, so runs land in its embedded default database
(``<tmp>/.agent-runtime/runtime.db``), never in the repository's. Each process start costs about a second
here, so each test chains the commands of one story.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime_facade.cli.app import DISTRIBUTIONS

COMMAND_TIMEOUT_S = 60

POLICY = """
preset = "balanced"
requires_approval = ["file:write"]

[permissions]
bash = "full"
"""

COMPLETING = """
model = "fake"

[[steps]]
text = "Looking."
usage = { input_tokens = 100, output_tokens = 10 }
[[steps.tool_calls]]
name = "file:list"
arguments = { path = "." }

[[steps]]
usage = { input_tokens = 120, output_tokens = 12 }
[[steps.tool_calls]]
name = "complete_task"
arguments = { summary = "Listed the project." }
"""

ASKING = """
model = "fake"

[[steps]]
[[steps.tool_calls]]
name = "file:write"
arguments = { path = "note.txt", content = "hello\\n" }

[[steps]]
[[steps.tool_calls]]
name = "complete_task"
arguments = { summary = "Wrote the note." }
"""

GIVING_UP = """
model = "fake"

[[steps]]
text = "I would rather not."
"""

SLEEPING = """
model = "fake"

[[steps]]
[[steps.tool_calls]]
name = "shell:run"
arguments = { command = "sleep 30" }
"""


def agent(directory: Path, name: str, scenario: str, *, policy: str = POLICY) -> Path:
    """Write a scripted agent (its scenario and policy beside it) working in `directory`."""
    (directory / f"{name}.scenario.toml").write_text(scenario)
    (directory / f"{name}.policy.toml").write_text(policy)
    file = directory / f"{name}.toml"
    file.write_text(
        f'name = "{name}"\ntools = ["file:*", "shell:run"]\nworkspace = "."\npolicy = "{name}.policy.toml"\n\n'
        f'[model]\nname = "scripted:fake"\nscenario = "{name}.scenario.toml"\n\n[limits]\nmax_turns = 5\n'
    )
    return file


def _environment() -> dict[str, str]:
    """This process's environment without the ``AGENT_RUNTIME_*`` overrides of whoever runs the tests."""
    return {name: value for name, value in os.environ.items() if not name.startswith("AGENT_RUNTIME_")}


def cli(project: Path, *arguments: str | Path, code: int | None = 0) -> subprocess.CompletedProcess[str]:
    """Run ``agent-runtime`` in `project`; check its exit status (unless `code` is None)."""
    completed = subprocess.run(
        [sys.executable, "-m", "runtime_facade.cli", *map(str, arguments)],
        cwd=project,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    if code is not None:
        assert completed.returncode == code, f"exit {completed.returncode}\n{completed.stdout}\n{completed.stderr}"
    assert "Traceback" not in completed.stderr
    return completed


def spawn(project: Path, *arguments: str | Path) -> subprocess.Popen[str]:
    """Start ``agent-runtime`` in `project`, its output on pipes (as text)."""
    return subprocess.Popen(
        [sys.executable, "-m", "runtime_facade.cli", *map(str, arguments)],
        cwd=project,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def last_json(completed: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(completed.stdout.strip().splitlines()[-1])


def json_lines(completed: subprocess.CompletedProcess[str]) -> list[Any]:
    return [json.loads(line) for line in completed.stdout.splitlines()]


def one_error_line(completed: subprocess.CompletedProcess[str]) -> str:
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return tmp_path


def test_version_lists_the_six_packages(project: Path) -> None:
    lines = cli(project, "--version").stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(DISTRIBUTIONS)


def test_a_completed_run_its_records_and_its_replays(project: Path) -> None:
    completing = agent(project, "lister", COMPLETING)
    denying = agent(
        project,
        "strict",
        COMPLETING,
        policy=POLICY + '\n[[rules]]\nid = "no-list"\naction = "deny"\ntools = ["file:list"]\n',
    )

    result = last_json(cli(project, "run", completing, "--task", "List the files", "--json"))
    assert {"run_id", "status", "reason", "turns", "usage", "cost_usd", "output", "summary"} <= result.keys()
    assert (result["status"], result["reason"], result["turns"]) == ("completed", "completed", 2)
    assert result["usage"]["input_tokens"] == 220
    assert result["summary"] == "Listed the project."
    run_id = result["run_id"]

    shown = last_json(cli(project, "runs", "show", run_id, "--json"))
    assert (shown["id"], shown["status"], shown["task"]) == (run_id, "completed", "List the files")
    listed = cli(project, "runs", "list", "--status", "completed")
    assert run_id in listed.stdout
    assert "lister" in listed.stdout

    events = json_lines(cli(project, "events", run_id, "--json", "--after", "1"))
    assert events[0]["seq"] == 2
    assert {"seq", "type", "turn", "ts", "payload"} <= events[0].keys()
    assert [event["seq"] for event in events] == list(range(2, len(events) + 2))
    assert events[-1]["type"] == "run.completed"

    assert "identical" in cli(project, "replay", run_id).stdout
    diverged = cli(project, "replay", run_id, "--agent", denying, code=3).stdout
    assert "diverges at decision 2 (seq 8, turn 1)" in diverged
    assert "expected: turn 1: policy.decided(tool='file:list', decision='allow'" in diverged
    assert "actual:   turn 1: policy.decided(tool='file:list', decision='deny', rule='no-list')" in diverged


def test_a_run_that_gives_up_fails(project: Path) -> None:
    failed = cli(project, "run", agent(project, "quitter", GIVING_UP), "--task", "Do it", code=1)
    assert "failed (no_completion)" in failed.stdout


def test_approve_resume_fork_and_cancel(project: Path) -> None:
    asking = agent(project, "writer", ASKING)

    waiting = cli(project, "run", asking, "--task", "Write a note", "--json", code=4)
    result = last_json(waiting)
    run_id, approval_id = result["run_id"], result["approvals"][0]["id"]
    assert (result["status"], result["reason"]) == ("waiting_approval", "approval_required")
    assert f"agent-runtime approve {approval_id}" in waiting.stderr
    assert f"agent-runtime resume {run_id}" in waiting.stderr
    assert not (project / "note.txt").exists()

    pending = json_lines(cli(project, "approvals", "list", "--run", run_id, "--json"))
    assert [(item["id"], item["tool"]) for item in pending] == [(approval_id, "file:write")]
    assert "allowed" in cli(project, "approve", approval_id, "--note", "fine").stdout

    resumed = last_json(cli(project, "resume", run_id, "--json"))
    assert (resumed["run_id"], resumed["status"]) == (run_id, "completed")
    assert (project / "note.txt").read_text() == "hello\n"
    assert cli(project, "approvals", "list").stdout == ""

    # The fork goes on after turn 0 and meets the same question: it waits, and is cancelled there.
    forked = cli(project, "fork", run_id, "--at-turn", "0", "--json", code=4)
    fork_id = last_json(forked)["run_id"]
    assert fork_id != run_id
    assert "cancelled" in cli(project, "cancel", fork_id, "--reason", "not needed").stdout
    assert last_json(cli(project, "runs", "show", fork_id, "--json"))["status"] == "cancelled"
    assert cli(project, "approvals", "list", "--run", fork_id).stdout == ""


def test_bad_input_is_one_line_and_exit_2(project: Path) -> None:
    assert "run 'run_nope' not found" in one_error_line(cli(project, "runs", "show", "run_nope", code=2))

    malformed = project / "malformed.toml"
    malformed.write_text('name = "x"\nmodel = "scripted:x"\n\n[limits]\nmax_turns = 0\n')
    problems = cli(project, "run", malformed, "--task", "x", code=2).stderr.strip().splitlines()
    assert problems == [
        f'error: {malformed}:2: model: a scripted model needs a scenario file: scenario = "scenario.toml"',
        f"error: {malformed}:5: limits.max_turns: must be greater than 0",
    ]

    unreachable = cli(project, "runs", "list", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/x", code=2)
    assert "cannot use the database" in one_error_line(unreachable)

    fresh = f"sqlite:///{project / 'fresh.db'}"
    outdated = one_error_line(cli(project, "resume", "run_x", "--db", fresh, code=2))
    assert "has no Agent Runtime schema yet" in outdated

    exposed = one_error_line(cli(project, "serve", "--host", "0.0.0.0", "--port", "0", code=2))
    assert "without a bearer token" in exposed
    assert "agent-runtime db upgrade" in outdated


def test_db_commands(project: Path) -> None:
    fresh = f"sqlite:///{project / 'fresh.db'}"
    assert cli(project, "--log-level", "debug", "--log-json", "db", "current", "--db", fresh).stdout.strip() == "none"
    assert "agent-runtime db upgrade" in one_error_line(cli(project, "db", "check", "--db", fresh, code=1))
    assert "is at schema revision" in cli(project, "db", "upgrade", "--db", fresh).stdout
    assert "up to date" in cli(project, "db", "check", "--db", fresh).stdout


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT cannot be sent to a console process group there")
def test_ctrl_c_cancels_the_run(project: Path) -> None:
    sleeper = agent(project, "sleeper", SLEEPING)
    process = spawn(project, "run", sleeper, "--task", "Wait", "--json")
    try:
        assert process.stderr is not None
        lines = []
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while time.monotonic() < deadline and not any("call shell:run" in line for line in lines):
            lines.append(process.stderr.readline())
        time.sleep(0.3)  # the tool has started its command
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT_S)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    result = json.loads(stdout.strip().splitlines()[-1])
    assert (result["status"], result["reason"]) == ("cancelled", "cancelled")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT cannot be sent to a console process group there")
def test_serve_says_where_it_listens_at_the_default_log_level(project: Path) -> None:
    cli(project, "db", "upgrade")
    process = spawn(project, "serve", "--port", "0")
    try:
        assert process.stderr is not None
        deadline, line = time.monotonic() + COMMAND_TIMEOUT_S, ""
        while "listening on" not in line:
            ready = select.select([process.stderr], [], [], max(0.0, deadline - time.monotonic()))[0]
            assert ready, "serve did not say where it listens"
            line = process.stderr.readline()
            assert line, "serve ended without saying where it listens"
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert found is not None, line
        assert httpx.get(f"{found.group(1)}/healthz", timeout=COMMAND_TIMEOUT_S).status_code == 200
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=COMMAND_TIMEOUT_S)
    finally:
        process.kill()


def test_demo(project: Path) -> None:
    demo = cli(project, "demo")
    assert "demo approves apr_" in demo.stderr
    assert "replay        identical" in demo.stdout
    assert "zero divergence" in demo.stdout
    assert "policy        5 decisions: 4 allow, 1 ask, 0 deny" in demo.stdout
    assert '+    return f"Hello, {name}!"' in demo.stdout
    assert str(project / ".agent-runtime" / "runtime.db") in demo.stdout
