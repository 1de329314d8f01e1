"""The metric catalogue and the instruments that record it.

Two histograms follow the OpenTelemetry GenAI conventions (``gen_ai.client.token.usage`` and
``gen_ai.client.operation.duration``, with their advisory bucket boundaries); the others implement the
spec's catalogue (track H: turns, tool calls by outcome, policy denials, approvals, compaction savings,
cache hits, active runs, queue depth) under the ``agent_runtime.`` prefix. A Prometheus exporter turns
the dots into underscores and adds ``_total`` to counters (``agent_runtime_tool_calls_total``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from runtime_telemetry import attributes as attr
from runtime_telemetry._scope import SCOPE_NAME, SCOPE_VERSION

__all__ = ["METRIC_CATALOGUE", "InstrumentKind", "MetricDefinition", "RuntimeMetrics"]


class InstrumentKind(StrEnum):
    """The OpenTelemetry instrument a catalogue entry uses."""

    COUNTER = "counter"
    UP_DOWN_COUNTER = "updowncounter"
    HISTOGRAM = "histogram"
    OBSERVABLE_GAUGE = "observable_gauge"


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """One metric of the catalogue.

    Attributes:
        name: Instrument name (OpenTelemetry style, dot separated).
        kind: Instrument kind.
        unit: UCUM unit (``s``, ``{token}``, ``USD``...).
        description: What one measurement means.
        attributes: The attribute names its measurements carry.
        buckets: Advisory explicit bucket boundaries (histograms only).
    """

    name: str
    kind: InstrumentKind
    unit: str
    description: str
    attributes: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None


# Advisory boundaries from the GenAI metric conventions.
_TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
# Tools and turns are often far quicker than a model call: start at a millisecond.
_SHORT_DURATION_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_MODEL: Final = (
    attr.GEN_AI_OPERATION_NAME,
    attr.GEN_AI_PROVIDER_NAME,
    attr.GEN_AI_REQUEST_MODEL,
    attr.GEN_AI_RESPONSE_MODEL,
)

TOKEN_USAGE: Final = MetricDefinition(
    "gen_ai.client.token.usage",
    InstrumentKind.HISTOGRAM,
    "{token}",
    "Input and output tokens per model call.",
    (*_MODEL, attr.GEN_AI_TOKEN_TYPE),
    tuple(float(b) for b in _TOKEN_BUCKETS),
)
OPERATION_DURATION: Final = MetricDefinition(
    "gen_ai.client.operation.duration",
    InstrumentKind.HISTOGRAM,
    "s",
    "Duration of a model call.",
    (*_MODEL, attr.ERROR_TYPE),
    _DURATION_BUCKETS,
)
TURNS: Final = MetricDefinition(
    "agent_runtime.turns",
    InstrumentKind.COUNTER,
    "{turn}",
    "Turns finished.",
    (attr.GEN_AI_AGENT_NAME, attr.AGENT_RUNTIME_RECOVERY),
)
TURN_DURATION: Final = MetricDefinition(
    "agent_runtime.turn.duration",
    InstrumentKind.HISTOGRAM,
    "s",
    "Duration of a turn (model call, tools and commits).",
    (attr.GEN_AI_AGENT_NAME,),
    _SHORT_DURATION_BUCKETS,
)
TOOL_CALLS: Final = MetricDefinition(
    "agent_runtime.tool.calls",
    InstrumentKind.COUNTER,
    "{call}",
    "Tool calls ended, by outcome (success, error, denied).",
    (attr.GEN_AI_AGENT_NAME, attr.GEN_AI_TOOL_NAME, attr.AGENT_RUNTIME_TOOL_OUTCOME),
)
TOOL_DURATION: Final = MetricDefinition(
    "agent_runtime.tool.duration",
    InstrumentKind.HISTOGRAM,
    "s",
    "Execution time of a tool call, as the tool pipeline measured it.",
    (attr.GEN_AI_AGENT_NAME, attr.GEN_AI_TOOL_NAME, attr.AGENT_RUNTIME_TOOL_OUTCOME),
    _SHORT_DURATION_BUCKETS,
)
POLICY_DENIALS: Final = MetricDefinition(
    "agent_runtime.policy.denials",
    InstrumentKind.COUNTER,
    "{decision}",
    "Tool calls the policy engine denied.",
    (attr.GEN_AI_AGENT_NAME, attr.GEN_AI_TOOL_NAME),
)
APPROVALS_REQUESTED: Final = MetricDefinition(
    "agent_runtime.approvals.requested",
    InstrumentKind.COUNTER,
    "{request}",
    "Approval requests opened.",
    (attr.GEN_AI_AGENT_NAME, attr.GEN_AI_TOOL_NAME),
)
APPROVALS_RESOLVED: Final = MetricDefinition(
    "agent_runtime.approvals.resolved",
    InstrumentKind.COUNTER,
    "{request}",
    "Approval requests answered, by decision (an expired request is a deny).",
    (attr.GEN_AI_AGENT_NAME, attr.AGENT_RUNTIME_APPROVAL_DECISION, attr.AGENT_RUNTIME_APPROVAL_EXPIRED),
)
COMPACTIONS: Final = MetricDefinition(
    "agent_runtime.compactions",
    InstrumentKind.COUNTER,
    "{compaction}",
    "Context compactions.",
    (attr.GEN_AI_AGENT_NAME, attr.AGENT_RUNTIME_COMPACTION_STRATEGY),
)
COMPACTION_TOKENS_SAVED: Final = MetricDefinition(
    "agent_runtime.compaction.tokens_saved",
    InstrumentKind.COUNTER,
    "{token}",
    "Tokens removed from the context by compaction (before minus after).",
    (attr.GEN_AI_AGENT_NAME, attr.AGENT_RUNTIME_COMPACTION_STRATEGY),
)
CACHE_HITS: Final = MetricDefinition(
    "agent_runtime.cache.hits",
    InstrumentKind.COUNTER,
    "{hit}",
    "Tool results served from the tool-result cache.",
    (attr.AGENT_RUNTIME_CACHE_NAME, attr.GEN_AI_TOOL_NAME),
)
COST: Final = MetricDefinition(
    "agent_runtime.cost",
    InstrumentKind.COUNTER,
    "USD",
    "Cost of model calls in USD (as priced by the model catalog).",
    (attr.GEN_AI_PROVIDER_NAME, attr.GEN_AI_REQUEST_MODEL),
)
RUNS: Final = MetricDefinition(
    "agent_runtime.runs",
    InstrumentKind.COUNTER,
    "{run}",
    "Runs ended, by status (completed, failed, cancelled).",
    (attr.GEN_AI_AGENT_NAME, attr.AGENT_RUNTIME_RUN_STATUS),
)
ACTIVE_RUNS: Final = MetricDefinition(
    "agent_runtime.runs.active",
    InstrumentKind.UP_DOWN_COUNTER,
    "{run}",
    "Runs started and not yet ended, as seen by this process.",
    (attr.GEN_AI_AGENT_NAME,),
)
ERRORS: Final = MetricDefinition(
    "agent_runtime.errors",
    InstrumentKind.COUNTER,
    "{error}",
    "Error events in run logs.",
    (attr.AGENT_RUNTIME_ERROR_CODE,),
)
QUEUE_DEPTH: Final = MetricDefinition(
    "agent_runtime.queue.depth",
    InstrumentKind.OBSERVABLE_GAUGE,
    "{item}",
    "Items waiting in a work queue, read when metrics are collected.",
    (attr.AGENT_RUNTIME_QUEUE_NAME,),
)

METRIC_CATALOGUE: Final[tuple[MetricDefinition, ...]] = (
    TOKEN_USAGE,
    OPERATION_DURATION,
    TURNS,
    TURN_DURATION,
    TOOL_CALLS,
    TOOL_DURATION,
    POLICY_DENIALS,
    APPROVALS_REQUESTED,
    APPROVALS_RESOLVED,
    COMPACTIONS,
    COMPACTION_TOKENS_SAVED,
    CACHE_HITS,
    COST,
    RUNS,
    ACTIVE_RUNS,
    ERRORS,
    QUEUE_DEPTH,
)
"""Every metric Agent Runtime records, in the order of the documentation's table."""


