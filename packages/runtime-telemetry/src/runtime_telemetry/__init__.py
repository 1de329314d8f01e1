"""Telemetry plane of Agent Runtime.

OpenTelemetry GenAI spans and metrics, the metric catalogue, structured logging and the event-to-telemetry
bridge. Depends on `runtime_core` and the OpenTelemetry API only; it never configures global providers:
tracer and meter providers are arguments, and without them the global ones (no-ops unless an application
installed an SDK) are used. Attribute names live in `runtime_telemetry.attributes`.
"""

from importlib.metadata import version as _version

from runtime_telemetry._scope import SCOPE_NAME as INSTRUMENTATION_SCOPE
from runtime_telemetry.bridge import TelemetryBridge
from runtime_telemetry.logs import (
    LOG_CONTEXT_FIELDS,
    PLANE_LOGGERS,
    JsonFormatter,
    RunContextFilter,
    current_log_context,
    log_context,
)
from runtime_telemetry.metrics import METRIC_CATALOGUE, InstrumentKind, MetricDefinition, RuntimeMetrics, Tally

__version__ = _version("runtime-telemetry")

__all__ = [
    # metadata
    "__version__",
    "INSTRUMENTATION_SCOPE",
    # spans and metrics from the run log
    "TelemetryBridge",
    # metrics
    "METRIC_CATALOGUE",
    "InstrumentKind",
    "MetricDefinition",
    "RuntimeMetrics",
    "Tally",
    # structured logging
    "LOG_CONTEXT_FIELDS",
    "PLANE_LOGGERS",
    "JsonFormatter",
    "RunContextFilter",
    "current_log_context",
    "log_context",
]
