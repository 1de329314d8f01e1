"""LocalToolRegistry and its read-only views."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import JsonValue

from runtime_core.exceptions import AlreadyExistsError, NotFoundError, UserError
from runtime_core.tools import ToolContext, ToolRegistry, ToolSpec
from runtime_execution.tools import LocalToolRegistry, ToolRegistryView, builtin_tools, complete_task


class StubTool:
    def __init__(self, name: str) -> None:
        self._spec = ToolSpec(name=name, description=name)

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    async def invoke(self, arguments: Mapping[str, Any], context: ToolContext) -> JsonValue:
        return self._spec.name


NAMES = ["shell:run", "file:write", "file:read", "web:fetch", "git:status", "complete_task"]


@pytest.fixture
def registry() -> LocalToolRegistry:
    return LocalToolRegistry(StubTool(name) for name in NAMES)


def test_satisfies_the_core_protocol(registry: LocalToolRegistry) -> None:
    assert isinstance(registry, ToolRegistry)
    assert isinstance(registry.view(["*"]), ToolRegistry)


def test_register_get_and_sorted_specs(registry: LocalToolRegistry) -> None:
    assert [spec.name for spec in registry.specs()] == sorted(NAMES)
    assert registry.names() == sorted(NAMES)
    tool = registry.get("file:read")
    assert tool is not None
    assert tool.spec.name == "file:read"
    assert registry.get("file:delete") is None
    assert "web:fetch" in registry
    assert len(registry) == len(NAMES)


def test_register_returns_the_tool() -> None:
    registry = LocalToolRegistry()
    tool = StubTool("x:y")
    assert registry.register(tool) is tool


def test_duplicate_name_is_refused(registry: LocalToolRegistry) -> None:
    with pytest.raises(AlreadyExistsError) as caught:
        registry.register(StubTool("file:read"))
    assert caught.value.key == "file:read"
    assert caught.value.resource == "tool"


def test_duplicate_in_constructor_is_refused() -> None:
    with pytest.raises(AlreadyExistsError):
        LocalToolRegistry([StubTool("a:b"), StubTool("a:b")])


def test_unregister(registry: LocalToolRegistry) -> None:
    removed = registry.unregister("web:fetch")
    assert removed.spec.name == "web:fetch"
    assert registry.get("web:fetch") is None
    with pytest.raises(NotFoundError):
        registry.unregister("web:fetch")


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["*"], sorted(NAMES)),
        (["file:*"], ["complete_task", "file:read", "file:write"]),
        (["file:read"], ["complete_task", "file:read"]),
        (["*:r*"], ["complete_task", "file:read", "shell:run"]),
        (["git:status", "web:*"], ["complete_task", "git:status", "web:fetch"]),
        ([], ["complete_task"]),
        (["nothing:matches"], ["complete_task"]),
    ],
)
def test_view_patterns(registry: LocalToolRegistry, patterns: list[str], expected: list[str]) -> None:
    view = registry.view(patterns)
    assert [spec.name for spec in view.specs()] == expected
    assert view.names() == expected
    assert view.allowed == tuple(patterns)
    for name in NAMES:
        assert (view.get(name) is not None) == (name in expected)


def test_completion_tool_always_visible_even_namespaced() -> None:
    registry = LocalToolRegistry([StubTool("agent:complete_task"), StubTool("file:read")])
    assert registry.view([]).names() == ["agent:complete_task"]


def test_nested_views_narrow(registry: LocalToolRegistry) -> None:
    outer = registry.view(["file:*", "shell:run"])
    inner = outer.view(["*:r*"])
    assert inner.names() == ["complete_task", "file:read", "shell:run"]
    # A nested view can never widen: web:fetch was filtered out by the outer view.
    assert outer.view(["*"]).names() == outer.names()
    assert outer.view(["web:fetch"]).names() == ["complete_task"]


def test_view_is_read_only_and_parent_unaffected(registry: LocalToolRegistry) -> None:
    view = registry.view(["file:*"])
    with pytest.raises(UserError, match="read-only"):
        view.register(StubTool("file:delete"))
    with pytest.raises(UserError, match="read-only"):
        view.unregister("file:read")
    assert registry.names() == sorted(NAMES)
    assert view.names() == ["complete_task", "file:read", "file:write"]


def test_view_is_a_snapshot(registry: LocalToolRegistry) -> None:
    view = registry.view(["file:*"])
    registry.register(StubTool("file:delete"))
    registry.unregister("file:write")
    assert view.names() == ["complete_task", "file:read", "file:write"]
    assert isinstance(view, ToolRegistryView)
    assert "file:write" in view
    assert len(view) == 3


def test_views_are_shared_until_the_registry_changes(registry: LocalToolRegistry) -> None:
    view = registry.view(["file:*"])
    assert registry.view(("file:*",)) is view  # one snapshot per pattern list
    registry.register(StubTool("file:delete"))
    widened = registry.view(["file:*"])
    assert widened is not view
    assert widened.names() == ["complete_task", "file:delete", "file:read", "file:write"]
    registry.unregister("file:delete")
    assert registry.view(["file:*"]).names() == ["complete_task", "file:read", "file:write"]


def test_builtin_tools_register() -> None:
    registry = LocalToolRegistry(builtin_tools())
    assert registry.names() == [
        "complete_task",
        "file:edit",
        "file:info",
        "file:list",
        "file:read",
        "file:search",
        "file:write",
        "shell:run",
    ]
    assert registry.get("complete_task") is complete_task
    assert registry.view(["file:*"]).view(["file:read"]).names() == ["complete_task", "file:read"]
