"""Telemetry plane of Agent Runtime.

OpenTelemetry GenAI spans and metrics, the metric catalogue, Prometheus export, structured logging and
the event-to-telemetry bridge. Depends on `runtime_core` and the OpenTelemetry API only; it never
configures global providers.
"""

from importlib.metadata import version as _version

__version__ = _version("runtime-telemetry")

__all__ = [
    # metadata
    "__version__",
]
