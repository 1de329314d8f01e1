"""The metric catalogue, queue depth gauges, and structured logging."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from runtime_telemetry import (
    LOG_CONTEXT_FIELDS,
    METRIC_CATALOGUE,
    PLANE_LOGGERS,
    InstrumentKind,
    JsonFormatter,
    RunContextFilter,
    RuntimeMetrics,
    Tally,
    current_log_context,
    log_context,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def _collect(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, object], object]]]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: [(dict(p.attributes or {}), getattr(p, "value", None)) for p in metric.data.data_points]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }


def test_every_catalogue_metric_is_created_with_its_unit() -> None:
    reader = InMemoryMetricReader()
    metrics = RuntimeMetrics(MeterProvider(metric_readers=[reader]))
    metrics.token_usage.record(3, {"gen_ai.token.type": "input"})
    metrics.operation_duration.record(0.5, {})
    tallies = {value.definition.name: value for value in vars(metrics).values() if isinstance(value, Tally)}
    counters = [d for d in METRIC_CATALOGUE if d.kind in (InstrumentKind.COUNTER, InstrumentKind.UP_DOWN_COUNTER)]
    assert sorted(tallies) == sorted(d.name for d in counters)
    for definition in counters:
        tallies[definition.name].add(1, *(f"v{i}" for i in range(len(definition.attributes))))
    stop = metrics.watch_queue("runs", lambda: 4)
    data = reader.get_metrics_data()
    assert data is not None
    units = {m.name: m.unit for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert units == {d.name: d.unit for d in METRIC_CATALOGUE}
    stop()


def test_tallies_report_cumulative_totals_per_attribute_set() -> None:
    reader = InMemoryMetricReader()
    metrics = RuntimeMetrics(MeterProvider(metric_readers=[reader]))
    metrics.tool_calls.add(1, "a", "t", "success")
    metrics.tool_calls.add(2, "a", "t", "success")
    metrics.tool_calls.add(1, "a", "t", "error")
    metrics.active_runs.add(1, "a")
    metrics.active_runs.add(-1, "a")
    first = _collect(reader)
    assert sorted(first["agent_runtime.tool.calls"], key=str) == sorted(
        [
            ({"gen_ai.agent.name": "a", "gen_ai.tool.name": "t", "agent_runtime.tool.outcome": "success"}, 3),
            ({"gen_ai.agent.name": "a", "gen_ai.tool.name": "t", "agent_runtime.tool.outcome": "error"}, 1),
        ],
        key=str,
    )
    assert first["agent_runtime.runs.active"] == [({"gen_ai.agent.name": "a"}, 0)]
    metrics.tool_calls.add(1, "a", "t", "error")
    again = dict((p[0]["agent_runtime.tool.outcome"], p[1]) for p in _collect(reader)["agent_runtime.tool.calls"])
    assert again == {"success": 3, "error": 2}
    assert metrics.tool_calls.value("a", "t", "error") == 2
    assert metrics.tool_calls.value("a", "t", "denied") == 0


def test_only_an_sdk_meter_provider_records() -> None:
    assert RuntimeMetrics(MeterProvider()).recording
    assert not RuntimeMetrics(NoOpMeterProvider()).recording
    assert not RuntimeMetrics().recording  # the global proxy, and no test installs a global SDK


def test_queue_depth_is_read_at_collection_and_can_be_unwatched() -> None:
    reader = InMemoryMetricReader()
    metrics = RuntimeMetrics(MeterProvider(metric_readers=[reader]))
    queue: list[int] = [1, 2, 3]
    unwatch = metrics.watch_queue("tasks", lambda: len(queue))
    metrics.watch_queue("other", lambda: 7)
    assert sorted(_collect(reader)["agent_runtime.queue.depth"], key=str) == [
        ({"agent_runtime.queue.name": "other"}, 7),
        ({"agent_runtime.queue.name": "tasks"}, 3),
    ]
    queue.clear()
    unwatch()
    assert _collect(reader)["agent_runtime.queue.depth"] == [({"agent_runtime.queue.name": "other"}, 7)]


def test_the_documentation_lists_every_metric() -> None:
    text = DOCS.read_text()
    missing = [d.name for d in METRIC_CATALOGUE if f"`{d.name}`" not in text]
    assert missing == []


def _record(logger: str, message: str, **extra: object) -> logging.LogRecord:
    return logging.getLogger(logger).makeRecord(logger, logging.INFO, __file__, 1, message, (), None, extra=extra)


def test_log_context_nests_and_follows_tasks() -> None:
    assert current_log_context() == {}
    with log_context(run_id="run_1", agent="writer"):
        with log_context(turn=2):
            assert current_log_context() == {"run_id": "run_1", "agent": "writer", "turn": 2}

            async def inside() -> object:
                return current_log_context()

            assert asyncio.run(inside()) == {"run_id": "run_1", "agent": "writer", "turn": 2}
        assert current_log_context() == {"run_id": "run_1", "agent": "writer"}
    assert current_log_context() == {}


def test_the_filter_adds_context_fields_and_never_drops() -> None:
    record = _record("runtime_execution.loop", "hello")
    with log_context(run_id="run_9", turn=4):
        assert RunContextFilter().filter(record) is True
    assert (record.run_id, record.turn, record.agent, record.tool_call_id) == ("run_9", 4, None, None)  # type: ignore[attr-defined]
    explicit = _record("runtime_execution.loop", "hi", run_id="given")
    with log_context(run_id="run_9"):
        RunContextFilter().filter(explicit)
    assert explicit.run_id == "given"  # type: ignore[attr-defined]


def test_json_formatter_writes_one_object_per_line_with_context_and_extras() -> None:
    formatter = JsonFormatter({"service": "agent-runtime"})
    with log_context(run_id="run_1", turn=3):
        line = formatter.format(_record("runtime_control.bus", "handler %s failed", tool="file:read"))
    data = json.loads(line)
    assert data["logger"] == "runtime_control.bus"
    assert data["level"] == "INFO"
    assert data["message"] == "handler %s failed"
    assert (data["run_id"], data["turn"], data["service"], data["tool"]) == ("run_1", 3, "agent-runtime", "file:read")
    assert "agent" not in data
    assert data["ts"].endswith("+00:00")
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "oops", (), sys.exc_info())
    failed = json.loads(formatter.format(record))
    assert "ValueError: bad" in failed["exc_info"]
    assert "\n" not in formatter.format(record)


def test_logger_names_are_the_plane_packages() -> None:
    assert PLANE_LOGGERS[0] == "runtime_core"
    assert "runtime_execution" in PLANE_LOGGERS
    assert LOG_CONTEXT_FIELDS == ("run_id", "agent", "turn", "tool_call_id")
