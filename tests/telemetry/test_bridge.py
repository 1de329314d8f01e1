"""The bridge turns run logs into GenAI spans and metrics, on local SDK providers with in-memory exporters."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from runtime_core.approvals import ApprovalDecision
from runtime_core.policy import PolicyOutcome
from runtime_core.tools import ToolEffect, ToolErrorCode
from runtime_telemetry import TelemetryBridge
from runtime_telemetry import attributes as attr

from .conftest import Telemetry
from .runlog import RunLog, call, ns

ROOT = Path(__file__).parents[2]


def scripted_run() -> RunLog:
    """Three turns: two tools (one with effects), a failing tool, then a recovery turn that completes."""
    log = RunLog()
    log.started()
    log.turn_start()
    read, write = call("file:read", "c1"), call("file:write", "c2")
    log.model_call(100, 10, read, write, cost=0.01)
    log.tool_ok(read)
    log.tool_ok(write, effect=ToolEffect.UNSAFE)
    log.turn_end(100, 10, 2)
    log.turn_start()
    boom = call("shell:run", "c3")
    log.model_call(150, 12, boom, cost=0.02)
    log.tool_error(boom)
    log.turn_end(150, 12, 1)
    log.turn_start(recovery=True)
    log.recovery()
    done = call("complete_task", "c4")
    log.model_call(170, 8, done, cost=0.03)
    log.tool_ok(done)
    log.completed()
    return log


def test_span_tree_and_attributes_of_a_run_with_tools_a_failure_and_recovery(telemetry: Telemetry) -> None:
    log = scripted_run()
    telemetry.bridge.emit(log.events)
    spans = telemetry.spans()
    assert sorted(span.name for span in spans) == [
        "chat gpt-test",
        "chat gpt-test",
        "chat gpt-test",
        "execute_tool complete_task",
        "execute_tool file:read",
        "execute_tool file:write",
        "execute_tool shell:run",
        "invoke_agent writer",
    ]
    run = telemetry.span("invoke_agent writer")
    assert run.parent is None
    assert run.kind is SpanKind.INTERNAL
    for span in spans:
        if span is not run:
            assert span.parent is not None
            assert span.parent.span_id == run.context.span_id
            assert span.context.trace_id == run.context.trace_id
            assert span.attributes is not None
            assert span.attributes[attr.AGENT_RUNTIME_RUN_ID] == "run_1"
    # The run span: from run.started to run.completed, with aggregates under their own names.
    by_seq = {event.seq: event for event in log.events}
    assert run.start_time == ns(log.events[0].ts)
    assert run.end_time == ns(log.events[-1].ts)
    assert run.status.status_code is StatusCode.OK
    assert run.attributes is not None
    assert run.attributes[attr.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert run.attributes[attr.GEN_AI_AGENT_NAME] == "writer"
    assert run.attributes[attr.AGENT_RUNTIME_USAGE_TOTAL_INPUT_TOKENS] == 420
    assert run.attributes[attr.AGENT_RUNTIME_USAGE_TOTAL_OUTPUT_TOKENS] == 30
    assert run.attributes[attr.AGENT_RUNTIME_USAGE_TOTAL_COST_USD] == pytest.approx(0.06)
    assert run.attributes[attr.AGENT_RUNTIME_USAGE_TOTAL_TURNS] == 2  # the recovery turn never finished
    assert run.attributes[attr.AGENT_RUNTIME_USAGE_TOTAL_TOOL_CALLS] == 4
    assert attr.GEN_AI_USAGE_INPUT_TOKENS not in run.attributes  # never double counted
    # The recovery turn: an event on the run span, and its model call is marked.
    (recovery,) = [event for event in run.events if event.name == "recovery.started"]
    assert recovery.attributes is not None
    assert recovery.attributes[attr.AGENT_RUNTIME_RECOVERY_TRIGGER] == "max_turns"
    assert by_seq[int(str(recovery.attributes[attr.AGENT_RUNTIME_EVENT_SEQ]))].type.value == "recovery.started"
    chats = sorted((s for s in spans if s.name.startswith("chat")), key=lambda s: s.start_time or 0)
    assert [s.attributes.get(attr.AGENT_RUNTIME_RECOVERY) for s in chats if s.attributes] == [None, None, True]
    # A chat span: one model call, from model.requested to model.responded.
    first = chats[0]
    assert first.kind is SpanKind.CLIENT
    assert first.attributes is not None
    requested = by_seq[int(str(first.attributes[attr.AGENT_RUNTIME_EVENT_SEQ]))]
    assert requested.type.value == "model.requested"
    assert first.start_time == ns(requested.ts)
    assert first.end_time == ns(by_seq[requested.seq + 1].ts)
    assert dict(first.attributes) == {
        attr.GEN_AI_OPERATION_NAME: "chat",
        attr.GEN_AI_PROVIDER_NAME: "openai",
        attr.GEN_AI_REQUEST_MODEL: "gpt-test",
        attr.GEN_AI_RESPONSE_MODEL: "gpt-test",
        attr.GEN_AI_RESPONSE_FINISH_REASONS: ("tool_calls",),
        attr.GEN_AI_USAGE_INPUT_TOKENS: 100,
        attr.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
        attr.AGENT_RUNTIME_COST_USD: 0.01,
        attr.AGENT_RUNTIME_RUN_ID: "run_1",
        attr.AGENT_RUNTIME_EVENT_SEQ: requested.seq,
        attr.AGENT_RUNTIME_TURN: 1,
    }
    # Tool spans: success, effects, failure.
    write = telemetry.span("execute_tool file:write")
    assert write.attributes is not None
    assert write.attributes[attr.GEN_AI_TOOL_CALL_ID] == "c2"
    assert write.attributes[attr.AGENT_RUNTIME_TOOL_EFFECT] == "unsafe"
    assert write.attributes[attr.AGENT_RUNTIME_TOOL_OUTCOME] == "success"
    assert write.status.status_code is StatusCode.UNSET
    failed = telemetry.span("execute_tool shell:run")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "it broke"
    assert failed.attributes is not None
    assert failed.attributes[attr.ERROR_TYPE] == "EXECUTION_FAILED"
    assert failed.attributes[attr.AGENT_RUNTIME_TOOL_OUTCOME] == "error"
    called = by_seq[int(str(failed.attributes[attr.AGENT_RUNTIME_EVENT_SEQ]))]
    assert (called.type.value, called.tool_call_id) == ("tool.called", "c3")
    assert failed.end_time == ns(next(e.ts for e in log.events if e.type.value == "tool.failed"))


def test_metrics_match_the_run_log(telemetry: Telemetry) -> None:
    log = scripted_run()
    telemetry.bridge.emit(log.events)
    model = {
        (attr.GEN_AI_OPERATION_NAME, "chat"),
        (attr.GEN_AI_PROVIDER_NAME, "openai"),
        (attr.GEN_AI_REQUEST_MODEL, "gpt-test"),
    }
    tokens = telemetry.points("gen_ai.client.token.usage")
    inputs = tokens[frozenset(model | {(attr.GEN_AI_TOKEN_TYPE, "input")})]
    outputs = tokens[frozenset(model | {(attr.GEN_AI_TOKEN_TYPE, "output")})]
    assert (inputs.sum, inputs.count) == (420, 3)  # type: ignore[attr-defined]  # histogram data points
    assert (outputs.sum, outputs.count) == (30, 3)  # type: ignore[attr-defined]
    duration = telemetry.points("gen_ai.client.operation.duration")[frozenset(model)]
    assert duration.count == 3  # type: ignore[attr-defined]
    assert duration.sum == pytest.approx(0.75)  # type: ignore[attr-defined]  # latency_ms 250 per call
    calls = telemetry.points("agent_runtime.tool.calls")
    assert {
        dict(k)[attr.GEN_AI_TOOL_NAME]: (dict(k)[attr.AGENT_RUNTIME_TOOL_OUTCOME], v) for k, v in calls.items()
    } == {
        "file:read": ("success", 1),
        "file:write": ("success", 1),
        "shell:run": ("error", 1),
        "complete_task": ("success", 1),
    }
    turns = telemetry.points("agent_runtime.turns")
    assert {dict(k)[attr.AGENT_RUNTIME_RECOVERY]: v for k, v in turns.items()} == {False: 2}
    assert telemetry.points("agent_runtime.runs") == {
        frozenset({(attr.GEN_AI_AGENT_NAME, "writer"), (attr.AGENT_RUNTIME_RUN_STATUS, "completed")}): 1
    }
    assert list(telemetry.points("agent_runtime.runs.active").values()) == [0]
    (cost,) = telemetry.points("agent_runtime.cost").values()
    assert cost == pytest.approx(0.06)


def test_governance_compaction_cache_and_errors_are_counted(telemetry: Telemetry) -> None:
    log = RunLog()
    log.started()
    log.turn_start()
    log.compacted(before=1000, after=400)
    denied, approved, refused, cached = (call("shell:run", f"c{i}") for i in range(4))
    log.model_call(10, 1, denied, approved, refused, cached)
    log.policy(denied, PolicyOutcome.DENY)
    log.tool_error(denied, ToolErrorCode.PERMISSION_DENIED)
    log.policy(approved, PolicyOutcome.ALLOW_WITH_CONFIRM)
    log.approval(approved, ApprovalDecision.ALLOW)
    log.tool_ok(approved)
    log.policy(refused, PolicyOutcome.ALLOW_WITH_CONFIRM)
    log.approval(refused, ApprovalDecision.DENY)
    log.tool_error(refused, ToolErrorCode.PERMISSION_DENIED)
    log.tool_ok(cached, cached=True)
    log.turn_end(10, 1, 4)
    log.turn_start()
    log.add(log.events[3].payload)  # model.requested: a call that never gets its reply
    log.error("provider_error")
    log.failed("error:provider_error")
    telemetry.bridge.emit(log.events)

    outcomes = {
        dict(k)[attr.AGENT_RUNTIME_TOOL_OUTCOME]: v for k, v in telemetry.points("agent_runtime.tool.calls").items()
    }
    assert outcomes == {"denied": 2, "success": 2}
    assert list(telemetry.points("agent_runtime.policy.denials").values()) == [1]
    assert list(telemetry.points("agent_runtime.approvals.requested").values()) == [2]
    resolved = {
        dict(k)[attr.AGENT_RUNTIME_APPROVAL_DECISION]: v
        for k, v in telemetry.points("agent_runtime.approvals.resolved").items()
    }
    assert resolved == {"allow": 1, "deny": 1}
    assert list(telemetry.points("agent_runtime.compaction.tokens_saved").values()) == [600]
    assert list(telemetry.points("agent_runtime.compactions").values()) == [1]
    assert telemetry.points("agent_runtime.cache.hits") == {
        frozenset({(attr.AGENT_RUNTIME_CACHE_NAME, "tool_result"), (attr.GEN_AI_TOOL_NAME, "shell:run")}): 1
    }
    assert telemetry.points("agent_runtime.errors") == {
        frozenset({(attr.AGENT_RUNTIME_ERROR_CODE, "provider_error")}): 1
    }
    # The unanswered model call: an ERROR span ended by the error, and a duration with error.type.
    chats = sorted((s for s in telemetry.spans() if s.name == "chat gpt-test"), key=lambda s: s.start_time or 0)
    assert chats[1].status.status_code is StatusCode.ERROR
    assert chats[1].attributes is not None
    assert chats[1].attributes[attr.ERROR_TYPE] == "provider_error"
    failed_calls = [
        point
        for key, point in telemetry.points("gen_ai.client.operation.duration").items()
        if (attr.ERROR_TYPE, "provider_error") in key
    ]
    assert [p.count for p in failed_calls] == [1]  # type: ignore[attr-defined]
    # Policy and approval decisions are events on the tool spans.
    refused_span = next(
        s for s in telemetry.spans() if s.attributes and s.attributes.get(attr.GEN_AI_TOOL_CALL_ID) == "c2"
    )
    assert [e.name for e in refused_span.events] == ["policy.decided", "approval.requested", "approval.resolved"]
    assert refused_span.attributes is not None
    assert refused_span.attributes[attr.AGENT_RUNTIME_TOOL_OUTCOME] == "denied"
    run = telemetry.span("invoke_agent writer")
    assert run.status.status_code is StatusCode.ERROR
    assert run.attributes is not None
    assert run.attributes[attr.ERROR_TYPE] == "error:provider_error"


def test_a_retried_tool_call_is_one_span_with_the_failed_attempt_as_an_event(telemetry: Telemetry) -> None:
    log = RunLog()
    log.started()
    log.turn_start()
    flaky = call("http:get", "c1")
    log.model_call(5, 1, flaky)
    log.tool_error(flaky, ToolErrorCode.TIMEOUT, will_retry=True)
    log.tool_ok(flaky)
    log.completed()
    telemetry.bridge.emit(log.events)
    span = telemetry.span("execute_tool http:get")
    assert span.status.status_code is StatusCode.UNSET
    assert [e.name for e in span.events] == ["tool.attempt_failed"]
    assert list(telemetry.points("agent_runtime.tool.calls").values()) == [1]


def test_boundaries_arrive_one_at_a_time(telemetry: Telemetry) -> None:
    log = scripted_run()
    for event in log.events:
        telemetry.bridge.emit([event])
    assert len(telemetry.spans()) == 8
    assert telemetry.bridge.open_runs == 0


def test_resumed_run_in_a_new_process_gets_its_own_run_span(telemetry: Telemetry) -> None:
    # This bridge never saw run.created nor the first driver's events: the log goes on at seq 40.
    log = RunLog(start_seq=40)
    log.started(resumed=True)
    log.turn_start()
    log.model_call(5, 1)
    log.turn_end(5, 1)
    log.completed()
    telemetry.bridge.emit(log.events)
    run = telemetry.span("invoke_agent writer")
    assert run.attributes is not None
    assert run.attributes[attr.AGENT_RUNTIME_RESUMED] is True
    assert run.attributes[attr.AGENT_RUNTIME_EVENT_SEQ] == 40
    assert run.attributes[attr.AGENT_RUNTIME_USAGE_TOTAL_INPUT_TOKENS] == 5


def test_resume_in_the_same_process_continues_the_run_span(telemetry: Telemetry) -> None:
    log = RunLog()
    log.created()
    log.started()
    log.turn_start()
    log.turn_end()
    log.started(resumed=True)
    log.completed()
    telemetry.bridge.emit(log.events)
    (run,) = telemetry.spans()
    assert run.attributes is not None
    assert run.attributes[attr.GEN_AI_PROVIDER_NAME] == "openai"  # from run.created
    assert run.start_time == ns(log.events[0].ts)
    assert [e.name for e in run.events] == ["run.started", "run.started", "completion.recorded"]
    assert list(telemetry.points("agent_runtime.runs.active").values()) == [0]


def test_events_of_a_run_never_seen_starting_do_not_break_the_bridge(telemetry: Telemetry) -> None:
    late = RunLog("run_late", start_seq=17)  # a bus subscriber that joined in the middle of turn 3
    late.turn = 3
    late.tool_ok(call("file:read", "c9"))
    late.completed()
    ended_only = RunLog("run_gone", start_seq=99)
    ended_only.failed()
    telemetry.bridge.emit([*late.events, *ended_only.events])
    assert [s.name for s in telemetry.spans()] == ["invoke_agent writer"]
    assert telemetry.bridge.open_runs == 0
    assert list(telemetry.points("agent_runtime.runs.active").values()) == [0]
    assert list(telemetry.points("agent_runtime.tool.calls").values()) == [1]


def test_a_delegated_child_run_nests_under_the_tool_span_that_spawned_it(telemetry: Telemetry) -> None:
    parent = RunLog("run_parent", "lead")
    parent.started()
    parent.turn_start()
    delegate = call("agent:delegate", "d1")
    parent.model_call(10, 2, delegate)
    parent.spawned("run_child", delegate)
    telemetry.bridge.emit(parent.events)
    child = RunLog("run_child", "helper")
    child.created(parent_run_id="run_parent")
    child.started()
    child.turn_start()
    child.model_call(7, 3)
    child.completed()
    telemetry.bridge.emit(child.events)
    telemetry.bridge.emit([parent.tool_ok(delegate), parent.completed()])
    tool = telemetry.span("execute_tool agent:delegate")
    child_run = telemetry.span("invoke_agent helper")
    assert child_run.parent is not None
    assert child_run.parent.span_id == tool.context.span_id
    assert child_run.context.trace_id == tool.context.trace_id
    assert child_run.attributes is not None
    assert child_run.attributes[attr.AGENT_RUNTIME_PARENT_RUN_ID] == "run_parent"
    lead = telemetry.span("invoke_agent lead")
    assert lead.attributes is not None
    assert lead.attributes[attr.AGENT_RUNTIME_USAGE_TOTAL_INPUT_TOKENS] == 10  # the child's 7 are the child's


def test_a_non_recording_run_starts_no_child_span_but_metrics_go_on() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    bridge = TelemetryBridge(provider, MeterProvider(metric_readers=[reader]))
    bridge.emit(scripted_run().events)
    assert exporter.get_finished_spans() == ()
    data = reader.get_metrics_data()
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"gen_ai.client.token.usage", "agent_runtime.tool.calls", "agent_runtime.turns"} <= names


def test_default_providers_are_the_global_ones_and_stay_untouched() -> None:
    before = trace.get_tracer_provider()
    bridge = TelemetryBridge()
    log = scripted_run()
    bridge.emit(log.events[:3])
    assert trace.get_tracer_provider() is before
    assert bridge.open_runs == 1
    bridge.emit(log.events[3:])
    assert bridge.open_runs == 0
    # No SDK anywhere: nothing records the run, so the bridge counts nothing of it either.
    assert not bridge.metrics.recording
    assert bridge.metrics.turns.value("writer", False) == 0
    assert bridge.metrics.active_runs.value("writer") == 0


def test_a_run_with_spans_but_no_meter_still_counts() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bridge = TelemetryBridge(provider, NoOpMeterProvider())
    bridge.emit(scripted_run().events)
    assert len(exporter.get_finished_spans()) == 8
    assert not bridge.metrics.recording
    assert bridge.metrics.turns.value("writer", False) == 2
    assert bridge.metrics.tool_calls.value("writer", "shell:run", "error") == 1
    assert bridge.metrics.active_runs.value("writer") == 0


def test_an_sdk_installed_globally_later_records_the_runs_that_start_after_it() -> None:
    script = """
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from runtime_telemetry import TelemetryBridge
from tests.telemetry.runlog import RunLog

