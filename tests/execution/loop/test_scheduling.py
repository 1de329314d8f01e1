"""Batch scheduling: `plan_groups` and `default_resources` split a turn's calls into dependency-safe groups."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from runtime_core.tools import ToolCall, ToolConcurrency, ToolEffect, ToolSpec
from runtime_execution.loop import WILDCARD, ResourceAccess, default_resources, plan_groups
from runtime_execution.tools import file_list, file_search, file_write

READ = ToolSpec(name="file:read", description="read", effect=ToolEffect.NONE, category="file")
LIST = ToolSpec(name="file:list", description="list", effect=ToolEffect.NONE, category="file")
WRITE = ToolSpec(name="file:write", description="write", effect=ToolEffect.IDEMPOTENT, category="file")
EDIT = ToolSpec(name="file:edit", description="edit", effect=ToolEffect.UNSAFE, category="file")
# Parallel on purpose: the wildcard, not exclusivity, must be what serialises it.
SHELL = ToolSpec(name="shell:run", description="run a command", effect=ToolEffect.UNSAFE, category="shell")
FETCH = ToolSpec(name="web:fetch", description="fetch a page", effect=ToolEffect.NONE, category="web")
LOCK = ToolSpec(
    name="db:migrate", description="migrate", effect=ToolEffect.UNSAFE, concurrency=ToolConcurrency.EXCLUSIVE
)


def call(index: int, name: str, **arguments: object) -> ToolCall:
    return ToolCall.model_validate({"id": f"call-{index}", "name": name, "arguments": arguments})


def plan(items: Sequence[tuple[ToolSpec | None, dict[str, object]]]) -> list[list[int]]:
    calls = [
        call(index, spec.name if spec is not None else "ghost:tool", **arguments)
        for index, (spec, arguments) in enumerate(items)
    ]
    return plan_groups(calls, [spec for spec, _ in items])


def group_index(groups: list[list[int]]) -> dict[int, int]:
    return {index: number for number, group in enumerate(groups) for index in group}


# -- default_resources ---------------------------------------------------------------------------------


def test_read_only_tools_read_their_paths() -> None:
    access = default_resources(call(0, "file:read", path="src/a.py"), READ)
    assert access == ResourceAccess(reads=frozenset({"src/a.py"}))


def test_tools_with_effects_write_their_paths() -> None:
    access = default_resources(call(0, "file:write", path="./src//a.py", content="x"), WRITE)
    assert access == ResourceAccess(writes=frozenset({"src/a.py"}))


def test_every_path_argument_counts() -> None:
    move = ToolSpec(name="file:move", description="move", effect=ToolEffect.UNSAFE)
    arguments = {"source": "a", "destination": "b/", "paths": ["c", 3, "./d"], "cwd": "e", "directory": "f"}
    access = default_resources(call(0, "file:move", **arguments), move)
    assert access.writes == frozenset({"a", "b", "c", "d", "e", "f"})
    assert access.reads == frozenset()


def test_effects_without_paths_write_the_wildcard() -> None:
    assert default_resources(call(0, "shell:run", command="make"), SHELL).writes == frozenset({WILDCARD})


def test_unknown_tools_are_treated_as_having_effects() -> None:
    assert default_resources(call(0, "ghost:tool"), None) == ResourceAccess(writes=frozenset({WILDCARD}))
    assert default_resources(call(0, "ghost:tool", path="a"), None) == ResourceAccess(writes=frozenset({"a"}))


def test_read_only_tools_without_paths_read_nothing_in_particular() -> None:
    assert default_resources(call(0, "web:fetch", url="http://127.0.0.1/"), FETCH) == ResourceAccess()


# -- plan_groups -----------------------------------------------------------------------------------------


def test_no_calls_no_groups() -> None:
    assert plan_groups([], []) == []


def test_independent_reads_run_together() -> None:
    groups = plan([(READ, {"path": "a"}), (READ, {"path": "a"}), (LIST, {"path": "src"}), (FETCH, {})])
    assert groups == [[0, 1, 2, 3]]


def test_writes_to_different_paths_run_together() -> None:
    assert plan([(WRITE, {"path": "a"}), (WRITE, {"path": "b"}), (EDIT, {"path": "c/d"})]) == [[0, 1, 2]]


def test_write_after_read_of_the_same_path_is_ordered() -> None:
    assert plan([(READ, {"path": "a"}), (WRITE, {"path": "a"})]) == [[0], [1]]
    assert plan([(WRITE, {"path": "a"}), (READ, {"path": "a"})]) == [[0], [1]]
    assert plan([(WRITE, {"path": "a"}), (EDIT, {"path": "a"})]) == [[0], [1]]


def test_parent_and_child_paths_conflict() -> None:
    assert plan([(LIST, {"path": "src"}), (WRITE, {"path": "src/a.py"})]) == [[0], [1]]
    assert plan([(WRITE, {"path": "src/a.py"}), (LIST, {"path": "src"})]) == [[0], [1]]
    assert plan([(WRITE, {"path": "src"}), (READ, {"path": "src/pkg/deep.py"})]) == [[0], [1]]


def test_siblings_sharing_a_prefix_do_not_conflict() -> None:
    # "src2" is not inside "src": only whole path components count.
    assert plan([(WRITE, {"path": "src/a.py"}), (READ, {"path": "src2/a.py"}), (READ, {"path": "src.py"})]) == [
        [0, 1, 2]
    ]


def test_dot_slash_is_the_same_path() -> None:
    assert plan([(READ, {"path": "./a"}), (WRITE, {"path": "a"})]) == [[0], [1]]
    assert plan([(WRITE, {"path": "a/b/../c"}), (READ, {"path": "./a/c"})]) == [[0], [1]]


def test_an_absolute_path_may_name_the_same_file_as_a_relative_one() -> None:
    # The sandbox accepts absolute paths inside the workspace, and the resolver does not know the workspace
    # root: "/ws/src/a.py" may well be "src/a.py", so the two must not run side by side.
    assert plan([(WRITE, {"path": "/ws/src/a.py"}), (READ, {"path": "src/a.py"})]) == [[0], [1]]


def test_the_workspace_root_conflicts_with_every_path() -> None:
    assert plan([(WRITE, {"path": "deep/file.txt"}), (LIST, {"path": "."})]) == [[0], [1]]
    assert plan([(LIST, {"path": "./"}), (WRITE, {"path": "x"})]) == [[0], [1]]


def test_wildcard_serialises_effectful_calls_without_paths() -> None:
    groups = plan([(READ, {"path": "a"}), (SHELL, {"command": "make"}), (READ, {"path": "b"})])
    assert groups == [[0], [1], [2]]


def test_shell_with_a_cwd_only_conflicts_with_that_directory() -> None:
    groups = plan([(READ, {"path": "docs/x.md"}), (SHELL, {"command": "make", "cwd": "src"}), (READ, {"path": "src"})])
    assert groups == [[0, 1], [2]]


def test_two_wildcards_are_ordered() -> None:
    assert plan([(SHELL, {"command": "a"}), (SHELL, {"command": "b"})]) == [[0], [1]]


def test_the_wildcard_conflicts_with_calls_that_name_no_resource() -> None:
    # WILDCARD's contract: "it conflicts with every other call", so a path-less read-only call (a fetch, a
    # search of the whole workspace) may not run beside a command that can change anything.
    groups = plan([(SHELL, {"command": "rm -rf build"}), (FETCH, {"url": "http://127.0.0.1/"})])
    assert groups == [[0], [1]]


def test_a_read_of_the_default_path_is_ordered_after_a_write() -> None:
    # The real file tools: file:search and file:list default to the workspace root when `path` is left out,
    # so they read everything a file:write in the same turn may change.
    specs = [file_write.spec, file_search.spec, file_list.spec]
    calls = [
        call(0, "file:write", path="src/a.py", content="needle"),
        call(1, "file:search", pattern="needle"),
        call(2, "file:list"),
    ]
    assert plan_groups(calls, specs) == [[0], [1, 2]]


def test_unknown_tools_are_serialised_like_effects() -> None:
    assert plan([(READ, {"path": "a"}), (None, {}), (READ, {"path": "b"})]) == [[0], [1], [2]]
    assert plan([(None, {"path": "a"}), (READ, {"path": "a"}), (READ, {"path": "b"})]) == [[0, 2], [1]]


def test_exclusive_tools_run_alone() -> None:
    groups = plan([(READ, {"path": "a"}), (READ, {"path": "b"}), (LOCK, {}), (READ, {"path": "c"}), (FETCH, {})])
    assert groups == [[0, 1], [2], [3, 4]]
    assert plan([(LOCK, {}), (LOCK, {})]) == [[0], [1]]
    assert plan([(LOCK, {"path": "x"}), (READ, {"path": "y"})]) == [[0], [1]]


def test_exclusive_read_only_tool_still_runs_alone() -> None:
    snapshot = READ.model_copy(update={"name": "db:snapshot", "concurrency": ToolConcurrency.EXCLUSIVE})
    assert plan([(READ, {"path": "a"}), (snapshot, {"path": "b"}), (READ, {"path": "c"})]) == [[0], [1], [2]]


def test_a_call_goes_right_after_its_last_conflict() -> None:
    # 2 conflicts only with 0, so it joins group 1 beside 1; 3 conflicts with 2 and follows it.
    groups = plan([(WRITE, {"path": "a"}), (WRITE, {"path": "b"}), (READ, {"path": "a"}), (WRITE, {"path": "a"})])
    assert groups == [[0, 1], [2], [3]]
    groups = plan([(WRITE, {"path": "a"}), (WRITE, {"path": "a"}), (READ, {"path": "b"}), (READ, {"path": "a"})])
    assert groups == [[0, 2], [1], [3]]


def test_order_is_kept_within_and_across_groups() -> None:
    items: list[tuple[ToolSpec | None, dict[str, object]]] = [
        (READ, {"path": "z"}),
        (WRITE, {"path": "y"}),
        (READ, {"path": "y"}),
        (READ, {"path": "x"}),
        (WRITE, {"path": "z"}),
        (READ, {"path": "w"}),
    ]
    groups = plan(items)
    assert groups == [[0, 1, 3, 5], [2, 4]]
    assert all(group == sorted(group) for group in groups)


def test_a_custom_resolver_is_used() -> None:
    everything_shared = ResourceAccess(writes=frozenset({"db"}))
    calls = [call(0, "file:read", path="a"), call(1, "file:read", path="b")]
    assert plan_groups(calls, [READ, READ], resources=lambda _call, _spec: everything_shared) == [[0], [1]]


# -- property ------------------------------------------------------------------------------------------

PATHS = ["a", "./a", "a/b", "a/b/c", "a2", "b", "b/x", ".", "src/a.py", "src"]


def _norm(path: str) -> str:
    cleaned = posixpath.normpath(path)
    return "." if cleaned == "." else cleaned


def _inside(a: str, b: str) -> bool:
    """Whether `a` is `b` or lies under it (the workspace root "." holds everything)."""
    return b == "." or a == b or a.startswith(b + "/")


def _oracle_conflict(first: tuple[ToolSpec | None, list[str]], second: tuple[ToolSpec | None, list[str]]) -> bool:
    """An independent statement of the documented rules."""
    (spec_a, paths_a), (spec_b, paths_b) = first, second
    if any(spec is not None and spec.concurrency is ToolConcurrency.EXCLUSIVE for spec in (spec_a, spec_b)):
        return True
    writes_a = spec_a is None or spec_a.effect is not ToolEffect.NONE
    writes_b = spec_b is None or spec_b.effect is not ToolEffect.NONE
    if not (writes_a or writes_b):
        return False
    if (writes_a and not paths_a) or (writes_b and not paths_b):
        return True  # the wildcard
    return any(_inside(_norm(x), _norm(y)) or _inside(_norm(y), _norm(x)) for x in paths_a for y in paths_b)


_specs = st.one_of(
    st.none(),
    st.builds(
        lambda effect, concurrency: ToolSpec(
            name="tool:op", description="generated", effect=effect, concurrency=concurrency
        ),
        st.sampled_from(list(ToolEffect)),
        st.sampled_from([ToolConcurrency.PARALLEL] * 4 + [ToolConcurrency.EXCLUSIVE]),
    ),
)


@st.composite
def _calls(draw: st.DrawFn) -> tuple[ToolSpec | None, list[str]]:
    spec = draw(_specs)
    read_only = spec is not None and spec.effect is ToolEffect.NONE
    # Read-only calls name at least one path here; path-less reads have their own tests above.
    paths = draw(st.lists(st.sampled_from(PATHS), min_size=1 if read_only else 0, max_size=3))
    return spec, paths


@settings(max_examples=300, deadline=None)
@given(st.lists(_calls(), max_size=12))
def test_groups_are_a_dependency_safe_ordering(items: list[tuple[ToolSpec | None, list[str]]]) -> None:
    calls = []
    for index, (spec, paths) in enumerate(items):
        arguments: dict[str, object] = {}
        if len(paths) == 1:
            arguments["path"] = paths[0]
        elif paths:
            arguments["paths"] = paths
        calls.append(call(index, spec.name if spec is not None else "ghost:tool", **arguments))
    groups = plan_groups(calls, [spec for spec, _ in items])

    flat = [index for group in groups for index in group]
    assert sorted(flat) == list(range(len(items)))  # (a) every call exactly once
    assert all(group for group in groups)
    assert all(group == sorted(group) for group in groups)
    where = group_index(groups)
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if _oracle_conflict(items[i], items[j]):
                assert where[i] < where[j], (i, j, groups)  # (b) and (c): never together, in order
