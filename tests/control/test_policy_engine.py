"""The rule policy engine: each step of the evaluation order, each operator, and a reference property."""

from __future__ import annotations

import fnmatch
import math
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime_control.policy import (
    DEFAULT_INTERACTIVE_APPROVAL,
    SECURITY_PRESETS,
    RulePolicyEngine,
    SafetyChecker,
    SafetyVerdict,
    SecurityPolicy,
    ToolPermissions,
)
from runtime_core import (
    ArgCondition,
    ConfigurationError,
    Escalation,
    ExecutionMode,
    PolicyAction,
    PolicyContext,
    PolicyDecision,
    PolicyEngine,
    PolicyOutcome,
    PolicyRule,
    ToolCall,
    ToolSpec,
)

ALLOW, ASK, DENY = PolicyAction.ALLOW, PolicyAction.ASK, PolicyAction.DENY
TOOLS = ("file:read", "file:write", "shell:run", "web:fetch", "demo:echo", "demo:other", "complete_task")
SPECS = {name: ToolSpec(name=name, description=name) for name in TOOLS}
CONTEXT = PolicyContext(run_id="run_1", agent_id="agent")


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(id="call_1", name=name, arguments=arguments)


def decide(
    engine: RulePolicyEngine, name: str, context: PolicyContext = CONTEXT, /, **arguments: Any
) -> PolicyDecision:
    return engine.evaluate(call(name, **arguments), SPECS.get(name), context)


def rule(rule_id: str, action: PolicyAction, *tools: str, **fields: Any) -> PolicyRule:
    conditions = tuple(ArgCondition(path=p, op=o, value=v) for p, o, v in fields.pop("conditions", ()))
    return PolicyRule(id=rule_id, action=action, tools=tools or ("*",), conditions=conditions, **fields)


def outcome(decision: PolicyDecision) -> tuple[str, str | None]:
    return decision.policy_decision.value, decision.policy_rule_id


# -- the protocol and the decision's fields ------------------------------------------------------------------------


def test_engine_satisfies_the_core_protocol() -> None:
    assert isinstance(RulePolicyEngine(), PolicyEngine)


def test_default_engine_allows_known_tools_with_full_provenance() -> None:
    decision = decide(RulePolicyEngine(), "demo:echo")
    assert decision == PolicyDecision(
        allowed=True,
        policy_decision=PolicyOutcome.ALLOW,
        reason="no rule matched; the default action is allow",
        reason_code="policy:default",
        policy_rule_id="builtin:default",
        policy_action=ALLOW,
    )


def test_risk_tags_name_the_kind_of_tool() -> None:
    engine = RulePolicyEngine(security="developer")
    assert decide(engine, "file:read").risk_tags == ("fs:read",)
    assert decide(engine, "file:write").risk_tags == ("fs:write",)
    assert decide(engine, "shell:run").risk_tags == ("shell",)
    assert decide(engine, "web:fetch").risk_tags == ("network",)
    assert decide(engine, "demo:echo").risk_tags == ()


# -- step 0: unknown tools -----------------------------------------------------------------------------------------


def test_unknown_tool_is_denied_with_a_clear_reason() -> None:
    engine = RulePolicyEngine([rule("all", ALLOW)], security="developer")
    decision = engine.evaluate(call("ghost:tool"), None, CONTEXT)
    assert outcome(decision) == ("deny", "builtin:unknown_tool")
    assert decision.reason_code == "tool:unknown"
    assert decision.reason == "tool 'ghost:tool' is not registered"


# -- step 1: preset permissions ------------------------------------------------------------------------------------


def test_permission_denial_wins_over_an_allow_rule() -> None:
    engine = RulePolicyEngine([rule("yes", ALLOW, "shell:run", priority=1000)], security="safe")
    decision = decide(engine, "shell:run", command="ls")
    assert outcome(decision) == ("deny", "permission:bash")
    assert decision.reason_code == "permission:bash"
    assert decision.escalation == Escalation(permission="bash", level="confirm")
    assert "'disabled'" in (decision.reason or "")


def test_file_permission_denial_names_the_path_in_the_escalation() -> None:
    engine = RulePolicyEngine(security="safe")
    decision = decide(engine, "file:write", path="notes.md", content="x")
    assert decision.escalation == Escalation(permission="file", level="workspace", resource="notes.md")
    assert decide(engine, "file:write").escalation == Escalation(permission="file", level="workspace")


def test_permission_ask_survives_an_allow_rule_and_is_reported_first() -> None:
    engine = RulePolicyEngine([rule("yes", ALLOW, "shell:run")], security="power", requires_approval=["shell:*"])
    decision = decide(engine, "shell:run", command="ls")
    assert outcome(decision) == ("allow_with_confirm", "permission:bash")
    assert decision.policy_action is ASK
    assert decision.requires_confirmation


def test_permission_ask_then_rule_deny_is_a_denial() -> None:
    engine = RulePolicyEngine([rule("no", DENY, "shell:run")], security="power")
    assert outcome(decide(engine, "shell:run")) == ("deny", "no")


# -- step 2: the completion tool -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["complete_task", "agent:complete_task"])
def test_completion_is_always_allowed(name: str) -> None:
    engine = RulePolicyEngine(
        [rule("nothing", DENY, "*", priority=100)],
        security="safe",
        allowed_tools=["demo:*"],
        denied_tools=["*"],
        requires_approval=["*"],
        default_action=DENY,
        safety_checkers=[Checker("veto", lambda *_: SafetyVerdict(DENY))],
    )
    decision = engine.evaluate(call(name), ToolSpec(name=name, description="done"), CONTEXT)
    assert outcome(decision) == ("allow", "builtin:completion")
    assert decision.reason_code == "policy:completion"


