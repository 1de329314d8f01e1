"""Model calls: requests, responses, stream chunks and the provider protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from enum import StrEnum
from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import Field, JsonValue, NonNegativeFloat, NonNegativeInt, PositiveInt

from runtime_core._base import FrozenModel
from runtime_core.messages import AssistantMessage, Message
from runtime_core.tools import ToolSpec
from runtime_core.usage import Usage

__all__ = [
    "FinishReason",
    "ModelProvider",
    "ModelRequest",
    "ModelResponse",
    "ResponseComplete",
    "StreamChunk",
    "TextDelta",
    "TokenCounter",
    "ToolCallDelta",
]


class FinishReason(StrEnum):
    """Why the model stopped generating."""

    STOP = "stop"
    TOOL_CALLS = "tool_calls"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"


class ModelRequest(FrozenModel):
    """One model call. ``model`` is the provider's own model name (without the provider prefix)."""

    model: str = Field(min_length=1)
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: Literal["auto", "required", "none"] = "auto"
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_output_tokens: PositiveInt | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class ModelResponse(FrozenModel):
    """A complete model reply with its usage."""

    model: str
    message: AssistantMessage
    usage: Usage = Usage()
    finish_reason: FinishReason = FinishReason.STOP
    response_id: str | None = None
    latency_ms: NonNegativeFloat = 0.0


class TextDelta(FrozenModel):
    """A piece of streamed text."""

    kind: Literal["text_delta"] = "text_delta"
    text: str


class ToolCallDelta(FrozenModel):
    """A piece of a streamed tool call; ``arguments`` is a fragment of its JSON text."""

    kind: Literal["tool_call_delta"] = "tool_call_delta"
    index: NonNegativeInt
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class ResponseComplete(FrozenModel):
    """The last chunk of every stream: the assembled response."""

    kind: Literal["complete"] = "complete"
    response: ModelResponse


StreamChunk = Annotated[TextDelta | ToolCallDelta | ResponseComplete, Field(discriminator="kind")]
"""A streamed chunk, discriminated by ``kind``."""


@runtime_checkable
class ModelProvider(Protocol):
    """A source of model replies (an HTTP API, a scripted scenario, a recorded run)."""

    @property
    def name(self) -> str:
        """Provider name, the prefix of ``AgentSpec.model`` (``"openai"``)."""
        ...

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Return the full reply; raise `ProviderError` on failure."""
        ...

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        """Yield chunks as they arrive; the final chunk is a `ResponseComplete`."""
        ...


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens of text, conversations and model requests (to reserve budget before a call)."""

    def count_text(self, text: str) -> int:
        """Return the number of tokens of `text`."""
        ...

    def count_messages(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> int:
        """Return the prompt tokens of a conversation with its tool definitions."""
        ...

    def count_request(self, request: ModelRequest) -> int:
        """Return the prompt tokens of a model request (its messages and tools)."""
        ...
