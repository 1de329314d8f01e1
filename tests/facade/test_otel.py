"""configure_otel: a scripted run's spans and metrics reach a real OTLP/HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from runtime_facade import create_runtime
from runtime_facade.otel import configure_otel
from tests.facade.test_runtime import SCENARIO


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, bytes]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    Receiver.received = []
    yield Receiver.received
    server.shutdown()
    server.server_close()


def test_spans_and_metrics_are_exported_over_otlp(tmp_path: Path, collector: list[tuple[str, bytes]]) -> None:
    (tmp_path / "scenario.toml").write_text(SCENARIO)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "agent.toml").write_text(
        'name = "otel-agent"\npolicy = "balanced"\n[model]\nname = "scripted:m"\nscenario = "scenario.toml"\n'
    )
    providers = configure_otel("agent-runtime-test", set_global=False)
    runtime = create_runtime(
        workspace=tmp_path, tracer_provider=providers.tracer_provider, meter_provider=providers.meter_provider
    )
    try:
        assert runtime.run_sync(tmp_path / "agent.toml", "go").ok
    finally:
        runtime.close()
        providers.shutdown()  # flushes both exporters
    traces = b"".join(body for path, body in collector if path == "/v1/traces")
    metrics = b"".join(body for path, body in collector if path == "/v1/metrics")
    assert b"invoke_agent otel-agent" in traces
    assert b"execute_tool file:read" in traces
    assert b"agent-runtime-test" in traces  # the service.name resource
    assert b"gen_ai.client.token.usage" in metrics


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("OTEL_SERVICE_NAME", "from-service-name", "from-service-name"),
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes,team=x", "from-attributes"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team=x", "agent-runtime-test"),
    ],
)
def test_the_environment_names_the_service(
    collector: list[tuple[str, bytes]], monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv(variable, value)
    providers = configure_otel("agent-runtime-test", set_global=False)
    try:
        assert providers.tracer_provider.resource.attributes["service.name"] == expected
    finally:
        providers.shutdown()


def test_the_cli_exports_a_run_with_otel(tmp_path: Path, collector: list[tuple[str, bytes]]) -> None:
    (tmp_path / "scenario.toml").write_text(SCENARIO)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "agent.toml").write_text(
        'name = "cli-agent"\npolicy = "balanced"\nworkspace = "."\n'
        '[model]\nname = "scripted:m"\nscenario = "scenario.toml"\n'
    )
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AGENT_RUNTIME_")}
    completed = subprocess.run(
        [sys.executable, "-m", "runtime_facade.cli", "--otel", "run", "agent.toml", "--task", "go"],
        cwd=tmp_path,
        env={**environment, "OTEL_EXPORTER_OTLP_ENDPOINT": os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    traces = b"".join(body for path, body in collector if path == "/v1/traces")
    assert b"invoke_agent cli-agent" in traces
    assert b"chat m" in traces or b"chat scripted:m" in traces
