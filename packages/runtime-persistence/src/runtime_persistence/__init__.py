"""Persistence plane of Agent Runtime.

Durable state on SQLite or PostgreSQL: the SQL run log and checkpoints, approvals, artifacts, spool and
leases, migrations, retention and audit export. Implements the `runtime_core` store protocols.

```python
engine = create_engine(default_sqlite_url())  # or "postgresql://user@host/db"
upgrade(engine)  # explicit: nothing migrates on its own
store = SqlRunStore(engine)
```
"""

from importlib.metadata import version as _version

from runtime_persistence.approvals import SqlApprovalStore
from runtime_persistence.artifacts import (
    DEFAULT_PAYLOAD_SCHEMAS,
    QUARANTINE_ERROR_CODE,
    ArtifactIssue,
    ArtifactQuarantinedError,
    ArtifactStatus,
    QuarantinedArtifact,
    SqlArtifactStore,
)
from runtime_persistence.audit import (
    AUDIT_FORMAT,
    AuditCounts,
    AuditFile,
    AuditManifest,
    AuditProblem,
    AuditProblemKind,
    AuditVerification,
    export_audit,
    verify_audit,
)
from runtime_persistence.engine import (
    DEFAULT_DATA_DIR,
    DEFAULT_DATABASE_NAME,
    SqliteSynchronous,
    create_engine,
    default_sqlite_url,
)
from runtime_persistence.exceptions import DatabaseError, SchemaOutdatedError
from runtime_persistence.migrations import (
    VERSION_TABLE,
    alembic_config,
    check,
    current,
    downgrade,
    head_revision,
    upgrade,
)
from runtime_persistence.retention import TERMINAL_STATUSES, PruneReport, prune
from runtime_persistence.runs import SqlRunStore
from runtime_persistence.schema import (
    SCHEMA_REVISION,
    ApprovalRow,
    ArtifactRow,
    Base,
    CheckpointRow,
    EventRow,
    LeaseRow,
    LineageRow,
    RunRow,
    SpoolReferenceRow,
    SpoolRow,
    UtcDateTime,
    metadata,
)
from runtime_persistence.spool import SPOOL_URI_PREFIX, SqlSpoolStore

__version__ = _version("runtime-persistence")

__all__ = [
    # metadata
    "__version__",
    # engines
    "DEFAULT_DATABASE_NAME",
    "DEFAULT_DATA_DIR",
    "SqliteSynchronous",
    "create_engine",
    "default_sqlite_url",
    # migrations
    "VERSION_TABLE",
    "alembic_config",
    "check",
    "current",
    "downgrade",
    "head_revision",
    "upgrade",
    # stores
    "SPOOL_URI_PREFIX",
    "SqlApprovalStore",
    "SqlRunStore",
    "SqlSpoolStore",
    # artifacts
    "DEFAULT_PAYLOAD_SCHEMAS",
    "QUARANTINE_ERROR_CODE",
    "ArtifactIssue",
    "ArtifactStatus",
    "QuarantinedArtifact",
    "SqlArtifactStore",
    # retention
    "TERMINAL_STATUSES",
    "PruneReport",
    "prune",
    # audit export
    "AUDIT_FORMAT",
    "AuditCounts",
    "AuditFile",
    "AuditManifest",
    "AuditProblem",
    "AuditProblemKind",
    "AuditVerification",
    "export_audit",
    "verify_audit",
    # schema
    "SCHEMA_REVISION",
    "ApprovalRow",
    "ArtifactRow",
    "Base",
    "CheckpointRow",
    "EventRow",
    "LeaseRow",
    "LineageRow",
    "RunRow",
    "SpoolReferenceRow",
    "SpoolRow",
    "UtcDateTime",
    "metadata",
    # exceptions
    "ArtifactQuarantinedError",
    "DatabaseError",
    "SchemaOutdatedError",
]
