"""Argument conditions: checked once, then turned into Python expressions for the rule matcher.

A condition addresses a value by a dot path into the call's arguments (``options.paths.0``: a key of a
mapping, or an index of a list when the segment is a decimal number) and compares it with one operator.
A path that does not resolve never matches. Comparisons follow JSON, not Python: ``true`` is not ``1``,
and ``lt``/``gt`` compare numbers only (a boolean is not a number).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from pydantic import JsonValue

from runtime_core.policy import ArgCondition, ConditionOperator

__all__ = ["MISSING", "condition_expression", "json_contains", "json_equal", "path_steps", "resolve_path"]

MISSING = object()
"""What a path that does not resolve yields; no operator matches it."""

Binder = Callable[[object], str]
"""Binds a constant into the matcher's namespace and returns the name to use for it in the expression."""

PathSteps = tuple[tuple[str, int | None], ...]


def json_equal(left: object, right: object) -> bool:
    """Equality under JSON semantics: booleans differ from numbers, also inside lists and objects."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[key], right[key]) for key in left)
    if isinstance(left, list | dict) or isinstance(right, list | dict):
        return False
    return left == right


def json_contains(value: object, expected: object) -> bool:
    """``contains``: a substring of a string, or an element (JSON-equal) of a list; nothing else contains."""
    if isinstance(value, str):
        return isinstance(expected, str) and expected in value
    if isinstance(value, list):
        return any(json_equal(item, expected) for item in value)
    return False


def path_steps(path: str) -> PathSteps:
    """Split a dot path into (key, list index or ``None``) steps."""
    return tuple(
        (segment, int(segment) if segment.isascii() and segment.isdigit() else None) for segment in path.split(".")
    )


def resolve_path(arguments: Mapping[str, JsonValue], steps: PathSteps) -> object:
    """Follow `steps` into `arguments`; `MISSING` if a key or index is absent or the value is not a container."""
    value: object = arguments
    for key, index in steps:
        if isinstance(value, dict):
            value = value.get(key, MISSING)
        elif isinstance(value, list) and index is not None and index < len(value):
            value = value[index]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def condition_expression(condition: ArgCondition, value: str, bind: Binder) -> str:
    """Return a Python expression that is true when `condition` holds for the variable named `value`.

    Only names returned by `bind` and `value` appear in the expression, never text from the condition.

    Raises:
        ValueError: The condition can never be evaluated: an invalid regular expression, ``matches``
            against something that is not a string, ``lt``/``gt`` against something that is not a number.
    """
    expected = condition.value
    op = condition.op
    if op is ConditionOperator.EQUALS:
        if isinstance(expected, str):
            return f"{value} == {bind(expected)}"  # a str equals only a str: no JSON subtleties
        if expected is None:
            return f"{value} is None"
        return f"{bind(json_equal)}({value}, {bind(expected)})"
    if op is ConditionOperator.CONTAINS:
        return f"{bind(json_contains)}({value}, {bind(expected)})"
    if op is ConditionOperator.MATCHES:
        if not isinstance(expected, str):
            raise ValueError("the value of a 'matches' condition must be a regular expression string")
        try:
            search = re.compile(expected).search
        except re.error as error:
            raise ValueError(f"invalid regular expression {expected!r}: {error}") from None
        return f"({value}.__class__ is {bind(str)} and {bind(search)}({value}) is not None)"
    if isinstance(expected, bool) or not isinstance(expected, int | float):
        raise ValueError(f"the value of a {op.value!r} condition must be a number, not {expected!r}")
    # bool is a subclass of int but not a JSON number: compare exact classes.
    comparison = "<" if op is ConditionOperator.LT else ">"
    return f"({value}.__class__ in {bind((int, float))} and {value} {comparison} {bind(expected)})"
