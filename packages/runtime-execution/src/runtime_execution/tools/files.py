"""Built-in file tools: read, write, edit, list, search and inspect files inside the workspace.

Every path goes through [`Workspace.resolve`][runtime_execution.tools.workspace.Workspace.resolve], so no
file tool reads or writes outside the run's workspace, directly or through a symbolic link. The functions
are synchronous and run in a worker thread (the `tool` decorator sees to it), keeping the event loop free.

Error codes: a missing file is ``RESOURCE_NOT_FOUND``; a path of the wrong kind (a directory to read, a
file to list) or a bad pattern is ``INVALID_ARGUMENTS``; an edit whose ``old`` text occurs zero times or
more than once (without ``replace_all``) is ``CONFLICT`` with the count in ``details["occurrences"]``.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, JsonValue

from runtime_core.exceptions import ToolExecutionError
from runtime_core.function_tools import FunctionTool, tool
from runtime_core.tools import ToolContext, ToolEffect, ToolErrorCode
from runtime_execution.tools.workspace import Workspace

__all__ = [
    "file_edit",
    "file_info",
    "file_list",
    "file_read",
    "file_search",
    "file_tools",
    "file_write",
]

_SKIPPED_DIRS = frozenset({".git"})
_BINARY_SNIFF_BYTES = 8192
_MAX_LINE_CHARS = 500
_MAX_SEARCH_FILE_BYTES = 4 * 1024 * 1024


def _not_found(path: str) -> ToolExecutionError:
    return ToolExecutionError(f"{path!r} does not exist", code=ToolErrorCode.RESOURCE_NOT_FOUND, details={"path": path})


def _wrong_kind(path: str, message: str) -> ToolExecutionError:
    return ToolExecutionError(f"{path!r} {message}", code=ToolErrorCode.INVALID_ARGUMENTS, details={"path": path})


def _existing_file(workspace: Workspace, path: str) -> Path:
    target = workspace.resolve(path)
    if not target.exists():
        raise _not_found(path)
    if not target.is_file():
        raise _wrong_kind(path, "is not a regular file")
    return target


def _existing_dir(workspace: Workspace, path: str) -> Path:
    target = workspace.resolve(path)
    if not target.exists():
        raise _not_found(path)
    if not target.is_dir():
        raise _wrong_kind(path, "is not a directory")
    return target


def _is_binary(path: Path) -> bool:
    with path.open("rb") as handle:
        return b"\0" in handle.read(_BINARY_SNIFF_BYTES)


def _walk(workspace: Workspace, top: Path, recursive: bool) -> Iterator[tuple[Path, bool]]:
    """Yield ``(path, is_dir)`` under `top`, sorted, skipping ``.git`` and links that leave the workspace.

    Linked directories are listed but never descended into, so a walk cannot loop or leave the root.
    """
    try:
        entries = sorted(os.scandir(top), key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        if entry.name in _SKIPPED_DIRS:
            continue
        path = Path(entry.path)
        if entry.is_symlink() and not workspace.contains(path):
            continue
        is_dir = entry.is_dir()
        yield path, is_dir
        if is_dir and recursive and not entry.is_symlink():
            yield from _walk(workspace, path, recursive)


def _glob_matches(glob: str | None, relative: str) -> bool:
    if glob is None:
        return True
    # A glob with a slash matches the relative path; otherwise it matches the file name.
    target = relative if "/" in glob else relative.rpartition("/")[2]
    return fnmatch.fnmatchcase(target, glob)


@tool(name="file:read", effect=ToolEffect.NONE, category="file")
def file_read(
    path: str,
    context: ToolContext,
    offset: Annotated[int, Field(ge=0)] = 0,
    limit: Annotated[int | None, Field(ge=1)] = None,
) -> dict[str, JsonValue]:
    """Read a text file from the workspace, optionally a window of its lines.

    Args:
        path: File path, relative to the workspace root.
        offset: Number of lines to skip from the start.
        limit: Maximum number of lines to return; all remaining lines when omitted.
        context: The call's context; supplies the workspace (not shown to the model).
    """
    workspace = Workspace.from_context(context)
    target = _existing_file(workspace, path)
    lines = target.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    end = len(lines) if limit is None else min(len(lines), offset + limit)
    window = lines[offset:end]
    return {
        "path": workspace.relative(target),
        "content": "".join(window),
        "offset": offset,
        "lines": len(window),
        "total_lines": len(lines),
        "truncated": end < len(lines),
    }


@tool(name="file:write", effect=ToolEffect.IDEMPOTENT, category="file")
def file_write(path: str, content: str, context: ToolContext) -> dict[str, JsonValue]:
    """Write a text file in the workspace, replacing it if it exists and creating parent directories.

    Writing the same content again leaves the same file, so the tool is idempotent. The file is written
    to a temporary sibling and renamed over the target, so a crash never leaves it half-written.

    Args:
        path: File path, relative to the workspace root.
        content: The complete new content of the file (UTF-8).
        context: The call's context; supplies the workspace (not shown to the model).
    """
    workspace = Workspace.from_context(context)
    target = workspace.resolve(path)
    if target.is_dir():
        raise _wrong_kind(path, "is a directory")
    data = content.encode("utf-8")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise _wrong_kind(path, "has a parent that is not a directory") from None
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        if target.exists():
            os.chmod(temporary, target.stat().st_mode & 0o7777)
        else:
            os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return {"path": workspace.relative(target), "bytes": len(data)}


def _umask() -> int:
    # The umask can only be read by setting it; set it straight back.
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Declared unsafe: the exact-text replacement is not idempotent (a second run finds no `old` text, or
# applies `replace_all` again), and the tool has no reconcile hook, so an interrupted edit must not be
# silently re-run after a crash.
@tool(name="file:edit", effect=ToolEffect.UNSAFE, category="file")
def file_edit(
    path: str,
    old: Annotated[str, Field(min_length=1)],
    new: str,
    context: ToolContext,
    replace_all: bool = False,
) -> dict[str, JsonValue]:
    """Replace exact text in a workspace file.

    `old` must occur exactly once unless `replace_all` is set; otherwise the call fails with
    ``CONFLICT`` and the number of occurrences, and the file is left unchanged.

    Args:
        path: File path, relative to the workspace root.
        old: The exact text to replace (whitespace and indentation included).
        new: The replacement text.
        context: The call's context; supplies the workspace (not shown to the model).
        replace_all: Replace every occurrence instead of requiring exactly one.
    """
    workspace = Workspace.from_context(context)
    target = _existing_file(workspace, path)
    if old == new:
        raise ToolExecutionError(
            "old and new are identical; nothing to change", code=ToolErrorCode.INVALID_ARGUMENTS, details={"path": path}
        )
    text = target.read_text(encoding="utf-8")
    occurrences = text.count(old)
    if occurrences == 0 or (occurrences > 1 and not replace_all):
        problem = (
            "does not occur" if occurrences == 0 else f"occurs {occurrences} times; make it unique or set replace_all"
        )
        raise ToolExecutionError(
            f"the text to replace {problem} in {path!r}",
            code=ToolErrorCode.CONFLICT,
            details={"path": path, "occurrences": occurrences},
        )
    target.write_text(text.replace(old, new), encoding="utf-8")
    return {"path": workspace.relative(target), "replacements": occurrences}


@tool(name="file:list", effect=ToolEffect.NONE, category="file")
def file_list(
    context: ToolContext,
    path: str = ".",
    glob: str | None = None,
    recursive: bool = False,
    max_entries: Annotated[int, Field(ge=1, le=10_000)] = 1000,
) -> dict[str, JsonValue]:
    """List a workspace directory, sorted by path; directories end with ``/``; ``.git`` is skipped.

    Args:
        path: Directory, relative to the workspace root.
        glob: Shell-style pattern; matched against the name, or against the relative path if it has a ``/``.
        recursive: Descend into subdirectories.
        max_entries: Stop after this many entries.
        context: The call's context; supplies the workspace (not shown to the model).
    """
    workspace = Workspace.from_context(context)
    top = _existing_dir(workspace, path)
    entries: list[JsonValue] = []
    truncated = False
    for entry, is_dir in _walk(workspace, top, recursive):
        relative = entry.relative_to(top).as_posix()
        if not _glob_matches(glob, relative):
            continue
        if len(entries) == max_entries:
            truncated = True
            break
        entries.append(relative + "/" if is_dir else relative)
    return {"path": workspace.relative(top), "entries": entries, "truncated": truncated}


def _search_file(file: Path, regex: re.Pattern[str], label: str, matches: list[JsonValue], limit: int) -> bool:
    """Append ``label:line:text`` matches of `file`; return whether `limit` was reached."""
    with file.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if regex.search(line):
                if len(matches) == limit:
                    return True
                matches.append(f"{label}:{number}:{line.rstrip(chr(10) + chr(13))[:_MAX_LINE_CHARS]}")
    return False


@tool(name="file:search", effect=ToolEffect.NONE, category="file")
def file_search(
    pattern: str,
    context: ToolContext,
    path: str = ".",
    glob: str | None = None,
    ignore_case: bool = False,
    max_results: Annotated[int, Field(ge=1, le=10_000)] = 200,
) -> dict[str, JsonValue]:
    """Search workspace files for a regular expression, line by line.

    Binary files, files over 4 MiB and ``.git`` are skipped. Matches read ``path:line:text`` with the
    path relative to the workspace root.

    Args:
        pattern: Python regular expression.
        path: File or directory to search, relative to the workspace root.
        glob: Only search files whose name (or relative path, if the glob has a ``/``) matches.
        ignore_case: Match case-insensitively.
        max_results: Stop after this many matches.
        context: The call's context; supplies the workspace (not shown to the model).
    """
    try:
        regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as error:
        raise ToolExecutionError(
            f"invalid regular expression: {error}",
            code=ToolErrorCode.INVALID_ARGUMENTS,
            details={"pattern": pattern},
        ) from None
    workspace = Workspace.from_context(context)
    top = workspace.resolve(path)
    if not top.exists():
        raise _not_found(path)
    candidates: list[Path]
    if top.is_file():
        candidates = [top]
    else:
        candidates = [
            entry
            for entry, is_dir in _walk(workspace, top, recursive=True)
            if not is_dir and _glob_matches(glob, entry.relative_to(top).as_posix())
        ]
    matches: list[JsonValue] = []
    truncated = False
    searched = 0
    for file in candidates:
        real = file.resolve()
        if not real.is_file() or real.stat().st_size > _MAX_SEARCH_FILE_BYTES or _is_binary(real):
            continue
        searched += 1
        if _search_file(real, regex, workspace.relative(file), matches, max_results):
            truncated = True
            break
    return {"matches": matches, "truncated": truncated, "files_searched": searched}


@tool(name="file:info", effect=ToolEffect.NONE, category="file")
def file_info(path: str, context: ToolContext) -> dict[str, JsonValue]:
    """Describe a workspace path: type, size, modification time and, for text files, the line count.

    Args:
        path: File or directory, relative to the workspace root.
        context: The call's context; supplies the workspace (not shown to the model).
    """
    workspace = Workspace.from_context(context)
    target = workspace.resolve(path)
    if not target.exists():
        raise _not_found(path)
    status = target.stat()
    kind = "directory" if target.is_dir() else "file" if target.is_file() else "other"
    lines: int | None = None
    if kind == "file" and not _is_binary(target):
        with target.open("rb") as handle:
            lines = sum(1 for _ in handle)
    info: dict[str, Any] = {
        "path": workspace.relative(target),
        "type": kind,
        "size": status.st_size,
        "modified": datetime.fromtimestamp(status.st_mtime, tz=UTC).isoformat(),
        "lines": lines,
    }
    return info


def file_tools() -> list[FunctionTool]:
    """Return the built-in file tools: read, write, edit, list, search and info."""
    return [file_read, file_write, file_edit, file_list, file_search, file_info]
