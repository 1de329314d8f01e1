"""MCP tools: the tools of a Model Context Protocol server, as runtime tools.

[`MCPServer`][runtime_execution.tools.mcp.MCPServer] starts an MCP server as a subprocess, talks to it over
stdio with the official ``mcp`` SDK (2.x) and hands out its tools as
[`MCPTool`][runtime_execution.tools.mcp.MCPTool]s, which satisfy the `runtime_core.tools.Tool` protocol::

    async with MCPServer.stdio("git", "uvx", args=["mcp-server-git"]) as server:
        registry = LocalToolRegistry(await server.tools())

The SDK is the optional extra ``mcp`` (``pip install "runtime-execution[mcp]"``). This module imports without
it, so it can be re-exported from the package; building an `MCPServer` without the SDK raises an
``ImportError`` that names the extra.

Names: an MCP tool ``log`` of the server ``git`` becomes ``git:log``. Characters outside
``[A-Za-z0-9_.-]`` become ``_``; when that makes two names of one server equal, or a name is longer than a
runtime tool name may be, the changed names get ``-`` and 8 hex digits of the SHA-256 of the MCP name.

Effects come from the tool annotations (``readOnlyHint`` → ``none``, ``idempotentHint`` → ``idempotent``,
anything else → ``unsafe``), which are hints from a server you may not trust: overrides per tool win, and
``trust_annotations=False`` ignores the hints altogether.

Errors: a failed connection raises `ConfigurationError`; every failure of a listing or a call after that
(an error result, a timeout, a protocol error, a server that died) raises `ToolExecutionError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TextIO, cast

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from runtime_core.exceptions import ConfigurationError, ToolExecutionError, UserError
from runtime_core.tools import ToolContext, ToolEffect, ToolErrorCode, ToolSpec

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult, ContentBlock, ToolAnnotations
    from mcp.types import Tool as SDKTool

__all__ = [
    "DEFAULT_MCP_CONNECT_TIMEOUT_S",
    "DEFAULT_MCP_TIMEOUT_S",
    "MCPServer",
    "MCPStdioParameters",
    "MCPTool",
]

DEFAULT_MCP_TIMEOUT_S = 60.0
"""Timeout of one MCP tool call (and of one tool listing) unless the server is given another."""

DEFAULT_MCP_CONNECT_TIMEOUT_S = 30.0
"""Time a server has to start and answer the MCP handshake."""

_EXTRA_HINT = 'MCP tools need the optional dependency "mcp" (2.x): pip install "runtime-execution[mcp]"'

_SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NOT_IN_OPERATION = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_TOOL_NAME = 128  # runtime_core.tools.ToolName's max_length
_HASH_DIGITS = 8
_MAX_PAGES = 100  # a server whose cursor never ends cannot hang a listing
_STDERR_TAIL_BYTES = 4000
_STDERR_EOF_WAIT_S = 0.5
# The SDK's own read timeout fires first and asks the server to cancel; this outer bound only catches a
# call stuck before the clock starts (a server that stopped reading its stdin).
_BACKSTOP_GRACE_S = 2.0


def _require_sdk() -> None:
    """Check that the SDK (2.x) imports, or raise an ``ImportError`` naming the extra.

    Afterwards the methods import what they use from it locally: those imports cannot fail any more.
    """
    try:
        import mcp
        import mcp.client.stdio
    except ImportError as error:
        raise ImportError(_EXTRA_HINT) from error
    # mcp 1.x has neither `Client` nor `MCPError`; say so now rather than fail later with an ImportError.
    if not hasattr(mcp, "Client") or not hasattr(mcp, "MCPError"):
        raise ImportError(f"{_EXTRA_HINT}; the installed mcp is older than 2.0")


class MCPStdioParameters(BaseModel):
    """How to start an MCP server that speaks over its stdin and stdout.

    The server gets an explicit environment, never a copy of yours: the MCP SDK's safe defaults
    (``HOME, LOGNAME, PATH, SHELL, TERM, USER`` on POSIX; ``APPDATA, PATH, SYSTEMROOT, TEMP, USERPROFILE``
    and a few more on Windows), then the variables named in `inherit_env` that are set in this process,
    then `env`. API keys and other secrets reach the server only when you name them.

    Attributes:
        command: Executable to run (looked up on ``PATH`` when it has no directory part).
        args: Its arguments.
        env: Variables set for the server, over the defaults and the inherited ones.
        cwd: Working directory of the server; default: this process's.
        inherit_env: Names of variables of this process passed through to the server when set.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: str = Field(min_length=1)
    args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    cwd: Path | None = None
    inherit_env: tuple[str, ...] = ()

    def environment(self) -> dict[str, str]:
        """Return the variables set on top of the SDK's safe defaults: inherited ones, then `env`."""
        inherited = {name: os.environ[name] for name in self.inherit_env if name in os.environ}
        return inherited | self.env


