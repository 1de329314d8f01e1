"""Governance end to end: the set of executed calls is exactly the set the policy (or an approver) allowed.

Random `RulePolicyEngine`s (preset, allowlist, denylist, rules with argument conditions, safety checkers,
approval patterns) meet random scripted conversations in the real agent loop. The expected outcome of
every call is computed without the loop: a naive reference reading of the evaluation order of
docs/governance.md decides each call (and is itself checked against `RulePolicyEngine.evaluate`, which is
pure), then a model of the loop's turn rules says which calls are screened (interactive mode screens the
first call of a turn only; ``complete_task`` mixed with other calls runs nothing), which are asked about
(an ``ask`` not covered by an earlier sticky approval of the same tool) and which run. The run must execute
exactly those calls, record a ``policy.decided`` event for every screened call and an
``approval.requested`` / ``approval.resolved`` pair for every call it asked about, and never run a call
the policy denied.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from runtime_control import DEFAULT_INTERACTIVE_APPROVAL, RulePolicyEngine, SafetyVerdict
from runtime_core.agents import AgentSpec, ExecutionMode, Limits, RecoveryConfig
from runtime_core.approvals import Approval, ApprovalDecision, ApprovalResolution
from runtime_core.events import (
    ApprovalRequestedPayload,
    ApprovalResolvedPayload,
    Event,
    PolicyDecidedPayload,
    ToolFailedPayload,
    ToolFinishedPayload,
)
from runtime_core.function_tools import FunctionTool, tool
from runtime_core.ids import SequentialIds
from runtime_core.policy import ArgCondition, ConditionOperator, PolicyAction, PolicyContext, PolicyRule
from runtime_core.runs import RunResult, RunStatus
from runtime_core.tools import ToolCall, ToolContext, ToolEffect, ToolErrorCode, ToolSpec
from runtime_execution import AgentLoop, LocalToolRegistry, ScriptedProvider, complete_task

Action = Literal["allow", "ask", "deny"]
RAN = "ran"
"""The outcome of a call that executed (any other outcome is the error code of its result)."""

# -- the tool universe -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolDef:
    name: str
    effect: ToolEffect
    requires_confirmation: bool = False


# Names chosen so that the security presets matter: file, shell, network and code tools need permissions.
UNIVERSE = (
    ToolDef("file:read", ToolEffect.NONE),
    ToolDef("file:write", ToolEffect.IDEMPOTENT),
    ToolDef("shell:run", ToolEffect.UNSAFE),
    ToolDef("http:get", ToolEffect.NONE),
    ToolDef("code:eval", ToolEffect.COMPENSABLE, requires_confirmation=True),
    ToolDef("kv:get", ToolEffect.NONE),
    ToolDef("kv:put", ToolEffect.UNSAFE),
)
TOOL_NAMES = tuple(definition.name for definition in UNIVERSE)

# What the base permission checker says per preset, transcribed from the presets and permissions tables
# of docs/governance.md (absent: allow). A permission denial names an escalation.
PERMISSIONS: dict[str, dict[str, Action]] = {
    # bash disabled, file read, code disabled, network none
    "safe": {"file:write": "deny", "shell:run": "deny", "http:get": "deny", "code:eval": "deny"},
    # bash sandbox, file workspace, code sandbox, network allowlist
    "balanced": {"http:get": "ask"},
    # bash confirm, file home, code full, network full
    "power": {"shell:run": "ask"},
    "developer": {},
}


EXECUTED: ContextVar[list[str]] = ContextVar("EXECUTED")
"""Where the tools record the id of every call they execute (set per run: the run's tasks inherit it)."""


def _make_tool(definition: ToolDef) -> FunctionTool:
    @tool(name=definition.name, effect=definition.effect, requires_confirmation=definition.requires_confirmation)
    async def run(
        context: ToolContext,
        path: str,
        value: JsonValue = None,
        options: dict[str, JsonValue] | None = None,
    ) -> str:
        """Record the execution.

        Args:
            path: Any string.
            value: Any JSON value.
            options: Any JSON object.
        """
        EXECUTED.get().append(context.tool_call_id)
        return f"{definition.name} ran"

    return run


# Built once: deriving the argument models is what costs in a run of these tests.
TOOLS = tuple(_make_tool(definition) for definition in UNIVERSE)
SPECS: dict[str, ToolSpec] = {item.spec.name: item.spec for item in TOOLS}

# -- random arguments, rules and policies -----------------------------------------------------------------

PATHS = ("notes.txt", "src/app.py", "/etc/passwd", "git push --force", "", "abc")
VALUES: tuple[JsonValue, ...] = (
    None,
    True,
    False,
    0,
    1,
    1.0,
    -2,
    2.5,
    "1",
    "abc",
    "force",
    [],
    [1, "abc"],
    ["notes.txt"],
    {"k": 1},
    {"k": True},
)
CONDITION_PATHS = (
    "path",
    "path.0",  # a string is not a container: never resolves
    "value",
    "value.0",
    "value.k",
    "options.mode",
    "options.level",
    "options.paths.0",
    "options.paths.1",
    "missing",
)
REGEXES = ("^src/", "force", r"\.txt$", ".*", "a|b", "^$", "(?i)ETC", "(pass)wd", "[0-9]")
NUMBERS = (-3, -1, 0, 1, 2, 0.5, 1.0, 2.5)
PATTERNS = (
    "*",
    "file:*",
    "file:read",
    "file:write",
    "shell:*",
    "shell:run",
    "http:*",
    "code:*",
    "kv:*",
    "*:get",
    "k?:p*",
    "*:[rw]*",
    "nope:*",
)
ROLES = (None, "dev", "reviewer")
ACTIONS = st.sampled_from(list(PolicyAction))

_OPTIONS: dict[str, st.SearchStrategy[JsonValue]] = {
    "mode": st.sampled_from(["fast", "safe", 1]),
    "level": st.sampled_from([0, 1, 2, 1.5, True, "2"]),
    "paths": st.lists(st.sampled_from(PATHS), max_size=2),
}
_ARGUMENTS: dict[str, st.SearchStrategy[JsonValue]] = {
    "value": st.sampled_from(VALUES),
    "options": st.fixed_dictionaries({}, optional=_OPTIONS),
}
arguments_strategy: st.SearchStrategy[dict[str, JsonValue]] = st.fixed_dictionaries(
    {"path": st.sampled_from(PATHS)}, optional=_ARGUMENTS
)


@st.composite
def conditions(draw: st.DrawFn, paths: Sequence[str] = CONDITION_PATHS) -> ArgCondition:
    op = draw(st.sampled_from(list(ConditionOperator)))
    value: JsonValue
    if op is ConditionOperator.MATCHES:
        value = draw(st.sampled_from(REGEXES))
    elif op in (ConditionOperator.LT, ConditionOperator.GT):
        value = draw(st.sampled_from(NUMBERS))
    else:
        value = draw(st.sampled_from((*VALUES, *PATHS, "fast", 2)))
    return ArgCondition(path=draw(st.sampled_from(paths)), op=op, value=value)


@st.composite
def rules(draw: st.DrawFn, index: int) -> PolicyRule:
    depths = sorted(draw(st.lists(st.sampled_from([0, 1]), min_size=2, max_size=2)))
    min_depth, max_depth = (draw(st.sampled_from([None, depth])) for depth in depths)
    return PolicyRule(
        id=f"r{index}",
        action=draw(ACTIONS),
        tools=tuple(draw(st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2))),
        # Few conditions and mostly no role, so that several rules often match one call and priorities matter.
        conditions=tuple(draw(conditions()) for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2])))),
        role=draw(st.sampled_from([None, None, *ROLES])),
        phase=draw(st.sampled_from([None, None, None, "plan"])),  # the loop sets no phase: "plan" never matches
        min_depth=min_depth,
        max_depth=max_depth,
        priority=draw(st.integers(-2, 2)),
    )


