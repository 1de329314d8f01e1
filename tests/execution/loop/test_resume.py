"""Resume and fork: the side-effect ledger applied to calls whose outcome a crash left unknown.

A crash is simulated in process by a tool raising a `BaseException` that no layer catches: the driver
dies mid-turn with its lease held, as a killed process would. (Crashes of real processes, killed with
SIGKILL, are tested against the SQL store in tests/persistence.)
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runtime_core.approvals import Approval, ApprovalDecision, ApprovalResolution
from runtime_core.events import Event, EventDraft, RunCancelledPayload, RunCreatedPayload
from runtime_core.exceptions import ConfigurationError, FencingError, LeaseHeldError
from runtime_core.function_tools import tool
from runtime_core.memory import InMemoryRunStore
from runtime_core.messages import ToolResultMessage
from runtime_core.runs import RunStatus
from runtime_core.tools import ToolCall, ToolContext, ToolEffect, ToolSpec
from runtime_execution import AgentLoop, LocalToolRegistry, ScriptedProvider, builtin_tools
from tests.execution.loop._support import agent, call, calls, done, log, types


class Crash(BaseException):
    """The process dies here."""


class Ledger:
    """Tools that append to a file, crashing once at a chosen moment."""

    def __init__(self, path: Path, crash: str | None) -> None:
        self.path = path
        self.crash = crash

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def tools(self) -> list[Any]:
        @tool(name="ledger:append", effect=ToolEffect.UNSAFE)
        async def append(line: str) -> str:
            if self.crash == "before_effect":
                self.crash = None
                raise Crash
            with self.path.open("a") as handle:
                handle.write(line + "\n")
            if self.crash == "after_effect":
                self.crash = None
                raise Crash
            return f"appended {line}"

        @tool(name="ledger:put", effect=ToolEffect.IDEMPOTENT)
        async def put(line: str, context: ToolContext) -> str:
            lines = self.lines()
            if context.idempotency_key not in lines:
                with self.path.open("a") as handle:
                    handle.write(context.idempotency_key + "\n")
            if self.crash == "idempotent":
                self.crash = None
                raise Crash
            return "stored"

        return [append, put]


SCRIPT = {
    "steps": [
        calls(call("ledger:append", line="one")),
        calls(call("file:list")),
        done("appended"),
    ]
}


def run_until_crash(store: InMemoryRunStore, ledger: Ledger, script: dict[str, Any] = SCRIPT) -> str:
    loop = AgentLoop(
        providers=[ScriptedProvider(script)],
        tools=LocalToolRegistry([*builtin_tools(), *ledger.tools()]),
        store=store,
        workspace=Path.cwd(),
    )

    async def main() -> str:
        handle = await loop.start(agent(), "Append one line")
        with pytest.raises(Crash):
            await handle.result()
        return handle.run_id

    return asyncio.run(main())


def resume(
    store: InMemoryRunStore, ledger: Ledger, run_id: str, script: dict[str, Any] = SCRIPT, **options: Any
) -> Any:
    async def main() -> Any:
        replies = sum(1 for e in await store.read_events(run_id) if e.type.value == "model.responded")
        loop = AgentLoop(
            providers=[ScriptedProvider(script, start=replies)],  # a fresh provider, as in a new process
            tools=LocalToolRegistry([*builtin_tools(), *ledger.tools()]),
            store=store,
            workspace=Path.cwd(),
            **options,
        )
        handle = await loop.resume(run_id, steal=True)
        return await handle.result()

    return asyncio.run(main())


class Approver:
    def __init__(self, decision: ApprovalDecision) -> None:
        self.decision = decision
        self.asked: list[Approval] = []

    async def decide(self, approval: Approval) -> ApprovalResolution:
        self.asked.append(approval)
        return ApprovalResolution(approval_id=approval.id, decision=self.decision, resolved_by="ops")


def test_an_unsafe_call_with_unknown_outcome_is_never_rerun_silently(tmp_path: Path) -> None:
    store, ledger = InMemoryRunStore(), Ledger(tmp_path / "ledger.txt", crash="after_effect")
    run_id = run_until_crash(store, ledger)
    assert ledger.lines() == ["one"]

    result = resume(store, ledger, run_id)  # no approval handler: the run waits for a human
    assert (result.status, result.reason) == (RunStatus.WAITING_APPROVAL, "unknown_outcome")
    assert ledger.lines() == ["one"]

    async def check() -> None:
        run = await store.get_run(run_id)
        assert (run.status, run.reason) == (RunStatus.WAITING_APPROVAL, "unknown_outcome")
        events = await log(store, run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        requested = next(e.payload for e in events if e.type.value == "approval.requested")
        assert requested.reason_code == "unknown_outcome"

    asyncio.run(check())

    approver = Approver(ApprovalDecision.DENY)
    result = resume(store, ledger, run_id, approvals=approver)
    assert result.ok
    assert ledger.lines() == ["one"]  # at most once
    assert [a.tool_call.name for a in approver.asked] == ["ledger:append"]

    async def told() -> None:
        state = (await store.load(run_id)).state
        outcome = next(m for m in state.messages if isinstance(m, ToolResultMessage))
        assert outcome.is_error
        assert "outcome before the restart is unknown" in outcome.content

    asyncio.run(told())


def test_an_approved_rerun_of_an_unknown_outcome_runs_the_call_again(tmp_path: Path) -> None:
    store, ledger = InMemoryRunStore(), Ledger(tmp_path / "ledger.txt", crash="after_effect")
    run_id = run_until_crash(store, ledger)
    result = resume(store, ledger, run_id, approvals=Approver(ApprovalDecision.ALLOW))
    assert result.ok
    assert ledger.lines() == ["one", "one"]  # a human chose to run it again


def test_a_crash_before_the_effect_is_still_an_unknown_outcome(tmp_path: Path) -> None:
    # The ledger cannot tell "crashed before the effect" from "after": it only knows the call started.
    store, ledger = InMemoryRunStore(), Ledger(tmp_path / "ledger.txt", crash="before_effect")
    run_id = run_until_crash(store, ledger)
    assert ledger.lines() == []
    result = resume(store, ledger, run_id)
    assert result.reason == "unknown_outcome"


def test_an_idempotent_call_is_rerun_with_the_same_key(tmp_path: Path) -> None:
    script = {"steps": [calls(call("ledger:put", line="one")), done("stored")]}
    store, ledger = InMemoryRunStore(), Ledger(tmp_path / "ledger.txt", crash="idempotent")
    run_id = run_until_crash(store, ledger, script)
    assert ledger.lines() == ["call_0_0"]

    result = resume(store, ledger, run_id, script)
    assert result.ok
    assert ledger.lines() == ["call_0_0"]  # the key made the second run a no-op

    async def check() -> None:
        events = await log(store, run_id)
        assert types(events).count("tool.started") == 2  # the first run's and the re-run's
        assert types(events).count("run.started") == 2

    asyncio.run(check())


def test_resume_reads_back_the_whole_open_turn_however_many_events_it_holds(tmp_path: Path) -> None:
    # The log is read backwards in growing pages (16, 32, 64, ...) until one reaches an earlier turn: a turn
    # of 40 calls spans several pages, and every one of its events must be there.
    from runtime_execution.loop._resume import tail_events

    script = {
        "steps": [
            calls(call("file:list")),
            calls(*[call("file:list") for _ in range(40)], call("ledger:put", line="x")),
            done("stored"),
        ]
    }
    store, ledger = InMemoryRunStore(), Ledger(tmp_path / "ledger.txt", crash="idempotent")
    run_id = run_until_crash(store, ledger, script)

    async def check() -> None:
        loaded = await store.load(run_id)
        everything = await store.read_events(run_id)
        wanted = [e for e in everything if e.turn >= 2]
        assert loaded.checkpoint_turn == 2
        assert len(wanted) > 16 + 32
        assert await tail_events(store, loaded) == wanted

    asyncio.run(check())
    assert resume(store, ledger, run_id, script).ok


def test_a_run_waiting_for_approval_continues_after_a_restart(tmp_path: Path) -> None:
    class AskAppend:
        def evaluate(self, call: ToolCall, spec: ToolSpec | None, context: Any) -> Any:
            from runtime_core.policy import PolicyDecision, PolicyOutcome

            if call.name == "ledger:append":
                return PolicyDecision(
                    allowed=True, requires_confirmation=True, policy_decision=PolicyOutcome.ALLOW_WITH_CONFIRM
                )
            return PolicyDecision(allowed=True, policy_decision=PolicyOutcome.ALLOW)

    store, ledger = InMemoryRunStore(), Ledger(tmp_path / "ledger.txt", crash=None)
    loop = AgentLoop(
        providers=[ScriptedProvider(SCRIPT)],
        tools=LocalToolRegistry([*builtin_tools(), *ledger.tools()]),
        store=store,
        policy=AskAppend(),
        workspace=Path.cwd(),
    )
    first = asyncio.run(loop.run(agent(), "Append"))
    assert first.status is RunStatus.WAITING_APPROVAL
    approver = Approver(ApprovalDecision.ALLOW)
    result = resume(store, ledger, first.run_id, approvals=approver, policy=AskAppend())
    assert result.ok
    assert ledger.lines() == ["one"]

    async def check() -> None:
        events = await log(store, first.run_id)
        requested = [e.payload.approval_id for e in events if e.type.value == "approval.requested"]
        assert len(requested) == 2
        assert len(set(requested)) == 1  # asked again under the same id, so a stored answer is found
        assert approver.asked[0].id == requested[0]

    asyncio.run(check())


def test_resume_refuses_finished_runs_and_live_leases(tmp_path: Path) -> None:
    store = InMemoryRunStore()
    loop = AgentLoop(providers=[ScriptedProvider({"steps": [done()]})], store=store)
    finished = asyncio.run(loop.run(agent(), "Finish"))
    with pytest.raises(ConfigurationError, match="has ended"):
        asyncio.run(loop.resume(finished.run_id))

    ledger = Ledger(tmp_path / "ledger.txt", crash="after_effect")
    crashed = run_until_crash(store, ledger)
    asyncio.run(store.acquire_lease(crashed, "a-live-worker", ttl=timedelta(minutes=5)))
    with pytest.raises(LeaseHeldError):
        asyncio.run(AgentLoop(providers=[ScriptedProvider(SCRIPT)], store=store, worker="other").resume(crashed))


def test_fork_continues_from_a_turn_with_another_script(tmp_path: Path) -> None:
    store = InMemoryRunStore()
    script = {"steps": [calls(call("file:list")), calls(call("file:list", path="src")), done("original")]}
    loop = AgentLoop(providers=[ScriptedProvider(script)], tools=builtin_tools(), store=store, workspace=Path.cwd())
    original = asyncio.run(loop.run(agent(), "List"))
    assert original.turns == 3

    other = AgentLoop(
        providers=[ScriptedProvider({"steps": [done("forked")]})],
        tools=builtin_tools(),
        store=store,
        workspace=Path.cwd(),
    )

    async def main() -> None:
        handle = await other.fork(original.run_id, at_turn=1)
        result = await handle.result()
        assert result.ok
        assert result.output == "forked"
        assert result.turns == 2  # turn 1 came from the original, turn 2 is the fork's own
        run = await store.get_run(handle.run_id)
        assert run.metadata["forked_from"] == {"run_id": original.run_id, "turn": 1}
        state = (await store.load(handle.run_id)).state
        original_state = (await store.load(original.run_id, at_turn=1)).state
        assert state.messages[: len(original_state.messages)] == original_state.messages
        with pytest.raises(ConfigurationError, match="no finished turn 7"):
            await other.fork(original.run_id, at_turn=7)

    asyncio.run(main())


def test_resume_keeps_the_one_tool_per_turn_rule_of_interactive_mode(tmp_path: Path) -> None:
    from runtime_core.agents import ExecutionMode

    script = {
        "steps": [
            calls(call("ledger:put", line="one"), call("ledger:put", line="two")),
            done("stored"),
        ]
    }
    store, ledger = InMemoryRunStore(), Ledger(tmp_path / "ledger.txt", crash="idempotent")
    loop = AgentLoop(
        providers=[ScriptedProvider(script)], tools=LocalToolRegistry([*builtin_tools(), *ledger.tools()]), store=store
    )
    interactive = agent(mode=ExecutionMode.INTERACTIVE)

    async def crash() -> str:
        handle = await loop.start(interactive, "Store")
        with pytest.raises(Crash):
            await handle.result()
        return handle.run_id

    run_id = asyncio.run(crash())

    assert resume(store, ledger, run_id, script).ok
    assert ledger.lines() == ["call_0_0"]  # the second call of the turn never runs, before or after the crash


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_cancel_a_run_driven_nowhere_fences_and_records_it() -> None:
    store = InMemoryRunStore()
    loop = AgentLoop(providers=[ScriptedProvider({"steps": [done("ok")]})], store=store, worker="canceller")
    created = EventDraft.of(
        RunCreatedPayload(agent=agent(), task="t"), id=Event.id_for("run_x", 1), ts=NOW, agent_id="a"
    )

    async def scenario() -> None:
        run = await store.create_run("run_x", created)
        stale = await store.acquire_lease(run.id, "dead-worker", ttl=timedelta(minutes=5))
        cancelled = await loop.cancel(run.id, reason="no longer needed")
        assert cancelled.status is RunStatus.CANCELLED
        events = await store.read_events(run.id)
        assert [event.type.value for event in events] == ["run.created", "run.cancelled"]
        assert isinstance(events[-1].payload, RunCancelledPayload)
        assert events[-1].payload.reason == "no longer needed"
        with pytest.raises(FencingError):  # the worker that held the run can no longer write
            await store.append(stale, [])
        with pytest.raises(ConfigurationError, match="already ended"):
            await loop.cancel(run.id)

    asyncio.run(scenario())