# -- step 3: allowlist and denylist --------------------------------------------------------------------------------


def test_allowlist_denies_tools_it_does_not_name() -> None:
    engine = RulePolicyEngine([rule("yes", ALLOW, "*", priority=100)], allowed_tools=["file:*"])
    decision = decide(engine, "demo:echo")
    assert outcome(decision) == ("deny", "builtin:allowlist")
    assert decision.reason_code == "policy:allowlist"
    assert outcome(decide(engine, "file:read")) == ("allow", "yes")


def test_denylist_denies_matching_tools() -> None:
    engine = RulePolicyEngine([rule("yes", ALLOW)], denied_tools=["demo:o*"])
    decision = decide(engine, "demo:other")
    assert outcome(decision) == ("deny", "builtin:denylist")
    assert decision.reason_code == "policy:denylist"
    assert "demo:o*" in (decision.reason or "")
    assert outcome(decide(engine, "demo:echo")) == ("allow", "yes")


def test_empty_allowlist_leaves_only_the_completion_tool() -> None:
    engine = RulePolicyEngine(allowed_tools=[])
    assert outcome(decide(engine, "demo:echo")) == ("deny", "builtin:allowlist")
    assert outcome(decide(engine, "complete_task")) == ("allow", "builtin:completion")


# -- step 4: rules -------------------------------------------------------------------------------------------------


def test_highest_priority_matching_rule_decides() -> None:
    engine = RulePolicyEngine(
        [rule("low-deny", DENY, "demo:*", priority=1), rule("high-allow", ALLOW, "demo:echo", priority=5)]
    )
    assert outcome(decide(engine, "demo:echo")) == ("allow", "high-allow")
    assert outcome(decide(engine, "demo:other")) == ("deny", "low-deny")


def test_equal_priorities_keep_the_given_order() -> None:
    first, second = rule("first", ASK, "demo:*"), rule("second", DENY, "demo:*")
    assert outcome(decide(RulePolicyEngine([first, second]), "demo:echo")) == ("allow_with_confirm", "first")
    assert outcome(decide(RulePolicyEngine([second, first]), "demo:echo")) == ("deny", "second")


def test_deny_rule_reports_its_reason() -> None:
    engine = RulePolicyEngine([rule("no-rm", DENY, "shell:run", conditions=[("command", "matches", r"\brm\b")])])
    decision = decide(engine, "shell:run", command="rm -rf /")
    assert decision == PolicyDecision(
        allowed=False,
        policy_decision=PolicyOutcome.DENY,
        reason="rule 'no-rm' says deny",
        reason_code="policy:rule",
        risk_tags=("shell",),
        policy_rule_id="no-rm",
        policy_action=DENY,
    )
    custom = RulePolicyEngine([rule("no-rm", DENY, "shell:run", reason="no deletions")])
    assert decide(custom, "shell:run").reason == "no deletions"
    assert outcome(decide(engine, "shell:run", command="ls")) == ("allow", "builtin:default")


def test_ask_rule_marks_the_call_for_confirmation() -> None:
    decision = decide(RulePolicyEngine([rule("check", ASK, "demo:echo")]), "demo:echo")
    assert outcome(decision) == ("allow_with_confirm", "check")
    assert (decision.allowed, decision.requires_confirmation, decision.policy_action) == (True, True, ASK)


def test_all_criteria_of_a_rule_must_match() -> None:
    strict = rule(
        "strict",
        DENY,
        "demo:*",
        role="dev",
        phase="build",
        min_depth=1,
        max_depth=2,
        conditions=[("n", "gt", 3), ("tag", "equals", "x")],
    )
    engine = RulePolicyEngine([strict])
    good = PolicyContext(run_id="r", agent_id="a", role="dev", phase="build", depth=1)
    assert outcome(decide(engine, "demo:echo", good, n=4, tag="x")) == ("deny", "strict")
    assert (
        outcome(
            decide(
                engine,
                "demo:echo",
                PolicyContext(run_id="r", agent_id="a", role="dev", phase="build", depth=2),
                n=4,
                tag="x",
            )
        )[0]
        == "deny"
    )
    misses: list[tuple[PolicyContext, dict[str, Any]]] = [
        (PolicyContext(run_id="r", agent_id="a", role="ops", phase="build", depth=1), {"n": 4, "tag": "x"}),
        (PolicyContext(run_id="r", agent_id="a", role="dev", phase="plan", depth=1), {"n": 4, "tag": "x"}),
        (PolicyContext(run_id="r", agent_id="a", role="dev", phase="build", depth=0), {"n": 4, "tag": "x"}),
        (PolicyContext(run_id="r", agent_id="a", role="dev", phase="build", depth=3), {"n": 4, "tag": "x"}),
        (good, {"n": 3, "tag": "x"}),
        (good, {"n": 4, "tag": "y"}),
        (good, {"n": 4}),
    ]
    for context, arguments in misses:
        assert outcome(decide(engine, "demo:echo", context, **arguments)) == ("allow", "builtin:default")
    assert outcome(decide(engine, "file:read", good, n=4, tag="x")) == ("allow", "builtin:default")


