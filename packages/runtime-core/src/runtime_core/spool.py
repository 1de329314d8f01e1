"""Content-addressed storage for large tool outputs."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import Field, NonNegativeInt

from runtime_core._base import FrozenModel

__all__ = ["SpoolRef", "SpoolStore"]


class SpoolRef(FrozenModel):
    """Where a spooled output lives and what it holds."""

    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the content.")
    byte_size: NonNegativeInt
    line_count: NonNegativeInt
    uri: str


@runtime_checkable
class SpoolStore(Protocol):
    """Content-addressed byte storage: equal contents are stored once."""

    async def put(self, content: bytes) -> SpoolRef:
        """Store `content` and return its reference."""
        ...

    async def get(self, content_hash: str) -> bytes:
        """Return stored content; raise `NotFoundError` if absent."""
        ...
