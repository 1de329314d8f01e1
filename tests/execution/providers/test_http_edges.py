"""HTTP provider edge cases over `httpx.MockTransport`: retries, Retry-After, SSE oddities, mapping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from runtime_core.exceptions import ProviderError
from runtime_core.messages import AssistantMessage, SystemMessage, ToolResultMessage, UserMessage
from runtime_core.providers import ModelProvider, ModelRequest, ModelResponse, ResponseComplete
from runtime_core.tools import ToolCall
from runtime_execution.providers import AnthropicProvider, OpenAIProvider
from runtime_execution.providers._http import RetryPolicy, parse_retry_after, runtime_tool_name, wire_tool_name
from tests.execution.providers.fakes import Reply, anthropic_json, openai_json

Handler = Callable[[httpx.Request], httpx.Response]
REQUEST = ModelRequest(model="m", messages=(UserMessage(content="hi"),))


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _run(flavour: str, handler: Handler, call: Callable[[ModelProvider], Any], **options: Any) -> Any:
    async def main() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            cls = OpenAIProvider if flavour == "openai" else AnthropicProvider
            return await call(cls(client, **options))

    return asyncio.run(main())


def _complete(provider: ModelProvider) -> Any:
    return provider.complete(REQUEST)


async def _stream(provider: ModelProvider) -> ModelResponse:
    chunks = [chunk async for chunk in provider.stream(REQUEST)]
    assert isinstance(chunks[-1], ResponseComplete)
    return chunks[-1].response


def _ok(flavour: str) -> httpx.Response:
    render = openai_json if flavour == "openai" else anthropic_json
    return httpx.Response(200, json=render(Reply(text="ok"), "m"))


@pytest.mark.parametrize("flavour", ["openai", "anthropic"])
def test_retry_after_http_date(flavour: str) -> None:
    replies = [
        httpx.Response(
            429, headers={"Retry-After": format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)}
        ),
        _ok(flavour),
    ]
    sleeps = Sleeps()
    response = _run(flavour, lambda _: replies.pop(0), _complete, sleep=sleeps)
    assert response.message.content == "ok"
    assert len(sleeps) == 1
    assert 3.0 <= sleeps[0] <= 5.0


@pytest.mark.parametrize("flavour", ["openai", "anthropic"])
def test_retry_after_is_capped_and_backoff_grows(flavour: str) -> None:
    replies = [
        httpx.Response(503, headers={"Retry-After": "600"}),
        httpx.Response(502),
        httpx.Response(500),
        _ok(flavour),
    ]
    sleeps = Sleeps()
    response = _run(
        flavour, lambda _: replies.pop(0), _complete, sleep=sleeps, max_retries=3, backoff_s=1.0, max_backoff_s=8.0
    )
    assert response.message.content == "ok"
    assert sleeps[0] == 8.0  # Retry-After capped by max_backoff_s
    assert 1.0 <= sleeps[1] <= 2.0  # attempt 1: base 2 s, jitter in the upper half
    assert 2.0 <= sleeps[2] <= 4.0


@pytest.mark.parametrize("flavour", ["openai", "anthropic"])
@pytest.mark.parametrize("failure", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
def test_transport_failures_are_retried_then_reported(flavour: str, failure: httpx.HTTPError) -> None:
    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise failure

    sleeps = Sleeps()
    with pytest.raises(ProviderError, match="after 3 attempts") as caught:
        _run(flavour, handler, _complete, sleep=sleeps)
    assert len(attempts) == 3
    assert len(sleeps) == 2
    assert caught.value.retryable is True
    assert caught.value.status_code is None


@pytest.mark.parametrize("flavour", ["openai", "anthropic"])
def test_client_error_body_is_truncated(flavour: str) -> None:
    sleeps = Sleeps()
    with pytest.raises(ProviderError) as caught:
        _run(flavour, lambda _: httpx.Response(401, text="x" * 5000), _complete, sleep=sleeps)
    assert caught.value.status_code == 401
    assert caught.value.retryable is False
    assert caught.value.body is not None
    assert len(caught.value.body) < 2100
    assert sleeps == []


@pytest.mark.parametrize("flavour", ["openai", "anthropic"])
def test_malformed_sse_line_is_a_provider_error(flavour: str) -> None:
    body = b'data: {"id": "x", "choices": [\n\n' if flavour == "openai" else b"event: message_start\ndata: {oops\n\n"
    handler = lambda _: httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})  # noqa: E731
    with pytest.raises(ProviderError, match="malformed JSON in stream event"):
        _run(flavour, handler, _stream)


def test_openai_stream_error_event_and_bad_tool_arguments() -> None:
    err = b'data: {"error": {"message": "quota"}}\n\n'
    handler = lambda _: httpx.Response(200, content=err)  # noqa: E731
    with pytest.raises(ProviderError, match="error event"):
        _run("openai", handler, _stream)
    # Argument text that is not a JSON object is the model's mistake, not the provider's: it is kept.
    bad = openai_json(Reply(tool_calls=(("c1", "file:read", {}),)), "m")
    bad["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = "{not json"
    response = _run("openai", lambda _: httpx.Response(200, json=bad), _complete)
    (call,) = response.message.tool_calls
    assert (call.name, call.arguments, call.raw_arguments) == ("file:read", {}, "{not json")


def test_anthropic_error_event_in_stream() -> None:
    body = b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}\n\n'
    with pytest.raises(ProviderError, match="overloaded_error") as caught:
        _run("anthropic", lambda _: httpx.Response(200, content=body), _stream)
    assert caught.value.retryable is True


def test_openai_request_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _ok("openai")

    request = ModelRequest(
        model="gpt",
        messages=(
            SystemMessage(content="sys"),
            UserMessage(content="u"),
            AssistantMessage(tool_calls=(ToolCall(id="c1", name="file:read", arguments={"p": 1}),)),
            ToolResultMessage(tool_call_id="c1", tool_name="file:read", content="r"),
        ),
        temperature=0.2,
        max_output_tokens=50,
    )
    _run("openai", handler, lambda p: p.complete(request), api_key="k", base_url="http://h/v1/")
    sent = seen[0]
    assert str(sent.url) == "http://h/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer k"
    body = json.loads(sent.content)
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
    assert body["messages"][2]["tool_calls"][0]["function"] == {"name": "file__read", "arguments": '{"p": 1}'}
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "r"}
    assert (body["temperature"], body["max_tokens"]) == (0.2, 50)
    assert "tools" not in body


def test_anthropic_request_shape_merges_tool_results() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _ok("anthropic")

    calls = (ToolCall(id="c1", name="file:read"), ToolCall(id="c2", name="file:write", arguments={"a": 1}))
    request = ModelRequest(
        model="claude",
        messages=(
            SystemMessage(content="one"),
            SystemMessage(content="two"),
            UserMessage(content="u"),
            AssistantMessage(content="thinking", tool_calls=calls),
            ToolResultMessage(tool_call_id="c1", tool_name="file:read", content="r1"),
            ToolResultMessage(tool_call_id="c2", tool_name="file:write", content="r2", is_error=True),
        ),
        tool_choice="required",
    )
    _run("anthropic", handler, lambda p: p.complete(request), api_key="k")
    sent = seen[0]
    assert str(sent.url) == "https://api.anthropic.com/v1/messages"
    assert (sent.headers["x-api-key"], sent.headers["anthropic-version"]) == ("k", "2023-06-01")
    body = json.loads(sent.content)
    assert body["system"] == "one\n\ntwo"
    assert body["max_tokens"] == 4096
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"][1] == {"type": "tool_use", "id": "c1", "name": "file__read", "input": {}}
    results = body["messages"][2]["content"]
    assert [(r["tool_use_id"], r["is_error"]) for r in results] == [("c1", False), ("c2", True)]


def test_anthropic_stop_reasons_and_cache_usage() -> None:
    payload = anthropic_json(Reply(text="cut"), "m")
    payload["stop_reason"] = "max_tokens"
    payload["usage"] = {
        "input_tokens": 4,
        "cache_read_input_tokens": 6,
        "cache_creation_input_tokens": 2,
        "output_tokens": 9,
    }
    response = _run("anthropic", lambda _: httpx.Response(200, json=payload), _complete)
    assert response.finish_reason.value == "length"
    assert (response.usage.input_tokens, response.usage.cached_input_tokens, response.usage.output_tokens) == (12, 6, 9)


def test_helpers() -> None:
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0) == 6.0
    assert RetryPolicy(backoff_s=100, max_backoff_s=3).delay(5, None) <= 3
    assert wire_tool_name("git:log.short") == "git__log--short"
    assert runtime_tool_name("git__log--short", {}) == "git:log.short"
    assert runtime_tool_name("x__y", {"x__y": "x_:y"}) == "x_:y"
    assert runtime_tool_name("complete_task", {}) == "complete_task"


def test_unsupported_url_is_not_retried() -> None:
    async def main() -> None:
        async with httpx.AsyncClient() as client:
            sleeps = Sleeps()
            provider = OpenAIProvider(client, base_url="ftp://nowhere/v1", sleep=sleeps)
            with pytest.raises(ProviderError, match="UnsupportedProtocol") as caught:
                await provider.complete(REQUEST)
            assert caught.value.retryable is False
            assert sleeps == []

    asyncio.run(main())
