"""Agent-loop overhead without persistence: ours vs Pydantic AI vs the OpenAI Agents SDK.

Run (from the workspace root)::

    make bench-env   # once, and after changing the sources: .venv-bench holds the release build
    .venv-bench/bin/python bench/loop_inmemory.py [--turns 50] [--runs 5] [--json] [--check]

The JSON field ``ours_compiled_modules`` (and the table's second line) says which build of ours ran.

Each framework runs the same agent: a model that answers instantly from prebuilt responses asks for one
call of a trivial async tool ``echo(text) -> text`` on turns 1..N-1 and finishes on turn N (ours: a
``complete_task`` call with a summary; the peers: a final text output). Nothing is persisted: ours runs
on its default in-memory store, the peers keep history in memory anyway. So the time measured is the
framework's own per-turn work: building the request, validating the reply, dispatching and validating
the tool call, recording the result, and deciding to go on.

Method: every framework gets one untimed warm-up run, then ``--runs`` timed runs, interleaved per
repetition (ours, pydantic-ai, openai-agents, ours, ...) so that drifts of the machine hit all three
alike. Agents and models are built before the clock starts; only the ``run`` call is timed. The result
is the median over the runs of (run time / turns), in microseconds per turn. The garbage collector stays
on, but after the warm-ups the heap is moved out of its reach with ``gc.freeze()``: the three frameworks
share one process, and otherwise every full collection in a run would also scan the other frameworks'
modules, charging most to whoever allocates most (``--no-gc-freeze`` measures without it).

Flatness: the model records a timestamp per call, so the gaps between calls are per-turn times; the
flatness of a run is mean(last 10 gaps) / mean(first 10 gaps) (1.0 = flat; growth means per-turn cost
grows with the history, e.g. by re-validating or copying the whole conversation every turn). The median
over the runs is reported per framework.

Target (ours): <= 100 µs per turn and ``ratio_vs_pydantic_ai`` (pydantic-ai / ours) >= 30. The exit
status is 0 whatever the numbers, unless ``--check`` is given: then 1 when the target is missed.

Telemetry overhead: ours runs twice more per repetition, interleaved with the others, with a
``runtime_telemetry.TelemetryBridge`` as the loop's sink: once on the global OpenTelemetry providers,
which are the API's no-ops since nothing configures an SDK (``ours_telemetry_noop``), and once on a local
SDK ``TracerProvider`` with a ``SimpleSpanProcessor`` into an ``InMemorySpanExporter`` plus a local
``MeterProvider`` with an ``InMemoryMetricReader`` (``ours_telemetry_sdk``). The first run of ours after
a peer's is several µs per turn slower than the next (caches), and ours itself always follows the SDK
variant of the previous repetition: so an untimed run of ours goes between the peers and the telemetry
variants, and each variant is compared with ours in the same conditions. Two more series, run after
the peers, time the SDK alone, no loop and no bridge, doing per turn what a turn of this benchmark
needs of it: the minimum (two spans without attributes and the three histogram records, ``sdk_floor``)
and exactly the calls the bridge makes, attributes prebuilt (``sdk_bridge_calls``). Targets: the no-op
bridge adds <= 5 % to ours, the SDK bridge <= 50 µs per turn. They are reported, not part of ``--check``.

No network: tracing of the Agents SDK is disabled, and every socket connection or name lookup outside
a Unix socket raises (and is counted) for the whole process, so a framework that tried to phone home
would fail the run instead of skewing it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from _common import NETWORK_ATTEMPTS, block_network, compiled_modules, describe_build, ratio, version

TARGET_US_PER_TURN = 100.0
TARGET_RATIO_VS_PYDANTIC_AI = 30.0
# Informative, not part of the target: above this, per-turn cost visibly grows with the history.
FLATNESS_MAX = 1.5
FRAMEWORKS = ("ours", "pydantic_ai", "openai_agents")
# Ours again with the telemetry bridge as its sink: on the API's no-op providers, and on a local SDK.
TELEMETRY_VARIANTS = ("ours_telemetry_noop", "ours_telemetry_sdk")
# The SDK alone, per turn: the least a turn needs of it, and the very calls the bridge makes.
SDK_FLOORS = ("sdk_floor", "sdk_bridge_calls")
TARGET_TELEMETRY_NOOP_PCT = 5.0
TARGET_TELEMETRY_SDK_US = 50.0
DIST = {"ours": "runtime-execution", "pydantic_ai": "pydantic-ai-slim", "openai_agents": "openai-agents"}

# --- measurement ------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One timed run: its wall time and the model-call timestamps recorded during it."""

    elapsed_ns: int
    calls_ns: list[int]