@pytest.mark.parametrize(
    ("default", "expected"),
    [(ALLOW, "allow"), (DENY, "deny"), (ASK, "allow_with_confirm")],
)
def test_default_action_applies_when_no_rule_matches(default: PolicyAction, expected: str) -> None:
    engine = RulePolicyEngine([rule("other", ALLOW, "file:*")], default_action=default)
    decision = decide(engine, "demo:echo")
    assert outcome(decision) == (expected, "builtin:default")
    assert decision.reason_code == "policy:default"
    assert decision.policy_action is default
    assert outcome(decide(engine, "file:read")) == ("allow", "other")


def test_tool_globs() -> None:
    engine = RulePolicyEngine(
        [rule("exact", DENY, "demo:echo"), rule("prefix", ASK, "file:*"), rule("glob", DENY, "web:f?tch")]
    )
    assert outcome(decide(engine, "demo:echo")) == ("deny", "exact")
    assert outcome(decide(engine, "demo:other")) == ("allow", "builtin:default")
    assert outcome(decide(engine, "file:write")) == ("allow_with_confirm", "prefix")
    assert outcome(decide(engine, "web:fetch")) == ("deny", "glob")


def test_rules_with_many_tools_and_no_conditions_shadow_later_rules() -> None:
    engine = RulePolicyEngine([rule("catch-all", ASK, "demo:echo", "file:*"), rule("never", DENY, "*")])
    assert outcome(decide(engine, "file:read")) == ("allow_with_confirm", "catch-all")
    assert outcome(decide(engine, "demo:other")) == ("deny", "never")


# -- argument conditions -------------------------------------------------------------------------------------------

NESTED: dict[str, Any] = {
    "command": "git push --force origin main",
    "options": {"recursive": True, "depth": 3, "paths": ["/etc/passwd", {"name": "x"}], "0": "zero"},
    "size": 10,
    "ratio": 0.5,
    "flag": False,
    "nothing": None,
    "tags": ["a", 1, True, {"k": [1]}],
}


@pytest.mark.parametrize(
    ("path", "op", "value", "matches"),
    [
        # equals: JSON semantics
        ("command", "equals", "git push --force origin main", True),
        ("command", "equals", "git push", False),
        ("size", "equals", 10, True),
        ("size", "equals", 10.0, True),
        ("size", "equals", "10", False),
        ("options.recursive", "equals", True, True),
        ("options.recursive", "equals", 1, False),
        ("flag", "equals", 0, False),
        ("flag", "equals", False, True),
        ("nothing", "equals", None, True),
        ("missing", "equals", None, False),
        ("tags", "equals", ["a", 1, True, {"k": [1]}], True),
        ("tags", "equals", ["a", True, 1, {"k": [1]}], False),
        ("tags", "equals", ["a", 1, 1, {"k": [1]}], False),
        ("options.paths.1", "equals", {"name": "x"}, True),
        ("options.paths.1", "equals", {"name": "x", "other": 1}, False),
        # contains: substring of a string, element of a list
        ("command", "contains", "--force", True),
        ("command", "contains", "--dry-run", False),
        ("tags", "contains", "a", True),
        ("tags", "contains", 1, True),
        ("tags", "contains", True, True),
        ("tags", "contains", {"k": [1]}, True),
        ("tags", "contains", 2, False),
        ("options", "contains", "recursive", False),
        ("size", "contains", 1, False),
        ("command", "contains", 1, False),
        # matches: a regular expression search
        ("command", "matches", r"push\s+--force", True),
        ("command", "matches", r"^push", False),
        ("command", "matches", r"main$", True),
        ("size", "matches", "1", False),
        # lt / gt: numbers only
        ("size", "lt", 11, True),
        ("size", "lt", 10, False),
        ("size", "gt", 9.5, True),
        ("ratio", "gt", 0.25, True),
        ("ratio", "lt", 0.25, False),
        ("options.recursive", "gt", 0, False),
        ("flag", "lt", 1, False),
        ("command", "gt", 0, False),
        # dot paths into dicts and lists
        ("options.depth", "equals", 3, True),
        ("options.paths.0", "equals", "/etc/passwd", True),
        ("options.paths.1.name", "equals", "x", True),
        ("options.paths.2", "equals", None, False),
        ("options.paths.-1", "equals", {"name": "x"}, False),
        ("options.0", "equals", "zero", True),
        ("command.0", "equals", "g", False),
        ("size.value", "equals", None, False),
        ("options.missing.deeper", "equals", None, False),
        ("tags.3.k.0", "gt", 0, True),
    ],
)
def test_operator(path: str, op: str, value: Any, matches: bool) -> None:
    engine = RulePolicyEngine([rule("r", DENY, "demo:*", conditions=[(path, op, value)])])
    expected = ("deny", "r") if matches else ("allow", "builtin:default")
    assert outcome(decide(engine, "demo:echo", **NESTED)) == expected


def test_keys_and_values_are_data_not_code() -> None:
    tricky = "x') or True or ('"
    engine = RulePolicyEngine(
        [
            rule("a", DENY, "demo:*", conditions=[(tricky, "equals", tricky)]),
            rule("b", ASK, "demo:*", conditions=[("k", "matches", tricky.replace("(", r"\(").replace(")", r"\)"))]),
        ]
    )
    assert outcome(decide(engine, "demo:echo", **{tricky: tricky})) == ("deny", "a")
    assert outcome(decide(engine, "demo:echo", k=tricky)) == ("allow_with_confirm", "b")
    assert outcome(decide(engine, "demo:echo", k="x")) == ("allow", "builtin:default")


