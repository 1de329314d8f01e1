"""The pytest-free harness every conformance kit builds on: a fresh store per check, in its own loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["StoreConformance"]

_S = TypeVar("_S")


class StoreConformance(Generic[_S]):
    """Base class of a pytest test class that holds a store to its protocol's contract.

    Override `make_store` (and `close_store` if the store holds resources). Each check gets a fresh
    store and runs in its own event loop, so no async pytest plugin is needed.
    """

    async def make_store(self) -> _S:
        """Return a new store for one check."""
        raise NotImplementedError(f"implement make_store() in your {type(self).__name__} subclass")

    async def close_store(self, store: _S) -> None:
        """Release what `make_store` acquired."""
        return None

    def run_check(self, check: Callable[[_S], Awaitable[None]]) -> None:
        """Run one check against a fresh store."""

        async def drive() -> None:
            store = await self.make_store()
            try:
                await check(store)
            finally:
                await self.close_store(store)

        asyncio.run(drive())