@dataclass(frozen=True)
class PathChecker:
    """A safety checker on the ``path`` argument: `action` when it contains `trigger`; raises on `breaks_on`."""

    name: str
    trigger: str
    action: PolicyAction
    breaks_on: str | None
    on_error: PolicyAction = PolicyAction.DENY

    def check(self, call: ToolCall, spec: ToolSpec, context: PolicyContext) -> SafetyVerdict | None:
        path = call.arguments.get("path")
        if path == self.breaks_on:
            raise RuntimeError(f"{self.name} cannot read {path!r}")
        if isinstance(path, str) and self.trigger in path:
            return SafetyVerdict(self.action, risk_tags=(f"test:{self.name}",))
        return None


@st.composite
def checkers(draw: st.DrawFn, index: int) -> PathChecker:
    return PathChecker(
        name=f"check{index}",
        trigger=draw(st.sampled_from(["force", "etc", "src", "abc", "txt"])),
        action=draw(ACTIONS),
        breaks_on=draw(st.sampled_from([None, *PATHS])),
        on_error=draw(ACTIONS),
    )


@dataclass(frozen=True)
class Setup:
    """A random policy and the agent that runs under it."""

    preset: str
    rules: tuple[PolicyRule, ...]
    allowed_tools: tuple[str, ...]
    denied_tools: tuple[str, ...]
    requires_approval: tuple[str, ...]
    interactive_approval: tuple[str, ...]
    default_action: PolicyAction
    checkers: tuple[PathChecker, ...]
    mode: ExecutionMode
    role: str | None

    def engine(self) -> RulePolicyEngine:
        return RulePolicyEngine(
            self.rules,
            security=self.preset,
            allowed_tools=self.allowed_tools,
            denied_tools=self.denied_tools,
            requires_approval=self.requires_approval,
            interactive_approval=self.interactive_approval,
            default_action=self.default_action,
            safety_checkers=self.checkers,
        )

    def context(self, run_id: str = "run", turn: int = 0) -> PolicyContext:
        return PolicyContext(run_id=run_id, agent_id="prop", turn=turn, role=self.role, mode=self.mode)


