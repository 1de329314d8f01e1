"""The rule-based policy engine: one decision per tool call, in the spec's evaluation order.

Order of evaluation (the first step that denies ends it):

1. Unknown tool (no spec) → deny.
2. Base permission checker (the security policy's permissions) → deny wins; it may also ask.
3. The completion tool is always allowed.
4. Execution allowlist (``allowed_tools``) and denylist (``denied_tools``) → deny.
5. Rules by descending priority (equal priorities in the order given): the first rule whose tool
   patterns, role, phase, depth range and argument conditions all match decides; ``deny`` stops, ``ask``
   marks the call for confirmation, ``allow`` passes. No rule matches → ``default_action``.
6. Safety checkers, in order → the first deny stops, an ask marks the call for confirmation.
7. Approval patterns (``requires_approval``; ``interactive_approval`` in interactive mode; a tool spec
   that requires confirmation) → confirmation.
8. ``allow_with_confirm`` if anything asked for confirmation, else ``allow``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from runtime_control.config_files import format_location
from runtime_control.policy._permissions import check_permission
from runtime_control.policy._rules import Matcher, applies_to, build_matcher, compile_rules
from runtime_control.policy.presets import SecurityPolicy, security_preset
from runtime_core.agents import ExecutionMode
from runtime_core.exceptions import ConfigurationError
from runtime_core.policy import Escalation, PolicyAction, PolicyContext, PolicyDecision, PolicyOutcome, PolicyRule
from runtime_core.tools import ToolCall, ToolSpec, is_completion_tool, match_tool_pattern

__all__ = ["DEFAULT_INTERACTIVE_APPROVAL", "RulePolicyEngine", "SafetyChecker", "SafetyVerdict"]

DEFAULT_INTERACTIVE_APPROVAL: tuple[str, ...] = ("shell:*", "bash:*", "file:write", "file:edit")
"""Tools that need approval in interactive mode: running commands and writing files (spec §5.12)."""

# Per-tool-name plans are cached; past this many names (a registry that keeps growing) plans are
# computed per call instead, so memory stays bounded.
_MAX_CACHED_TOOLS = 4096


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    """What a safety checker says about a call.

    Attributes:
        action: ``deny`` stops the call, ``ask`` requires confirmation, ``allow`` lets it pass (its
            ``risk_tags`` are still recorded).
        reason: Why, for the run log and the model.
        reason_code: Machine-readable reason; defaults to ``safety:<checker name>``.
        risk_tags: Tags added to the decision.
    """

    action: PolicyAction
    reason: str | None = None
    reason_code: str | None = None
    risk_tags: tuple[str, ...] = ()


@runtime_checkable
class SafetyChecker(Protocol):
    """A check of a call's content (paths, commands, URLs) that runs after the rules.

    A checker must be fast and side-effect free, like the engine. It may set an ``on_error`` attribute
    (a `PolicyAction`, default ``deny``): the action taken when `check` raises.
    """

    @property
    def name(self) -> str:
        """Unique name; decisions report it as rule id ``safety:<name>``."""
        ...

    def check(self, call: ToolCall, spec: ToolSpec, context: PolicyContext) -> SafetyVerdict | None:
        """Return a verdict, or ``None`` when the checker has nothing to say about `call`."""
        ...


@dataclass(frozen=True, slots=True, eq=False)  # identity hashing: sources key the per-plan decision cache
class _Source:
    """The step a decision reports: its reason, reason code, rule id and action."""

    reason: str
    reason_code: str
    rule_id: str
    action: PolicyAction


@dataclass(frozen=True, slots=True)
class _Checked:
    """What the safety checkers said about one call: a deciding source (deny or ask), and tags."""

    source: _Source | None
    risk_tags: tuple[str, ...]


class _Plan:
    """Everything about a tool name that does not depend on the call's arguments or context."""

    __slots__ = (
        "approval",
        "ask",
        "confirmation",
        "decisions",
        "final",
        "interactive",
        "match",
        "resource_argument",
        "risk_tags",
        "rules",
    )

    def __init__(self, name: str, risk_tags: tuple[str, ...]) -> None:
        self.risk_tags = risk_tags
        self.confirmation = _Source(
            f"tool {name!r} requires confirmation",
            "tool:requires_confirmation",
            "builtin:tool_confirmation",
            PolicyAction.ASK,
        )
        self.final: PolicyDecision | None = None
        self.resource_argument: str | None = None
        self.rules: tuple[PolicyRule, ...] = ()
        self.match: Matcher | None = None
        self.ask: _Source | None = None
        self.approval: _Source | None = None
        self.interactive: _Source | None = None
        self.decisions: dict[tuple[int, _Source | None], PolicyDecision] = {}