@dataclass
class Series:
    """All timed runs of one framework."""

    samples: list[Sample] = field(default_factory=list)

    def us_per_turn(self, turns: int) -> float:
        return statistics.median(s.elapsed_ns / turns / 1000.0 for s in self.samples)

    def flatness(self) -> float | None:
        ratios = [value for s in self.samples if (value := _flatness(s.calls_ns)) is not None]
        return statistics.median(ratios) if ratios else None

    def turn_us(self) -> tuple[float, float] | None:
        """Median of the mean first-10 and last-10 per-turn times, in µs."""
        pairs = [pair for s in self.samples if (pair := _edges(s.calls_ns)) is not None]
        if not pairs:
            return None
        return statistics.median(p[0] for p in pairs) / 1000.0, statistics.median(p[1] for p in pairs) / 1000.0


def _edges(calls_ns: list[int]) -> tuple[float, float] | None:
    gaps = [b - a for a, b in itertools.pairwise(calls_ns)]
    if len(gaps) < 20:
        return None
    return statistics.fmean(gaps[:10]), statistics.fmean(gaps[-10:])


def _flatness(calls_ns: list[int]) -> float | None:
    edges = _edges(calls_ns)
    return None if edges is None else edges[1] / edges[0]


# A runner builds everything a run needs and returns (calls_ns, the timed coroutine's factory).
Prepared = tuple[list[int], Callable[[], Awaitable[None]]]


async def _timed(prepare: Callable[[int], Prepared], turns: int) -> Sample:
    calls_ns, run = prepare(turns)
    gc.collect()
    start = time.perf_counter_ns()
    await run()
    elapsed = time.perf_counter_ns() - start
    if len(calls_ns) != turns:
        raise RuntimeError(f"expected {turns} model calls, the framework made {len(calls_ns)}")
    return Sample(elapsed, calls_ns)


# --- ours -------------------------------------------------------------------------------------------


def prepare_ours(turns: int, sink: Any = None) -> Prepared:
    from collections.abc import AsyncIterator

    from runtime_core.agents import AgentSpec, Limits, RecoveryConfig
    from runtime_core.function_tools import tool
    from runtime_core.messages import AssistantMessage
    from runtime_core.providers import FinishReason, ModelRequest, ModelResponse, StreamChunk
    from runtime_core.runs import RunStatus
    from runtime_core.tools import ToolCall, ToolEffect
    from runtime_execution import AgentLoop, LocalToolRegistry, complete_task

    calls_ns: list[int] = []
    responses = [
        ModelResponse(
            model="m",
            message=AssistantMessage(
                tool_calls=(ToolCall(id=f"call_{turn}", name="bench:echo", arguments={"text": "x"}),)
            ),
            finish_reason=FinishReason.TOOL_CALLS,
        )
        for turn in range(1, turns)
    ]
    responses.append(
        ModelResponse(
            model="m",
            message=AssistantMessage(
                tool_calls=(ToolCall(id=f"call_{turns}", name="complete_task", arguments={"summary": "done"}),)
            ),
            finish_reason=FinishReason.TOOL_CALLS,
        )
    )
    replies = iter(responses)

    class BenchModel:
        name = "bench"

        async def complete(self, request: ModelRequest) -> ModelResponse:
            calls_ns.append(time.perf_counter_ns())
            return next(replies)

        def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
            raise NotImplementedError("the benchmark drives complete() only")

    @tool(name="bench:echo", effect=ToolEffect.NONE)
    async def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    loop = AgentLoop(providers=[BenchModel()], tools=LocalToolRegistry([echo, complete_task]), sink=sink)
    agent = AgentSpec(
        name="bench",
        model="bench:m",
        tools=("bench:*",),
        limits=Limits(max_turns=turns + 10),
        recovery=RecoveryConfig(enabled=False),
    )

    async def run() -> None:
        result = await loop.run(agent, "task")
        if result.status != RunStatus.COMPLETED or result.turns != turns:
            raise RuntimeError(f"ours: expected a completed run of {turns} turns, got {result!r}")

    return calls_ns, run


