"""Fake model APIs for the provider conformance suite.

A `Reply` is one canonical model answer; each fake renders it as its API would, as plain JSON or as
an SSE stream depending on the request's ``stream`` flag. A `Raw` reply is sent byte for byte (errors,
malformed bodies). The HTTP fakes are real servers on 127.0.0.1 with a random port.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from runtime_core.providers import ModelProvider
from runtime_core.usage import Usage
from runtime_execution.providers import (
    AnthropicProvider,
    OpenAIProvider,
    Scenario,
    ScriptedError,
    ScriptedProvider,
    ScriptedStep,
    ScriptedToolCall,
)

MODEL = "test-model"
USAGE = Usage(input_tokens=10, output_tokens=5, cached_input_tokens=3, requests=1)


@dataclass(frozen=True)
class Reply:
    text: str | None = None
    tool_calls: tuple[tuple[str, str, dict[str, Any]], ...] = ()  # (id, runtime name, arguments)
    usage: Usage = USAGE
    finish: str = "stop"  # canonical: stop | tool_calls | length


@dataclass(frozen=True)
class Raw:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _wire(name: str) -> str:
    return name.replace(":", "__").replace(".", "--")


def _split(text: str) -> list[str]:
    half = max(1, len(text) // 2)
    return [part for part in (text[:half], text[half:]) if part]


def _sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = []
    for name, data in events:
        prefix = f"event: {name}\n" if name else ""
        payload = data if isinstance(data, str) else json.dumps(data)
        out.append(f"{prefix}data: {payload}\n\n")
    return "".join(out).encode()


def openai_json(reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": _wire(name), "arguments": json.dumps(args)}}
            for cid, name, args in reply.tool_calls
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish}],
        "usage": _openai_usage(reply.usage),
    }


def _openai_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    }


def openai_sse(reply: Reply, model: str) -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-1", "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": ""}))]
    events += [(None, chunk({"content": part})) for part in _split(reply.text or "")]
    for index, (cid, name, args) in enumerate(reply.tool_calls):
        head = {"index": index, "id": cid, "type": "function", "function": {"name": _wire(name), "arguments": ""}}
        events.append((None, chunk({"tool_calls": [head]})))
        for part in _split(json.dumps(args)):
            events.append((None, chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})))
    events.append((None, chunk({}, reply.finish)))
    events.append((None, {"id": "chatcmpl-1", "model": model, "choices": [], "usage": _openai_usage(reply.usage)}))
    events.append((None, "[DONE]"))
    return b": keep-alive\n\n" + _sse(events)


_ANTHROPIC_STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}


def _anthropic_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens - usage.cached_input_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "cache_creation_input_tokens": 0,
        "output_tokens": usage.output_tokens,
    }


def anthropic_json(reply: Reply, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
    content += [
        {"type": "tool_use", "id": cid, "name": _wire(name), "input": args} for cid, name, args in reply.tool_calls
    ]
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _ANTHROPIC_STOP[reply.finish],
        "usage": _anthropic_usage(reply.usage),
    }


def anthropic_sse(reply: Reply, model: str) -> bytes:
    start_usage = {**_anthropic_usage(reply.usage), "output_tokens": 1}
    events: list[tuple[str | None, Any]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "usage": start_usage,
                },
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    index = 0
    if reply.text:
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        for part in _split(reply.text):
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}},
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        index = 1
    for offset, (cid, name, args) in enumerate(reply.tool_calls):
        block = index + offset
        events.append(
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": block,
                    "content_block": {"type": "tool_use", "id": cid, "name": _wire(name), "input": {}},
                },
            )
        )
        for part in _split(json.dumps(args)):
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": block,
                        "delta": {"type": "input_json_delta", "partial_json": part},
                    },
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": block}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": _ANTHROPIC_STOP[reply.finish]},
                "usage": {"output_tokens": reply.usage.output_tokens},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return _sse(events)


class FakeAPI:
    """A real HTTP server on 127.0.0.1 answering from a queue of canned replies."""

    def __init__(self, flavour: str) -> None:
        self.flavour = flavour
        self.replies: deque[Reply | Raw] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                body = json.loads(raw)
                api.requests.append(body)
                api.headers.append({k.lower(): v for k, v in self.headers.items()})
                reply = api.replies.popleft() if api.replies else Raw(599, b"no canned reply left")
                if isinstance(reply, Raw):
                    self._send(reply.status, reply.body, {"content-type": "application/json", **reply.headers})
                elif body.get("stream"):
                    render = openai_sse if api.flavour == "openai" else anthropic_sse
                    self._send(200, render(reply, body["model"]), {"content-type": "text/event-stream"})
                else:
                    render_json = openai_json if api.flavour == "openai" else anthropic_json
                    self._send(
                        200,
                        json.dumps(render_json(reply, body["model"])).encode(),
                        {"content-type": "application/json"},
                    )

            def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        root = f"http://{host}:{port}"
        return root + "/v1" if self.flavour == "openai" else root

    def __enter__(self) -> FakeAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class Backend:
    """One provider under test plus the means to script what its "server" answers."""

    http = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def queue(self, *replies: Reply | Raw) -> None:
        raise NotImplementedError

    def provider(self, client: httpx.AsyncClient) -> ModelProvider:
        raise NotImplementedError

    def last_request(self) -> dict[str, Any]:
        raise NotImplementedError


class HTTPBackend(Backend):
    def __init__(self, api: FakeAPI) -> None:
        super().__init__(api.flavour)
        self.api = api

    def queue(self, *replies: Reply | Raw) -> None:
        self.api.replies.extend(replies)

    def provider(self, client: httpx.AsyncClient) -> ModelProvider:
        if self.name == "openai":
            return OpenAIProvider(client, base_url=self.api.base_url, api_key="sk-test", sleep=self.sleep)
        return AnthropicProvider(client, base_url=self.api.base_url, api_key="sk-test", sleep=self.sleep)

    def last_request(self) -> dict[str, Any]:
        return self.api.requests[-1]


class ScriptedBackend(Backend):
    http = False

    def __init__(self) -> None:
        super().__init__("scripted")
        self.steps: list[ScriptedStep] = []

    def queue(self, *replies: Reply | Raw) -> None:
        for reply in replies:
            if isinstance(reply, Raw):
                retryable = reply.status == 429 or reply.status >= 500
                error = ScriptedError(
                    message=reply.body.decode() or "injected", status_code=reply.status, retryable=retryable
                )
                self.steps.append(ScriptedStep(error=error))
            else:
                calls = tuple(
                    ScriptedToolCall(id=cid, name=name, arguments=args) for cid, name, args in reply.tool_calls
                )
                self.steps.append(ScriptedStep(text=reply.text, tool_calls=calls, usage=reply.usage))

    def provider(self, client: httpx.AsyncClient) -> ModelProvider:
        return ScriptedProvider(Scenario(model=MODEL, steps=tuple(self.steps)))
