"""Conversation messages exchanged with a model."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from runtime_core._base import FrozenModel, trusted
from runtime_core.tools import ToolCall, ToolResult

__all__ = ["AssistantMessage", "Message", "SystemMessage", "ToolResultMessage", "UserMessage"]


class SystemMessage(FrozenModel):
    """Instructions from the runtime or the agent author."""

    role: Literal["system"] = "system"
    content: str


class UserMessage(FrozenModel):
    """A message from the user (the task, or an injected thought)."""

    role: Literal["user"] = "user"
    content: str


class AssistantMessage(FrozenModel):
    """A model reply: text, tool calls, or both."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


class ToolResultMessage(FrozenModel):
    """The result of one tool call, as the model sees it."""

    role: Literal["tool"] = "tool"
    tool_call_id: str = Field(min_length=1)
    tool_name: str
    content: str
    is_error: bool = False

    @classmethod
    def of(cls, result: ToolResult) -> ToolResultMessage:
        """The message that tells the model `result` (the agent loop adds one per tool outcome)."""
        # Made of a validated result's parts: no validation (the loop builds one per tool call).
        fields = {
            "tool_call_id": result.tool_call_id,
            "tool_name": result.tool_name,
            "content": result.content,
            "is_error": result.error is not None,
        }
        return trusted(cls, fields)


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolResultMessage,
    Field(discriminator="role"),
]
"""Any conversation message, discriminated by ``role``."""
