"""`trusted`: the hot path's unvalidated construction, and the check mode the test suite runs it in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime_core import CheckpointDelta, ModelRequest, ToolCall, ToolCalledPayload, UserMessage, check_trusted, trusted
from runtime_core.events import ModelRequestedPayload

_CALL = ToolCall(id="call_1", name="file:read", arguments={"path": "a.txt"})


@pytest.fixture
def unchecked() -> Iterator[None]:
    check_trusted(False)
    try:
        yield
    finally:
        check_trusted(True)  # the root conftest's setting


def test_a_trusted_model_equals_the_validated_one_with_defaults_filled_in() -> None:
    built = trusted(ModelRequestedPayload, {"model": "openai:gpt-4.1", "message_count": 3})
    assert built == ModelRequestedPayload(model="openai:gpt-4.1", message_count=3)
    assert built.tool_names == ()
    assert built.model_fields_set == set(ModelRequestedPayload.model_fields)
    assert built.model_dump_json() == ModelRequestedPayload(model="openai:gpt-4.1", message_count=3).model_dump_json()


def test_default_factories_give_each_instance_its_own_value() -> None:
    messages = (UserMessage(content="hi"),)
    first = trusted(ModelRequest, {"model": "m", "messages": messages})
    second = trusted(ModelRequest, {"model": "m", "messages": messages})
    assert first.metadata == {}
    assert first.metadata is not second.metadata


def test_the_check_refuses_unknown_fields_and_values_validation_would_change() -> None:
    with pytest.raises(TypeError, match="unknown fields"):
        trusted(ToolCalledPayload, {"call": _CALL, "cal": _CALL})
    with pytest.raises(TypeError, match=r"would change \['messages'\]"):
        trusted(ModelRequest, {"model": "m", "messages": [UserMessage(content="hi")]})  # a list, not a tuple
    with pytest.raises(ValueError, match="validation error"):
        trusted(CheckpointDelta, {"run_id": "", "turn": 1, "created_at": None})


def test_without_the_check_nothing_is_validated(unchecked: None) -> None:
    built = trusted(ModelRequestedPayload, {"model": "m", "message_count": -1})
    assert built.message_count == -1  # the caller's promise, not checked: hence the check mode in tests
