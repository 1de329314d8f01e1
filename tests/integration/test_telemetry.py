"""Telemetry end to end: a real agent loop with the bridge as its sink; spans and metrics against the run log."""

from __future__ import annotations

import asyncio
from collections import Counter

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from runtime_core.agents import AgentSpec, Limits, RecoveryConfig
from runtime_core.events import ModelRespondedPayload, ToolFailedPayload
from runtime_core.function_tools import tool
from runtime_core.runs import RunStatus
from runtime_core.tools import ToolEffect
from runtime_execution import AgentLoop, LocalToolRegistry, ScriptedProvider, complete_task
from runtime_telemetry import TelemetryBridge
from runtime_telemetry import attributes as attr


@tool(name="demo:echo", effect=ToolEffect.NONE)
async def echo(text: str) -> str:
    """Return the text."""
    return text


@tool(name="demo:write", effect=ToolEffect.UNSAFE)
async def write(text: str) -> str:
    """Pretend to write the text."""
    return text


@tool(name="demo:boom", effect=ToolEffect.NONE)
async def boom(text: str) -> str:
    """Fail."""
    raise RuntimeError(f"cannot {text}")


STEPS = [
    {
        "tool_calls": [
            {"name": "demo:echo", "arguments": {"text": "a"}},
            {"name": "demo:write", "arguments": {"text": "b"}},
        ],
        "usage": {"input_tokens": 100, "output_tokens": 10, "requests": 1},
    },
    {
        "tool_calls": [{"name": "demo:boom", "arguments": {"text": "c"}}],
        "usage": {"input_tokens": 150, "output_tokens": 12},
    },
    {
        "tool_calls": [{"name": "complete_task", "arguments": {"summary": "done"}}],
        "usage": {"input_tokens": 170, "output_tokens": 8},
    },
]


def test_a_scripted_run_produces_the_span_tree_and_metrics_of_its_run_log() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    bridge = TelemetryBridge(tracer_provider, MeterProvider(metric_readers=[reader]))
    loop = AgentLoop(
        providers=[ScriptedProvider({"model": "demo-1", "steps": STEPS})],
        tools=LocalToolRegistry([echo, write, boom, complete_task]),
        sink=bridge,
    )
    # max_turns=4 with one grace turn: turn 3 is the recovery turn, where the model completes.
    agent = AgentSpec(
        name="demo", model="scripted:demo-1", limits=Limits(max_turns=4), recovery=RecoveryConfig(grace_turns=1)
    )
    result = asyncio.run(loop.run(agent, "Do the thing"))
    assert result.status is RunStatus.COMPLETED
    events = asyncio.run(loop.store.read_events(result.run_id))
    by_seq = {event.seq: event for event in events}

    spans = exporter.get_finished_spans()
    (run,) = [s for s in spans if s.name == "invoke_agent demo"]
    assert run.status.status_code is StatusCode.OK
    assert run.attributes is not None
    assert run.attributes[attr.AGENT_RUNTIME_RUN_ID] == result.run_id
    assert run.attributes[attr.AGENT_RUNTIME_USAGE_TOTAL_INPUT_TOKENS] == result.usage.input_tokens == 420
    assert run.attributes[attr.AGENT_RUNTIME_USAGE_TOTAL_OUTPUT_TOKENS] == result.usage.output_tokens == 30
    assert run.attributes[attr.AGENT_RUNTIME_USAGE_TOTAL_TURNS] == result.turns == 3
    assert [e.name for e in run.events if e.name == "recovery.started"] == ["recovery.started"]
    children = [s for s in spans if s is not run]
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in children)

    # One chat span per model.responded event, joined by seq, with that call's usage.
    responded = [e for e in events if isinstance(e.payload, ModelRespondedPayload)]
    chats = sorted((s for s in children if s.name == "chat demo-1"), key=lambda s: s.start_time or 0)
    assert len(chats) == len(responded) == 3
    for span, event in zip(chats, responded, strict=True):
        assert span.attributes is not None
        requested = by_seq[int(str(span.attributes[attr.AGENT_RUNTIME_EVENT_SEQ]))]
        assert requested.type.value == "model.requested"
        assert requested.turn == event.turn == span.attributes[attr.AGENT_RUNTIME_TURN]
        assert span.attributes[attr.GEN_AI_USAGE_INPUT_TOKENS] == event.payload.usage.input_tokens  # type: ignore[union-attr]
        assert span.attributes[attr.GEN_AI_PROVIDER_NAME] == "scripted"
    assert [s.attributes.get(attr.AGENT_RUNTIME_RECOVERY) for s in chats if s.attributes] == [None, None, True]

    # One execute_tool span per tool.called, by call id; the failure is an ERROR span.
    tools = {
        s.attributes[attr.GEN_AI_TOOL_CALL_ID]: s
        for s in children
        if s.attributes and s.name.startswith("execute_tool")
    }
    called = {e.tool_call_id: e for e in events if e.type.value == "tool.called"}
    assert set(tools) == set(called)
    (failure,) = [e for e in events if isinstance(e.payload, ToolFailedPayload)]
    failed_span = tools[failure.tool_call_id]
    assert failed_span.name == "execute_tool demo:boom"
    assert failed_span.status.status_code is StatusCode.ERROR
    assert failed_span.attributes is not None
    assert failed_span.attributes[attr.ERROR_TYPE] == failure.payload.error.code.value  # type: ignore[union-attr]
    write_span = next(s for s in tools.values() if s.name == "execute_tool demo:write")
    assert write_span.attributes is not None
    assert write_span.attributes[attr.AGENT_RUNTIME_TOOL_EFFECT] == "unsafe"

    # Metrics against the log.
    data = reader.get_metrics_data()
    assert data is not None
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    token_sums = {
        p.attributes[attr.GEN_AI_TOKEN_TYPE]: p.sum  # type: ignore[attr-defined,index]
        for p in metrics["gen_ai.client.token.usage"].data.data_points
    }
    assert token_sums == {"input": result.usage.input_tokens, "output": result.usage.output_tokens}
    outcomes: Counter[tuple[str, str]] = Counter()
    for point in metrics["agent_runtime.tool.calls"].data.data_points:
        assert point.attributes is not None
        outcomes[
            (str(point.attributes[attr.GEN_AI_TOOL_NAME]), str(point.attributes[attr.AGENT_RUNTIME_TOOL_OUTCOME]))
        ] += point.value  # type: ignore[union-attr]
    assert outcomes == Counter(
        {
            ("demo:echo", "success"): 1,
            ("demo:write", "success"): 1,
            ("demo:boom", "error"): 1,
            ("complete_task", "success"): 1,
        }
    )
    turns = {
        p.attributes[attr.AGENT_RUNTIME_RECOVERY]: p.value for p in metrics["agent_runtime.turns"].data.data_points
    }  # type: ignore[index,union-attr]
    assert turns == {False: 2, True: 1}
    assert sum(e.type.value == "turn.finished" for e in events) == 3
    (active,) = metrics["agent_runtime.runs.active"].data.data_points
    assert active.value == 0  # type: ignore[union-attr]
    assert bridge.open_runs == 0