@st.composite
def setups(draw: st.DrawFn) -> Setup:
    # Weighted towards permissive settings, so that allow, ask and deny all come up often.
    patterns = st.lists(st.sampled_from(PATTERNS), max_size=3).map(tuple)
    rarely = st.one_of(st.just(()), st.just(()), patterns)
    rule_count = draw(st.integers(0, 6))
    checker_count = draw(st.sampled_from([0, 0, 1, 2]))
    return Setup(
        preset=draw(st.sampled_from(sorted(PERMISSIONS))),
        rules=tuple(draw(rules(index)) for index in range(rule_count)),
        allowed_tools=draw(st.one_of(st.just(("*",)), st.just(("*",)), st.just(("*",)), patterns)),
        denied_tools=draw(rarely),
        requires_approval=draw(rarely),
        interactive_approval=draw(st.one_of(st.just(DEFAULT_INTERACTIVE_APPROVAL), patterns)),
        default_action=draw(
            st.sampled_from([PolicyAction.ALLOW, PolicyAction.ALLOW, PolicyAction.ASK, PolicyAction.DENY])
        ),
        checkers=tuple(draw(checkers(index)) for index in range(checker_count)),
        mode=draw(st.sampled_from(list(ExecutionMode))),
        role=draw(st.sampled_from(ROLES)),
    )


# -- random conversations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """A scripted call and what the approver answers if it is asked about it."""

    call: ToolCall
    approve: bool
    sticky: bool = False


@st.composite
def conversations(draw: st.DrawFn, *, sticky: bool = False) -> list[list[Planned]]:
    turns: list[list[Planned]] = []
    for number in range(draw(st.integers(1, 5))):
        drawn: list[tuple[str, dict[str, JsonValue]]] = [
            (draw(st.sampled_from(TOOL_NAMES)), draw(arguments_strategy)) for _ in range(draw(st.integers(1, 3)))
        ]
        if draw(st.integers(0, 7)) == 0:  # now and then, complete_task mixed with other calls
            drawn.insert(draw(st.integers(0, len(drawn))), ("complete_task", {"summary": "too early"}))
        turns.append(
            [
                Planned(
                    ToolCall(id=f"call_{number}_{index}", name=name, arguments=arguments),
                    approve=draw(st.booleans()),
                    sticky=sticky and draw(st.booleans()),
                )
                for index, (name, arguments) in enumerate(drawn)
            ]
        )
    return turns


