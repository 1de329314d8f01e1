"""Errors specific to the facade.

They extend the hierarchy of `runtime_core.exceptions` and `runtime_control.exceptions`::

    AgentRuntimeError
    └── UserError
        └── ConfigurationError              (runtime_core)
            ├── ConfigFileError             (runtime_control; every problem of a file, with its line)
            │   ├── AgentFileError          an agent file is invalid
            │   └── ProjectConfigError      agent-runtime.toml is invalid
            └── EnvironmentOverrideError    an AGENT_RUNTIME_* variable is invalid

The CLI turns every `UserError` into one line on stderr and exit status 2.
"""

from __future__ import annotations

from runtime_control.exceptions import ConfigFileError
from runtime_core.exceptions import ConfigurationError

__all__ = ["AgentFileError", "EnvironmentOverrideError", "ProjectConfigError"]


class AgentFileError(ConfigFileError):
    """An agent file is invalid: ``agent.toml:7: limits.max_turns: must be at least 1``, one line per problem."""


class ProjectConfigError(ConfigFileError):
    """The project configuration (``agent-runtime.toml``) is invalid, one line per problem."""


class EnvironmentOverrideError(ConfigurationError):
    """An ``AGENT_RUNTIME_*`` environment variable names no setting or holds an invalid value.

    Attributes:
        variable: The environment variable.
    """

    def __init__(self, message: str, *, variable: str) -> None:
        super().__init__(message, setting=variable)
        self.variable = variable
