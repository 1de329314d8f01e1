r"""Policy files in TOML or YAML: the schema, the loaders, and line-numbered validation errors.

A policy file holds the settings of a `RulePolicyEngine` (safety checkers are code, so they are passed
when the engine is built)::

    preset = "balanced"                  # safe | balanced | power | developer
    default_action = "allow"             # allow | deny | ask: when no rule matches
    allowed_tools = ["*"]                # the execution allowlist
    denied_tools = []
    requires_approval = ["file:write"]
    interactive_approval = [...]         # default: shell:*, bash:*, file:write, file:edit

    [permissions]                        # overrides of the preset: only the keys given
    bash = "confirm"

    [[rules]]
    id = "no-force-push"
    action = "deny"
    tools = ["shell:run"]
    conditions = [{ path = "command", op = "matches", value = "git\\s+push\\s+.*--force" }]

Every problem is reported at once, each with its line: ``policy.toml:12: rules[2].action: must be one of
allow, deny, ask``. TOML comes from the standard library; YAML needs the ``yaml`` extra
(``pip install 'runtime-control[yaml]'``).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from runtime_control.exceptions import PolicyFileError, PolicyProblem
from runtime_control.policy._rules import Location, Problem, compile_rules, format_location
from runtime_control.policy.engine import DEFAULT_INTERACTIVE_APPROVAL, RulePolicyEngine, SafetyChecker
from runtime_control.policy.presets import (
    DEFAULT_SECURITY_PRESET,
    SECURITY_PRESETS,
    ResourceLimits,
    SandboxConfig,
    SecurityPolicy,
    ToolPermissions,
)
from runtime_core.policy import PolicyAction, PolicyRule

__all__ = ["PolicyFile", "PolicyFormat", "load_policy", "parse_policy"]

PolicyFormat = Literal["toml", "yaml"]
"""The syntaxes a policy file may use."""

_SUFFIXES: dict[str, PolicyFormat] = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}

_ToolPattern = Annotated[str, Field(min_length=1)]


class PolicyFile(BaseModel):
    """The contents of a policy file.

    ``permissions``, ``sandbox`` and ``limits`` override the preset's values key by key: only the keys
    a file sets replace the preset's.

    Attributes:
        preset: Security preset the policy starts from.
        permissions: Permission levels that replace the preset's.
        sandbox: Sandbox settings that replace the preset's.
        limits: Resource limits that replace the preset's.
        default_action: What happens when no rule matches.
        allowed_tools: The execution allowlist.
        denied_tools: Tool patterns that are always denied.
        requires_approval: Tool patterns whose calls need confirmation.
        interactive_approval: Tool patterns whose calls need confirmation in interactive mode.
        rules: Governance rules, in priority ties' order.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    preset: str = DEFAULT_SECURITY_PRESET
    permissions: ToolPermissions | None = None
    sandbox: SandboxConfig | None = None
    limits: ResourceLimits | None = None
    default_action: PolicyAction = PolicyAction.ALLOW
    allowed_tools: tuple[_ToolPattern, ...] = ("*",)
    denied_tools: tuple[_ToolPattern, ...] = ()
    requires_approval: tuple[_ToolPattern, ...] = ()
    interactive_approval: tuple[_ToolPattern, ...] = DEFAULT_INTERACTIVE_APPROVAL
    rules: tuple[PolicyRule, ...] = ()

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in SECURITY_PRESETS:
            raise ValueError(f"unknown preset {value!r}; valid presets: {', '.join(SECURITY_PRESETS)}")
        return value

    @model_validator(mode="after")
    def _rules_compile(self) -> PolicyFile:
        _, problems = compile_rules(self.rules)
        if problems:
            raise ValueError("; ".join(f"{format_location(location)}: {message}" for location, message in problems))
        return self

    def security_policy(self) -> SecurityPolicy:
        """Return the preset with this file's overrides applied."""
        base = SECURITY_PRESETS[self.preset]
        return SecurityPolicy(
            sandbox=_overlay(base.sandbox, self.sandbox),
            permissions=_overlay(base.permissions, self.permissions),
            limits=_overlay(base.limits, self.limits),
        )

    def build_engine(self, *, safety_checkers: Sequence[SafetyChecker] = ()) -> RulePolicyEngine:
        """Return the engine this file describes.

        Args:
            safety_checkers: Checkers to run after the rules (they are code, so files cannot hold them).
        """
        return RulePolicyEngine(
            self.rules,
            security=self.security_policy(),
            allowed_tools=self.allowed_tools,
            denied_tools=self.denied_tools,
            requires_approval=self.requires_approval,
            interactive_approval=self.interactive_approval,
            default_action=self.default_action,
            safety_checkers=safety_checkers,
        )


_Model = TypeVar("_Model", bound=BaseModel)


def _overlay(base: _Model, override: _Model | None) -> _Model:
    if override is None:
        return base
    return base.model_copy(update={name: getattr(override, name) for name in override.model_fields_set})