# -- the reference policy: docs/governance.md, "Evaluation order", read naively --------------------------

_MISSING = object()


def _resolve(arguments: dict[str, JsonValue], path: str) -> object:
    value: object = arguments
    for segment in path.split("."):
        if isinstance(value, dict) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return _MISSING
    return value


def _json_equal(left: object, right: object) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, list) or isinstance(right, list):
        return (
            isinstance(left, list)
            and isinstance(right, list)
            and len(left) == len(right)
            and all(_json_equal(a, b) for a, b in zip(left, right, strict=True))
        )
    if isinstance(left, dict) or isinstance(right, dict):
        return (
            isinstance(left, dict)
            and isinstance(right, dict)
            and set(left) == set(right)
            and all(_json_equal(left[key], right[key]) for key in left)
        )
    return left == right


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _holds(condition: ArgCondition, arguments: dict[str, JsonValue]) -> bool:
    value = _resolve(arguments, condition.path)
    if value is _MISSING:
        return False  # a path that does not resolve never matches, whatever the operator
    expected = condition.value
    match condition.op:
        case ConditionOperator.EQUALS:
            return _json_equal(value, expected)
        case ConditionOperator.CONTAINS:
            if isinstance(value, str):
                return isinstance(expected, str) and expected in value
            return isinstance(value, list) and any(_json_equal(item, expected) for item in value)
        case ConditionOperator.MATCHES:
            return isinstance(value, str) and isinstance(expected, str) and re.search(expected, value) is not None
        case ConditionOperator.LT:
            return _is_number(value) and value < expected  # type: ignore[operator]  # both numbers
        case ConditionOperator.GT:
            return _is_number(value) and value > expected  # type: ignore[operator]  # both numbers
    raise AssertionError(condition.op)


def _matches_any(patterns: Sequence[str], name: str) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def _rule_matches(rule: PolicyRule, call: ToolCall, context: PolicyContext) -> bool:
    return (
        _matches_any(rule.tools, call.name)
        and (rule.role is None or rule.role == context.role)
        and (rule.phase is None or rule.phase == context.phase)
        and (rule.min_depth is None or context.depth >= rule.min_depth)
        and (rule.max_depth is None or context.depth <= rule.max_depth)
        and all(_holds(condition, call.arguments) for condition in rule.conditions)
    )


def reference(setup: Setup, call: ToolCall, context: PolicyContext) -> tuple[Action, bool]:
    """The documented decision for `call`: the action, and whether a denial names an escalation."""
    spec = SPECS[call.name]
    permission = PERMISSIONS[setup.preset].get(call.name, "allow")
    if permission == "deny":
        return "deny", True
    asked = permission == "ask"
    if not _matches_any(setup.allowed_tools, call.name) or _matches_any(setup.denied_tools, call.name):
        return "deny", False
    by_priority = sorted(enumerate(setup.rules), key=lambda item: (-item[1].priority, item[0]))
    ruling = next((rule.action for _, rule in by_priority if _rule_matches(rule, call, context)), setup.default_action)
    if ruling is PolicyAction.DENY:
        return "deny", False
    asked = asked or ruling is PolicyAction.ASK
    for checker in setup.checkers:
        try:
            verdict = checker.check(call, spec, context)
            action = None if verdict is None else verdict.action
        except RuntimeError:
            action = checker.on_error
        if action is PolicyAction.DENY:
            return "deny", False
        asked = asked or action is PolicyAction.ASK
    asked = (
        asked
        or _matches_any(setup.requires_approval, call.name)
        or (context.mode is ExecutionMode.INTERACTIVE and _matches_any(setup.interactive_approval, call.name))
        or spec.requires_confirmation
    )
    return ("ask" if asked else "allow"), False


# -- the reference loop: which calls are screened, asked about and run -------------------------------------


@dataclass
class Expected:
    outcomes: dict[str, str] = field(default_factory=dict)
    """Call id → ``ran`` or the error code of its result."""
    decisions: dict[str, Action] = field(default_factory=dict)
    """Screened call id → the reference action."""
    asked: list[str] = field(default_factory=list)
    """Call ids the approver must be asked about, in order."""
    sticky_allowed: set[str] = field(default_factory=set)
    """Call ids that needed approval but ran on an earlier sticky approval, without asking."""

    @property
    def executed(self) -> set[str]:
        return {call_id for call_id, outcome in self.outcomes.items() if outcome == RAN}


