"""Tool registries: a mutable local registry and read-only, pattern-filtered views of it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from runtime_core.exceptions import AlreadyExistsError, NotFoundError, UserError
from runtime_core.tools import Tool, ToolSpec, is_completion_tool, match_tool_pattern

__all__ = ["LocalToolRegistry", "ToolRegistryView"]


def _allowed(name: str, patterns: Sequence[str]) -> bool:
    """Whether `name` matches one of `patterns`; the completion tool always does."""
    return is_completion_tool(name) or any(match_tool_pattern(pattern, name) for pattern in patterns)


class LocalToolRegistry:
    """An in-process registry of tools, keyed by name.

    It satisfies the `runtime_core.tools.ToolRegistry` protocol and adds `register` and `unregister`.
    Views taken with `view` are snapshots: tools registered or removed afterwards do not appear in (or
    vanish from) a view already handed to a run, so what a run may call is fixed when the run starts.

    Args:
        tools: Tools to register right away.

    Raises:
        AlreadyExistsError: Two of `tools` share a name.
    """

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        # Views by pattern list: a view is a read-only snapshot, so runs of one agent share one until
        # the registry changes (every run asks for its agent's view when it starts).
        self._views: dict[tuple[str, ...], ToolRegistryView] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> Tool:
        """Add `tool` under its spec name and return it (so the method also works as a decorator).

        Raises:
            AlreadyExistsError: A tool with the same name is registered.
        """
        name = tool.spec.name
        if name in self._tools:
            raise AlreadyExistsError("tool", name)
        self._tools[name] = tool
        self._views.clear()
        return tool

    def unregister(self, name: str) -> Tool:
        """Remove the tool called `name` and return it.

        Raises:
            NotFoundError: No tool has that name.
        """
        try:
            tool = self._tools.pop(name)
        except KeyError:
            raise NotFoundError("tool", name) from None
        self._views.clear()
        return tool

    def get(self, name: str) -> Tool | None:
        """Return the tool called `name`, or ``None``."""
        return self._tools.get(name)

    def specs(self) -> list[ToolSpec]:
        """Return the specifications of every tool, sorted by name."""
        return [self._tools[name].spec for name in sorted(self._tools)]

    def names(self) -> list[str]:
        """Return the registered tool names, sorted."""
        return sorted(self._tools)

    def view(self, allowed: Sequence[str]) -> ToolRegistryView:
        """Return a read-only snapshot holding only the tools matching `allowed` (plus completion).

        Args:
            allowed: Tool name patterns: exact names, ``*``, ``file:*`` or any shell-style glob.
        """
        key = tuple(allowed)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = ToolRegistryView(self._tools, key)
        return view

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)


class ToolRegistryView:
    """A read-only subset of a registry: the tools matching a list of patterns, plus the completion tool.

    The subset is taken when the view is built; the parent registry is never changed through a view.
    A view of a view keeps only tools both pattern lists allow, so nesting can only narrow.

    Args:
        tools: The tools to filter, by name.
        allowed: Tool name patterns: exact names, ``*``, ``file:*`` or any shell-style glob.
    """

    def __init__(self, tools: Mapping[str, Tool], allowed: Sequence[str]) -> None:
        self._allowed = tuple(allowed)
        self._tools = {name: tool for name, tool in sorted(tools.items()) if _allowed(name, self._allowed)}

    @property
    def allowed(self) -> tuple[str, ...]:
        """The patterns this view was built with."""
        return self._allowed

    def get(self, name: str) -> Tool | None:
        """Return the tool called `name` if the view holds it, else ``None``."""
        return self._tools.get(name)

    def specs(self) -> list[ToolSpec]:
        """Return the specifications of the tools in the view, sorted by name."""
        return [tool.spec for tool in self._tools.values()]

    def names(self) -> list[str]:
        """Return the tool names in the view, sorted."""
        return list(self._tools)

    def view(self, allowed: Sequence[str]) -> ToolRegistryView:
        """Return a narrower read-only view: tools of this view that also match `allowed`."""
        return ToolRegistryView(self._tools, allowed)

    def register(self, tool: Tool) -> Tool:
        """Refuse: a view is read-only.

        Raises:
            UserError: Always.
        """
        raise UserError(f"cannot register {tool.spec.name!r}: a tool registry view is read-only")

    def unregister(self, name: str) -> Tool:
        """Refuse: a view is read-only.

        Raises:
            UserError: Always.
        """
        raise UserError(f"cannot unregister {name!r}: a tool registry view is read-only")

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)
