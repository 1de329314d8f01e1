"""Policy rules: checked once, then compiled into one matcher function per set of candidate rules.

Evaluating a hundred rules one Python call at a time costs far more than the comparisons themselves, so
the rules that can apply to a tool are compiled into a single generated function: one ``if`` per rule,
in priority order, each path resolved once and only when first needed, and runs of rules that each need
a regular expression to match the same argument skipped at once when one joined search finds nothing.
The generated source contains nothing but generated identifiers and integers; every value from a rule
(keys, regular expressions, constants) is bound in the function's namespace, never pasted into the code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from pydantic import JsonValue

from runtime_control.config_files import Location
from runtime_control.policy._conditions import MISSING, condition_expression, path_steps, resolve_path
from runtime_core.policy import ArgCondition, ConditionOperator, PolicyContext, PolicyRule
from runtime_core.tools import match_tool_pattern

__all__ = [
    "RESERVED_RULE_ID_PREFIXES",
    "Matcher",
    "Problem",
    "applies_to",
    "build_matcher",
    "compile_rules",
]

Problem = tuple[Location, str]
"""A location and what is wrong there."""

Matcher = Callable[[Mapping[str, JsonValue], PolicyContext], int]
"""Returns the position of the first rule that matches the arguments and context, or -1."""

RESERVED_RULE_ID_PREFIXES = ("builtin:", "permission:", "safety:")
"""Prefixes of the rule ids the engine reports for its own steps; user rules may not use them."""


def applies_to(rule: PolicyRule, name: str) -> bool:
    """Whether one of the rule's tool patterns matches the tool `name`."""
    return any(match_tool_pattern(pattern, name) for pattern in rule.tools)


def _reject_binding(value: object) -> str:
    return "_"


def compile_rules(
    rules: Iterable[PolicyRule], *, numbers: Sequence[int] | None = None
) -> tuple[tuple[PolicyRule, ...], list[Problem]]:
    """Check `rules` and order them for evaluation.

    Args:
        rules: The rules, in the order given.
        numbers: The index each rule has in its file, when some of the file's rules were left out.

    Returns:
        The rules by descending priority (rules of equal priority keep their order), and the problems
        found, located as ``("rules", index, ...)`` in the order given. The ordered rules are meant to be
        used only when there are no problems.
    """
    given = tuple(rules)
    problems: list[Problem] = []
    first_use: dict[str, int] = {}
    for position, rule in enumerate(given):
        index = position if numbers is None else numbers[position]
        where: Location = ("rules", index)
        if rule.id in first_use:
            problems.append(
                ((*where, "id"), f"duplicate rule id {rule.id!r} (first used by rules[{first_use[rule.id]}])")
            )
        first_use.setdefault(rule.id, index)
        if rule.id.startswith(RESERVED_RULE_ID_PREFIXES):
            reserved = ", ".join(repr(prefix) for prefix in RESERVED_RULE_ID_PREFIXES)
            problems.append(((*where, "id"), f"rule ids may not start with {reserved} (reserved for built-in steps)"))
        if not rule.tools:
            problems.append(((*where, "tools"), "must name at least one tool pattern"))
        problems.extend(((*where, "tools", n), "must not be empty") for n, p in enumerate(rule.tools) if not p.strip())
        if rule.min_depth is not None and rule.max_depth is not None and rule.min_depth > rule.max_depth:
            problems.append(
                ((*where, "min_depth"), f"min_depth ({rule.min_depth}) is greater than max_depth ({rule.max_depth})")
            )
        for number, condition in enumerate(rule.conditions):
            try:
                condition_expression(condition, "value", _reject_binding)
            except ValueError as error:
                problems.append(((*where, "conditions", number, "value"), str(error)))
    return tuple(sorted(given, key=lambda rule: -rule.priority)), problems  # sorted() is stable


# Consecutive rules that each need a regular expression to match the same argument are guarded by one
# search for all their expressions at once: when it fails, none of them can match and the whole block is
# skipped. Blocks are kept short so that a match costs at most this many individual checks.
_BLOCK_SIZE = 10


def _fusable(condition: ArgCondition) -> str | None:
    """The pattern of a ``matches`` condition that can be joined into an alternation, else ``None``.

    Joining is safe when the pattern has no groups (a backreference would point elsewhere once joined)
    and no global inline flags (only allowed at the start of a whole expression).
    """
    if condition.op is not ConditionOperator.MATCHES or not isinstance(condition.value, str):
        return None
    compiled = re.compile(condition.value)
    return condition.value if not compiled.groups and compiled.flags == re.UNICODE else None


