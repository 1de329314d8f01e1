"""Helpers for the agent loop tests: scripted agents, a request-recording provider, log queries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from runtime_core.agents import AgentSpec, ExecutionMode, Limits, RecoveryConfig
from runtime_core.events import Event
from runtime_core.providers import ModelRequest, ModelResponse, StreamChunk
from runtime_core.stores import RunStore
from runtime_execution.providers import ScriptedProvider


class RecordingProvider:
    """A scripted provider that keeps every request it receives."""

    def __init__(self, *steps: dict[str, Any], name: str = "scripted") -> None:
        self._inner = ScriptedProvider({"steps": list(steps)}, name=name)
        self.requests: list[ModelRequest] = []

    @property
    def name(self) -> str:
        return self._inner.name

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        return await self._inner.complete(request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        self.requests.append(request)
        async for chunk in self._inner.stream(request):
            yield chunk


def call(name: str, **arguments: Any) -> dict[str, Any]:
    """A scripted tool call."""
    return {"name": name, "arguments": arguments}


def calls(*items: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    """A scripted step making `items` tool calls."""
    step: dict[str, Any] = {"tool_calls": list(items)}
    if text is not None:
        step["text"] = text
    return step


def done(summary: str = "all done") -> dict[str, Any]:
    """A scripted step calling complete_task."""
    return calls(call("complete_task", summary=summary))


def agent(
    *,
    tools: Sequence[str] = ("*",),
    mode: ExecutionMode = ExecutionMode.BATCH,
    max_turns: int = 20,
    recovery: RecoveryConfig | None = None,
    **limits: Any,
) -> AgentSpec:
    return AgentSpec(
        name="tester",
        model="scripted:test",
        instructions="You are a test agent.",
        tools=tuple(tools),
        mode=mode,
        limits=Limits(max_turns=max_turns, **limits),
        recovery=recovery or RecoveryConfig(),
    )


async def log(store: RunStore, run_id: str) -> list[Event]:
    return list(await store.read_events(run_id))


def types(events: Sequence[Event], turn: int | None = None) -> list[str]:
    return [e.type.value for e in events if turn is None or e.turn == turn]
