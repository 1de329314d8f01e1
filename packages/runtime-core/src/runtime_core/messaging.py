"""Envelopes of the runtime message bus (agent-to-agent messages)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field, JsonValue, model_validator

from runtime_core._base import FrozenModel

__all__ = ["MessageEnvelope", "MessageKind"]


class MessageKind(StrEnum):
    """Kind of bus message."""

    REQUEST = "request"
    RESPONSE = "response"
    EVENT = "event"


class MessageEnvelope(FrozenModel):
    """A message between agents. ``recipient`` is ``None`` for responses and published events."""

    id: str = Field(min_length=1)
    sender: str
    recipient: str | None = None
    kind: MessageKind
    topic: str | None = None
    payload: JsonValue = None
    correlation_id: str | None = None
    timestamp: AwareDatetime

    @model_validator(mode="after")
    def _shape(self) -> MessageEnvelope:
        if self.kind is MessageKind.RESPONSE and self.correlation_id is None:
            raise ValueError("a response needs the correlation_id of its request")
        if self.kind is MessageKind.EVENT and self.topic is None:
            raise ValueError("a published event needs a topic")
        return self