def test_runs_of_regular_expression_rules_are_skipped_or_checked_one_by_one() -> None:
    rules = [
        # r0 and s0..s8 form a joined block; "other" is first read inside it, and read again by r3.
        rule("r0", DENY, "demo:*", conditions=[("command", "matches", "^rm "), ("other", "equals", "y")]),
        *[rule(f"s{i}", DENY, "demo:*", conditions=[("command", "matches", rf"secret{i}\b")]) for i in range(25)],
        rule("r1", ASK, "demo:*", conditions=[("command", "matches", r"(a)\1")]),  # backreference: not joined
        rule("r2", DENY, "demo:*", conditions=[("command", "matches", "(?i)SUDO")]),  # global flag: not joined
        rule("r3", ASK, "demo:*", conditions=[("other", "equals", "q")]),
    ]
    engine = RulePolicyEngine(rules)
    assert outcome(decide(engine, "demo:echo", command="rm -rf", other="y")) == ("deny", "r0")
    assert outcome(decide(engine, "demo:echo", command="rm -rf", other="q")) == ("allow_with_confirm", "r3")
    assert outcome(decide(engine, "demo:echo", command="ls", other="q")) == ("allow_with_confirm", "r3")
    assert outcome(decide(engine, "demo:echo", command="aa")) == ("allow_with_confirm", "r1")
    assert outcome(decide(engine, "demo:echo", command="sudo ls")) == ("deny", "r2")
    assert outcome(decide(engine, "demo:echo", command="cat secret24")) == ("deny", "s24")
    assert outcome(decide(engine, "demo:echo", command="cat secret3 secret17")) == ("deny", "s3")
    assert outcome(decide(engine, "demo:echo", command=["secret1"])) == ("allow", "builtin:default")
    assert outcome(decide(engine, "demo:echo")) == ("allow", "builtin:default")


def test_nan_never_compares() -> None:
    engine = RulePolicyEngine([rule("r", DENY, "demo:*", conditions=[("n", "lt", math.inf)])])
    assert outcome(decide(engine, "demo:echo", n=math.nan)) == ("allow", "builtin:default")
    assert outcome(decide(engine, "demo:echo", n=1e308)) == ("deny", "r")


# -- invalid configuration fails at construction -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "setting", "fragment"),
    [
        (rule("r", DENY, conditions=[("a", "matches", "([")]), "rules[0].conditions[0].value", "invalid regular"),
        (rule("r", DENY, conditions=[("a", "matches", 3)]), "rules[0].conditions[0].value", "must be a regular"),
        (rule("r", DENY, conditions=[("a", "lt", "3")]), "rules[0].conditions[0].value", "must be a number"),
        (rule("r", DENY, conditions=[("a", "gt", True)]), "rules[0].conditions[0].value", "must be a number"),
        (rule("builtin:x", DENY), "rules[0].id", "reserved"),
        (rule("safety:x", DENY), "rules[0].id", "reserved"),
        (rule("r", DENY, min_depth=3, max_depth=1), "rules[0].min_depth", "greater than max_depth"),
        (PolicyRule(id="r", action=DENY, tools=()), "rules[0].tools", "at least one tool"),
        (PolicyRule(id="r", action=DENY, tools=("  ",)), "rules[0].tools[0]", "must not be empty"),
    ],
)
def test_invalid_rule_is_a_configuration_error(bad: PolicyRule, setting: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        RulePolicyEngine([bad])
    assert raised.value.setting == setting
    assert fragment in str(raised.value)


def test_every_rule_problem_is_reported_at_once() -> None:
    rules = [rule("same", DENY, conditions=[("a", "matches", "(")]), rule("same", DENY, min_depth=2, max_depth=0)]
    with pytest.raises(ConfigurationError) as raised:
        RulePolicyEngine(rules)
    message = str(raised.value)
    assert "rules[0].conditions[0].value: invalid regular expression" in message
    assert "rules[1].id: duplicate rule id 'same' (first used by rules[0])" in message
    assert "rules[1].min_depth" in message


def test_unknown_preset_lists_the_valid_names() -> None:
    with pytest.raises(ConfigurationError, match="valid presets: safe, balanced, power, developer") as raised:
        RulePolicyEngine(security="yolo")
    assert raised.value.setting == "preset"


# -- step 5: safety checkers ---------------------------------------------------------------------------------------


@dataclass
class Checker:
    name: str
    verdict: Callable[[ToolCall, ToolSpec, PolicyContext], SafetyVerdict | None]
    on_error: str = "deny"
    calls: int = 0

    def check(self, call: ToolCall, spec: ToolSpec, context: PolicyContext) -> SafetyVerdict | None:
        self.calls += 1
        return self.verdict(call, spec, context)


def boom(*_: object) -> SafetyVerdict:
    raise RuntimeError("checker crashed")


def test_checker_is_a_safety_checker() -> None:
    assert isinstance(Checker("x", lambda *_: None), SafetyChecker)


def test_checker_denial() -> None:
    verdict = SafetyVerdict(DENY, "path outside the workspace", "safety:path", ("fs:escape",))
    engine = RulePolicyEngine(security="developer", safety_checkers=[Checker("paths", lambda *_: verdict)])
    decision = decide(engine, "file:read", path="/etc/passwd")
    assert outcome(decision) == ("deny", "safety:paths")
    assert (decision.reason, decision.reason_code, decision.risk_tags) == (
        "path outside the workspace",
        "safety:path",
        ("fs:read", "fs:escape"),
    )


def test_checker_ask_and_allow_tags() -> None:
    engine = RulePolicyEngine(
        safety_checkers=[
            Checker("tagger", lambda *_: SafetyVerdict(ALLOW, risk_tags=("pii",))),
            Checker("asker", lambda *_: SafetyVerdict(ASK)),
        ]
    )
    decision = decide(engine, "demo:echo")
    assert outcome(decision) == ("allow_with_confirm", "safety:asker")
    assert decision.reason == "safety checker 'asker' says ask"
    assert decision.reason_code == "safety:asker"
    assert decision.risk_tags == ("pii",)
    only_tags = RulePolicyEngine(
        safety_checkers=[Checker("tagger", lambda *_: SafetyVerdict(ALLOW, risk_tags=("pii",)))]
    )
    assert decide(only_tags, "demo:echo").risk_tags == ("pii",)
    assert outcome(decide(only_tags, "demo:echo")) == ("allow", "builtin:default")


def test_first_checker_denial_stops_the_others() -> None:
    later = Checker("later", lambda *_: SafetyVerdict(ASK))
    engine = RulePolicyEngine(safety_checkers=[Checker("first", lambda *_: SafetyVerdict(DENY)), later])
    assert outcome(decide(engine, "demo:echo")) == ("deny", "safety:first")
    assert later.calls == 0


def test_checkers_do_not_run_after_a_rule_denied() -> None:
    checker = Checker("never", lambda *_: SafetyVerdict(ASK))
    engine = RulePolicyEngine([rule("no", DENY, "demo:echo")], default_action=DENY, safety_checkers=[checker])
    assert outcome(decide(engine, "demo:echo")) == ("deny", "no")
    assert outcome(decide(engine, "demo:other")) == ("deny", "builtin:default")
    assert checker.calls == 0


def test_checker_denial_beats_a_rule_allow_and_ask() -> None:
    engine = RulePolicyEngine(
        [rule("ok", ALLOW, "demo:echo"), rule("hmm", ASK, "demo:other")],
        safety_checkers=[Checker("veto", lambda *_: SafetyVerdict(DENY))],
    )
    assert outcome(decide(engine, "demo:echo")) == ("deny", "safety:veto")
    assert outcome(decide(engine, "demo:other")) == ("deny", "safety:veto")


def test_a_raising_checker_denies_by_default() -> None:
    engine = RulePolicyEngine(safety_checkers=[Checker("fragile", boom)])
    decision = decide(engine, "demo:echo")
    assert outcome(decision) == ("deny", "safety:fragile")
    assert decision.reason_code == "safety:error"
    assert decision.reason == "safety checker 'fragile' failed: RuntimeError: checker crashed"


def test_a_raising_checker_uses_its_declared_on_error() -> None:
    asking = RulePolicyEngine(safety_checkers=[Checker("fragile", boom, on_error="ask")])
    assert outcome(decide(asking, "demo:echo")) == ("allow_with_confirm", "safety:fragile")
    lenient = RulePolicyEngine(safety_checkers=[Checker("fragile", boom, on_error="allow")])
    assert outcome(decide(lenient, "demo:echo")) == ("allow", "builtin:default")


def test_checker_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="on_error must be one of"):
        RulePolicyEngine(safety_checkers=[Checker("x", boom, on_error="maybe")])
    with pytest.raises(ConfigurationError, match="unique, non-empty names"):
        RulePolicyEngine(safety_checkers=[Checker("x", boom), Checker("x", boom)])
    with pytest.raises(ConfigurationError, match="unique, non-empty names"):
        RulePolicyEngine(safety_checkers=[Checker("", boom)])