def prepare_ours_telemetry_noop(turns: int) -> Prepared:
    from opentelemetry import metrics, trace

    from runtime_telemetry import TelemetryBridge

    # Nothing in this process configures an SDK: the global providers are the API's no-op proxies.
    if (
        type(trace.get_tracer_provider()).__name__ != "ProxyTracerProvider"
        or "Proxy" not in type(metrics.get_meter_provider()).__name__
    ):
        raise RuntimeError("a global OpenTelemetry provider is configured: the no-op measurement would be wrong")
    return prepare_ours(turns, TelemetryBridge())


def _sdk() -> tuple[Any, Any, Any]:
    """A local SDK as the tests configure it: (span exporter, tracer provider, meter provider)."""
    # The benchmark configures a local SDK as the tests do; the ban on the SDK is for library code.
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: TID251
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: TID251
    from opentelemetry.sdk.trace import TracerProvider  # noqa: TID251
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: TID251
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: TID251

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])


def _check_spans(name: str, exporter: Any, turns: int) -> None:
    spans = len(exporter.get_finished_spans())
    # One run span, one chat span per turn, one tool span per echo call and one for complete_task.
    if spans != 2 * turns + 1:
        raise RuntimeError(f"{name}: expected {2 * turns + 1} spans, the SDK got {spans}")


def prepare_ours_telemetry_sdk(turns: int) -> Prepared:
    from runtime_telemetry import TelemetryBridge

    exporter, tracer_provider, meter_provider = _sdk()
    calls_ns, run = prepare_ours(turns, TelemetryBridge(tracer_provider, meter_provider))

    async def checked() -> None:
        await run()
        _check_spans("ours_telemetry_sdk", exporter, turns)
        meter_provider.shutdown()

    return calls_ns, checked


def prepare_sdk_floor(turns: int, *, bridge_calls: bool = False) -> Prepared:
    """The SDK alone doing per turn what the bridge needs of it in a turn of this benchmark.

    A run span, then per turn a ``chat`` and an ``execute_tool`` span under it (explicit start and end
    times, as the bridge gives) and three histogram records with the attribute sets the GenAI
    conventions require, on the bridge's own instruments. With `bridge_calls` the spans carry the
    attributes the bridge gives them (built before the clock starts); without, none: the least a turn
    can cost in this SDK configuration.
    """
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    from runtime_telemetry import RuntimeMetrics
    from runtime_telemetry import attributes as attr

    exporter, tracer_provider, meter_provider = _sdk()
    tracer = tracer_provider.get_tracer("bench")
    metrics = RuntimeMetrics(meter_provider)
    model = {
        attr.GEN_AI_OPERATION_NAME: attr.OPERATION_CHAT,
        attr.GEN_AI_PROVIDER_NAME: "bench",
        attr.GEN_AI_REQUEST_MODEL: "m",
    }
    inputs = {**model, attr.GEN_AI_TOKEN_TYPE: attr.TOKEN_TYPE_INPUT}
    outputs = {**model, attr.GEN_AI_TOKEN_TYPE: attr.TOKEN_TYPE_OUTPUT}
    chats: list[dict[str, Any] | None] = [None] * turns
    tools: list[dict[str, Any] | None] = [None] * turns
    if bridge_calls:
        shared = {attr.AGENT_RUNTIME_RUN_ID: "run_bench"}
        chats = [
            {
                **model,
                **shared,
                attr.AGENT_RUNTIME_EVENT_SEQ: 7 * turn,
                attr.AGENT_RUNTIME_TURN: turn,
                attr.GEN_AI_RESPONSE_MODEL: "m",
                attr.GEN_AI_RESPONSE_FINISH_REASONS: ("tool_calls",),
                attr.GEN_AI_USAGE_INPUT_TOKENS: 0,
                attr.GEN_AI_USAGE_OUTPUT_TOKENS: 0,
                attr.AGENT_RUNTIME_COST_USD: 0.0,
            }
            for turn in range(1, turns + 1)
        ]
        tools = [
            {
                attr.GEN_AI_OPERATION_NAME: attr.OPERATION_EXECUTE_TOOL,
                attr.GEN_AI_TOOL_NAME: "bench:echo",
                **shared,
                attr.GEN_AI_TOOL_CALL_ID: f"call_{turn}",
                attr.AGENT_RUNTIME_EVENT_SEQ: 7 * turn + 2,
                attr.AGENT_RUNTIME_TURN: turn,
                attr.AGENT_RUNTIME_TOOL_OUTCOME: attr.TOOL_OUTCOME_SUCCESS,
            }
            for turn in range(1, turns + 1)
        ]
    calls_ns: list[int] = []
    start = time.time_ns()

    async def run() -> None:
        root = tracer.start_span("invoke_agent bench", start_time=start)
        context = trace.set_span_in_context(root)
        for chat_attributes, tool_attributes in zip(chats, tools, strict=True):
            calls_ns.append(time.perf_counter_ns())
            chat = tracer.start_span("chat m", context, SpanKind.CLIENT, attributes=chat_attributes, start_time=start)
            chat.end(start)
            metrics.token_usage.record(0, inputs)
            metrics.token_usage.record(0, outputs)
            metrics.operation_duration.record(0.0, model)
            tool = tracer.start_span("execute_tool bench:echo", context, attributes=tool_attributes, start_time=start)
            tool.end(start)
        root.end(start)
        _check_spans("sdk_bridge_calls" if bridge_calls else "sdk_floor", exporter, turns)
        meter_provider.shutdown()

    return calls_ns, run


