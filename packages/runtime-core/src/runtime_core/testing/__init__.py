"""Test kit for implementers of runtime_core protocols.

Subclass [`RunStoreConformance`][runtime_core.testing.RunStoreConformance] in a test module and implement
``make_store``; pytest collects the inherited checks::

    class TestMyStore(RunStoreConformance):
        async def make_store(self) -> RunStore:
            return MyStore(...)
"""

from runtime_core.testing.conformance import RUN_STORE_CHECKS, ConformanceFailure, RunStoreConformance

__all__ = ["RUN_STORE_CHECKS", "ConformanceFailure", "RunStoreConformance"]
