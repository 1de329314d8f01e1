"""The agent loop end to end: completion contract, recovery, modes, tools, control signals, the run log."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runtime_core.agents import ExecutionMode, RecoveryConfig
from runtime_core.approvals import Approval, ApprovalDecision, ApprovalResolution
from runtime_core.checkpoints import CheckpointSnapshot
from runtime_core.clock import ManualClock
from runtime_core.events import Event, ToolFailedPayload, ToolFinishedPayload
from runtime_core.exceptions import ConfigurationError, FencingError
from runtime_core.function_tools import tool
from runtime_core.ids import SequentialIds
from runtime_core.memory import InMemoryRunStore, InMemorySpoolStore
from runtime_core.messages import AssistantMessage, ToolResultMessage, UserMessage
from runtime_core.policy import PolicyAction, PolicyContext, PolicyDecision, PolicyOutcome
from runtime_core.runs import RunStatus
from runtime_core.tools import ToolCall, ToolConcurrency, ToolContext, ToolEffect, ToolSpec
from runtime_execution import LocalToolRegistry, builtin_tools
from runtime_execution.loop import AgentLoop, AgentStatus, ModelDelta, SpoolPolicy, _deadline
from tests.execution.loop._support import RecordingProvider, agent, call, calls, done, log, types


def make_loop(provider: RecordingProvider, *extra_tools: Any, **options: Any) -> AgentLoop:
    registry = LocalToolRegistry([*builtin_tools(), *extra_tools])
    options.setdefault("ids", SequentialIds())
    return AgentLoop(providers=[provider], tools=registry, **options)


def failures(events: Sequence[Event]) -> dict[str, str]:
    """Tool call id → error code of every failed call."""
    return {
        e.tool_call_id or "": e.payload.error.code.value for e in events if isinstance(e.payload, ToolFailedPayload)
    }


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "notes.txt").write_text("first line\nsecond line\n")
    return root


# -- the completion contract ------------------------------------------------------------------------


def test_success_path_records_every_step_and_checkpoints_the_conversation(ws: Path) -> None:
    provider = RecordingProvider(calls(call("file:read", path="notes.txt")), done("read the notes"))
    loop = make_loop(provider, workspace=ws)

    async def main() -> None:
        result = await loop.run(agent(), "Read the notes")
        assert result.status is RunStatus.COMPLETED
        assert result.ok
        assert result.reason == "completed"
        assert result.output == "read the notes"
        assert result.completion is not None
        assert result.completion.summary == "read the notes"
        assert result.turns == 2
        assert result.usage.requests == 2
        events = await log(loop.store, result.run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert result.last_seq == len(events)
        assert types(events, turn=1) == [
            "turn.started",
            "model.requested",
            "model.responded",
            "tool.called",
            "tool.finished",  # a read-only tool needs no start record
            "turn.finished",
            "checkpoint.saved",
        ]
        assert types(events)[-4:] == ["completion.recorded", "turn.finished", "checkpoint.saved", "run.completed"]
        run = await loop.store.get_run(result.run_id)
        assert (run.status, run.reason, run.turns) == (RunStatus.COMPLETED, "completed", 2)
        assert run.usage == result.usage
        state = (await loop.store.load(result.run_id)).state
        assert state.turn == 2
        roles = [m.role for m in state.messages]
        assert roles == ["system", "user", "assistant", "tool", "assistant", "tool"]
        tool_message = state.messages[3]
        assert isinstance(tool_message, ToolResultMessage)
        assert "first line" in tool_message.content
        assert state.pending_tool_calls == ()
        # The second request carried the first turn's tool result to the model.
        assert any(isinstance(m, ToolResultMessage) for m in provider.requests[1].messages)

    asyncio.run(main())


def test_text_only_reply_fails_with_no_completion_and_keeps_the_text() -> None:
    provider = RecordingProvider({"text": "I think I am finished."})
    loop = make_loop(provider)
    result = asyncio.run(loop.run(agent(), "Do something"))
    assert (result.status, result.reason) == (RunStatus.FAILED, "no_completion")
    assert result.output == "I think I am finished."

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        failed = events[-1].payload
        assert failed.type == "run.failed"
        assert failed.partial_output == "I think I am finished."

    asyncio.run(check())


def test_turn_limit_without_recovery_fails_with_no_completion() -> None:
    steps = [calls(call("file:list", path=".")) for _ in range(3)]
    provider = RecordingProvider(*steps)
    loop = make_loop(provider, workspace=Path.cwd())
    result = asyncio.run(loop.run(agent(max_turns=3, recovery=RecoveryConfig(enabled=False)), "Loop"))
    assert (result.status, result.reason, result.turns) == (RunStatus.FAILED, "no_completion", 3)
    assert len(provider.requests) == 3


def test_completion_mixed_with_other_tools_fails_the_turn_and_runs_nothing(ws: Path) -> None:
    provider = RecordingProvider(
        calls(call("file:write", path="out.txt", content="x"), call("complete_task", summary="early")),
        done("properly"),
    )
    loop = make_loop(provider, workspace=ws)
    result = asyncio.run(loop.run(agent(), "Write then finish"))
    assert result.status is RunStatus.COMPLETED
    assert result.output == "properly"
    assert not (ws / "out.txt").exists()

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        first_turn = [e for e in events if e.turn == 1]
        assert "tool.started" not in types(first_turn)
        assert set(failures(first_turn).values()) == {"VALIDATION_ERROR"}
        errors = [e.payload for e in first_turn if e.type.value == "error"]
        assert [e.code for e in errors] == ["completion_not_alone"]

    asyncio.run(check())


def test_invalid_completion_is_shown_to_the_model_and_the_run_goes_on() -> None:
    provider = RecordingProvider(calls(call("complete_task", summary="   ")), done("fixed"))
    loop = make_loop(provider)
    result = asyncio.run(loop.run(agent(), "Finish"))
    assert result.status is RunStatus.COMPLETED
    assert result.turns == 2
    last = provider.requests[1].messages[-1]
    assert isinstance(last, ToolResultMessage)
    assert last.is_error
    assert "INVALID_ARGUMENTS" in last.content


# -- recovery ---------------------------------------------------------------------------------------


def test_recovery_turn_at_the_limit_exposes_only_complete_task(ws: Path) -> None:
    provider = RecordingProvider(calls(call("file:read", path="notes.txt")), done("wrapped up"))
    loop = make_loop(provider, workspace=ws)
    result = asyncio.run(loop.run(agent(max_turns=4, recovery=RecoveryConfig(grace_turns=2)), "Work"))
    assert result.status is RunStatus.COMPLETED
    assert result.turns == 2
    normal, recovery = provider.requests
    assert len(normal.tools) > 1
    assert normal.tool_choice == "auto"
    assert [spec.name for spec in recovery.tools] == ["complete_task"]
    assert recovery.tool_choice == "required"
    warning = recovery.messages[-1]
    assert isinstance(warning, UserMessage)
    assert "Final warning" in warning.content
    assert "4" in warning.content

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        started = [e.payload for e in events if e.type.value == "recovery.started"]
        assert len(started) == 1
        assert started[0].trigger == "max_turns"
        assert started[0].max_turns == 4
        assert [e.payload.recovery for e in events if e.type.value == "turn.started"] == [False, True]

    asyncio.run(check())


def test_recovery_failure_keeps_partial_output_and_runs_no_other_tool(ws: Path) -> None:
    provider = RecordingProvider(
        calls(call("file:read", path="notes.txt"), text="Halfway: the notes have two lines."),
        calls(call("file:write", path="late.txt", content="no")),
    )
    loop = make_loop(provider, workspace=ws)
    result = asyncio.run(loop.run(agent(max_turns=3, recovery=RecoveryConfig(grace_turns=1)), "Work"))
    assert (result.status, result.reason) == (RunStatus.FAILED, "recovery_failed")
    assert result.output == "Halfway: the notes have two lines."
    assert not (ws / "late.txt").exists()


def test_recovery_deadline_fails_a_slow_model() -> None:
    provider = RecordingProvider({"text": "thinking", "tool_calls": [call("file:list")]}, {**done(), "delay_s": 5})
    loop = make_loop(provider, workspace=Path.cwd())
    spec = agent(max_turns=3, recovery=RecoveryConfig(grace_turns=1, grace_timeout_s=0.05))
    started = time.perf_counter()
    result = asyncio.run(loop.run(spec, "Work"))
    assert time.perf_counter() - started < 2
    assert (result.status, result.reason, result.output) == (RunStatus.FAILED, "recovery_failed", "thinking")


def test_recovery_happens_once_per_run() -> None:
    # A recovery turn that ends in an invalid completion fails the run: there is no second recovery.
    provider = RecordingProvider(calls(call("complete_task", summary="")))
    loop = make_loop(provider)
    result = asyncio.run(loop.run(agent(max_turns=2, recovery=RecoveryConfig(grace_turns=1)), "Work"))
    assert (result.status, result.reason, result.turns) == (RunStatus.FAILED, "recovery_failed", 1)
    assert len(provider.requests) == 1


# -- execution modes --------------------------------------------------------------------------------


def test_interactive_mode_runs_exactly_one_tool_per_turn(ws: Path) -> None:
    provider = RecordingProvider(
        calls(
            call("file:write", path="a.txt", content="a"),
            call("file:write", path="b.txt", content="b"),
            call("file:write", path="c.txt", content="c"),
        ),
        done(),
    )
    loop = make_loop(provider, workspace=ws)
    result = asyncio.run(loop.run(agent(mode=ExecutionMode.INTERACTIVE), "Write three files"))
    assert result.ok
    assert (ws / "a.txt").exists()
    assert not (ws / "b.txt").exists()
    assert not (ws / "c.txt").exists()

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        assert types(events, turn=1).count("tool.started") == 1
        assert sorted(failures(events).values()) == ["VALIDATION_ERROR", "VALIDATION_ERROR"]
        # Every call of the turn has a result message, in the order the model made them.
        state = (await loop.store.load(result.run_id)).state
        results = [m for m in state.messages if isinstance(m, ToolResultMessage)][:3]
        assert [m.tool_call_id for m in results] == ["call_0_0", "call_0_1", "call_0_2"]

    asyncio.run(check())


class Tracker:
    """Records when tools start and end, to observe parallelism."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.order: list[str] = []

    def make(self, name: str, *, effect: ToolEffect, delay: float = 0.05) -> Any:
        @tool(name=name, effect=effect, category="test")
        async def run(path: str) -> str:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.order.append(f"start {path}")
            await asyncio.sleep(delay)
            self.order.append(f"end {path}")
            self.active -= 1
            return path

        return run