def test_checkers_see_every_call_with_its_context() -> None:
    seen: list[tuple[str, str, int]] = []

    def record(call: ToolCall, spec: ToolSpec, context: PolicyContext) -> None:
        seen.append((call.name, spec.name, context.depth))

    engine = RulePolicyEngine(safety_checkers=[Checker("spy", record)])
    decide(engine, "demo:echo", PolicyContext(run_id="r", agent_id="a", depth=2))
    decide(engine, "demo:echo", PolicyContext(run_id="r", agent_id="a", depth=2))
    assert seen == [("demo:echo", "demo:echo", 2)] * 2


# -- step 6: approval patterns -------------------------------------------------------------------------------------


def test_requires_approval_patterns_ask_for_confirmation() -> None:
    engine = RulePolicyEngine([rule("ok", ALLOW, "demo:*")], requires_approval=["demo:e*"])
    decision = decide(engine, "demo:echo")
    assert outcome(decision) == ("allow_with_confirm", "builtin:requires_approval")
    assert decision.reason_code == "policy:requires_approval"
    assert "demo:e*" in (decision.reason or "")
    assert outcome(decide(engine, "demo:other")) == ("allow", "ok")


def test_interactive_mode_needs_approval_for_commands_and_writes() -> None:
    assert DEFAULT_INTERACTIVE_APPROVAL == ("shell:*", "bash:*", "file:write", "file:edit")
    engine = RulePolicyEngine(security="developer")
    interactive = PolicyContext(run_id="r", agent_id="a", mode=ExecutionMode.INTERACTIVE)
    for name in ("shell:run", "file:write"):
        decision = decide(engine, name, interactive)
        assert outcome(decision) == ("allow_with_confirm", "builtin:interactive_approval")
        assert decision.reason_code == "policy:interactive_approval"
        assert outcome(decide(engine, name)) == ("allow", "builtin:default")
    assert outcome(decide(engine, "file:read", interactive)) == ("allow", "builtin:default")
    relaxed = RulePolicyEngine(security="developer", interactive_approval=())
    assert outcome(decide(relaxed, "shell:run", interactive)) == ("allow", "builtin:default")


def test_a_tool_that_requires_confirmation_gets_it() -> None:
    spec = ToolSpec(name="demo:launch", description="launch", requires_confirmation=True)
    decision = RulePolicyEngine().evaluate(call("demo:launch"), spec, CONTEXT)
    assert outcome(decision) == ("allow_with_confirm", "builtin:tool_confirmation")
    assert decision.reason_code == "tool:requires_confirmation"


