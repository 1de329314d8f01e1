"""Errors specific to the control plane.

They extend the hierarchy of `runtime_core.exceptions`::

    AgentRuntimeError
    ├── UserError
    │   ├── ConfigurationError          (runtime_core; an invalid rule, preset name, grant, ...)
    │   │   ├── ConfigFileError         a configuration file is invalid: every problem, with its line
    │   │   │   └── PolicyFileError     ... a policy file
    │   │   └── CatalogError            a model catalog file is invalid (with its line)
    │   └── NotFoundError               (runtime_core)
    │       └── UnknownModelError       a model is not in the catalog (with close matches)
    └── StreamOverflowError             an event-bus stream that refuses to drop events overflowed

Like every runtime error they carry typed attributes and survive pickling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runtime_core.exceptions import AgentRuntimeError, ConfigurationError, NotFoundError

__all__ = [
    "CatalogError",
    "ConfigFileError",
    "ConfigProblem",
    "PolicyFileError",
    "StreamOverflowError",
    "UnknownModelError",
]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a configuration file (a policy file, an agent file, ...).

    Attributes:
        path: The file (or the name given to a parsed string).
        line: 1-based line of the offending key, table or value; ``None`` when it cannot be located.
        location: The setting, as ``rules[2].action`` (empty for a syntax error).
        message: What is wrong.
    """

    path: str
    line: int | None
    location: str
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.location}: {self.message}" if self.location else f"{where}: {self.message}"


class ConfigFileError(ConfigurationError):
    """A configuration file is invalid.

    The message has one line per problem, compiler style::

        policy.toml:12: rules[2].action: must be one of allow, deny, ask

    Attributes:
        path: The file (or the name given to a parsed string).
        problems: Every problem found, by line.
    """

    def __init__(self, path: str, problems: Sequence[ConfigProblem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems), setting=problems[0].location or None)
        self.path = path
        self.problems = tuple(problems)


class PolicyFileError(ConfigFileError):
    """A policy file is invalid (see `ConfigFileError` for the message and attributes)."""


class CatalogError(ConfigurationError):
    """A catalog file or a set of catalog entries is invalid.

    The message starts with ``path:line:`` when the problem could be located in a file.

    Attributes:
        path: The offending file, when the entries came from one.
        line: 1-based line number in `path`, when known.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        super().__init__(message, setting="models")
        self.path = path
        self.line = line


class UnknownModelError(NotFoundError):
    """A model is not in the catalog (or a bare model name is ambiguous).

    Attributes:
        model: The name that was looked up.
        suggestions: Close matches in the catalog, best first (``"provider:model"`` names).
    """

    def __init__(self, model: str, *, suggestions: Sequence[str] = (), ambiguous: bool = False) -> None:
        super().__init__("model", model)
        self.model = model
        self.suggestions = tuple(suggestions)
        if ambiguous:
            self.message = f"model {model!r} is offered by several providers: use one of {', '.join(self.suggestions)}"
        elif self.suggestions:
            self.message = f"{self.message} in the model catalog; did you mean {', '.join(self.suggestions)}?"
        else:
            self.message = f"{self.message} in the model catalog; add it with a catalog file (docs/control.md)"
        self.args = (self.message,)


class StreamOverflowError(AgentRuntimeError):
    """An event stream with ``OverflowPolicy.ERROR`` overflowed; events after the queued ones are lost.

    Attributes:
        pattern: The stream's pattern.
        maxsize: Its queue size.
    """

    def __init__(self, *, pattern: str, maxsize: int) -> None:
        super().__init__(f"event stream {pattern!r} overflowed its queue of {maxsize} events; events were lost")
        self.pattern = pattern
        self.maxsize = maxsize
