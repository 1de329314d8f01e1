"""Facade of Agent Runtime.

The composition root `create_runtime()`, agent files, project configuration, the `agent-runtime` CLI,
the HTTP API and the demo. The only place that instantiates and wires concrete implementations.
"""

from importlib.metadata import version as _version

from runtime_facade.agent_files import (
    AgentDefinition,
    AgentFile,
    ModelSettings,
    PolicySource,
    load_agent,
    parse_agent,
    resolve_policy,
)
from runtime_facade.config import (
    CONFIG_FILE_NAME,
    ENV_PREFIX,
    DatabaseSettings,
    ProjectConfig,
    RuntimeSettings,
    ServerSettings,
    TelemetrySettings,
    find_config,
    load_config,
)
from runtime_facade.exceptions import AgentFileError, EnvironmentOverrideError, ProjectConfigError
from runtime_facade.otel import OtelProviders, configure_otel
from runtime_facade.runtime import LAUNCH_KEY, AgentLike, Launch, Runtime, create_runtime

__version__ = _version("runtime-facade")

__all__ = [
    # metadata
    "__version__",
    # composition root
    "LAUNCH_KEY",
    "AgentLike",
    "Launch",
    "Runtime",
    "create_runtime",
    # agent files
    "AgentDefinition",
    "AgentFile",
    "ModelSettings",
    "PolicySource",
    "load_agent",
    "parse_agent",
    "resolve_policy",
    # project configuration
    "CONFIG_FILE_NAME",
    "ENV_PREFIX",
    "DatabaseSettings",
    "ProjectConfig",
    "RuntimeSettings",
    "ServerSettings",
    "TelemetrySettings",
    "find_config",
    "load_config",
    # telemetry set-up
    "OtelProviders",
    "configure_otel",
    # errors
    "AgentFileError",
    "EnvironmentOverrideError",
    "ProjectConfigError",
]