def test_the_first_confirmation_source_is_reported() -> None:
    engine = RulePolicyEngine(
        [rule("hmm", ASK, "web:*")],
        security="balanced",
        requires_approval=["web:*"],
        safety_checkers=[Checker("asker", lambda *_: SafetyVerdict(ASK))],
    )
    assert outcome(decide(engine, "web:fetch")) == ("allow_with_confirm", "permission:network")
    no_permission_ask = RulePolicyEngine(
        [rule("hmm", ASK, "demo:*")],
        requires_approval=["demo:*"],
        safety_checkers=[Checker("asker", lambda *_: SafetyVerdict(ASK))],
    )
    assert outcome(decide(no_permission_ask, "demo:echo")) == ("allow_with_confirm", "hmm")


# -- configuration, equality, caching ------------------------------------------------------------------------------


def test_engines_compare_by_configuration() -> None:
    rules = [rule("a", DENY, "demo:*", conditions=[("x", "matches", "y")])]
    assert RulePolicyEngine(rules, security="safe") == RulePolicyEngine(rules, security=SECURITY_PRESETS["safe"])
    assert RulePolicyEngine(rules) != RulePolicyEngine(rules, default_action=DENY)
    assert RulePolicyEngine(rules) != RulePolicyEngine()
    assert RulePolicyEngine() != "engine"
    engine = RulePolicyEngine(rules, requires_approval=["x:*"])
    assert (engine.rules, engine.requires_approval, engine.default_action) == (tuple(rules), ("x:*",), ALLOW)
    assert (engine.allowed_tools, engine.denied_tools, engine.safety_checkers) == (("*",), (), ())
    assert engine.interactive_approval == DEFAULT_INTERACTIVE_APPROVAL
    assert engine.security == SecurityPolicy()
    assert "<1 rules>" in repr(engine)


def test_decisions_are_stable_and_reused() -> None:
    engine = RulePolicyEngine([rule("a", ASK, "demo:*", conditions=[("n", "gt", 1)])])
    first = decide(engine, "demo:echo", n=2)
    assert decide(engine, "demo:echo", n=3) is first
    assert decide(engine, "demo:echo", n=0) == decide(engine, "demo:echo", n=-1)
    assert pickle.loads(pickle.dumps(first)) == first


def test_tools_sharing_candidate_rules_share_a_matcher() -> None:
    rules = [rule(f"r{i}", DENY, "demo:*", conditions=[("n", "equals", i)]) for i in range(300)]
    engine = RulePolicyEngine(rules)
    assert outcome(decide(engine, "demo:echo", n=299)) == ("deny", "r299")
    assert outcome(decide(engine, "demo:other", n=0)) == ("deny", "r0")
    assert outcome(decide(engine, "demo:other", n=300)) == ("allow", "builtin:default")


# -- the reference property ----------------------------------------------------------------------------------------
#
# An independent, deliberately naive evaluation of the spec's order. It shares no code with the engine: its own
# permission table, its own path walk and JSON comparison, a sort instead of a compiled matcher.

PATTERNS = ("*", "file:*", "demo:*", "shell:run", "web:*", "file:read", "demo:e*", "none:*")
PATHS = ("a", "b", "a.b", "a.0", "n")
# Joinable expressions, and two that are not: a backreference and a global inline flag.
REGEXES = ("^x", "y", "[0-9]+", "a|b", "", r"(a)\1", "(?i)X")

REFERENCE_PERMISSIONS: dict[str, tuple[str, set[str], set[str]]] = {
    # tool: (permission, levels that allow, levels that ask)
    "file:read": ("file", {"read", "workspace", "home", "full"}, set()),
    "file:write": ("file", {"workspace", "home", "full"}, set()),
    "shell:run": ("bash", {"sandbox", "full"}, {"confirm"}),
    "web:fetch": ("network", {"full"}, {"allowlist"}),
}


def canonical(value: Any) -> Any:
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("array", tuple(canonical(item) for item in value))
    return ("object", tuple(sorted((key, canonical(item)) for key, item in value.items())))


_ABSENT = object()


def walk(arguments: dict[str, Any], path: str) -> Any:
    value: Any = arguments
    for segment in path.split("."):
        if isinstance(value, dict) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and re.fullmatch("[0-9]+", segment) and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return _ABSENT
    return value


def holds(condition: ArgCondition, arguments: dict[str, Any]) -> bool:
    value = walk(arguments, condition.path)
    if value is _ABSENT:
        return False
    expected = condition.value
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if condition.op == "equals":
        return bool(canonical(value) == canonical(expected))
    if condition.op == "contains":
        if isinstance(value, str):
            return isinstance(expected, str) and expected in value
        return isinstance(value, list) and canonical(expected) in [canonical(item) for item in value]
    if condition.op == "matches":
        return isinstance(value, str) and re.search(str(expected), value) is not None
    if condition.op == "lt":
        return bool(is_number and value < expected)
    return bool(is_number and value > expected)


def rule_matches(candidate: PolicyRule, name: str, arguments: dict[str, Any], context: PolicyContext) -> bool:
    return (
        any(fnmatch.fnmatchcase(name, pattern) for pattern in candidate.tools)
        and candidate.role in (None, context.role)
        and candidate.phase in (None, context.phase)
        and (candidate.min_depth is None or context.depth >= candidate.min_depth)
        and (candidate.max_depth is None or context.depth <= candidate.max_depth)
        and all(holds(condition, arguments) for condition in candidate.conditions)
    )


