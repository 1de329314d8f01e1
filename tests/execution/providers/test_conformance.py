"""Provider conformance: one suite, run against the OpenAI, Anthropic and scripted providers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from runtime_core.exceptions import ProviderError
from runtime_core.messages import AssistantMessage, SystemMessage, ToolResultMessage, UserMessage
from runtime_core.providers import (
    FinishReason,
    ModelProvider,
    ModelRequest,
    ModelResponse,
    ResponseComplete,
    StreamChunk,
    TextDelta,
    ToolCallDelta,
)
from runtime_core.tools import ToolCall, ToolSpec
from tests.execution.providers.fakes import MODEL, USAGE, Backend, Raw, Reply

T = TypeVar("T")

TOOLS = (
    ToolSpec(
        name="file:read",
        description="Read a file.",
        parameters={"type": "object", "properties": {"path": {"type": "string"}}},
    ),
    ToolSpec(name="shell:run.cmd", description="Run a command."),
)
CALLS = (("call_a", "file:read", {"path": "README.md"}), ("call_b", "shell:run.cmd", {"argv": ["ls", "-l"], "n": 2}))


def _request(**kwargs: Any) -> ModelRequest:
    return ModelRequest(
        model=MODEL,
        messages=(SystemMessage(content="Be brief."), UserMessage(content="Hi")),
        **kwargs,
    )


def drive(backend: Backend, scenario: Callable[[ModelProvider], Awaitable[T]]) -> T:
    async def main() -> T:
        async with httpx.AsyncClient() as client:
            provider = backend.provider(client)
            assert isinstance(provider, ModelProvider)
            assert provider.name == backend.name
            return await scenario(provider)

    return asyncio.run(main())


async def _collect(provider: ModelProvider, request: ModelRequest) -> list[StreamChunk]:
    return [chunk async for chunk in provider.stream(request)]


def _comparable(response: ModelResponse) -> dict[str, Any]:
    return response.model_dump(exclude={"latency_ms", "response_id"})


def test_text_reply(backend: Backend) -> None:
    backend.queue(Reply(text="Hello there, human."))
    response = drive(backend, lambda p: p.complete(_request()))
    assert response.message == AssistantMessage(content="Hello there, human.")
    assert response.finish_reason is FinishReason.STOP
    assert response.model == MODEL
    assert response.latency_ms >= 0
    assert response.usage == USAGE


def test_tool_call_reply_round_trips_names(backend: Backend) -> None:
    backend.queue(Reply(text="Let me look.", tool_calls=CALLS, finish="tool_calls"))
    history = (
        AssistantMessage(tool_calls=(ToolCall(id="call_0", name="file:read", arguments={"path": "x"}),)),
        ToolResultMessage(tool_call_id="call_0", tool_name="file:read", content="x's content"),
    )
    request = ModelRequest(model=MODEL, messages=(UserMessage(content="Look"), *history), tools=TOOLS)
    response = drive(backend, lambda p: p.complete(request))
    assert response.message.content == "Let me look."
    assert response.message.tool_calls == tuple(
        ToolCall(id=cid, name=name, arguments=args) for cid, name, args in CALLS
    )
    assert response.finish_reason is FinishReason.TOOL_CALLS
    if backend.http:
        sent = backend.last_request()
        wire = json.dumps(sent["tools"]) + json.dumps(sent["messages"])
        assert "file__read" in wire
        assert "shell__run--cmd" in wire
        assert "file:read" not in wire


def test_streaming_reassembly_equals_complete(backend: Backend) -> None:
    reply = Reply(text="Reading two files for you.", tool_calls=CALLS, finish="tool_calls")
    backend.queue(reply, reply)
    request = _request(tools=TOOLS)

    async def both(provider: ModelProvider) -> tuple[ModelResponse, list[StreamChunk]]:
        return await provider.complete(request), await _collect(provider, request)

    complete, chunks = drive(backend, both)
    assert isinstance(chunks[-1], ResponseComplete)
    assert not any(isinstance(chunk, ResponseComplete) for chunk in chunks[:-1])
    streamed = chunks[-1].response
    assert _comparable(streamed) == _comparable(complete)
    texts = [chunk.text for chunk in chunks if isinstance(chunk, TextDelta)]
    assert len(texts) > 1
    assert "".join(texts) == "Reading two files for you."
    deltas = [chunk for chunk in chunks if isinstance(chunk, ToolCallDelta)]
    assert len(deltas) > len(CALLS)
    assert {d.name for d in deltas if d.name} == {"file:read", "shell:run.cmd"}
    if backend.http:
        assert backend.last_request()["stream"] is True


def test_streaming_text_only_and_usage(backend: Backend) -> None:
    backend.queue(Reply(text="Just words."))
    chunks = drive(backend, lambda p: _collect(p, _request()))
    final = chunks[-1]
    assert isinstance(final, ResponseComplete)
    assert final.response.message == AssistantMessage(content="Just words.")
    assert final.response.usage == USAGE
    assert final.response.finish_reason is FinishReason.STOP


def test_rate_limited_then_success(backend: Backend) -> None:
    backend.queue(Raw(429, b'{"error": "slow down"}', {"Retry-After": "3"}), Reply(text="ok"))
    if backend.http:
        response = drive(backend, lambda p: p.complete(_request()))
        assert response.message.content == "ok"
        assert backend.sleeps == [3.0]
        return

    # The scripted provider does not retry: it surfaces the injected error, and the next call succeeds.
    async def twice(provider: ModelProvider) -> ModelResponse:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(_request())
        assert caught.value.status_code == 429
        assert caught.value.retryable is True
        return await provider.complete(_request())

    assert drive(backend, twice).message.content == "ok"


def test_server_error_exhausts_retries(backend: Backend) -> None:
    backend.queue(*[Raw(500, b'{"error": "boom"}')] * 3)
    with pytest.raises(ProviderError) as caught:
        drive(backend, lambda p: p.complete(_request()))
    error = caught.value
    assert error.status_code == 500
    assert error.retryable is True
    assert error.provider == backend.name
    if backend.http:
        assert len(backend.sleeps) == 2  # max_retries=2: three attempts, two waits
        assert error.body is not None
        assert "boom" in error.body


def test_server_error_exhausts_retries_when_streaming(backend: Backend) -> None:
    backend.queue(*[Raw(503, b"unavailable")] * 3)
    with pytest.raises(ProviderError) as caught:
        drive(backend, lambda p: _collect(p, _request()))
    assert caught.value.status_code == 503
    assert caught.value.retryable is True


def test_client_error_is_not_retried(backend: Backend) -> None:
    backend.queue(Raw(400, b'{"error": "bad request"}'), Reply(text="never sent"))
    with pytest.raises(ProviderError) as caught:
        drive(backend, lambda p: p.complete(_request()))
    assert caught.value.status_code == 400
    assert caught.value.retryable is False
    assert backend.sleeps == []


def test_malformed_json_is_a_provider_error(http_backend: Backend) -> None:
    # A scenario has no wire format: bad scenario files are tested in test_scripted.py.
    backend = http_backend
    backend.queue(Raw(200, b'{"choices": [ this is not json'))
    with pytest.raises(ProviderError, match="malformed JSON") as caught:
        drive(backend, lambda p: p.complete(_request()))
    assert caught.value.retryable is False


def test_unexpected_shape_is_a_provider_error(http_backend: Backend) -> None:
    backend = http_backend
    backend.queue(Raw(200, b'{"choices": [], "content": 3}'))
    with pytest.raises(ProviderError, match="unexpected response shape"):
        drive(backend, lambda p: p.complete(_request()))


def test_usage_accumulates_per_call(backend: Backend) -> None:
    backend.queue(Reply(text="one"), Reply(text="two"))

    async def run(provider: ModelProvider) -> list[ModelResponse]:
        return [await provider.complete(_request()), await provider.complete(_request())]

    first, second = drive(backend, run)
    total = first.usage + second.usage
    assert total.requests == 2
    assert total.input_tokens == 20
    assert total.cached_input_tokens == 6
    assert total.output_tokens == 10
