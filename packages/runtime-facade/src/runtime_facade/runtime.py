"""The composition root: `create_runtime` wires every plane into a `Runtime`.

```python
from runtime_facade import create_runtime, load_agent

async with create_runtime("sqlite:///runs.db", auto_upgrade=True) as runtime:
    result = await runtime.run(load_agent("agent.toml"), "Fix the failing test")
```

The runtime keeps, with each run, what its `AgentSpec` cannot hold (how to reach the model, the resolved
policy, the workspace) under the ``agent_runtime`` key of the run's metadata, so that `Runtime.resume`,
`Runtime.replay` and `Runtime.fork` rebuild the same agent in another process.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import aclosing, suppress
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from pydantic import BaseModel, ConfigDict, JsonValue

from runtime_control import (
    ApprovalBroker,
    ErrorRecovery,
    EventBus,
    HeuristicTokenCounter,
    ModelCatalog,
    PolicyFile,
    Redactor,
)
from runtime_core.agents import AgentSpec
from runtime_core.approvals import Approval, ApprovalDecision, ApprovalStatus, ApprovalStore
from runtime_core.clock import Clock, SystemClock
from runtime_core.events import Event, EventSink, EventType
from runtime_core.ids import IdGenerator, UlidGenerator
from runtime_core.memory import InMemoryApprovalStore, InMemoryRunStore
from runtime_core.providers import ModelProvider
from runtime_core.runs import Run, RunResult, RunStatus
from runtime_core.spool import SpoolStore
from runtime_core.stores import RunStore
from runtime_core.tools import Tool
from runtime_execution import (
    AgentLoop,
    AnthropicProvider,
    LocalToolRegistry,
    LoopEvent,
    OpenAIProvider,
    RecordedProvider,
    ReplayReport,
    RunHandle,
    ScriptedProvider,
    builtin_tools,
)
from runtime_facade._portal import Portal
from runtime_facade.agent_files import AgentDefinition, ModelSettings, PolicySource, load_agent, resolve_policy
from runtime_facade.config import ProjectConfig
from runtime_persistence import (
    SqlApprovalStore,
    SqlRunStore,
    SqlSpoolStore,
    check,
    create_engine,
    default_sqlite_url,
    upgrade,
)
from runtime_telemetry import TelemetryBridge

__all__ = ["LAUNCH_KEY", "AgentLike", "Launch", "Runtime", "create_runtime"]

LAUNCH_KEY = "agent_runtime"
"""The run-metadata key under which the runtime records how to rebuild a run's agent (a `Launch`)."""

AgentLike = AgentDefinition | AgentSpec | str | os.PathLike[str]
"""What the runtime accepts as an agent: a definition, a bare spec, or the path of an agent file."""

DEFAULT_POLICY = "balanced"
"""The preset of agents that name no policy, when the runtime is given none."""

_FOLLOW_POLL_S = 0.2
_CALLER_CANCELLED = "the task awaiting Runtime.run was cancelled"