def _check_server_name(name: str) -> str:
    if not _SERVER_NAME.fullmatch(name):
        raise ConfigurationError(
            f"MCP server name {name!r} is not usable as the first part of tool names: use 1 to 64 letters, "
            "digits, '_' or '-' (tools are named 'server:tool')",
            setting="name",
        )
    return name


def _check_timeout(value: float, setting: str) -> float:
    if not value > 0:
        raise ConfigurationError(f"{setting} must be a positive number of seconds, not {value!r}", setting=setting)
    return value


def _check_effects(effects: Mapping[str, ToolEffect | str] | None) -> dict[str, ToolEffect]:
    checked: dict[str, ToolEffect] = {}
    for tool, effect in (effects or {}).items():
        try:
            checked[tool] = ToolEffect(effect)
        except ValueError:
            allowed = ", ".join(item.value for item in ToolEffect)
            raise ConfigurationError(
                f"effect override for MCP tool {tool!r} is {effect!r}; expected one of {allowed}",
                setting=f"effects.{tool}",
            ) from None
    return checked


def _suffixed(operation: str, mcp_name: str, budget: int) -> str:
    suffix = "-" + hashlib.sha256(mcp_name.encode()).hexdigest()[:_HASH_DIGITS]
    return operation[: budget - len(suffix)] + suffix


def _runtime_tool_names(server: str, mcp_names: Iterable[str]) -> dict[str, str]:
    """Map the MCP tool names of one server to runtime tool names (``server:operation``).

    Characters outside ``[A-Za-z0-9_.-]`` become ``_`` (an empty name becomes ``_``). A name that had to
    change gets ``-`` and the first 8 hex digits of the SHA-256 of its MCP name when it now equals another
    tool's name; so does any name too long for a runtime tool name (128 characters in all), after being cut
    to fit. Names that needed no change keep it, so the mapping is deterministic for a given tool list.

    Args:
        server: The server name (already checked).
        mcp_names: Tool names as the server lists them.

    Returns:
        ``{mcp name: runtime name}``.
    """
    budget = _MAX_TOOL_NAME - len(server) - 1
    names = list(dict.fromkeys(mcp_names))
    cleaned = {name: _NOT_IN_OPERATION.sub("_", name) or "_" for name in names}
    taken: dict[str, int] = {}
    for operation in cleaned.values():
        taken[operation] = taken.get(operation, 0) + 1
    mapping: dict[str, str] = {}
    for name in names:
        operation = cleaned[name]
        changed = operation != name
        if len(operation) > budget or (changed and taken[operation] > 1):
            operation = _suffixed(operation, name, budget)
        mapping[name] = f"{server}:{operation}"
    return mapping


def _annotated_effect(annotations: ToolAnnotations | None) -> ToolEffect:
    """The effect the server's hints claim; ``destructiveHint`` never lowers ``unsafe``."""
    if annotations is None:
        return ToolEffect.UNSAFE
    if annotations.read_only_hint is True:
        return ToolEffect.NONE
    if annotations.idempotent_hint is True:
        return ToolEffect.IDEMPOTENT
    return ToolEffect.UNSAFE


