"""The built-in ``shell:run`` tool: a command in a subprocess, confined to the workspace.

The command runs under ``/bin/sh -c`` in its own session (so its whole process tree is one process
group), with the workspace (or a directory inside it) as working directory and a scrubbed environment.
A timeout or a cancellation kills the whole group with ``SIGKILL``; so does the command's own exit, so
background children never outlive the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from typing import Annotated

from pydantic import Field, JsonValue

from runtime_core.exceptions import ToolExecutionError
from runtime_core.function_tools import FunctionTool, tool
from runtime_core.tools import ToolConcurrency, ToolContext, ToolEffect, ToolErrorCode
from runtime_execution.tools.workspace import Workspace

__all__ = ["DEFAULT_SHELL_OUTPUT_BYTES", "DEFAULT_SHELL_TIMEOUT_S", "shell_run", "shell_tool"]

DEFAULT_SHELL_TIMEOUT_S = 60.0
"""Timeout of a ``shell:run`` call that names none."""

DEFAULT_SHELL_OUTPUT_BYTES = 64 * 1024
"""Combined stdout and stderr kept per call; the rest is dropped and marked."""

_READ_CHUNK = 65536
# After the command ends, how long to wait for output still in the pipe (a process that escaped the
# group with setsid could hold it open for ever).
_DRAIN_TIMEOUT_S = 1.0
_POLL_INTERVAL_S = 0.01


def _environment(workspace: Workspace, passthrough: Sequence[str], extra: Mapping[str, str]) -> dict[str, str]:
    """Build the child's environment from scratch: nothing of the parent's leaks unless allowlisted."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(workspace.root),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "LC_ALL": os.environ.get("LC_ALL", "C.UTF-8"),
        "TERM": "dumb",
    }
    env.update({name: os.environ[name] for name in passthrough if name in os.environ})
    env.update(extra)
    return env


async def _read_capped(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, int]:
    """Read `stream` to its end, keeping the first `cap` bytes; return them and the total size."""
    kept = bytearray()
    total = 0
    while chunk := await stream.read(_READ_CHUNK):
        total += len(chunk)
        if len(kept) < cap:
            kept.extend(chunk[: cap - len(kept)])
    return bytes(kept), total


def _kill_group(pid: int) -> None:
    # start_new_session made the shell a group leader: its pid is the group id of the whole tree.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _exit_code(process: asyncio.subprocess.Process) -> int:
    """Wait for the shell itself to exit.

    ``Process.wait`` also waits for the output pipe to close, which a background child holding it
    would delay until that child ends; the return code is set as soon as the shell exits, so poll it.
    """
    # No public event fires on the exit alone (the protocol hook is private API), hence the polling.
    while (code := process.returncode) is None:  # noqa: ASYNC110
        await asyncio.sleep(_POLL_INTERVAL_S)
    return code


async def _settle(process: asyncio.subprocess.Process, reader: asyncio.Task[tuple[bytes, int]]) -> tuple[bytes, int]:
    """After the group was killed: reap the shell, drain the pipe and let the transport close."""
    await _exit_code(process)
    try:
        output = await asyncio.wait_for(asyncio.shield(reader), _DRAIN_TIMEOUT_S)
    except TimeoutError:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        output = (b"", 0)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), _DRAIN_TIMEOUT_S)
    return output


def _render(data: bytes, total: int, cap: int) -> tuple[str, bool]:
    text = data.decode("utf-8", errors="replace")
    if total <= cap:
        return text, False
    return f"{text}\n[output truncated: kept {cap} of {total} bytes]", True


async def _run(
    command: str, cwd: str, env: dict[str, str], timeout_s: float, cap: int
) -> tuple[int | None, str, bool, float]:
    """Run `command`; return ``(exit code or None on timeout, output, truncated, duration in ms)``."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        command,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None  # stdout=PIPE guarantees it
    reader = asyncio.create_task(_read_capped(process.stdout, cap))
    exit_code: int | None = None
    try:
        async with asyncio.timeout(timeout_s):
            exit_code = await _exit_code(process)
    except TimeoutError:
        pass
    except asyncio.CancelledError:
        _kill_group(process.pid)
        await _settle(process, reader)
        raise
    finally:
        # On a normal exit too: background children must not outlive the call.
        _kill_group(process.pid)
    data, total = await _settle(process, reader)
    output, truncated = _render(data, total, cap)
    return exit_code, output, truncated, (time.monotonic() - started) * 1000


def shell_tool(
    *,
    env_allowlist: Sequence[str] = (),
    max_timeout_s: float = 600.0,
    max_output_bytes: int = DEFAULT_SHELL_OUTPUT_BYTES,
) -> FunctionTool:
    """Build a ``shell:run`` tool.

    The environment allowlist is configuration, not an argument, so the model cannot ask for the
    parent's secrets; it can only set variables to values it states itself.

    Args:
        env_allowlist: Names of parent environment variables passed through to commands.
        max_timeout_s: Upper bound on the timeout a call may ask for.
        max_output_bytes: Combined stdout and stderr kept per call.

    Returns:
        The tool: effect ``unsafe``, category ``shell``, concurrency ``exclusive``.
    """
    passthrough = tuple(env_allowlist)

    @tool(
        name="shell:run",
        effect=ToolEffect.UNSAFE,
        category="shell",
        concurrency=ToolConcurrency.EXCLUSIVE,
    )
    async def run(
        command: Annotated[str, Field(min_length=1)],
        context: ToolContext,
        cwd: str = ".",
        timeout_s: Annotated[float, Field(gt=0)] = DEFAULT_SHELL_TIMEOUT_S,
        env: dict[str, str] | None = None,
    ) -> dict[str, JsonValue]:
        """Run a shell command in the workspace and return its exit code and combined output.

        A non-zero exit code is a result, not an error. On timeout the command and every process it
        started are killed and the call fails with ``TIMEOUT``.

        Args:
            command: Command line for ``/bin/sh -c``.
            context: The call's context; supplies the workspace (not shown to the model).
            cwd: Working directory, relative to the workspace root.
            timeout_s: Seconds before the command is killed (capped by the tool's configuration).
            env: Extra environment variables for the command.
        """
        workspace = Workspace.from_context(context)
        directory = workspace.resolve(cwd)
        if not directory.is_dir():
            raise ToolExecutionError(
                f"working directory {cwd!r} is not an existing directory",
                code=ToolErrorCode.RESOURCE_NOT_FOUND,
                details={"path": cwd},
            )
        limit = min(timeout_s, max_timeout_s)
        environment = _environment(workspace, passthrough, env or {})
        exit_code, output, truncated, duration_ms = await _run(
            command, str(directory), environment, limit, max_output_bytes
        )
        if exit_code is None:
            raise ToolExecutionError(
                f"command timed out after {limit:g} s; its process group was killed",
                code=ToolErrorCode.TIMEOUT,
                details={"timeout_s": limit, "output": output, "truncated": truncated},
            )
        return {"exit_code": exit_code, "output": output, "truncated": truncated, "duration_ms": round(duration_ms, 3)}

    return run


shell_run = shell_tool()
"""The ``shell:run`` tool with the default configuration (no environment passthrough)."""