def load_policy(path: str | os.PathLike[str]) -> PolicyFile:
    """Read a policy file; the suffix picks the syntax (``.toml``, ``.yaml``, ``.yml``).

    Raises:
        PolicyFileError: The file is not valid (the error lists every problem with its line), or its
            suffix names no supported syntax.
        ImportError: A YAML file, without the ``yaml`` extra installed.
        OSError: The file cannot be read.
    """
    file = Path(path)
    syntax = _SUFFIXES.get(file.suffix.lower())
    if syntax is None:
        raise PolicyFileError(
            str(file), [PolicyProblem(str(file), None, "", "policy files must end in .toml, .yaml or .yml")]
        )
    return parse_policy(file.read_text(encoding="utf-8"), format=syntax, path=str(file))


def parse_policy(text: str, *, format: PolicyFormat, path: str = "<string>") -> PolicyFile:
    """Parse and validate a policy written in `format`.

    Args:
        text: The policy text.
        format: ``toml`` or ``yaml``.
        path: Name used in error messages.

    Raises:
        PolicyFileError: The policy is not valid; the error lists every problem with its line.
        ImportError: YAML, without the ``yaml`` extra installed.
    """
    if format == "toml":
        data, positions = _read_toml(text, path)
    else:
        data, positions = _read_yaml(text, path)
    problems = _problems(data)
    if problems:
        located = [
            PolicyProblem(path, _line(positions, where), format_location(where), what) for where, what in problems
        ]
        located.sort(key=lambda problem: problem.line or 0)
        raise PolicyFileError(path, located)
    return PolicyFile.model_validate(data)


# -- validation ------------------------------------------------------------------------------------


def _problems(data: object) -> list[Problem]:
    if not isinstance(data, dict):
        return [((), "a policy must be a table (mapping) of settings")]
    problems: list[Problem] = []
    try:
        PolicyFile.model_validate(data)
    except ValidationError as error:
        # Errors at the root come from the rule checks, which are reported below with their locations.
        problems.extend((tuple(item["loc"]), _message(item)) for item in error.errors() if item["loc"])
    rules = data.get("rules")
    if isinstance(rules, list):
        valid: list[tuple[int, PolicyRule]] = []
        for index, raw in enumerate(rules):
            try:
                valid.append((index, PolicyRule.model_validate(raw)))
            except ValidationError:
                continue  # already reported by the whole-file validation
        problems.extend(compile_rules((rule for _, rule in valid), numbers=[index for index, _ in valid])[1])
    return problems


_SIMPLE_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "unknown key",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "model_type": "must be a table (mapping)",
    "model_attributes_type": "must be a table (mapping)",
    "dict_type": "must be a table (mapping)",
}


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    context: dict[str, Any] = error.get("ctx") or {}
    if kind in ("enum", "literal_error"):
        return "must be one of " + ", ".join(re.findall(r"'([^']*)'", str(context.get("expected", ""))))
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    if kind in ("greater_than", "greater_than_equal"):
        bound = context.get("gt", context.get("ge"))
        return f"must be {'greater than' if kind == 'greater_than' else 'at least'} {bound}"
    message = _SIMPLE_MESSAGES.get(kind, error["msg"])
    return message[:1].lower() + message[1:]


def _line(positions: dict[Location, int], location: Location) -> int | None:
    """The line of `location`, or of its nearest ancestor the file spells out (a missing key: its table)."""
    for length in range(len(location), -1, -1):
        line = positions.get(location[:length])
        if line is not None:
            return line
    return None


def _syntax_error(path: str, line: int | None, message: str) -> PolicyFileError:
    return PolicyFileError(path, [PolicyProblem(path, line, "", message[:1].lower() + message[1:])])


# -- TOML ------------------------------------------------------------------------------------------

_TOML_ERROR_LINE = re.compile(r"\s*\(at line (\d+), column \d+\)$")


