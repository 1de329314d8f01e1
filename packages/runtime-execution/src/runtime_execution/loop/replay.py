"""Offline replay: re-drive a recorded run and report the first decision that differs.

The model's replies come from the run log (a `RecordedProvider`) unless other providers are given (a
changed scenario, say), every tool result is fed back from the log — replay never runs a tool — and
recorded approval answers are given again. The policy, the tool set and the loop itself are today's,
so a change in any of them shows up as a divergence: the first decision (a tool call, a policy decision,
an approval request, a tool outcome, the end of the run) that is not what the log says.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue

from runtime_core.approvals import Approval, ApprovalResolution
from runtime_core.checkpoints import Checkpoint
from runtime_core.clock import Clock
from runtime_core.events import (
    ApprovalRequestedPayload,
    ApprovalResolvedPayload,
    CompletionRecordedPayload,
    Event,
    EventDraft,
    EventType,
    PolicyDecidedPayload,
    RecoveryStartedPayload,
    RunCompletedPayload,
    RunFailedPayload,
    ToolCalledPayload,
    ToolFailedPayload,
    ToolFinishedPayload,
)
from runtime_core.exceptions import AlreadyExistsError, FencingError, NotFoundError, ToolExecutionError
from runtime_core.runs import Run, RunStatus
from runtime_core.stores import Lease, LoadedRun
from runtime_core.tools import ToolContext, ToolResult, ToolSpec

__all__ = [
    "DECISION_TYPES",
    "REPLAYED_TYPES",
    "Decision",
    "DecisionLog",
    "Divergence",
    "ReplayReport",
    "ResumeRepeats",
    "compare_decisions",
    "decisions",
]


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision of a run, as replay compares it: what happened, without timestamps or ids."""

    turn: int
    kind: str
    detail: dict[str, JsonValue]
    seq: int | None = None

    def describe(self) -> str:
        """A one-line rendering for reports."""
        fields = ", ".join(f"{key}={value!r}" for key, value in self.detail.items())
        return f"turn {self.turn}: {self.kind}({fields})"


class Divergence(BaseModel):
    """Where a replay first differs from the log."""

    model_config = ConfigDict(frozen=True)

    index: int
    seq: int | None
    turn: int
    expected: str | None
    actual: str | None


