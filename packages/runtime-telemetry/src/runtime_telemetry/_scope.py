"""The instrumentation scope every tracer and meter of the package uses."""

from __future__ import annotations

from importlib.metadata import version
from typing import Final

SCOPE_NAME: Final = "agent_runtime"
SCOPE_VERSION: Final = version("runtime-telemetry")
