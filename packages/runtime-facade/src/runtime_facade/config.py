"""Project configuration: ``agent-runtime.toml`` and ``AGENT_RUNTIME_*`` environment overrides.

```toml
[database]
url = "postgresql+psycopg://agents@127.0.0.1/agents"   # default: SQLite at .agent-runtime/runtime.db
synchronous = "FULL"                                   # SQLite: OFF, NORMAL, FULL, EXTRA

[runtime]
workspace = "."                 # default root of file and shell tools
policy = "balanced"             # default policy of agents that name none (preset or policy file)
catalog = "models.toml"         # extra model catalog entries (prices, context windows)
approval_timeout_s = 300        # how long a run waiting in process (the server) waits for an answer

[server]
host = "127.0.0.1"
port = 8321
token_file = "~/.config/agent-runtime/token"   # bearer token of the HTTP API

[telemetry]
otel = false                    # send traces and metrics over OTLP (the `otel` extra)
log_level = "warning"
log_json = false
```

The file is looked for in the current directory and its parents; relative paths in it are relative to
it. Every setting can be overridden by an environment variable named ``AGENT_RUNTIME_<TABLE>_<KEY>``:
``AGENT_RUNTIME_DATABASE_URL``, ``AGENT_RUNTIME_SERVER_PORT``, ``AGENT_RUNTIME_SERVER_TOKEN`` (the token
itself, never written to a file by us) and so on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, SecretStr, ValidationError

from runtime_control import ConfigProblem, locate, read_document
from runtime_control.config_files import Location, validation_problems
from runtime_facade.exceptions import EnvironmentOverrideError, ProjectConfigError

__all__ = [
    "CONFIG_FILE_NAME",
    "ENV_PREFIX",
    "DatabaseSettings",
    "ProjectConfig",
    "RuntimeSettings",
    "ServerSettings",
    "TelemetrySettings",
    "find_config",
    "load_config",
]

CONFIG_FILE_NAME = "agent-runtime.toml"
"""The project configuration file, looked for in the current directory and its parents."""

ENV_PREFIX = "AGENT_RUNTIME_"
"""Prefix of the environment variables that override settings (``AGENT_RUNTIME_DATABASE_URL``)."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatabaseSettings(_Section):
    """The ``[database]`` table.

    Attributes:
        url: A SQLAlchemy URL (``sqlite:///path``, ``postgresql+psycopg://...``); ``None``: SQLite at
            ``.agent-runtime/runtime.db`` in the project directory, upgraded automatically.
        synchronous: SQLite's ``synchronous`` level (``FULL`` is the durable default).
    """

    url: str | None = None
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"


class RuntimeSettings(_Section):
    """The ``[runtime]`` table.

    Attributes:
        workspace: Default root directory of file and shell tools.
        policy: Policy of agents whose file names none: a preset name or a policy file.
        catalog: A model catalog file whose entries add to (or replace) the shipped ones.
        approval_timeout_s: How long a run waiting in process for an approval waits before it is denied.
        worker: Name of this process as the owner of run leases (default: ``<host>:<pid>``).
    """

    workspace: str | None = None
    policy: str | None = None
    catalog: str | None = None
    approval_timeout_s: PositiveFloat | None = 300.0
    worker: str | None = None