# --- Pydantic AI ------------------------------------------------------------------------------------


def prepare_pydantic_ai(turns: int) -> Prepared:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.usage import UsageLimits

    calls_ns: list[int] = []
    echoed: list[str] = []
    responses = [
        ModelResponse(parts=[ToolCallPart(tool_name="echo", args={"text": "x"}, tool_call_id=f"call_{turn}")])
        for turn in range(1, turns)
    ]
    responses.append(ModelResponse(parts=[TextPart(content="done")]))
    replies = iter(responses)

    async def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls_ns.append(time.perf_counter_ns())
        return next(replies)

    async def echo(text: str) -> str:
        """Return the text unchanged."""
        echoed.append(text)
        return text

    agent = Agent(FunctionModel(model), tools=[echo])
    # The default request_limit (50) would stop a 50-turn run before its last request.
    limits = UsageLimits(request_limit=turns + 10)

    async def run() -> None:
        result = await agent.run("task", usage_limits=limits)
        if result.output != "done" or len(echoed) != turns - 1:
            raise RuntimeError(f"pydantic-ai: unexpected run: output={result.output!r}, echo calls={len(echoed)}")

    return calls_ns, run


# --- OpenAI Agents SDK ------------------------------------------------------------------------------


def prepare_openai_agents(turns: int) -> Prepared:
    from agents import Agent, ModelSettings, Runner, Tool, function_tool
    from agents.agent_output import AgentOutputSchemaBase
    from agents.handoffs import Handoff
    from agents.items import ModelResponse, TResponseInputItem, TResponseOutputItem
    from agents.models.interface import Model, ModelTracing
    from agents.usage import Usage
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    calls_ns: list[int] = []
    echoed: list[str] = []
    outputs: list[list[TResponseOutputItem]] = [
        [ResponseFunctionToolCall(type="function_call", call_id=f"call_{turn}", name="echo", arguments='{"text":"x"}')]
        for turn in range(1, turns)
    ]
    outputs.append(
        [
            ResponseOutputMessage(
                id=f"msg_{turns}",
                type="message",
                role="assistant",
                status="completed",
                content=[ResponseOutputText(type="output_text", text="done", annotations=[])],
            )
        ]
    )
    replies = iter([ModelResponse(output=output, usage=Usage(), response_id=None) for output in outputs])

    class BenchModel(Model):
        async def get_response(
            self,
            system_instructions: str | None,
            input: str | list[TResponseInputItem],
            model_settings: ModelSettings,
            tools: list[Tool],
            output_schema: AgentOutputSchemaBase | None,
            handoffs: list[Handoff],
            tracing: ModelTracing,
            *,
            previous_response_id: str | None,
            conversation_id: str | None,
            prompt: Any | None,
        ) -> ModelResponse:
            calls_ns.append(time.perf_counter_ns())
            return next(replies)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError("the benchmark drives get_response() only")

    @function_tool
    async def echo(text: str) -> str:
        """Return the text unchanged."""
        echoed.append(text)
        return text

    agent = Agent(name="bench", instructions="", model=BenchModel(), tools=[echo])

    async def run() -> None:
        # The default max_turns (10) would stop the run long before its end.
        result = await Runner.run(agent, "task", max_turns=turns + 10)
        if result.final_output != "done" or len(echoed) != turns - 1:
            raise RuntimeError(
                f"openai-agents: unexpected run: output={result.final_output!r}, echo calls={len(echoed)}"
            )

    return calls_ns, run


