"""The event bus: subscriptions, priorities, history and replay, waiters, streams, EventSink conformance."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runtime_control.bus import (
    BusEvent,
    BusStats,
    EventBus,
    OverflowPolicy,
    Priority,
    StreamOverflowError,
)
from runtime_core.agents import AgentSpec
from runtime_core.clock import ManualClock
from runtime_core.events import (
    Event,
    EventDraft,
    EventSink,
    RunCreatedPayload,
    RunFailedPayload,
    ToolCalledPayload,
    TurnStartedPayload,
)
from runtime_core.ids import SequentialIds
from runtime_core.memory import InMemoryRunStore
from runtime_core.tools import ToolCall

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_bus(**kwargs: Any) -> tuple[EventBus, ManualClock]:
    clock = ManualClock(T0)
    return EventBus(clock=clock, ids=SequentialIds(), **kwargs), clock


def recorder(into: list[str], label: str) -> Any:
    def handler(event: BusEvent[Any]) -> None:
        into.append(f"{label}:{event.type}")

    return handler


def test_envelope_carries_id_timestamp_source_correlation_and_priority() -> None:
    bus, _ = make_bus()
    event = bus.publish("agent.spawned", {"name": "coder"}, source="lead", correlation_id="run_1", priority="high")
    assert event == BusEvent(
        type="agent.spawned",
        payload={"name": "coder"},
        id="bus_000001",
        timestamp=T0,
        source="lead",
        correlation_id="run_1",
        priority=Priority.HIGH,
    )
    assert bus.publish("agent.spawned", None).id == "bus_000002"
    assert bus.stats == BusStats(published=2)


def test_exact_prefix_colon_prefix_and_wildcard_subscriptions() -> None:
    bus, _ = make_bus()
    seen: list[str] = []
    bus.subscribe("tool.called", recorder(seen, "exact"))
    bus.subscribe("tool.*", recorder(seen, "prefix"))
    bus.subscribe("orchestrator:*", recorder(seen, "colon"))
    bus.subscribe("*", recorder(seen, "all"))
    for event_type in ("tool.called", "tool.finished", "toolbox.opened", "orchestrator:turn:start", "run.started"):
        bus.publish(event_type, None)
    assert seen == [
        "exact:tool.called",
        "prefix:tool.called",
        "all:tool.called",
        "prefix:tool.finished",
        "all:tool.finished",
        "all:toolbox.opened",
        "colon:orchestrator:turn:start",
        "all:orchestrator:turn:start",
        "all:run.started",
    ]


@pytest.mark.parametrize("pattern", ["", "tool*", "*.called", "to*ol", "tool.*.x", "**"])
def test_invalid_patterns_are_rejected(pattern: str) -> None:
    bus, _ = make_bus()
    with pytest.raises(ValueError, match="pattern"):
        bus.subscribe(pattern, lambda event: None)


@pytest.mark.parametrize("event_type", ["", "tool.*", "*"])
def test_invalid_event_types_are_rejected(event_type: str) -> None:
    bus, _ = make_bus()
    with pytest.raises(ValueError, match="invalid event type"):
        bus.publish(event_type, None)


def test_handlers_run_by_priority_then_subscription_order() -> None:
    bus, _ = make_bus()
    seen: list[str] = []
    bus.subscribe("*", recorder(seen, "low"), priority=Priority.LOW)
    bus.subscribe("x.y", recorder(seen, "normal-1"))
    bus.subscribe("x.*", recorder(seen, "critical"), priority=Priority.CRITICAL)
    bus.subscribe("x.y", recorder(seen, "high"), priority="high")
    bus.subscribe("*", recorder(seen, "normal-2"), priority=Priority.NORMAL)
    bus.publish("x.y", None)
    assert [entry.partition(":")[0] for entry in seen] == ["critical", "high", "normal-1", "normal-2", "low"]
    assert [p.rank for p in Priority] == [3, 2, 1, 0]


def test_once_delivers_a_single_event() -> None:
    bus, _ = make_bus()
    seen: list[str] = []
    subscription = bus.subscribe("tick", recorder(seen, "once"), once=True)
    assert subscription.active
    bus.publish("tick", 1)
    bus.publish("tick", 2)
    assert seen == ["once:tick"]
    assert not subscription.active
    assert bus.subscriptions == ()


def test_filter_selects_events_and_once_waits_for_a_match() -> None:
    bus, _ = make_bus()
    got: list[int] = []
    bus.subscribe("n", lambda event: got.append(event.payload), filter=lambda event: event.payload % 2 == 0)
    first_big: list[int] = []
    bus.subscribe("n", lambda event: first_big.append(event.payload), once=True, filter=lambda event: event.payload > 2)
    for n in range(6):
        bus.publish("n", n)
    assert got == [0, 2, 4]
    assert first_big == [3]
    assert bus.stats.delivered == 4


def test_unsubscribe_is_idempotent_and_takes_effect_during_dispatch() -> None:
    bus, _ = make_bus()
    seen: list[str] = []
    later = bus.subscribe("e", recorder(seen, "later"), priority=Priority.LOW)

    def first(event: BusEvent[Any]) -> None:
        seen.append("first")
        later.unsubscribe()

    subscription = bus.subscribe("e", first)
    bus.publish("e", None)
    assert seen == ["first"]  # `later` was unsubscribed before its turn came
    subscription.unsubscribe()
    subscription.unsubscribe()
    bus.publish("e", None)
    assert seen == ["first"]
    assert "active=False" in repr(subscription)


def test_replay_delivers_recent_history_with_a_limit_then_live_events() -> None:
    bus, _ = make_bus()
    for n in range(5):
        bus.publish("step", n)
    bus.publish("other", "x")
    got: list[int] = []
    bus.subscribe("step", lambda event: got.append(event.payload), replay=True, replay_limit=2)
    assert got == [3, 4]
    bus.publish("step", 5)
    assert got == [3, 4, 5]

    everything: list[int] = []
    bus.subscribe("step", lambda event: everything.append(event.payload), replay=True)
    assert everything == [0, 1, 2, 3, 4, 5]

    evens: list[int] = []
    bus.subscribe(
        "step",
        lambda event: evens.append(event.payload),
        replay=True,
        replay_limit=2,
        filter=lambda e: e.payload % 2 == 0,
    )
    assert evens == [2, 4]  # the limit counts events that pass the filter

    first: list[int] = []
    bus.subscribe("step", lambda event: first.append(event.payload), replay=True, once=True)
    assert first == [0]

    none: list[int] = []
    bus.subscribe("step", lambda event: none.append(event.payload), replay=True, replay_limit=0)
    assert none == []


def test_history_expires_after_its_ttl_and_is_bounded() -> None:
    bus, clock = make_bus(history_limit=3, history_ttl=timedelta(minutes=5))
    bus.publish("a", 1)
    clock.advance(timedelta(minutes=3))
    bus.publish("b", 2)
    assert [event.type for event in bus.history()] == ["a", "b"]
    clock.advance(timedelta(minutes=2))  # "a" is now exactly 5 minutes old
    assert [event.type for event in bus.history()] == ["b"]
    replayed: list[str] = []
    bus.subscribe("*", lambda event: replayed.append(event.type), replay=True)
    assert replayed == ["b"]
    for name in ("c", "d", "e"):
        bus.publish(name, None)
    assert [event.type for event in bus.history()] == ["c", "d", "e"]
    assert [event.type for event in bus.history("d", limit=5)] == ["d"]
    assert [event.type for event in bus.history(limit=2)] == ["d", "e"]
    assert bus.history(limit=0) == []


def test_history_can_be_disabled() -> None:
    bus, _ = make_bus(history_limit=0)
    bus.publish("a", 1)
    assert bus.history() == []


@pytest.mark.parametrize(
    "kwargs",
    [{"history_limit": -1}, {"history_ttl": timedelta(0)}, {"max_concurrent_handlers": 0}],
)
def test_invalid_configuration_is_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must|cannot"):
        EventBus(**kwargs)


def test_wait_for_returns_the_next_matching_event() -> None:
    bus, _ = make_bus()
    bus.publish("tool.finished", "old")  # already published: not "next"

    async def scenario() -> BusEvent[Any]:
        async def publish_later() -> None:
            await asyncio.sleep(0)
            bus.publish("tool.finished", "skip")
            bus.publish("run.started", "other type")
            bus.publish("tool.finished", "wanted")

        task = asyncio.create_task(publish_later())
        event = await bus.wait_for("tool.*", timeout=5, filter=lambda event: event.payload != "skip")
        await task
        return event

    event = asyncio.run(scenario())
    assert event.payload == "wanted"
    assert bus.subscriptions == ()


def test_wait_for_times_out() -> None:
    bus, _ = make_bus()

    async def scenario() -> None:
        with pytest.raises(TimeoutError, match=r"no event matching 'never\.\*' within 0.01 s"):
            await bus.wait_for("never.*", timeout=0.01)

    asyncio.run(scenario())
    assert bus.subscriptions == ()


def test_failing_handlers_and_filters_do_not_break_the_publisher(caplog: pytest.LogCaptureFixture) -> None:
    bus, _ = make_bus()
    seen: list[str] = []

    def broken(event: BusEvent[Any]) -> None:
        raise RuntimeError("handler bug")

    def broken_filter(event: BusEvent[Any]) -> bool:
        raise KeyError("filter bug")

    bus.subscribe("e", broken, priority=Priority.CRITICAL)
    bus.subscribe("e", recorder(seen, "never"), filter=broken_filter)
    bus.subscribe("e", recorder(seen, "ok"), priority=Priority.LOW)
    with caplog.at_level(logging.ERROR, logger="runtime_control.bus"):
        bus.publish("e", None)
    assert seen == ["ok:e"]
    assert bus.stats.handler_errors == 2
    messages = [record.getMessage() for record in caplog.records if record.name == "runtime_control.bus"]
    assert any("handler" in message and "failed on e event bus_000001" in message for message in messages)
    assert any("filter" in message for message in messages)
    assert all(record.exc_info for record in caplog.records if record.name == "runtime_control.bus")


def test_async_handlers_run_as_tasks_and_their_failures_are_isolated(caplog: pytest.LogCaptureFixture) -> None:
    bus, _ = make_bus()
    seen: list[str] = []

    async def slow(event: BusEvent[Any]) -> None:
        await asyncio.sleep(0)
        seen.append(f"async:{event.payload}")

    async def broken(event: BusEvent[Any]) -> None:
        await asyncio.sleep(0)
        raise ValueError("async bug")

    bus.subscribe("e", slow)
    bus.subscribe("e", broken)
    bus.subscribe("e", lambda event: seen.append(f"sync:{event.payload}"), priority=Priority.LOW)

    async def scenario() -> None:
        bus.publish("e", 1)
        assert seen == ["sync:1"]  # async handlers were started, not awaited
        await bus.drain()
        assert seen == ["sync:1", "async:1"]

    with caplog.at_level(logging.ERROR, logger="runtime_control.bus"):
        asyncio.run(scenario())
    assert bus.stats.handler_errors == 1
    assert "async bug" in caplog.text


def test_async_handler_concurrency_is_capped() -> None:
    bus, _ = make_bus(max_concurrent_handlers=3)
    running = 0
    peak = 0
    done: list[int] = []

    async def scenario() -> None:
        gate = asyncio.Event()

        async def handler(event: BusEvent[Any]) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await gate.wait()
            running -= 1
            done.append(event.payload)

        bus.subscribe("job", handler)
        for n in range(10):
            bus.publish("job", n)
        for _ in range(5):
            await asyncio.sleep(0)
        assert running == 3
        gate.set()
        await bus.drain()

    asyncio.run(scenario())
    assert peak == 3
    assert sorted(done) == list(range(10))


def test_async_handler_published_outside_an_event_loop_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    bus, _ = make_bus()

    async def handler(event: BusEvent[Any]) -> None:
        raise AssertionError("must not run")

    bus.subscribe("e", handler)
    with caplog.at_level(logging.ERROR, logger="runtime_control.bus"):
        bus.publish("e", None)  # the coroutine is closed, so no "never awaited" warning either
    assert bus.stats.handler_errors == 1
    assert "publish from a running event loop" in caplog.text


def test_subscription_made_in_a_loop_is_delivered_on_that_loop_from_other_threads() -> None:
    bus, _ = make_bus()
    threads: list[int] = []

    async def scenario() -> BusEvent[Any]:
        bus.subscribe("cross", lambda event: threads.append(threading.get_ident()))
        waiter = asyncio.ensure_future(bus.wait_for("cross", timeout=5))
        await asyncio.sleep(0)
        publisher = threading.Thread(target=bus.publish, args=("cross", "from a thread"))
        publisher.start()
        event = await waiter
        await asyncio.to_thread(publisher.join)
        return event

    event = asyncio.run(scenario())
    assert event.payload == "from a thread"
    assert threads == [threading.get_ident()]  # ran on the loop's thread, not the publisher's


def test_event_sink_conformance_with_recorded_run_log_events() -> None:
    bus, _ = make_bus()
    assert isinstance(bus, EventSink)
    received: list[BusEvent[Any]] = []
    bus.subscribe("*", received.append)

    async def record() -> list[Event]:
        store = InMemoryRunStore(clock=ManualClock(T0))
        agent = AgentSpec(name="coder", model="scripted:demo")
        created = EventDraft.of(RunCreatedPayload(agent=agent, task="fix it"), id="evt_1", ts=T0, agent_id="coder")
        await store.create_run("run_1", created)
        lease = await store.acquire_lease("run_1", "worker", ttl=timedelta(minutes=1))
        call = ToolCall(id="call_1", name="file:read", arguments={"path": "README.md"})
        drafts = [
            EventDraft.of(TurnStartedPayload(), id="evt_2", ts=T0, agent_id="coder", turn=1),
            EventDraft.of(
                ToolCalledPayload(call=call), id="evt_3", ts=T0, agent_id="coder", turn=1, tool_call_id="call_1"
            ),
            EventDraft.of(
                RunFailedPayload(reason="no_completion", message="stopped"), id="evt_4", ts=T0, agent_id="coder", turn=1
            ),
        ]
        await store.append(lease, drafts)
        return list(await store.read_events("run_1"))

    events = asyncio.run(record())
    bus.emit(events)
    assert [event.type for event in received] == ["run.created", "turn.started", "tool.called", "run.failed"]
    assert [event.payload for event in received] == events
    assert [event.id for event in received] == ["evt_1", "evt_2", "evt_3", "evt_4"]
    assert {(event.correlation_id, event.source, event.timestamp) for event in received} == {("run_1", "coder", T0)}
    assert [event.priority for event in received] == [Priority.NORMAL] * 3 + [Priority.HIGH]
    assert [event.payload.seq for event in bus.history("tool.*")] == [3]


def test_stream_iterates_matching_events_and_closes() -> None:
    bus, _ = make_bus()

    async def scenario() -> list[str]:
        collected: list[str] = []
        async with bus.stream("tool.*") as events:
            bus.publish("tool.called", "a")
            bus.publish("run.started", "ignored")
            bus.publish("tool.finished", "b")

            async def later() -> None:
                await asyncio.sleep(0)
                bus.publish("tool.failed", "c")

            task = asyncio.create_task(later())
            async for event in events:
                collected.append(f"{event.type}={event.payload}")
                if len(collected) == 3:
                    break
            await task
        assert events.closed
        assert [event async for event in events] == []
        assert bus.subscriptions == ()
        return collected

    assert asyncio.run(scenario()) == ["tool.called=a", "tool.finished=b", "tool.failed=c"]


def test_stream_close_wakes_a_waiting_consumer() -> None:
    bus, _ = make_bus()

    async def scenario() -> list[BusEvent[Any]]:
        events = bus.stream("x")

        async def consume() -> list[BusEvent[Any]]:
            return [event async for event in events]

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        await events.aclose()
        return await task

    assert asyncio.run(scenario()) == []


def test_stream_drops_the_oldest_events_when_full() -> None:
    bus, _ = make_bus()

    async def scenario() -> list[int]:
        async with bus.stream("n", maxsize=2) as events:
            for n in range(5):
                bus.publish("n", n)
            assert events.dropped == 3
            return [(await anext(events)).payload, (await anext(events)).payload]

    assert asyncio.run(scenario()) == [3, 4]
    assert bus.stats.dropped == 3


def test_stream_with_error_policy_yields_the_queue_then_raises() -> None:
    bus, _ = make_bus()

    async def scenario() -> list[int]:
        got: list[int] = []
        events = bus.stream("n", maxsize=2, overflow=OverflowPolicy.ERROR)
        for n in range(3):
            bus.publish("n", n)
        assert events.closed
        assert bus.subscriptions == ()

        async def consume() -> None:
            async for event in events:
                got.append(event.payload)

        with pytest.raises(StreamOverflowError, match="overflowed its queue of 2 events") as caught:
            await consume()
        assert (caught.value.pattern, caught.value.maxsize) == ("n", 2)
        return got

    assert asyncio.run(scenario()) == [0, 1]


def test_stream_replays_history_and_filters() -> None:
    bus, _ = make_bus()
    for n in range(4):
        bus.publish("n", n)

    async def scenario() -> list[int]:
        async with bus.stream("n", replay=True, replay_limit=1, filter=lambda e: e.payload % 2 == 1) as events:
            bus.publish("n", 5)
            bus.publish("n", 6)
            return [(await anext(events)).payload, (await anext(events)).payload]

    assert asyncio.run(scenario()) == [3, 5]


def test_stream_needs_a_running_loop_and_a_positive_size() -> None:
    bus, _ = make_bus()
    with pytest.raises(RuntimeError, match="no running event loop"):
        bus.stream("x")

    async def scenario() -> None:
        with pytest.raises(ValueError, match="maxsize"):
            bus.stream("x", maxsize=0)

    asyncio.run(scenario())
