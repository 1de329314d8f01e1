"""Persistence plane of Agent Runtime.

Durable state on SQLite or PostgreSQL: the SQL run log and checkpoints, approvals, artifacts, spool and
leases, migrations, retention and audit export. Implements the `runtime_core` store protocols.
"""

from importlib.metadata import version as _version

__version__ = _version("runtime-persistence")

__all__ = [
    # metadata
    "__version__",
]
