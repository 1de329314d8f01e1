"""A deterministic provider that plays a scenario: the offline default and the test double."""

from __future__ import annotations

import asyncio
import json
import math
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, NonNegativeFloat, ValidationError, model_validator

from runtime_core.exceptions import ConfigurationError, ProviderError
from runtime_core.providers import (
    FinishReason,
    ModelRequest,
    ModelResponse,
    ResponseComplete,
    StreamChunk,
    TextDelta,
    ToolCallDelta,
)
from runtime_core.tools import ToolCall
from runtime_core.usage import Usage
from runtime_execution.providers._assembly import ResponseAssembler, reply_deltas

__all__ = ["ScriptedError", "ScriptedProvider", "ScriptedStep", "ScriptedToolCall", "Scenario"]


class _ScenarioModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScriptedToolCall(_ScenarioModel):
    """A tool call the scripted model makes.

    Attributes:
        name: Runtime tool name (``file:read``); no wire mapping applies.
        arguments: The arguments object.
        id: Call id; defaults to ``call_<step>_<i>`` (both 0-based).
    """

    name: str = Field(min_length=1)
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    id: str | None = Field(default=None, min_length=1)


class ScriptedError(_ScenarioModel):
    """An error the scripted model raises instead of replying (as a `ProviderError`).

    Attributes:
        message: Error message.
        status_code: HTTP status to report, if any.
        retryable: Whether the error claims a retry may succeed.
    """

    message: str
    status_code: int | None = None
    retryable: bool = False


class ScriptedStep(_ScenarioModel):
    """One model call of a scenario: a reply (text and/or tool calls) or an injected error.

    Attributes:
        text: Reply text.
        tool_calls: Tool calls, in order.
        usage: Usage to report; by default about one token per four characters of input and output.
        finish_reason: Defaults to ``tool_calls`` when there are tool calls, else ``stop``.
        delay_s: Seconds to wait before replying (simulates latency).
        error: When set, the step raises this error; no reply fields are allowed beside it.
    """

    text: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: FinishReason | None = None
    delay_s: NonNegativeFloat = 0.0
    error: ScriptedError | None = None

    @model_validator(mode="after")
    def _error_alone(self) -> Self:
        if self.error is not None and (self.text is not None or self.tool_calls or self.usage is not None):
            raise ValueError("an error step cannot also carry text, tool_calls or usage")
        return self


class Scenario(_ScenarioModel):
    """A scripted conversation: the replies of successive model calls.

    Attributes:
        model: Model name reported in responses.
        steps: One step per model call, consumed in order.
    """

    model: str = "scripted"
    steps: tuple[ScriptedStep, ...] = ()


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


class ScriptedProvider:
    """A `ModelProvider` that replays a `Scenario` step by step.

    Each `complete` or `stream` call consumes the next step; running out raises `ProviderError`.
    Streaming splits the text into a few chunks and sends each tool call's arguments in two
    fragments, so the same reassembly as the HTTP providers is exercised.

    Args:
        scenario: The scenario, or a mapping that validates as one.
        name: Provider name (``"scripted"``).
        start: Steps already played, to skip: resuming a run in a new process, pass the number of
            replies its log records (``model.responded`` events), and the scenario goes on from there.
    """

    def __init__(self, scenario: Scenario | dict[str, Any], *, name: str = "scripted", start: int = 0) -> None:
        self._scenario = scenario if isinstance(scenario, Scenario) else Scenario.model_validate(scenario)
        self._name = name
        if not 0 <= start <= len(self._scenario.steps):
            raise ConfigurationError(
                f"start must be between 0 and the {len(self._scenario.steps)} steps of the scenario, got {start}",
                setting="start",
            )
        self._next = start

    @classmethod
    def from_file(cls, path: str | Path, *, name: str = "scripted", start: int = 0) -> ScriptedProvider:
        """Load a scenario from a ``.toml`` or ``.json`` file.

        Raises:
            ConfigurationError: The file cannot be read or is not a valid scenario.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
            scenario = Scenario.model_validate(data)
        except (OSError, ValueError, ValidationError) as exc:
            # tomllib.TOMLDecodeError and json.JSONDecodeError are ValueErrors.
            raise ConfigurationError(f"invalid scenario file {str(path)!r}: {exc}", setting="scenario") from exc
        return cls(scenario, name=name, start=start)

    @property
    def name(self) -> str:
        """Provider name (``"scripted"`` unless overridden)."""
        return self._name

    @property
    def scenario(self) -> Scenario:
        """The scenario being played."""
        return self._scenario

    @property
    def remaining(self) -> int:
        """Steps not yet consumed."""
        return len(self._scenario.steps) - self._next

    def _take(self) -> tuple[int, ScriptedStep]:
        if self._next >= len(self._scenario.steps):
            raise ProviderError(
                f"{self._name}: scenario exhausted: all {len(self._scenario.steps)} steps were consumed "
                "and the model was called again",
                provider=self._name,
            )
        index = self._next
        self._next += 1
        step = self._scenario.steps[index]
        if step.error is not None:
            raise ProviderError(
                f"{self._name}: {step.error.message}",
                provider=self._name,
                status_code=step.error.status_code,
                retryable=step.error.retryable,
            )
        return index, step

    def _chunks(self, index: int, step: ScriptedStep) -> list[TextDelta | ToolCallDelta]:
        calls = [
            ToolCall(id=call.id or f"call_{index}_{i}", name=call.name, arguments=call.arguments)
            for i, call in enumerate(step.tool_calls)
        ]
        return reply_deltas(step.text, calls)

    def _usage(self, request: ModelRequest, step: ScriptedStep) -> Usage:
        if step.usage is not None:
            return step.usage if step.usage.requests else step.usage.model_copy(update={"requests": 1})
        prompt = sum(_tokens(message.model_dump_json()) for message in request.messages)
        output = _tokens(step.text or "") + sum(_tokens(call.model_dump_json()) for call in step.tool_calls)
        return Usage(input_tokens=prompt, output_tokens=output, requests=1)

    def _response(self, request: ModelRequest, index: int, step: ScriptedStep, chunks: list[Any]) -> ModelResponse:
        assembler = ResponseAssembler(self._name)
        for chunk in chunks:
            assembler.add(chunk)
        return assembler.build(
            model=self._scenario.model,
            usage=self._usage(request, step),
            finish_reason=step.finish_reason,
            response_id=f"scripted_{index}",
            latency_ms=step.delay_s * 1000.0,
        )

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Return the next step's reply.

        Raises:
            ProviderError: The step is an injected error, or the scenario is exhausted.
        """
        index, step = self._take()
        if step.delay_s:
            await asyncio.sleep(step.delay_s)
        return self._response(request, index, step, self._chunks(index, step))

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        """Yield the next step's reply as deltas, then a `ResponseComplete`.

        Raises:
            ProviderError: The step is an injected error, or the scenario is exhausted.
        """
        index, step = self._take()
        if step.delay_s:
            await asyncio.sleep(step.delay_s)
        chunks = self._chunks(index, step)
        for chunk in chunks:
            yield chunk
        yield ResponseComplete(response=self._response(request, index, step, chunks))