class Launch(BaseModel):
    """How a run's agent is rebuilt in another process (stored in the run's metadata, never a secret).

    Attributes:
        model: How the model is reached (the API key is read from the environment again).
        policy: The policy the run started with, resolved (``None``: the run had none).
        policy_name: Where it came from: a preset name, a file, or ``inline``.
        workspace: Root of its file and shell tools.
        agent_file: The agent file it was read from.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    model: ModelSettings
    policy: PolicyFile | None = None
    policy_name: str | None = None
    workspace: str | None = None
    agent_file: str | None = None


class Runtime:
    """Runs agents durably under governance: made by `create_runtime`, closed with `aclose` (or ``async with``).

    Every method has a synchronous twin (``run_sync``, ``resume_sync``, ...) for scripts; use either the
    async or the sync methods of one runtime, not both.
    """

    def __init__(
        self,
        *,
        store: RunStore,
        approvals: ApprovalStore,
        spool: SpoolStore | None,
        bus: EventBus,
        sinks: Sequence[EventSink],
        telemetry: TelemetryBridge | None,
        tools: LocalToolRegistry,
        providers: Mapping[str, ModelProvider],
        policy: PolicySource | None,
        catalog: ModelCatalog,
        redactor: Redactor | None,
        workspace: Path | None,
        clock: Clock,
        ids: IdGenerator,
        worker: str,
        lease_ttl: timedelta,
        approval_wait: bool,
        approval_timeout_s: float | None,
        http_client: httpx.AsyncClient | None,
        close: Sequence[Any] = (),
    ) -> None:
        self.store = store
        """The run store (the log and checkpoints of every run)."""
        self.approval_store = approvals
        """Where approval requests wait for their answers."""
        self.bus = bus
        """The event bus: every committed event of the runs this runtime drives is published on it."""
        self.catalog = catalog
        """Model prices and context windows."""
        self.tools = tools
        """The tool registry agents select from."""
        self.broker = ApprovalBroker(
            approvals,
            # A run that stops to wait (approval_wait=False) waits for a person, however long: no expiry.
            timeout_s=approval_timeout_s if approval_wait else None,
            wait=approval_wait,
            clock=clock,
            poll_interval_s=0.5,
        )
        """Answers approval requests (in process, through the store, or at the timeout)."""
        self._spool = spool
        self.telemetry = telemetry
        """Turns the run log into OpenTelemetry spans and metrics (``None``: off)."""
        extra = (*sinks, telemetry) if telemetry is not None else tuple(sinks)
        self._sink: EventSink = _FanOut((bus, *extra)) if extra else bus
        self._providers = dict(providers)
        self._policy = policy
        self._redactor = redactor
        self._workspace = workspace
        self._clock = clock
        self._ids = ids
        self._worker = worker
        self._lease_ttl = lease_ttl
        self._http = http_client
        self._owns_http = http_client is None
        self._close = tuple(close)
        self._handles: dict[str, RunHandle] = {}
        self._portal = Portal()
        timeout_s = self.broker.timeout_s
        self._approval_timeout = None if timeout_s is None else timedelta(seconds=timeout_s)
        self._retry = ErrorRecovery()
        self._tokens = HeuristicTokenCounter()

    # -- running -----------------------------------------------------------------------------------------

    async def start(
        self,
        agent: AgentLike,
        task: str,
        *,
        workspace: str | os.PathLike[str] | None = None,
        metadata: Mapping[str, JsonValue] | None = None,
        run_id: str | None = None,
        stream_model: bool = False,
    ) -> RunHandle:
        """Start a run and return its handle at once (``await handle`` for the result).

        Args:
            agent: An `AgentDefinition`, an `AgentSpec`, or the path of an agent file.
            task: What the agent should do.
            workspace: Root of the file and shell tools (default: the agent's, then the runtime's).
            metadata: Stored with the run.
            run_id: Use this id instead of a generated one.
            stream_model: Stream the model's replies (the handle's events then include deltas).

        Raises:
            AgentFileError: `agent` is a path to an invalid agent file.
            ConfigurationError: The agent cannot run here (unknown provider, missing price for a cost budget,
                blank task, ...).
        """
        definition = self._definition(agent)
        if workspace is not None:
            definition = _with_workspace(definition, workspace)
        launch = self._launch(definition)
        loop = self._loop(launch)
        handle = await loop.start(
            definition.spec,
            task,
            workspace=launch.workspace,
            metadata={**(metadata or {}), LAUNCH_KEY: launch.model_dump(mode="json", exclude_none=True)},
            run_id=run_id,
            stream_model=stream_model,
        )
        return self._track(handle)

    async def run(self, agent: AgentLike, task: str, **options: Any) -> RunResult:
        """Run an agent to its end, or until it waits for an approval; options as for `start`.

        As with `AgentLoop.run`, cancelling the calling task cancels the run (it is recorded as cancelled
        before the cancellation propagates).
        """
        handle = await self.start(agent, task, **options)
        try:
            return await handle.result()
        except asyncio.CancelledError:
            await handle.stop(_CALLER_CANCELLED)
            raise

    async def stream(self, agent: AgentLike, task: str, **options: Any) -> AsyncIterator[LoopEvent]:
        """Run an agent and yield its events as they are recorded; leaving early cancels the run."""
        handle = await self.start(agent, task, **options)
        async with aclosing(handle.stream(deltas=bool(options.get("stream_model")))) as items:
            async for item in items:  # closing this stream closes the handle's, which cancels the run
                yield item

    async def resume(self, run_id: str, *, steal: bool = False) -> RunHandle:
        """Continue a run from its last checkpoint, here (after a crash, a restart or an approval).

        A run already driven by this runtime returns its live handle.

        Raises:
            NotFoundError: No such run.
            ConfigurationError: The run has ended (fork it instead) or its agent cannot be rebuilt.
            LeaseHeldError: Another live worker drives it (pass ``steal=True`` if it is known dead).
        """
        live = self._handles.get(run_id)
        if live is not None and not live.done:
            return live
        run = await self.store.get_run(run_id)
        launch = self._recorded_launch(run)
        loop = self._loop(launch, scripted_start=await self._replies(launch, run_id))
        return self._track(await loop.resume(run_id, workspace=launch.workspace, steal=steal))

    async def replay(self, run_id: str, *, agent: AgentLike | None = None) -> ReplayReport:
        """Re-drive a finished run offline and report the first decision that differs from its log.

        Args:
            run_id: The run.
            agent: Replay with this agent instead (its policy and tools; a scripted agent's scenario
                replaces the recorded replies): does the changed agent still decide the same?
        """
        run = await self.store.get_run(run_id)
        launch = self._recorded_launch(run) if agent is None else self._launch(self._definition(agent))
        providers = None
        if agent is not None and launch.model.provider == "scripted":
            providers = {"scripted": self._provider(launch.model)}
        return await self._loop(launch).replay(run_id, providers=providers)

    async def fork(self, run_id: str, *, at_turn: int, agent: AgentLike | None = None) -> RunHandle:
        """Start a new run from the end of turn `at_turn` of another (optionally with another agent).

        Raises:
            NotFoundError: No such run.
            ConfigurationError: `at_turn` is not a finished turn of the run.
        """
        run = await self.store.get_run(run_id)
        launch = self._recorded_launch(run) if agent is None else self._launch(self._definition(agent))
        spec = None if agent is None else self._definition(agent).spec
        loop = self._loop(launch, scripted_start=await self._replies(launch, run_id, up_to_turn=at_turn))
        return self._track(await loop.fork(run_id, at_turn=at_turn, agent=spec, workspace=launch.workspace))

    async def cancel(self, run_id: str, reason: str | None = None) -> Run:
        """Cancel a run, wherever it is driven, and deny its pending approvals.

        A run driven here is interrupted at once. Otherwise the runtime takes the run's lease (fencing out
        any worker still driving it: its next write is refused) and records ``run.cancelled``.

        Raises:
            NotFoundError: No such run.
            ConfigurationError: The run has already ended.
        """
        reason = reason or "cancelled by request"
        live = self._handles.get(run_id)
        if live is not None and not live.done:
            await live.stop(reason)
        else:
            launch = self._recorded_launch(await self.store.get_run(run_id))
            # Cancelling calls no model: a provider with no replies, not one built from the agent's settings
            # (a scripted agent's scenario file may be gone by now).
            idle = RecordedProvider((), name=launch.model.provider)
            await self._loop(launch, provider=idle).cancel(run_id, reason=reason)
        for approval in await self.approval_store.list(run_id=run_id, status=ApprovalStatus.PENDING):
            with suppress(Exception):  # answered meanwhile: nothing left to deny
                await self.broker.resolve(approval.id, ApprovalDecision.DENY, note=reason, resolved_by="cancel")
        return await self.store.get_run(run_id)

    async def approve(
        self,
        approval_id: str,
        *,
        allow: bool = True,
        note: str | None = None,
        resolved_by: str | None = None,
        sticky: bool = False,
    ) -> Approval:
        """Answer a pending approval request; a run waiting for it here continues at once.

        A run that stopped waiting (``waiting_approval``) continues with `resume`.

        Raises:
            NotFoundError: No such approval.
            ApprovalResolvedError: It is already answered.
        """
        decision = ApprovalDecision.ALLOW if allow else ApprovalDecision.DENY
        return await self.broker.resolve(approval_id, decision, note=note, resolved_by=resolved_by, sticky=sticky)

    # -- reading -----------------------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> Run:
        """The run record (a projection of its log)."""
        return await self.store.get_run(run_id)

    async def list_runs(self, *, status: RunStatus | None = None, limit: int = 100) -> Sequence[Run]:
        """The most recent runs, newest first."""
        return await self.store.list_runs(status=status, limit=limit)

    async def events(self, run_id: str, *, after_seq: int = 0, follow: bool = False) -> AsyncIterator[Event]:
        """Yield a run's recorded events after `after_seq`; with `follow`, go on until the run ends.

        A run driven by this runtime is followed live; one driven elsewhere is read from the store every
        200 ms.

        Raises:
            NotFoundError: No such run.
        """
        last = after_seq
        run = await self.store.get_run(run_id)
        while True:
            live = self._handles.get(run_id)
            if follow and live is not None and not live.done:
                async for item in live.events(after_seq=last, deltas=False):
                    if isinstance(item, Event):
                        last = item.seq
                        yield item
            for event in await self.store.read_events(run_id, after_seq=last):
                last = event.seq
                yield event
            if not follow or run.status.is_terminal:
                return
            run = await self.store.get_run(run_id)
            if run.status.is_terminal and run.last_seq <= last:
                return
            if run.last_seq <= last:
                await asyncio.sleep(_FOLLOW_POLL_S)

    async def pending_approvals(self, run_id: str | None = None) -> Sequence[Approval]:
        """Approval requests waiting for an answer (of one run, or of every run)."""
        return await self.approval_store.list(run_id=run_id, status=ApprovalStatus.PENDING)

    def handle(self, run_id: str) -> RunHandle | None:
        """The handle of a run this runtime is driving now, if any."""
        handle = self._handles.get(run_id)
        return handle if handle is not None and not handle.done else None

    # -- life cycle --------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Cancel the runs driven here (they stay resumable), close the HTTP client and the database."""
        for handle in list(self._handles.values()):
            if not handle.done:
                await handle.stop("the runtime was closed")
        if self._http is not None and self._owns_http:
            await self._http.aclose()
            self._http = None
        if self.telemetry is not None:
            self.telemetry.close()  # ends the spans of runs still open (waiting, or driven elsewhere)
        for resource in self._close:
            resource.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- synchronous conveniences ------------------------------------------------------------------------

    def run_sync(self, agent: AgentLike, task: str, **options: Any) -> RunResult:
        """`run`, from synchronous code."""
        return self._portal.call(self.run(agent, task, **options))

    def resume_sync(self, run_id: str, *, steal: bool = False) -> RunResult:
        """`resume` and wait for the run's end (or its next approval), from synchronous code."""
        return self._portal.call(self._resume_to_end(run_id, steal))

    def replay_sync(self, run_id: str, *, agent: AgentLike | None = None) -> ReplayReport:
        """`replay`, from synchronous code."""
        return self._portal.call(self.replay(run_id, agent=agent))

    def fork_sync(self, run_id: str, *, at_turn: int, agent: AgentLike | None = None) -> RunResult:
        """`fork` and wait for the new run's end, from synchronous code."""
        return self._portal.call(self._fork_to_end(run_id, at_turn, agent))

    def cancel_sync(self, run_id: str, reason: str | None = None) -> Run:
        """`cancel`, from synchronous code."""
        return self._portal.call(self.cancel(run_id, reason))

    def approve_sync(self, approval_id: str, **options: Any) -> Approval:
        """`approve`, from synchronous code."""
        return self._portal.call(self.approve(approval_id, **options))

    def close(self) -> None:
        """`aclose`, from synchronous code."""
        self._portal.call(self.aclose())
        self._portal.close()

    # -- wiring ------------------------------------------------------------------------------------------

    async def _resume_to_end(self, run_id: str, steal: bool) -> RunResult:
        return await (await self.resume(run_id, steal=steal)).result()

    async def _fork_to_end(self, run_id: str, at_turn: int, agent: AgentLike | None) -> RunResult:
        return await (await self.fork(run_id, at_turn=at_turn, agent=agent)).result()

    async def _replies(self, launch: Launch, run_id: str, *, up_to_turn: int | None = None) -> int:
        """How many scenario steps a scripted run has played (its recorded replies): where it goes on."""
        if launch.model.provider != "scripted" or "scripted" in self._providers:
            return 0
        replies = await self.store.read_events(run_id, types=(EventType.MODEL_RESPONDED,))
        return sum(1 for event in replies if up_to_turn is None or event.turn <= up_to_turn)

    def _track(self, handle: RunHandle) -> RunHandle:
        self._handles = {run_id: live for run_id, live in self._handles.items() if not live.done}
        self._handles[handle.run_id] = handle
        return handle

    def _definition(self, agent: AgentLike) -> AgentDefinition:
        if isinstance(agent, AgentDefinition):
            return agent
        if isinstance(agent, AgentSpec):
            return AgentDefinition.of(agent)
        return load_agent(agent)

    def _launch(self, definition: AgentDefinition) -> Launch:
        policy = definition.policy or self._policy
        workspace = definition.workspace or self._workspace
        return Launch(
            model=definition.model,
            policy=None if policy is None else policy.policy,
            policy_name=None if policy is None else policy.name,
            workspace=None if workspace is None else str(workspace),
            agent_file=None if definition.path is None else str(definition.path),
        )

    def _recorded_launch(self, run: Run) -> Launch:
        recorded = run.metadata.get(LAUNCH_KEY)
        if recorded is None:
            # A run started by a bare AgentLoop: its model and the runtime's defaults.
            return self._launch(AgentDefinition.of(run.agent))
        return Launch.model_validate(recorded)

    def _loop(self, launch: Launch, *, scripted_start: int = 0, provider: ModelProvider | None = None) -> AgentLoop:
        provider = (
            provider or self._providers.get(launch.model.provider) or self._provider(launch.model, start=scripted_start)
        )
        return AgentLoop(
            providers={launch.model.provider: provider},
            tools=self.tools,
            store=self.store,
            sink=self._sink,
            policy=None if launch.policy is None else launch.policy.build_engine(),
            approvals=self.broker,
            spool=self._spool,
            workspace=launch.workspace,
            clock=self._clock,
            ids=self._ids,
            worker=self._worker,
            lease_ttl=self._lease_ttl,
            pricing=self.catalog,
            tokens=self._tokens,
            redactor=self._redactor,
            retry=self._retry,
            approval_timeout=self._approval_timeout,
        )

    def _provider(self, model: ModelSettings, *, start: int = 0) -> ModelProvider:
        if model.provider == "scripted":
            assert model.scenario is not None  # ModelSettings requires it
            return ScriptedProvider.from_file(model.scenario, start=start)
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(model.timeout_s))
        options: dict[str, Any] = {"api_key": model.api_key(), "max_retries": model.max_retries}
        options["timeout_s"] = model.timeout_s
        endpoint = model.endpoint()
        if endpoint is not None:
            options["base_url"] = endpoint
        if model.provider == "openai":
            return OpenAIProvider(self._http, **options)
        return AnthropicProvider(self._http, **options)


