"""Workspace path confinement."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime_core.exceptions import ToolExecutionError
from runtime_core.tools import ToolErrorCode
from runtime_execution.tools import Workspace

from ._support import context

ESCAPES = [
    "..",
    "../outside/secret.txt",
    "src/../../outside/secret.txt",
    "src/pkg/../../../x",
    "link_out_file",
    "link_out_dir",
    "link_out_dir/secret.txt",
    "link_out_dir/new.txt",
    "/etc/passwd",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_escapes_are_refused(ws: Path, path: str) -> None:
    with pytest.raises(ToolExecutionError) as caught:
        Workspace(ws).resolve(path)
    assert caught.value.code == ToolErrorCode.SANDBOX_VIOLATION
    assert caught.value.details == {"path": path}


def test_absolute_path_outside_by_tmp(ws: Path, outside: Path) -> None:
    with pytest.raises(ToolExecutionError) as caught:
        Workspace(ws).resolve(str(outside / "secret.txt"))
    assert caught.value.code == ToolErrorCode.SANDBOX_VIOLATION


def test_inside_paths_resolve(ws: Path) -> None:
    workspace = Workspace(ws)
    root = ws.resolve()
    assert workspace.root == root
    assert workspace.resolve("README.md") == root / "README.md"
    assert workspace.resolve(".") == root
    assert workspace.resolve("src/../README.md") == root / "README.md"
    assert workspace.resolve(str(root / "src" / "main.py")) == root / "src" / "main.py"
    assert workspace.resolve("not/yet/there.txt") == root / "not" / "yet" / "there.txt"
    assert workspace.resolve("link_in") == root / "README.md"
    assert workspace.resolve("~") == root / "~"
    assert workspace.relative(root / "src" / "main.py") == "src/main.py"


def test_root_given_through_a_link(ws: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(ws, target_is_directory=True)
    workspace = Workspace(alias)
    assert workspace.resolve(str(alias / "README.md")) == ws.resolve() / "README.md"


def test_nul_byte_is_invalid(ws: Path) -> None:
    with pytest.raises(ToolExecutionError) as caught:
        Workspace(ws).resolve("a\0b")
    assert caught.value.code == ToolErrorCode.INVALID_ARGUMENTS


def test_from_context(ws: Path, tmp_path: Path) -> None:
    assert Workspace.from_context(context(ws)).root == ws.resolve()
    with pytest.raises(ToolExecutionError) as missing:
        Workspace.from_context(context(None))
    assert missing.value.code == ToolErrorCode.PERMISSION_DENIED
    with pytest.raises(ToolExecutionError) as absent:
        Workspace.from_context(context(tmp_path / "nope"))
    assert absent.value.code == ToolErrorCode.RESOURCE_NOT_FOUND
