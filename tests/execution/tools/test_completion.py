"""complete_task and the tools package surface."""

from __future__ import annotations

import inspect

import runtime_execution.tools as tools_package
from runtime_core.tools import COMPLETION_TOOL_NAME, Tool, ToolEffect, ToolErrorCode
from runtime_execution.tools import builtin_tools, complete_task

from ._support import invoke, invoke_error


def test_spec() -> None:
    spec = complete_task.spec
    assert spec.name == COMPLETION_TOOL_NAME
    assert spec.effect is ToolEffect.NONE
    assert spec.category == "control"
    assert spec.parameters["required"] == ["summary"]
    assert isinstance(complete_task, Tool)


def test_returns_the_validated_contract() -> None:
    result = invoke(complete_task, None, summary="  done  ", artifacts=["a.txt", "a.txt", " b "])
    assert result == {"summary": "done", "artifacts": ["a.txt", "b"], "next_steps": None}


def test_invalid_arguments() -> None:
    for arguments in ({}, {"summary": "   "}, {"summary": "ok", "extra": 1}, {"summary": "ok", "artifacts": [""]}):
        error = invoke_error(complete_task, None, **arguments)
        assert error.code == ToolErrorCode.INVALID_ARGUMENTS
        assert error.tool_name == COMPLETION_TOOL_NAME
        assert error.details["errors"]


def test_package_all_imports_and_is_documented() -> None:
    exported = tools_package.__all__
    assert len(exported) == len(set(exported))
    assert all(hasattr(tools_package, name) for name in exported)
    public = {
        name
        for name, value in vars(tools_package).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public <= set(exported)
    assert all(inspect.getdoc(getattr(tools_package, name)) for name in exported)
    assert all(isinstance(tool, Tool) for tool in builtin_tools())
