"""OpenAI Chat Completions provider (also any compatible server: vLLM, Ollama, llama.cpp)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from runtime_core.exceptions import ProviderError
from runtime_core.messages import Message, SystemMessage, ToolResultMessage, UserMessage
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

__all__ = ["OpenAIProvider"]

_FINISH = {
    "stop": FinishReason.STOP,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "length": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
}


def _message(message: Message) -> dict[str, Any]:
    if isinstance(message, SystemMessage | UserMessage):
        return {"role": message.role, "content": message.content}
    if isinstance(message, ToolResultMessage):
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    wire: dict[str, Any] = {"role": "assistant", "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": wire_tool_name(call.name),
                    "arguments": call.raw_arguments or json.dumps(call.arguments),
                },
            }
            for call in message.tool_calls
        ]
    return wire


def _usage(payload: Any) -> Usage:
    if not payload:
        return Usage(requests=1)
    details = payload.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=int(payload.get("prompt_tokens") or 0),
        output_tokens=int(payload.get("completion_tokens") or 0),
        cached_input_tokens=int(details.get("cached_tokens") or 0),
        requests=1,
    )


class OpenAIProvider(HttpProvider):
    """A `ModelProvider` over the OpenAI Chat Completions API.

    Tool names: runtime tools are named ``server:operation``, but OpenAI allows only ``[a-zA-Z0-9_-]``
    in function names, so ``:`` is sent as ``__`` (and ``.`` as ``--``) and mapped back on the way in,
    using the request's own tool list first.

    Args:
        client: The injected HTTP client; the provider never closes it.
        base_url: API root, e.g. ``http://127.0.0.1:8000/v1`` for a local compatible server.
        api_key: Sent as a bearer token when given.
        max_retries: Extra attempts on 429, 5xx, timeouts and connection errors.
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
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        timeout_s: float = 120.0,
        sleep: Sleep = asyncio.sleep,
        name: str = "openai",
    ) -> None:
        super().__init__(
            client,
            url=base_url.rstrip("/") + "/chat/completions",
            api_key=api_key,
            max_retries=max_retries,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
            timeout_s=timeout_s,
            sleep=sleep,
            name=name,
        )

    def _body(self, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model, "messages": [_message(m) for m in request.messages]}
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": wire_tool_name(spec.name),
                        "description": spec.description,
                        "parameters": spec.parameters,
                    },
                }
                for spec in request.tools
            ]
            body["tool_choice"] = request.tool_choice
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_output_tokens is not None:
            # max_tokens rather than max_completion_tokens: every compatible server understands it.
            body["max_tokens"] = request.max_output_tokens
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Return the full reply.

        Raises:
            ProviderError: HTTP failure, exhausted retries, or a malformed response.
        """
        start = time.monotonic()
        response = await self._send(request, stream=False)
        payload = loads(response.content, provider=self._name)
        table = tool_name_table([spec.name for spec in request.tools])
        try:
            choice = payload["choices"][0]
            message = choice["message"]
            assembler = ResponseAssembler(self._name)
            if message.get("content"):
                assembler.add(TextDelta(text=message["content"]))
            for index, call in enumerate(message.get("tool_calls") or []):
                function = call["function"]
                arguments = function.get("arguments") or ""
                assembler.add(
                    ToolCallDelta(
                        index=index,
                        id=call["id"],
                        name=runtime_tool_name(function["name"], table),
                        arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
                    )
                )
            usage = _usage(payload.get("usage"))
            finish = _FINISH.get(choice.get("finish_reason") or "")
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
            ProviderError: HTTP failure, exhausted retries, or a malformed event.
        """
        start = time.monotonic()
        response = await self._send(request, stream=True)
        table = tool_name_table([spec.name for spec in request.tools])
        assembler = ResponseAssembler(self._name)
        usage = Usage(requests=1)
        finish: FinishReason | None = None
        response_id: str | None = None
        model = request.model
        try:
            async for _, data in iter_sse(response, provider=self._name):
                if data.strip() == "[DONE]":
                    break
                event = loads(data, provider=self._name, what="stream event")
                try:
                    if "error" in event:
                        raise ProviderError(
                            f"{self._name}: error event in stream: {event['error']}", provider=self._name
                        )
                    response_id = event.get("id") or response_id
                    model = event.get("model") or model
                    if event.get("usage"):
                        usage = _usage(event["usage"])
                    for choice in event.get("choices") or []:
                        delta = choice.get("delta") or {}
                        for chunk in self._deltas(delta, table):
                            assembler.add(chunk)
                            yield chunk
                        if choice.get("finish_reason"):
                            finish = _FINISH.get(choice["finish_reason"])
                except SHAPE_ERRORS as exc:
                    raise shape_error(self._name, exc, event) from exc
        finally:
            await response.aclose()
        yield ResponseComplete(
            response=assembler.build(
                model=model, usage=usage, finish_reason=finish, response_id=response_id, latency_ms=monotonic_ms(start)
            )
        )

    @staticmethod
    def _deltas(delta: dict[str, Any], table: dict[str, str]) -> list[TextDelta | ToolCallDelta]:
        chunks: list[TextDelta | ToolCallDelta] = []
        if delta.get("content"):
            chunks.append(TextDelta(text=delta["content"]))
        for call in delta.get("tool_calls") or []:
            function = call.get("function") or {}
            name = function.get("name")
            chunks.append(
                ToolCallDelta(
                    index=call["index"],
                    id=call.get("id"),
                    name=runtime_tool_name(name, table) if name else None,
                    arguments=function.get("arguments") or "",
                )
            )
        return chunks
