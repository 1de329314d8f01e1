"""The bridge from the run log to OpenTelemetry: an `EventSink` that turns committed events into spans and metrics.

Spans follow the OpenTelemetry GenAI conventions:

- ``invoke_agent {agent}``: one per run (per driver: a run resumed in another process gets a new one,
  marked ``agent_runtime.resumed``), from ``run.created``/``run.started`` to its terminal event;
- ``chat {model}``: one per model call, from ``model.requested`` to ``model.responded``, child of the run
  span, with the request, response and usage attributes of that one call;
- ``execute_tool {tool}``: one per tool call, from ``tool.called`` to ``tool.finished``/``tool.failed``,
  child of the run span; a failed call has status ERROR and ``error.type``; policy decisions and
  approvals are events on it.

Every span and span event uses the ``ts`` of the run-log events it stands for, carries the run id and
the ``seq`` of the event that opened it, so a trace and the run log join exactly. A child run delegated
from a tool call nests under that tool's span (when this process saw the ``subagent.spawned``).

Model and tool call spans are started when their call ends, with the start time and parent of the event
that opened them and all their attributes at once: the SDK validates attributes on every call that sets
them, so one pass costs less than two, and the exported span is the same. A tool span that an event
must go on first (a policy decision, an approval, a child run nesting under it) is started then.

The bridge decides once per run, when the run opens, what records it: whether its run span records (no
SDK, or a sampler dropped the trace: then no child span is started and no span attribute is built) and
whether the meter provider does (`RuntimeMetrics.recording`). A run of which neither records costs a
dictionary lookup per boundary: the bridge only watches for its end, and counts nothing of it. Metrics
are recorded through instruments created once, with attribute sets cached by key.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from operator import attrgetter
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from runtime_core.events import (
    ApprovalRequestedPayload,
    ApprovalResolvedPayload,
    ContextCompactedPayload,
    ErrorPayload,
    Event,
    EventType,
    ModelRequestedPayload,
    ModelRespondedPayload,
    PolicyDecidedPayload,
    RecoveryStartedPayload,
    RunCreatedPayload,
    RunFailedPayload,
    RunStartedPayload,
    SubagentSpawnedPayload,
    ToolCalledPayload,
    ToolFailedPayload,
    ToolFinishedPayload,
    ToolStartedPayload,
    TurnStartedPayload,
)
from runtime_core.policy import PolicyOutcome
from runtime_core.providers import FinishReason
from runtime_telemetry import attributes as attr
from runtime_telemetry._scope import SCOPE_NAME, SCOPE_VERSION
from runtime_telemetry.metrics import RuntimeMetrics

__all__ = ["TelemetryBridge"]

_log = logging.getLogger("runtime_telemetry.bridge")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_TYPE: Final = attrgetter("type")
_RUN_ENDS: Final = frozenset({EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_CANCELLED})
_FINISH_REASONS: Final = {reason: (reason.value,) for reason in FinishReason}
_Attributes = Mapping[str, AttributeValue]
# Input tokens, output tokens, and the call itself (duration).
_ModelAttributes = tuple[_Attributes, _Attributes, _Attributes]
# A call span's name and the attributes every call of that model or tool in a run shares.
_CallBase = tuple[str, dict[str, AttributeValue]]


def _ns(ts: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime, exactly (a float timestamp would round)."""
    return (ts - _EPOCH) // _MICROSECOND * 1000


@lru_cache(maxsize=256)  # a process sees a handful of model names, each on every model call
def _split_model(model: str) -> tuple[str, str]:
    """``"openai:gpt-4.1"`` → ``("openai", "gpt-4.1")``; a name without a provider keeps ``""``."""
    provider, colon, name = model.partition(":")
    return (provider, name) if colon else ("", model)


class _Deferred:
    """A model or tool call span not started yet: what starting it takes (see the module docstring)."""

    __slots__ = ("attributes", "kind", "name", "start")

    def __init__(self, name: str, kind: SpanKind, attributes: dict[str, AttributeValue], start: int) -> None:
        self.name = name
        self.kind = kind
        self.attributes = attributes
        self.start = start


