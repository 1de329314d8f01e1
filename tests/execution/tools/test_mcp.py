"""MCP tools against a real MCP server (``mcp_server.py``) run over stdio with this interpreter."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from runtime_core.exceptions import ConfigurationError, ToolExecutionError, UserError
from runtime_core.tools import TOOL_NAME_PATTERN, Tool, ToolEffect, ToolErrorCode
from runtime_execution.tools.mcp import (
    DEFAULT_MCP_TIMEOUT_S,
    MCPServer,
    MCPStdioParameters,
    MCPTool,
    _runtime_tool_names,
)
from runtime_execution.tools.registry import LocalToolRegistry
from tests.execution.tools._support import context

SERVER_SCRIPT = Path(__file__).with_name("mcp_server.py")
T = TypeVar("T")


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def local_server(**options: Any) -> MCPServer:
    return MCPServer.stdio("test", sys.executable, args=[str(SERVER_SCRIPT)], **options)


async def call(tool: Tool, **arguments: Any) -> Any:
    return await tool.invoke(arguments, context(None))


async def call_error(tool: Tool, **arguments: Any) -> ToolExecutionError:
    with pytest.raises(ToolExecutionError) as caught:
        await call(tool, **arguments)
    return caught.value


def by_name(tools: list[MCPTool]) -> dict[str, MCPTool]:
    return {tool.mcp_name: tool for tool in tools}


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" in status.read_text()


# --------------------------------------------------------------------------------------------------
# Listing


def test_lists_tools_with_names_schemas_and_effects() -> None:
    async def scenario() -> tuple[list[MCPTool], str, str]:
        async with local_server() as server:
            assert server.connected
            tools = await server.tools()
            named = by_name(tools)
            return tools, await call(named["log short/v2"]), await call(named["log short:v2"])

    tools, slash, colon = run(scenario())
    named = by_name(tools)
    assert list(named)[:4] == ["echo", "add", "write_note", "lines"]  # the server's order
    echo = named["echo"]
    assert isinstance(echo, Tool)
    assert echo.spec.name == "test:echo"
    assert echo.spec.description == "Return the text unchanged."
    assert echo.spec.parameters["properties"] == {"text": {"title": "Text", "type": "string"}}
    assert echo.spec.parameters["required"] == ["text"]
    assert echo.spec.category == "mcp"
    assert echo.spec.timeout_s == DEFAULT_MCP_TIMEOUT_S
    # readOnlyHint → none, idempotentHint → idempotent, destructiveHint or no annotations → unsafe
    assert echo.spec.effect is ToolEffect.NONE
    assert named["add"].spec.effect is ToolEffect.IDEMPOTENT
    assert named["write_note"].spec.effect is ToolEffect.UNSAFE
    assert named["lines"].spec.effect is ToolEffect.UNSAFE
    assert repr(echo) == "MCPTool('test:echo', mcp_name='echo')"
    # Names the runtime does not allow are sanitised; these two collide, so both get a hash suffix.
    assert all(re.fullmatch(TOOL_NAME_PATTERN, tool.spec.name) for tool in tools)
    assert re.fullmatch(r"test:log_short_v2-[0-9a-f]{8}", named["log short/v2"].spec.name)
    assert re.fullmatch(r"test:log_short_v2-[0-9a-f]{8}", named["log short:v2"].spec.name)
    assert (slash, colon) == ("short log", "short log (colon)")  # called by their MCP names


def test_tools_need_a_connection() -> None:
    server = local_server()
    assert not server.connected
    with pytest.raises(UserError, match="not connected"):
        run(server.tools())


# --------------------------------------------------------------------------------------------------
# Calls


def test_round_trip_with_text_and_structured_results() -> None:
    async def scenario() -> None:
        async with local_server() as server:
            tools = by_name(await server.tools())
            assert await call(tools["echo"], text="héllo") == "héllo"
            assert await call(tools["add"], a=2, b=40) == {"sum": 42}  # structuredContent wins over the text
            assert await call(tools["lines"], count=2) == "line 0\nline 1\n[image content (image/png), not shown]"
            # Calls share one connection and may run side by side.
            slow, fast = await asyncio.gather(call(tools["slow"], seconds=0.3), call(tools["echo"], text="fast"))
            assert (slow, fast) == ("done", "fast")
            registry = LocalToolRegistry(tools.values())
            tool = registry.get("test:add")
            assert tool is not None
            assert await call(tool, a=1, b=1) == {"sum": 2}

    run(scenario())


def test_error_result_is_execution_failed_with_the_servers_text() -> None:
    async def scenario() -> tuple[ToolExecutionError, ...]:
        async with local_server() as server:
            tools = by_name(await server.tools())
            return (
                await call_error(tools["fail"], message="disk full"),
                await call_error(tools["add"], a="x"),
                await call_error(tools["protocol_error"], code=-32602, message="code must be positive"),
                await call_error(tools["protocol_error"], code=-32603, message="internal trouble"),
            )

    failed, invalid, rejected, internal = run(scenario())
    assert failed.code == ToolErrorCode.EXECUTION_FAILED
    assert "disk full" in failed.message
    assert failed.tool_name == "test:fail"
    assert failed.details == {"server": "test"}
    # The server validates arguments itself and reports a failure as an error result.
    assert invalid.code == ToolErrorCode.EXECUTION_FAILED
    assert "validation error" in invalid.message
    # JSON-RPC errors instead of results: invalid params is the caller's fault, anything else is not.
    assert rejected.code == ToolErrorCode.INVALID_ARGUMENTS
    assert rejected.message == "MCP server 'test' rejected the arguments of 'protocol_error': code must be positive"
    assert rejected.details == {"server": "test", "mcp_error_code": -32602}
    assert internal.code == ToolErrorCode.EXECUTION_FAILED
    assert internal.message == "MCP server 'test' answered 'protocol_error' with error -32603: internal trouble"


def test_slow_call_times_out_and_the_server_goes_on() -> None:
    async def scenario() -> tuple[ToolExecutionError, float, str]:
        async with local_server(timeout_s=0.5) as server:
            tools = by_name(await server.tools())
            started = time.monotonic()
            error = await call_error(tools["slow"], seconds=30)
            elapsed = time.monotonic() - started
            return error, elapsed, await call(tools["echo"], text="still here")

    error, elapsed, after = run(scenario())
    assert error.code == ToolErrorCode.TIMEOUT
    assert "within 0.5 s" in error.message
    assert error.tool_name == "test:slow"
    assert elapsed < 5
    assert after == "still here"


def test_server_that_dies_mid_call_gives_typed_errors() -> None:
    async def scenario() -> tuple[ToolExecutionError, ToolExecutionError, ToolExecutionError]:
        async with local_server() as server:
            tools = by_name(await server.tools())
            crashed = await call_error(tools["crash"])
            after = await call_error(tools["echo"], text="anyone?")
            with pytest.raises(ToolExecutionError) as listing:
                await server.tools()
            return crashed, after, listing.value

    crashed, after, listing = run(scenario())
    assert crashed.code == ToolErrorCode.EXECUTION_FAILED
    assert "closed the connection during 'crash'" in crashed.message
    assert crashed.tool_name == "test:crash"
    assert "crashing on purpose" in crashed.details["stderr"]  # the captured tail of the dead server's stderr
    assert after.code == ToolErrorCode.EXECUTION_FAILED
    assert "closed the connection" in after.message
    assert listing.code == ToolErrorCode.EXECUTION_FAILED
    assert listing.tool_name is None


# --------------------------------------------------------------------------------------------------
# Connecting


def test_bad_command_is_a_configuration_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with MCPServer.stdio("ghost", str(tmp_path / "no-such-server")):
            pytest.fail("connected to a command that does not exist")

    with pytest.raises(ConfigurationError, match="could not connect: cannot start") as caught:
        run(scenario())
    assert caught.value.setting == "ghost"
    assert isinstance(caught.value.__cause__, OSError | ExceptionGroup)


def test_server_that_exits_at_start_reports_its_stderr() -> None:
    script = "import sys; print('GIT_TOKEN is not set', file=sys.stderr); sys.exit(3)"

    async def scenario() -> None:
        async with MCPServer.stdio("broken", sys.executable, args=["-c", script]):
            pytest.fail("connected to a server that exited")

    with pytest.raises(ConfigurationError, match="before completing the handshake") as caught:
        run(scenario())
    assert "GIT_TOKEN is not set" in caught.value.message


def test_server_that_never_answers_times_out_at_connect() -> None:
    # Reads stdin until it closes, never answering: only the connect timeout ends the wait.
    script = "import sys; sys.stdin.read()"

    async def scenario() -> None:
        async with MCPServer.stdio("mute", sys.executable, args=["-c", script], connect_timeout_s=0.5):
            pytest.fail("connected to a server that never answered")

    with pytest.raises(ConfigurationError, match=r"no answer to the MCP handshake within 0\.5 s"):
        run(scenario())


def test_stderr_can_go_to_a_file_of_the_caller(tmp_path: Path) -> None:
    script = "import sys; print('to your log', file=sys.stderr); sys.exit(3)"
    log = tmp_path / "server.log"

    async def scenario() -> None:
        with log.open("w") as stream:
            async with MCPServer.stdio("broken", sys.executable, args=["-c", script], stderr=stream):
                pytest.fail("connected to a server that exited")

    with pytest.raises(ConfigurationError) as caught:
        run(scenario())
    assert "to your log" in log.read_text()
    assert "to your log" not in caught.value.message


@pytest.mark.parametrize("name", ["", "git:hub", "my server", "ünïcode", "x" * 65])
def test_server_name_must_fit_tool_names(name: str) -> None:
    with pytest.raises(ConfigurationError, match="not usable as the first part of tool names") as caught:
        MCPServer.stdio(name, sys.executable)
    assert caught.value.setting == "name"


def test_invalid_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="timeout_s must be a positive number"):
        MCPServer.stdio("ok", sys.executable, timeout_s=0)
    with pytest.raises(ConfigurationError, match="connect_timeout_s must be a positive number"):
        MCPServer.stdio("ok", sys.executable, connect_timeout_s=-1)
    with pytest.raises(ConfigurationError, match="expected one of none, idempotent, compensable, unsafe") as caught:
        MCPServer.stdio("ok", sys.executable, effects={"echo": "harmless"})
    assert caught.value.setting == "effects.echo"


# --------------------------------------------------------------------------------------------------
# Effects


def test_effect_overrides_win_over_annotations() -> None:
    async def scenario() -> dict[str, MCPTool]:
        overrides = {"echo": ToolEffect.UNSAFE, "write_note": "compensable"}
        async with local_server(effects=overrides) as server:
            return by_name(await server.tools())

    tools = run(scenario())
    assert tools["echo"].spec.effect is ToolEffect.UNSAFE
    assert tools["write_note"].spec.effect is ToolEffect.COMPENSABLE
    assert tools["add"].spec.effect is ToolEffect.IDEMPOTENT  # no override: the hint stands


def test_untrusted_annotations_are_ignored_and_unknown_overrides_rejected() -> None:
    async def scenario() -> dict[str, MCPTool]:
        async with local_server(trust_annotations=False, effects={"add": "idempotent"}) as server:
            tools = by_name(await server.tools())
        async with local_server(effects={"ech0": "none"}) as server:
            with pytest.raises(ConfigurationError, match="does not list: ech0"):
                await server.tools()
        return tools

    tools = run(scenario())
    assert tools["echo"].spec.effect is ToolEffect.UNSAFE  # readOnlyHint ignored
    assert tools["add"].spec.effect is ToolEffect.IDEMPOTENT  # overrides still apply


# --------------------------------------------------------------------------------------------------
# Names


def test_names_are_sanitised_deterministically() -> None:
    names = _runtime_tool_names("git", ["log", "log.short-v2", "log short/v2", "a b", "a_b", "a:b", ""])
    assert names["log"] == "git:log"
    assert names["log.short-v2"] == "git:log.short-v2"
    assert names["log short/v2"] == "git:log_short_v2"  # changed, but unique: no suffix
    assert names["a_b"] == "git:a_b"  # a valid name never changes
    assert re.fullmatch(r"git:a_b-[0-9a-f]{8}", names["a b"])
    assert re.fullmatch(r"git:a_b-[0-9a-f]{8}", names["a:b"])
    assert names["a b"] != names["a:b"]
    assert names[""] == "git:_"
    assert _runtime_tool_names("git", ["a:b", "a b", "a_b"]) == {key: names[key] for key in ("a:b", "a b", "a_b")}
    assert all(re.fullmatch(TOOL_NAME_PATTERN, name) for name in names.values())


def test_long_names_are_cut_to_fit() -> None:
    server = "s" * 64
    names = _runtime_tool_names(server, ["x" * 200, "x" * 201, "y" * 63])
    assert names["y" * 63] == f"{server}:{'y' * 63}"  # exactly 128 characters: unchanged
    long_names = [names["x" * 200], names["x" * 201]]
    assert all(len(name) == 128 and re.fullmatch(TOOL_NAME_PATTERN, name) for name in long_names)
    assert long_names[0] != long_names[1]


# --------------------------------------------------------------------------------------------------
# Environment and working directory


def test_environment_is_explicit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MCP_TEST_SECRET", "s3cret")
    monkeypatch.setenv("MCP_TEST_SHARED", "shared")

    async def scenario() -> dict[str, str]:
        server = local_server(
            env={"GREETING": "hello"}, inherit_env=["MCP_TEST_SHARED", "MCP_TEST_UNSET"], cwd=tmp_path
        )
        async with server:
            tools = by_name(await server.tools())
            seen = {
                name: await call(tools["getenv"], name=name)
                for name in ("MCP_TEST_SECRET", "MCP_TEST_SHARED", "MCP_TEST_UNSET", "GREETING", "PATH")
            }
            seen["cwd"] = await call(tools["cwd"])
            return seen

    seen = run(scenario())
    assert seen["MCP_TEST_SECRET"] == "<unset>"  # not named: not passed
    assert seen["MCP_TEST_SHARED"] == "shared"
    assert seen["MCP_TEST_UNSET"] == "<unset>"
    assert seen["GREETING"] == "hello"
    assert seen["PATH"] == os.environ["PATH"]  # one of the SDK's safe defaults
    assert Path(seen["cwd"]).resolve() == tmp_path.resolve()


def test_parameters_are_a_frozen_config_model() -> None:
    parameters = MCPStdioParameters.model_validate({"command": "uvx", "args": ["mcp-server-git"], "env": {"A": "1"}})
    assert parameters.args == ("mcp-server-git",)
    assert parameters.environment() == {"A": "1"}
    with pytest.raises(ValueError, match="extra_forbidden"):
        MCPStdioParameters.model_validate({"command": "uvx", "environment": {}})
    server = MCPServer("git", parameters)
    assert server.parameters is parameters
    assert server.name == "git"
    assert repr(server) == "MCPServer('git', command='uvx', not connected)"


# --------------------------------------------------------------------------------------------------
# Lifecycle


def test_closing_ends_the_server_process_and_a_server_can_be_entered_again() -> None:
    async def scenario() -> tuple[int, MCPServer, MCPTool]:
        server = local_server()
        async with server:
            with pytest.raises(UserError, match="already connected"):
                await server.__aenter__()
            tools = by_name(await server.tools())
            pid = int(await call(tools["pid"]))
            assert not process_gone(pid)
        return pid, server, tools["echo"]

    pid, server, echo = run(scenario())
    assert process_gone(pid)
    assert not server.connected
    error = run(call_error(echo, text="late"))
    assert error.code == ToolErrorCode.EXECUTION_FAILED
    assert "not connected" in error.message

    async def again() -> str:
        async with server:
            return str(await call(echo, text="again"))  # a tool listed earlier uses the new connection

    assert run(again()) == "again"


def test_closing_kills_a_server_that_does_not_exit() -> None:
    async def scenario() -> int:
        async with local_server() as server:
            tools = by_name(await server.tools())
            assert await call(tools["linger"]) == "lingering"
            return int(await call(tools["pid"]))

    started = time.monotonic()
    pid = run(scenario())
    assert process_gone(pid)
    assert time.monotonic() - started < 15


def test_an_error_in_the_body_propagates_and_the_server_still_ends() -> None:
    pids: list[int] = []

    async def scenario() -> None:
        async with local_server() as server:
            pids.append(int(await call(by_name(await server.tools())["pid"])))
            raise LookupError("from the body")

    with pytest.raises(LookupError, match="from the body"):
        run(scenario())
    assert process_gone(pids[0])


def test_a_cancelled_body_still_ends_the_server() -> None:
    pids: list[int] = []

    async def body(connected: asyncio.Event) -> None:
        async with local_server() as server:
            pids.append(int(await call(by_name(await server.tools())["pid"])))
            connected.set()
            await asyncio.sleep(30)

    async def scenario() -> None:
        connected = asyncio.Event()
        task = asyncio.create_task(body(connected))
        await connected.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert process_gone(pids[0])


# --------------------------------------------------------------------------------------------------
# Without the SDK


def test_module_imports_without_the_sdk_and_names_the_extra() -> None:
    code = (
        "import sys\n"
        "for name in ('mcp', 'mcp.client', 'mcp.client.stdio', 'mcp_types'):\n"
        "    sys.modules[name] = None\n"
        "from runtime_execution.tools.mcp import MCPServer\n"
        "try:\n"
        "    MCPServer.stdio('git', 'uvx')\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "runtime-execution[mcp]" in result.stdout