class ReplayReport(BaseModel):
    """The outcome of a replay: identical, or the first divergence."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    replay_run_id: str
    identical: bool
    decisions: int
    divergence: Divergence | None = None


_Found = tuple[str, dict[str, JsonValue]]


def _tool_called(payload: ToolCalledPayload) -> _Found:
    return "tool.called", {"name": payload.call.name, "arguments": payload.call.arguments}


def _policy_decided(payload: PolicyDecidedPayload) -> _Found:
    decision = payload.decision
    return "policy.decided", {
        "tool": payload.tool_name,
        "decision": decision.policy_decision.value,
        "rule": decision.policy_rule_id,
    }


def _approval_requested(payload: ApprovalRequestedPayload) -> _Found:
    return "approval.requested", {"tool": payload.call.name, "reason": payload.reason_code}


def _approval_resolved(payload: ApprovalResolvedPayload) -> _Found:
    return "approval.resolved", {"decision": payload.decision.value}


def _tool_finished(payload: ToolFinishedPayload) -> _Found:
    return "tool.outcome", {"tool": payload.result.tool_name, "error": None}


def _tool_failed(payload: ToolFailedPayload) -> _Found | None:
    if payload.will_retry:
        return None
    return "tool.outcome", {"tool": payload.result.tool_name, "error": payload.error.code.value}


def _recovery_started(payload: RecoveryStartedPayload) -> _Found:
    return "recovery.started", {"trigger": payload.trigger}


def _completion_recorded(payload: CompletionRecordedPayload) -> _Found:
    return "completion.recorded", {"summary": payload.summary}


def _run_completed(payload: RunCompletedPayload) -> _Found:
    return "run.completed", {}


def _run_failed(payload: RunFailedPayload) -> _Found:
    return "run.failed", {"reason": payload.reason}


_DECISIONS: dict[type[BaseModel], Callable[[Any], _Found | None]] = {
    ToolCalledPayload: _tool_called,
    PolicyDecidedPayload: _policy_decided,
    ApprovalRequestedPayload: _approval_requested,
    ApprovalResolvedPayload: _approval_resolved,
    ToolFinishedPayload: _tool_finished,
    ToolFailedPayload: _tool_failed,
    RecoveryStartedPayload: _recovery_started,
    CompletionRecordedPayload: _completion_recorded,
    RunCompletedPayload: _run_completed,
    RunFailedPayload: _run_failed,
}
"""What replay compares of each payload class that records a decision (one dict lookup skips every other event,
most of a log); a ``tool.failed`` that will be retried is not one."""
_OUTCOME_TYPES = frozenset({EventType.TOOL_FINISHED, EventType.TOOL_FAILED})
_APPROVAL_TYPES = frozenset({EventType.APPROVAL_REQUESTED, EventType.APPROVAL_RESOLVED})
DECISION_TYPES: frozenset[EventType] = frozenset(EventType(cls.model_fields["type"].default) for cls in _DECISIONS)
"""The event types that record decisions (what `decisions` reads of a log)."""
REPLAYED_TYPES: frozenset[EventType] = frozenset(
    {EventType.RUN_CREATED, EventType.MODEL_RESPONDED, *DECISION_TYPES}  # outcomes and approvals are decisions
)
"""The event types a replay reads of the log it replays: the run's start, the model's replies, the tools'
outcomes, the approval answers and the decisions to compare (most of a log is none of these)."""


class ResumeRepeats:
    """Recognises the decisions a resumed run makes again.

    A run resumed in the middle of a turn (it waited for an approval, or crashed) decides that turn's
    pending calls again and asks again under the same approval ids. Those repeats are not new decisions:
    a replay, which never stops, makes each once, and a progress view shows each once. A decision event
    (``policy.decided``, ``approval.requested``) is a repeat when one of its type was recorded for the same
    tool call before.
    """

    _KINDS = frozenset({EventType.POLICY_DECIDED, EventType.APPROVAL_REQUESTED})

    def __init__(self) -> None:
        self._seen: set[tuple[EventType, str]] = set()

    def is_repeat(self, event: Event) -> bool:
        """Whether `event` repeats a decision already seen (it is remembered otherwise)."""
        if event.type not in self._KINDS or event.tool_call_id is None:
            return False
        key = (event.type, event.tool_call_id)
        if key in self._seen:
            return True
        self._seen.add(key)
        return False


_Step = tuple[int, str, dict[str, JsonValue], int]
"""A decision as `compare_decisions` reads it: ``(turn, kind, detail, seq)``. A tuple, not a `Decision`:
replay reads one per decision of both logs (three a turn), and a `Decision` is made only for a report."""


class _Decisions:
    """Collects the decisions of a log as its events come, without a resumed turn's repeats (`ResumeRepeats`)."""

    __slots__ = ("_repeats", "steps")

    def __init__(self) -> None:
        self._repeats = ResumeRepeats()
        self.steps: list[_Step] = []

    def add(self, events: Iterable[Event]) -> None:
        """Take the decisions recorded in `events` (the next events of the log, in order)."""
        repeats, steps = self._repeats, self.steps
        for event in events:
            extract = _DECISIONS.get(type(event.payload))
            if extract is None or repeats.is_repeat(event):
                continue
            found = extract(event.payload)
            if found is not None:
                steps.append((event.turn, found[0], found[1], event.seq))


def _steps(events: Iterable[Event]) -> list[_Step]:
    """The decisions recorded in `events`, in order, without a resumed turn's repeats (`ResumeRepeats`)."""
    collected = _Decisions()
    collected.add(events)
    return collected.steps


