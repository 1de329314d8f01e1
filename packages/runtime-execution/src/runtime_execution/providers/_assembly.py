"""Private: split replies into streamed deltas and reassemble deltas into a `ModelResponse`.

Shared by every provider: the HTTP providers reassemble what the wire sends; the offline providers
(scripted, recorded) split a reply they already hold with `reply_deltas`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from runtime_core.exceptions import ProviderError
from runtime_core.messages import AssistantMessage
from runtime_core.providers import FinishReason, ModelResponse, TextDelta, ToolCallDelta
from runtime_core.tools import ToolCall
from runtime_core.usage import Usage

MAX_RAW_ARGUMENTS = 16_384
"""How much of argument text that is not a JSON object a tool call keeps (in ``raw_arguments``)."""


def tool_call(call_id: str, name: str, text: str) -> ToolCall:
    """Build a tool call from its JSON arguments text (empty text is ``{}``).

    Text that is not a JSON object is kept in ``raw_arguments`` rather than failing the reply: it is the
    model's mistake, and the agent loop answers it with an ``INVALID_ARGUMENTS`` result the model can fix.
    """
    if not text.strip():
        return ToolCall(id=call_id, name=name)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        return ToolCall(id=call_id, name=name, raw_arguments=text[:MAX_RAW_ARGUMENTS])
    return ToolCall(id=call_id, name=name, arguments=value)


def reply_deltas(text: str | None, tool_calls: Sequence[ToolCall]) -> list[TextDelta | ToolCallDelta]:
    """Split a reply into the deltas a real stream would carry.

    The text goes out in about three chunks; each tool call as a delta with its id and name followed by
    two fragments of its JSON arguments, so consumers exercise the same reassembly as for HTTP streams.
    """
    chunks: list[TextDelta | ToolCallDelta] = []
    text = text or ""
    size = max(1, math.ceil(len(text) / 3))
    chunks.extend(TextDelta(text=text[i : i + size]) for i in range(0, len(text), size))
    for i, call in enumerate(tool_calls):
        arguments = json.dumps(call.arguments, sort_keys=True)
        half = len(arguments) // 2
        chunks.append(ToolCallDelta(index=i, id=call.id, name=call.name))
        chunks.append(ToolCallDelta(index=i, arguments=arguments[:half]))
        chunks.append(ToolCallDelta(index=i, arguments=arguments[half:]))
    return chunks


@dataclass
class _PartialCall:
    id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)


@dataclass
class ResponseAssembler:
    """Accumulates `TextDelta` and `ToolCallDelta` chunks and builds the final response."""

    provider: str
    text: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)

    def add(self, chunk: TextDelta | ToolCallDelta) -> None:
        """Fold one delta into the response being built."""
        if isinstance(chunk, TextDelta):
            self.text.append(chunk.text)
            return
        call = self.calls.setdefault(chunk.index, _PartialCall())
        call.id = chunk.id or call.id
        call.name = chunk.name or call.name
        call.arguments.append(chunk.arguments)

    def build(
        self,
        *,
        model: str,
        usage: Usage,
        finish_reason: FinishReason | None,
        response_id: str | None,
        latency_ms: float,
    ) -> ModelResponse:
        """Return the assembled response; `finish_reason` ``None`` is inferred from the tool calls."""
        tool_calls = []
        for index in sorted(self.calls):
            call = self.calls[index]
            if not call.id or not call.name:
                raise ProviderError(
                    f"{self.provider}: streamed tool call {index} lacks an id or a name", provider=self.provider
                )
            tool_calls.append(tool_call(call.id, call.name, "".join(call.arguments)))
        text = "".join(self.text)
        if finish_reason is None:
            finish_reason = FinishReason.TOOL_CALLS if tool_calls else FinishReason.STOP
        return ModelResponse(
            model=model,
            message=AssistantMessage(content=text or None, tool_calls=tuple(tool_calls)),
            usage=usage,
            finish_reason=finish_reason,
            response_id=response_id,
            latency_ms=latency_ms,
        )
