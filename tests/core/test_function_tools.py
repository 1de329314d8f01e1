"""The `tool` decorator: schemas derived from signatures and docstrings, and invocation."""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from runtime_core import (
    FunctionTool,
    ToolConcurrency,
    ToolContext,
    ToolDefinitionError,
    ToolEffect,
    ToolErrorCode,
    ToolExecutionError,
    tool,
)

CONTEXT = ToolContext(run_id="run_1", tool_call_id="call_1", agent_id="agent", turn=3)


class Point(BaseModel):
    """A point on the plane."""

    x: int
    y: int = 0


@tool(name="geo:distance", effect=ToolEffect.NONE, category="math", concurrency=ToolConcurrency.EXCLUSIVE)
def distance(
    origin: Point,
    targets: list[Point],
    unit: Literal["m", "km"] = "m",
    scale: float | None = None,
    tags: Annotated[list[str], Field(max_length=3)] = [],  # noqa: B006 - a default pydantic copies
) -> list[float]:
    """Measure distances from an origin.

    Longer explanation that is part of the description.

    Args:
        origin: Where to measure from.
        targets: Points to measure to;
            one result per target.
        unit: Unit of the result.
        scale (float): Optional factor.
        tags: Labels for the measurement.

    Returns:
        The distances.
    """
    factor = (scale or 1.0) / (1000 if unit == "km" else 1)
    return [(((t.x - origin.x) ** 2 + (t.y - origin.y) ** 2) ** 0.5) * factor for t in targets]


def test_spec_fields_come_from_the_decorator_and_docstring() -> None:
    spec = distance.spec
    assert spec.name == "geo:distance"
    assert (
        spec.description == "Measure distances from an origin.\n\nLonger explanation that is part of the description."
    )
    assert spec.effect is ToolEffect.NONE
    assert spec.category == "math"
    assert spec.concurrency is ToolConcurrency.EXCLUSIVE
    assert spec.requires_confirmation is False


def test_schema_required_defaults_optional_lists_and_nested_models() -> None:
    schema = distance.spec.parameters
    assert schema["type"] == "object"
    assert schema["required"] == ["origin", "targets"]
    assert schema["additionalProperties"] is False
    assert "title" not in schema
    props = schema["properties"]
    assert isinstance(props, dict)
    assert props["origin"] == {"$ref": "#/$defs/Point", "description": "Where to measure from."}
    assert props["targets"]["type"] == "array"
    assert props["targets"]["items"] == {"$ref": "#/$defs/Point"}
    assert props["targets"]["description"] == "Points to measure to; one result per target."
    assert props["unit"] == {
        "enum": ["m", "km"],
        "type": "string",
        "default": "m",
        "description": "Unit of the result.",
    }
    assert props["scale"]["anyOf"] == [{"type": "number"}, {"type": "null"}]
    assert props["scale"]["default"] is None
    assert props["scale"]["description"] == "Optional factor."
    assert props["tags"]["maxItems"] == 3
    point = schema["$defs"]["Point"]
    assert point["required"] == ["x"]
    assert point["properties"]["y"]["default"] == 0
    assert point["description"] == "A point on the plane."


def test_invoke_validates_and_converts_arguments() -> None:
    result = asyncio.run(distance.invoke({"origin": {"x": 0}, "targets": [{"x": 3, "y": 4}], "unit": "km"}, CONTEXT))
    assert result == [0.005]


def test_invalid_arguments_are_a_typed_error() -> None:
    with pytest.raises(ToolExecutionError) as raised:
        asyncio.run(distance.invoke({"origin": {"x": "far"}, "extra": 1}, CONTEXT))
    error = raised.value
    assert error.code == ToolErrorCode.INVALID_ARGUMENTS
    assert error.tool_name == "geo:distance"
    locations = {tuple(e["loc"]) for e in error.details["errors"]}  # type: ignore[union-attr]
    assert {("origin", "x"), ("targets",), ("extra",)} <= locations


def test_plain_decorator_default_name_and_unsafe_default() -> None:
    @tool
    def shout(text: str) -> str:
        """Upper-case the text."""
        return text.upper()

    assert isinstance(shout, FunctionTool)
    assert shout.spec.name == "local:shout"
    assert shout.spec.effect is ToolEffect.UNSAFE  # effects must be declared to be trusted
    assert shout("hi") == "HI"  # still callable directly
    assert asyncio.run(shout.invoke({"text": "hi"}, CONTEXT)) == "HI"


def test_async_functions_and_context_injection() -> None:
    @tool(name="ctx:echo", effect=ToolEffect.IDEMPOTENT)
    async def echo(message: str, context: ToolContext) -> dict[str, str]:
        """Echo with the idempotency key."""
        await asyncio.sleep(0)
        return {"message": message, "key": context.idempotency_key}

    assert "context" not in echo.spec.parameters["properties"]  # type: ignore[operator]
    assert asyncio.run(echo.invoke({"message": "m"}, CONTEXT)) == {"message": "m", "key": "call_1"}


def test_sync_functions_run_off_the_event_loop() -> None:
    loop_thread: list[int] = []

    @tool(name="t:where")
    def where() -> bool:
        return threading.get_ident() != loop_thread[0]

    async def run() -> object:
        loop_thread.append(threading.get_ident())
        return await where.invoke({}, CONTEXT)

    assert asyncio.run(run()) is True


def test_exceptions_become_tool_errors() -> None:
    @tool(name="t:boom")
    def boom() -> None:
        raise KeyError("missing")

    @tool(name="t:conflict")
    def conflict() -> None:
        raise ToolExecutionError("stale", code=ToolErrorCode.CONFLICT)

    with pytest.raises(ToolExecutionError) as raised:
        asyncio.run(boom.invoke({}, CONTEXT))
    assert raised.value.code == ToolErrorCode.EXECUTION_FAILED
    assert "KeyError" in raised.value.message
    with pytest.raises(ToolExecutionError) as conflicted:
        asyncio.run(conflict.invoke({}, CONTEXT))
    assert conflicted.value.code == ToolErrorCode.CONFLICT
    assert conflicted.value.tool_name == "t:conflict"


def test_return_values_are_json_compatible() -> None:
    @tool(name="t:point")
    def make() -> Point:
        return Point(x=1)

    assert asyncio.run(make.invoke({}, CONTEXT)) == {"x": 1, "y": 0}


@pytest.mark.parametrize("bad_name", ["read", "file:", ":read", "file:read file", "a:b:c d"])
def test_malformed_names_are_refused(bad_name: str) -> None:
    with pytest.raises(ToolDefinitionError, match="server:operation"):
        tool(name=bad_name)(lambda: None)


def test_signatures_that_cannot_be_described_are_refused() -> None:
    def variadic(*items: int) -> None: ...

    def unannotated(x) -> None:  # type: ignore[no-untyped-def]
        ...

    with pytest.raises(ToolDefinitionError, match="plain or keyword-only"):
        tool(name="t:v")(variadic)
    with pytest.raises(ToolDefinitionError, match="needs a type annotation") as raised:
        tool(name="t:u")(unannotated)
    assert raised.value.tool_name == "t:u"