def expect(setup: Setup, turns: list[list[Planned]]) -> Expected:
    expected = Expected()
    sticky_tools: set[str] = set()
    for number, turn in enumerate(turns, 1):
        if any(planned.call.name == "complete_task" for planned in turn):
            for planned in turn:  # completion not alone: nothing in the turn runs
                expected.outcomes[planned.call.id] = ToolErrorCode.VALIDATION_ERROR.value
            continue
        screened = turn[:1] if setup.mode is ExecutionMode.INTERACTIVE else turn
        for planned in turn[len(screened) :]:  # interactive mode: one call per turn
            expected.outcomes[planned.call.id] = ToolErrorCode.VALIDATION_ERROR.value
        for planned in screened:
            call = planned.call
            action, escalation = reference(setup, call, setup.context(turn=number))
            expected.decisions[call.id] = action
            if action == "deny":
                code = ToolErrorCode.PERMISSION_ESCALATION_REQUIRED if escalation else ToolErrorCode.PERMISSION_DENIED
                expected.outcomes[call.id] = code.value
            elif action == "allow":
                expected.outcomes[call.id] = RAN
            elif call.name in sticky_tools:
                expected.sticky_allowed.add(call.id)
                expected.outcomes[call.id] = RAN
            else:
                expected.asked.append(call.id)
                expected.outcomes[call.id] = RAN if planned.approve else ToolErrorCode.PERMISSION_DENIED.value
                if planned.approve and planned.sticky:
                    sticky_tools.add(call.name)
    return expected


# -- running the loop --------------------------------------------------------------------------------------


class ScriptedApprover:
    """Answers each approval as planned for its call (never ``None``, so the run never waits)."""

    def __init__(self, turns: list[list[Planned]]) -> None:
        self._plans = {planned.call.id: planned for turn in turns for planned in turn}
        self.asked: list[str] = []

    async def decide(self, approval: Approval) -> ApprovalResolution:
        planned = self._plans[approval.tool_call.id]
        self.asked.append(planned.call.id)
        return ApprovalResolution(
            approval_id=approval.id,
            decision=ApprovalDecision.ALLOW if planned.approve else ApprovalDecision.DENY,
            resolved_by="property",
            sticky=planned.approve and planned.sticky,
        )


@dataclass
class Played:
    result: RunResult
    executed: list[str]
    asked: list[str]
    events: list[Event]

    def payloads(self, kind: type[Any]) -> dict[str, list[Any]]:
        """Payloads of type `kind`, by tool call id."""
        found: dict[str, list[Any]] = {}
        for event in self.events:
            if isinstance(event.payload, kind):
                found.setdefault(event.tool_call_id or "", []).append(event.payload)
        return found


FINISH = "finish"


async def play(setup: Setup, engine: RulePolicyEngine, turns: list[list[Planned]]) -> Played:
    executed: list[str] = []
    EXECUTED.set(executed)
    steps: list[dict[str, Any]] = [
        {"tool_calls": [{"id": p.call.id, "name": p.call.name, "arguments": p.call.arguments} for p in turn]}
        for turn in turns
    ]
    steps.append({"tool_calls": [{"id": FINISH, "name": "complete_task", "arguments": {"summary": "done"}}]})
    approver = ScriptedApprover(turns)
    loop = AgentLoop(
        providers=[ScriptedProvider({"steps": steps})],
        tools=LocalToolRegistry([*TOOLS, complete_task]),
        policy=engine,
        approvals=approver,
        ids=SequentialIds(),
    )
    agent = AgentSpec(
        name="prop",
        model="scripted:prop",
        mode=setup.mode,
        role=setup.role,
        limits=Limits(max_turns=len(steps) + 2),
        recovery=RecoveryConfig(enabled=False),
    )
    result = await loop.run(agent, "Use the tools, then complete the task.")
    return Played(result, executed, approver.asked, list(await loop.store.read_events(result.run_id)))