def _render_content(blocks: Sequence[ContentBlock]) -> str:
    """Join the text of content blocks with newlines; other blocks are named, not shown."""
    import mcp.types as types

    parts: list[str] = []
    for block in blocks:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.EmbeddedResource):
            resource = block.resource
            if isinstance(resource, types.TextResourceContents):
                parts.append(resource.text)
            else:
                parts.append(f"[binary resource {resource.uri} ({resource.mime_type or 'unknown type'}), not shown]")
        elif isinstance(block, types.ResourceLink):
            parts.append(f"[resource link: {block.uri}]")
        else:
            parts.append(f"[{block.type} content ({block.mime_type}), not shown]")
    return "\n".join(parts)


def _unwrap(error: BaseException) -> BaseException:
    """Look through single-exception groups: the SDK runs on anyio task groups, which wrap what they raise."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _describe(error: BaseException) -> str:
    """``Type: message`` of `error`, for messages that say what went wrong without a traceback."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _StderrTail(asyncio.Protocol):
    """Keeps the last bytes the server wrote to its stderr pipe."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.data += data
        del self.data[:-_STDERR_TAIL_BYTES]

    def eof_received(self) -> bool | None:
        self.closed.set()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


class _StderrCapture:
    """A pipe for the server's stderr, read on the event loop into a bounded tail."""

    def __init__(self, writer: TextIO, transport: asyncio.ReadTransport, tail: _StderrTail) -> None:
        self.writer = writer
        self._transport = transport
        self._tail = tail

    @classmethod
    async def open(cls) -> _StderrCapture:
        read_fd, write_fd = os.pipe()
        reader = os.fdopen(read_fd, "rb")
        writer = os.fdopen(write_fd, "w", encoding="utf-8", errors="replace")
        try:
            transport, tail = await asyncio.get_running_loop().connect_read_pipe(_StderrTail, reader)
        except BaseException:
            reader.close()
            writer.close()
            raise
        return cls(writer, transport, tail)

    def release_writer(self) -> None:
        """Close our copy of the write end, so the pipe ends when the server (and what it started) exits."""
        self.writer.close()

    async def text(self, *, wait: bool) -> str:
        """The tail so far; with `wait`, first give a dead server's last words a moment to arrive."""
        if wait and self.writer.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tail.closed.wait(), _STDERR_EOF_WAIT_S)
        return self._tail.data.decode("utf-8", errors="replace").strip()

    def close(self) -> None:
        self.writer.close()
        self._transport.close()


class MCPTool:
    """One tool of a connected MCP server; satisfies the `runtime_core.tools.Tool` protocol.

    Built by [`MCPServer.tools`][runtime_execution.tools.mcp.MCPServer.tools]; calls go through the server's
    connection, so the tool works only while the server is connected.
    """

    def __init__(self, server: MCPServer, mcp_name: str, spec: ToolSpec) -> None:
        self._server = server
        self._mcp_name = mcp_name
        self._spec = spec

    @property
    def spec(self) -> ToolSpec:
        """The tool's specification: the runtime name, the server's description and input schema."""
        return self._spec

    @property
    def mcp_name(self) -> str:
        """The tool's name on the MCP server (before sanitising)."""
        return self._mcp_name

    @property
    def server(self) -> MCPServer:
        """The server the tool belongs to."""
        return self._server

    async def invoke(self, arguments: Mapping[str, Any], context: ToolContext) -> JsonValue:
        """Call the tool on the server.

        Args:
            arguments: Arguments as sent by the model; the server validates them.
            context: The call's context (unused: MCP servers know nothing of runs).

        Returns:
            The result's ``structuredContent`` when the server sent one, otherwise its text blocks joined
            with newlines (other blocks appear as a bracketed note).

        Raises:
            ToolExecutionError: ``EXECUTION_FAILED`` for an error result (with the server's text), a
                protocol error or a server that is gone; ``TIMEOUT`` when the call outlasts the server's
                ``timeout_s``; ``INVALID_ARGUMENTS`` when the server rejects the arguments as a protocol
                error.
        """
        return await self._server._call(self._mcp_name, self._spec.name, dict(arguments))

    def __repr__(self) -> str:
        return f"MCPTool({self._spec.name!r}, mcp_name={self._mcp_name!r})"