@dataclass(frozen=True)
class Config:
    rules: tuple[PolicyRule, ...]
    permissions: ToolPermissions
    allowed: tuple[str, ...]
    denied: tuple[str, ...]
    approval: tuple[str, ...]
    interactive: tuple[str, ...]
    default: PolicyAction
    checkers: tuple[Checker, ...]

    def engine(self) -> RulePolicyEngine:
        return RulePolicyEngine(
            self.rules,
            security=SecurityPolicy(permissions=self.permissions),
            allowed_tools=self.allowed,
            denied_tools=self.denied,
            requires_approval=self.approval,
            interactive_approval=self.interactive,
            default_action=self.default,
            safety_checkers=self.checkers,
        )


def reference_gates(config: Config, name: str) -> tuple[str, str] | str | None:
    """Steps before the rules: a final (outcome, id), a permission that asks, or None."""
    asked = None
    if name in REFERENCE_PERMISSIONS:
        permission, allowing, asking = REFERENCE_PERMISSIONS[name]
        level = getattr(config.permissions, permission).value
        if level in asking:
            asked = f"permission:{permission}"
        elif level not in allowing:
            return "deny", f"permission:{permission}"
    if name == "complete_task":
        return "allow", "builtin:completion"
    if not any(fnmatch.fnmatchcase(name, pattern) for pattern in config.allowed):
        return "deny", "builtin:allowlist"
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in config.denied):
        return "deny", "builtin:denylist"
    return asked


def reference(config: Config, request: ToolCall, spec: ToolSpec | None, context: PolicyContext) -> tuple[str, str]:
    name, arguments = request.name, request.arguments
    if spec is None:
        return "deny", "builtin:unknown_tool"
    gate = reference_gates(config, name)
    if isinstance(gate, tuple):
        return gate
    confirmations = [gate] if gate else []
    ordered = sorted(range(len(config.rules)), key=lambda index: (-config.rules[index].priority, index))
    chosen = next((config.rules[i] for i in ordered if rule_matches(config.rules[i], name, arguments, context)), None)
    action, deciding = (chosen.action, chosen.id) if chosen else (config.default, "builtin:default")
    if action == "deny":
        return "deny", deciding
    if action == "ask":
        confirmations.append(deciding)
    asked = None
    for checker in config.checkers:
        try:
            verdict = checker.verdict(request, spec, context)
        except Exception:
            verdict = SafetyVerdict(PolicyAction(checker.on_error)) if checker.on_error != "allow" else None
        if verdict is not None and verdict.action == "deny":
            return "deny", f"safety:{checker.name}"
        if verdict is not None and verdict.action == "ask" and asked is None:
            asked = f"safety:{checker.name}"
    if asked:
        confirmations.append(asked)
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in config.approval):
        confirmations.append("builtin:requires_approval")
    elif context.mode == "interactive" and any(fnmatch.fnmatchcase(name, p) for p in config.interactive):
        confirmations.append("builtin:interactive_approval")
    if confirmations:
        return "allow_with_confirm", confirmations[0]
    return "allow", deciding


_leaves = st.sampled_from([None, True, False, -1, 0, 1, 3, 0.5, 2.0, "x", "y", "1", "ab", ""])
_small = _leaves | st.lists(_leaves, max_size=3)
# Nested enough for dot paths (a.b, a.0) without the cost of a recursive strategy.
JSON = _small | st.dictionaries(st.sampled_from(["a", "b", "0"]), _small, max_size=2)


CONDITIONS = st.one_of(
    st.builds(ArgCondition, path=st.sampled_from(PATHS), op=st.just("matches"), value=st.sampled_from(REGEXES)),
    st.builds(
        ArgCondition,
        path=st.sampled_from(PATHS),
        op=st.sampled_from(["lt", "gt"]),
        value=st.sampled_from([-1, 0, 1, 0.5, 2.5]),
    ),
    st.builds(ArgCondition, path=st.sampled_from(PATHS), op=st.sampled_from(["equals", "contains"]), value=JSON),
)
# Unconstrained values are drawn more often, so that rules match often enough to compete on priority.
DEPTHS = st.sampled_from([(None, None)] * 4 + [(0, None), (1, None), (None, 1), (1, 2), (2, 3), (0, 0)])
ROLES = st.sampled_from([None, None, None, "dev", "ops"])
PHASES = st.sampled_from([None, None, None, "plan", "build"])
RULE_FIELDS = st.fixed_dictionaries(
    {
        "action": st.sampled_from(list(PolicyAction)),
        "tools": st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2).map(tuple),
        "conditions": st.lists(CONDITIONS, max_size=2).map(tuple),
        "role": ROLES,
        "phase": PHASES,
        "depth": DEPTHS,
        "priority": st.integers(-2, 2),
    }
)


def _rule(index: int, fields: dict[str, Any]) -> PolicyRule:
    low, high = fields.pop("depth")
    return PolicyRule(id=f"rule-{index}", min_depth=low, max_depth=high, **fields)


