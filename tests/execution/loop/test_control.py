"""Control signals (`RunControl`) and the agent state machine (`can_transition`)."""

from __future__ import annotations

import asyncio
import time

import pytest

from runtime_execution.loop import AgentStatus, RunControl, can_transition

TERMINAL = (AgentStatus.COMPLETE, AgentStatus.ERROR)

# -- pause, resume, step ----------------------------------------------------------------------------------


def test_a_new_control_is_runnable_and_quiet() -> None:
    control = RunControl()
    assert not control.paused
    assert not control.cancelled
    assert control.cancel_reason is None
    assert control.take_thoughts() == []
    assert control.take_pause_reason() is None
    assert control.take_resume_reason() is None


def test_pause_and_resume_with_reasons_taken_once() -> None:
    control = RunControl()
    control.pause("lunch")
    assert control.paused
    assert control.take_pause_reason() == "lunch"
    assert control.take_pause_reason() is None
    control.resume("back")
    assert not control.paused
    assert control.take_resume_reason() == "back"
    assert control.take_resume_reason() is None


def test_wait_runnable_blocks_while_paused() -> None:
    async def scenario() -> None:
        control = RunControl()
        await asyncio.wait_for(control.wait_runnable(), 1)  # not paused: returns at once
        control.pause()
        waiter = asyncio.create_task(control.wait_runnable())
        await asyncio.sleep(0.02)
        assert not waiter.done()
        control.resume()
        await asyncio.wait_for(waiter, 1)

    asyncio.run(scenario())


def test_turns_do_not_pause_a_run_without_a_step() -> None:
    control = RunControl()
    for _ in range(5):
        control.turn_started()
    assert not control.paused


def test_step_runs_exactly_one_turn_then_pauses() -> None:
    control = RunControl()
    control.pause()
    control.step("one more")
    assert not control.paused
    assert control.take_resume_reason() == "one more"
    control.turn_started()
    assert control.paused
    assert control.take_pause_reason() is None
    control.turn_started()  # the count is spent: more turns change nothing
    assert control.paused
    control.step()
    control.turn_started()
    assert control.paused


def test_step_on_a_running_run_pauses_after_the_next_turn() -> None:
    control = RunControl()
    control.step()
    assert not control.paused
    control.turn_started()
    assert control.paused


def test_resume_and_pause_clear_a_pending_step() -> None:
    control = RunControl()
    control.step()
    control.resume()
    control.turn_started()
    control.turn_started()
    assert not control.paused
    control.step()
    control.pause("now")
    control.resume()
    control.turn_started()
    assert not control.paused


def test_step_wakes_a_waiting_driver() -> None:
    async def scenario() -> None:
        control = RunControl()
        control.pause()
        waiter = asyncio.create_task(control.wait_runnable())
        await asyncio.sleep(0)
        assert not waiter.done()
        control.step()
        await asyncio.wait_for(waiter, 1)

    asyncio.run(scenario())


# -- inject ----------------------------------------------------------------------------------------------


def test_injected_thoughts_queue_in_order_and_are_taken_once() -> None:
    control = RunControl()
    control.inject("first")
    control.inject("  second  ")
    assert control.take_thoughts() == ["first", "  second  "]
    assert control.take_thoughts() == []
    control.inject("third")
    assert control.take_thoughts() == ["third"]


@pytest.mark.parametrize("thought", ["", "   ", "\n\t "])
def test_blank_thoughts_are_refused(thought: str) -> None:
    control = RunControl()
    with pytest.raises(ValueError, match="blank"):
        control.inject(thought)
    assert control.take_thoughts() == []


# -- cancel ----------------------------------------------------------------------------------------------


def test_cancel_is_idempotent_and_keeps_the_first_reason() -> None:
    control = RunControl()
    control.cancel("first")
    control.cancel("second")
    assert control.cancelled
    assert control.cancel_reason == "first"


def test_cancel_without_a_bound_task_is_only_noted() -> None:
    control = RunControl()
    with control.interruptible():
        control.cancel("no task")
    assert control.cancelled


def test_cancel_wakes_a_paused_run() -> None:
    async def scenario() -> None:
        control = RunControl()
        control.pause()
        waiter = asyncio.create_task(control.wait_runnable())
        await asyncio.sleep(0)
        control.cancel("stop")
        await asyncio.wait_for(waiter, 1)
        assert not control.paused
        assert control.cancelled

    asyncio.run(scenario())


def test_cancel_outside_an_interruptible_section_does_not_interrupt() -> None:
    async def scenario() -> None:
        control = RunControl()
        log: list[str] = []

        async def driver() -> str:
            await asyncio.sleep(0.1)  # a run-log write, say: must not be interrupted
            log.append("write finished")
            return "noticed" if control.cancelled else "missed"

        task = asyncio.create_task(driver())
        control.bind(task)
        await asyncio.sleep(0.01)
        control.cancel("stop")
        assert await asyncio.wait_for(task, 2) == "noticed"
        assert not task.cancelled()
        assert log == ["write finished"]

    asyncio.run(scenario())


