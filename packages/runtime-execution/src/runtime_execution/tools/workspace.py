"""The workspace sandbox: every path a built-in tool touches is resolved inside one root directory."""

from __future__ import annotations

import os
from pathlib import Path

from runtime_core.exceptions import ToolExecutionError
from runtime_core.tools import ToolContext, ToolErrorCode

__all__ = ["Workspace"]


class Workspace:
    """A root directory that paths may not escape.

    `resolve` refuses ``..`` traversal out of the root, absolute paths outside it, and symbolic links
    (at any component) whose target lies outside it. The check follows links as they are when it runs;
    a link swapped in between the check and the use (a race with another process) is not prevented.

    Args:
        root: The workspace directory; it is made absolute and its own symbolic links are resolved.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root).resolve()

    @classmethod
    def from_context(cls, context: ToolContext) -> Workspace:
        """Return the workspace of a tool call.

        Raises:
            ToolExecutionError: ``PERMISSION_DENIED`` when the run has no workspace (file and shell tools
                only ever act inside one); ``RESOURCE_NOT_FOUND`` when it is not an existing directory.
        """
        if context.workspace is None:
            raise ToolExecutionError(
                "this tool needs a workspace, and the run has none; configure a workspace directory",
                code=ToolErrorCode.PERMISSION_DENIED,
            )
        workspace = cls(context.workspace)
        if not workspace.root.is_dir():
            raise ToolExecutionError(
                f"workspace {str(workspace.root)!r} is not an existing directory",
                code=ToolErrorCode.RESOURCE_NOT_FOUND,
                details={"path": str(workspace.root)},
            )
        return workspace

    @property
    def root(self) -> Path:
        """The resolved root directory."""
        return self._root

    def contains(self, path: Path) -> bool:
        """Whether the absolute `path`, with its symbolic links resolved, lies inside the root."""
        return path.resolve().is_relative_to(self._root)

    def resolve(self, path: str) -> Path:
        """Resolve `path` (relative to the root, or absolute inside it) to a real path inside the root.

        Args:
            path: A relative or absolute path; it need not exist.

        Returns:
            The absolute path with every symbolic link resolved.

        Raises:
            ToolExecutionError: ``SANDBOX_VIOLATION`` (details ``{"path"}``) when the path leaves the root
                lexically or through a symbolic link; ``INVALID_ARGUMENTS`` when it is not a valid path.
        """
        if "\0" in path:
            raise ToolExecutionError(
                "path contains a NUL character", code=ToolErrorCode.INVALID_ARGUMENTS, details={"path": path}
            )
        # `~` is not expanded: a path means the same thing whoever runs the tool.
        candidate = self._root / path
        # `resolve` follows every existing link and folds `..` after it (also over missing components),
        # so one containment check on the result covers traversal, absolute paths and links.
        resolved = candidate.resolve()
        if not resolved.is_relative_to(self._root):
            raise ToolExecutionError(
                f"path {path!r} is outside the workspace",
                code=ToolErrorCode.SANDBOX_VIOLATION,
                details={"path": path},
            )
        return resolved

    def relative(self, path: Path) -> str:
        """Return `path` relative to the root, in POSIX form (``"."`` for the root itself)."""
        return path.relative_to(self._root).as_posix()

    def __repr__(self) -> str:
        return f"Workspace({str(self._root)!r})"