def decisions(events: Sequence[Event]) -> list[Decision]:
    """The decisions recorded in a run log, in order, without a resumed turn's repeats (`ResumeRepeats`)."""
    return [Decision(turn=turn, kind=kind, detail=detail, seq=seq) for turn, kind, detail, seq in _steps(events)]


def compare_decisions(recorded: Sequence[Event], replayed: Sequence[Event]) -> tuple[int, Divergence | None]:
    """The number of decisions `recorded` holds, and where `replayed`'s first differ (``None`` if nowhere).

    Two decisions are the same when their turn, kind and detail are; the ``seq`` reported is the recorded
    decision's.
    """
    return _compare(_steps(recorded), _steps(replayed))


def _compare(expected: list[_Step], actual: list[_Step]) -> tuple[int, Divergence | None]:
    for index, (left, right) in enumerate(zip(expected, actual, strict=False)):  # the lengths are compared after
        if left[0] != right[0] or left[1] != right[1] or left[2] != right[2]:
            return len(expected), _divergence(index, left, right)
    if len(expected) == len(actual):
        return len(expected), None
    index = min(len(expected), len(actual))  # one log goes on where the other ended
    left_over = expected[index] if index < len(expected) else None
    return len(expected), _divergence(index, left_over, actual[index] if left_over is None else None)


def _divergence(index: int, expected: _Step | None, actual: _Step | None) -> Divergence:
    left = None if expected is None else Decision(*expected)
    right = None if actual is None else Decision(*actual)
    shown = left or right
    assert shown is not None  # a divergence has a decision on at least one side
    return Divergence(
        index=index,
        seq=None if left is None else left.seq,
        turn=shown.turn,
        expected=None if left is None else left.describe(),
        actual=None if right is None else right.describe(),
    )


class DecisionLog:
    """The run store of a replay's scratch run: it records the decisions of the run, and nothing else.

    Replay re-drives a run only to compare its decisions with the log's, then drops the run. A full store
    (`InMemoryRunStore`) would keep every event and checkpoint until then for nobody to read; on a 500-turn
    run that cost about a seventh of the replay's time (the collector walks what is kept, and all of it is
    freed at the end) and memory in proportion to the run. This store holds one run and its lease as any store does
    (an append under a stale lease is refused) and places each boundary's events as a store does (``seq``
    dense from 1, the writer's ids kept), takes their decisions and drops them, and drops checkpoints
    unread. Since it keeps no run to read back, reads find none: `get_run`, `read_events` and `load` raise
    `NotFoundError` and `list_runs` is empty.

    Args:
        clock: Time source for lease expiry.
    """

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self._run_id: str | None = None
        self._lease: Lease | None = None
        self._token = 0
        self._last_seq = 0
        self._decisions = _Decisions()

    def compare(self, recorded: Sequence[Event]) -> tuple[int, Divergence | None]:
        """Compare the decisions recorded in `recorded` with this run's (see `compare_decisions`)."""
        return _compare(_steps(recorded), self._decisions.steps)

    async def create_run(self, run_id: str, created: EventDraft) -> Run:
        """Create the run (the only one) from its ``run.created`` draft."""
        if created.type is not EventType.RUN_CREATED:
            raise ValueError(f"a run is created by a run.created draft, not {created.type.value}")
        if self._run_id is not None:
            raise AlreadyExistsError("run", run_id)
        self._run_id = run_id
        event = Event.placed(created, run_id=run_id, seq=1)
        self._last_seq = 1
        return Run.created(event)

    async def acquire_lease(self, run_id: str, owner: str, *, ttl: timedelta, steal: bool = False) -> Lease:
        """Take or renew the run's lease with a new fencing token (its one writer is the scratch run)."""
        self._check_run(run_id)
        self._token += 1
        self._lease = Lease(run_id=run_id, owner=owner, token=self._token, expires_at=self._clock.now() + ttl)
        return self._lease

    async def release_lease(self, lease: Lease) -> None:
        """Drop `lease` if it is still the current one."""
        if self._lease is not None and self._lease.token == lease.token:
            self._lease = None

    async def append(
        self, lease: Lease, events: Sequence[EventDraft], checkpoint: Checkpoint | None = None
    ) -> Sequence[Event]:
        """Place one boundary's events, take their decisions and drop them (and `checkpoint`)."""
        self._check_run(lease.run_id)
        if self._lease is None or self._lease.token != lease.token:
            raise FencingError(run_id=lease.run_id, token=lease.token, current_token=self._token)
        placed = Event.placed_all(events, run_id=lease.run_id, after_seq=self._last_seq)
        self._last_seq += len(placed)
        self._decisions.add(placed)
        return placed

    async def get_run(self, run_id: str) -> Run:
        """Raise `NotFoundError`: no run is kept to read back."""
        raise NotFoundError("run", run_id)

    async def list_runs(self, *, status: RunStatus | None = None, limit: int = 100) -> Sequence[Run]:
        """Return no runs: none is kept to read back."""
        return ()

    async def read_events(
        self,
        run_id: str,
        *,
        after_seq: int = 0,
        limit: int | None = None,
        types: Collection[str] | None = None,
    ) -> Sequence[Event]:
        """Raise `NotFoundError`: no run is kept to read back."""
        raise NotFoundError("run", run_id)

    async def load(self, run_id: str, *, at_turn: int | None = None) -> LoadedRun:
        """Raise `NotFoundError`: no run is kept to read back."""
        raise NotFoundError("run", run_id)

    def _check_run(self, run_id: str) -> None:
        if run_id != self._run_id:
            raise NotFoundError("run", run_id)


