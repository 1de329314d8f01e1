"""The redactor protocol: secrets are removed from everything bound for the run log."""

from __future__ import annotations

from typing import Protocol, TypeVar, runtime_checkable

__all__ = ["Redactor"]

_T = TypeVar("_T")


@runtime_checkable
class Redactor(Protocol):
    """Removes secrets from text, JSON-like values and models (the control plane ships one).

    Writers of the run log pass every payload and checkpoint through it before anything is stored, so no
    secret reaches the log, checkpoints, telemetry or a terminal.
    """

    def redact(self, value: _T) -> _T:
        """Return `value` with every secret replaced (the same object when there is nothing to replace)."""
        ...
