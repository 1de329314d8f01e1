"""Offline replay: a finished run replays identically; a changed script or policy shows the first divergence."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runtime_core.clock import SystemClock
from runtime_core.exceptions import AlreadyExistsError, ConfigurationError, FencingError, NotFoundError
from runtime_core.function_tools import tool
from runtime_core.memory import InMemoryRunStore
from runtime_core.policy import PolicyAction, PolicyContext, PolicyDecision, PolicyOutcome
from runtime_core.providers import ModelRequest, ModelResponse, StreamChunk
from runtime_core.tools import ToolCall, ToolEffect, ToolSpec
from runtime_execution import AgentLoop, LocalToolRegistry, ScriptedProvider, builtin_tools, decisions
from runtime_execution.loop.replay import DecisionLog, compare_decisions
from tests.execution.loop._support import agent, call, calls, done

SCRIPT = {
    "steps": [
        calls(call("file:read", path="notes.txt")),
        calls(call("ledger:append", line="one"), call("file:list")),
        done("appended"),
    ]
}


class DenyAppend:
    def evaluate(self, call: ToolCall, spec: ToolSpec | None, context: PolicyContext) -> PolicyDecision:
        if call.name == "ledger:append":
            return PolicyDecision(
                allowed=False,
                policy_decision=PolicyOutcome.DENY,
                reason="no appends",
                policy_rule_id="no-append",
                policy_action=PolicyAction.DENY,
            )
        return PolicyDecision(allowed=True, policy_decision=PolicyOutcome.ALLOW, policy_rule_id="default")


class AllowAll:
    def evaluate(self, call: ToolCall, spec: ToolSpec | None, context: PolicyContext) -> PolicyDecision:
        return PolicyDecision(allowed=True, policy_decision=PolicyOutcome.ALLOW, policy_rule_id="default")


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[InMemoryRunStore, str, list[str], Path]:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("note\n")
    effects: list[str] = []

    @tool(name="ledger:append", effect=ToolEffect.UNSAFE)
    async def append(line: str) -> str:
        effects.append(line)
        return f"appended {line}"

    store = InMemoryRunStore()
    loop = AgentLoop(
        providers=[ScriptedProvider(SCRIPT)],
        tools=LocalToolRegistry([*builtin_tools(), append]),
        store=store,
        policy=AllowAll(),
        workspace=workspace,
    )
    result = asyncio.run(loop.run(agent(), "Append a line"))
    assert result.ok
    assert effects == ["one"]
    return store, result.run_id, effects, workspace


def replayer(store: InMemoryRunStore, workspace: Path, effects: list[str], **options: Any) -> AgentLoop:
    @tool(name="ledger:append", effect=ToolEffect.UNSAFE)
    async def append(line: str) -> str:
        effects.append(f"replay ran {line}")
        return "should never run"

    options.setdefault("policy", AllowAll())
    return AgentLoop(
        providers=[ScriptedProvider({"steps": []})],  # replay must not call it: the log answers
        tools=LocalToolRegistry([*builtin_tools(), append]),
        store=store,
        workspace=workspace,
        **options,
    )


def test_a_finished_run_replays_with_no_divergence_and_no_effects(recorded: Any) -> None:
    store, run_id, effects, workspace = recorded
    report = asyncio.run(replayer(store, workspace, effects).replay(run_id))
    assert report.identical
    assert report.divergence is None
    assert report.decisions >= 10
    assert effects == ["one"]  # the unsafe tool did not run again


def test_a_changed_policy_shows_the_first_divergent_decision(recorded: Any) -> None:
    store, run_id, effects, workspace = recorded
    report = asyncio.run(replayer(store, workspace, effects, policy=DenyAppend()).replay(run_id))
    assert not report.identical
    divergence = report.divergence
    assert divergence is not None
    assert divergence.turn == 2
    assert divergence.expected is not None
    assert "policy.decided" in divergence.expected
    assert "'allow'" in divergence.expected
    assert divergence.actual is not None
    assert "'deny'" in divergence.actual
    assert "no-append" in divergence.actual
    assert effects == ["one"]


def test_a_changed_script_shows_the_first_divergent_tool_call(recorded: Any) -> None:
    store, run_id, effects, workspace = recorded
    changed = {
        "steps": [
            calls(call("file:read", path="notes.txt")),
            calls(call("ledger:append", line="two"), call("file:list")),
            done("appended"),
        ]
    }
    report = asyncio.run(replayer(store, workspace, effects).replay(run_id, providers=[ScriptedProvider(changed)]))
    assert report.divergence is not None
    assert report.divergence.turn == 2
    assert report.divergence.expected is not None
    assert "'one'" in report.divergence.expected
    assert report.divergence.actual is not None
    assert "'two'" in report.divergence.actual
    assert effects == ["one"]


def test_compare_decisions_names_where_one_log_stops_before_the_other(recorded: Any) -> None:
    store, run_id, _, _ = recorded
    log = list(asyncio.run(store.read_events(run_id)))
    count = len(decisions(log))
    last = max(index for index, event in enumerate(log) if event.type.value == "tool.called")

    assert compare_decisions(log, log) == (count, None)
    for recorded_log, replayed_log in ((log, log[:last]), (log[:last], log)):
        shorter = decisions(log[:last])
        total, divergence = compare_decisions(recorded_log, replayed_log)
        assert total == len(decisions(recorded_log))
        assert divergence is not None
        assert divergence.index == len(shorter)  # the first decision only one side made
        assert divergence.turn == log[last].turn
        missing_on_replay = replayed_log is not log
        assert (divergence.expected is not None) is missing_on_replay
        assert (divergence.actual is not None) is not missing_on_replay
        assert divergence.seq == (log[last].seq if missing_on_replay else None)
        assert "tool.called" in (divergence.expected or divergence.actual or "")


def test_the_scratch_log_keeps_the_decisions_a_store_would_hold(recorded: Any) -> None:
    store, run_id, effects, workspace = recorded
    scratch = DecisionLog(clock=SystemClock())
    loop = replayer(store, workspace, effects)
    rerun = AgentLoop(
        providers=[ScriptedProvider(SCRIPT)], tools=loop.tools, store=scratch, policy=AllowAll(), workspace=workspace
    )

    async def main() -> None:
        result = await rerun.run(agent(), "Append a line")
        assert result.ok
        log = list(await store.read_events(run_id))
        assert scratch.compare(log) == (len(decisions(log)), None)
        assert scratch.compare(log[:-1])[1] is not None  # the recorded log lacks the run's end
        for read in (scratch.get_run(result.run_id), scratch.read_events(result.run_id), scratch.load(result.run_id)):
            with pytest.raises(NotFoundError):
                await read  # nothing is kept to read back
        assert await scratch.list_runs() == ()

    asyncio.run(main())
    assert effects == ["one", "replay ran one"]  # the tool of a rerun (not a replay) runs


def test_the_scratch_log_places_events_densely_and_refuses_a_stale_lease(recorded: Any) -> None:
    store, run_id, _, _ = recorded
    log = list(asyncio.run(store.read_events(run_id)))
    scratch = DecisionLog(clock=SystemClock())

    async def main() -> None:
        with pytest.raises(ValueError, match=r"run\.created draft"):
            await scratch.create_run(run_id, log[1])
        run = await scratch.create_run(run_id, log[0])
        assert run.id == run_id
        with pytest.raises(AlreadyExistsError):
            await scratch.create_run("another", log[0])
        with pytest.raises(NotFoundError):
            await scratch.acquire_lease("another", "w", ttl=timedelta(seconds=30))
        stale = await scratch.acquire_lease(run_id, "w", ttl=timedelta(seconds=30))
        lease = await scratch.acquire_lease(run_id, "w", ttl=timedelta(seconds=30))
        with pytest.raises(FencingError):
            await scratch.append(stale, log[1:3])
        placed = await scratch.append(lease, log[1:4])
        assert [event.seq for event in placed] == [2, 3, 4]
        assert [event.id for event in placed] == [event.id for event in log[1:4]]
        await scratch.release_lease(lease)
        with pytest.raises(FencingError):
            await scratch.append(lease, log[4:5])

    asyncio.run(main())


class Silent:
    """A model that never answers."""

    name = "scripted"

    async def complete(self, request: ModelRequest) -> ModelResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        raise NotImplementedError


def test_a_cancelled_replay_stops_without_recording_or_logging(recorded: Any, caplog: pytest.LogCaptureFixture) -> None:
    store, run_id, effects, workspace = recorded
    loop = replayer(store, workspace, effects)
    before = len(asyncio.run(store.read_events(run_id)))

    async def main() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await loop.replay(run_id, providers=[Silent()])

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert caplog.records == []  # the scratch run ends with the replay: there is no cancellation to record
    assert len(asyncio.run(store.read_events(run_id))) == before


def test_forks_are_replayed_through_their_origin(recorded: Any) -> None:
    store, run_id, effects, workspace = recorded
    loop = replayer(store, workspace, effects)

    async def main() -> None:
        fork = await loop.fork(run_id, at_turn=1)
        await fork.result()
        with pytest.raises(ConfigurationError, match="is a fork"):
            await loop.replay(fork.run_id)

    asyncio.run(main())


class AskAppend:
    def evaluate(self, call: ToolCall, spec: ToolSpec | None, context: PolicyContext) -> PolicyDecision:
        if call.name == "ledger:append":
            return PolicyDecision(
                allowed=True,
                requires_confirmation=True,
                policy_decision=PolicyOutcome.ALLOW_WITH_CONFIRM,
                reason="appends need a human",
                policy_rule_id="ask-append",
                policy_action=PolicyAction.ASK,
            )
        return PolicyDecision(allowed=True, policy_decision=PolicyOutcome.ALLOW, policy_rule_id="default")


def test_a_run_resumed_after_an_approval_replays_identically(tmp_path: Path) -> None:
    # The resumed driver decides the waiting call again and asks again under the same approval id;
    # the replay, which never stops, decides once: the repeat is not a divergence.
    from runtime_control import ApprovalBroker

    effects: list[str] = []

    @tool(name="ledger:append", effect=ToolEffect.UNSAFE)
    async def append(line: str) -> str:
        effects.append(line)
        return f"appended {line}"

    store = InMemoryRunStore()
    broker = ApprovalBroker(wait=False)

    def make(steps_played: int) -> AgentLoop:
        return AgentLoop(
            providers=[ScriptedProvider(SCRIPT, start=steps_played)],
            tools=LocalToolRegistry([*builtin_tools(), append]),
            store=store,
            policy=AskAppend(),
            approvals=broker,
            workspace=tmp_path,
        )

    (tmp_path / "notes.txt").write_text("note\n")

    async def scenario() -> str:
        first = await make(0).run(agent(), "Append a line")
        assert first.status.value == "waiting_approval"
        [request] = await broker.store.list(run_id=first.run_id)
        await broker.resolve(request.id, "allow", resolved_by="test")
        replies = sum(1 for event in await store.read_events(first.run_id) if event.type.value == "model.responded")
        second = await (await make(replies).resume(first.run_id)).result()
        assert second.ok
        asked = [e for e in await store.read_events(first.run_id) if e.type.value == "approval.requested"]
        assert len(asked) == 2  # asked before the stop and again on resume, under one id
        return first.run_id

    run_id = asyncio.run(scenario())
    assert effects == ["one"]
    report = asyncio.run(replayer(store, tmp_path, effects, policy=AskAppend(), approvals=None).replay(run_id))
    assert report.identical, report.divergence
    assert effects == ["one"]
