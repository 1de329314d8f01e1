"""The agent loop: start runs, drive them turn by turn, stream their events, control them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from runtime_core import trusted
from runtime_core.agents import AgentSpec
from runtime_core.approvals import ApprovalHandler
from runtime_core.checkpoints import CheckpointSnapshot, CheckpointState, CheckpointStatus
from runtime_core.clock import Clock, SystemClock
from runtime_core.events import (
    CheckpointSavedPayload,
    Event,
    EventDraft,
    EventSink,
    RunCancelledPayload,
    RunCreatedPayload,
    RunStartedPayload,
)
from runtime_core.exceptions import ConfigurationError, NotFoundError
from runtime_core.ids import IdGenerator, UlidGenerator
from runtime_core.memory import InMemoryRunStore
from runtime_core.messages import Message, SystemMessage, UserMessage
from runtime_core.pipeline import RateLimiter, ToolResultCache, ToolRetryPolicy
from runtime_core.policy import PolicyEngine
from runtime_core.providers import ModelProvider, StreamChunk, TextDelta, TokenCounter, ToolCallDelta
from runtime_core.redaction import Redactor
from runtime_core.runs import Run, RunResult
from runtime_core.spool import SpoolStore
from runtime_core.stores import Lease, RunStore
from runtime_core.tools import Tool, ToolRegistry, is_completion_tool
from runtime_core.usage import Pricing, Usage
from runtime_execution.loop._driver import Driver, DriverConfig, ResumePoint
from runtime_execution.loop._recorder import Recorder
from runtime_execution.loop._resume import resume_point, tail_events
from runtime_execution.loop.control import RunControl
from runtime_execution.loop.pipeline import ToolPipeline
from runtime_execution.loop.replay import (
    REPLAYED_TYPES,
    DecisionLog,
    ReplayedApprovals,
    ReplayedTool,
    ReplayReport,
    recorded_outcomes,
)
from runtime_execution.loop.scheduling import ResourceResolver, default_resources
from runtime_execution.loop.spooling import SpoolPolicy
from runtime_execution.loop.states import AgentStatus
from runtime_execution.providers.recorded import RecordedProvider
from runtime_execution.tools.completion import complete_task
from runtime_execution.tools.registry import LocalToolRegistry

__all__ = ["AgentLoop", "LoopEvent", "ModelDelta", "RunHandle"]


@dataclass(frozen=True, slots=True)
class ModelDelta:
    """A piece of the model's reply while it streams (not part of the run log).

    Attributes:
        run_id: The run.
        turn: The turn whose model call is streaming.
        chunk: The text or tool-call fragment.
    """

    run_id: str
    turn: int
    chunk: TextDelta | ToolCallDelta


LoopEvent = Event | ModelDelta
"""What `RunHandle.events` yields: recorded run-log events, and model deltas when streaming."""

_log = logging.getLogger("runtime_execution.loop")

_DONE = object()
_CALLER_CANCELLED = "the task awaiting AgentLoop.run was cancelled"
_FIRST_SNAPSHOT_SAVED = CheckpointSavedPayload(kind="snapshot", final=True)


class RunHandle:
    """A run being driven: await it for its result, iterate its events, send it control signals.

    ``await handle`` (or `result`) returns the `RunResult`; `events` streams what happens;
    `pause`, `resume`, `step`, `inject` and `cancel` steer it.
    """

    def __init__(self, run: Run, store: RunStore, control: RunControl) -> None:
        self._run = run
        self._store = store
        self._control = control
        self._queues: list[asyncio.Queue[object]] = []
        self._task: asyncio.Task[RunResult] | None = None
        self._finished = False
        self.status = AgentStatus.IDLE
        """The agent's current state in the spec's state machine."""

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._run.id

    @property
    def run(self) -> Run:
        """The run record as it was when the handle was made (use the store for the current one)."""
        return self._run

    @property
    def control(self) -> RunControl:
        """The run's signal box."""
        return self._control

    @property
    def done(self) -> bool:
        """Whether the driver has returned."""
        return self._task is not None and self._task.done()

    # -- signals ---------------------------------------------------------------------------------------

    def pause(self, reason: str | None = None) -> None:
        """Pause before the next turn."""
        self._control.pause(reason)

    def resume(self, reason: str | None = None) -> None:
        """Resume a paused run."""
        self._control.resume(reason)

    def step(self, reason: str | None = None) -> None:
        """Run one more turn, then pause."""
        self._control.step(reason)

    def inject(self, thought: str) -> None:
        """Give the model a thought to read before its next call."""
        self._control.inject(thought)

    def cancel(self, reason: str | None = None) -> None:
        """Cancel the run: the model call or tools in flight are interrupted."""
        self._control.cancel(reason)

    async def stop(self, reason: str | None = None) -> None:
        """Cancel the run (`cancel`) and wait until it has stopped.

        A store failure while it stops is not raised: the run is then left as a crash leaves it, resumable.
        """
        self.cancel(reason)
        with contextlib.suppress(Exception):
            await self.result()

    # -- results and events ------------------------------------------------------------------------------

    async def result(self) -> RunResult:
        """Wait for the driver and return the result (re-raising a store failure)."""
        assert self._task is not None
        return await asyncio.shield(self._task)

    def __await__(self) -> Generator[Any, None, RunResult]:
        return self.result().__await__()

    async def events(self, *, after_seq: int = 0, deltas: bool = True) -> AsyncIterator[LoopEvent]:
        """Yield the run's events from `after_seq` on, live, until the driver returns.

        Events already recorded are read from the store first, so nothing is missed however late the
        iteration starts. Model deltas are live only (they are not part of the log).

        Args:
            after_seq: Skip events up to this ``seq``.
            deltas: Also yield `ModelDelta` chunks while the model streams.
        """
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._queues.append(queue)
        finished = self._finished  # if not, the queue will receive everything up to the end marker
        try:
            last = after_seq
            for event in await self._store.read_events(self._run.id, after_seq=after_seq):
                last = event.seq
                yield event
            if finished:
                return
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, Event):
                    if item.seq > last:
                        last = item.seq
                        yield item
                elif deltas:
                    assert isinstance(item, ModelDelta)
                    yield item
        finally:
            self._queues.remove(queue)

    async def stream(self, *, deltas: bool = True) -> AsyncGenerator[LoopEvent, None]:
        """Yield the run's events (`events`) to its end, then re-raise a store failure, if any.

        Leaving the iteration early cancels the run: a stream is the run's only consumer.
        """
        try:
            async for item in self.events(deltas=deltas):
                yield item
            await self.result()
        finally:
            if not self.done:
                await self.stop("the event stream was closed")

    # -- driver side -----------------------------------------------------------------------------------

    def _publish(self, items: Sequence[object]) -> None:
        for queue in self._queues:
            for item in items:
                queue.put_nowait(item)

    def _on_events(self, events: Sequence[Event]) -> None:
        self._publish(events)

    def _on_delta(self, turn: int, chunk: StreamChunk) -> None:
        if self._queues and isinstance(chunk, TextDelta | ToolCallDelta):
            self._publish([ModelDelta(self._run.id, turn, chunk)])

    def _on_status(self, status: AgentStatus) -> None:
        self.status = status

    def _start(self, driver: Driver) -> None:
        self._task = asyncio.create_task(driver.drive(), name=f"agent-run-{self._run.id}")
        self._control.bind(self._task)
        self._task.add_done_callback(self._on_done)

    async def _drive_here(self, driver: Driver) -> RunResult:
        """Drive the run in the current task (`AgentLoop.run`): no task to spawn, no loop iteration to wait."""
        task = asyncio.current_task()
        assert task is not None, "a run is driven by a task"
        self._control.bind(task)
        try:
            return await driver.drive()
        finally:
            self._on_done(None)

    def _on_done(self, _: object) -> None:
        self._finished = True
        self._publish([_DONE])