def test_batch_mode_runs_independent_calls_in_parallel_and_conflicting_ones_in_order() -> None:
    tracker = Tracker()
    reader = tracker.make("test:read", effect=ToolEffect.NONE)
    writer = tracker.make("test:write", effect=ToolEffect.IDEMPOTENT)
    provider = RecordingProvider(
        calls(call("test:read", path="a"), call("test:read", path="b"), call("test:read", path="c")),
        calls(call("test:write", path="x"), call("test:read", path="x"), call("test:read", path="y")),
        done(),
    )
    loop = make_loop(provider, reader, writer)
    result = asyncio.run(loop.run(agent(), "Batch"))
    assert result.ok
    first, second = tracker.order[:6], tracker.order[6:]
    assert first[:3] == ["start a", "start b", "start c"]  # all three ran together
    # Turn 2: the write of x and the read of y run together; the read of x waits for the write to end.
    assert second[:2] == ["start x", "start y"]
    write_end = second.index("end x")
    read_start = second.index("start x", 1)
    assert write_end < read_start


def test_batch_mode_respects_max_parallel() -> None:
    tracker = Tracker()
    reader = tracker.make("test:read", effect=ToolEffect.NONE)
    provider = RecordingProvider(calls(*(call("test:read", path=str(i)) for i in range(6))), done())
    loop = make_loop(provider, reader)
    result = asyncio.run(loop.run(agent(max_parallel=2), "Batch"))
    assert result.ok
    assert tracker.peak == 2


