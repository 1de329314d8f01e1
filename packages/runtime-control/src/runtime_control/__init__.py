"""Control plane of Agent Runtime.

Governance: the policy engine and presets, policy files, approvals, budgets, the model catalog and
cost, the event bus and message bus, agent lineage and quotas. Depends on `runtime_core` and
`runtime_telemetry`.
"""

from importlib.metadata import version as _version

__version__ = _version("runtime-control")

__all__ = [
    # metadata
    "__version__",
]
