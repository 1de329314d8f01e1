"""Errors specific to the persistence plane.

They extend the hierarchy of `runtime_core.exceptions`::

    AgentRuntimeError
    ├── UserError
    │   └── ConfigurationError          (runtime_core; an unsupported URL, a bad ``synchronous`` value, ...)
    │       └── SchemaOutdatedError     the database schema is not the one this version needs
    └── StoreError                      (runtime_core; fencing, duplicates, checkpoint chain, ...)
        ├── DatabaseError               the database failed (locked, unreachable, ...); nothing was written
        └── ArtifactQuarantinedError    an invalid artifact was kept in quarantine (in `artifacts`, with
                                        the `QuarantinedArtifact` record it carries)

`SchemaOutdatedError` is a `ConfigurationError`, not a `StoreError`: nothing went wrong with an operation
or with the data, the deployment is incomplete, and the fix is an action by whoever owns the database
(run the migrations, or install the matching version) — not a retry. Like every runtime error they carry
typed attributes and survive pickling.
"""

from __future__ import annotations

from runtime_core.exceptions import ConfigurationError, StoreError

__all__ = ["DatabaseError", "SchemaOutdatedError"]


class SchemaOutdatedError(ConfigurationError):
    """The database schema is not at the revision this version of runtime-persistence needs.

    Raised by `check` (and by a store's first use) when the schema is behind, missing (never migrated) or
    at a revision this version does not know (written by a newer version). Nothing is migrated on its own:
    apply the migrations with ``runtime_persistence.upgrade(engine)``.

    Attributes:
        current: The database's revision, or ``None`` when it was never migrated.
        required: The revision this version needs (the head of its migrations).
        url: The database URL, password hidden.
        ahead: Whether `current` is unknown to this version (written by a newer one).
        problem: What is wrong, without the remedy (an application names its own, such as a CLI command).
    """

    def __init__(self, *, current: str | None, required: str, url: str, ahead: bool = False) -> None:
        if ahead:
            message = (
                f"database {url} is at schema revision {current!r}, which this version of runtime-persistence "
                f"does not know (it needs {required!r}): it was migrated by a newer version; install that version"
            )
            problem = message
        else:
            found = "has no Agent Runtime schema yet" if current is None else f"is at schema revision {current!r}"
            problem = f"database {url} {found}, this version of runtime-persistence needs revision {required!r}"
            message = f"{problem}: apply the migrations with runtime_persistence.upgrade(engine)"
        super().__init__(message, setting="database.url")
        self.problem = problem
        self.current = current
        self.required = required
        self.url = url
        self.ahead = ahead


class DatabaseError(StoreError):
    """The database failed an operation (locked, unreachable, disk full, ...); its transaction rolled back.

    The original SQLAlchemy error is the ``__cause__``.

    Attributes:
        operation: What the store was doing (``"append"``, ``"acquire_lease"``, ...).
        retryable: Whether trying again may succeed (a busy or unreachable database) rather than fail the
            same way (a constraint or a programming error).
    """

    def __init__(self, message: str, *, operation: str, retryable: bool) -> None:
        super().__init__(message)
        self.operation = operation
        self.retryable = retryable