class ServerSettings(_Section):
    """The ``[server]`` table (the HTTP API).

    Attributes:
        host: Interface to bind; without a token only a loopback address is allowed.
        port: TCP port.
        token: The bearer token (from ``AGENT_RUNTIME_SERVER_TOKEN``; do not write it in the file).
        token_file: A file holding the bearer token.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8321, ge=0, le=65535)
    token: SecretStr | None = None
    token_file: str | None = None


class TelemetrySettings(_Section):
    """The ``[telemetry]`` table.

    Attributes:
        otel: Configure the OpenTelemetry SDK with an OTLP exporter (``OTEL_EXPORTER_OTLP_*`` variables
            say where to); needs the ``otel`` extra.
        log_level: Level of the runtime's log records shown by the CLI.
        log_json: Write log records as JSON lines on stderr.
    """

    otel: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "warning"
    log_json: bool = False


class ProjectConfig(_Section):
    """Everything ``agent-runtime.toml`` may hold, after environment overrides.

    Attributes:
        database: Where runs are stored.
        runtime: Defaults of the runtime.
        server: The HTTP API.
        telemetry: Traces, metrics and logs.
        root: The project directory: where the file is (or the current directory without one).
        path: The file read, if any.
    """

    database: DatabaseSettings = DatabaseSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    server: ServerSettings = ServerSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    root: Path = Field(default_factory=Path.cwd, exclude=True)
    path: Path | None = Field(default=None, exclude=True)

    def resolve(self, value: str | None) -> Path | None:
        """A path setting, relative to the project directory (``~`` expanded)."""
        return None if value is None else (self.root / Path(value).expanduser()).resolve()


_SECTIONS: dict[str, type[_Section]] = {
    "database": DatabaseSettings,
    "runtime": RuntimeSettings,
    "server": ServerSettings,
    "telemetry": TelemetrySettings,
}


def find_config(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest ``agent-runtime.toml`` in `start` (default: the current directory) or its parents."""
    directory = Path(start or Path.cwd()).resolve()
    for candidate in (directory, *directory.parents):
        file = candidate / CONFIG_FILE_NAME
        if file.is_file():
            return file
    return None


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    search: bool = True,
) -> ProjectConfig:
    """Read the project configuration and apply the environment's overrides.

    Args:
        path: The file; by default the nearest ``agent-runtime.toml`` (when `search` is true).
        environ: The environment (default: ``os.environ``).
        search: Look for the file in the current directory and its parents when `path` is not given.

    Raises:
        ProjectConfigError: The file cannot be read or is invalid (one line per problem).
        EnvironmentOverrideError: An ``AGENT_RUNTIME_*`` variable holds an invalid value.
    """
    file = Path(path) if path is not None else find_config() if search else None
    data: dict[str, object] = {}
    positions: dict[Location, int] = {}
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as error:
            raise ProjectConfigError(
                str(file), [ConfigProblem(str(file), None, "", f"cannot read it: {error.strerror}")]
            ) from None
        document, positions = read_document(text, format="toml", path=str(file), error=ProjectConfigError)
        assert isinstance(document, dict)  # a TOML document is always a table
        data = document
        try:
            ProjectConfig.model_validate(data)
        except ValidationError as error:
            raise locate(str(file), positions, validation_problems(error), ProjectConfigError) from None
    overridden = _with_overrides(data, os.environ if environ is None else environ)
    root = file.resolve().parent if file is not None else Path.cwd()
    try:
        return ProjectConfig.model_validate({**overridden, "root": root, "path": file})
    except ValidationError as error:
        variable, message = _override_problem(error)
        raise EnvironmentOverrideError(f"{variable}: {message}", variable=variable) from None


def _with_overrides(data: Mapping[str, object], environ: Mapping[str, str]) -> dict[str, object]:
    """`data` with every ``AGENT_RUNTIME_<TABLE>_<KEY>`` variable set in it (unknown names are ignored)."""
    result: dict[str, object] = {
        name: dict(value) if isinstance(value, dict) else value for name, value in data.items()
    }
    for section, model in _SECTIONS.items():
        for key in model.model_fields:
            variable = f"{ENV_PREFIX}{section}_{key}".upper()
            if variable in environ:
                table = result.setdefault(section, {})
                assert isinstance(table, dict)  # validated above
                table[key] = environ[variable]
    return result


def _override_problem(error: ValidationError) -> tuple[str, str]:
    location, message = validation_problems(error)[0]
    variable = f"{ENV_PREFIX}{'_'.join(str(part) for part in location[:2])}".upper()
    return variable, message
