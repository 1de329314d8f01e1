"""Output spooling: large tool outputs go to content-addressed storage; the model sees a truncated view."""

from __future__ import annotations

from dataclasses import dataclass

from runtime_core.spool import SpoolRef, SpoolStore

__all__ = ["SpoolPolicy", "spool_output"]


@dataclass(frozen=True, slots=True)
class SpoolPolicy:
    """When to spool an output and how much of it the model sees.

    Attributes:
        max_bytes: Outputs larger than this (UTF-8 bytes) are spooled. Default 64 KiB.
        max_lines: Outputs with more lines than this are spooled. Default 200.
        view_lines: Lines kept in the truncated view.
        view_bytes: Upper bound on the truncated view's size in bytes.
    """

    max_bytes: int = 64 * 1024
    max_lines: int = 200
    view_lines: int = 100
    view_bytes: int = 16 * 1024

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_lines, self.view_lines, self.view_bytes) < 1:
            raise ValueError(f"spool limits must be positive, got {self}")

    def needs_spool(self, content: str) -> bool:
        """Whether `content` is over either limit."""
        # Cheap tests first: a short string can be neither too long nor have too many lines.
        if len(content) <= self.max_lines and len(content) * 4 <= self.max_bytes:
            return False
        lines = content.count("\n") + (0 if content.endswith("\n") else 1)
        return lines > self.max_lines or len(content.encode()) > self.max_bytes


async def spool_output(content: str, store: SpoolStore, policy: SpoolPolicy) -> tuple[str, SpoolRef]:
    """Store `content` in full and return the view the model sees, with a disclosure line, and its ref."""
    data = content.encode()
    ref = await store.put(data)
    lines = content.splitlines(keepends=True)[: policy.view_lines]
    view = "".join(lines).encode()[: policy.view_bytes].decode(errors="ignore")
    shown = view.count("\n") + (0 if view.endswith("\n") or not view else 1)
    disclosure = (
        f"[output truncated: showing {shown} of {ref.line_count} lines ({len(view.encode())} of {ref.byte_size} "
        f"bytes); the full output is stored as sha256:{ref.content_hash} at {ref.uri}]"
    )
    return (view if view.endswith("\n") or not view else view + "\n") + disclosure, ref
