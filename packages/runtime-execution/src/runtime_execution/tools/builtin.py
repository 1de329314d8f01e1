"""The set of built-in tools, for registering them all at once."""

from __future__ import annotations

from runtime_core.tools import Tool
from runtime_execution.tools.completion import complete_task
from runtime_execution.tools.files import file_tools
from runtime_execution.tools.shell import shell_run

__all__ = ["builtin_tools"]


def builtin_tools() -> list[Tool]:
    """Return every built-in tool: the file tools, ``shell:run`` (default configuration) and ``complete_task``.

    Register them with ``LocalToolRegistry(builtin_tools())``; build ``shell_tool(...)`` yourself to
    configure the shell's environment allowlist, timeout cap or output cap.
    """
    return [*file_tools(), shell_run, complete_task]