class RuntimeMetrics:
    """The instruments of the catalogue, created once from one meter.

    The bridge records run-log metrics through it; workers register their queues with
    [`watch_queue`][runtime_telemetry.RuntimeMetrics.watch_queue].

    Args:
        meter_provider: Where the instruments come from; the global meter provider (looked up now)
            when ``None``. Without an SDK it is a no-op and recording costs next to nothing.
    """

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        meter = metrics.get_meter(SCOPE_NAME, SCOPE_VERSION, meter_provider)
        self.token_usage = meter.create_histogram(
            TOKEN_USAGE.name,
            TOKEN_USAGE.unit,
            TOKEN_USAGE.description,
            explicit_bucket_boundaries_advisory=TOKEN_USAGE.buckets,
        )
        """``gen_ai.client.token.usage``."""
        self.operation_duration = meter.create_histogram(
            OPERATION_DURATION.name,
            OPERATION_DURATION.unit,
            OPERATION_DURATION.description,
            explicit_bucket_boundaries_advisory=OPERATION_DURATION.buckets,
        )
        """``gen_ai.client.operation.duration``."""
        self.turns = meter.create_counter(TURNS.name, TURNS.unit, TURNS.description)
        """``agent_runtime.turns``."""
        self.turn_duration = meter.create_histogram(
            TURN_DURATION.name,
            TURN_DURATION.unit,
            TURN_DURATION.description,
            explicit_bucket_boundaries_advisory=TURN_DURATION.buckets,
        )
        """``agent_runtime.turn.duration``."""
        self.tool_calls = meter.create_counter(TOOL_CALLS.name, TOOL_CALLS.unit, TOOL_CALLS.description)
        """``agent_runtime.tool.calls``."""
        self.tool_duration = meter.create_histogram(
            TOOL_DURATION.name,
            TOOL_DURATION.unit,
            TOOL_DURATION.description,
            explicit_bucket_boundaries_advisory=TOOL_DURATION.buckets,
        )
        """``agent_runtime.tool.duration``."""
        self.policy_denials = meter.create_counter(POLICY_DENIALS.name, POLICY_DENIALS.unit, POLICY_DENIALS.description)
        """``agent_runtime.policy.denials``."""
        self.approvals_requested = meter.create_counter(
            APPROVALS_REQUESTED.name, APPROVALS_REQUESTED.unit, APPROVALS_REQUESTED.description
        )
        """``agent_runtime.approvals.requested``."""
        self.approvals_resolved = meter.create_counter(
            APPROVALS_RESOLVED.name, APPROVALS_RESOLVED.unit, APPROVALS_RESOLVED.description
        )
        """``agent_runtime.approvals.resolved``."""
        self.compactions = meter.create_counter(COMPACTIONS.name, COMPACTIONS.unit, COMPACTIONS.description)
        """``agent_runtime.compactions``."""
        self.compaction_tokens_saved = meter.create_counter(
            COMPACTION_TOKENS_SAVED.name, COMPACTION_TOKENS_SAVED.unit, COMPACTION_TOKENS_SAVED.description
        )
        """``agent_runtime.compaction.tokens_saved``."""
        self.cache_hits = meter.create_counter(CACHE_HITS.name, CACHE_HITS.unit, CACHE_HITS.description)
        """``agent_runtime.cache.hits``."""
        self.cost = meter.create_counter(COST.name, COST.unit, COST.description)
        """``agent_runtime.cost``."""
        self.runs = meter.create_counter(RUNS.name, RUNS.unit, RUNS.description)
        """``agent_runtime.runs``."""
        self.active_runs = meter.create_up_down_counter(ACTIVE_RUNS.name, ACTIVE_RUNS.unit, ACTIVE_RUNS.description)
        """``agent_runtime.runs.active``."""
        self.errors = meter.create_counter(ERRORS.name, ERRORS.unit, ERRORS.description)
        """``agent_runtime.errors``."""
        self._queues: dict[str, Callable[[], int]] = {}
        self._queues_lock = threading.Lock()
        meter.create_observable_gauge(
            QUEUE_DEPTH.name, [self._observe_queues], QUEUE_DEPTH.unit, QUEUE_DEPTH.description
        )

    def watch_queue(self, name: str, depth: Callable[[], int]) -> Callable[[], None]:
        """Report the depth of a work queue as ``agent_runtime.queue.depth{agent_runtime.queue.name=name}``.

        `depth` is called when metrics are collected (a Prometheus scrape, an export interval), from the
        collecting thread: it must be quick and thread-safe (``queue.qsize``, ``len`` of a deque).

        Args:
            name: The queue's name; watching a name again replaces its source.
            depth: Returns the number of items waiting.

        Returns:
            A function that stops watching the queue.
        """
        with self._queues_lock:
            self._queues[name] = depth

        def unwatch() -> None:
            with self._queues_lock:
                if self._queues.get(name) is depth:
                    del self._queues[name]

        return unwatch

    def _observe_queues(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._queues_lock:
            queues = list(self._queues.items())
        return [Observation(depth(), {attr.AGENT_RUNTIME_QUEUE_NAME: name}) for name, depth in queues]