class ReplayedTool:
    """A tool that answers from the log instead of running: replay never has effects."""

    def __init__(self, spec: ToolSpec, outcomes: Mapping[str, ToolResult]) -> None:
        self._spec = spec
        self._outcomes = outcomes

    @property
    def spec(self) -> ToolSpec:
        """The original tool's specification."""
        return self._spec

    async def invoke(self, arguments: Mapping[str, Any], context: ToolContext) -> JsonValue:
        """Return the recorded result of this call, or raise its recorded failure."""
        recorded = self._outcomes.get(context.tool_call_id)
        if recorded is None:
            raise ToolExecutionError(
                f"replay: the log holds no result for {self._spec.name} call {context.tool_call_id!r}; "
                "replay never runs tools",
                code="EXECUTION_FAILED",
            )
        if recorded.error is not None:
            raise ToolExecutionError(
                recorded.error.message, code=recorded.error.code.value, details=dict(recorded.error.details)
            )
        return recorded.data if recorded.data is not None else recorded.content


class ReplayedApprovals:
    """An approval handler that gives the recorded answers again (and denies what the log never answered)."""

    def __init__(self, events: Sequence[Event]) -> None:
        approvals = [e for e in events if e.type in _APPROVAL_TYPES]
        calls = {
            e.payload.approval_id: e.tool_call_id for e in approvals if isinstance(e.payload, ApprovalRequestedPayload)
        }
        self._answers = {
            calls.get(e.payload.approval_id): e.payload
            for e in approvals
            if isinstance(e.payload, ApprovalResolvedPayload)
        }

    async def decide(self, approval: Approval) -> ApprovalResolution | None:
        """Return the recorded answer for the same tool call, or ``None`` (the replayed run then waits)."""
        answer = self._answers.get(approval.tool_call.id)
        return None if answer is None else answer.resolution(approval.id)


def recorded_outcomes(events: Sequence[Event]) -> dict[str, ToolResult]:
    """The final result of every tool call in a run log, by call id."""
    outcomes: dict[str, ToolResult] = {}
    for event in events:
        if event.type not in _OUTCOME_TYPES:
            continue
        payload = event.payload
        if isinstance(payload, ToolFinishedPayload) or (
            isinstance(payload, ToolFailedPayload) and not payload.will_retry
        ):
            outcomes[payload.result.tool_call_id] = payload.result
    return outcomes
