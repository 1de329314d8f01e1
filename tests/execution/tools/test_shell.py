"""shell:run against real subprocesses."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from runtime_core.exceptions import ToolExecutionError
from runtime_core.tools import ToolConcurrency, ToolEffect, ToolErrorCode
from runtime_execution.tools import shell_run, shell_tool

from ._support import context, invoke, invoke_error


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for a reaper counts as dead)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rpartition(")")[2].split()[0] != "Z"


def _wait_dead(pid: int, within_s: float = 2.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


def _child_pid(ws: Path) -> int:
    return int((ws / "child.pid").read_text().strip())


def test_spec() -> None:
    spec = shell_run.spec
    assert spec.name == "shell:run"
    assert spec.effect is ToolEffect.UNSAFE
    assert spec.category == "shell"
    assert spec.concurrency is ToolConcurrency.EXCLUSIVE


def test_exit_code_output_and_cwd(ws: Path) -> None:
    result = invoke(shell_run, ws, command="pwd; echo out; echo err >&2; exit 3")
    assert result["exit_code"] == 3
    assert result["output"] == f"{ws.resolve()}\nout\nerr\n"
    assert result["truncated"] is False
    assert result["duration_ms"] > 0
    sub = invoke(shell_run, ws, command="pwd", cwd="src")
    assert sub["output"] == f"{ws.resolve() / 'src'}\n"
    assert sub["exit_code"] == 0


def test_output_cap() -> None:
    tool = shell_tool(max_output_bytes=100)
    result = invoke(tool, Path.cwd(), command="head -c 5000 /dev/zero | tr '\\0' x")
    assert result["truncated"] is True
    assert result["output"].startswith("x" * 100 + "\n[output truncated")
    assert "kept 100 of 5000 bytes" in result["output"]


def test_timeout_kills_the_process_group(ws: Path) -> None:
    started = time.monotonic()
    error = invoke_error(shell_run, ws, command="sleep 30 & echo $! > child.pid; echo started; wait", timeout_s=0.5)
    assert time.monotonic() - started < 5
    assert error.code == ToolErrorCode.TIMEOUT
    assert error.details["timeout_s"] == 0.5
    assert error.details["output"] == "started\n"
    assert _wait_dead(_child_pid(ws))


def test_timeout_is_capped(ws: Path) -> None:
    tool = shell_tool(max_timeout_s=0.3)
    error = invoke_error(tool, ws, command="sleep 30", timeout_s=60)
    assert error.code == ToolErrorCode.TIMEOUT
    assert error.details["timeout_s"] == 0.3


def test_background_children_do_not_outlive_the_command(ws: Path) -> None:
    result = invoke(shell_run, ws, command="sleep 30 & echo $! > child.pid; echo done")
    assert result == {"exit_code": 0, "output": "done\n", "truncated": False, "duration_ms": result["duration_ms"]}
    assert _wait_dead(_child_pid(ws))


def test_cancellation_kills_the_process_group(ws: Path) -> None:
    async def scenario() -> None:
        task = asyncio.create_task(
            shell_run.invoke({"command": "sleep 30 & echo $! > child.pid; wait", "timeout_s": 30}, context(ws))
        )
        pid_file = ws / "child.pid"
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 5
    assert _wait_dead(_child_pid(ws))


def test_environment_is_scrubbed(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_API_KEY", "sk-secret-123")
    monkeypatch.setenv("SHARED_SETTING", "visible")
    result = invoke(shell_run, ws, command="env")
    variables = dict(line.split("=", 1) for line in result["output"].splitlines() if "=" in line)
    assert "sk-secret-123" not in result["output"]
    assert "FAKE_API_KEY" not in variables
    assert "SHARED_SETTING" not in variables
    assert variables["HOME"] == str(ws.resolve())
    assert variables["TERM"] == "dumb"
    assert variables["PATH"] == os.environ["PATH"]
    assert set(variables) - {"PWD", "SHLVL", "_", "OLDPWD"} == {"PATH", "HOME", "LANG", "LC_ALL", "TERM"}


def test_environment_allowlist_and_explicit_values(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_API_KEY", "sk-secret-123")
    monkeypatch.setenv("SHARED_SETTING", "visible")
    tool = shell_tool(env_allowlist=["SHARED_SETTING", "NOT_SET_ANYWHERE"])
    result = invoke(tool, ws, command='echo "$SHARED_SETTING|$FAKE_API_KEY|$MINE"', env={"MINE": "given"})
    assert result["output"] == "visible||given\n"


@pytest.mark.parametrize("cwd", ["..", "link_out_dir", "/tmp"])
def test_cwd_escape_is_refused(ws: Path, cwd: str) -> None:
    error = invoke_error(shell_run, ws, command="touch escaped", cwd=cwd)
    assert error.code == ToolErrorCode.SANDBOX_VIOLATION
    assert error.details == {"path": cwd}


def test_cwd_must_exist(ws: Path) -> None:
    assert invoke_error(shell_run, ws, command="true", cwd="nope").code == ToolErrorCode.RESOURCE_NOT_FOUND
    assert invoke_error(shell_run, ws, command="true", cwd="README.md").code == ToolErrorCode.RESOURCE_NOT_FOUND


def test_invalid_arguments_and_missing_workspace(ws: Path) -> None:
    assert invoke_error(shell_run, ws, command="").code == ToolErrorCode.INVALID_ARGUMENTS
    assert invoke_error(shell_run, ws, command="true", timeout_s=0).code == ToolErrorCode.INVALID_ARGUMENTS
    assert invoke_error(shell_run, None, command="true").code == ToolErrorCode.PERMISSION_DENIED
    assert isinstance(invoke_error(shell_run, ws), ToolExecutionError)
