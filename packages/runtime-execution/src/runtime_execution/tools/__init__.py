"""Tool registries, the workspace sandbox and the built-in tools.

- [`LocalToolRegistry`][runtime_execution.tools.registry.LocalToolRegistry] holds tools by name and hands
  out read-only, pattern-filtered [`ToolRegistryView`][runtime_execution.tools.registry.ToolRegistryView]s.
- [`Workspace`][runtime_execution.tools.workspace.Workspace] confines every path a built-in tool touches.
- Built-ins: ``file:read|write|edit|list|search|info``, ``shell:run`` and ``complete_task``.
- [`MCPServer`][runtime_execution.tools.mcp.MCPServer] exposes the tools of an MCP server (extra ``mcp``).
"""

from runtime_execution.tools.builtin import builtin_tools
from runtime_execution.tools.completion import CompleteTaskTool, complete_task
from runtime_execution.tools.files import (
    file_edit,
    file_info,
    file_list,
    file_read,
    file_search,
    file_tools,
    file_write,
)
from runtime_execution.tools.mcp import (
    DEFAULT_MCP_CONNECT_TIMEOUT_S,
    DEFAULT_MCP_TIMEOUT_S,
    MCPServer,
    MCPStdioParameters,
    MCPTool,
)
from runtime_execution.tools.registry import LocalToolRegistry, ToolRegistryView
from runtime_execution.tools.shell import DEFAULT_SHELL_OUTPUT_BYTES, DEFAULT_SHELL_TIMEOUT_S, shell_run, shell_tool
from runtime_execution.tools.workspace import Workspace

__all__ = [
    # registries
    "LocalToolRegistry",
    "ToolRegistryView",
    # sandbox
    "Workspace",
    # built-in tools
    "builtin_tools",
    "file_tools",
    "file_read",
    "file_write",
    "file_edit",
    "file_list",
    "file_search",
    "file_info",
    "shell_tool",
    "shell_run",
    "DEFAULT_SHELL_TIMEOUT_S",
    "DEFAULT_SHELL_OUTPUT_BYTES",
    "CompleteTaskTool",
    "complete_task",
    # MCP servers
    "MCPServer",
    "MCPStdioParameters",
    "MCPTool",
    "DEFAULT_MCP_TIMEOUT_S",
    "DEFAULT_MCP_CONNECT_TIMEOUT_S",
]