def check_run(setup: Setup, engine: RulePolicyEngine, turns: list[list[Planned]]) -> tuple[Expected, Played]:
    """Play `turns` under `setup` and check everything that does not depend on sticky approvals."""
    expected = expect(setup, turns)
    played = asyncio.run(play(setup, engine, turns))
    result = played.result
    assert (result.status, result.reason, result.turns) == (RunStatus.COMPLETED, "completed", len(turns) + 1)

    # The property: exactly the allowed (or approved) calls ran, each once.
    assert sorted(played.executed) == sorted(expected.executed)
    assert played.asked == expected.asked

    # Every call has exactly one outcome in the log, the one the reference predicts.
    finished = played.payloads(ToolFinishedPayload)
    failed = played.payloads(ToolFailedPayload)
    outcomes = {call_id: RAN for call_id in finished} | {
        call_id: payloads[0].result.error.code.value for call_id, payloads in failed.items()
    }
    assert all(len(payloads) == 1 for payloads in (*finished.values(), *failed.values()))
    assert not set(finished) & set(failed)
    assert outcomes == expected.outcomes | {FINISH: RAN}

    # One policy.decided event per screened call, the engine's decision, which the reference agrees with.
    decided = played.payloads(PolicyDecidedPayload)
    assert set(decided) == set(expected.decisions)
    turn_of = {planned.call.id: number for number, turn in enumerate(turns, 1) for planned in turn}
    calls = {planned.call.id: planned.call for turn in turns for planned in turn}
    for call_id, payloads in decided.items():
        assert len(payloads) == 1
        decision = payloads[0].decision
        call = calls[call_id]
        assert decision == engine.evaluate(call, SPECS[call.name], setup.context(result.run_id, turn_of[call_id]))
        action: Action = "deny" if not decision.allowed else "ask" if decision.requires_confirmation else "allow"
        assert action == expected.decisions[call_id], (call, decision)

    # Every ask that was not covered by a sticky approval was requested and resolved, as the approver said.
    requested = played.payloads(ApprovalRequestedPayload)
    resolved = played.payloads(ApprovalResolvedPayload)
    assert set(requested) == set(resolved) == set(expected.asked)
    for call_id in expected.asked:
        (request,), (resolution,) = requested[call_id], resolved[call_id]
        assert request.approval_id == resolution.approval_id
        assert request.call == calls[call_id]
        approved = expected.outcomes[call_id] == RAN
        assert resolution.decision is (ApprovalDecision.ALLOW if approved else ApprovalDecision.DENY)

    # Zero unauthorised calls, said the other way round: whatever ran was allowed by the policy, and
    # confirmed by the approver (or an earlier sticky approval of the same tool) if the policy asked.
    for call_id in played.executed:
        (payload,) = decided[call_id]
        assert payload.decision.allowed, f"{call_id} ran although the policy denied it: {payload.decision}"
        if payload.decision.requires_confirmation:
            confirmed = call_id in resolved and resolved[call_id][0].decision is ApprovalDecision.ALLOW
            assert confirmed or call_id in expected.sticky_allowed, f"{call_id} ran without an approval"
    return expected, played


# -- the properties -----------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(setup=setups(), arguments=arguments_strategy, name=st.sampled_from(TOOL_NAMES))
def test_the_engine_decides_as_the_documented_evaluation_order(
    setup: Setup, arguments: dict[str, JsonValue], name: str
) -> None:
    engine = setup.engine()
    call = ToolCall(id="c", name=name, arguments=arguments)
    decision = engine.evaluate(call, SPECS[name], setup.context())
    action, escalation = reference(setup, call, setup.context())
    assert decision.policy_decision.value == {"allow": "allow", "ask": "allow_with_confirm", "deny": "deny"}[action]
    assert (decision.escalation is not None) == escalation
    # Pure: the same question gets the same answer (the engine caches per tool and per matched rule).
    assert engine.evaluate(call, SPECS[name], setup.context()) == decision