PREPARE: dict[str, Callable[[int], Prepared]] = {
    "ours": prepare_ours,
    "ours_telemetry_noop": prepare_ours_telemetry_noop,
    "ours_telemetry_sdk": prepare_ours_telemetry_sdk,
    "sdk_floor": prepare_sdk_floor,
    "sdk_bridge_calls": lambda turns: prepare_sdk_floor(turns, bridge_calls=True),
    "pydantic_ai": prepare_pydantic_ai,
    "openai_agents": prepare_openai_agents,
}


# --- driver -----------------------------------------------------------------------------------------


async def measure(turns: int, runs: int, *, gc_freeze: bool = True) -> tuple[dict[str, Series], dict[str, str]]:
    """Warm every framework up once, then time `runs` interleaved runs of each."""
    series: dict[str, Series] = {}
    errors: dict[str, str] = {}
    # Ours runs after the previous repetition's SDK variant and each telemetry variant after a run of ours
    # (untimed, below), never after a peer: the first run of ours after a peer's is slower (docstring).
    for name in (*FRAMEWORKS, *SDK_FLOORS, *TELEMETRY_VARIANTS):
        try:
            await _timed(PREPARE[name], turns)  # warm-up: imports, schema building, caches
        except ImportError as exc:  # e.g. ours before the agent loop lands: still measure the peers
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        series[name] = Series()
    if gc_freeze:
        # Three frameworks share one process: without this, every full collection during a run also
        # scans the other two frameworks' modules, and whoever allocates most pays most for them.
        gc.collect()
        gc.freeze()
    for _ in range(runs):
        for name in series:
            if name == TELEMETRY_VARIANTS[0]:
                await _timed(prepare_ours, turns)  # untimed
            series[name].samples.append(await _timed(PREPARE[name], turns))
    return series, errors


