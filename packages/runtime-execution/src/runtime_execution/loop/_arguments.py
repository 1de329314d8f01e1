"""The pipeline's argument check: a call's arguments against the top level of its tool's JSON schema.

Deep validation is the tool's own business (the `tool` decorator validates with pydantic, MCP servers
validate on their side). This check catches what every tool would otherwise report differently, before
anything runs and in one message the model can act on: missing required arguments, unknown ones when
the schema forbids extras, and top-level values of the wrong JSON type or outside an ``enum``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["argument_problems"]

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


def _accepted_types(schema: Mapping[str, Any]) -> list[str] | None:
    """The JSON types a property schema accepts, or ``None`` when it does not say (or says it oddly)."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list) and all(isinstance(item, str) for item in declared):
        return declared
    options = schema.get("anyOf")
    if isinstance(options, list):
        found: list[str] = []
        for option in options:
            nested = _accepted_types(option) if isinstance(option, Mapping) else None
            if nested is None:
                return None
            found.extend(nested)
        return found
    return None


def _is(value: object, json_type: str) -> bool:
    kinds = _JSON_TYPES.get(json_type)
    if kinds is None:
        return True  # a type we do not know: let the tool decide
    if isinstance(value, bool) and json_type in ("integer", "number"):
        return False
    if json_type == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, kinds)


def _plain_kinds(accepted: list[str] | None) -> tuple[type, ...] | None:
    """The Python types of `accepted` if one isinstance check decides it (no number type, all known)."""
    if accepted is None or any(
        json_type not in _JSON_TYPES or json_type in ("integer", "number") for json_type in accepted
    ):
        return None
    return tuple(kind for json_type in accepted for kind in _JSON_TYPES[json_type])


def _same_json(a: object, b: object) -> bool:
    """JSON equality: ``True`` is not ``1``, though ``1`` is ``1.0``."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


class _Check:
    """The top level of one schema, digested once: what `argument_problems` needs, ready to use."""

    __slots__ = ("closed", "names", "properties", "required")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = schema.get("required")
        self.required: tuple[str, ...] = tuple(required) if isinstance(required, list) else ()
        self.closed = schema.get("additionalProperties") is False
        self.names = frozenset(properties)
        # Per property: the accepted JSON types, the Python types that settle them with one isinstance
        # (when no accepted type is a number, whose bool and float cases `_is` handles), and the enum.
        self.properties: dict[str, tuple[list[str] | None, tuple[type, ...] | None, list[Any] | None]] = {}
        for name, prop in properties.items():
            if isinstance(prop, Mapping):
                accepted = _accepted_types(prop)
                enum = prop.get("enum")
                self.properties[name] = (accepted, _plain_kinds(accepted), enum if isinstance(enum, list) else None)

    def problems(self, arguments: Mapping[str, Any]) -> list[str]:
        problems = [f"missing required argument {name!r}" for name in self.required if name not in arguments]
        if self.closed and not self.names.issuperset(arguments):
            unknown = sorted(set(arguments) - self.names)
            allowed = ", ".join(sorted(self.names)) or "none"
            problems.append(f"unknown argument(s) {', '.join(map(repr, unknown))} (allowed: {allowed})")
        for name, value in arguments.items():
            rule = self.properties.get(name)
            if rule is None:
                continue
            accepted, kinds, enum = rule
            if accepted is not None and not (
                isinstance(value, kinds) if kinds is not None else any(_is(value, kind) for kind in accepted)
            ):
                problems.append(f"argument {name!r} must be {' or '.join(accepted)}, got {type(value).__name__}")
            if enum is not None and not any(_same_json(value, option) for option in enum):
                problems.append(f"argument {name!r} must be one of {enum}, got {value!r}")
        return problems


_CHECKS: dict[int, tuple[Mapping[str, Any], _Check]] = {}
_MAX_CHECKS = 4096


def argument_problems(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    """Return what is wrong with `arguments` at the top level of `schema` (empty when nothing is).

    Each schema is digested once (tool specs are immutable, so their schemas are reused call after call).
    """
    cached = _CHECKS.get(id(schema))
    if cached is None or cached[0] is not schema:
        if len(_CHECKS) >= _MAX_CHECKS:
            _CHECKS.clear()
        cached = _CHECKS[id(schema)] = (schema, _Check(schema))  # keeps `schema` alive: its id stays unique
    return cached[1].problems(arguments)