class _FanOut:
    """An event sink that hands every boundary to several sinks (the bus first)."""

    def __init__(self, sinks: Iterable[EventSink]) -> None:
        self._sinks = tuple(sinks)

    def emit(self, events: Sequence[Event]) -> None:
        for sink in self._sinks:
            sink.emit(events)


def _with_workspace(definition: AgentDefinition, workspace: str | os.PathLike[str]) -> AgentDefinition:
    root = Path(workspace).resolve()
    return AgentDefinition(definition.spec, definition.model, definition.policy, root, definition.path)


def _default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def create_runtime(
    database: str | None = None,
    *,
    config: ProjectConfig | None = None,
    auto_upgrade: bool | None = None,
    tools: Iterable[Tool] = (),
    include_builtin_tools: bool = True,
    providers: Mapping[str, ModelProvider] | Iterable[ModelProvider] = (),
    policy: str | PolicyFile | None = None,
    catalog: ModelCatalog | None = None,
    redactor: Redactor | None = None,
    workspace: str | os.PathLike[str] | None = None,
    approval_wait: bool = False,
    approval_timeout_s: float | None = None,
    sinks: Sequence[EventSink] = (),
    telemetry: TelemetryBridge | bool = True,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    worker: str | None = None,
    lease_ttl: timedelta = timedelta(minutes=5),
    http_client: httpx.AsyncClient | None = None,
) -> Runtime:
    """Build a runtime: the only place where the planes' concrete parts are chosen and wired.

    Args:
        database: A SQLAlchemy URL (``sqlite:///runs.db``, ``postgresql+psycopg://...``). Without one: the
            project configuration's database if `config` is given (SQLite at ``.agent-runtime/runtime.db``
            in the project by default), else in-memory stores (nothing survives the process).
        config: Project configuration (`load_config`); explicit arguments win over its settings.
        auto_upgrade: Apply pending schema migrations at start. The default upgrades only the embedded
            default SQLite database; any database you name must be upgraded explicitly
            (``agent-runtime db upgrade``), and an outdated one raises `SchemaOutdatedError`.
        tools: Tools added to the registry (agents select from it with their ``tools`` patterns).
        include_builtin_tools: Register the built-in file and shell tools.
        providers: Model providers to use instead of building them from agents' ``[model]`` settings
            (keyed by provider name: ``openai``, ``anthropic``, ``scripted``).
        policy: Policy of agents that name none: a preset name, a policy file, or a `PolicyFile`
            (default: the configuration's, else the ``balanced`` preset).
        catalog: Model prices and context windows (default: the shipped catalog, plus the configuration's
            catalog file).
        redactor: Removes secrets from everything stored (default: a `Redactor` with the shipped patterns).
        workspace: Default root of the file and shell tools (default: the configuration's, else none: each
            agent must name one to use file tools).
        approval_wait: Let a run wait in process for approval answers (a server); ``False`` (the default)
            stops it in ``waiting_approval`` at once, to be answered and resumed later (a CLI).
        approval_timeout_s: With `approval_wait`, seconds before an unanswered request is denied
            (default: the configuration's, else 300).
        sinks: More event sinks besides the runtime's event bus and telemetry.
        telemetry: Turn the run log into OpenTelemetry spans and metrics: ``True`` builds a
            `TelemetryBridge` on `tracer_provider` and `meter_provider` (the global ones by default: no-ops
            until an application configures the SDK, as ``--otel`` does), or pass your own bridge.
        tracer_provider: Where spans go (see `telemetry`).
        meter_provider: Where metrics go (see `telemetry`).
        clock: Time source (a `ManualClock` makes runs deterministic).
        ids: Id source (`SequentialIds` makes ids deterministic).
        worker: This process's name as the owner of run leases (default ``<host>:<pid>``).
        lease_ttl: How long a run lease lasts without renewal.
        http_client: The HTTP client of the model providers (default: one owned by the runtime).

    Raises:
        ConfigurationError: A setting is invalid (unknown preset, unreadable policy or catalog file, ...).
        SchemaOutdatedError: The database's schema is behind this version and `auto_upgrade` is off.
        DatabaseError: The database cannot be reached.
    """
    clock = clock or SystemClock()
    settings = config.runtime if config is not None else None
    base = config.root if config is not None else Path.cwd()
    url = database
    if url is None and config is not None:
        url = config.database.url or default_sqlite_url(config.root)
        if auto_upgrade is None and config.database.url is None:
            auto_upgrade = True
    closing: list[Any] = []
    store: RunStore
    approvals: ApprovalStore
    spool: SpoolStore | None
    if url is None:
        store, approvals, spool = InMemoryRunStore(clock=clock), InMemoryApprovalStore(), None
    else:
        engine = create_engine(url, synchronous=config.database.synchronous if config is not None else "FULL")
        closing.append(engine)
        try:
            if auto_upgrade:
                upgrade(engine)
            else:
                check(engine)
        except BaseException:
            engine.dispose()  # the caller never gets a runtime to close
            raise
        store, approvals, spool = SqlRunStore(engine, clock=clock), SqlApprovalStore(engine), SqlSpoolStore(engine)
    policy_source: PolicySource | None
    if isinstance(policy, PolicyFile):
        policy_source = PolicySource("inline", policy)
    else:
        name = policy or (settings.policy if settings is not None else None) or DEFAULT_POLICY
        policy_source = resolve_policy(name, base)
    if catalog is None:
        catalog_file = config.resolve(settings.catalog) if config is not None and settings is not None else None
        catalog = ModelCatalog.load(catalog_file) if catalog_file is not None else ModelCatalog.default()
    if workspace is None and config is not None:
        workspace = config.resolve(config.runtime.workspace)
    if approval_timeout_s is None:
        approval_timeout_s = config.runtime.approval_timeout_s if config is not None else 300.0
    registry = LocalToolRegistry([*(builtin_tools() if include_builtin_tools else ()), *tools])
    provider_map = dict(providers) if isinstance(providers, Mapping) else {p.name: p for p in providers}
    if telemetry is True:
        telemetry = TelemetryBridge(tracer_provider, meter_provider)
    return Runtime(
        store=store,
        approvals=approvals,
        spool=spool,
        bus=EventBus(clock=clock),
        sinks=sinks,
        telemetry=telemetry if isinstance(telemetry, TelemetryBridge) else None,
        tools=registry,
        providers=provider_map,
        policy=policy_source,
        catalog=catalog,
        redactor=redactor if redactor is not None else Redactor(),
        workspace=None if workspace is None else Path(workspace).resolve(),
        clock=clock,
        ids=ids or UlidGenerator(),
        worker=worker or (settings.worker if settings is not None and settings.worker else _default_worker()),
        lease_ttl=lease_ttl,
        approval_wait=approval_wait,
        approval_timeout_s=approval_timeout_s,
        http_client=http_client,
        close=closing,
    )
