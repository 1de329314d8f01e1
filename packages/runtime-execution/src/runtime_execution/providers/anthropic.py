"""Anthropic Messages API provider."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from runtime_core.exceptions import ProviderError
from runtime_core.messages import AssistantMessage, Message, SystemMessage, ToolResultMessage, UserMessage
from runtime_core.providers import (
    FinishReason,
    ModelRequest,
    ModelResponse,
    ResponseComplete,
    StreamChunk,
    TextDelta,
    ToolCallDelta,
)
from runtime_core.usage import Usage
from runtime_execution.providers._assembly import ResponseAssembler
from runtime_execution.providers._http import (
    SHAPE_ERRORS,
    HttpProvider,
    Sleep,
    iter_sse,
    loads,
    monotonic_ms,
    runtime_tool_name,
    shape_error,
    tool_name_table,
    wire_tool_name,
)

__all__ = ["AnthropicProvider"]

_FINISH = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "pause_turn": FinishReason.STOP,
    "tool_use": FinishReason.TOOL_CALLS,
    "max_tokens": FinishReason.LENGTH,
    "refusal": FinishReason.CONTENT_FILTER,
}
_TOOL_CHOICE = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}


def _messages(messages: tuple[Message, ...]) -> tuple[str | None, list[dict[str, Any]]]:
    system = [m.content for m in messages if isinstance(m, SystemMessage)]
    wire: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            continue
        if isinstance(message, UserMessage):
            wire.append({"role": "user", "content": message.content})
        elif isinstance(message, ToolResultMessage):
            block = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content,
                "is_error": message.is_error,
            }
            previous = wire[-1] if wire else None
            # Anthropic wants all results of one assistant turn in a single user message.
            if previous and previous["role"] == "user" and isinstance(previous["content"], list):
                previous["content"].append(block)
            else:
                wire.append({"role": "user", "content": [block]})
        else:
            wire.append({"role": "assistant", "content": _assistant_blocks(message)})
    return ("\n\n".join(system) if system else None), wire


def _assistant_blocks(message: AssistantMessage) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    blocks.extend(
        {"type": "tool_use", "id": call.id, "name": wire_tool_name(call.name), "input": call.arguments}
        for call in message.tool_calls
    )
    return blocks


def _usage(payload: Any) -> Usage:
    if not payload:
        return Usage(requests=1)
    cached = int(payload.get("cache_read_input_tokens") or 0)
    created = int(payload.get("cache_creation_input_tokens") or 0)
    return Usage(
        # Anthropic counts cache reads and writes apart from input_tokens; Usage counts them inside it.
        input_tokens=int(payload.get("input_tokens") or 0) + cached + created,
        output_tokens=int(payload.get("output_tokens") or 0),
        cached_input_tokens=cached,
        requests=1,
    )


class AnthropicProvider(HttpProvider):
    """A `ModelProvider` over the Anthropic Messages API.

    System messages become the top-level ``system`` prompt; tool results become ``tool_result`` blocks
    of a user message (consecutive results merged); tool calls are ``tool_use`` blocks. Anthropic tool
    names must match ``^[a-zA-Z0-9_-]{1,64}$``, so ``:`` is sent as ``__`` (and ``.`` as ``--``) and
    mapped back on the way in.

    Args:
        client: The injected HTTP client; the provider never closes it.
        base_url: API root.
        api_key: Sent as ``x-api-key`` when given.
        anthropic_version: The ``anthropic-version`` header.
        max_tokens: ``max_tokens`` when the request sets no ``max_output_tokens`` (the API requires one).
        max_retries: Extra attempts on 429, 5xx (529 included), timeouts and connection errors.
        backoff_s: First backoff delay; doubles on each retry, with jitter.
        max_backoff_s: Cap on any single delay, ``Retry-After`` included.
        timeout_s: Per-request timeout.
        sleep: Awaitable sleep used between retries (tests inject a fake one).
        name: Provider name reported by `name` and in errors.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str = "https://api.anthropic.com",
        api_key: str | None = None,
        anthropic_version: str = "2023-06-01",
        max_tokens: int = 4096,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        timeout_s: float = 120.0,
        sleep: Sleep = asyncio.sleep,
        name: str = "anthropic",
    ) -> None:
        super().__init__(
            client,
            url=base_url.rstrip("/") + "/v1/messages",
            api_key=api_key,
            max_retries=max_retries,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
            timeout_s=timeout_s,
            sleep=sleep,
            name=name,
        )
        self._version = anthropic_version
        self._max_tokens = max_tokens

    def _body(self, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
        system, messages = _messages(request.messages)
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_output_tokens or self._max_tokens,
            "messages": messages,
        }
        if system is not None:
            body["system"] = system
        if request.tools:
            body["tools"] = [
                {"name": wire_tool_name(spec.name), "description": spec.description, "input_schema": spec.parameters}
                for spec in request.tools
            ]
            body["tool_choice"] = _TOOL_CHOICE[request.tool_choice]
        if request.temperature is not None:
            body["temperature"] = min(request.temperature, 1.0)  # Anthropic accepts 0..1
        if stream:
            body["stream"] = True
        return body

    def _auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self._version}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Return the full reply.

        Raises:
            ProviderError: HTTP failure, exhausted retries, or a malformed response.
        """
        start = time.monotonic()
        response = await self._send(request, stream=False)
        payload = loads(response.content, provider=self._name)
        table = tool_name_table([spec.name for spec in request.tools])
        assembler = ResponseAssembler(self._name)
        try:
            calls = 0
            for block in payload["content"]:
                if block["type"] == "text":
                    assembler.add(TextDelta(text=block["text"]))
                elif block["type"] == "tool_use":
                    assembler.add(
                        ToolCallDelta(
                            index=calls,
                            id=block["id"],
                            name=runtime_tool_name(block["name"], table),
                            arguments=json.dumps(block.get("input") or {}),
                        )
                    )
                    calls += 1
            usage = _usage(payload.get("usage"))
            finish = _FINISH.get(payload.get("stop_reason") or "")
            response_id = payload.get("id")
            model = payload.get("model") or request.model
        except SHAPE_ERRORS as exc:
            raise shape_error(self._name, exc, payload) from exc
        return assembler.build(
            model=model, usage=usage, finish_reason=finish, response_id=response_id, latency_ms=monotonic_ms(start)
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        """Yield text and tool-call deltas as they arrive, then a `ResponseComplete`.

        Raises:
            ProviderError: HTTP failure, exhausted retries, an ``error`` event, or a malformed event.
        """
        start = time.monotonic()
        response = await self._send(request, stream=True)
        state = _StreamState(request.model, tool_name_table([spec.name for spec in request.tools]))
        assembler = ResponseAssembler(self._name)
        try:
            async for _, data in iter_sse(response, provider=self._name):
                event = loads(data, provider=self._name, what="stream event")
                try:
                    chunk = state.handle(event, self._name)
                except SHAPE_ERRORS as exc:
                    raise shape_error(self._name, exc, event) from exc
                if chunk is not None:
                    assembler.add(chunk)
                    yield chunk
                if state.stopped:
                    break
        finally:
            await response.aclose()
        yield ResponseComplete(
            response=assembler.build(
                model=state.model,
                usage=state.usage,
                finish_reason=state.finish,
                response_id=state.response_id,
                latency_ms=monotonic_ms(start),
            )
        )


class _StreamState:
    """What a Messages stream has said so far, outside the content itself."""

    def __init__(self, model: str, table: dict[str, str]) -> None:
        self.model = model
        self.table = table
        self.usage = Usage(requests=1)
        self.finish: FinishReason | None = None
        self.response_id: str | None = None
        self.stopped = False
        self.tool_index: dict[int, int] = {}  # Anthropic block index -> tool call ordinal

    def handle(self, event: dict[str, Any], provider: str) -> TextDelta | ToolCallDelta | None:
        """Update the state from one event; return the content delta it carries, if any."""
        kind = event["type"]
        if kind == "message_start":
            message = event["message"]
            self.response_id = message.get("id")
            self.model = message.get("model") or self.model
            self.usage = _usage(message.get("usage"))
        elif kind == "content_block_start":
            block = event["content_block"]
            if block["type"] == "text" and block.get("text"):
                return TextDelta(text=block["text"])
            if block["type"] == "tool_use":
                ordinal = self.tool_index.setdefault(event["index"], len(self.tool_index))
                return ToolCallDelta(index=ordinal, id=block["id"], name=runtime_tool_name(block["name"], self.table))
        elif kind == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                return TextDelta(text=delta["text"])
            if delta["type"] == "input_json_delta":
                return ToolCallDelta(index=self.tool_index[event["index"]], arguments=delta["partial_json"])
        elif kind == "message_delta":
            stop = (event.get("delta") or {}).get("stop_reason")
            if stop:
                self.finish = _FINISH.get(stop)
            if event.get("usage"):
                # message_delta carries the cumulative output count; input counts came with message_start.
                output = int(event["usage"].get("output_tokens") or 0)
                self.usage = self.usage.model_copy(update={"output_tokens": output})
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "error":
            error = event.get("error") or {}
            raise ProviderError(
                f"{provider}: error event in stream: {error.get('type')}: {error.get('message')}",
                provider=provider,
                body=json.dumps(event)[:2000],
                retryable=error.get("type") in {"overloaded_error", "api_error", "rate_limit_error"},
            )
        return None