def test_exclusive_tools_run_alone() -> None:
    tracker = Tracker()
    reader = tracker.make("test:read", effect=ToolEffect.NONE)

    @tool(name="test:solo", effect=ToolEffect.NONE, concurrency=ToolConcurrency.EXCLUSIVE)
    async def solo(path: str) -> str:
        tracker.order.append(f"solo {path} with {tracker.active} active")
        return path

    provider = RecordingProvider(calls(call("test:read", path="a"), call("test:solo", path="b")), done())
    loop = make_loop(provider, reader, solo)
    assert asyncio.run(loop.run(agent(), "Batch")).ok
    assert "solo b with 0 active" in tracker.order


# -- tool pipeline through the loop -----------------------------------------------------------------


def test_tool_timeout_is_a_typed_failure_and_the_run_continues() -> None:
    @tool(name="test:slow", effect=ToolEffect.NONE, timeout_s=0.05)
    async def slow() -> str:
        await asyncio.sleep(10)
        return "never"

    provider = RecordingProvider(calls(call("test:slow")), done())
    loop = make_loop(provider, slow)
    started = time.perf_counter()
    result = asyncio.run(loop.run(agent(), "Slow"))
    assert time.perf_counter() - started < 2
    assert result.ok

    async def check() -> None:
        assert list(failures(await log(loop.store, result.run_id)).values()) == ["TIMEOUT"]

    asyncio.run(check())