def _initial_state(agent: AgentSpec, task: str) -> CheckpointState:
    """A new run's state: the agent's instructions and the task (both str: nothing to validate)."""
    messages: list[Message] = [trusted(SystemMessage, {"content": agent.instructions})] if agent.instructions else []
    messages.append(trusted(UserMessage, {"content": task}))
    return trusted(CheckpointState, {"turn": 0, "messages": tuple(messages)})


def _workspace_root(path: str | os.PathLike[str]) -> Path:
    return Path(path).resolve()


class AgentLoop:
    """Runs agents: the composition of model providers, tools, a run store and the tool pipeline.

    One loop serves any number of runs, concurrently. Everything is injectable; the defaults make a
    self-contained in-memory loop for tests and scripts.

    Args:
        providers: Model providers, by name or as a collection (keyed by their ``name``); an agent's
            ``model = "<provider>:<model>"`` picks one.
        tools: The tool registry (or tools to put in a new one); each run sees the view its agent's
            ``tools`` patterns select. The completion tool is always available.
        store: The run store; an `InMemoryRunStore` by default.
        sink: Receives every committed boundary's events (event bus, telemetry).
        policy: Decides each tool call; ``None`` allows every call (no ``policy.decided`` events then).
        approvals: Answers approval requests in process; without one, a call that needs approval leaves
            the run waiting (``waiting_approval``) for an external resolver.
        rate_limiter: Limits tool call rates.
        cache: Caches read-only tool results.
        spool: Stores large tool outputs; `SpoolPolicy` says when. ``None`` keeps outputs whole.
        spool_policy: When to spool and how much the model sees.
        workspace: Default root directory of file and shell tools (a run may set its own).
        resources: Finds the resources of a call for batch scheduling.
        clock: Time source (inject a `ManualClock` for deterministic runs).
        ids: Id source (inject `SequentialIds` for deterministic runs).
        worker: Name of this worker, the owner of the run leases it takes.
        lease_ttl: How long a run lease lasts before it must be renewed.
        snapshot_every: Write a full checkpoint snapshot every this many turns (deltas otherwise).
        pricing: Prices model usage (the control plane's `ModelCatalog`): each reply's ``cost_usd``, and
            the cost side of budgets. Without it, usage costs what the provider reports (usually 0).
        tokens: Estimates a request's prompt tokens, reserved against a budget before each call.
        redactor: Removes secrets from every event and checkpoint before it is stored, and from results.
        retry: Tries failed tool calls again (the control plane's `ErrorRecovery`); ``None`` never does.
        approval_timeout: How long an approval request stays open: its ``expires_at`` (recorded in
            ``approval.requested``; an `ApprovalBroker` denies it as expired then). ``None``: the
            approval handler decides.
    """

    def __init__(
        self,
        *,
        providers: Mapping[str, ModelProvider] | Iterable[ModelProvider],
        tools: ToolRegistry | Iterable[Tool] = (),
        store: RunStore | None = None,
        sink: EventSink | None = None,
        policy: PolicyEngine | None = None,
        approvals: ApprovalHandler | None = None,
        rate_limiter: RateLimiter | None = None,
        cache: ToolResultCache | None = None,
        spool: SpoolStore | None = None,
        spool_policy: SpoolPolicy | None = None,
        workspace: str | os.PathLike[str] | None = None,
        resources: ResourceResolver = default_resources,
        clock: Clock | None = None,
        ids: IdGenerator | None = None,
        worker: str = "agent-loop",
        lease_ttl: timedelta = timedelta(minutes=5),
        snapshot_every: int = 100,
        pricing: Pricing | None = None,
        tokens: TokenCounter | None = None,
        redactor: Redactor | None = None,
        retry: ToolRetryPolicy | None = None,
        approval_timeout: timedelta | None = None,
    ) -> None:
        self._providers: dict[str, ModelProvider]
        if isinstance(providers, Mapping):
            self._providers = dict(providers)
        else:
            self._providers = {provider.name: provider for provider in providers}
        if not self._providers:
            raise ConfigurationError("an agent loop needs at least one model provider", setting="providers")
        self._tools: ToolRegistry = tools if isinstance(tools, ToolRegistry) else LocalToolRegistry(tools)
        self._store: RunStore = store if store is not None else InMemoryRunStore(clock=clock)
        self._sink = sink
        self._workspace = _workspace_root(workspace) if workspace is not None else None
        self._clock = clock or SystemClock()
        self._ids = ids or UlidGenerator()
        self._worker = worker
        self._started = RunStartedPayload(worker=worker)  # every run this loop starts records it
        self._lease_ttl = lease_ttl
        if snapshot_every < 1:
            raise ConfigurationError("snapshot_every must be at least 1", setting="snapshot_every")
        self._config = DriverConfig(
            pipeline=ToolPipeline(
                policy=policy, rate_limiter=rate_limiter, cache=cache, spool=spool, spool_policy=spool_policy
            ),
            approvals=approvals,
            resources=resources,
            clock=self._clock,
            ids=self._ids,
            snapshot_every=snapshot_every,
            pricing=pricing,
            tokens=tokens,
            redactor=redactor,
            retry=retry,
            approval_timeout=approval_timeout,
        )

    @property
    def store(self) -> RunStore:
        """The run store."""
        return self._store

    @property
    def tools(self) -> ToolRegistry:
        """The tool registry."""
        return self._tools

    def _provider(self, agent: AgentSpec) -> ModelProvider:
        name = agent.model.partition(":")[0]
        provider = self._providers.get(name)
        if provider is None:
            known = ", ".join(sorted(self._providers))
            raise ConfigurationError(
                f"agent {agent.name!r} uses model {agent.model!r}, but no provider is named {name!r} "
                f"(configured: {known})",
                setting="model",
            )
        return provider

    def _check_pricing(self, agent: AgentSpec) -> None:
        """A cost budget needs a price for the agent's model: refuse to start a run that cannot keep it."""
        pricing = self._config.pricing
        if agent.budget is None or agent.budget.max_cost_usd is None:
            return
        if pricing is None:
            raise ConfigurationError(
                f"agent {agent.name!r} has a cost budget, but the loop has no pricing: pass pricing=ModelCatalog()",
                setting="pricing",
            )
        try:
            pricing.cost(agent.model, Usage())
        except NotFoundError as error:
            raise ConfigurationError(
                f"agent {agent.name!r} has a cost budget, but its model has no price: {error}", setting="model"
            ) from error

    async def start(
        self,
        agent: AgentSpec,
        task: str,
        *,
        workspace: str | os.PathLike[str] | None = None,
        metadata: Mapping[str, JsonValue] | None = None,
        stream_model: bool = False,
        run_id: str | None = None,
    ) -> RunHandle:
        """Create a run and start driving it in a task; return its handle at once.

        Args:
            agent: The agent to run.
            task: What the agent should do (its first user message).
            workspace: Root directory of file and shell tools for this run (default: the loop's).
            metadata: Stored with the run.
            stream_model: Stream the model's replies (`RunHandle.events` then yields `ModelDelta`s).
            run_id: Use this id instead of a generated one.

        Raises:
            ConfigurationError: No provider serves the agent's model.
            AlreadyExistsError: `run_id` is taken.
        """
        handle, driver = await self._begin(agent, task, workspace, metadata, stream_model, run_id)
        handle._start(driver)
        return handle

    async def _begin(
        self,
        agent: AgentSpec,
        task: str,
        workspace: str | os.PathLike[str] | None,
        metadata: Mapping[str, JsonValue] | None,
        stream_model: bool,
        run_id: str | None,
    ) -> tuple[RunHandle, Driver]:
        """Create a run (see `start`) and the driver that will drive it."""
        self._provider(agent)
        self._check_pricing(agent)
        if not task.strip():
            raise ConfigurationError("the task cannot be blank", setting="task")
        run_id = run_id or self._ids.new_id("run")
        if metadata or type(agent) is not AgentSpec:
            created_payload = RunCreatedPayload(agent=agent, task=task, metadata=dict(metadata or {}))
        else:  # nothing left to validate: a validated agent, a str task (stripped above), no metadata
            created_payload = trusted(RunCreatedPayload, {"agent": agent, "task": task})
        if self._config.redactor is not None:
            created_payload = self._config.redactor.redact(created_payload)
        created = Event.recorded(
            created_payload, run_id=run_id, seq=1, ts=self._clock.now(), agent_id=agent.name, turn=0
        )
        return await self._create(run_id, created, _initial_state(agent, task), workspace, stream_model)

    async def _create(
        self,
        run_id: str,
        created: EventDraft,
        state: CheckpointState,
        workspace: str | os.PathLike[str] | None,
        stream_model: bool,
    ) -> tuple[RunHandle, Driver]:
        """Create a run, commit its first snapshot (`state`) and build its driver."""
        run = await self._store.create_run(run_id, created)
        lease = await self._store.acquire_lease(run_id, self._worker, ttl=self._lease_ttl)
        handle, recorder = self._handle(run, lease)
        recorder.add(self._started, turn=state.turn)
        await self._commit_snapshot(recorder, run_id, state)
        return handle, self._driver(handle, recorder, run, state, workspace, stream_model)

    async def _commit_snapshot(self, recorder: Recorder, run_id: str, state: CheckpointState) -> None:
        """Commit the first checkpoint of a run (a snapshot), with the events buffered so far."""
        now = self._clock.now()
        recorder.add(_FIRST_SNAPSHOT_SAVED, turn=state.turn, ts=now)
        snapshot = {
            "run_id": run_id,
            "turn": state.turn,
            "parent_turn": None,
            "status": CheckpointStatus.FINAL,
            "created_at": now,
            "state": state,
        }
        await recorder.commit(trusted(CheckpointSnapshot, snapshot))  # of a validated state

    def _handle(self, run: Run, lease: Lease) -> tuple[RunHandle, Recorder]:
        handle = RunHandle(run, self._store, RunControl())
        recorder = Recorder(
            self._store,
            lease,
            agent_id=run.agent.name,
            next_seq=run.last_seq + 1,
            clock=self._clock,
            sink=self._sink,
            listener=handle._on_events,
            lease_ttl=self._lease_ttl,
            redactor=self._config.redactor,
        )
        return handle, recorder

    def _driver(
        self,
        handle: RunHandle,
        recorder: Recorder,
        run: Run,
        state: CheckpointState,
        workspace: str | os.PathLike[str] | None,
        stream_model: bool,
        resume: ResumePoint | None = None,
    ) -> Driver:
        root = _workspace_root(workspace) if workspace is not None else self._workspace
        return Driver(
            self._config,
            run,
            state,
            provider=self._provider(run.agent),
            tools=self._tools.view(run.agent.tools),
            completion=complete_task,
            recorder=recorder,
            control=handle.control,
            workspace=root,
            stream_model=stream_model,
            on_delta=handle._on_delta,
            on_status=handle._on_status,
            resume=resume,
        )

    async def resume(
        self,
        run_id: str,
        *,
        workspace: str | os.PathLike[str] | None = None,
        stream_model: bool = False,
        steal: bool = False,
    ) -> RunHandle:
        """Continue a run from its last checkpoint (after a crash, a restart or an approval).

        The turn that was in progress is finished first, applying the side-effect ledger to each call
        whose outcome the log does not know: a call that never started runs normally; one that started
        and whose tool's effect is ``none`` or ``idempotent`` runs again (with the same idempotency key);
        a ``compensable`` one is settled by its tool's ``reconcile``; an ``unsafe`` one is never re-run
        silently: it needs an approval (reason ``unknown_outcome``), and without an approval handler the
        run waits for one. Approvals requested before are asked again under their recorded ids, so an
        answer given meanwhile (through the approval store) is found.

        Args:
            run_id: The run.
            workspace: Root directory of file and shell tools (default: the loop's).
            stream_model: Stream the model's replies.
            steal: Take the run's lease even if another worker's lease is still live (for a worker known
                to be dead).

        Raises:
            NotFoundError: No such run.
            ConfigurationError: The run has ended, or no provider serves its model.
            LeaseHeldError: Another worker holds the run and `steal` is false.
        """
        loaded = await self._store.load(run_id)
        run = loaded.run
        if run.status.is_terminal:
            raise ConfigurationError(
                f"run {run_id!r} has ended ({run.status.value}, {run.reason}); fork it to continue from a turn",
                setting="run_id",
            )
        self._provider(run.agent)
        point = await resume_point(self._store, loaded, await tail_events(self._store, loaded))
        lease = await self._store.acquire_lease(run_id, self._worker, ttl=self._lease_ttl, steal=steal)
        handle, recorder = self._handle(run, lease)
        recorder.add(RunStartedPayload(worker=self._worker, resumed=True), turn=loaded.state.turn)
        state = loaded.state
        if loaded.checkpoint_turn is None:  # the first driver died before its first commit
            state = _initial_state(run.agent, run.task)
            await self._commit_snapshot(recorder, run_id, state)
        handle._start(self._driver(handle, recorder, run, state, workspace, stream_model, point))
        return handle

    async def cancel(self, run_id: str, *, reason: str | None = None) -> Run:
        """Cancel a run that no handle of this loop is driving (to cancel a driven one: `RunHandle.cancel`).

        The loop takes the run's lease even from a live worker, which fences that worker out (its next
        write is refused), and records ``run.cancelled`` after the run's last event.

        Raises:
            NotFoundError: No such run.
            ConfigurationError: The run has already ended.
        """
        run = await self._store.get_run(run_id)
        if run.status.is_terminal:
            raise ConfigurationError(f"run {run_id!r} has already ended ({run.status.value})", setting="run_id")
        lease = await self._store.acquire_lease(run_id, self._worker, ttl=self._lease_ttl, steal=True)
        _, recorder = self._handle(run, lease)
        recorder.add(RunCancelledPayload(reason=reason), turn=run.turns)
        await recorder.commit()
        await self._store.release_lease(lease)
        return await self._store.get_run(run_id)

    async def replay(
        self,
        run_id: str,
        *,
        providers: Mapping[str, ModelProvider] | Iterable[ModelProvider] | None = None,
    ) -> ReplayReport:
        """Re-drive a recorded run offline and compare every decision with its log.

        The model's replies come from the log (or from `providers`, to try a changed script), tool results
        are fed back from the log (no tool runs, nothing touches the network) and recorded approval
        answers are given again; this loop's policy, tools and pricing decide. The replay runs on a
        scratch store that keeps only its decisions (`DecisionLog`) and the report names the first decision
        that differs.

        Raises:
            NotFoundError: No such run.
            ConfigurationError: The run is a fork (replay the run it was forked from).
        """
        events = await self._store.read_events(run_id, types=REPLAYED_TYPES)
        created = events[0].payload
        assert isinstance(created, RunCreatedPayload)  # every run log starts with run.created
        if "forked_from" in created.metadata:
            raise ConfigurationError(
                f"run {run_id!r} is a fork: it starts from another run's state; replay that run", setting="run_id"
            )
        agent = created.agent
        if providers is None:
            name = agent.model.partition(":")[0]
            providers = {name: RecordedProvider.from_events(events, name=name)}
        outcomes = recorded_outcomes(events)
        # Every tool answers from the log; complete_task stays real (it only validates, with no effect).
        replayed = [
            ReplayedTool(spec, outcomes)
            for spec in self._tools.view(agent.tools).specs()
            if not is_completion_tool(spec.name)
        ]
        scratch_log = DecisionLog(clock=self._clock)
        scratch = AgentLoop(
            providers=providers,
            tools=replayed,
            store=scratch_log,
            policy=self._config.pipeline.policy,
            approvals=ReplayedApprovals(events),
            resources=self._config.resources,
            workspace=self._workspace,
            clock=self._clock,
            pricing=self._config.pricing,
            tokens=self._config.tokens,
            snapshot_every=self._config.snapshot_every,
        )
        # Driven as `run` drives, without its cancellation record: a cancelled replay leaves nothing to record.
        handle, driver = await scratch._begin(agent, created.task, None, created.metadata, False, None)
        result = await handle._drive_here(driver)
        count, divergence = scratch_log.compare(events)
        return ReplayReport(
            run_id=run_id,
            replay_run_id=result.run_id,
            identical=divergence is None,
            decisions=count,
            divergence=divergence,
        )

    async def fork(
        self,
        run_id: str,
        *,
        at_turn: int,
        agent: AgentSpec | None = None,
        workspace: str | os.PathLike[str] | None = None,
        new_run_id: str | None = None,
    ) -> RunHandle:
        """Start a new run from the state of another at the end of turn `at_turn` (time travel).

        The new run records ``forked_from`` (run id and turn) in its metadata, keeps the original task and
        conversation up to that turn, and may use another agent spec (another model or policy).

        Raises:
            NotFoundError: No such run.
            ConfigurationError: `at_turn` is not a finished turn of the run.
        """
        loaded = await self._store.load(run_id, at_turn=at_turn)
        source = loaded.run
        if at_turn < 0 or loaded.state.turn != at_turn or loaded.state.pending_tool_calls:
            raise ConfigurationError(
                f"run {run_id!r} has no finished turn {at_turn} (its last checkpoint is turn {loaded.state.turn})",
                setting="at_turn",
            )
        agent = agent or source.agent
        self._provider(agent)
        self._check_pricing(agent)
        new_run_id = new_run_id or self._ids.new_id("run")
        forked: dict[str, JsonValue] = {"run_id": run_id, "turn": at_turn}
        created = EventDraft.of(
            RunCreatedPayload(
                agent=agent,
                task=source.task,
                parent_run_id=source.parent_run_id,
                root_run_id=source.root_run_id if source.parent_run_id else None,
                depth=source.depth,
                metadata={**source.metadata, "forked_from": forked},
            ),
            id=Event.id_for(new_run_id, 1),
            ts=self._clock.now(),
            agent_id=agent.name,
        )
        handle, driver = await self._create(new_run_id, created, loaded.state, workspace, stream_model=False)
        handle._start(driver)
        return handle

    async def run(
        self,
        agent: AgentSpec,
        task: str,
        *,
        workspace: str | os.PathLike[str] | None = None,
        metadata: Mapping[str, JsonValue] | None = None,
        run_id: str | None = None,
    ) -> RunResult:
        """Run an agent to its end (or until it waits for an approval) and return the result.

        The run is driven in the calling task (`start` drives it in a task of its own). Cancelling the
        calling task cancels the run: it stops where it is, the loop records ``run.cancelled`` (as
        `cancel` does) and the cancellation propagates, so ``asyncio.timeout`` around `run` works as
        anywhere else. A tool call cut short this way gets no recorded outcome (nobody knows how far it got).
        """
        handle, driver = await self._begin(agent, task, workspace, metadata, False, run_id)
        try:
            return await handle._drive_here(driver)
        except asyncio.CancelledError:
            try:
                await self.cancel(handle.run_id, reason=_CALLER_CANCELLED)
            except ConfigurationError:
                pass  # it ended just before
            except Exception:  # the cancellation goes on; the run stays resumable, as after a crash
                _log.exception("could not record the cancellation of run %s", handle.run_id)
            raise

    async def stream(
        self,
        agent: AgentSpec,
        task: str,
        *,
        workspace: str | os.PathLike[str] | None = None,
        metadata: Mapping[str, JsonValue] | None = None,
        run_id: str | None = None,
        deltas: bool = True,
    ) -> AsyncIterator[LoopEvent]:
        """Run an agent and yield its events (and model deltas) as they happen.

        Leaving the iteration early cancels the run. The result is in the final ``run.*`` event, or ask
        the store for the run.
        """
        handle = await self.start(
            agent, task, workspace=workspace, metadata=metadata, run_id=run_id, stream_model=deltas
        )
        async with contextlib.aclosing(handle.stream(deltas=deltas)) as items:  # closing this closes that
            async for item in items:
                yield item