class _Run:
    """What the bridge keeps about one run between boundaries."""

    __slots__ = (
        "agent",
        "approvals",
        "chat",
        "chat_bases",
        "chat_model",
        "chat_ts",
        "context",
        "cost_usd",
        "denied",
        "input_tokens",
        "output_tokens",
        "quiet",
        "recording",
        "recovery",
        "run_id",
        "span",
        "success_keys",
        "tool_bases",
        "tool_calls",
        "tools",
        "turn_keys",
        "turns",
    )

    def __init__(self, run_id: str, agent: str, span: Span, *, metering: bool) -> None:
        self.run_id = run_id
        self.agent = agent
        self.span = span
        self.recording = span.is_recording()
        self.quiet = not self.recording and not metering
        self.context = trace.set_span_in_context(span) if self.recording else None
        self.recovery = False
        self.chat: _Deferred | None = None
        self.chat_model = ""
        self.chat_ts: datetime | None = None
        self.tools: dict[str, Span | _Deferred] = {}
        self.denied: set[str] = set()
        self.approvals: dict[str, str] = {}
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.turns = 0
        self.tool_calls = 0
        # Keys and attributes built once per run (or per model and tool): the hot path only copies them.
        self.turn_keys = ((agent, False), (agent, True))
        self.success_keys: dict[str, tuple[str, str, str]] = {}
        self.chat_bases: dict[str, _CallBase] = {}
        self.tool_bases: dict[str, _CallBase] = {}