class MCPServer:
    """A connection to an MCP server run as a subprocess over stdio, as an async context manager.

    ::

        async with MCPServer.stdio("files", sys.executable, args=["server.py"]) as server:
            tools = await server.tools()

    Entering starts the server and performs the MCP handshake; leaving ends it the way the MCP
    specification asks (close its stdin, wait 2 s, then ``SIGTERM`` and ``SIGKILL`` its process group).
    Enter and leave in the same task (``async with`` does). A server can be entered again after it was
    left; tools listed earlier then use the new connection.

    Args:
        name: Server name, the first part of every tool name: 1 to 64 of ``[A-Za-z0-9_-]``.
        parameters: How to start the server.
        timeout_s: Timeout of each tool call and each listing; a call that runs out asks the server to
            cancel it and fails with ``TIMEOUT``. Also reported as every tool's ``spec.timeout_s``.
        connect_timeout_s: Time the server has to start and complete the handshake.
        effects: Effect per MCP tool name (as the server lists it), overriding what the annotations claim.
        trust_annotations: When ``False``, annotations are ignored: every tool without an override is
            ``unsafe``.
        stderr: Where the server's stderr goes: a file with a file descriptor (``sys.stderr`` to see it
            live). By default it is captured, and its last 4,000 bytes are quoted in connection errors
            and attached (``details["stderr"]``) to errors of calls the server did not survive.

    Raises:
        ConfigurationError: The name, a timeout or an effect override is invalid.
        ImportError: The ``mcp`` extra is not installed.
    """

    def __init__(
        self,
        name: str,
        parameters: MCPStdioParameters,
        *,
        timeout_s: float = DEFAULT_MCP_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_MCP_CONNECT_TIMEOUT_S,
        effects: Mapping[str, ToolEffect | str] | None = None,
        trust_annotations: bool = True,
        stderr: TextIO | None = None,
    ) -> None:
        _require_sdk()
        self._name = _check_server_name(name)
        self._parameters = parameters
        self._timeout_s = _check_timeout(timeout_s, "timeout_s")
        self._connect_timeout_s = _check_timeout(connect_timeout_s, "connect_timeout_s")
        self._effects = _check_effects(effects)
        self._trust_annotations = trust_annotations
        self._stderr = stderr
        self._client: Client | None = None
        self._capture: _StderrCapture | None = None

    @classmethod
    def stdio(
        cls,
        name: str,
        command: str,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        inherit_env: Sequence[str] = (),
        timeout_s: float = DEFAULT_MCP_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_MCP_CONNECT_TIMEOUT_S,
        effects: Mapping[str, ToolEffect | str] | None = None,
        trust_annotations: bool = True,
        stderr: TextIO | None = None,
    ) -> MCPServer:
        """Describe a server started as ``command *args``; enter the result to connect.

        Args:
            name: Server name, the first part of every tool name.
            command: Executable to run.
            args: Its arguments.
            env: Variables set for the server (see `MCPStdioParameters` for what else it gets).
            cwd: Working directory of the server.
            inherit_env: Names of variables of this process passed through to the server when set.
            timeout_s: Timeout of each tool call and each listing.
            connect_timeout_s: Time the server has to start and complete the handshake.
            effects: Effect per MCP tool name, overriding the annotations.
            trust_annotations: When ``False``, annotations are ignored.
            stderr: Where the server's stderr goes; captured by default.

        Returns:
            The server, not yet connected.
        """
        parameters = MCPStdioParameters(
            command=command,
            args=tuple(args),
            env=dict(env or {}),
            cwd=Path(cwd) if cwd is not None else None,
            inherit_env=tuple(inherit_env),
        )
        return cls(
            name,
            parameters,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            effects=effects,
            trust_annotations=trust_annotations,
            stderr=stderr,
        )

    @property
    def name(self) -> str:
        """The server name, the first part of its tools' names."""
        return self._name

    @property
    def parameters(self) -> MCPStdioParameters:
        """How the server is started."""
        return self._parameters

    @property
    def connected(self) -> bool:
        """Whether the server is running and connected."""
        return self._client is not None

    async def __aenter__(self) -> Self:
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client

        if self._client is not None:
            raise UserError(f"MCP server {self._name!r} is already connected")
        params = StdioServerParameters(
            command=self._parameters.command,
            args=list(self._parameters.args),
            env=self._parameters.environment(),
            cwd=self._parameters.cwd,
        )
        capture: _StderrCapture | None = None
        if self._stderr is None:
            capture = await _StderrCapture.open()
            errlog = capture.writer
        else:
            errlog = self._stderr
        # No response cache: every `tools()` call asks the server afresh.
        client = Client(stdio_client(params, errlog=errlog), cache=None)
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await client.__aenter__()
        except Exception as error:
            raise await self._connect_error(error, capture) from error
        except BaseException:
            if capture is not None:
                capture.close()
            raise
        if capture is not None:
            capture.release_writer()
        self._client = client
        self._capture = capture
        return self

    async def _connect_error(self, error: Exception, capture: _StderrCapture | None) -> ConfigurationError:
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED

        inner = _unwrap(error)
        if isinstance(inner, TimeoutError):
            reason = f"no answer to the MCP handshake within {self._connect_timeout_s:g} s"
        elif isinstance(inner, OSError):  # spawning failed: no such command, no permission, no such cwd
            reason = f"cannot start {self._parameters.command!r}: {_describe(inner)}"
        elif isinstance(inner, MCPError) and inner.code == CONNECTION_CLOSED:
            reason = "the server closed the connection before completing the handshake; its process has probably exited"
        else:
            reason = _describe(inner)
        stderr = ""
        if capture is not None:
            capture.release_writer()
            stderr = await capture.text(wait=True)
            capture.close()
        message = f"MCP server {self._name!r} could not connect: {reason}"
        if stderr:
            message += f"\n--- server stderr (last lines) ---\n{stderr}"
        return ConfigurationError(message, setting=self._name)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        client, self._client = self._client, None
        capture, self._capture = self._capture, None
        try:
            if client is not None:
                # Not the body's exception: the SDK's task groups would wrap it in exception groups.
                await client.__aexit__(None, None, None)
        finally:
            if capture is not None:
                capture.close()

    async def tools(self) -> list[MCPTool]:
        """List the server's tools as runtime tools, in the server's order.

        Returns:
            One `MCPTool` per MCP tool, named ``<server>:<tool>`` (sanitised, see the module docs).

        Raises:
            UserError: The server is not connected.
            ConfigurationError: An effect override names a tool the server does not list.
            ToolExecutionError: The listing failed (timeout, protocol error, server gone).
        """
        if self._client is None:
            raise UserError(f"MCP server {self._name!r} is not connected: use 'async with server:' first")
        listed = await self._list(self._client)
        unknown = sorted(set(self._effects) - {tool.name for tool in listed})
        if unknown:
            raise ConfigurationError(
                f"effect overrides name tools MCP server {self._name!r} does not list: {', '.join(unknown)}",
                setting="effects",
            )
        names = _runtime_tool_names(self._name, (tool.name for tool in listed))
        built: dict[str, MCPTool] = {}
        for tool in listed:
            if tool.name not in built:
                built[tool.name] = MCPTool(self, tool.name, self._spec(tool, names[tool.name]))
        return list(built.values())

    async def _list(self, client: Client) -> list[SDKTool]:
        listed: list[SDKTool] = []
        cursor: str | None = None
        try:
            async with asyncio.timeout(self._timeout_s + _BACKSTOP_GRACE_S):
                for _ in range(_MAX_PAGES):
                    page = await client.list_tools(cursor=cursor)
                    listed.extend(page.tools)
                    cursor = page.next_cursor
                    if cursor is None:
                        break
        except Exception as error:
            raise await self._call_error(error, None, "tools/list") from error
        return listed

    def _spec(self, tool: SDKTool, name: str) -> ToolSpec:
        annotations = tool.annotations
        effect = self._effects.get(tool.name)
        if effect is None:
            effect = _annotated_effect(annotations) if self._trust_annotations else ToolEffect.UNSAFE
        title = tool.title or (annotations.title if annotations is not None else None)
        return ToolSpec(
            name=name,
            description=tool.description or title or tool.name,
            parameters=cast(dict[str, JsonValue], tool.input_schema),
            effect=effect,
            category="mcp",
            timeout_s=self._timeout_s,
        )

    async def _call(self, mcp_name: str, tool_name: str, arguments: dict[str, Any]) -> JsonValue:
        client = self._client
        if client is None:
            raise ToolExecutionError(
                f"MCP server {self._name!r} is not connected",
                code=ToolErrorCode.EXECUTION_FAILED,
                tool_name=tool_name,
                details={"server": self._name},
            )
        try:
            async with asyncio.timeout(self._timeout_s + _BACKSTOP_GRACE_S):
                result = await client.call_tool(mcp_name, arguments, read_timeout_seconds=self._timeout_s)
        except Exception as error:
            raise await self._call_error(error, tool_name, mcp_name) from error
        return self._value(result, tool_name)

    def _value(self, result: CallToolResult, tool_name: str) -> JsonValue:
        text = _render_content(result.content)
        if result.is_error:
            details: dict[str, Any] = {"server": self._name}
            if result.structured_content is not None:
                details["structured_content"] = result.structured_content
            raise ToolExecutionError(
                text or f"MCP tool {tool_name} failed without a message",
                code=ToolErrorCode.EXECUTION_FAILED,
                tool_name=tool_name,
                details=details,
            )
        if result.structured_content is not None:
            return cast(JsonValue, result.structured_content)
        return text

    async def _call_error(self, raised: Exception, tool_name: str | None, what: str) -> ToolExecutionError:
        """Turn anything the SDK raised into a `ToolExecutionError` with a message a model can act on."""
        import mcp.types as types
        from mcp import MCPError

        error = _unwrap(raised)
        code = ToolErrorCode.EXECUTION_FAILED
        details: dict[str, Any] = {"server": self._name}
        server = f"MCP server {self._name!r}"
        if isinstance(error, TimeoutError):
            code = ToolErrorCode.TIMEOUT
            message = f"{server} did not answer {what!r} within {self._timeout_s:g} s"
        elif isinstance(error, MCPError):
            details["mcp_error_code"] = error.code
            if error.code == types.REQUEST_TIMEOUT:
                code = ToolErrorCode.TIMEOUT
                message = (
                    f"{server} did not answer {what!r} within {self._timeout_s:g} s; it was asked to cancel the call"
                )
            elif error.code == types.CONNECTION_CLOSED:
                message = f"{server} closed the connection during {what!r}; its process has probably exited"
                if self._capture is not None and (stderr := await self._capture.text(wait=True)):
                    details["stderr"] = stderr
            elif error.code == types.INVALID_PARAMS:
                code = ToolErrorCode.INVALID_ARGUMENTS
                message = f"{server} rejected the arguments of {what!r}: {error.message}"
            else:
                message = f"{server} answered {what!r} with error {error.code}: {error.message}"
        elif isinstance(error, ValidationError):
            message = f"{server} sent a malformed answer to {what!r}: {error.error_count()} validation error(s)"
        else:
            message = f"{what!r} on {server} failed: {_describe(error)}"
        return ToolExecutionError(message, code=code, tool_name=tool_name, details=details)

    def __repr__(self) -> str:
        state = "connected" if self._client is not None else "not connected"
        return f"MCPServer({self._name!r}, command={self._parameters.command!r}, {state})"