def _decision(
    source: _Source, risk_tags: tuple[str, ...], *, confirm: bool = False, escalation: Escalation | None = None
) -> PolicyDecision:
    allowed = source.action is not PolicyAction.DENY
    return PolicyDecision(
        allowed=allowed,
        requires_confirmation=allowed and confirm,
        policy_decision=(
            PolicyOutcome.DENY if not allowed else PolicyOutcome.ALLOW_WITH_CONFIRM if confirm else PolicyOutcome.ALLOW
        ),
        reason=source.reason,
        reason_code=source.reason_code,
        risk_tags=risk_tags,
        escalation=escalation,
        policy_rule_id=source.rule_id,
        policy_action=source.action,
    )


def _merge_tags(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(first + second)) if second else first


class RulePolicyEngine:
    """A `PolicyEngine` driven by a security policy, tool lists, rules and safety checkers.

    Everything is checked when the engine is built, so an invalid rule fails here, never during a run.
    On the first call of each tool the engine compiles the rules that can apply to it into one matcher
    and caches everything that does not depend on the call's arguments, so later decisions cost a few
    microseconds even with a hundred rules. Engines are immutable and safe to share between runs.

    Every decision names the step that made it: ``reason``, ``reason_code``, ``policy_rule_id`` (a rule's
    ``id``, or ``permission:<name>``, ``safety:<checker>``, ``builtin:<step>``) and ``policy_action``.

    Args:
        rules: Governance rules, in file order (which breaks ties of equal priority).
        security: A `SecurityPolicy`, or the name of a preset (``safe``, ``balanced``, ``power``,
            ``developer``).
        allowed_tools: The execution allowlist: tool patterns a call must match (``*`` for all).
        denied_tools: Tool patterns that are always denied.
        requires_approval: Tool patterns whose calls need confirmation.
        interactive_approval: Tool patterns that need confirmation in interactive mode.
        default_action: What happens when no rule matches.
        safety_checkers: Checkers run, in order, on calls the rules did not deny.

    Raises:
        ConfigurationError: A rule can never be evaluated (invalid regular expression, ``lt``/``gt``
            against a non-number, duplicate or reserved id, empty tool list, ``min_depth`` above
            ``max_depth``), a preset name is unknown, or a safety checker is misconfigured.
    """

    def __init__(
        self,
        rules: Iterable[PolicyRule] = (),
        *,
        security: SecurityPolicy | str = "balanced",
        allowed_tools: Sequence[str] = ("*",),
        denied_tools: Sequence[str] = (),
        requires_approval: Sequence[str] = (),
        interactive_approval: Sequence[str] = DEFAULT_INTERACTIVE_APPROVAL,
        default_action: PolicyAction = PolicyAction.ALLOW,
        safety_checkers: Sequence[SafetyChecker] = (),
    ) -> None:
        self._given_rules = tuple(rules)
        compiled, problems = compile_rules(self._given_rules)
        if problems:
            lines = "\n".join(f"  {format_location(location)}: {message}" for location, message in problems)
            raise ConfigurationError(f"invalid policy rules:\n{lines}", setting=format_location(problems[0][0]))
        self._rules = compiled
        self._security = security_preset(security) if isinstance(security, str) else security
        self._allowed_tools = tuple(allowed_tools)
        self._denied_tools = tuple(denied_tools)
        self._requires_approval = tuple(requires_approval)
        self._interactive_approval = tuple(interactive_approval)
        self._default_action = PolicyAction(default_action)
        self._default_source = _Source(
            f"no rule matched; the default action is {self._default_action.value}",
            "policy:default",
            "builtin:default",
            self._default_action,
        )
        self._checkers = tuple(safety_checkers)
        self._on_error = tuple(_on_error(checker) for checker in self._checkers)
        names = [checker.name for checker in self._checkers]
        if len(set(names)) != len(names) or not all(names):
            raise ConfigurationError(
                f"safety checkers need unique, non-empty names: {names}", setting="safety_checkers"
            )
        self._plans: dict[str, _Plan] = {}
        # Tools whose candidate rules are the same share one compiled matcher.
        self._matchers: dict[tuple[int, ...], Matcher] = {}

    # -- configuration -------------------------------------------------------------------------------

    @property
    def rules(self) -> tuple[PolicyRule, ...]:
        """The rules, in the order given."""
        return self._given_rules

    @property
    def security(self) -> SecurityPolicy:
        """The security policy behind the base permission checker."""
        return self._security

    @property
    def allowed_tools(self) -> tuple[str, ...]:
        """The execution allowlist."""
        return self._allowed_tools

    @property
    def denied_tools(self) -> tuple[str, ...]:
        """Tool patterns that are always denied."""
        return self._denied_tools

    @property
    def requires_approval(self) -> tuple[str, ...]:
        """Tool patterns whose calls need confirmation."""
        return self._requires_approval

    @property
    def interactive_approval(self) -> tuple[str, ...]:
        """Tool patterns whose calls need confirmation in interactive mode."""
        return self._interactive_approval

    @property
    def default_action(self) -> PolicyAction:
        """The action when no rule matches."""
        return self._default_action

    @property
    def safety_checkers(self) -> tuple[SafetyChecker, ...]:
        """The safety checkers, in evaluation order."""
        return self._checkers

    def _settings(self) -> tuple[object, ...]:
        return (
            self._given_rules,
            self._security,
            self._allowed_tools,
            self._denied_tools,
            self._requires_approval,
            self._interactive_approval,
            self._default_action,
            self._checkers,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RulePolicyEngine):
            return NotImplemented
        return self._settings() == other._settings()

    __hash__ = None  # type: ignore[assignment]  # equal engines compare by configuration; they are not keys

    def __repr__(self) -> str:
        return (
            f"RulePolicyEngine(<{len(self._given_rules)} rules>, default_action={self._default_action.value!r}, "
            f"allowed_tools={self._allowed_tools!r}, denied_tools={self._denied_tools!r}, "
            f"requires_approval={self._requires_approval!r}, safety_checkers={len(self._checkers)})"
        )

    def for_child(
        self, *, security: SecurityPolicy | str | None = None, grants: Mapping[str, str] | None = None
    ) -> RulePolicyEngine:
        """Return the engine for a child run (one delegation level deeper) started under this one.

        The child keeps every restriction of this engine: rules, allowlist, denylist, approval patterns,
        default action and safety checkers. Its security policy is this one narrowed by `security` (see
        `SecurityPolicy.for_child`), so it never gains a permission this engine lacks unless `grants`
        names it. Rules see the child's calls at ``context.depth + 1``, so depth ranges keep applying.

        Args:
            security: The policy or preset the child asked for; ``None`` keeps this engine's.
            grants: Explicit elevations, permission name to level (``{"bash": "full"}``).

        Raises:
            ConfigurationError: An unknown preset, permission or level.
        """
        requested = security_preset(security) if isinstance(security, str) else security
        child = RulePolicyEngine(
            self._given_rules,
            security=self._security.for_child(requested, grants=grants),
            allowed_tools=self._allowed_tools,
            denied_tools=self._denied_tools,
            requires_approval=self._requires_approval,
            interactive_approval=self._interactive_approval,
            default_action=self._default_action,
            safety_checkers=self._checkers,
        )
        child._matchers = self._matchers  # same rules, same matchers: children skip the compilation
        return child

    # -- evaluation ----------------------------------------------------------------------------------

    def evaluate(self, call: ToolCall, spec: ToolSpec | None, context: PolicyContext) -> PolicyDecision:
        """Decide whether `call` may run.

        Args:
            call: The call as the model sent it.
            spec: The spec of the tool `call` names, or ``None`` when no such tool is registered.
            context: Who is calling: run, agent, role, phase, delegation depth, execution mode.

        Returns:
            The decision, naming the step, rule and reason that made it.
        """
        if spec is None:
            return _decision(
                _Source(
                    f"tool {call.name!r} is not registered", "tool:unknown", "builtin:unknown_tool", PolicyAction.DENY
                ),
                (),
            )
        plan = self._plans.get(call.name) or self._plan_for(call.name)
        if plan.final is not None:
            return _with_resource(plan.final, plan.resource_argument, call) if plan.resource_argument else plan.final
        matched = plan.match(call.arguments, context) if plan.match else -1
        approval = plan.approval or (
            plan.interactive
            if context.mode is ExecutionMode.INTERACTIVE and plan.interactive
            else plan.confirmation
            if spec.requires_confirmation
            else None
        )
        action = plan.rules[matched].action if matched >= 0 else self._default_action
        if self._checkers and action is not PolicyAction.DENY:
            checked = self._check_safety(call, spec, context)
            if checked is not None:
                return self._decide(plan, matched, approval, checked)
        key = (matched, approval)
        decision = plan.decisions.get(key)
        if decision is None:
            decision = plan.decisions[key] = self._decide(plan, matched, approval, None)
        return decision

    def _decide(self, plan: _Plan, matched: int, approval: _Source | None, checked: _Checked | None) -> PolicyDecision:
        ruling = _rule_source(plan.rules[matched]) if matched >= 0 else self._default_source
        tags = _merge_tags(plan.risk_tags, checked.risk_tags) if checked else plan.risk_tags
        if ruling.action is PolicyAction.DENY:
            return _decision(ruling, tags)
        safety = checked.source if checked else None
        if safety is not None and safety.action is PolicyAction.DENY:
            return _decision(safety, tags)
        for source in (plan.ask, ruling if ruling.action is PolicyAction.ASK else None, safety, approval):
            if source is not None:
                return _decision(source, tags, confirm=True)
        return _decision(ruling, tags)

    def _check_safety(self, call: ToolCall, spec: ToolSpec, context: PolicyContext) -> _Checked | None:
        asked: _Source | None = None
        tags: tuple[str, ...] = ()
        for checker, on_error in zip(self._checkers, self._on_error, strict=True):
            rule_id = f"safety:{checker.name}"
            try:
                verdict = checker.check(call, spec, context)
            except Exception as error:  # a failing checker must not let the call through unless it says so
                if on_error is PolicyAction.ALLOW:
                    continue
                verdict = SafetyVerdict(
                    on_error, f"safety checker {checker.name!r} failed: {type(error).__name__}: {error}", "safety:error"
                )
            if verdict is None:
                continue
            tags = _merge_tags(tags, verdict.risk_tags)
            if verdict.action is PolicyAction.ALLOW:
                continue
            source = _Source(
                verdict.reason or f"safety checker {checker.name!r} says {verdict.action.value}",
                verdict.reason_code or rule_id,
                rule_id,
                verdict.action,
            )
            if source.action is PolicyAction.DENY:
                return _Checked(source, tags)
            asked = asked or source
        return _Checked(asked, tags) if asked or tags else None

    def _plan_for(self, name: str) -> _Plan:
        plan = self._build_plan(name)
        if len(self._plans) < _MAX_CACHED_TOOLS:
            self._plans[name] = plan
        return plan

    def _build_plan(self, name: str) -> _Plan:
        verdict = check_permission(name, self._security.permissions)
        plan = _Plan(name, verdict.risk_tags)
        permission_id = f"permission:{verdict.permission}"
        if verdict.action is PolicyAction.DENY:
            assert verdict.reason is not None
            source = _Source(verdict.reason, permission_id, permission_id, PolicyAction.DENY)
            plan.final = _decision(source, plan.risk_tags, escalation=verdict.escalation)
            plan.resource_argument = verdict.resource_argument
            return plan
        if is_completion_tool(name):
            plan.final = _decision(_COMPLETION, plan.risk_tags)
            return plan
        if not _first_match(self._allowed_tools, name):
            reason = f"tool {name!r} is not in the allowed tools {list(self._allowed_tools)}"
            plan.final = _decision(
                _Source(reason, "policy:allowlist", "builtin:allowlist", PolicyAction.DENY), plan.risk_tags
            )
            return plan
        if denied := _first_match(self._denied_tools, name):
            reason = f"tool {name!r} matches the denied tool pattern {denied!r}"
            plan.final = _decision(
                _Source(reason, "policy:denylist", "builtin:denylist", PolicyAction.DENY), plan.risk_tags
            )
            return plan
        positions = tuple(position for position, rule in enumerate(self._rules) if applies_to(rule, name))
        plan.rules = tuple(self._rules[position] for position in positions)
        if positions:
            plan.match = self._matchers.get(positions)
            if plan.match is None:
                plan.match = self._matchers[positions] = build_matcher(plan.rules)
        if verdict.action is PolicyAction.ASK:
            assert verdict.reason is not None
            plan.ask = _Source(verdict.reason, permission_id, permission_id, PolicyAction.ASK)
        if pattern := _first_match(self._requires_approval, name):
            reason = f"tool {name!r} matches the requires_approval pattern {pattern!r}"
            plan.approval = _Source(reason, "policy:requires_approval", "builtin:requires_approval", PolicyAction.ASK)
        if _first_match(self._interactive_approval, name):
            reason = f"tool {name!r} needs approval in interactive mode"
            plan.interactive = _Source(
                reason, "policy:interactive_approval", "builtin:interactive_approval", PolicyAction.ASK
            )
        return plan


_COMPLETION = _Source(
    "the completion tool is always allowed", "policy:completion", "builtin:completion", PolicyAction.ALLOW
)


def _with_resource(denied: PolicyDecision, argument: str, call: ToolCall) -> PolicyDecision:
    """Name the resource (the call's `argument`, a path) in the escalation of a permission denial."""
    resource = call.arguments.get(argument)
    if not isinstance(resource, str) or denied.escalation is None:
        return denied
    return denied.model_copy(update={"escalation": denied.escalation.model_copy(update={"resource": resource})})


def _first_match(patterns: tuple[str, ...], name: str) -> str | None:
    return next((pattern for pattern in patterns if match_tool_pattern(pattern, name)), None)


def _rule_source(rule: PolicyRule) -> _Source:
    return _Source(rule.reason or f"rule {rule.id!r} says {rule.action.value}", "policy:rule", rule.id, rule.action)


def _on_error(checker: SafetyChecker) -> PolicyAction:
    value = getattr(checker, "on_error", PolicyAction.DENY)
    try:
        return PolicyAction(value)
    except ValueError:
        raise ConfigurationError(
            f"safety checker {checker.name!r}: on_error must be one of allow, deny, ask, not {value!r}",
            setting="safety_checkers",
        ) from None
