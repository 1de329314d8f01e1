"""The built-in file tools against a real workspace directory."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from runtime_core.function_tools import FunctionTool
from runtime_core.tools import ToolEffect, ToolErrorCode
from runtime_execution.tools import (
    file_edit,
    file_info,
    file_list,
    file_read,
    file_search,
    file_tools,
    file_write,
)

from ._support import invoke, invoke_error

ESCAPES = ["../outside/secret.txt", "link_out_file", "link_out_dir/secret.txt", "link_out_dir", "/etc/hostname"]

CALLS: dict[str, tuple[FunctionTool, dict[str, Any]]] = {
    "read": (file_read, {}),
    "write": (file_write, {"content": "pwned"}),
    "edit": (file_edit, {"old": "top", "new": "pwned"}),
    "list": (file_list, {}),
    "search": (file_search, {"pattern": "secret"}),
    "info": (file_info, {}),
}


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_file_tool_refuses_escapes(ws: Path, outside: Path, name: str, path: str) -> None:
    tool, arguments = CALLS[name]
    error = invoke_error(tool, ws, path=path, **arguments)
    assert error.code == ToolErrorCode.SANDBOX_VIOLATION
    assert error.details == {"path": path}
    assert error.tool_name == tool.spec.name
    assert (outside / "secret.txt").read_text() == "top secret\n"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_file_tool_needs_a_workspace(name: str) -> None:
    tool, arguments = CALLS[name]
    error = invoke_error(tool, None, path="README.md", **arguments)
    assert error.code == ToolErrorCode.PERMISSION_DENIED
    assert "workspace" in error.message


def test_effects_and_categories() -> None:
    effects = {tool.spec.name: tool.spec.effect for tool in file_tools()}
    assert effects == {
        "file:read": ToolEffect.NONE,
        "file:write": ToolEffect.IDEMPOTENT,
        "file:edit": ToolEffect.UNSAFE,
        "file:list": ToolEffect.NONE,
        "file:search": ToolEffect.NONE,
        "file:info": ToolEffect.NONE,
    }
    assert {tool.spec.category for tool in file_tools()} == {"file"}
    assert "context" not in str(file_read.spec.parameters)


# file:read


def test_read_whole_file_and_window(ws: Path) -> None:
    whole = invoke(file_read, ws, path="README.md")
    assert whole == {
        "path": "README.md",
        "content": "hello\nneedle one\nbye\n",
        "offset": 0,
        "lines": 3,
        "total_lines": 3,
        "truncated": False,
    }
    window = invoke(file_read, ws, path="README.md", offset=1, limit=1)
    assert window["content"] == "needle one\n"
    assert window["truncated"] is True
    past_end = invoke(file_read, ws, path="README.md", offset=10)
    assert past_end["content"] == ""
    assert past_end["lines"] == 0


def test_read_through_inside_link(ws: Path) -> None:
    assert invoke(file_read, ws, path="link_in")["content"].startswith("hello")


def test_read_errors(ws: Path) -> None:
    missing = invoke_error(file_read, ws, path="nope.txt")
    assert missing.code == ToolErrorCode.RESOURCE_NOT_FOUND
    assert missing.details == {"path": "nope.txt"}
    assert invoke_error(file_read, ws, path="src").code == ToolErrorCode.INVALID_ARGUMENTS
    assert invoke_error(file_read, ws, path="README.md", limit=0).code == ToolErrorCode.INVALID_ARGUMENTS
    assert invoke_error(file_read, ws, path="README.md", offset=-1).code == ToolErrorCode.INVALID_ARGUMENTS
    assert invoke_error(file_read, ws).code == ToolErrorCode.INVALID_ARGUMENTS
    assert invoke_error(file_read, ws, path="README.md", bogus=1).code == ToolErrorCode.INVALID_ARGUMENTS


# file:write


def test_write_creates_parents_and_is_idempotent(ws: Path) -> None:
    first = invoke(file_write, ws, path="new/deep/file.txt", content="héllo\n")
    second = invoke(file_write, ws, path="new/deep/file.txt", content="héllo\n")
    assert first == second == {"path": "new/deep/file.txt", "bytes": len("héllo\n".encode())}
    assert (ws / "new" / "deep" / "file.txt").read_text(encoding="utf-8") == "héllo\n"
    assert sorted(p.name for p in (ws / "new" / "deep").iterdir()) == ["file.txt"]


def test_write_replaces_and_keeps_mode(ws: Path) -> None:
    target = ws / "src" / "main.py"
    target.chmod(0o640)
    invoke(file_write, ws, path="src/main.py", content="x = 1\n")
    assert target.read_text() == "x = 1\n"
    assert target.stat().st_mode & 0o777 == 0o640


def test_write_through_inside_link_writes_target(ws: Path) -> None:
    invoke(file_write, ws, path="link_in", content="changed\n")
    assert (ws / "README.md").read_text() == "changed\n"
    assert (ws / "link_in").is_symlink()


def test_write_errors(ws: Path) -> None:
    assert invoke_error(file_write, ws, path="src", content="x").code == ToolErrorCode.INVALID_ARGUMENTS
    assert invoke_error(file_write, ws, path="README.md/x", content="x").code == ToolErrorCode.INVALID_ARGUMENTS
    assert invoke_error(file_write, ws, path="a.txt").code == ToolErrorCode.INVALID_ARGUMENTS


# file:edit


def test_edit_single_occurrence(ws: Path) -> None:
    result = invoke(file_edit, ws, path="README.md", old="needle one", new="thread")
    assert result == {"path": "README.md", "replacements": 1}
    assert (ws / "README.md").read_text() == "hello\nthread\nbye\n"
    # Applied twice, the exact replacement no longer finds its text: why the tool is declared unsafe.
    again = invoke_error(file_edit, ws, path="README.md", old="needle one", new="thread")
    assert again.code == ToolErrorCode.CONFLICT
    assert again.details == {"path": "README.md", "occurrences": 0}


def test_edit_multiple_occurrences(ws: Path) -> None:
    (ws / "dup.txt").write_text("a b a b a\n")
    error = invoke_error(file_edit, ws, path="dup.txt", old="a", new="z")
    assert error.code == ToolErrorCode.CONFLICT
    assert error.details == {"path": "dup.txt", "occurrences": 3}
    assert "3 times" in error.message
    assert (ws / "dup.txt").read_text() == "a b a b a\n"
    result = invoke(file_edit, ws, path="dup.txt", old="a", new="z", replace_all=True)
    assert result["replacements"] == 3
    assert (ws / "dup.txt").read_text() == "z b z b z\n"


def test_edit_errors(ws: Path) -> None:
    assert invoke_error(file_edit, ws, path="nope.txt", old="a", new="b").code == ToolErrorCode.RESOURCE_NOT_FOUND
    assert invoke_error(file_edit, ws, path="README.md", old="", new="b").code == ToolErrorCode.INVALID_ARGUMENTS
    same = invoke_error(file_edit, ws, path="README.md", old="bye", new="bye")
    assert same.code == ToolErrorCode.INVALID_ARGUMENTS
    assert invoke_error(file_edit, ws, path="src", old="a", new="b").code == ToolErrorCode.INVALID_ARGUMENTS


# file:list


def test_list_top_level_sorted_skips_git_and_outside_links(ws: Path) -> None:
    result = invoke(file_list, ws)
    assert result == {
        "path": ".",
        "entries": ["README.md", "blob.bin", "link_in", "src/"],
        "truncated": False,
    }


def test_list_recursive_glob_and_cap(ws: Path) -> None:
    recursive = invoke(file_list, ws, recursive=True)
    assert recursive["entries"] == [
        "README.md",
        "blob.bin",
        "link_in",
        "src/",
        "src/main.py",
        "src/pkg/",
        "src/pkg/util.py",
    ]
    assert invoke(file_list, ws, recursive=True, glob="*.py")["entries"] == ["src/main.py", "src/pkg/util.py"]
    assert invoke(file_list, ws, recursive=True, glob="src/pkg/*")["entries"] == ["src/pkg/util.py"]
    assert invoke(file_list, ws, path="src")["entries"] == ["main.py", "pkg/"]
    capped = invoke(file_list, ws, recursive=True, max_entries=2)
    assert capped["entries"] == ["README.md", "blob.bin"]
    assert capped["truncated"] is True


def test_list_errors(ws: Path) -> None:
    assert invoke_error(file_list, ws, path="nope").code == ToolErrorCode.RESOURCE_NOT_FOUND
    assert invoke_error(file_list, ws, path="README.md").code == ToolErrorCode.INVALID_ARGUMENTS


# file:search


def test_search_matches_skip_git_binary_and_outside(ws: Path) -> None:
    result = invoke(file_search, ws, pattern="needle|secret")
    assert result["matches"] == ["README.md:2:needle one", "link_in:2:needle one", "src/main.py:2:print('needle')"]
    assert result["truncated"] is False
    assert result["files_searched"] == 4


def test_search_glob_path_case_and_cap(ws: Path) -> None:
    assert invoke(file_search, ws, pattern="needle", glob="*.py")["matches"] == ["src/main.py:2:print('needle')"]
    assert invoke(file_search, ws, pattern="NEEDLE", path="README.md", ignore_case=True)["matches"] == [
        "README.md:2:needle one"
    ]
    assert invoke(file_search, ws, pattern="NEEDLE", path="README.md")["matches"] == []
    capped = invoke(file_search, ws, pattern=".", max_results=2)
    assert len(capped["matches"]) == 2
    assert capped["truncated"] is True


def test_search_errors(ws: Path) -> None:
    bad = invoke_error(file_search, ws, pattern="(unclosed")
    assert bad.code == ToolErrorCode.INVALID_ARGUMENTS
    assert bad.details == {"pattern": "(unclosed"}
    assert invoke_error(file_search, ws, pattern="x", path="nope").code == ToolErrorCode.RESOURCE_NOT_FOUND


# file:info


def test_info_file_directory_and_binary(ws: Path) -> None:
    info = invoke(file_info, ws, path="README.md")
    stat = os.stat(ws / "README.md")
    assert info["path"] == "README.md"
    assert info["type"] == "file"
    assert info["size"] == stat.st_size
    assert info["lines"] == 3
    assert datetime.fromisoformat(info["modified"]).timestamp() == pytest.approx(stat.st_mtime)
    directory = invoke(file_info, ws, path="src")
    assert directory["type"] == "directory"
    assert directory["lines"] is None
    assert invoke(file_info, ws, path="blob.bin")["lines"] is None


def test_info_missing(ws: Path) -> None:
    error = invoke_error(file_info, ws, path="nope")
    assert error.code == ToolErrorCode.RESOURCE_NOT_FOUND
