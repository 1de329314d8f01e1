"""Configuration files in TOML or YAML whose every problem is reported with its line.

`tomllib` and PyYAML parse; this module also knows on which line each key, table and list item starts, so
that a pydantic validation error (or any other problem found at a location) can be reported the way a
compiler reports one: ``agent.toml:12: limits.max_turns: must be at least 1``. The policy files of this
plane and the agent files of the facade are read through it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from runtime_control.exceptions import ConfigFileError, ConfigProblem

__all__ = [
    "ConfigFormat",
    "Location",
    "Positions",
    "describe",
    "format_location",
    "line_of",
    "locate",
    "read_document",
    "validation_problems",
]

ConfigFormat = Literal["toml", "yaml"]
"""The syntaxes a configuration file may use."""

Location = tuple[str | int, ...]
"""Where a setting is, as keys and indexes from the top of the document (``("rules", 2, "action")``)."""

Positions = dict[Location, int]
"""The 1-based line on which each location of a document starts."""


def format_location(location: Location) -> str:
    """Render a location the way a reader writes it: ``rules[2].conditions[0].op``."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def read_document(
    text: str, *, format: ConfigFormat, path: str, error: type[ConfigFileError] = ConfigFileError
) -> tuple[object, Positions]:
    """Parse a document and find the line of each of its locations.

    Args:
        text: The document.
        format: ``toml`` or ``yaml``.
        path: Name used in error messages.
        error: The `ConfigFileError` subclass to raise.

    Raises:
        ConfigFileError: (`error`) A syntax error, with the parser's line, or a duplicate YAML key.
        ImportError: YAML, without PyYAML installed (the ``yaml`` extra of ``runtime-control``).
    """
    if format == "toml":
        return _read_toml(text, path, error)
    return _read_yaml(text, path, error)


def validation_problems(error: ValidationError) -> list[tuple[Location, str]]:
    """The problems of a pydantic validation error, each at its location, in words (see `describe`)."""
    return [(tuple(item["loc"]), describe(item)) for item in error.errors()]


def locate(
    path: str,
    positions: Positions,
    problems: Iterable[tuple[Location, str]],
    error: type[ConfigFileError] = ConfigFileError,
) -> ConfigFileError:
    """Build the error that lists `problems` with their lines, in line order (raise it if not empty)."""
    located = [ConfigProblem(path, line_of(positions, where), format_location(where), what) for where, what in problems]
    located.sort(key=lambda problem: problem.line or 0)
    return error(path, located)


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


def describe(error: ErrorDetails) -> str:
    """Say what a pydantic validation error means, in the words of a configuration file's reader."""
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


def line_of(positions: Positions, location: Location) -> int | None:
    """The line of `location`, or of its nearest ancestor the file spells out (a missing key: its table)."""
    for length in range(len(location), -1, -1):
        line = positions.get(location[:length])
        if line is not None:
            return line
    return None


def _syntax_error(error: type[ConfigFileError], path: str, line: int | None, message: str) -> ConfigFileError:
    return error(path, [ConfigProblem(path, line, "", message[:1].lower() + message[1:])])


# -- TOML ------------------------------------------------------------------------------------------

_TOML_ERROR_LINE = re.compile(r"\s*\(at line (\d+), column \d+\)$")


def _read_toml(text: str, path: str, error_type: type[ConfigFileError]) -> tuple[object, Positions]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        found = _TOML_ERROR_LINE.search(message)
        line = int(found.group(1)) if found else None
        raise _syntax_error(error_type, path, line, _TOML_ERROR_LINE.sub("", message)) from None
    return data, _TomlPositions(text).scan()


class _TomlPositions:
    """Lines of the keys, tables and array items of a TOML document that `tomllib` already accepted.

    `tomllib` keeps no positions, so this scanner walks the text once more, just far enough to know
    which key, ``[[array]]`` entry or array item starts on which line.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._at = 0
        self._positions: Positions = {(): 1}
        self._array_lengths: Positions = {}
        self._counted = (0, 1)  # (offset, line there): lines are counted incrementally as the scan moves on

    def scan(self) -> Positions:
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


def _read_yaml(text: str, path: str, error_type: type[ConfigFileError]) -> tuple[object, Positions]:
    try:
        import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints; the extra stays optional
    except ImportError as error:
        raise ImportError(
            "YAML files need PyYAML: install the extra with pip install 'runtime-control[yaml]'"
        ) from error
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = {} if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = ": ".join(part for part in (error.context, error.problem) if part)
        raise _syntax_error(error_type, path, None if mark is None else mark.line + 1, message) from None
    except yaml.YAMLError as error:
        raise _syntax_error(error_type, path, None, str(error)) from None
    finally:
        loader.dispose()
    positions: Positions = {(): 1}
    duplicates: list[ConfigProblem] = []
    if node is not None:
        _yaml_positions(
            yaml,
            node,
            (),
            positions,
            lambda where, line, what: duplicates.append(ConfigProblem(path, line, format_location(where), what)),
        )
    if duplicates:
        raise error_type(path, duplicates)
    return data, positions


def _yaml_positions(
    yaml: Any,
    node: Any,
    location: Location,
    positions: Positions,
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