class TelemetryBridge:
    """Turns the run-log events of committed boundaries into OpenTelemetry spans and metrics.

    It implements [`EventSink`][runtime_core.events.EventSink]: pass it as the agent loop's ``sink``,
    or subscribe [`on_bus_event`][runtime_telemetry.TelemetryBridge.on_bus_event] to the control plane's
    event bus when the bus is the sink. It never blocks (no I/O: exporting is the SDK's span processor's
    business) and never raises into the caller: an event it cannot handle is logged on the
    ``runtime_telemetry.bridge`` logger and skipped.

    Args:
        tracer_provider: Where spans go; the global tracer provider (looked up now) when ``None``.
        meter_provider: Where metrics go; the global meter provider (looked up now) when ``None``.
            Ignored when `metrics` is given.
        metrics: Instruments to record into, to share them with other recorders (queue depth).
        max_open_runs: Runs tracked at once; beyond it the oldest run's spans are ended (a run waiting
            for an approval that another process will resume would otherwise be kept forever).
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        metrics: RuntimeMetrics | None = None,
        max_open_runs: int = 10_000,
    ) -> None:
        if max_open_runs < 1:
            raise ValueError(f"max_open_runs must be at least 1, got {max_open_runs}")
        self._tracer = trace.get_tracer(SCOPE_NAME, SCOPE_VERSION, tracer_provider)
        self._metrics = metrics if metrics is not None else RuntimeMetrics(meter_provider)
        self._max_open_runs = max_open_runs
        self._runs: dict[str, _Run] = {}
        # Child run id -> the context of the parent span it nests under (from subagent.spawned).
        self._parents: dict[str, otel_context.Context] = {}
        self._model_metric_attrs: dict[str, _ModelAttributes] = {}
        self._lock = threading.Lock()  # the bus may deliver from several threads
        # The handlers of the events of an open run (emit opens runs, on their first event but an end).
        self._handlers: dict[EventType, Callable[[_Run, Event], None]] = {
            EventType.RUN_CREATED: self._run_created,
            EventType.RUN_STARTED: self._run_started,
            EventType.TURN_STARTED: self._turn_started,
            EventType.RECOVERY_STARTED: self._recovery_started,
            EventType.MODEL_REQUESTED: self._model_requested,
            EventType.MODEL_RESPONDED: self._model_responded,
            EventType.CONTEXT_COMPACTED: self._context_compacted,
            EventType.TOOL_CALLED: self._tool_called,
            EventType.POLICY_DECIDED: self._policy_decided,
            EventType.APPROVAL_REQUESTED: self._approval_requested,
            EventType.APPROVAL_RESOLVED: self._approval_resolved,
            EventType.TOOL_STARTED: self._tool_started,
            EventType.TOOL_FINISHED: self._tool_finished,
            EventType.TOOL_FAILED: self._tool_failed,
            EventType.SUBAGENT_SPAWNED: self._subagent_spawned,
            EventType.TURN_FINISHED: self._turn_finished,
            EventType.RUN_PAUSED: self._span_event,
            EventType.RUN_RESUMED: self._span_event,
            EventType.SUBAGENT_FINISHED: self._span_event,
            EventType.COMPLETION_RECORDED: self._span_event,
            EventType.RUN_COMPLETED: self._run_ended,
            EventType.RUN_FAILED: self._run_ended,
            EventType.RUN_CANCELLED: self._run_ended,
            EventType.ERROR: self._error,
        }

    @property
    def metrics(self) -> RuntimeMetrics:
        """The instruments the bridge records into."""
        return self._metrics

    @property
    def open_runs(self) -> int:
        """Runs opened and not yet ended (whether or not anything records them)."""
        return len(self._runs)

    # -- EventSink ----------------------------------------------------------------------------------------

    def emit(self, events: Sequence[Event]) -> None:
        """Record the events of one committed boundary (in ``seq`` order).

        Args:
            events: The boundary's recorded events, all of one run.
        """
        runs = self._runs
        if events:
            run = runs.get(events[0].run_id)
            if run is not None and run.quiet and _RUN_ENDS.isdisjoint(map(_TYPE, events)):
                return  # nothing records this run: only its end matters
        handlers = self._handlers
        with self._lock:
            for event in events:
                kind = event.type
                handler = handlers.get(kind)
                if handler is None:
                    continue  # checkpoint.saved, budget.debited, routing...: nothing to measure
                try:
                    run = runs.get(event.run_id)
                    if run is None:
                        if kind in _RUN_ENDS:
                            continue  # never seen running here: nothing open, nothing active to count down
                        run = self._open(event)  # a bus that joined late opens the run on any event
                        if run.quiet or kind is EventType.RUN_CREATED or kind is EventType.RUN_STARTED:
                            continue
                    elif run.quiet:
                        if kind in _RUN_ENDS:
                            del runs[event.run_id]
                        continue
                    handler(run, event)
                except Exception:  # telemetry must never break a run; the event is in the log anyway
                    _log.exception("telemetry bridge failed on event %s (%s)", event.id, kind.value)

    def on_bus_event(self, bus_event: object) -> None:
        """Record a run-log event delivered by the event bus (a synchronous bus handler).

        Subscribe it with ``bus.subscribe("*", bridge.on_bus_event)`` when the bus is the agent loop's
        sink. Bus events whose payload is not a run-log `Event` are ignored.

        Args:
            bus_event: A ``runtime_control.BusEvent``; its ``payload`` is the recorded event.
        """
        payload = getattr(bus_event, "payload", None)
        if isinstance(payload, Event):
            self.emit((payload,))

    def close(self) -> None:
        """End every open span now (at shutdown): runs still going are recorded as unfinished."""
        with self._lock:
            for run in list(self._runs.values()):
                self._abandon(run, "shutdown")
            self._runs.clear()
            self._parents.clear()

    # -- spans of calls -----------------------------------------------------------------------------------

    def _start(self, run: _Run, span: _Deferred) -> Span:
        return self._tracer.start_span(
            span.name, context=run.context, kind=span.kind, attributes=span.attributes, start_time=span.start
        )

    def _tool_span(self, run: _Run, call_id: str | None) -> Span | None:
        """The started span of tool call `call_id` (started now if deferred), to put an event on it."""
        span = run.tools.get(call_id or "")
        if isinstance(span, _Deferred):
            span = run.tools[call_id or ""] = self._start(run, span)
        return span

    def _end_call(
        self,
        run: _Run,
        span: Span | _Deferred,
        attributes: dict[str, AttributeValue],
        end: int,
        status: Status | None = None,
    ) -> None:
        """End a model or tool call span with its last attributes (and status)."""
        if isinstance(span, _Deferred):
            span.attributes.update(attributes)
            span = self._start(run, span)
        else:
            span.set_attributes(attributes)
        if status is not None:
            span.set_status(status)
        span.end(end)

    # -- runs ---------------------------------------------------------------------------------------------

    def _open(self, event: Event) -> _Run:
        payload = event.payload
        created = payload if isinstance(payload, RunCreatedPayload) else None
        resumed = isinstance(payload, RunStartedPayload) and payload.resumed
        agent = event.agent_id
        parent = self._parents.pop(event.run_id, None)
        span = self._tracer.start_span(
            f"{attr.OPERATION_INVOKE_AGENT} {agent}", context=parent, kind=SpanKind.INTERNAL, start_time=_ns(event.ts)
        )
        run = _Run(event.run_id, agent, span, metering=self._metrics.recording)
        if run.recording:
            span.set_attributes(
                {
                    attr.GEN_AI_OPERATION_NAME: attr.OPERATION_INVOKE_AGENT,
                    attr.GEN_AI_AGENT_NAME: agent,
                    attr.GEN_AI_CONVERSATION_ID: event.run_id,
                    attr.AGENT_RUNTIME_RUN_ID: event.run_id,
                    attr.AGENT_RUNTIME_EVENT_SEQ: event.seq,
                    attr.AGENT_RUNTIME_RESUMED: resumed,
                }
            )
            if created is not None:
                provider, model = _split_model(created.agent.model)
                span.set_attributes({attr.GEN_AI_PROVIDER_NAME: provider, attr.GEN_AI_REQUEST_MODEL: model})
                if created.parent_run_id is not None:
                    span.set_attribute(attr.AGENT_RUNTIME_PARENT_RUN_ID, created.parent_run_id)
        if not run.quiet:
            self._metrics.active_runs.add(1, agent)
        self._runs[event.run_id] = run
        if len(self._runs) > self._max_open_runs:
            oldest = next(iter(self._runs))
            self._abandon(self._runs.pop(oldest), "evicted")
        return run

    def _run_created(self, run: _Run, event: Event) -> None:
        """A ``run.created`` of a run already open (`emit` opens runs): nothing to add."""

    def _run_started(self, run: _Run, event: Event) -> None:
        # After run.created, or a resume in the same process: one span goes on.
        payload = event.payload
        assert isinstance(payload, RunStartedPayload)
        if run.recording:
            run.span.add_event(
                "run.started",
                {attr.AGENT_RUNTIME_EVENT_SEQ: event.seq, attr.AGENT_RUNTIME_RESUMED: payload.resumed},
                timestamp=_ns(event.ts),
            )

    def _run_ended(self, run: _Run, event: Event) -> None:
        del self._runs[event.run_id]
        status = event.type.value.removeprefix("run.")
        self._metrics.runs.add(1, run.agent, status)
        self._metrics.active_runs.add(-1, run.agent)
        if not run.recording:
            return
        end = _ns(event.ts)
        self._end_children(run, end, "run_ended")
        span = run.span
        span.set_attributes(
            {
                attr.AGENT_RUNTIME_RUN_STATUS: status,
                attr.AGENT_RUNTIME_USAGE_TOTAL_INPUT_TOKENS: run.input_tokens,
                attr.AGENT_RUNTIME_USAGE_TOTAL_OUTPUT_TOKENS: run.output_tokens,
                attr.AGENT_RUNTIME_USAGE_TOTAL_COST_USD: run.cost_usd,
                attr.AGENT_RUNTIME_USAGE_TOTAL_TURNS: run.turns,
                attr.AGENT_RUNTIME_USAGE_TOTAL_TOOL_CALLS: run.tool_calls,
            }
        )
        payload = event.payload
        if isinstance(payload, RunFailedPayload):
            span.set_attributes({attr.AGENT_RUNTIME_RUN_REASON: payload.reason, attr.ERROR_TYPE: payload.reason})
            span.set_status(Status(StatusCode.ERROR, payload.message))
        elif event.type is EventType.RUN_COMPLETED:
            span.set_status(Status(StatusCode.OK))
        elif (reason := getattr(payload, "reason", None)) is not None:
            span.set_attribute(attr.AGENT_RUNTIME_RUN_REASON, reason)
        span.end(end)

    def _abandon(self, run: _Run, why: str) -> None:
        """End a run's spans without a terminal event (shutdown or eviction)."""
        if run.quiet:
            return
        self._metrics.active_runs.add(-1, run.agent)
        if run.recording:
            end = _ns(datetime.now(UTC))
            self._end_children(run, end, why)
            run.span.set_attribute(attr.AGENT_RUNTIME_RUN_STATUS, why)
            run.span.end(end)

    def _end_children(self, run: _Run, end: int, why: str) -> None:
        """End the model and tool spans still open when their run stops."""
        unfinished: list[Span | _Deferred] = [run.chat] if run.chat is not None else []
        unfinished += run.tools.values()
        status = Status(StatusCode.ERROR, f"unfinished: {why}")
        for span in unfinished:
            self._end_call(run, span, {attr.ERROR_TYPE: why}, end, status)
        run.chat = None
        run.tools.clear()

    def _span_event(self, run: _Run, event: Event) -> None:
        """Pauses, resumptions, completions and finished children: events on the run span."""
        if run.recording:
            run.span.add_event(
                event.type.value,
                {attr.AGENT_RUNTIME_EVENT_SEQ: event.seq, attr.AGENT_RUNTIME_TURN: event.turn},
                _ns(event.ts),
            )

    # -- turns --------------------------------------------------------------------------------------------

    def _turn_started(self, run: _Run, event: Event) -> None:
        payload = event.payload
        assert isinstance(payload, TurnStartedPayload)
        run.recovery = payload.recovery

    def _recovery_started(self, run: _Run, event: Event) -> None:
        payload = event.payload
        assert isinstance(payload, RecoveryStartedPayload)
        run.recovery = True
        if run.recording:
            run.span.add_event(
                event.type.value,
                {
                    attr.AGENT_RUNTIME_EVENT_SEQ: event.seq,
                    attr.AGENT_RUNTIME_TURN: event.turn,
                    attr.AGENT_RUNTIME_RECOVERY_TRIGGER: payload.trigger,
                    "agent_runtime.recovery.max_turns": payload.max_turns,
                    "agent_runtime.recovery.grace_turns": payload.grace_turns,
                    "agent_runtime.recovery.deadline_s": payload.deadline_s,
                },
                _ns(event.ts),
            )

    def _turn_finished(self, run: _Run, event: Event) -> None:
        run.turns += 1
        self._metrics.turns.add_to(1, run.turn_keys[run.recovery])

    # -- model calls --------------------------------------------------------------------------------------

    def _model_requested(self, run: _Run, event: Event) -> None:
        payload = event.payload
        assert isinstance(payload, ModelRequestedPayload)
        run.chat_ts = event.ts
        run.chat_model = payload.model
        if not run.recording:
            return
        base = run.chat_bases.get(payload.model)
        if base is None:
            provider, model = _split_model(payload.model)
            base = run.chat_bases[payload.model] = (
                f"{attr.OPERATION_CHAT} {model}",
                {
                    attr.GEN_AI_OPERATION_NAME: attr.OPERATION_CHAT,
                    attr.GEN_AI_PROVIDER_NAME: provider,
                    attr.GEN_AI_REQUEST_MODEL: model,
                    attr.AGENT_RUNTIME_RUN_ID: run.run_id,
                },
            )
        name, shared = base
        attributes = {**shared, attr.AGENT_RUNTIME_EVENT_SEQ: event.seq, attr.AGENT_RUNTIME_TURN: event.turn}
        if run.recovery:
            attributes[attr.AGENT_RUNTIME_RECOVERY] = True
        run.chat = _Deferred(name, SpanKind.CLIENT, attributes, _ns(event.ts))

    def _model_attrs(self, model: str, error: str | None = None) -> _ModelAttributes:
        """The attribute sets of the model metrics of `model` (``"provider:model"``), built once."""
        attributes = self._model_metric_attrs.get(model) if error is None else None
        if attributes is not None:
            return attributes
        provider, request_model = _split_model(model)
        # The run log records the model asked for, not the provider's own name for the one that answered:
        # gen_ai.response.model would only repeat gen_ai.request.model, so metrics leave it out.
        common: dict[str, AttributeValue] = {
            attr.GEN_AI_OPERATION_NAME: attr.OPERATION_CHAT,
            attr.GEN_AI_PROVIDER_NAME: provider,
            attr.GEN_AI_REQUEST_MODEL: request_model,
        }
        if error is not None:
            common[attr.ERROR_TYPE] = error
        attributes = (
            {**common, attr.GEN_AI_TOKEN_TYPE: attr.TOKEN_TYPE_INPUT},
            {**common, attr.GEN_AI_TOKEN_TYPE: attr.TOKEN_TYPE_OUTPUT},
            common,
        )
        if error is None:
            self._model_metric_attrs[model] = attributes
        return attributes

    def _model_responded(self, run: _Run, event: Event) -> None:
        payload = event.payload
        assert isinstance(payload, ModelRespondedPayload)
        usage = payload.usage
        requested = run.chat_model or payload.model
        metrics = self._metrics
        input_attrs, output_attrs, call_attrs = self._model_attrs(requested)
        metrics.token_usage.record(usage.input_tokens, input_attrs)
        metrics.token_usage.record(usage.output_tokens, output_attrs)
        if payload.latency_ms > 0.0:
            seconds = payload.latency_ms / 1000.0
        elif run.chat_ts is not None:  # providers that do not time themselves (scripted, recorded)
            seconds = (event.ts - run.chat_ts).total_seconds()
        else:
            seconds = 0.0
        metrics.operation_duration.record(seconds, call_attrs)
        if usage.cost_usd:
            metrics.cost.add(usage.cost_usd, *_split_model(requested))
        run.input_tokens += usage.input_tokens
        run.output_tokens += usage.output_tokens
        run.cost_usd += usage.cost_usd
        run.chat_ts = None
        chat = run.chat
        if chat is None:
            return
        run.chat = None
        attributes = chat.attributes
        attributes[attr.GEN_AI_RESPONSE_MODEL] = _split_model(payload.model)[1]
        attributes[attr.GEN_AI_RESPONSE_FINISH_REASONS] = _FINISH_REASONS[payload.finish_reason]
        attributes[attr.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
        attributes[attr.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
        attributes[attr.AGENT_RUNTIME_COST_USD] = usage.cost_usd
        if usage.cached_input_tokens:
            attributes[attr.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_input_tokens
        self._start(run, chat).end(_ns(event.ts))

    def _error(self, run: _Run, event: Event) -> None:
        payload = event.payload
        assert isinstance(payload, ErrorPayload)
        self._metrics.errors.add(1, payload.code)
        if run.chat_ts is not None:  # a model call without a reply: this error is the call's
            seconds = (event.ts - run.chat_ts).total_seconds()
            self._metrics.operation_duration.record(seconds, self._model_attrs(run.chat_model, payload.code)[2])
            run.chat_ts = None
        if not run.recording:
            return
        end = _ns(event.ts)
        run.span.add_event(
            event.type.value,
            {
                attr.AGENT_RUNTIME_EVENT_SEQ: event.seq,
                attr.AGENT_RUNTIME_ERROR_CODE: payload.code,
                "agent_runtime.error.stage": payload.stage or "",
                "agent_runtime.error.recoverable": payload.recoverable,
            },
            end,
        )
        if run.chat is not None:
            self._end_call(
                run, run.chat, {attr.ERROR_TYPE: payload.code}, end, Status(StatusCode.ERROR, payload.message)
            )
            run.chat = None

    # -- tool calls ---------------------------------------------------------------------------------------

    def _tool_called(self, run: _Run, event: Event) -> None:
        payload = event.payload
        assert isinstance(payload, ToolCalledPayload)
        run.tool_calls += 1
        if not run.recording:
            return
        call = payload.call
        base = run.tool_bases.get(call.name)
        if base is None:
            base = run.tool_bases[call.name] = (
                f"{attr.OPERATION_EXECUTE_TOOL} {call.name}",
                {
                    attr.GEN_AI_OPERATION_NAME: attr.OPERATION_EXECUTE_TOOL,
                    attr.GEN_AI_TOOL_NAME: call.name,
                    attr.AGENT_RUNTIME_RUN_ID: run.run_id,
                },
            )
        name, shared = base
        attributes = {
            **shared,
            attr.GEN_AI_TOOL_CALL_ID: call.id,
            attr.AGENT_RUNTIME_EVENT_SEQ: event.seq,
            attr.AGENT_RUNTIME_TURN: event.turn,
        }
        run.tools[call.id] = _Deferred(name, SpanKind.INTERNAL, attributes, _ns(event.ts))

    def _tool_started(self, run: _Run, event: Event) -> None:
        payload = event.payload
        assert isinstance(payload, ToolStartedPayload)
        span = run.tools.get(event.tool_call_id or "")
        if span is None:
            return
        attributes = {
            attr.AGENT_RUNTIME_TOOL_EFFECT: payload.effect.value,
            attr.AGENT_RUNTIME_TOOL_ATTEMPT: payload.attempt,
        }
        if isinstance(span, _Deferred):
            span.attributes.update(attributes)
        else:
            span.set_attributes(attributes)

    def _tool_finished(self, run: _Run, event: Event) -> None:
        payload = event.payload
        assert isinstance(payload, ToolFinishedPayload)
        result = payload.result
        key = run.success_keys.get(result.tool_name)
        if key is None:
            key = run.success_keys[result.tool_name] = (run.agent, result.tool_name, attr.TOOL_OUTCOME_SUCCESS)
        self._metrics.tool_calls.add_to(1, key)
        if result.cached:
            self._metrics.cache_hits.add(1, "tool_result", result.tool_name)
        span = run.tools.pop(result.tool_call_id, None)
        if span is not None:
            attributes: dict[str, AttributeValue] = {attr.AGENT_RUNTIME_TOOL_OUTCOME: attr.TOOL_OUTCOME_SUCCESS}
            if result.cached:
                attributes[attr.AGENT_RUNTIME_TOOL_CACHED] = True
            self._end_call(run, span, attributes, _ns(event.ts))

    def _tool_failed(self, run: _Run, event: Event) -> None:
        payload = event.payload
        assert isinstance(payload, ToolFailedPayload)
        result = payload.result
        code = payload.error.code.value
        if payload.will_retry:  # not the call's end: the next attempt follows
            span = self._tool_span(run, result.tool_call_id)
            if span is not None:
                span.add_event(
                    "tool.attempt_failed",
                    {
                        attr.AGENT_RUNTIME_EVENT_SEQ: event.seq,
                        attr.ERROR_TYPE: code,
                        attr.AGENT_RUNTIME_TOOL_ATTEMPT: payload.attempt,
                    },
                    _ns(event.ts),
                )
            return
        denied = result.tool_call_id in run.denied
        if denied:
            run.denied.discard(result.tool_call_id)
        outcome = attr.TOOL_OUTCOME_DENIED if denied else attr.TOOL_OUTCOME_ERROR
        self._metrics.tool_calls.add(1, run.agent, result.tool_name, outcome)
        ended = run.tools.pop(result.tool_call_id, None)
        if ended is not None:
            self._end_call(
                run,
                ended,
                {
                    attr.AGENT_RUNTIME_TOOL_OUTCOME: outcome,
                    attr.ERROR_TYPE: code,
                    attr.AGENT_RUNTIME_TOOL_ATTEMPT: payload.attempt,
                },
                _ns(event.ts),
                Status(StatusCode.ERROR, payload.error.message),
            )

    def _policy_decided(self, run: _Run, event: Event) -> None:
        payload = event.payload
        assert isinstance(payload, PolicyDecidedPayload)
        decision = payload.decision
        if decision.policy_decision is PolicyOutcome.DENY:
            if event.tool_call_id is not None:
                run.denied.add(event.tool_call_id)
            self._metrics.policy_denials.add(1, run.agent, payload.tool_name)
        span = self._tool_span(run, event.tool_call_id)
        if span is not None:
            span.add_event(
                event.type.value,
                {
                    attr.AGENT_RUNTIME_EVENT_SEQ: event.seq,
                    attr.AGENT_RUNTIME_POLICY_DECISION: decision.policy_decision.value,
                    attr.AGENT_RUNTIME_POLICY_REASON_CODE: decision.reason_code or "",
                },
                _ns(event.ts),
            )

    def _approval_requested(self, run: _Run, event: Event) -> None:
        payload = event.payload
        assert isinstance(payload, ApprovalRequestedPayload)
        run.approvals[payload.approval_id] = payload.call.id
        self._metrics.approvals_requested.add(1, run.agent, payload.call.name)
        span = self._tool_span(run, payload.call.id)
        if span is not None:
            span.add_event(
                event.type.value,
                {attr.AGENT_RUNTIME_EVENT_SEQ: event.seq, attr.AGENT_RUNTIME_APPROVAL_ID: payload.approval_id},
                _ns(event.ts),
            )

    def _approval_resolved(self, run: _Run, event: Event) -> None:
        payload = event.payload
        assert isinstance(payload, ApprovalResolvedPayload)
        decision = payload.decision.value
        expired = payload.expired
        self._metrics.approvals_resolved.add(1, run.agent, decision, expired)
        call_id = run.approvals.pop(payload.approval_id, None) or event.tool_call_id
        if call_id is None:
            return
        if decision == "deny":
            run.denied.add(call_id)
        span = self._tool_span(run, call_id)
        if span is not None:
            span.add_event(
                event.type.value,
                {
                    attr.AGENT_RUNTIME_EVENT_SEQ: event.seq,
                    attr.AGENT_RUNTIME_APPROVAL_ID: payload.approval_id,
                    attr.AGENT_RUNTIME_APPROVAL_DECISION: decision,
                    attr.AGENT_RUNTIME_APPROVAL_EXPIRED: expired,
                },
                _ns(event.ts),
            )

    # -- context and delegation ---------------------------------------------------------------------------

    def _context_compacted(self, run: _Run, event: Event) -> None:
        payload = event.payload
        assert isinstance(payload, ContextCompactedPayload)
        saved = max(0, payload.tokens_before - payload.tokens_after)
        self._metrics.compactions.add(1, run.agent, payload.strategy)
        self._metrics.compaction_tokens_saved.add(saved, run.agent, payload.strategy)
        if run.recording:
            run.span.add_event(
                event.type.value,
                {
                    attr.AGENT_RUNTIME_EVENT_SEQ: event.seq,
                    attr.AGENT_RUNTIME_COMPACTION_STRATEGY: payload.strategy,
                    "agent_runtime.compaction.tokens_before": payload.tokens_before,
                    "agent_runtime.compaction.tokens_after": payload.tokens_after,
                },
                _ns(event.ts),
            )

    def _subagent_spawned(self, run: _Run, event: Event) -> None:
        payload = event.payload
        assert isinstance(payload, SubagentSpawnedPayload)
        if not run.recording:
            return
        tool_span = self._tool_span(run, event.tool_call_id)
        parent = trace.set_span_in_context(tool_span) if tool_span is not None else run.context
        if parent is not None:
            self._parents[payload.child_run_id] = parent
            if len(self._parents) > self._max_open_runs:  # children that never start here
                del self._parents[next(iter(self._parents))]
        run.span.add_event(
            event.type.value,
            {attr.AGENT_RUNTIME_EVENT_SEQ: event.seq, "agent_runtime.subagent.run_id": payload.child_run_id},
            _ns(event.ts),
        )
