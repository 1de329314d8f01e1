"""``GET /metrics``: the runtime's OpenTelemetry metrics in the Prometheus text exposition format."""

from __future__ import annotations

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from runtime_telemetry import TelemetryBridge

__all__ = ["PrometheusExport"]


class PrometheusExport:
    """A meter provider read by Prometheus, and the `TelemetryBridge` that feeds it from the run log.

    Give `bridge` to `create_runtime(telemetry=...)` (instead of the default bridge) and the export to
    `create_app(metrics=...)`. The registry is the export's own, not ``prometheus_client``'s global one,
    so that several servers (tests) live in one process.

    Attributes:
        registry: The Prometheus registry the reader exports to.
        meter_provider: The SDK meter provider the bridge records with.
        bridge: The event sink that turns committed events into metrics.
    """

    content_type = CONTENT_TYPE_LATEST
    """The media type of `render`'s output."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=self.registry)])
        self.bridge = TelemetryBridge(meter_provider=self.meter_provider)

    def render(self) -> bytes:
        """The current value of every metric, in the Prometheus text format."""
        return generate_latest(self.registry)

    def shutdown(self) -> None:
        """Stop the meter provider (its reader leaves the registry)."""
        self.meter_provider.shutdown()
