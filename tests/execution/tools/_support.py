"""Helpers shared by the tool tests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import JsonValue

from runtime_core.exceptions import ToolExecutionError
from runtime_core.tools import Tool, ToolContext


def context(workspace: Path | None) -> ToolContext:
    return ToolContext(run_id="run-1", tool_call_id="call-1", agent_id="agent", turn=1, workspace=workspace)


def invoke(tool: Tool, workspace: Path | None, **arguments: Any) -> Any:
    result: JsonValue = asyncio.run(tool.invoke(arguments, context(workspace)))
    return result


def invoke_error(tool: Tool, workspace: Path | None, **arguments: Any) -> ToolExecutionError:
    with pytest.raises(ToolExecutionError) as caught:
        invoke(tool, workspace, **arguments)
    return caught.value
