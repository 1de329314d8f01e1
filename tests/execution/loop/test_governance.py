"""Governance through the agent loop: cost from the catalog, budgets, sticky and expired approvals, redaction."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runtime_control import ApprovalBroker, ErrorRecovery, EventBus, HeuristicTokenCounter, ModelCatalog, Redactor
from runtime_core.agents import RecoveryConfig
from runtime_core.approvals import Approval, ApprovalDecision, ApprovalResolution
from runtime_core.budgets import Budget
from runtime_core.events import BudgetDebitedPayload, ToolFailedPayload
from runtime_core.exceptions import ConfigurationError, ToolExecutionError
from runtime_core.function_tools import tool
from runtime_core.ids import SequentialIds
from runtime_core.memory import InMemoryRunStore
from runtime_core.messages import ToolResultMessage
from runtime_core.policy import PolicyAction, PolicyDecision, PolicyOutcome
from runtime_core.runs import RunStatus
from runtime_core.tools import ToolCall, ToolEffect
from runtime_execution import AgentLoop, LocalToolRegistry, builtin_tools
from tests.execution.loop._support import RecordingProvider, agent, call, calls, done, log, types

PRICED = """
[models."scripted:priced"]
context_window = 100_000
max_output_tokens = 10_000
input_usd_per_mtok = 3.0
cached_input_usd_per_mtok = 0.3
output_usd_per_mtok = 15.0
"""


@pytest.fixture
def catalog(tmp_path: Path) -> ModelCatalog:
    path = tmp_path / "models.toml"
    path.write_text(PRICED)
    return ModelCatalog.load(path)


def priced(**changes: Any) -> Any:
    return agent(**changes).model_copy(update={"model": "scripted:priced"})


def usage_step(step: dict[str, Any], input_tokens: int, output_tokens: int, cached: int = 0) -> dict[str, Any]:
    return {
        **step,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens, "cached_input_tokens": cached},
    }


def test_cost_from_the_catalog_matches_a_hand_calculation(catalog: ModelCatalog) -> None:
    provider = RecordingProvider(
        usage_step(calls(call("file:list")), 1_000, 200, cached=400), usage_step(done(), 2_000, 100)
    )
    loop = AgentLoop(providers=[provider], tools=builtin_tools(), workspace=Path.cwd(), pricing=catalog)
    result = asyncio.run(loop.run(priced(), "Price me"))
    assert result.ok
    # Turn 1: 600 fresh input at $3, 400 cached at $0.30, 200 output at $15 (per million tokens).
    first = (600 * 3.0 + 400 * 0.3 + 200 * 15.0) / 1e6
    second = (2_000 * 3.0 + 100 * 15.0) / 1e6
    assert result.usage.cost_usd == pytest.approx(first + second)

    async def check() -> None:
        run = await loop.store.get_run(result.run_id)
        assert run.usage.cost_usd == pytest.approx(first + second)

    asyncio.run(check())


def test_soft_budget_triggers_the_recovery_turn(catalog: ModelCatalog) -> None:
    budget = Budget(max_tokens=1_000, soft_ratio=0.5)
    provider = RecordingProvider(
        usage_step(calls(call("file:list")), 200, 100),
        usage_step(calls(call("file:list")), 200, 100),
        usage_step(done("wrapped up within budget"), 100, 10),
    )
    loop = AgentLoop(providers=[provider], tools=builtin_tools(), workspace=Path.cwd(), pricing=catalog)
    result = asyncio.run(loop.run(priced().model_copy(update={"budget": budget}), "Work"))
    assert result.ok
    assert result.turns == 3
    assert [spec.name for spec in provider.requests[2].tools] == ["complete_task"]
    assert "tokens budget is nearly reached: 600 of 1000" in provider.requests[2].messages[-1].content

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        started = next(e.payload for e in events if e.type.value == "recovery.started")
        assert started.trigger == "soft_budget"
        debits = [e.payload for e in events if isinstance(e.payload, BudgetDebitedPayload)]
        assert [d.state.spent.total_tokens for d in debits] == [300, 600, 710]
        # The budget lives in the checkpoint, so a resumed run keeps counting from where it stopped.
        state = (await loop.store.load(result.run_id)).state
        assert state.budget is not None
        assert (state.budget.spent.total_tokens, state.budget.turns, state.budget.tool_calls) == (710, 3, 2)

    asyncio.run(check())


def test_hard_budget_stops_the_run_with_budget_exhausted(catalog: ModelCatalog) -> None:
    budget = Budget(max_cost_usd=0.004)  # each turn costs 0.0015 + 0.0015: the third call would overrun
    step = usage_step(calls(call("file:list")), 500, 100)
    provider = RecordingProvider(step, step, step, done())
    loop = AgentLoop(providers=[provider], tools=builtin_tools(), workspace=Path.cwd(), pricing=catalog)
    spec = priced(recovery=RecoveryConfig(enabled=False)).model_copy(update={"budget": budget})
    result = asyncio.run(loop.run(spec, "Spend"))
    assert (result.status, result.reason) == (RunStatus.FAILED, "budget_exhausted")
    assert result.error is not None
    assert "cost_usd budget is reached" in result.error
    assert result.usage.cost_usd >= 0.004


def test_tool_call_budget(catalog: ModelCatalog) -> None:
    provider = RecordingProvider(calls(call("file:list"), call("file:list", path="src")), calls(call("file:list")))
    loop = AgentLoop(providers=[provider], tools=builtin_tools(), workspace=Path.cwd(), pricing=catalog)
    spec = priced(recovery=RecoveryConfig(enabled=False)).model_copy(update={"budget": Budget(max_tool_calls=2)})
    result = asyncio.run(loop.run(spec, "Call"))
    assert (result.reason, result.turns) == ("budget_exhausted", 1)
    assert len(provider.requests) == 1


def test_a_cost_budget_needs_a_price(catalog: ModelCatalog) -> None:
    spec = agent().model_copy(update={"budget": Budget(max_cost_usd=1.0), "model": "scripted:priced"})
    with pytest.raises(ConfigurationError, match="no pricing"):
        asyncio.run(AgentLoop(providers=[RecordingProvider(done())]).start(spec, "Task"))
    unknown = spec.model_copy(update={"model": "openai:no-such-model"})
    loop = AgentLoop(providers=[RecordingProvider(done(), name="openai")], pricing=catalog)
    with pytest.raises(ConfigurationError, match="has no price"):
        asyncio.run(loop.start(unknown, "Task"))


def test_tokens_are_reserved_before_each_call(catalog: ModelCatalog) -> None:
    # The estimate of the first prompt alone is over the limit: the call is never made.
    budget = Budget(max_tokens=5)
    provider = RecordingProvider(done())
    loop = AgentLoop(providers=[provider], pricing=catalog, tokens=HeuristicTokenCounter())
    result = asyncio.run(loop.run(priced().model_copy(update={"budget": budget}), "A task of some length"))
    assert result.reason == "budget_exhausted"
    assert provider.requests == []


class AskShell:
    def evaluate(self, call: ToolCall, spec: Any, context: Any) -> PolicyDecision:
        if call.name == "shell:run":
            return PolicyDecision(
                allowed=True,
                requires_confirmation=True,
                policy_decision=PolicyOutcome.ALLOW_WITH_CONFIRM,
                reason="shell needs a human",
                policy_action=PolicyAction.ASK,
            )
        return PolicyDecision(allowed=True, policy_decision=PolicyOutcome.ALLOW)


class Approver:
    def __init__(self, resolution: dict[str, Any]) -> None:
        self.resolution = resolution
        self.asked: list[Approval] = []

    async def decide(self, approval: Approval) -> ApprovalResolution:
        self.asked.append(approval)
        return ApprovalResolution(approval_id=approval.id, **self.resolution)


def test_a_sticky_approval_is_not_asked_again(tmp_path: Path) -> None:
    approver = Approver({"decision": ApprovalDecision.ALLOW, "sticky": True, "resolved_by": "ops"})
    provider = RecordingProvider(
        calls(call("shell:run", command="echo one")), calls(call("shell:run", command="echo two")), done()
    )
    loop = AgentLoop(
        providers=[provider], tools=builtin_tools(), workspace=tmp_path, policy=AskShell(), approvals=approver
    )
    result = asyncio.run(loop.run(agent(), "Shell twice"))
    assert result.ok
    assert len(approver.asked) == 1

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        assert types(events).count("approval.requested") == 1
        assert types(events, turn=2).count("tool.finished") == 1
        state = (await loop.store.load(result.run_id)).state
        assert state.variables["sticky_tools"] == ["shell:run"]

    asyncio.run(check())


def test_an_expired_approval_denies_the_call(tmp_path: Path) -> None:
    approver = Approver({"decision": ApprovalDecision.DENY, "expired": True, "resolved_by": "timeout"})
    provider = RecordingProvider(calls(call("shell:run", command="touch made")), done())
    loop = AgentLoop(
        providers=[provider], tools=builtin_tools(), workspace=tmp_path, policy=AskShell(), approvals=approver
    )
    result = asyncio.run(loop.run(agent(), "Shell"))
    assert result.ok
    assert not (tmp_path / "made").exists()

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        resolved = next(e.payload for e in events if e.type.value == "approval.resolved")
        assert resolved.expired
        failed = next(e.payload for e in events if isinstance(e.payload, ToolFailedPayload))
        assert "nobody approved this call in time" in failed.result.content

    asyncio.run(check())


SECRET = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"


def test_secrets_never_reach_the_run_log_or_checkpoints() -> None:
    @tool(name="test:leak", effect=ToolEffect.NONE)
    async def leak(token: str) -> str:
        return f"the key is {token} and the other is {SECRET}"

    store = InMemoryRunStore()
    provider = RecordingProvider(
        calls(call("test:leak", token=SECRET), text=f"I will use {SECRET}"), done(f"used {SECRET}")
    )
    loop = AgentLoop(
        providers=[provider],
        tools=LocalToolRegistry([*builtin_tools(), leak]),
        store=store,
        ids=SequentialIds(),
        redactor=Redactor(),
    )
    result = asyncio.run(loop.run(agent(), f"Here is my key: {SECRET}"))
    assert result.ok
    assert result.output is not None
    assert SECRET not in result.output
    # The model itself still saw the real values it needed.
    assert any(SECRET in message.model_dump_json() for message in provider.requests[1].messages)

    async def check() -> None:
        events = await log(store, result.run_id)
        dumped = json.dumps([e.model_dump(mode="json") for e in events])
        assert SECRET not in dumped
        assert "REDACTED" in dumped
        checkpoints = json.dumps([c.model_dump(mode="json") for c in store._runs[result.run_id].checkpoints])
        assert SECRET not in checkpoints
        assert SECRET not in (await store.load(result.run_id)).state.model_dump_json()

    asyncio.run(check())


def test_transient_failures_of_repeatable_tools_are_retried_and_identical_failures_refused() -> None:
    attempts: list[str] = []

    @tool(name="web:get", effect=ToolEffect.NONE)
    async def get(url: str) -> str:
        attempts.append(url)
        if url == "flaky" and attempts.count("flaky") < 3:
            raise ToolExecutionError("ConnectError: connection refused", code="EXECUTION_FAILED")
        if url == "broken":
            raise ToolExecutionError("ValueError: no such page", code="EXECUTION_FAILED")
        return f"page {url}"

    provider = RecordingProvider(
        calls(call("web:get", url="flaky")),
        calls(call("web:get", url="broken")),
        calls(call("web:get", url="broken")),  # the same call again: refused without running
        done(),
    )
    loop = AgentLoop(
        providers=[provider],
        tools=LocalToolRegistry([*builtin_tools(), get]),
        retry=ErrorRecovery(backoff_s=0.001, jitter=0.0),
    )
    result = asyncio.run(loop.run(agent(), "Fetch"))
    assert result.ok
    assert attempts == ["flaky", "flaky", "flaky", "broken"]

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        failed = [e.payload for e in events if isinstance(e.payload, ToolFailedPayload)]
        assert [(f.attempt, f.will_retry, f.error.code.value) for f in failed] == [
            (1, True, "EXECUTION_FAILED"),
            (2, True, "EXECUTION_FAILED"),
            (1, False, "EXECUTION_FAILED"),
            (1, False, "DUPLICATE_FAILED_ACTION"),
        ]
        # Only the final outcome of the flaky call reached the model, as a success.
        tool_messages = [m for m in provider.requests[1].messages if isinstance(m, ToolResultMessage)]
        assert [m.content for m in tool_messages] == ["page flaky"]

    asyncio.run(check())


def test_the_event_bus_is_the_loops_fan_out() -> None:
    bus = EventBus()
    tools_seen: list[str] = []
    bus.subscribe("tool.*", lambda event: tools_seen.append(f"{event.type} {event.payload.tool_call_id}"))
    provider = RecordingProvider(calls(call("file:list")), done())
    loop = AgentLoop(providers=[provider], tools=builtin_tools(), workspace=Path.cwd(), sink=bus, ids=SequentialIds())

    async def main() -> None:
        handle = await loop.start(agent(), "List")
        completed = await bus.wait_for("run.completed", timeout=5)
        result = await handle
        assert completed.correlation_id == result.run_id
        assert completed.payload.seq == result.last_seq

    asyncio.run(main())
    assert tools_seen == [
        "tool.called call_0_0",
        "tool.finished call_0_0",
        "tool.called call_1_0",
        "tool.finished call_1_0",
    ]


@pytest.mark.parametrize("decision", ["allow", "deny"])
def test_a_run_waits_for_an_approval_resolved_from_another_task(tmp_path: Path, decision: str) -> None:
    broker = ApprovalBroker(timeout_s=5, poll_interval_s=0.05)
    provider = RecordingProvider(calls(call("shell:run", command="touch approved")), done())
    loop = AgentLoop(
        providers=[provider], tools=builtin_tools(), workspace=tmp_path, policy=AskShell(), approvals=broker
    )

    async def main() -> None:
        handle = await loop.start(agent(), "Shell")
        async for event in handle.events():
            if event.type.value == "approval.requested":  # type: ignore[union-attr]
                break
        pending = await broker.pending(handle.run_id)
        for _ in range(100):  # the broker stores the request right after the run recorded it
            if pending:
                break
            await asyncio.sleep(0.01)
            pending = await broker.pending(handle.run_id)
        assert (await loop.store.get_run(handle.run_id)).status is RunStatus.WAITING_APPROVAL
        assert handle.status.value == "waiting_confirmation"
        assert len(provider.requests) == 1  # the run waits: no further model call
        await broker.resolve(pending[0].id, decision, resolved_by="ops", note="checked")
        result = await asyncio.wait_for(handle.result(), 5)
        assert result.ok
        assert (tmp_path / "approved").exists() is (decision == "allow")

    asyncio.run(main())


def test_an_unanswered_approval_times_out_to_a_denial(tmp_path: Path) -> None:
    broker = ApprovalBroker(timeout_s=0.05, poll_interval_s=0.01)
    provider = RecordingProvider(calls(call("shell:run", command="touch never")), done())
    loop = AgentLoop(
        providers=[provider], tools=builtin_tools(), workspace=tmp_path, policy=AskShell(), approvals=broker
    )
    result = asyncio.run(loop.run(agent(), "Shell"))
    assert result.ok
    assert not (tmp_path / "never").exists()

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        resolved = next(e.payload for e in events if e.type.value == "approval.resolved")
        assert (resolved.decision.value, resolved.expired) == ("deny", True)

    asyncio.run(check())


def test_the_approval_timeout_is_recorded_and_kept_by_the_broker(tmp_path: Path) -> None:
    broker = ApprovalBroker(timeout_s=None, poll_interval_s=0.01)
    provider = RecordingProvider(calls(call("shell:run", command="touch never")), done())
    loop = AgentLoop(
        providers=[provider],
        tools=builtin_tools(),
        workspace=tmp_path,
        policy=AskShell(),
        approvals=broker,
        approval_timeout=timedelta(milliseconds=50),
    )
    result = asyncio.run(loop.run(agent(), "Shell"))
    assert result.ok
    assert not (tmp_path / "never").exists()

    async def check() -> None:
        events = await log(loop.store, result.run_id)
        requested = next(e.payload for e in events if e.type.value == "approval.requested")
        resolved = next(e.payload for e in events if e.type.value == "approval.resolved")
        assert requested.expires_at is not None
        assert (requested.expires_at - events[0].ts).total_seconds() < 5
        assert resolved.expired

    asyncio.run(check())
