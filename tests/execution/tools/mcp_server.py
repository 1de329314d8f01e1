"""A real MCP server for the MCP tool tests, run over stdio as ``python mcp_server.py``.

Written with the official SDK (``mcp.server.mcpserver.MCPServer``, the 2.x name of FastMCP), so the tests
exercise the same protocol code as any Python MCP server in the wild.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

from mcp import MCPError
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent, TextContent, ToolAnnotations

server = MCPServer("test-server")


@server.tool(annotations=ToolAnnotations(read_only_hint=True), structured_output=False)
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool(annotations=ToolAnnotations(idempotent_hint=True))
def add(a: int, b: int) -> dict[str, int]:
    """Add two integers."""
    return {"sum": a + b}


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def write_note(note: str) -> str:
    """Pretend to write a note somewhere."""
    return f"wrote {note}"


@server.tool(structured_output=False)
def lines(count: int) -> CallToolResult:
    """Return several text blocks and an image."""
    blocks: list[TextContent | ImageContent] = [TextContent(type="text", text=f"line {i}") for i in range(count)]
    blocks.append(ImageContent(type="image", data="iVBORw0KGgo=", mime_type="image/png"))
    return CallToolResult(content=blocks)


@server.tool(structured_output=False)
def fail(message: str) -> str:
    """Always fail with `message` (a `ToolError`, so the client sees the message)."""
    raise ToolError(message)


@server.tool(structured_output=False)
def protocol_error(code: int, message: str) -> str:
    """Answer with a JSON-RPC error instead of a result."""
    raise MCPError(code=code, message=message)


@server.tool(structured_output=False)
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return "done"


@server.tool(structured_output=False)
def pid() -> int:
    """Return the server's process id."""
    return os.getpid()


@server.tool(structured_output=False)
def getenv(name: str) -> str:
    """Return an environment variable of the server, or ``<unset>``."""
    return os.environ.get(name, "<unset>")


@server.tool(structured_output=False)
def cwd() -> str:
    """Return the server's working directory."""
    return os.getcwd()


@server.tool(structured_output=False)
def crash() -> str:
    """Say goodbye on stderr, then exit the server process at once, mid-call."""
    print("crashing on purpose", file=sys.stderr, flush=True)
    os._exit(3)


@server.tool(structured_output=False)
def linger() -> str:
    """Keep the process alive after stdin closes (a non-daemon thread), so closing must kill it."""
    threading.Thread(target=time.sleep, args=(60,), daemon=False).start()
    return "lingering"


@server.tool(name="log short/v2", structured_output=False)
def log_short() -> str:
    """A tool whose name has characters runtime names do not allow."""
    return "short log"


@server.tool(name="log short:v2", structured_output=False)
def log_short_colon() -> str:
    """A tool whose sanitised name collides with ``log short/v2``."""
    return "short log (colon)"


if __name__ == "__main__":
    server.run()