BEHAVIOURS: list[tuple[str, Callable[..., SafetyVerdict | None]]] = [
    ("quiet", lambda *_: None),
    ("deny-x", lambda call, *_: SafetyVerdict(DENY) if call.arguments.get("a") == "x" else None),
    ("ask-demo", lambda call, *_: SafetyVerdict(ASK) if call.name.startswith("demo:") else None),
    ("tagger", lambda *_: SafetyVerdict(ALLOW, risk_tags=("seen",))),
    ("crash-deep", lambda _call, _spec, context: boom() if context.depth > 1 else None),
]
CHECKERS = st.lists(
    st.tuples(st.sampled_from(BEHAVIOURS), st.sampled_from(["deny", "ask", "allow"])),
    max_size=3,
    unique_by=lambda pair: pair[0][0],
).map(lambda drawn: tuple(Checker(name, behaviour, on_error) for (name, behaviour), on_error in drawn))
PATTERN_LISTS = st.lists(st.sampled_from(PATTERNS), max_size=3).map(tuple)

CONFIGS = st.builds(
    Config,
    rules=st.lists(RULE_FIELDS, min_size=1, max_size=10).map(
        lambda drawn: tuple(_rule(i, dict(f)) for i, f in enumerate(drawn))
    ),
    permissions=st.sampled_from([preset.permissions for preset in SECURITY_PRESETS.values()]),
    allowed=st.sampled_from([("*",), ("*",), ("*",), ("demo:*", "file:*", "shell:run"), ("demo:e*", "web:*"), ()]),
    denied=st.sampled_from([(), (), (), ("demo:o*",), ("web:*", "file:write")]),
    approval=PATTERN_LISTS,
    interactive=PATTERN_LISTS,
    default=st.sampled_from(list(PolicyAction)),
    checkers=CHECKERS,
)

REQUESTS = st.builds(
    lambda name, arguments, context: (ToolCall(id="c", name=name, arguments=arguments), SPECS.get(name), context),
    st.sampled_from([*TOOLS, "ghost:tool"]),
    st.dictionaries(st.sampled_from(["a", "b", "n"]), JSON, max_size=3),
    st.builds(
        PolicyContext,
        run_id=st.just("run"),
        agent_id=st.just("agent"),
        depth=st.integers(0, 3),
        role=st.sampled_from([None, "dev"]),
        phase=st.sampled_from([None, "build"]),
        mode=st.sampled_from(list(ExecutionMode)),
    ),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(CONFIGS, st.lists(REQUESTS, min_size=1, max_size=8))
def test_decisions_equal_the_reference_evaluation(config: Config, batch: list[Any]) -> None:
    engine = config.engine()
    for request, spec, context in batch:
        decision = engine.evaluate(request, spec, context)
        assert outcome(decision) == reference(config, request, spec, context)
        assert decision.reason
        assert decision.reason_code
        assert decision.policy_action is not None
        assert decision.allowed is (decision.policy_decision is not PolicyOutcome.DENY)
        assert decision.requires_confirmation is (decision.policy_decision is PolicyOutcome.ALLOW_WITH_CONFIRM)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(CONFIGS, st.lists(st.tuples(REQUESTS, st.booleans()), min_size=1, max_size=12))
def test_zero_unauthorised_calls(config: Config, sequence: list[Any]) -> None:
    """Execute exactly what the policy allows (or an approver confirmed), never a denied call."""
    engine = config.engine()
    executed, authorised = [], []
    for number, ((request, spec, context), approver_says_yes) in enumerate(sequence):
        decision = engine.evaluate(request, spec, context)
        if decision.allowed and (not decision.requires_confirmation or approver_says_yes):
            executed.append(number)
        expected, _ = reference(config, request, spec, context)
        if expected == "allow" or (expected == "allow_with_confirm" and approver_says_yes):
            authorised.append(number)
        if expected == "deny":
            assert not decision.allowed
    assert executed == authorised


def _place(path: str, value: Any, as_list: bool) -> dict[str, Any]:
    """Arguments holding `value` at `path` (a numeric segment as a list index or as a key)."""
    *parents, last = path.split(".")
    holder: Any = [value] if as_list and last == "0" else {last: value}
    for segment in reversed(parents):
        holder = {segment: holder}
    arguments: dict[str, Any] = holder
    return arguments


_SCALARS = st.sampled_from([None, True, False, 0, 1, -1, 0.5, 1.0, "", "x", "1", "ab"])
_VALUES = _SCALARS | st.lists(_SCALARS, max_size=2) | st.dictionaries(st.sampled_from(["a", "b"]), _SCALARS, max_size=2)
FOCUSED_CONDITIONS = (
    st.builds(ArgCondition, path=st.sampled_from(PATHS), op=st.sampled_from(["equals", "contains"]), value=_VALUES)
    | CONDITIONS
)


@settings(max_examples=1000)
@given(st.data())
def test_conditions_equal_the_reference_evaluation(data: st.DataObject) -> None:
    condition = data.draw(FOCUSED_CONDITIONS)
    # The argument is often the condition's value, a JSON "twin" of it (1 for true, "1" for 1) or a container
    # holding one of them, so that boundaries and type confusions are hit.
    expected = condition.value
    nearby: list[Any] = ["x", "1", "ab", "y"] if condition.op == "matches" else [expected]
    if isinstance(expected, bool):
        nearby += [int(expected), float(expected)]
    elif isinstance(expected, int | float):
        nearby += [expected - 1, expected + 0.5, str(expected), *([bool(expected)] if expected in (0, 1) else [])]
    nearby += [[item] for item in nearby] + [f"<{item}>" for item in nearby if isinstance(item, str)]
    value = data.draw(st.one_of(*[st.sampled_from(nearby)] * 3, _VALUES))
    arguments = _place(condition.path, value, data.draw(st.booleans()))
    engine = RulePolicyEngine([PolicyRule(id="r", action=DENY, conditions=(condition,))])
    matched = decide(engine, "demo:echo", **arguments).policy_rule_id == "r"
    assert matched is holds(condition, arguments)
