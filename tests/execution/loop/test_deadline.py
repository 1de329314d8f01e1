"""The driver's cheap timeouts (`Watchdog`, `timeout`) behave like `asyncio.timeout`."""

from __future__ import annotations

import asyncio

import pytest

from runtime_execution.loop._deadline import Watchdog, timeout


def _watched(scenario: object) -> None:
    async def main() -> None:
        watchdog = Watchdog.watch()
        try:
            await scenario()  # type: ignore[operator]
        finally:
            watchdog.close()

    asyncio.run(main())


def test_a_section_past_its_deadline_raises_timeout_error() -> None:
    async def scenario() -> None:
        with pytest.raises(TimeoutError), timeout(0.02):
            await asyncio.sleep(5)
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
        await asyncio.sleep(0)  # no cancellation left pending

    _watched(scenario)


def test_a_short_section_after_a_long_one_still_times_out() -> None:
    async def scenario() -> None:
        with timeout(60):
            await asyncio.sleep(0)
        with pytest.raises(TimeoutError), timeout(0.02):
            await asyncio.sleep(5)

    _watched(scenario)


def test_the_timer_of_an_earlier_short_section_does_not_cut_a_later_long_one() -> None:
    async def scenario() -> None:
        with timeout(0.01):
            await asyncio.sleep(0)
        with timeout(60):
            await asyncio.sleep(0.05)  # the 0.01 s timer fires meanwhile and re-arms for 60 s

    _watched(scenario)


def test_an_inner_section_lets_the_timeout_of_its_outer_section_through() -> None:
    inner_timed_out = False

    async def nested() -> None:
        nonlocal inner_timed_out
        with timeout(0.02):
            try:
                with timeout(60):
                    await asyncio.sleep(5)
            except TimeoutError:
                inner_timed_out = True

    async def scenario() -> None:
        with pytest.raises(TimeoutError):
            await nested()
        assert not inner_timed_out

    _watched(scenario)


def test_another_cancellation_is_not_a_timeout() -> None:
    async def scenario() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().call_later(0.01, task.cancel)
        with pytest.raises(asyncio.CancelledError), timeout(60):
            await asyncio.sleep(5)
        task.uncancel()

    _watched(scenario)


def test_a_task_without_a_watchdog_gets_a_timer_for_the_section_alone() -> None:
    async def other() -> None:
        with pytest.raises(TimeoutError), timeout(0.02):
            await asyncio.sleep(5)
        with timeout(60):
            await asyncio.sleep(0)
        scheduled = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
        assert not [handle for handle in scheduled if not handle.cancelled()]

    async def scenario() -> None:
        await asyncio.create_task(other())  # the driver's watchdog is not the task's

    _watched(scenario)