def run(run_id):
    log = RunLog(run_id)
    log.started()
    log.turn_start()
    log.model_call(5, 1)
    log.turn_end(5, 1, 0)
    log.completed()
    return log.events

bridge = TelemetryBridge()
before, during = run("before"), run("during")
bridge.emit(before[:2])
bridge.emit(during[:2])  # started before the SDK: stays unrecorded to its end
exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(tracer_provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
bridge.emit(before[2:])
bridge.emit(run("after"))
bridge.emit(during[2:])
spans = {span.attributes["agent_runtime.run_id"] for span in exporter.get_finished_spans()}
assert spans == {"after"}, spans
assert bridge.metrics.recording
assert bridge.metrics.turns.value("writer", False) == 1
assert bridge.open_runs == 0
print("ok")
"""
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "ok"


def test_close_ends_open_spans_and_eviction_bounds_open_runs(telemetry: Telemetry) -> None:
    first = RunLog("run_a")
    first.started()
    first.turn_start()
    first.model_call(1, 1, call("file:read", "c1"))
    telemetry.bridge.emit(first.events)
    assert telemetry.bridge.open_runs == 1
    telemetry.bridge.close()
    assert telemetry.bridge.open_runs == 0
    unfinished = telemetry.span("execute_tool file:read")
    assert unfinished.status.status_code is StatusCode.ERROR
    assert telemetry.span("invoke_agent writer").attributes[attr.AGENT_RUNTIME_RUN_STATUS] == "shutdown"  # type: ignore[index]

    small = TelemetryBridge(telemetry.tracer_provider, metrics=telemetry.bridge.metrics, max_open_runs=2)
    for run_id in ("r1", "r2", "r3"):
        log = RunLog(run_id)
        log.started()
        small.emit(log.events)
    assert small.open_runs == 2
    assert telemetry.bridge.metrics.active_runs.value("writer") == 2
    with pytest.raises(ValueError, match="max_open_runs"):
        TelemetryBridge(max_open_runs=0)


def test_a_failing_handler_is_logged_and_the_other_events_still_count(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtime_core.events import EventType

    def broken(run: object, event: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setitem(telemetry.bridge._handlers, EventType.TURN_STARTED, broken)
    with caplog.at_level(logging.ERROR, logger="runtime_telemetry.bridge"):
        telemetry.bridge.emit(scripted_run().events)
    assert len(caplog.records) == 3
    assert "turn.started" in caplog.records[0].getMessage()
    assert len(telemetry.spans()) == 8


def test_bus_events_carrying_run_log_events_are_recorded(telemetry: Telemetry) -> None:
    class BusEvent:
        def __init__(self, payload: object) -> None:
            self.payload = payload

    for event in scripted_run().events:
        telemetry.bridge.on_bus_event(BusEvent(event))
    telemetry.bridge.on_bus_event(BusEvent({"not": "a run-log event"}))
    telemetry.bridge.on_bus_event(object())
    assert len(telemetry.spans()) == 8