def _matched(condition: ArgCondition, arguments: dict[str, JsonValue]) -> bool:
    """Whether a policy whose only rule has `condition` as its only condition matches `arguments`."""
    rule = PolicyRule(id="only", action=PolicyAction.DENY, conditions=(condition,))
    engine = RulePolicyEngine([rule], security="developer", interactive_approval=())
    call = ToolCall(id="c", name="kv:get", arguments=arguments)
    return engine.evaluate(call, SPECS["kv:get"], PolicyContext(run_id="run", agent_id="prop")).policy_rule_id == "only"


TRICKY: tuple[JsonValue, ...] = (*VALUES, [[1]], [True], [1.0, "abc"], {"k": 1.0}, {"k": 1, "j": 2}, "", "ab")


def test_every_operator_compares_every_pair_of_values_as_documented() -> None:
    # Exhaustive over the small value space: JSON comparisons (true is not 1, 1 is 1.0, lists and objects
    # compared deeply), substrings and list elements, regular expressions, numbers that are not booleans.
    operands: dict[ConditionOperator, tuple[JsonValue, ...]] = {
        ConditionOperator.EQUALS: TRICKY,
        ConditionOperator.CONTAINS: TRICKY,
        ConditionOperator.MATCHES: REGEXES,
        ConditionOperator.LT: NUMBERS,
        ConditionOperator.GT: NUMBERS,
    }
    for op, expected_values in operands.items():
        for expected in expected_values:
            condition = ArgCondition(path="value", op=op, value=expected)
            for value in TRICKY:
                arguments: dict[str, JsonValue] = {"path": "x", "value": value}
                assert _matched(condition, arguments) == _holds(condition, arguments), (op, expected, value)


@settings(max_examples=200, deadline=None)
@given(condition=conditions(), arguments=arguments_strategy)
def test_argument_condition_paths_resolve_as_documented(
    condition: ArgCondition, arguments: dict[str, JsonValue]
) -> None:
    assert _matched(condition, arguments) == _holds(condition, arguments), (condition, arguments)


@settings(max_examples=60, deadline=None)
@given(setup=setups(), turns=conversations())
def test_executed_calls_are_exactly_those_the_policy_or_the_approver_allowed(
    setup: Setup, turns: list[list[Planned]]
) -> None:
    check_run(setup, setup.engine(), turns)  # asserts the property and the run log


@settings(max_examples=60, deadline=None)
@given(setup=setups(), turns=conversations(sticky=True))
def test_sticky_approvals_allow_only_later_asks_of_the_same_tool(setup: Setup, turns: list[list[Planned]]) -> None:
    expected, played = check_run(setup, setup.engine(), turns)
    # A sticky approval spares later asks of that tool the approver, and nothing else: denied calls of
    # the tool stay denied (checked by the outcomes above), other tools are still asked about.
    for call_id in expected.sticky_allowed:
        assert call_id in played.executed
        assert call_id not in played.asked


def test_a_sticky_approval_never_overrides_a_denial() -> None:
    """Example: ``shell:run`` approved for the rest of the run, then a call a deny rule matches."""
    setup = Setup(
        preset="power",  # shell:run asks (bash = confirm)
        rules=(
            PolicyRule(
                id="no-force",
                action=PolicyAction.DENY,
                tools=("shell:*",),
                conditions=(ArgCondition(path="path", op=ConditionOperator.MATCHES, value="--force"),),
            ),
        ),
        allowed_tools=("*",),
        denied_tools=(),
        requires_approval=(),
        interactive_approval=(),
        default_action=PolicyAction.ALLOW,
        checkers=(),
        mode=ExecutionMode.BATCH,
        role=None,
    )

    def shell(call_id: str, path: str, *, approve: bool = False, sticky: bool = False) -> Planned:
        return Planned(ToolCall(id=call_id, name="shell:run", arguments={"path": path}), approve, sticky)

    turns = [
        [shell("first", "git status", approve=True, sticky=True)],
        [shell("forced", "git push --force"), shell("again", "git log")],
        [shell("third", "git diff")],
    ]
    expected, played = check_run(setup, setup.engine(), turns)
    assert sorted(played.executed) == ["again", "first", "third"]
    assert played.asked == ["first"]
    assert expected.outcomes["forced"] == ToolErrorCode.PERMISSION_DENIED.value
    assert expected.sticky_allowed == {"again", "third"}