def _read_toml(text: str, path: str) -> tuple[object, dict[Location, int]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        found = _TOML_ERROR_LINE.search(message)
        line = int(found.group(1)) if found else None
        raise _syntax_error(path, line, _TOML_ERROR_LINE.sub("", message)) from None
    return data, _TomlPositions(text).scan()


class _TomlPositions:
    """Lines of the keys, tables and array items of a TOML document that `tomllib` already accepted.

    `tomllib` keeps no positions, so this scanner walks the text once more, just far enough to know
    which key, ``[[array]]`` entry or array item starts on which line.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._at = 0
        self._positions: dict[Location, int] = {(): 1}
        self._array_lengths: dict[Location, int] = {}
        self._counted = (0, 1)  # (offset, line there): lines are counted incrementally as the scan moves on

    def scan(self) -> dict[Location, int]:
        table: Location = ()
        while self._skip(newlines=True) < len(self._text):
            if self._text.startswith("[[", self._at):
                self._at += 2
                table = self._header(array=True)
            elif self._text[self._at] == "[":
                self._at += 1
                table = self._header(array=False)
            else:
                self._key_value(table)
        return self._positions

    @property
    def _line(self) -> int:
        offset, line = self._counted
        line += self._text.count("\n", offset, self._at)
        self._counted = (self._at, line)
        return line

    def _skip(self, *, newlines: bool) -> int:
        """Skip blanks and comments (and newlines if asked); return the new offset."""
        text = self._text
        while self._at < len(text):
            char = text[self._at]
            if char in " \t\r" or (newlines and char == "\n"):
                self._at += 1
            elif char == "#":
                end = text.find("\n", self._at)
                self._at = len(text) if end < 0 else end
            else:
                break
        return self._at

    def _header(self, *, array: bool) -> Location:
        line = self._line
        parts = self._key()
        location: Location = ()
        for number, part in enumerate(parts):
            location = (*location, part)
            last = number == len(parts) - 1
            if array and last:
                index = self._array_lengths.get(location, 0)
                self._array_lengths[location] = index + 1
                location = (*location, index)
            elif location in self._array_lengths:  # a table inside the latest entry of an array of tables
                location = (*location, self._array_lengths[location] - 1)
            self._positions.setdefault(location, line)
        end = self._text.find("\n", self._at)
        self._at = len(self._text) if end < 0 else end
        return location

    def _key(self) -> tuple[str, ...]:
        parts = []
        while True:
            self._skip(newlines=False)
            start = self._at
            if self._text[start] in "\"'":
                self._string()
                parts.append(tomllib.loads(f"k = {self._text[start : self._at]}")["k"])
            else:
                while self._at < len(self._text) and (self._text[self._at].isalnum() or self._text[self._at] in "_-"):
                    self._at += 1
                self._at = max(self._at, start + 1)  # always move on, whatever the text holds
                parts.append(self._text[start : self._at])
            self._skip(newlines=False)
            if self._at < len(self._text) and self._text[self._at] == ".":
                self._at += 1
                continue
            return tuple(parts)

    def _key_value(self, table: Location) -> None:
        line = self._line
        location = table
        for part in self._key():
            location = (*location, part)
            self._positions.setdefault(location, line)
        self._skip(newlines=False)
        self._at += 1  # "="
        self._value(location)

    def _value(self, location: Location) -> None:
        self._skip(newlines=False)
        text = self._text
        char = text[self._at]
        if char in "\"'":
            self._string()
        elif char == "[":
            self._at += 1
            index = 0
            while self._skip(newlines=True) < len(text) and text[self._at] != "]":
                if text[self._at] == ",":
                    self._at += 1
                    index += 1
                    continue
                self._positions.setdefault((*location, index), self._line)
                self._value((*location, index))
            self._at += 1
        elif char == "{":
            self._at += 1
            while self._skip(newlines=False) < len(text) and text[self._at] != "}":
                if text[self._at] == ",":
                    self._at += 1
                    continue
                self._key_value(location)
            self._at += 1
        else:  # number, boolean, date: up to the next delimiter
            while self._at < len(text) and text[self._at] not in ",]}\n#":
                self._at += 1

    def _string(self) -> None:
        text = self._text
        quote = text[self._at]
        delimiter = quote * 3 if text.startswith(quote * 3, self._at) else quote
        self._at += len(delimiter)
        while self._at < len(text):
            if quote == '"' and text[self._at] == "\\":
                self._at += 2
            elif text.startswith(delimiter, self._at):
                self._at += len(delimiter)
                # A multi-line string may end with up to two extra quotes ("""a""""" is 'a""').
                while len(delimiter) == 3 and self._at < len(text) and text[self._at] == quote:
                    self._at += 1
                return
            else:
                self._at += 1


# -- YAML ------------------------------------------------------------------------------------------


def _read_yaml(text: str, path: str) -> tuple[object, dict[Location, int]]:
    try:
        import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints; the extra stays optional
    except ImportError as error:
        raise ImportError(
            "YAML policy files need PyYAML: install the extra with pip install 'runtime-control[yaml]'"
        ) from error
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = {} if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = ": ".join(part for part in (error.context, error.problem) if part)
        raise _syntax_error(path, None if mark is None else mark.line + 1, message) from None
    except yaml.YAMLError as error:
        raise _syntax_error(path, None, str(error)) from None
    finally:
        loader.dispose()
    positions: dict[Location, int] = {(): 1}
    duplicates: list[PolicyProblem] = []
    if node is not None:
        _yaml_positions(
            yaml,
            node,
            (),
            positions,
            lambda where, line, what: duplicates.append(PolicyProblem(path, line, format_location(where), what)),
        )
    if duplicates:
        raise PolicyFileError(path, duplicates)
    return data, positions


def _yaml_positions(
    yaml: Any,
    node: Any,
    location: Location,
    positions: dict[Location, int],
    duplicate: Callable[[Location, int, str], None],
) -> None:
    """Record the line of every mapping key and sequence item under `node` (from the composed marks)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            where = (*location, key.value)
            if where in positions:
                duplicate(where, key.start_mark.line + 1, f"duplicate key (first set on line {positions[where]})")
                continue
            positions[where] = key.start_mark.line + 1
            _yaml_positions(yaml, value, where, positions, duplicate)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            positions[(*location, index)] = item.start_mark.line + 1
            _yaml_positions(yaml, item, (*location, index), positions, duplicate)
