"""A provider that replays the model responses of a run log, so a run can be re-driven without a model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence

from runtime_core import trusted
from runtime_core.events import EventDraft, ModelRespondedPayload
from runtime_core.exceptions import ProviderError
from runtime_core.providers import ModelRequest, ModelResponse, ResponseComplete, StreamChunk
from runtime_execution.providers._assembly import reply_deltas

__all__ = ["RecordedProvider"]


class RecordedProvider:
    """A `ModelProvider` that answers each call with the next recorded response, whatever the request.

    Build it from a run log with `from_events` (the ``model.responded`` events, in the order given) or
    directly from `ModelResponse` objects. Each `complete` or `stream` call consumes one response;
    calling it after the last one raises `ProviderError`. `stream` yields the reply as text and tool-call
    deltas, split as `ScriptedProvider` splits them, then a `ResponseComplete` holding the very response
    `complete` would have returned.

    Args:
        responses: The responses to play, in order.
        name: Provider name (``"recorded"``).
    """

    def __init__(self, responses: Iterable[ModelResponse], *, name: str = "recorded") -> None:
        self._responses = tuple(responses)
        self._name = name
        self._next = 0

    @classmethod
    def from_events(cls, events: Iterable[EventDraft], *, name: str = "recorded") -> RecordedProvider:
        """Build a provider from run-log events, keeping only ``model.responded`` ones.

        Every other event type is ignored, so the whole log of a run (``RunStore.read_events``) can be
        passed as is. A recorded response has no ``response_id``: the run log does not keep it.

        Args:
            events: Recorded events (or drafts), in log order.
            name: Provider name (``"recorded"``).
        """
        responses = [
            # Of a recorded payload's validated parts: no validation again (see `trusted`).
            trusted(
                ModelResponse,
                {
                    "model": event.payload.model,
                    "message": event.payload.message,
                    "usage": event.payload.usage,
                    "finish_reason": event.payload.finish_reason,
                    "response_id": None,
                    "latency_ms": event.payload.latency_ms,
                },
            )
            for event in events
            if isinstance(event.payload, ModelRespondedPayload)
        ]
        return cls(responses, name=name)

    @property
    def name(self) -> str:
        """Provider name (``"recorded"`` unless overridden)."""
        return self._name

    @property
    def responses(self) -> Sequence[ModelResponse]:
        """Every recorded response, consumed or not, in playing order."""
        return self._responses

    @property
    def consumed(self) -> int:
        """Responses already returned."""
        return self._next

    @property
    def remaining(self) -> int:
        """Responses not yet returned."""
        return len(self._responses) - self._next

    def _take(self) -> ModelResponse:
        if self._next >= len(self._responses):
            count = len(self._responses)
            recorded = f"all {count} recorded responses were" if count != 1 else "the 1 recorded response was"
            raise ProviderError(
                f"{self._name}: recording exhausted: {recorded} consumed and the model was called again"
                if count
                else f"{self._name}: recording exhausted: no responses were recorded",
                provider=self._name,
            )
        response = self._responses[self._next]
        self._next += 1
        return response

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Return the next recorded response; `request` is not inspected.

        Raises:
            ProviderError: Every recorded response has been consumed.
        """
        return self._take()

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        """Yield the next recorded response as deltas, then a `ResponseComplete` holding it.

        Raises:
            ProviderError: Every recorded response has been consumed.
        """
        response = self._take()
        for chunk in reply_deltas(response.message.content, response.message.tool_calls):
            yield chunk
        yield ResponseComplete(response=response)
