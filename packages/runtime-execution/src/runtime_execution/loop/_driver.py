"""The turn executor: drives one run turn by turn and writes its run log.

One turn = (recovery check) → model call → outcome handling → tools → observation. The log is written in
at most two commits per turn in the common case: a write-ahead commit right before the first tool with
effects runs, and the turn-end commit with the turn's final checkpoint.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, NoReturn

from pydantic import JsonValue, ValidationError

from runtime_core import trusted
from runtime_core.agents import AgentSpec, ExecutionMode
from runtime_core.approvals import Approval, ApprovalDecision, ApprovalHandler, ApprovalResolution
from runtime_core.budgets import BudgetLevel, BudgetState, BudgetVerdict
from runtime_core.checkpoints import (
    Checkpoint,
    CheckpointDelta,
    CheckpointSnapshot,
    CheckpointState,
    CheckpointStatus,
    TurnDelta,
)
from runtime_core.clock import Clock
from runtime_core.events import (
    ApprovalRequestedPayload,
    ApprovalResolvedPayload,
    BudgetDebitedPayload,
    CheckpointSavedPayload,
    CompletionRecordedPayload,
    ErrorPayload,
    MessageDeliveredPayload,
    ModelRequestedPayload,
    ModelRespondedPayload,
    PolicyDecidedPayload,
    RecoveryStartedPayload,
    RunCancelledPayload,
    RunCompletedPayload,
    RunFailedPayload,
    RunPausedPayload,
    RunResumedPayload,
    ToolCalledPayload,
    ToolFailedPayload,
    ToolFinishedPayload,
    ToolStartedPayload,
    TurnFinishedPayload,
    TurnStartedPayload,
)
from runtime_core.exceptions import NotFoundError, ProviderError, StoreError
from runtime_core.ids import IdGenerator
from runtime_core.messages import AssistantMessage, Message, ToolResultMessage, UserMessage
from runtime_core.messaging import MessageEnvelope, MessageKind
from runtime_core.pipeline import ToolRetryPolicy
from runtime_core.policy import PolicyContext, PolicyDecision, PolicyOutcome
from runtime_core.providers import (
    ModelProvider,
    ModelRequest,
    ModelResponse,
    ResponseComplete,
    StreamChunk,
    TokenCounter,
)
from runtime_core.reasons import TerminalReason, error_reason
from runtime_core.redaction import Redactor
from runtime_core.runs import Run, RunResult, RunStatus
from runtime_core.tools import (
    COMPLETION_TOOL_NAME,
    CompleteTaskInput,
    ReconcilableTool,
    Tool,
    ToolCall,
    ToolContext,
    ToolEffect,
    ToolErrorCode,
    ToolRegistry,
    ToolResult,
    ToolSpec,
    is_completion_tool,
)
from runtime_core.usage import Pricing, Usage
from runtime_execution.loop._deadline import Watchdog, timeout
from runtime_execution.loop._recorder import Recorder
from runtime_execution.loop.control import RunControl
from runtime_execution.loop.pipeline import Screened, ToolPipeline, failed_result, malformed_arguments
from runtime_execution.loop.scheduling import ResourceResolver, plan_groups
from runtime_execution.loop.states import AgentStatus, can_transition
from runtime_telemetry import log_context

__all__ = ["Driver", "DriverConfig"]


class _Cancelled(Exception):
    """The run was cancelled through its control (internal signal)."""


class _OverBudget(Exception):
    """The next model call would exceed the budget (internal signal)."""


_STICKY = "sticky_tools"
"""Checkpoint variable: the tools an approver allowed for the rest of the run."""

_STICKY_ALLOW: dict[str, object] = {
    "requires_confirmation": False,
    "policy_decision": PolicyOutcome.ALLOW,
    "reason": "allowed for the rest of the run by an earlier approval",
}

_WITHIN_BUDGET = BudgetVerdict()

# Immutable values every turn starts with: built once, not per turn.
_NO_USAGE = Usage()
_TURN_STARTED = {recovery: TurnStartedPayload(recovery=recovery) for recovery in (False, True)}

_UNKNOWN_OUTCOME = PolicyDecision(
    allowed=True,
    requires_confirmation=True,
    policy_decision=PolicyOutcome.ALLOW_WITH_CONFIRM,
    reason="the run stopped while this call ran and its tool cannot be repeated safely: run it again?",
    reason_code="unknown_outcome",
)

_ONE_PER_TURN = "interactive mode runs one tool call per turn; this call was not run: ask for it again"

_FAILURE_MEMORY = 100
"""How many failed call signatures a run remembers (the spec's error history)."""


def _signature(call: ToolCall) -> str:
    return call.name + json.dumps(call.arguments, sort_keys=True, separators=(",", ":"))


_BUDGET_WARNING = (
    "Final warning: {reason}. Call complete_task now with a summary of what you did, the artifacts you "
    "produced and the next steps. No other tool is available."
)


@dataclass(frozen=True, slots=True)
class DriverConfig:
    """What every run of one agent loop shares."""

    pipeline: ToolPipeline
    approvals: ApprovalHandler | None
    resources: ResourceResolver
    clock: Clock
    ids: IdGenerator
    snapshot_every: int
    pricing: Pricing | None = None
    tokens: TokenCounter | None = None
    redactor: Redactor | None = None
    retry: ToolRetryPolicy | None = None
    approval_timeout: timedelta | None = None


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a resumed run picks up, read from its log (see `AgentLoop.resume`).

    Attributes:
        recovered: The run already had its recovery turn.
        number: The turn that was in progress, or ``None`` when the last turn finished.
        parent: Turn of the checkpoint before that turn's.
        messages: The messages the turn had added so far (its open checkpoint's delta).
        usage: The turn's model usage so far.
        recovery: The turn is the recovery turn.
        pending: The turn's tool calls without a recorded result, in order.
        started: Ids of pending calls whose ``tool.started`` is recorded: their outcome is unknown.
        approvals: Pending calls with an approval requested and not answered: call id to approval id.
        answered: Pending calls whose approval was answered: call id to the recorded answer.
    """

    recovered: bool = False
    number: int | None = None
    parent: int | None = None
    messages: tuple[Message, ...] = ()
    usage: Usage = field(default_factory=Usage)
    recovery: bool = False
    pending: tuple[ToolCall, ...] = ()
    started: frozenset[str] = frozenset()
    approvals: Mapping[str, str] = field(default_factory=dict)
    answered: Mapping[str, ApprovalResolvedPayload] = field(default_factory=dict)


@dataclass(slots=True)
class _Running:
    """A call recorded as started: whether it began to run, and the task running it (in a group)."""

    call: ToolCall
    ran: bool = False
    task: asyncio.Task[ToolResult] | None = None


@dataclass(slots=True)
class _Turn:
    """Bookkeeping of the turn in progress."""

    number: int
    parent: int | None
    """Turn of the checkpoint this turn's checkpoint follows."""
    started: float
    recovery: bool
    messages: list[Message]
    usage: Usage
    tool_calls: int = 0
    executed: int = 0
    """Tool calls that ran (they count against a budget's ``max_tool_calls``)."""


class Driver:
    """Drives one run from its current state until it ends or must wait.

    Args:
        config: What the loop's runs share.
        run: The run record.
        state: The state to continue from (the initial messages for a new run).
        provider: The model provider for the agent's model.
        tools: The agent's tool view; the completion tool is always reachable.
        completion: The completion tool to use when the view has none.
        recorder: Writes the run log.
        control: The run's signals.
        workspace: Root directory of file and shell tools.
        stream_model: Whether to stream model replies (deltas go to `on_delta`).
        on_delta: Receives stream chunks of the model's reply.
        on_status: Receives every agent status change.
    """

    def __init__(
        self,
        config: DriverConfig,
        run: Run,
        state: CheckpointState,
        *,
        provider: ModelProvider,
        tools: ToolRegistry,
        completion: Tool,
        recorder: Recorder,
        control: RunControl,
        workspace: Path | None,
        stream_model: bool,
        on_delta: Callable[[int, StreamChunk], None],
        on_status: Callable[[AgentStatus], None],
        resume: ResumePoint | None = None,
    ) -> None:
        self._config = config
        self._run = run
        self._agent: AgentSpec = run.agent
        self._provider = provider
        self._model = self._agent.model.partition(":")[2]
        self._tools = tools
        self._completion = tools.get(COMPLETION_TOOL_NAME) or completion
        specs = list(tools.specs())
        if not any(spec.name == self._completion.spec.name for spec in specs):
            specs.append(self._completion.spec)
        self._specs: tuple[ToolSpec, ...] = tuple(specs)
        self._tool_names = tuple(spec.name for spec in specs)
        self._recorder = recorder
        self._control = control
        self._workspace = workspace
        self._stream_model = stream_model
        self._on_delta = on_delta
        self._on_status = on_status
        self._messages: list[Message] = list(state.messages)
        self._usage = state.usage
        self._turn_number = state.turn
        self._checkpoint_turn: int | None = state.turn
        """Turn of the last checkpoint written (or loaded)."""
        self._resume = resume
        self._recovered = resume.recovered if resume is not None else False
        self._approval_ids: dict[str, str] = dict(resume.approvals) if resume is not None else {}
        self._answered: dict[str, ApprovalResolvedPayload] = dict(resume.answered) if resume is not None else {}
        self._last_text: str | None = next(
            (m.content for m in reversed(state.messages) if isinstance(m, AssistantMessage) and m.content), None
        )
        self._turn: _Turn | None = None
        budget = state.budget or (BudgetState(budget=self._agent.budget) if self._agent.budget else None)
        self._budget: BudgetState | None = budget
        self._wall_mark = config.clock.monotonic()
        sticky = state.variables.get(_STICKY)
        self._failed: OrderedDict[str, str] = OrderedDict()
        """Signatures (tool and arguments) of calls that failed when they ran, with the error code."""
        self._attempts: dict[str, int] = {}
        self._sticky: set[str] = (
            {name for name in sticky if isinstance(name, str)} if isinstance(sticky, list) else set()
        )
        """Tools an approver allowed for the rest of the run."""
        self._inflight: list[_Running] = []
        """Calls recorded as started whose outcome is not recorded yet."""
        self._status = AgentStatus.IDLE

    # -- entry -------------------------------------------------------------------------------------------

    async def drive(self) -> RunResult:
        """Run turns until the run completes, fails, is cancelled or waits for an approval."""
        # Log records of the run (the loop's, its tools') carry its id, agent and turn (RunContextFilter).
        with log_context(run_id=self._run.id, agent=self._agent.name):
            return await self._drive()

    async def _drive(self) -> RunResult:
        self._recorder.start_heartbeat()
        watchdog = Watchdog.watch()
        try:
            if self._resume is not None and self._resume.number is not None:
                with log_context(turn=self._resume.number):
                    resumed = await self._resume_turn(self._resume, self._resume.number)
                if resumed is not None:
                    return resumed
            while True:
                self._check_cancel()
                if self._control.paused:
                    await self._pause()
                with log_context(turn=self._turn_number + 1):
                    result = await self._run_turn()
                if result is not None:
                    return result
        except _Cancelled:
            return await self._finish_cancelled()
        except ProviderError as error:
            return await self._fail(error_reason("provider_error"), str(error), stage="model")
        except Exception as error:
            # A bug or a broken plug-in: record it so the log says why the run stopped, then re-raise
            # store failures (nothing can be recorded) and end the run for everything else.
            if isinstance(error, StoreError) or self._status in (AgentStatus.COMPLETE, AgentStatus.ERROR):
                raise
            return await self._fail(error_reason("internal"), f"{type(error).__name__}: {error}", stage="loop")
        finally:
            watchdog.close()
            await self._recorder.stop_heartbeat()
            await self._recorder.release()

    # -- status and checks ---------------------------------------------------------------------------------

    def _set_status(self, status: AgentStatus) -> None:
        if status is self._status:
            return
        if not can_transition(self._status, status):
            raise RuntimeError(f"illegal agent state transition {self._status.value} -> {status.value}")
        self._status = status
        self._on_status(status)

    def _check_cancel(self) -> None:
        if self._control.cancelled:
            raise _Cancelled

    async def _pause(self) -> None:
        """Record the pause, wait until the run may go on (or is cancelled) and record the resume."""
        self._set_status(AgentStatus.IDLE)
        self._recorder.add(RunPausedPayload(reason=self._control.take_pause_reason()), turn=self._turn_number)
        await self._recorder.commit()
        await self._control.wait_runnable()
        self._check_cancel()
        self._recorder.add(RunResumedPayload(reason=self._control.take_resume_reason()), turn=self._turn_number)

    # -- resume --------------------------------------------------------------------------------------

    async def _resume_turn(self, point: ResumePoint, number: int) -> RunResult | None:
        """Finish the turn a previous driver left open, applying the side-effect ledger to its calls."""
        self._turn_number = number
        self._turn = _Turn(
            number, point.parent, self._config.clock.monotonic(), point.recovery, list(point.messages), point.usage
        )
        self._set_status(AgentStatus.EXECUTING)
        for call in (call for call in point.pending if call.id in point.started):
            waiting = await self._settle_unknown(call)
            if waiting is not None:
                return waiting
        fresh = [call for call in point.pending if call.id not in point.started]
        if fresh and point.started and self._agent.mode is ExecutionMode.INTERACTIVE:
            # One call of this turn already ran: the others were refused (one tool per turn), not pending.
            for call in fresh:
                self._record_outcome(failed_result(call, ToolErrorCode.VALIDATION_ERROR, _ONE_PER_TURN))
            fresh = []
        if fresh:
            waiting = await self._run_tools(fresh)
            if waiting is not None:
                return waiting
        await self._end_turn()
        return None

    async def _settle_unknown(self, call: ToolCall) -> RunResult | None:
        """A call that started before the crash and has no recorded outcome (DESIGN §5)."""
        tool = self._tools.get(call.name)
        if tool is None:
            message = f"{call.name} is no longer available, and its outcome before the restart is unknown"
            self._record_outcome(failed_result(call, ToolErrorCode.RESOURCE_NOT_FOUND, message))
            return None
        spec = tool.spec
        if spec.effect in (ToolEffect.NONE, ToolEffect.IDEMPOTENT):
            await self._run_group([Screened(call, tool, None)])  # safe to run again, with the same key
            return None
        if spec.effect is ToolEffect.COMPENSABLE and isinstance(tool, ReconcilableTool):
            context = self._tool_context(call)
            with self._control.interruptible():
                result = await self._config.pipeline.execute(
                    Screened(call, tool, None), context, self._timeout(spec), reconcile=True
                )
            self._record_outcome(result)
            return None
        item = Screened(call, tool, _UNKNOWN_OUTCOME)
        decided = await self._approve(item, reason_code="unknown_outcome")
        if decided is None:
            return await self._wait_for_approval("unknown_outcome")
        if decided.failure is not None:
            message = "its outcome before the restart is unknown, and it was not run again: " + (
                decided.failure.error.message if decided.failure.error else "denied"
            )
            self._record_outcome(failed_result(call, ToolErrorCode.PERMISSION_DENIED, message))
            return None
        await self._run_group([decided])
        return None

    # -- one turn --------------------------------------------------------------------------------------

    def _recovery_allowed(self) -> bool:
        return self._agent.recovery.enabled and not self._recovered

    def _recovery_due(self, turn: int) -> bool:
        threshold = max(1, self._agent.limits.max_turns - self._agent.recovery.grace_turns)
        return self._recovery_allowed() and turn >= threshold

    # -- budget ----------------------------------------------------------------------------------------

    def _judge_budget(self) -> BudgetVerdict:
        """Bring the wall time up to date and judge the budget (``ok`` when the run has none)."""
        if self._budget is None:
            return _WITHIN_BUDGET
        now = self._config.clock.monotonic()
        self._budget = self._budget.count(wall_time_s=now - self._wall_mark)
        self._wall_mark = now
        return self._budget.verdict()

    def _reserve(self, request: ModelRequest) -> BudgetVerdict:
        """Hold the estimated prompt of `request` against the budget, and judge the result."""
        if self._budget is None:
            return _WITHIN_BUDGET
        tokens = self._config.tokens.count_request(request) if self._config.tokens is not None else 0
        cost = self._price(Usage(input_tokens=tokens)) if tokens else 0.0
        self._budget = self._budget.reserve(tokens=tokens, cost_usd=cost)
        return self._budget.verdict()

    def _price(self, usage: Usage) -> float:
        if self._config.pricing is None:
            return usage.cost_usd
        try:
            return self._config.pricing.cost(self._agent.model, usage)
        except NotFoundError:
            return usage.cost_usd  # checked when the run started: only a model without a cost limit

    async def _run_turn(self) -> RunResult | None:
        limits, recovery_config = self._agent.limits, self._agent.recovery
        number = self._turn_number + 1
        if not recovery_config.enabled and recovery_config.hard_limit and number > limits.max_turns:
            message = f"the turn limit ({limits.max_turns}) was reached without a call to {COMPLETION_TOOL_NAME}"
            return await self._fail(TerminalReason.NO_COMPLETION, message)
        verdict = self._judge_budget()
        if verdict.level is BudgetLevel.HARD:
            return await self._fail(TerminalReason.BUDGET_EXHAUSTED, verdict.message)
        trigger: Literal["max_turns", "soft_budget", "wall_time"] | None = (
            "max_turns" if self._recovery_due(number) else None
        )
        if trigger is None and verdict.level is BudgetLevel.SOFT and self._recovery_allowed():
            trigger = "wall_time" if verdict.limit == "wall_time_s" else "soft_budget"
        recovery = trigger is not None
        self._turn_number = number
        self._control.turn_started()
        started = self._config.clock.monotonic()
        turn = self._turn = _Turn(number, self._checkpoint_turn, started, recovery, [], _NO_USAGE)
        now = self._config.clock.now()  # the turn's start and its model request: one step, one time
        self._recorder.add(_TURN_STARTED[recovery], turn=number, ts=now)
        deadline: float | None = None
        if trigger is not None:
            self._recovered = True
            self._set_status(AgentStatus.RECOVERING)
            deadline = turn.started + recovery_config.grace_timeout_s
            self._recorder.add(
                RecoveryStartedPayload(
                    trigger=trigger,
                    max_turns=limits.max_turns,
                    grace_turns=recovery_config.grace_turns,
                    deadline_s=recovery_config.grace_timeout_s,
                ),
                turn=number,
                ts=now,
            )
            warning = (
                recovery_config.warning_template.format(max_turns=limits.max_turns)
                if trigger == "max_turns"
                else _BUDGET_WARNING.format(reason=verdict.message)
            )
            self._add_message(UserMessage(content=warning))
        else:
            self._set_status(AgentStatus.THINKING)
        for thought in self._control.take_thoughts():
            self._inject(thought, now)
        try:
            response = await self._ask_model(recovery, deadline, now)
        except _OverBudget:
            assert self._budget is not None
            return await self._fail(TerminalReason.BUDGET_EXHAUSTED, self._budget.verdict().message)
        if response is None:
            return await self._fail(
                TerminalReason.RECOVERY_FAILED if recovery else error_reason("model_timeout"),
                "the model did not answer in time"
                + (" during the recovery turn" if recovery else f" ({limits.model_timeout_s:g} s)"),
                stage="model",
            )
        return await self._handle(response, deadline)

    def _inject(self, thought: str, now: datetime) -> None:
        """Deliver an operator's thought as a step of the turn starting at `now` (its time, as its other events)."""
        envelope = MessageEnvelope(
            id=self._config.ids.new_id("msg"),
            sender="operator",
            recipient=self._agent.name,
            kind=MessageKind.EVENT,
            topic="thought",
            payload=thought,
            timestamp=now,
        )
        self._recorder.add(MessageDeliveredPayload(envelope=envelope), turn=self._turn_number, ts=now)
        self._add_message(UserMessage(content=thought))

    def _add_message(self, message: Message) -> None:
        self._messages.append(message)
        assert self._turn is not None
        self._turn.messages.append(message)

    async def _ask_model(self, recovery: bool, deadline: float | None, now: datetime) -> ModelResponse | None:
        """Call the model (its ``model.requested`` event carries `now`); ``None`` means it ran out of time."""
        specs = (self._completion.spec,) if recovery else self._specs
        # Built from validated parts on every turn: no validation (see `trusted`).
        messages = tuple(self._messages)
        request = trusted(
            ModelRequest,
            {
                "model": self._model,
                "messages": messages,
                "tools": specs,
                "tool_choice": "required" if recovery else "auto",
            },
        )
        self._recorder.add(
            trusted(
                ModelRequestedPayload,
                {
                    "model": self._agent.model,
                    "message_count": len(messages),
                    "tool_names": (self._completion.spec.name,) if recovery else self._tool_names,
                },
            ),
            turn=self._turn_number,
            ts=now,
        )
        if self._reserve(request).level is BudgetLevel.HARD:
            raise _OverBudget
        seconds = self._agent.limits.model_timeout_s
        if deadline is not None:
            seconds = min(seconds, max(0.0, deadline - self._config.clock.monotonic()))
        try:
            with self._control.interruptible(), timeout(seconds):
                return await (self._stream(request) if self._stream_model else self._provider.complete(request))
        except TimeoutError:
            return None
        except asyncio.CancelledError:
            self._cancelled_here()

    async def _stream(self, request: ModelRequest) -> ModelResponse:
        response: ModelResponse | None = None
        async for chunk in self._provider.stream(request):
            if isinstance(chunk, ResponseComplete):
                response = chunk.response
            else:
                self._on_delta(self._turn_number, chunk)
        if response is None:
            raise ProviderError(
                f"{self._provider.name}: the stream ended without a response", provider=self._provider.name
            )
        return response

    def _cancelled_here(self) -> NoReturn:
        """Turn the task cancellation that `RunControl.cancel` caused into `_Cancelled`."""
        if not self._control.cancelled:
            raise asyncio.CancelledError  # cancelled from outside: let it propagate
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        raise _Cancelled

    async def _handle(self, response: ModelResponse, deadline: float | None) -> RunResult | None:
        turn = self._turn
        assert turn is not None
        number = turn.number
        message = response.message
        usage = response.usage
        if self._config.pricing is not None:
            usage = usage.model_copy(update={"cost_usd": self._price(usage)})
        turn.usage = usage if turn.usage is _NO_USAGE else turn.usage + usage  # zero plus usage is usage
        self._usage = self._usage + usage
        if message.content:
            self._last_text = message.content
        now = self._config.clock.now()  # the reply, its budget debit and its tool calls: one step, one time
        self._recorder.add(
            trusted(
                ModelRespondedPayload,
                {
                    "model": self._agent.model,
                    "message": message,
                    "usage": usage,
                    "finish_reason": response.finish_reason,
                    "latency_ms": response.latency_ms,
                },
            ),
            turn=number,
            ts=now,
        )
        self._add_message(message)
        over_budget = self._settle(usage, now)
        calls = message.tool_calls
        for call in calls:
            self._recorder.add(trusted(ToolCalledPayload, {"call": call}), turn=number, tool_call_id=call.id, ts=now)
        turn.tool_calls = len(calls)
        if not calls:
            reason = TerminalReason.RECOVERY_FAILED if turn.recovery else TerminalReason.NO_COMPLETION
            return await self._fail(reason, f"the model answered without calling {COMPLETION_TOOL_NAME}")
        completions = [call for call in calls if is_completion_tool(call.name)]
        if completions and len(calls) == 1:
            return await self._complete(calls[0], deadline)  # the work is done: completing costs nothing more
        if over_budget is not None:
            return await self._fail(TerminalReason.BUDGET_EXHAUSTED, over_budget.message)
        if turn.recovery:
            names = ", ".join(call.name for call in calls)
            return await self._fail(
                TerminalReason.RECOVERY_FAILED,
                f"the recovery turn must call only {COMPLETION_TOOL_NAME}, and the model called {names}",
            )
        if completions:
            self._refuse_all(calls)
        else:
            self._set_status(AgentStatus.EXECUTING)
            waiting = await self._run_tools(calls)
            if waiting is not None:
                return waiting
        await self._end_turn()
        return None

    def _settle(self, usage: Usage, now: datetime) -> BudgetVerdict | None:
        """Charge a model call to the budget (``budget.debited``); return the verdict if it is now hard."""
        if self._budget is None:
            return None
        self._budget = self._budget.settle(usage)
        self._recorder.add(BudgetDebitedPayload(usage=usage, state=self._budget), turn=self._turn_number, ts=now)
        verdict = self._budget.verdict()
        return verdict if verdict.level is BudgetLevel.HARD else None

    def _refuse_all(self, calls: Sequence[ToolCall]) -> None:
        """Completion mixed with other calls: the turn fails, nothing runs, the model is told why."""
        message = (
            f"{COMPLETION_TOOL_NAME} must be the only tool call of its turn; none of this turn's "
            f"{len(calls)} calls was run"
        )
        self._recorder.add(
            ErrorPayload(code="completion_not_alone", message=message, stage="turn", recoverable=True),
            turn=self._turn_number,
        )
        for call in calls:
            self._record_outcome(failed_result(call, ToolErrorCode.VALIDATION_ERROR, message))

    # -- completion ------------------------------------------------------------------------------------

    async def _complete(self, call: ToolCall, deadline: float | None) -> RunResult | None:
        turn = self._turn
        assert turn is not None
        self._check_cancel()
        tool_context = self._tool_context(call)
        timeout = self._agent.limits.tool_timeout_s
        if deadline is not None:
            timeout = max(0.001, min(timeout, deadline - self._config.clock.monotonic()))
        result = malformed_arguments(call) or await self._config.pipeline.execute(
            Screened(call, self._completion, None), tool_context, timeout
        )
        self._record_outcome(result)
        completion = None if result.error is not None else _completion_input(call)
        if completion is None:
            if turn.recovery:
                error = result.error.message if result.error is not None else "invalid completion"
                return await self._fail(TerminalReason.RECOVERY_FAILED, f"{COMPLETION_TOOL_NAME} failed: {error}")
            await self._end_turn()
            return None
        # The accepted completion is validated: its parts need no validation again.
        recorded = {
            "summary": completion.summary,
            "artifacts": completion.artifacts or (),
            "next_steps": completion.next_steps,
        }
        self._recorder.add(trusted(CompletionRecordedPayload, recorded), turn=turn.number, tool_call_id=call.id)
        self._set_status(AgentStatus.COMPLETE)
        await self._end_turn(trusted(RunCompletedPayload, {"summary": completion.summary}))
        return self._result(
            RunStatus.COMPLETED, TerminalReason.COMPLETED, output=completion.summary, completion=completion
        )

    # -- tools -----------------------------------------------------------------------------------------

    def _tool_context(self, call: ToolCall) -> ToolContext:
        return ToolContext(
            run_id=self._run.id,
            tool_call_id=call.id,
            agent_id=self._agent.name,
            turn=self._turn_number,
            workspace=self._workspace,
        )

    async def _run_tools(self, calls: Sequence[ToolCall]) -> RunResult | None:
        """Screen, approve and run a turn's calls; return a result when the run must wait."""
        number = self._turn_number
        runnable = list(calls)
        if self._agent.mode is ExecutionMode.INTERACTIVE and len(calls) > 1:
            runnable = runnable[:1]
            refused = [failed_result(call, ToolErrorCode.VALIDATION_ERROR, _ONE_PER_TURN) for call in calls[1:]]
        else:
            refused = []
        pipeline = self._config.pipeline
        policy_context = (
            PolicyContext(
                run_id=self._run.id,
                agent_id=self._agent.name,
                turn=number,
                depth=self._run.depth,
                role=self._agent.role,
                mode=self._agent.mode,
            )
            if pipeline.policy is not None
            else None  # only a policy reads it
        )
        screened: list[Screened] = []
        for call in runnable:
            item = pipeline.screen(call, self._tools, policy_context, self._workspace)
            if item.decision is not None:
                payload = PolicyDecidedPayload(tool_name=call.name, decision=item.decision)
                self._recorder.add(payload, turn=number, tool_call_id=call.id)
            screened.append(item)
        for index, item in enumerate(screened):
            if item.needs_approval and item.call.name in self._sticky:
                assert item.decision is not None  # needs_approval implies a decision
                screened[index] = Screened(item.call, item.tool, item.decision.model_copy(update=_STICKY_ALLOW))
            elif item.needs_approval:
                decided = await self._approve(item)
                if decided is None:
                    return await self._wait_for_approval()
                screened[index] = decided
        if len(runnable) == 1:  # one call (always so in interactive mode): a single group
            await self._run_group(screened)
        else:
            specs = [item.spec for item in screened]
            for group in plan_groups(runnable, specs, resources=self._config.resources):
                await self._run_group([screened[index] for index in group])
        for result in refused:
            self._record_outcome(result)
        return None

    async def _approve(self, item: Screened, *, reason_code: str = "approval_required") -> Screened | None:
        """Ask the approval handler; return the call as allowed or denied, or ``None`` to wait."""
        assert item.decision is not None
        answered = self._answered.pop(item.call.id, None)
        if answered is not None:  # answered before a restart: the recorded answer stands
            return self._apply_resolution(item, answered.resolution())
        now = self._config.clock.now()
        timeout = self._config.approval_timeout
        approval_id = self._approval_ids.pop(item.call.id, None) or self._config.ids.new_id("apr")
        approval = Approval(
            id=approval_id,
            run_id=self._run.id,
            tool_call=item.call,
            reason=item.decision.reason or f"{item.call.name} needs approval",
            requested_at=now,
            expires_at=now + timeout if timeout is not None else None,
        )
        self._recorder.add(
            ApprovalRequestedPayload(
                approval_id=approval.id,
                call=item.call,
                reason=approval.reason,
                reason_code=reason_code,
                expires_at=approval.expires_at,
            ),
            turn=self._turn_number,
            tool_call_id=item.call.id,
        )
        if self._config.approvals is None:
            return None
        self._set_status(AgentStatus.WAITING_CONFIRMATION)
        # Durable before anyone is asked: the run shows as waiting_approval, and the request survives a crash.
        await self._commit_turn(CheckpointStatus.OPEN)
        try:
            with self._control.interruptible():
                resolution = await self._config.approvals.decide(approval)
        except asyncio.CancelledError:
            self._cancelled_here()
        if resolution is None:
            return None
        self._set_status(AgentStatus.EXECUTING)
        self._recorder.add(
            ApprovalResolvedPayload.of(resolution.model_copy(update={"approval_id": approval.id})),
            turn=self._turn_number,
            tool_call_id=item.call.id,
        )
        return self._apply_resolution(item, resolution)

    def _apply_resolution(self, item: Screened, resolution: ApprovalResolution) -> Screened:
        if resolution.decision is ApprovalDecision.ALLOW:
            if resolution.sticky:
                self._sticky.add(item.call.name)
            return Screened(item.call, item.tool, item.decision)
        note = f": {resolution.note}" if resolution.note else ""
        why = "nobody approved this call in time" if resolution.expired else f"the approver denied this call{note}"
        denial = failed_result(item.call, ToolErrorCode.PERMISSION_DENIED, why)
        return Screened(item.call, item.tool, item.decision, denial)

    async def _wait_for_approval(self, reason: str = "approval_required") -> RunResult:
        self._set_status(AgentStatus.WAITING_CONFIRMATION)
        await self._commit_turn(CheckpointStatus.OPEN)
        return self._result(RunStatus.WAITING_APPROVAL, reason)

    async def _run_group(self, group: list[Screened]) -> None:
        """Run one dependency-safe group: gate each call, write ahead if needed, run, record."""
        self._check_cancel()
        pipeline = self._config.pipeline
        number = self._turn_number
        ready: list[tuple[Screened, ToolContext]] = []
        write_ahead = False
        for item in group:
            if item.failure is None and self._failed:
                item = self._refuse_repeat(item)
            if item.failure is not None:
                self._record_outcome(item.failure)
                continue
            context = self._tool_context(item.call)
            gated = await pipeline.gate(item, context) if pipeline.gates else None
            if gated is not None:
                self._record_outcome(gated)
                continue
            spec = item.spec
            assert spec is not None
            if spec.effect is not ToolEffect.NONE:
                # The side-effect ledger: only calls that can change the world need a start record.
                started = {"tool_name": spec.name, "effect": spec.effect, "idempotency_key": item.call.id}
                self._recorder.add(trusted(ToolStartedPayload, started), turn=number, tool_call_id=item.call.id)
                write_ahead = True
            ready.append((item, context))
        if not ready:
            return
        if write_ahead:
            # Write-ahead: the ledger must show these calls started before any of them can act.
            await self._commit_turn(CheckpointStatus.OPEN)
        self._inflight = [_Running(item.call) for item, _ in ready]
        assert self._turn is not None
        self._turn.executed += len(ready)
        if len(ready) == 1:
            # A single call runs in the driver's own task: no task to spawn, no loop iteration to wait.
            try:
                with self._control.interruptible():
                    self._inflight[0].ran = True
                    # A cancellation can only land while the tool itself awaits, so the call did not finish.
                    results = [await self._execute(*ready[0])]
            except asyncio.CancelledError:
                self._cancelled_here()
        else:
            results = await self._run_together(ready)
        self._inflight = []
        for (item, _), result in zip(ready, results, strict=True):
            if result.error is not None:
                self._remember_failure(item.call, result)
            self._record_outcome(result)

    def _refuse_repeat(self, item: Screened) -> Screened:
        """A call identical to one that already failed when it ran is refused, not run again."""
        code = self._failed.get(_signature(item.call))
        if code is None:
            return item
        message = (
            f"this exact call ({item.call.name} with the same arguments) already failed in this run with {code}; "
            "change the arguments or try another way"
        )
        return Screened(
            item.call,
            item.tool,
            item.decision,
            failed_result(item.call, ToolErrorCode.DUPLICATE_FAILED_ACTION, message),
        )

    def _remember_failure(self, call: ToolCall, result: ToolResult) -> None:
        assert result.error is not None
        self._failed[_signature(call)] = result.error.code.value
        while len(self._failed) > _FAILURE_MEMORY:
            self._failed.popitem(last=False)

    async def _execute(self, item: Screened, context: ToolContext) -> ToolResult:
        """Run a call, trying a failed one again while the retry policy says so (``tool.failed`` each time)."""
        spec, retry = item.spec, self._config.retry
        assert spec is not None
        attempt = 1
        while True:
            result = await self._config.pipeline.execute(item, context, self._timeout(spec))
            delay = None if result.error is None or retry is None else retry.retry_delay(spec, result.error, attempt)
            if delay is None:
                if attempt > 1:
                    self._attempts[item.call.id] = attempt
                return result
            self._recorder.add(
                ToolFailedPayload(result=result, attempt=attempt, will_retry=True),
                turn=self._turn_number,
                tool_call_id=item.call.id,
            )
            await asyncio.sleep(delay)
            attempt += 1

    def _timeout(self, spec: ToolSpec) -> float:
        return spec.timeout_s or self._agent.limits.tool_timeout_s

    async def _run_together(self, ready: list[tuple[Screened, ToolContext]]) -> list[ToolResult]:
        """Run a group's calls as tasks, at most ``max_parallel`` at once."""
        limit = asyncio.Semaphore(self._agent.limits.max_parallel)

        async def run_one(item: Screened, context: ToolContext) -> ToolResult:
            async with limit:
                return await self._execute(item, context)

        tasks: list[asyncio.Task[ToolResult]] = []
        try:
            with self._control.interruptible():
                tasks = [asyncio.create_task(run_one(item, context)) for item, context in ready]
                for running, task in zip(self._inflight, tasks, strict=True):
                    running.task = task
                await asyncio.wait(tasks)
        except asyncio.CancelledError:
            self._cancelled_here()
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()  # cancelled from outside the run: leave no tool running
        return [task.result() for task in tasks]  # execute() turns every tool failure into a result

    def _record_outcome(self, result: ToolResult) -> None:
        number = self._turn_number
        if result.error is None:
            finished = trusted(ToolFinishedPayload, {"result": result})
            self._recorder.add(finished, turn=number, tool_call_id=result.tool_call_id)
        else:
            attempt = self._attempts.pop(result.tool_call_id, 1)
            failed = ToolFailedPayload(result=result, attempt=attempt)
            self._recorder.add(failed, turn=number, tool_call_id=result.tool_call_id)
        self._add_message(ToolResultMessage.of(result))

    # -- boundaries ------------------------------------------------------------------------------------

    def _variables(self) -> dict[str, JsonValue]:
        if not self._sticky:
            return {}
        sticky: list[JsonValue] = list(sorted(self._sticky))
        return {_STICKY: sticky}

    def _checkpoint(self, status: CheckpointStatus, now: datetime) -> Checkpoint:
        turn = self._turn
        assert turn is not None
        parent = turn.parent
        if status is CheckpointStatus.FINAL and turn.number % self._config.snapshot_every == 0:
            # Built from validated parts, like the delta: validating the whole conversation again would
            # make every K-th turn cost as much as the history is long.
            state = trusted(
                CheckpointState,
                {
                    "turn": turn.number,
                    "messages": tuple(self._messages),
                    "usage": self._usage,
                    "sop_phase": None,
                    "budget": self._budget,
                    "variables": self._variables(),
                },
            )
            return trusted(
                CheckpointSnapshot,
                {
                    "run_id": self._run.id,
                    "turn": turn.number,
                    "parent_turn": parent,
                    "status": status,
                    "created_at": now,
                    "state": state,
                },
            )
        delta = trusted(
            TurnDelta,
            {
                "messages": tuple(turn.messages),
                "usage": turn.usage,
                "budget": self._budget,
                "variables": self._variables(),
            },
        )
        return trusted(
            CheckpointDelta,
            {
                "run_id": self._run.id,
                "turn": turn.number,
                "parent_turn": parent,
                "status": status,
                "created_at": now,
                "delta": delta,
            },
        )

    async def _commit_turn(
        self,
        status: CheckpointStatus,
        *terminal: RunCompletedPayload | RunFailedPayload | RunCancelledPayload,
        now: datetime | None = None,
    ) -> None:
        """Commit the turn's events with its checkpoint; a terminal run event, if any, comes last.

        The checkpoint and the events this adds carry `now` (default: the current time).
        """
        turn = self._turn
        assert turn is not None
        now = now or self._config.clock.now()
        checkpoint = self._checkpoint(status, now)
        saved = {
            "kind": checkpoint.kind,
            "parent_turn": checkpoint.parent_turn,
            "final": status is CheckpointStatus.FINAL,
        }
        self._recorder.add(trusted(CheckpointSavedPayload, saved), turn=turn.number, ts=now)
        for payload in terminal:
            self._recorder.add(payload, turn=turn.number, ts=now)
        await self._recorder.commit(checkpoint)
        self._checkpoint_turn = turn.number

    async def _end_turn(self, *terminal: RunCompletedPayload | RunFailedPayload | RunCancelledPayload) -> None:
        """Record the turn's end (and the run's, if given) with the turn's final checkpoint."""
        turn = self._turn
        assert turn is not None
        if self._budget is not None:
            self._budget = self._budget.count(turns=1, tool_calls=turn.executed)
        duration_ms = (self._config.clock.monotonic() - turn.started) * 1000.0
        finished = {"usage": turn.usage, "tool_calls": turn.tool_calls, "duration_ms": duration_ms}
        now = self._config.clock.now()  # the turn's end, its checkpoint and the run's end if it ends: one time
        self._recorder.add(trusted(TurnFinishedPayload, finished), turn=turn.number, ts=now)
        await self._commit_turn(CheckpointStatus.FINAL, *terminal, now=now)
        self._turn = None

    # -- endings ---------------------------------------------------------------------------------------

    def _result(
        self,
        status: RunStatus,
        reason: str | None,
        *,
        output: str | None = None,
        completion: CompleteTaskInput | None = None,
        error: str | None = None,
    ) -> RunResult:
        if self._config.redactor is not None:
            output, error = self._config.redactor.redact(output), self._config.redactor.redact(error)
        result = {
            "run_id": self._run.id,
            "status": status,
            "reason": None if reason is None else str(reason),  # a plain str, as validation makes it
            "output": output,
            "completion": completion,
            "error": error,
            "turns": self._turn_number,
            "usage": self._usage,
            "last_seq": self._recorder.last_seq,
        }
        return trusted(RunResult, result)  # of the run's validated parts

    async def _fail(self, reason: str, message: str, *, stage: str | None = None) -> RunResult:
        if stage is not None:
            code = reason.removeprefix("error:")
            self._recorder.add(ErrorPayload(code=code, message=message, stage=stage), turn=self._turn_number)
        await self._end_run(RunFailedPayload(reason=reason, message=message, partial_output=self._last_text))
        return self._result(RunStatus.FAILED, reason, output=self._last_text, error=message)

    async def _end_run(self, payload: RunFailedPayload | RunCancelledPayload) -> None:
        """Record a failed or cancelled end: with the open turn's final checkpoint, or alone between turns."""
        self._set_status(AgentStatus.ERROR)
        if self._turn is not None:
            await self._end_turn(payload)
        else:
            self._recorder.add(payload, turn=self._turn_number)
            await self._recorder.commit()

    async def _finish_cancelled(self) -> RunResult:
        tasks = [running.task for running in self._inflight if running.task is not None]
        if tasks:
            await asyncio.wait(tasks)  # they were cancelled with the run: let them wind down
        for running in self._inflight:
            task = running.task
            if task is not None and not task.cancelled():
                self._record_outcome(task.result())  # finished before the cancellation reached it
                continue
            ran = running.ran or task is not None
            message = (
                "the run was cancelled while this call ran: what it did until then stands (a tool running "
                "in a worker thread may still finish its work)"
                if ran
                else "the run was cancelled before this call ran"
            )
            details: dict[str, JsonValue] = {"cancelled": True, "ran": ran}
            self._record_outcome(failed_result(running.call, ToolErrorCode.EXECUTION_FAILED, message, details))
        self._inflight = []
        await self._end_run(RunCancelledPayload(reason=self._control.cancel_reason))
        return self._result(RunStatus.CANCELLED, TerminalReason.CANCELLED, output=self._last_text)


def _completion_input(call: ToolCall) -> CompleteTaskInput | None:
    # From the arguments, not the result: a long summary may have been spooled out of the result.
    try:
        return CompleteTaskInput.model_validate(call.arguments)
    except ValidationError:
        return None
