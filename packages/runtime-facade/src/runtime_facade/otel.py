"""OpenTelemetry SDK set-up for applications: traces and metrics sent to a collector over OTLP/HTTP.

Libraries never configure OpenTelemetry; applications do. The CLI's ``--otel`` option (or
``[telemetry] otel = true``) calls `configure_otel`, and the standard ``OTEL_EXPORTER_OTLP_*`` variables
say where to send (``OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318`` by default) and with which
headers. Needs the ``otel`` extra: ``pip install 'runtime-facade[otel]'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["OtelProviders", "configure_otel"]


@dataclass(frozen=True, slots=True)
class OtelProviders:
    """The SDK providers `configure_otel` made; pass them to `create_runtime` and shut them down at exit.

    Attributes:
        tracer_provider: Exports spans in batches.
        meter_provider: Exports metrics periodically.
    """

    tracer_provider: Any
    meter_provider: Any

    def shutdown(self) -> None:
        """Flush what is buffered and stop the exporters."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def configure_otel(service_name: str = "agent-runtime", *, set_global: bool = True) -> OtelProviders:
    """Build SDK tracer and meter providers that export over OTLP/HTTP.

    Args:
        service_name: The ``service.name`` resource attribute, unless the environment sets one
            (``OTEL_SERVICE_NAME``, or ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``).
        set_global: Also install them as the process's global providers (what an application wants, so
            that other instrumented libraries report to the same collector).

    Raises:
        ImportError: The ``otel`` extra is not installed.
    """
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as error:
        raise ImportError(
            "--otel needs the OpenTelemetry SDK and OTLP exporter: pip install 'runtime-facade[otel]'"
        ) from error
    # The environment names the service when it does (OTEL_SERVICE_NAME, or service.name in
    # OTEL_RESOURCE_ATTRIBUTES); `service_name` only replaces the SDK's "unknown_service".
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": service_name}))
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    return OtelProviders(tracer_provider, meter_provider)