def test_cancel_inside_an_interruptible_section_interrupts_at_once() -> None:
    async def scenario() -> None:
        control = RunControl()
        log: list[str] = []

        async def driver() -> None:
            with control.interruptible():
                try:
                    await asyncio.sleep(30)  # a model call, say
                except asyncio.CancelledError:
                    log.append("interrupted")
                    raise
            log.append("not reached")

        task = asyncio.create_task(driver())
        control.bind(task)
        await asyncio.sleep(0.01)
        started = time.monotonic()
        control.cancel("stop")
        control.cancel("again")  # idempotent: one cancellation request, not two
        assert task.cancelling() == 1
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)
        assert time.monotonic() - started < 1
        assert task.cancelled()
        assert log == ["interrupted"]
        assert control.cancel_reason == "stop"

    asyncio.run(scenario())


def test_the_section_ends_when_its_block_ends() -> None:
    async def scenario() -> None:
        control = RunControl()
        phases: list[str] = []

        async def driver() -> str:
            with control.interruptible():
                await asyncio.sleep(0)
            phases.append("left the section")
            await asyncio.sleep(0.1)  # outside again
            return "finished"

        task = asyncio.create_task(driver())
        control.bind(task)
        await asyncio.sleep(0.02)
        assert phases == ["left the section"]
        control.cancel()
        assert await asyncio.wait_for(task, 2) == "finished"

    asyncio.run(scenario())


def test_the_section_ends_when_its_block_raises() -> None:
    async def scenario() -> None:
        control = RunControl()

        async def driver() -> str:
            with pytest.raises(KeyError), control.interruptible():
                raise KeyError("boom")
            await asyncio.sleep(0.1)
            return "finished"

        task = asyncio.create_task(driver())
        control.bind(task)
        await asyncio.sleep(0.02)
        control.cancel()
        assert await asyncio.wait_for(task, 2) == "finished"

    asyncio.run(scenario())


def test_cancel_after_the_task_finished_is_harmless() -> None:
    async def scenario() -> None:
        control = RunControl()

        async def driver() -> str:
            return "done"

        task = asyncio.create_task(driver())
        control.bind(task)
        assert await task == "done"
        with control.interruptible():
            control.cancel("late")
        assert control.cancelled
        assert not task.cancelled()

    asyncio.run(scenario())


# -- the state machine -----------------------------------------------------------------------------------


def _reachable(source: AgentStatus) -> set[AgentStatus]:
    seen: set[AgentStatus] = set()
    frontier = [source]
    while frontier:
        state = frontier.pop()
        for target in AgentStatus:
            if can_transition(state, target) and target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen


def test_the_spec_states() -> None:
    assert {status.value for status in AgentStatus} == {
        "idle",
        "thinking",
        "executing",
        "waiting_confirmation",
        "recovering",
        "complete",
        "error",
    }


@pytest.mark.parametrize("terminal", TERMINAL)
def test_terminal_states_have_no_exits(terminal: AgentStatus) -> None:
    assert [target for target in AgentStatus if can_transition(terminal, target)] == []


@pytest.mark.parametrize("state", [status for status in AgentStatus if status not in TERMINAL])
def test_every_live_state_can_fail(state: AgentStatus) -> None:
    assert can_transition(state, AgentStatus.ERROR)
    assert AgentStatus.ERROR in _reachable(state)
    assert AgentStatus.COMPLETE in _reachable(state)


def test_every_state_is_reachable_from_idle() -> None:
    assert _reachable(AgentStatus.IDLE) == set(AgentStatus)


def test_no_state_moves_to_itself() -> None:
    assert [state for state in AgentStatus if can_transition(state, state)] == []


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (AgentStatus.IDLE, AgentStatus.THINKING),
        (AgentStatus.THINKING, AgentStatus.EXECUTING),
        (AgentStatus.THINKING, AgentStatus.COMPLETE),
        (AgentStatus.THINKING, AgentStatus.IDLE),
        (AgentStatus.EXECUTING, AgentStatus.THINKING),
        (AgentStatus.EXECUTING, AgentStatus.WAITING_CONFIRMATION),
        (AgentStatus.WAITING_CONFIRMATION, AgentStatus.EXECUTING),
        (AgentStatus.EXECUTING, AgentStatus.RECOVERING),
        (AgentStatus.IDLE, AgentStatus.RECOVERING),
        (AgentStatus.IDLE, AgentStatus.EXECUTING),  # a resumed run finishing the tools of an open turn
        (AgentStatus.RECOVERING, AgentStatus.COMPLETE),
    ],
)
def test_the_loops_transitions_are_allowed(source: AgentStatus, target: AgentStatus) -> None:
    assert can_transition(source, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (AgentStatus.IDLE, AgentStatus.COMPLETE),
        (AgentStatus.RECOVERING, AgentStatus.EXECUTING),
        (AgentStatus.RECOVERING, AgentStatus.THINKING),
        (AgentStatus.WAITING_CONFIRMATION, AgentStatus.COMPLETE),
        (AgentStatus.COMPLETE, AgentStatus.ERROR),
        (AgentStatus.ERROR, AgentStatus.IDLE),
    ],
)
def test_forbidden_transitions(source: AgentStatus, target: AgentStatus) -> None:
    assert not can_transition(source, target)
