"""Structured logging through the standard library: logger names, run context and a JSON formatter.

Library code logs through ``logging.getLogger(<plane>.<module>)`` and never configures handlers nor
prints. Applications (the CLI's ``--log-json``) install a handler with
[`JsonFormatter`][runtime_telemetry.JsonFormatter] and [`RunContextFilter`][runtime_telemetry.RunContextFilter];
code that knows which run and turn it works for binds them with
[`log_context`][runtime_telemetry.log_context], and every record logged inside carries them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

__all__ = [
    "LOG_CONTEXT_FIELDS",
    "PLANE_LOGGERS",
    "JsonFormatter",
    "RunContextFilter",
    "current_log_context",
    "log_context",
]

PLANE_LOGGERS: Final = (
    "runtime_core",
    "runtime_telemetry",
    "runtime_control",
    "runtime_persistence",
    "runtime_execution",
    "runtime_facade",
)
"""The root logger name of each plane; modules log on children (``runtime_execution.loop``)."""

LOG_CONTEXT_FIELDS: Final = ("run_id", "agent", "turn", "tool_call_id")
"""The context fields `RunContextFilter` sets on every record (``None`` when unbound)."""

_CONTEXT: ContextVar[Mapping[str, object] | None] = ContextVar("agent_runtime_log_context", default=None)
_EMPTY: Final[Mapping[str, object]] = MappingProxyType({})

# Attributes every LogRecord has: anything else on a record came from ``extra=`` and is logged as a field.
_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class _Binding:
    """The context manager `log_context` returns (a plain class: the agent loop enters one every turn)."""

    __slots__ = ("_bound", "_token")

    def __init__(self, bound: dict[str, object]) -> None:
        self._bound = bound

    def __enter__(self) -> Mapping[str, object]:
        self._token = _CONTEXT.set(self._bound)
        return self._bound

    def __exit__(self, *exc_info: object) -> None:
        _CONTEXT.reset(self._token)


def log_context(
    *,
    run_id: str | None = None,
    agent: str | None = None,
    turn: int | None = None,
    tool_call_id: str | None = None,
) -> AbstractContextManager[Mapping[str, object]]:
    """Bind run context for the records logged inside the block (and the tasks it starts): ``with ...:``.

    Fields left ``None`` keep their value from an enclosing block, so a driver binds the run once and
    each turn adds its number. The binding is a context variable: it follows ``asyncio`` tasks and is
    undone on exit. Entering the block gives the context now bound.

    Args:
        run_id: The run.
        agent: The agent's name.
        turn: The turn number.
        tool_call_id: The tool call being executed.
    """
    bound = dict(_CONTEXT.get() or _EMPTY)
    if run_id is not None:
        bound["run_id"] = run_id
    if agent is not None:
        bound["agent"] = agent
    if turn is not None:
        bound["turn"] = turn
    if tool_call_id is not None:
        bound["tool_call_id"] = tool_call_id
    return _Binding(bound)


def current_log_context() -> Mapping[str, object]:
    """The run context bound by the innermost `log_context` (empty outside any)."""
    return _CONTEXT.get() or _EMPTY


class RunContextFilter(logging.Filter):
    """Copies the bound run context onto each record (``record.run_id``, ``agent``, ``turn``, ``tool_call_id``).

    Attach it to a handler (``handler.addFilter(RunContextFilter())``) so that every record reaching that
    handler, from any logger, has the fields; a plain ``%(run_id)s`` format then works too. Fields passed
    explicitly with ``extra=`` win. It never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the context fields to `record`; always keep it."""
        bound = _CONTEXT.get() or _EMPTY
        for key in LOG_CONTEXT_FIELDS:
            if not hasattr(record, key):
                setattr(record, key, bound.get(key))
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line.

    Fields: ``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, the run context fields that are
    set (from `RunContextFilter` or `log_context`), any ``extra=`` fields, and ``exc_info`` /
    ``stack_info`` as formatted text. Values JSON cannot encode are written with ``str``.

    Args:
        static_fields: Fields added to every line (``{"service": "agent-runtime"}``).
    """

    def __init__(self, static_fields: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self._static = dict(static_fields or {})

    def format(self, record: logging.LogRecord) -> str:
        """Return `record` as a JSON line (without the newline)."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self._static,
        }
        bound = _CONTEXT.get() or _EMPTY
        for key in LOG_CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is None:
                value = bound.get(key)
            if value is not None:
                line[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in LOG_CONTEXT_FIELDS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)