def report(
    series: dict[str, Series], errors: dict[str, str], turns: int, runs: int, *, gc_freeze: bool = True
) -> dict[str, Any]:
    us = {name: (series[name].us_per_turn(turns) if name in series else None) for name in FRAMEWORKS}
    ours = us["ours"]
    ratio_pydantic = ratio(us["pydantic_ai"], ours)
    noop = series["ours_telemetry_noop"].us_per_turn(turns) if "ours_telemetry_noop" in series else None
    sdk = series["ours_telemetry_sdk"].us_per_turn(turns) if "ours_telemetry_sdk" in series else None
    floor, bridge_calls = (series[name].us_per_turn(turns) if name in series else None for name in SDK_FLOORS)
    noop_pct = None if noop is None or not ours else (noop - ours) / ours * 100.0
    sdk_added = None if sdk is None or ours is None else sdk - ours
    met = ours is not None and ours <= TARGET_US_PER_TURN and (ratio_pydantic or 0.0) >= TARGET_RATIO_VS_PYDANTIC_AI
    edges = {name: s.turn_us() for name, s in series.items()}
    flatness = {name: (series[name].flatness() if name in series else None) for name in FRAMEWORKS}
    return {
        "benchmark": "loop_inmemory",
        "turns": turns,
        "runs": runs,
        "gc_frozen": gc_freeze,
        "ours_us_per_turn": ours,
        "pydantic_ai_us_per_turn": us["pydantic_ai"],
        "openai_agents_us_per_turn": us["openai_agents"],
        "ratio_vs_pydantic_ai": ratio_pydantic,
        "ratio_vs_openai_agents": ratio(us["openai_agents"], ours),
        "ours_telemetry_noop_us_per_turn": noop,
        "telemetry_noop_overhead_pct": noop_pct,
        "ours_telemetry_sdk_us_per_turn": sdk,
        "telemetry_sdk_us_per_turn_added": sdk_added,
        "telemetry_sdk_floor_us_per_turn": floor,
        "telemetry_sdk_bridge_calls_us_per_turn": bridge_calls,
        "telemetry_target": {
            "noop_overhead_pct_max": TARGET_TELEMETRY_NOOP_PCT,
            "sdk_us_per_turn_added_max": TARGET_TELEMETRY_SDK_US,
            "met": noop_pct is not None
            and sdk_added is not None
            and noop_pct <= TARGET_TELEMETRY_NOOP_PCT
            and sdk_added <= TARGET_TELEMETRY_SDK_US,
        },
        "flatness": flatness,
        "first_last_10_turn_us": {name: list(pair) if pair else None for name, pair in edges.items()},
        "target": {
            "ours_us_per_turn_max": TARGET_US_PER_TURN,
            "ratio_vs_pydantic_ai_min": TARGET_RATIO_VS_PYDANTIC_AI,
            "met": met,
            "flatness_max": FLATNESS_MAX,
            "ours_flat": None if flatness["ours"] is None else flatness["ours"] <= FLATNESS_MAX,
        },
        "errors": errors,
        "network_attempts": len(NETWORK_ATTEMPTS),
        "ours_compiled_modules": compiled_modules(),
        "versions": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            **{name: version(dist) for name, dist in DIST.items()},
            "pydantic": version("pydantic"),
        },
    }


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_human(result: dict[str, Any]) -> None:
    versions = result["versions"]
    print(
        f"loop_inmemory: {result['turns']} turns, median of {result['runs']} runs, python {versions['python']}, "
        f"gc {'frozen after warm-up' if result['gc_frozen'] else 'not frozen'}"
    )
    print(describe_build(result["ours_compiled_modules"]))
    print(f"{'framework':<15} {'version':<10} {'us/turn':>9} {'flatness':>9}  first/last 10 turns (us)")
    for name in FRAMEWORKS:
        edges = result["first_last_10_turn_us"].get(name)
        pair = f"{edges[0]:.1f} / {edges[1]:.1f}" if edges else "n/a"
        print(
            f"{name:<15} {versions[name] or '?':<10} {_fmt(result[f'{name}_us_per_turn'], '9.1f'):>9} "
            f"{_fmt(result['flatness'][name], '9.2f'):>9}  {pair}"
        )
    print(
        f"ratio (peer / ours): pydantic-ai {_fmt(result['ratio_vs_pydantic_ai'], '.1f')}, "
        f"openai-agents {_fmt(result['ratio_vs_openai_agents'], '.1f')}"
    )
    target = result["target"]
    print(
        f"target: ours <= {target['ours_us_per_turn_max']:.0f} us/turn and ratio vs pydantic-ai >= "
        f"{target['ratio_vs_pydantic_ai_min']:.0f}: {'met' if target['met'] else 'MISSED'}"
    )
    if target["ours_flat"] is not None:
        verdict = "flat" if target["ours_flat"] else "NOT flat: per-turn cost grows with the history"
        print(f"ours per-turn time (last 10 / first 10 turns <= {target['flatness_max']}): {verdict}")
    print(
        f"telemetry bridge: no-op {_fmt(result['ours_telemetry_noop_us_per_turn'], '.1f')} us/turn "
        f"({_fmt(result['telemetry_noop_overhead_pct'], '+.1f')} %, target <= "
        f"{result['telemetry_target']['noop_overhead_pct_max']:.0f} %), SDK in memory "
        f"{_fmt(result['ours_telemetry_sdk_us_per_turn'], '.1f')} us/turn "
        f"({_fmt(result['telemetry_sdk_us_per_turn_added'], '+.1f')} us, target <= "
        f"{result['telemetry_target']['sdk_us_per_turn_added_max']:.0f} us): "
        f"{'met' if result['telemetry_target']['met'] else 'MISSED'}"
    )
    print(
        f"the SDK alone per turn: least possible {_fmt(result['telemetry_sdk_floor_us_per_turn'], '.1f')} us, "
        f"the bridge's calls {_fmt(result['telemetry_sdk_bridge_calls_us_per_turn'], '.1f')} us"
    )
    for name, error in result["errors"].items():
        print(f"{name}: not measured: {error}")
    if result["network_attempts"]:
        print(f"warning: {result['network_attempts']} network attempts were blocked: {NETWORK_ATTEMPTS[:3]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=50, help="model turns per run (>= 21 for flatness; default 50)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per framework (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    parser.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="do not gc.freeze() the warmed-up heap before the timed runs (see the module docstring)",
    )
    args = parser.parse_args(argv)
    if args.turns < 2 or args.runs < 1:
        parser.error("--turns must be >= 2 and --runs >= 1")

    block_network("bench/loop_inmemory.py")
    from agents import set_tracing_disabled

    set_tracing_disabled(True)
    series, errors = asyncio.run(measure(args.turns, args.runs, gc_freeze=args.gc_freeze))
    result = report(series, errors, args.turns, args.runs, gc_freeze=args.gc_freeze)
    if args.json:
        print(json.dumps(result))
    else:
        print_human(result)
    return 1 if args.check and not result["target"]["met"] else 0


if __name__ == "__main__":
    sys.exit(main())
