"""Test kit for implementers of runtime_core protocols.

Subclass a conformance base class in a test module and implement ``make_store``; pytest collects the
inherited checks::

    class TestMyStore(RunStoreConformance):
        async def make_store(self) -> RunStore:
            return MyStore(...)


    class TestMyApprovalStore(ApprovalStoreConformance):
        async def make_store(self) -> ApprovalStore:
            return MyApprovalStore(...)
"""

from runtime_core.testing.approvals import APPROVAL_STORE_CHECKS, ApprovalStoreConformance
from runtime_core.testing.conformance import RUN_STORE_CHECKS, ConformanceFailure, RunStoreConformance

__all__ = [
    # shared
    "ConformanceFailure",
    # run stores
    "RUN_STORE_CHECKS",
    "RunStoreConformance",
    # approval stores
    "APPROVAL_STORE_CHECKS",
    "ApprovalStoreConformance",
]