@pytest.mark.parametrize(
    ("tool_call", "argument"),
    [
        (call("file:read", path="../outside/secret.txt"), "path"),
        (call("file:read", path="/etc/hostname"), "path"),
        (call("file:read", path="escape/secret.txt"), "path"),
        (call("file:write", path="escape/new.txt", content="x"), "path"),
        (call("file:edit", path="../outside/secret.txt", old="top", new="low"), "path"),
        (call("file:list", path=".."), "path"),
        (call("file:search", pattern="secret", path="escape"), "path"),
        (call("file:info", path="escape"), "path"),
        (call("shell:run", command="cat secret.txt", cwd="../outside"), "cwd"),
    ],
)
def test_every_workspace_escape_is_blocked_before_the_tool_runs(
    tmp_path: Path, tool_call: dict[str, Any], argument: str
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret\n")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    provider = RecordingProvider(calls(tool_call), done())
    loop = make_loop(provider, workspace=root)
    result = asyncio.run(loop.run(agent(), "Escape"))
    assert result.ok
    assert (outside / "secret.txt").read_text() == "top secret\n"
    assert not (outside / "new.txt").exists()

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        assert list(failures(events).values()) == ["SANDBOX_VIOLATION"]
        assert "tool.started" not in types(events, turn=1)
        failed = next(e.payload for e in events if isinstance(e.payload, ToolFailedPayload))
        assert failed.error.details["argument"] == argument
        assert "top secret" not in failed.result.content

    asyncio.run(check())


def test_unknown_tool_and_invalid_arguments_reach_the_model_as_errors(ws: Path) -> None:
    provider = RecordingProvider(
        calls(call("file:nope", path="x"), call("file:read"), call("file:read", path="notes.txt", extra=1)), done()
    )
    loop = make_loop(provider, workspace=ws)
    result = asyncio.run(loop.run(agent(), "Mistakes"))
    assert result.ok
    tool_messages = [m for m in provider.requests[1].messages if isinstance(m, ToolResultMessage)]
    assert [m.is_error for m in tool_messages] == [True, True, True]
    assert "RESOURCE_NOT_FOUND" in tool_messages[0].content
    assert "file:read" in tool_messages[0].content
    assert "missing required argument 'path'" in tool_messages[1].content
    assert "unknown argument(s) 'extra'" in tool_messages[2].content


def test_tools_outside_the_agents_patterns_are_unknown_to_it(ws: Path) -> None:
    provider = RecordingProvider(calls(call("shell:run", command="true")), done())
    loop = make_loop(provider, workspace=ws)
    result = asyncio.run(loop.run(agent(tools=("file:*",)), "No shell"))
    assert result.ok
    assert {spec.name for spec in provider.requests[0].tools} == {
        "complete_task",
        "file:edit",
        "file:info",
        "file:list",
        "file:read",
        "file:search",
        "file:write",
    }

    async def check() -> None:
        assert list(failures(await log(loop.store, result.run_id)).values()) == ["RESOURCE_NOT_FOUND"]

    asyncio.run(check())


def test_large_outputs_are_spooled_with_a_truncated_view() -> None:
    @tool(name="test:big", effect=ToolEffect.NONE)
    async def big() -> str:
        return "".join(f"line {i}\n" for i in range(500))

    spool = InMemorySpoolStore()
    provider = RecordingProvider(calls(call("test:big")), done())
    loop = make_loop(provider, big, spool=spool, spool_policy=SpoolPolicy(view_lines=10))
    result = asyncio.run(loop.run(agent(), "Big"))
    assert result.ok
    message = next(m for m in provider.requests[1].messages if isinstance(m, ToolResultMessage))
    assert message.content.startswith("line 0\n")
    assert "line 10\n" not in message.content
    assert "showing 10 of 500 lines" in message.content

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        finished = next(e.payload for e in events if isinstance(e.payload, ToolFinishedPayload))
        assert finished.result.spool is not None
        stored = await spool.get(finished.result.spool.content_hash)
        assert stored.decode().count("\n") == 500

    asyncio.run(check())


# -- policy and approvals ---------------------------------------------------------------------------


class AskFor:
    """A policy engine asking for approval of some tools and denying others."""

    def __init__(self, ask: Sequence[str] = (), deny: Sequence[str] = ()) -> None:
        self.ask, self.deny = set(ask), set(deny)
        self.seen: list[tuple[str, PolicyContext]] = []

    def evaluate(self, call: ToolCall, spec: ToolSpec | None, context: PolicyContext) -> PolicyDecision:
        self.seen.append((call.name, context))
        if call.name in self.deny:
            return PolicyDecision(
                allowed=False,
                policy_decision=PolicyOutcome.DENY,
                reason="writes are forbidden",
                policy_rule_id="no-writes",
                policy_action=PolicyAction.DENY,
            )
        if call.name in self.ask:
            return PolicyDecision(
                allowed=True,
                requires_confirmation=True,
                policy_decision=PolicyOutcome.ALLOW_WITH_CONFIRM,
                reason="shell needs a human",
                policy_rule_id="ask-shell",
                policy_action=PolicyAction.ASK,
            )
        return PolicyDecision(allowed=True, policy_decision=PolicyOutcome.ALLOW)


class Approver:
    def __init__(self, decision: ApprovalDecision | None, note: str | None = None) -> None:
        self.decision, self.note = decision, note
        self.asked: list[Approval] = []

    async def decide(self, approval: Approval) -> ApprovalResolution | None:
        self.asked.append(approval)
        if self.decision is None:
            return None
        return ApprovalResolution(approval_id=approval.id, decision=self.decision, note=self.note, resolved_by="test")


def test_policy_denial_reaches_the_model_and_the_tool_never_runs(ws: Path) -> None:
    policy = AskFor(deny=["file:write"])
    provider = RecordingProvider(calls(call("file:write", path="x.txt", content="x")), done())
    loop = make_loop(provider, workspace=ws, policy=policy)
    result = asyncio.run(loop.run(agent(), "Write"))
    assert result.ok
    assert not (ws / "x.txt").exists()
    assert policy.seen[0][1].turn == 1
    assert policy.seen[0][1].agent_id == "tester"

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        decided = [e.payload for e in events if e.type.value == "policy.decided"]
        assert decided[0].decision.policy_rule_id == "no-writes"
        assert list(failures(events).values()) == ["PERMISSION_DENIED"]

    asyncio.run(check())


@pytest.mark.parametrize(("decision", "runs"), [(ApprovalDecision.ALLOW, True), (ApprovalDecision.DENY, False)])
def test_approval_handler_allows_or_denies(ws: Path, decision: ApprovalDecision, runs: bool) -> None:
    approver = Approver(decision, note="checked")
    provider = RecordingProvider(calls(call("shell:run", command="touch made.txt")), done())
    loop = make_loop(provider, workspace=ws, policy=AskFor(ask=["shell:run"]), approvals=approver)
    result = asyncio.run(loop.run(agent(), "Shell"))
    assert result.ok
    assert (ws / "made.txt").exists() is runs
    assert approver.asked[0].tool_call.name == "shell:run"
    assert approver.asked[0].reason == "shell needs a human"

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        assert "approval.requested" in types(events)
        assert "approval.resolved" in types(events)
        if not runs:
            assert list(failures(events).values()) == ["PERMISSION_DENIED"]

    asyncio.run(check())


def test_without_a_decision_the_run_waits_for_approval(ws: Path) -> None:
    provider = RecordingProvider(calls(call("shell:run", command="touch made.txt")), done())
    loop = make_loop(provider, workspace=ws, policy=AskFor(ask=["shell:run"]), approvals=Approver(None))
    result = asyncio.run(loop.run(agent(), "Shell"))
    assert (result.status, result.reason) == (RunStatus.WAITING_APPROVAL, "approval_required")
    assert not (ws / "made.txt").exists()

    async def check() -> None:
        run = await loop.store.get_run(result.run_id)
        assert (run.status, run.reason) == (RunStatus.WAITING_APPROVAL, "approval_required")
        loaded = await loop.store.load(result.run_id)
        # The open checkpoint holds the call, so a resolver can continue the turn.
        assert [c.name for c in loaded.state.pending_tool_calls] == ["shell:run"]

    asyncio.run(check())


# -- the ledger and boundaries ----------------------------------------------------------------------


def test_tool_started_is_committed_before_a_tool_with_effects_runs() -> None:
    store = InMemoryRunStore()
    seen: list[list[str]] = []

    @tool(name="test:effect", effect=ToolEffect.UNSAFE)
    async def effect(context: ToolContext) -> str:
        events = await store.read_events(context.run_id)
        seen.append([e.type.value for e in events if e.tool_call_id == context.tool_call_id])
        return "done"

    provider = RecordingProvider(calls(call("test:effect")), calls(call("file:list")), done())
    loop = make_loop(provider, effect, store=store, workspace=Path.cwd())
    result = asyncio.run(loop.run(agent(), "Effect"))
    assert result.ok
    assert seen == [["tool.called", "tool.started"]]

    async def check() -> None:
        events = await log(store, result.run_id)
        saved = {turn: types(events, turn=turn).count("checkpoint.saved") for turn in (1, 2)}
        assert saved == {1: 2, 2: 1}  # write-ahead + turn end for the unsafe tool; one commit for a read

    asyncio.run(check())


def test_snapshots_every_k_turns_fold_to_the_same_state(ws: Path) -> None:
    steps = [calls(call("file:read", path="notes.txt")) for _ in range(4)]
    provider = RecordingProvider(*steps, done())
    store = InMemoryRunStore()
    loop = make_loop(provider, store=store, workspace=ws, snapshot_every=2)
    result = asyncio.run(loop.run(agent(), "Read often"))
    assert result.ok
    assert result.turns == 5

    async def check() -> None:
        rows = store._runs[result.run_id].checkpoints
        assert [type(row).__name__ for row in rows] == [
            "CheckpointSnapshot",
            "CheckpointDelta",
            "CheckpointSnapshot",
            "CheckpointDelta",
            "CheckpointSnapshot",
            "CheckpointDelta",
        ]
        assert [row.parent_turn for row in rows] == [None, 0, 1, 2, 3, 4]
        state = (await store.load(result.run_id)).state
        assert len(state.messages) == 2 + 5 * 2
        at_three = (await store.load(result.run_id, at_turn=3)).state
        assert at_three.messages == state.messages[: 2 + 3 * 2]
        snapshot = rows[4]
        assert isinstance(snapshot, CheckpointSnapshot)
        assert snapshot.state.messages == state.messages[: 2 + 4 * 2]

    asyncio.run(check())


def test_event_sink_gets_every_committed_event_in_order() -> None:
    class Sink:
        def __init__(self) -> None:
            self.events: list[Event] = []

        def emit(self, events: Sequence[Event]) -> None:
            self.events.extend(events)

    sink = Sink()
    provider = RecordingProvider(done())
    loop = make_loop(provider, sink=sink)
    result = asyncio.run(loop.run(agent(), "Finish"))

    async def check() -> None:
        recorded = await log(loop.store, result.run_id)
        assert [e.seq for e in sink.events] == [e.seq for e in recorded][1:]  # run.created precedes the loop

    asyncio.run(check())


def test_a_stolen_lease_stops_the_writer() -> None:
    store = InMemoryRunStore()

    @tool(name="test:steal", effect=ToolEffect.NONE)
    async def steal(context: ToolContext) -> str:
        await store.acquire_lease(context.run_id, "another-worker", ttl=timedelta(minutes=1), steal=True)
        return "stolen"

    provider = RecordingProvider(calls(call("test:steal")), done())
    loop = make_loop(provider, steal, store=store)
    with pytest.raises(FencingError):
        asyncio.run(loop.run(agent(), "Steal"))


def test_provider_errors_fail_the_run_with_an_error_event() -> None:
    provider = RecordingProvider({"error": {"message": "upstream is down", "status_code": 503}})
    loop = make_loop(provider)
    result = asyncio.run(loop.run(agent(), "Fail"))
    assert (result.status, result.reason) == (RunStatus.FAILED, "error:provider_error")
    assert result.error is not None
    assert "upstream is down" in result.error

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        error = next(e.payload for e in events if e.type.value == "error")
        assert (error.code, error.stage) == ("provider_error", "model")
        assert types(events)[-2:] == ["checkpoint.saved", "run.failed"]

    asyncio.run(check())


def test_configuration_errors_are_raised_before_a_run_exists() -> None:
    loop = make_loop(RecordingProvider(done()))
    with pytest.raises(ConfigurationError, match="no provider is named 'openai'"):
        asyncio.run(loop.start(agent().model_copy(update={"model": "openai:gpt-4.1"}), "Task"))
    with pytest.raises(ConfigurationError, match="blank"):
        asyncio.run(loop.start(agent(), "  "))
    assert asyncio.run(loop.store.list_runs()) == []


# -- control signals and streaming ------------------------------------------------------------------


def hanging_tool(effect: ToolEffect) -> tuple[asyncio.Event, Any]:
    """A ``test:hang`` tool that sets the event once it runs, then sleeps for a minute."""
    started = asyncio.Event()

    @tool(name="test:hang", effect=effect)
    async def hang() -> str:
        started.set()
        await asyncio.sleep(60)
        return "never"

    return started, hang


def test_cancel_interrupts_a_running_tool() -> None:
    started, hang = hanging_tool(ToolEffect.IDEMPOTENT)
    provider = RecordingProvider(calls(call("test:hang")), done())
    loop = make_loop(provider, hang)

    async def main() -> None:
        handle = await loop.start(agent(), "Hang")
        await asyncio.wait_for(started.wait(), 5)
        handle.cancel("user pressed stop")
        result = await asyncio.wait_for(handle.result(), 5)
        assert (result.status, result.reason) == (RunStatus.CANCELLED, "cancelled")
        assert handle.status is AgentStatus.ERROR
        events = await log(loop.store, result.run_id)
        assert types(events)[-3:] == ["turn.finished", "checkpoint.saved", "run.cancelled"]
        failed = next(e.payload for e in events if isinstance(e.payload, ToolFailedPayload))
        assert failed.error.details == {"cancelled": True, "ran": True}
        assert events[-1].payload.reason == "user pressed stop"
        assert (await loop.store.get_run(result.run_id)).status is RunStatus.CANCELLED

    asyncio.run(main())


def test_cancel_interrupts_a_slow_model_call() -> None:
    provider = RecordingProvider({**done(), "delay_s": 30})
    loop = make_loop(provider)

    async def main() -> None:
        handle = await loop.start(agent(), "Wait")
        await asyncio.sleep(0.05)
        handle.cancel()
        result = await asyncio.wait_for(handle.result(), 5)
        assert result.status is RunStatus.CANCELLED
        assert result.turns == 1

    asyncio.run(main())


def test_run_drives_the_run_in_the_calling_task() -> None:
    seen: list[asyncio.Task[Any] | None] = []

    @tool(name="test:where", effect=ToolEffect.NONE)
    async def where() -> str:
        seen.append(asyncio.current_task())
        return "here"

    loop = make_loop(RecordingProvider(calls(call("test:where")), done()), where)

    async def main() -> None:
        result = await loop.run(agent(), "Where")
        assert result.ok
        assert seen == [asyncio.current_task()]
        assert _deadline._current.get() is None  # the run's watchdog is unbound from this task again

    asyncio.run(main())


def test_cancelling_the_task_awaiting_run_cancels_the_run() -> None:
    started, hang = hanging_tool(ToolEffect.UNSAFE)
    loop = make_loop(RecordingProvider(calls(call("test:hang")), done()), hang)

    async def main() -> None:
        with pytest.raises(TimeoutError):  # asyncio.timeout works around run() as around anything
            async with asyncio.timeout(0.2):
                await loop.run(agent(), "Hang", run_id="run_hang")
        assert started.is_set()
        run = await loop.store.get_run("run_hang")
        assert (run.status, run.reason) == (RunStatus.CANCELLED, "cancelled")
        events = await log(loop.store, "run_hang")
        assert events[-1].payload.reason == "the task awaiting AgentLoop.run was cancelled"
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        # The call was cut short while it ran: its write-ahead record stays, with no outcome claimed.
        assert types(events).count("tool.started") == 1
        assert "tool.finished" not in types(events)
        assert "tool.failed" not in types(events)
        assert (await loop.store.load("run_hang")).run.status is RunStatus.CANCELLED

    asyncio.run(main())


def test_a_run_inside_a_tool_of_another_run() -> None:
    inner = make_loop(RecordingProvider(done("inner done")))

    @tool(name="test:delegate", effect=ToolEffect.NONE)
    async def delegate() -> str:
        result = await inner.run(agent(), "Inner")
        await asyncio.sleep(5)  # the outer call's timeout still applies after the inner run returned
        return result.output or ""

    outer = make_loop(RecordingProvider(calls(call("test:delegate")), done()), delegate)

    async def main() -> None:
        result = await outer.run(agent(tool_timeout_s=0.2), "Outer")
        assert result.ok
        events = await log(outer.store, result.run_id)
        assert failures(events) == {"call_0_0": "TIMEOUT"}
        assert (await inner.store.list_runs())[0].status is RunStatus.COMPLETED

    asyncio.run(main())


def test_the_events_of_one_step_share_its_time() -> None:
    clock = ManualClock(tick=timedelta(milliseconds=1))  # every clock read is a new time
    loop = make_loop(RecordingProvider(calls(call("file:list")), done()), clock=clock, workspace=Path.cwd())

    async def main() -> None:
        result = await loop.run(agent(), "List")
        events = await log(loop.store, result.run_id)
        assert [e.ts for e in events] == sorted(e.ts for e in events)
        for turn in (1, 2):
            ts = {e.type.value: e.ts for e in events if e.turn == turn}
            assert ts["turn.started"] == ts["model.requested"]
            assert ts["model.responded"] == ts["tool.called"]
            assert ts["turn.finished"] == ts["checkpoint.saved"]
            assert len({ts["turn.started"], ts["model.responded"], ts["turn.finished"]}) == 3

    asyncio.run(main())


def test_pause_step_inject_and_resume() -> None:
    provider = RecordingProvider(calls(call("file:list")), calls(call("file:list")), done())
    loop = make_loop(provider, workspace=Path.cwd())

    async def main() -> None:
        handle = await loop.start(agent(), "Controlled")
        handle.pause("inspect first")
        events = handle.events()
        seen: list[str] = []
        async for event in events:
            assert isinstance(event, Event)
            seen.append(event.type.value)
            if event.type.value == "run.paused":
                break
        assert len(provider.requests) == 0
        assert handle.status is AgentStatus.IDLE
        assert (await loop.store.get_run(handle.run_id)).status is RunStatus.PAUSED
        handle.inject("Remember to be brief.")
        handle.step()
        async for event in events:
            if event.type.value == "run.paused":  # paused again after exactly one turn
                break
        assert len(provider.requests) == 1
        assert provider.requests[0].messages[-1] == UserMessage(content="Remember to be brief.")
        handle.resume("go on")
        result = await handle
        await events.aclose()
        assert result.ok
        assert result.turns == 3
        events_logged = await log(loop.store, handle.run_id)
        recorded = types(events_logged)
        assert recorded.count("run.paused") == 2
        assert recorded.count("run.resumed") == 2
        assert "message.delivered" in recorded
        # The thought is a step of the turn it starts: it carries the turn's time, as its model request does.
        assert [e.ts for e in events_logged] == sorted(e.ts for e in events_logged)
        delivered = next(e for e in events_logged if e.type.value == "message.delivered")
        requested = next(e for e in events_logged if e.type.value == "model.requested" and e.turn == delivered.turn)
        assert delivered.ts == requested.ts

    asyncio.run(main())


def test_stream_yields_model_deltas_and_events() -> None:
    provider = RecordingProvider({"text": "Reading the notes now.", "tool_calls": [call("file:list")]}, done())
    loop = make_loop(provider, workspace=Path.cwd())

    async def main() -> None:
        text: list[str] = []
        kinds: list[str] = []
        async for item in loop.stream(agent(), "Stream"):
            if isinstance(item, ModelDelta):
                if item.chunk.kind == "text_delta":
                    text.append(item.chunk.text)
            else:
                kinds.append(item.type.value)
        assert "".join(text) == "Reading the notes now."
        assert kinds[0] == "run.created"
        assert kinds[-1] == "run.completed"

    asyncio.run(main())


def test_closing_the_stream_early_cancels_the_run() -> None:
    provider = RecordingProvider(calls(call("file:list")), {**done(), "delay_s": 30})
    loop = make_loop(provider, workspace=Path.cwd())

    async def main() -> str:
        stream = loop.stream(agent(), "Stream")
        async for item in stream:
            if isinstance(item, Event) and item.type.value == "turn.finished":
                break
        await stream.aclose()
        runs = await loop.store.list_runs()
        return runs[0].status.value

    assert asyncio.run(main()) == "cancelled"


def test_late_event_iteration_replays_from_the_store() -> None:
    provider = RecordingProvider(done())
    loop = make_loop(provider)

    async def main() -> None:
        handle = await loop.start(agent(), "Finish")
        await handle
        replayed = [e async for e in handle.events(after_seq=2)]
        assert next(e.seq for e in replayed if isinstance(e, Event)) == 3
        assert json.loads(replayed[-1].model_dump_json())["type"] == "run.completed"
        messages = (await loop.store.load(handle.run_id)).state.messages
        assert isinstance(messages[-2], AssistantMessage)

    asyncio.run(main())


# -- regressions: cancellation windows, partial groups, slow stores, broken plug-ins ---------------


class SlowStore(InMemoryRunStore):
    """A store whose writes of tool.started and whose reads take time, like a real database."""

    def __init__(self) -> None:
        super().__init__()
        self.writing_ahead = asyncio.Event()

    async def append(self, lease: Any, events: Any, checkpoint: Any = None) -> Any:
        if any(e.type.value == "tool.started" for e in events):
            self.writing_ahead.set()
            await asyncio.sleep(0.05)
        return await super().append(lease, events, checkpoint)

    async def read_events(self, run_id: str, *, after_seq: int = 0, limit: int | None = None) -> Any:
        events = await super().read_events(run_id, after_seq=after_seq, limit=limit)
        await asyncio.sleep(0.05)
        return events


def test_cancel_during_the_write_ahead_commit_runs_no_tool() -> None:
    ran: list[str] = []

    @tool(name="test:launch", effect=ToolEffect.UNSAFE)
    async def launch() -> str:
        ran.append("launched")
        return "away"

    store = SlowStore()
    loop = make_loop(RecordingProvider(calls(call("test:launch")), done()), launch, store=store)

    async def main() -> None:
        handle = await loop.start(agent(), "Go")
        await asyncio.wait_for(store.writing_ahead.wait(), 5)
        handle.cancel("stop")
        result = await asyncio.wait_for(handle.result(), 5)
        assert result.status is RunStatus.CANCELLED
        assert ran == []
        failed = next(e.payload for e in await log(store, result.run_id) if isinstance(e.payload, ToolFailedPayload))
        assert failed.error.details == {"cancelled": True, "ran": False}

    asyncio.run(main())


def test_cancelling_a_parallel_group_keeps_the_results_of_calls_that_finished() -> None:
    @tool(name="test:pay", effect=ToolEffect.UNSAFE)
    async def pay() -> str:
        return "paid, receipt r-1"

    @tool(name="test:wait", effect=ToolEffect.IDEMPOTENT)
    async def wait(key: str) -> str:
        await asyncio.sleep(60)
        return "never"

    provider = RecordingProvider(calls(call("test:pay"), call("test:wait", key="k")), done())
    loop = make_loop(provider, pay, wait)

    async def main() -> None:
        handle = await loop.start(agent(), "Pay")
        async for event in handle.events():
            if isinstance(event, Event) and event.type.value == "tool.started" and event.tool_call_id == "call_0_1":
                break
        await asyncio.sleep(0.05)
        handle.cancel()
        result = await asyncio.wait_for(handle.result(), 5)
        assert result.status is RunStatus.CANCELLED
        events = await log(loop.store, result.run_id)
        outcomes = {e.tool_call_id: e.type.value for e in events if e.type.value in ("tool.finished", "tool.failed")}
        assert outcomes == {"call_0_0": "tool.finished", "call_0_1": "tool.failed"}

    asyncio.run(main())


def test_events_from_a_slow_store_are_all_delivered() -> None:
    loop = make_loop(RecordingProvider(done()), store=SlowStore())

    async def main() -> None:
        handle = await loop.start(agent(), "Finish")
        seen = [e.type.value async for e in handle.events() if isinstance(e, Event)]
        assert seen == types(await log(loop.store, handle.run_id))
        assert seen[-1] == "run.completed"

    asyncio.run(main())


def test_a_tool_returning_something_unserialisable_fails_alone() -> None:
    class Odd:
        spec = ToolSpec(name="test:odd", description="returns a set", effect=ToolEffect.NONE)

        async def invoke(self, arguments: Any, context: ToolContext) -> Any:
            return {1, 2}

    provider = RecordingProvider(calls(call("test:odd"), call("file:list")), done())
    loop = make_loop(provider, Odd(), workspace=Path.cwd())
    result = asyncio.run(loop.run(agent(), "Odd"))
    assert result.ok

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        assert failures(events) == {"call_0_0": "EXECUTION_FAILED"}
        assert "could not be recorded" in next(
            e.payload.result.content for e in events if e.type.value == "tool.failed"
        )

    asyncio.run(check())


def test_a_long_completion_summary_survives_spooling() -> None:
    summary = "A long report.\n" * 400
    provider = RecordingProvider(done(summary))
    loop = make_loop(provider, spool=InMemorySpoolStore())
    result = asyncio.run(loop.run(agent(), "Report"))
    assert result.ok
    assert result.output == summary.strip()


def test_a_broken_event_sink_does_not_end_the_run(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def emit(self, events: Sequence[Event]) -> None:
            raise RuntimeError("subscriber crashed")

    loop = make_loop(RecordingProvider(done()), sink=Broken())
    result = asyncio.run(loop.run(agent(), "Finish"))
    assert result.ok
    assert "subscriber crashed" in caplog.text


def test_tools_declared_requires_confirmation_ask_even_without_a_policy(ws: Path) -> None:
    @tool(name="test:deploy", effect=ToolEffect.UNSAFE, requires_confirmation=True)
    async def deploy() -> str:
        return "deployed"

    approver = Approver(ApprovalDecision.DENY)
    loop = make_loop(RecordingProvider(calls(call("test:deploy")), done()), deploy, approvals=approver)
    result = asyncio.run(loop.run(agent(), "Deploy"))
    assert result.ok
    assert [a.tool_call.name for a in approver.asked] == ["test:deploy"]

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        decided = next(e.payload for e in events if e.type.value == "policy.decided")
        assert decided.decision.reason_code == "tool:requires_confirmation"
        assert failures(events) == {"call_0_0": "PERMISSION_DENIED"}

    asyncio.run(check())


def test_the_lease_is_renewed_while_a_turn_runs() -> None:
    store = InMemoryRunStore()
    tokens: list[int] = []

    @tool(name="test:long", effect=ToolEffect.NONE)
    async def long(context: ToolContext) -> str:
        await asyncio.sleep(0.25)
        tokens.append(store._runs[context.run_id].token)
        return "ok"

    loop = make_loop(
        RecordingProvider(calls(call("test:long")), done()), long, store=store, lease_ttl=timedelta(seconds=0.15)
    )
    assert asyncio.run(loop.run(agent(), "Long")).ok
    # Renewed (with a new token) every 0.05 s during the tool, not only once, and the turn still committed.
    assert tokens[0] >= 3


def test_arguments_that_are_not_json_reach_the_model_as_invalid_arguments() -> None:
    class Sloppy:
        name = "scripted"

        def __init__(self) -> None:
            self.replies = [
                AssistantMessage(tool_calls=(ToolCall(id="c1", name="file:list", raw_arguments='{"path": "."'),)),
                AssistantMessage(tool_calls=(ToolCall(id="c2", name="complete_task", raw_arguments="done!"),)),
                AssistantMessage(tool_calls=(ToolCall(id="c3", name="complete_task", arguments={"summary": "ok"}),)),
            ]
            self.requests: list[Any] = []

        async def complete(self, request: Any) -> Any:
            from runtime_core.providers import ModelResponse

            self.requests.append(request)
            return ModelResponse(model="m", message=self.replies[len(self.requests) - 1])

        def stream(self, request: Any) -> Any:
            raise NotImplementedError

    model = Sloppy()
    loop = AgentLoop(providers=[model], tools=LocalToolRegistry(builtin_tools()), workspace=Path.cwd())
    result = asyncio.run(loop.run(agent(), "Sloppy"))
    assert result.ok
    assert result.turns == 3
    shown = [m for m in model.requests[2].messages if isinstance(m, ToolResultMessage)]
    assert [m.is_error for m in shown] == [True, True]
    assert "must be a JSON object" in shown[0].content
    assert '{"path": "."' in shown[0].content
