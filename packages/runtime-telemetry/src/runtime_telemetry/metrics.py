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
from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, NoOpMeterProvider, Observation
from opentelemetry.util.types import AttributeValue

from runtime_telemetry import attributes as attr
from runtime_telemetry._scope import SCOPE_NAME, SCOPE_VERSION

__all__ = ["METRIC_CATALOGUE", "InstrumentKind", "MetricDefinition", "RuntimeMetrics", "Tally"]


class InstrumentKind(StrEnum):
    """The OpenTelemetry instrument a catalogue entry uses.

    Counters are observable: the bridge adds to plain Python numbers (a dictionary update) and the SDK
    reads the cumulative values when it collects, so a counted event costs next to nothing even with an
    SDK installed. Histograms are synchronous instruments, as the GenAI conventions define them.
    """

    HISTOGRAM = "histogram"
    COUNTER = "observable_counter"
    UP_DOWN_COUNTER = "observable_up_down_counter"
    GAUGE = "observable_gauge"


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
_MODEL: Final = (attr.GEN_AI_OPERATION_NAME, attr.GEN_AI_PROVIDER_NAME, attr.GEN_AI_REQUEST_MODEL)

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
TOOL_CALLS: Final = MetricDefinition(
    "agent_runtime.tool.calls",
    InstrumentKind.COUNTER,
    "{call}",
    "Tool calls ended, by outcome (success, error, denied).",
    (attr.GEN_AI_AGENT_NAME, attr.GEN_AI_TOOL_NAME, attr.AGENT_RUNTIME_TOOL_OUTCOME),
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
    InstrumentKind.GAUGE,
    "{item}",
    "Items waiting in a work queue, read when metrics are collected.",
    (attr.AGENT_RUNTIME_QUEUE_NAME,),
)

METRIC_CATALOGUE: Final[tuple[MetricDefinition, ...]] = (
    TOKEN_USAGE,
    OPERATION_DURATION,
    TURNS,
    TOOL_CALLS,
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


class Tally:
    """A counter kept as plain cumulative numbers and reported by an observable instrument.

    ``add`` updates a dictionary under a lock (well under a microsecond); the SDK reads the totals when
    it collects (a Prometheus scrape, an export interval). Without an SDK nothing reads them, and the
    bridge does not count the runs of which nothing records (see `RuntimeMetrics.recording`).

    Args:
        definition: The catalogue entry; its ``attributes`` name the values passed to `add`, in order.
        meter: The meter that creates the observable instrument.
    """

    __slots__ = ("_lock", "_names", "_values", "definition")

    def __init__(self, definition: MetricDefinition, meter: Meter) -> None:
        self.definition = definition
        self._names = definition.attributes
        self._values: dict[tuple[AttributeValue, ...], float] = {}
        self._lock = threading.Lock()
        create = (
            meter.create_observable_up_down_counter
            if definition.kind is InstrumentKind.UP_DOWN_COUNTER
            else meter.create_observable_counter
        )
        create(definition.name, [self._observe], definition.unit, definition.description)

    def add(self, amount: float, *values: AttributeValue) -> None:
        """Add `amount` (negative only for up-down counters) to the series of attribute `values`.

        Args:
            amount: The increment.
            *values: One value per name of ``definition.attributes``, in that order.
        """
        self.add_to(amount, values)

    def add_to(self, amount: float, key: tuple[AttributeValue, ...]) -> None:
        """Like `add`, with the attribute values already in a tuple (which callers can build once).

        Args:
            amount: The increment.
            key: One value per name of ``definition.attributes``, in that order.
        """
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def value(self, *values: AttributeValue) -> float:
        """The current total of the series of attribute `values` (0 if never added to)."""
        with self._lock:
            return self._values.get(values, 0)

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            series = list(self._values.items())
        names = self._names
        return [Observation(total, dict(zip(names, key, strict=True))) for key, total in series]


class RuntimeMetrics:
    """The instruments of the catalogue, created once from one meter.

    The bridge records run-log metrics through it; workers register their queues with
    [`watch_queue`][runtime_telemetry.RuntimeMetrics.watch_queue]. Create one per meter provider: two
    would report the same observable series twice.

    Args:
        meter_provider: Where the instruments come from; the global meter provider (looked up now)
            when ``None``. Without an SDK it is a no-op and recording costs next to nothing.
    """

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        self._provider = provider
        # The API's own providers (its no-op one, its global proxy) are the only ones defined in its package.
        self._api_provider = f"{type(provider).__module__}.".startswith("opentelemetry.metrics.")
        meter = provider.get_meter(SCOPE_NAME, SCOPE_VERSION)
        self.token_usage = _histogram(meter, TOKEN_USAGE)
        """``gen_ai.client.token.usage``."""
        self.operation_duration = _histogram(meter, OPERATION_DURATION)
        """``gen_ai.client.operation.duration``."""
        self.turns = Tally(TURNS, meter)
        """``agent_runtime.turns``."""
        self.tool_calls = Tally(TOOL_CALLS, meter)
        """``agent_runtime.tool.calls``."""
        self.policy_denials = Tally(POLICY_DENIALS, meter)
        """``agent_runtime.policy.denials``."""
        self.approvals_requested = Tally(APPROVALS_REQUESTED, meter)
        """``agent_runtime.approvals.requested``."""
        self.approvals_resolved = Tally(APPROVALS_RESOLVED, meter)
        """``agent_runtime.approvals.resolved``."""
        self.compactions = Tally(COMPACTIONS, meter)
        """``agent_runtime.compactions``."""
        self.compaction_tokens_saved = Tally(COMPACTION_TOKENS_SAVED, meter)
        """``agent_runtime.compaction.tokens_saved``."""
        self.cache_hits = Tally(CACHE_HITS, meter)
        """``agent_runtime.cache.hits``."""
        self.cost = Tally(COST, meter)
        """``agent_runtime.cost``."""
        self.runs = Tally(RUNS, meter)
        """``agent_runtime.runs``."""
        self.active_runs = Tally(ACTIVE_RUNS, meter)
        """``agent_runtime.runs.active``."""
        self.errors = Tally(ERRORS, meter)
        """``agent_runtime.errors``."""
        self._queues: dict[str, Callable[[], int]] = {}
        self._queues_lock = threading.Lock()
        meter.create_observable_gauge(
            QUEUE_DEPTH.name, [self._observe_queues], QUEUE_DEPTH.unit, QUEUE_DEPTH.description
        )

    @property
    def recording(self) -> bool:
        """Whether measurements reach a meter provider that records them, as of now.

        False while the meter provider is the OpenTelemetry API's own: its no-op provider, or the global
        proxy before an application installs an SDK (``metrics.set_meter_provider``; from then on the
        proxy's instruments delegate to it, and this is True). The bridge asks once per run.
        """
        if not self._api_provider:
            return True
        return not isinstance(self._provider, NoOpMeterProvider) and metrics.get_meter_provider() is not self._provider

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


def _histogram(meter: Meter, definition: MetricDefinition) -> Histogram:
    return meter.create_histogram(
        definition.name,
        definition.unit,
        definition.description,
        explicit_bucket_boundaries_advisory=definition.buckets,
    )
