"""The agent state machine of the spec, with its recovery branch."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AgentStatus", "can_transition"]


class AgentStatus(StrEnum):
    """What the agent is doing (finer than the run's status)."""

    IDLE = "idle"
    """Not started, or paused between turns."""
    THINKING = "thinking"
    """Waiting for the model."""
    EXECUTING = "executing"
    """Running the tools the model asked for."""
    WAITING_CONFIRMATION = "waiting_confirmation"
    """A tool call waits for an approval."""
    RECOVERING = "recovering"
    """The recovery turn: only ``complete_task`` is available, under a deadline."""
    COMPLETE = "complete"
    """Finished through ``complete_task``."""
    ERROR = "error"
    """Failed or cancelled."""


_TRANSITIONS: dict[AgentStatus, frozenset[AgentStatus]] = {
    # A resumed run may pick up in the middle of a turn, with tools to run.
    AgentStatus.IDLE: frozenset(
        {AgentStatus.THINKING, AgentStatus.RECOVERING, AgentStatus.EXECUTING, AgentStatus.ERROR}
    ),
    # A turn whose calls were all refused goes from thinking straight to the next turn (or a pause).
    AgentStatus.THINKING: frozenset(
        {AgentStatus.EXECUTING, AgentStatus.IDLE, AgentStatus.RECOVERING, AgentStatus.COMPLETE, AgentStatus.ERROR}
    ),
    AgentStatus.EXECUTING: frozenset(
        {
            AgentStatus.IDLE,
            AgentStatus.THINKING,
            AgentStatus.RECOVERING,
            AgentStatus.WAITING_CONFIRMATION,
            AgentStatus.COMPLETE,
            AgentStatus.ERROR,
        }
    ),
    AgentStatus.WAITING_CONFIRMATION: frozenset({AgentStatus.EXECUTING, AgentStatus.IDLE, AgentStatus.ERROR}),
    AgentStatus.RECOVERING: frozenset({AgentStatus.COMPLETE, AgentStatus.ERROR}),
    AgentStatus.COMPLETE: frozenset(),
    AgentStatus.ERROR: frozenset(),
}


def can_transition(source: AgentStatus, target: AgentStatus) -> bool:
    """Whether the state machine allows going from `source` to `target`."""
    return target in _TRANSITIONS[source]