def _prefilter(rule: PolicyRule) -> tuple[str, str] | None:
    """The (path, pattern) of the first condition of `rule` that a joined search can stand in for."""
    for condition in rule.conditions:
        pattern = _fusable(condition)
        if pattern is not None:
            return condition.path, pattern
    return None


class _Emitter:
    """Writes the matcher's source; binds every constant in its namespace under a fresh name."""

    def __init__(self) -> None:
        self.namespace: dict[str, object] = {"__builtins__": {}, "MISSING": MISSING, "resolve": resolve_path}
        self.lines = ["def match(arguments, context):"]
        self._variables = 0

    def bind(self, value: object) -> str:
        name = f"c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def variable(self, path: str, resolved: dict[str, str], indent: str) -> str:
        """The variable holding the value at `path`, resolving it here if this scope has not yet."""
        variable = resolved.get(path)
        if variable is None:
            variable = resolved[path] = f"v{self._variables}"
            self._variables += 1
            steps = path_steps(path)
            lookup = (
                f"arguments.get({self.bind(steps[0][0])}, MISSING)"
                if len(steps) == 1
                else f"resolve(arguments, {self.bind(steps)})"
            )
            self.lines.append(f"{indent}{variable} = {lookup}")
        return variable

    def rule(self, position: int, rule: PolicyRule, resolved: dict[str, str], indent: str) -> bool:
        """Emit the test of one rule; return whether later rules are still reachable."""
        tests = _guards(rule, self.bind)
        for condition in rule.conditions:
            variable = self.variable(condition.path, resolved, indent)
            tests.append(condition_expression(condition, variable, self.bind))
        if not tests:
            self.lines.append(f"{indent}return {position:d}")  # matches every call
            return False
        self.lines.append(f"{indent}if {' and '.join(tests)}:")
        self.lines.append(f"{indent}    return {position:d}")
        return True

    def block(
        self, members: list[tuple[int, PolicyRule]], path: str, patterns: list[str], resolved: dict[str, str]
    ) -> None:
        """Emit rules behind one joined search of their patterns on the value at `path`."""
        variable = self.variable(path, resolved, "    ")
        search = re.compile("|".join(f"(?:{pattern})" for pattern in patterns)).search
        self.lines.append(
            f"    if {variable}.__class__ is {self.bind(str)} and {self.bind(search)}({variable}) is not None:"
        )
        inner = dict(resolved)  # values first resolved inside the block are unknown after it
        for position, rule in members:
            self.rule(position, rule, inner, "        ")


def _guards(rule: PolicyRule, bind: Callable[[object], str]) -> list[str]:
    guards = []
    if rule.role is not None:
        guards.append(f"context.role == {bind(rule.role)}")
    if rule.phase is not None:
        guards.append(f"context.phase == {bind(rule.phase)}")
    if rule.min_depth:
        guards.append(f"context.depth >= {rule.min_depth:d}")
    if rule.max_depth is not None:
        guards.append(f"context.depth <= {rule.max_depth:d}")
    return guards


def _blocks(rules: Sequence[PolicyRule]) -> list[tuple[str | None, list[tuple[int, PolicyRule]], list[str]]]:
    """Split `rules` into runs that share a joinable path (path, members, patterns), or single rules."""
    blocks: list[tuple[str | None, list[tuple[int, PolicyRule]], list[str]]] = []
    for position, rule in enumerate(rules):
        found = _prefilter(rule)
        if found is None:
            blocks.append((None, [(position, rule)], []))
            continue
        path, pattern = found
        last = blocks[-1] if blocks else None
        if last is not None and last[0] == path and len(last[1]) < _BLOCK_SIZE:
            last[1].append((position, rule))
            last[2].append(pattern)
        else:
            blocks.append((path, [(position, rule)], [pattern]))
    return blocks


def build_matcher(rules: Sequence[PolicyRule]) -> Matcher:
    """Compile `rules` (already checked, in evaluation order) into one matcher function."""
    emitter = _Emitter()
    resolved: dict[str, str] = {}
    for path, members, patterns in _blocks(rules):
        if path is not None and len(members) > 1:
            emitter.block(members, path, patterns, resolved)
        elif not emitter.rule(*members[0], resolved, "    "):
            break  # a rule that matches every call: the rest is unreachable
    else:
        emitter.lines.append("    return -1")
    code = compile("\n".join(emitter.lines), f"<policy matcher: {len(rules)} rules>", "exec")
    exec(code, emitter.namespace)  # the source holds generated names only; see the module docstring
    matcher: Matcher = emitter.namespace["match"]  # type: ignore[assignment]  # defined by the exec above
    return matcher
