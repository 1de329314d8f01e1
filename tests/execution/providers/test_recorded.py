"""RecordedProvider: replaying model responses from a run log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from runtime_core.agents import AgentSpec
from runtime_core.events import (
    Event,
    EventDraft,
    ModelRequestedPayload,
    ModelRespondedPayload,
    RunCreatedPayload,
    RunStartedPayload,
    ToolCalledPayload,
    TurnStartedPayload,
)
from runtime_core.exceptions import ProviderError
from runtime_core.memory import InMemoryRunStore
from runtime_core.messages import AssistantMessage, UserMessage
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
from runtime_core.tools import ToolCall
from runtime_core.usage import Usage
from runtime_execution.providers._assembly import ResponseAssembler
from runtime_execution.providers.recorded import RecordedProvider

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REQUEST = ModelRequest(model="gpt-test", messages=(UserMessage(content="Fix the bug."),))
READ = ToolCall(id="call_1", name="file:read", arguments={"path": "src/app.py", "lines": [1, 20], "strict": True})
EDIT = ToolCall(id="call_2", name="file:edit", arguments={"path": "src/app.py", "old": "x = 1", "new": "x = 2"})
DONE = ToolCall(id="call_3", name="complete_task", arguments={"summary": "Fixed the off-by-one."})
RESPONSES = (
    ModelResponse(
        model="gpt-test",
        message=AssistantMessage(content="Let me look at the code first.", tool_calls=(READ,)),
        usage=Usage(input_tokens=120, output_tokens=30, cached_input_tokens=100, requests=1, cost_usd=0.002),
        finish_reason=FinishReason.TOOL_CALLS,
        latency_ms=812.5,
    ),
    ModelResponse(
        model="gpt-test",
        message=AssistantMessage(tool_calls=(EDIT, DONE)),
        usage=Usage(input_tokens=400, output_tokens=60, requests=1),
        finish_reason=FinishReason.TOOL_CALLS,
        latency_ms=640.0,
    ),
    ModelResponse(model="gpt-test", message=AssistantMessage(content="All done."), usage=Usage(requests=1)),
)


def _payload(response: ModelResponse) -> ModelRespondedPayload:
    return ModelRespondedPayload(
        model=response.model,
        message=response.message,
        usage=response.usage,
        finish_reason=response.finish_reason,
        latency_ms=response.latency_ms,
    )


def _turn_drafts(turn: int, response: ModelResponse) -> list[EventDraft]:
    """The drafts a loop writes around one model call: turn start, request, response, tool calls."""
    ts = T0 + timedelta(seconds=turn)
    drafts = [
        EventDraft.of(TurnStartedPayload(), id=f"ev_{turn}_start", ts=ts, agent_id="coder", turn=turn),
        EventDraft.of(
            ModelRequestedPayload(model="gpt-test", message_count=2 * turn),
            id=f"ev_{turn}_request",
            ts=ts,
            agent_id="coder",
            turn=turn,
        ),
        EventDraft.of(_payload(response), id=f"ev_{turn}_response", ts=ts, agent_id="coder", turn=turn),
    ]
    drafts.extend(
        EventDraft.of(
            ToolCalledPayload(call=call),
            id=f"ev_{turn}_{call.id}",
            ts=ts,
            agent_id="coder",
            turn=turn,
            tool_call_id=call.id,
        )
        for call in response.message.tool_calls
    )
    return drafts


def _placed_log() -> list[Event]:
    drafts = [EventDraft.of(RunStartedPayload(), id="ev_started", ts=T0, agent_id="coder")]
    for turn, response in enumerate(RESPONSES, 1):
        drafts.extend(_turn_drafts(turn, response))
    return [Event.placed(draft, run_id="run_1", seq=seq) for seq, draft in enumerate(drafts, 2)]


async def _collect(provider: ModelProvider) -> list[StreamChunk]:
    return [chunk async for chunk in provider.stream(REQUEST)]


def _reassemble(chunks: list[StreamChunk], final: ModelResponse) -> ModelResponse:
    assembler = ResponseAssembler("recorded")
    for chunk in chunks:
        assert not isinstance(chunk, ResponseComplete)
        assembler.add(chunk)
    return assembler.build(
        model=final.model,
        usage=final.usage,
        finish_reason=final.finish_reason,
        response_id=final.response_id,
        latency_ms=final.latency_ms,
    )


def test_is_a_model_provider_with_counters() -> None:
    provider = RecordedProvider(RESPONSES)
    assert isinstance(provider, ModelProvider)
    assert provider.name == "recorded"
    assert RecordedProvider(RESPONSES, name="replay").name == "replay"
    assert (provider.consumed, provider.remaining) == (0, 3)
    assert provider.responses == RESPONSES


def test_complete_returns_responses_in_order() -> None:
    provider = RecordedProvider(iter(RESPONSES))  # any iterable, consumed once at construction

    async def play() -> list[ModelResponse]:
        out = []
        for expected_remaining in (2, 1, 0):
            out.append(await provider.complete(REQUEST))
            assert provider.remaining == expected_remaining
            assert provider.consumed == 3 - expected_remaining
        return out

    assert asyncio.run(play()) == list(RESPONSES)


def test_stream_reassembles_to_what_complete_returns() -> None:
    streamer, completer = RecordedProvider(RESPONSES), RecordedProvider(RESPONSES)

    async def both() -> list[tuple[list[StreamChunk], ModelResponse]]:
        return [(await _collect(streamer), await completer.complete(REQUEST)) for _ in RESPONSES]

    for chunks, complete in asyncio.run(both()):
        final = chunks[-1]
        assert isinstance(final, ResponseComplete)
        assert final.response == complete
        deltas = chunks[:-1]
        assert _reassemble(deltas, complete) == complete
        texts = [chunk.text for chunk in deltas if isinstance(chunk, TextDelta)]
        assert "".join(texts) == (complete.message.content or "")
        assert len(texts) == (3 if complete.message.content else 0)
        calls = [chunk for chunk in deltas if isinstance(chunk, ToolCallDelta)]
        assert len(calls) == 3 * len(complete.message.tool_calls)  # id and name, then two argument fragments
        assert [chunk.name for chunk in calls if chunk.name] == [call.name for call in complete.message.tool_calls]
    assert streamer.remaining == 0


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (0, "recorded: recording exhausted: no responses were recorded"),
        (1, "recorded: recording exhausted: the 1 recorded response was consumed"),
        (3, "recorded: recording exhausted: all 3 recorded responses were consumed"),
    ],
)
def test_exhaustion_says_how_many_were_recorded(count: int, message: str) -> None:
    provider = RecordedProvider(RESPONSES[:count])

    async def drain() -> None:
        for _ in range(count):
            await provider.complete(REQUEST)
        await provider.complete(REQUEST)

    with pytest.raises(ProviderError, match=message) as caught:
        asyncio.run(drain())
    assert caught.value.provider == "recorded"
    assert caught.value.retryable is False
    assert caught.value.status_code is None
    assert (provider.consumed, provider.remaining) == (count, 0)


def test_streaming_exhaustion_raises_before_any_chunk() -> None:
    provider = RecordedProvider([], name="replay")
    received: list[StreamChunk] = []

    async def consume() -> None:
        async for chunk in provider.stream(REQUEST):
            received.append(chunk)

    with pytest.raises(ProviderError, match="replay: recording exhausted") as caught:
        asyncio.run(consume())
    assert caught.value.provider == "replay"
    assert received == []


def test_from_events_keeps_only_model_responses() -> None:
    log = _placed_log()
    assert len(log) > len(RESPONSES)
    provider = RecordedProvider.from_events(log)
    assert provider.remaining == len(RESPONSES)
    # The run log keeps no provider response id: everything else is replayed exactly.
    assert list(provider.responses) == list(RESPONSES)

    async def play() -> list[ModelResponse]:
        return [await provider.complete(REQUEST) for _ in RESPONSES]

    assert asyncio.run(play()) == list(RESPONSES)


def test_from_events_accepts_drafts_and_drops_response_ids() -> None:
    response = RESPONSES[0].model_copy(update={"response_id": "chatcmpl-42"})
    draft = EventDraft.of(_payload(response), id="ev_1", ts=T0, agent_id="coder", turn=1)
    provider = RecordedProvider.from_events([draft], name="replay")
    assert provider.name == "replay"
    assert provider.responses == (RESPONSES[0],)
    assert RecordedProvider.from_events([]).remaining == 0


def test_from_the_log_of_an_in_memory_run_store() -> None:
    async def record_and_replay() -> list[ModelResponse]:
        store = InMemoryRunStore()
        agent = AgentSpec(name="coder", model="openai:gpt-test")
        created = EventDraft.of(RunCreatedPayload(agent=agent, task="Fix the bug."), id="ev_0", ts=T0, agent_id="coder")
        await store.create_run("run_1", created)
        lease = await store.acquire_lease("run_1", "worker", ttl=timedelta(minutes=1))
        await store.append(lease, [EventDraft.of(RunStartedPayload(), id="ev_started", ts=T0, agent_id="coder")])
        for turn, response in enumerate(RESPONSES, 1):
            await store.append(lease, _turn_drafts(turn, response))
        provider = RecordedProvider.from_events(await store.read_events("run_1"))
        assert provider.remaining == len(RESPONSES)
        replayed = [await provider.complete(REQUEST) for _ in RESPONSES[:-1]]
        chunks = await _collect(provider)
        final = chunks[-1]
        assert isinstance(final, ResponseComplete)
        return [*replayed, final.response]

    assert asyncio.run(record_and_replay()) == list(RESPONSES)
