"""Errors specific to the control plane.

They extend the hierarchy of `runtime_core.exceptions`::

    AgentRuntimeError
    └── UserError
        └── ConfigurationError          (runtime_core; an invalid rule, preset name, grant, ...)
            └── PolicyFileError         a policy file is invalid: every problem, with its line

Like every runtime error they carry typed attributes and survive pickling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runtime_core.exceptions import ConfigurationError

__all__ = ["PolicyFileError", "PolicyProblem"]


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One problem in a policy file.

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


class PolicyFileError(ConfigurationError):
    """A policy file is invalid.

    The message has one line per problem, compiler style::

        policy.toml:12: rules[2].action: must be one of allow, deny, ask

    Attributes:
        path: The file (or the name given to a parsed string).
        problems: Every problem found, by line.
    """

    def __init__(self, path: str, problems: Sequence[PolicyProblem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems), setting=problems[0].location or None)
        self.path = path
        self.problems = tuple(problems)
