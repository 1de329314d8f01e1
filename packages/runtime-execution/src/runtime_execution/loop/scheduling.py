"""Batch scheduling: split one turn's tool calls into dependency-safe groups that may run in parallel.

Each call reads and writes a set of resources. Two calls *conflict* when one writes a resource the other
reads or writes; resources are paths, and a path conflicts with its ancestors and descendants (writing
``src/a.py`` conflicts with listing ``src``). A call that has effects but names no resource writes the
wildcard ``*``, which conflicts with everything; an ``exclusive`` tool runs alone. Calls keep their order:
each goes into the group after the last group holding a call it conflicts with, so conflicting calls run
in the order the model asked for them and independent ones run together.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from runtime_core.tools import ToolCall, ToolConcurrency, ToolEffect, ToolSpec

__all__ = ["PATH_ARGUMENTS", "WILDCARD", "ResourceAccess", "ResourceResolver", "default_resources", "plan_groups"]

WILDCARD = "*"
"""The resource of a call with effects that names no resource: it conflicts with every other call."""

PATH_ARGUMENTS = ("path", "paths", "cwd", "directory", "source", "destination")
"""Argument names that hold paths (a string or a list of strings), for scheduling and sandbox checks."""


@dataclass(frozen=True, slots=True)
class ResourceAccess:
    """The resources one call reads and writes."""

    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()


ResourceResolver = Callable[[ToolCall, "ToolSpec | None"], ResourceAccess]
"""Finds the resources of a call; the default is `default_resources`."""


def path_values(arguments: Mapping[str, object]) -> list[str]:
    """The path arguments of a call (see `PATH_ARGUMENTS`), as given."""
    found: list[str] = []
    for key in PATH_ARGUMENTS:
        value = arguments.get(key)
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list):
            found.extend(item for item in value if isinstance(item, str))
    return found


def _normalise(path: str) -> str:
    # An absolute path cannot be compared with relative ones without the workspace root: make it
    # conflict with everything rather than guess.
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        return WILDCARD
    return posixpath.normpath(path.replace("\\", "/"))


def _with_defaults(call: ToolCall, spec: ToolSpec | None) -> Mapping[str, object]:
    """The call's arguments plus the schema defaults of path arguments it left out (``path="."``)."""
    properties = spec.parameters.get("properties") if spec is not None else None
    if not isinstance(properties, dict):
        return call.arguments
    defaults = {
        key: schema["default"]
        for key in PATH_ARGUMENTS
        if key not in call.arguments and isinstance(schema := properties.get(key), dict) and "default" in schema
    }
    return {**call.arguments, **defaults} if defaults else call.arguments


def default_resources(call: ToolCall, spec: ToolSpec | None) -> ResourceAccess:
    """Resources from path arguments (``path``, ``paths``, ``cwd``, ``directory``, ...).

    A read-only tool reads its paths (schema defaults fill in omitted ones); any other tool writes them.
    A tool with effects and no path argument (``shell:run`` without ``cwd``, an unknown tool) writes the
    `WILDCARD`, and so does an absolute path.
    """
    paths = frozenset(_normalise(path) for path in path_values(_with_defaults(call, spec)))
    if spec is not None and spec.effect is ToolEffect.NONE:
        return ResourceAccess(reads=paths)
    return ResourceAccess(writes=paths or frozenset({WILDCARD}))


def _overlap(a: str, b: str) -> bool:
    if a == b or WILDCARD in (a, b) or "." in (a, b):
        return True
    return a.startswith(b + "/") or b.startswith(a + "/")


def _conflict(first: ResourceAccess, second: ResourceAccess) -> bool:
    if WILDCARD in first.writes or WILDCARD in second.writes:
        return True  # even with a call that names no resource at all
    for written in first.writes:
        if any(_overlap(written, other) for other in second.reads | second.writes):
            return True
    return any(_overlap(written, other) for written in second.writes for other in first.reads)


def plan_groups(
    calls: Sequence[ToolCall],
    specs: Sequence[ToolSpec | None],
    *,
    resources: ResourceResolver = default_resources,
) -> list[list[int]]:
    """Order a turn's calls into groups; calls within a group are independent of each other.

    Args:
        calls: The calls, in the order the model made them.
        specs: The spec of each call (``None`` for an unknown tool).
        resources: How to find a call's resources.

    Returns:
        Groups of indices into `calls`, to run one group after another. Groups are not capped in size;
        the caller limits how many calls of a group run at once.
    """
    if len(calls) < 2:
        return [list(range(len(calls)))] if calls else []
    accesses = [resources(call, spec) for call, spec in zip(calls, specs, strict=True)]
    group_of: list[int] = []
    groups: list[list[int]] = []
    for index, spec in enumerate(specs):
        # An exclusive call waits for every earlier call, and every later call waits for it: it runs alone.
        exclusive = _is_exclusive(spec)
        after = -1
        for earlier in range(index):
            if exclusive or _is_exclusive(specs[earlier]) or _conflict(accesses[earlier], accesses[index]):
                after = max(after, group_of[earlier])
        target = after + 1
        if target == len(groups):
            groups.append([])
        groups[target].append(index)
        group_of.append(target)
    return groups


def _is_exclusive(spec: ToolSpec | None) -> bool:
    return spec is not None and spec.concurrency is ToolConcurrency.EXCLUSIVE
