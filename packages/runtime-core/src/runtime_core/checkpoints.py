"""Turn checkpoints: per-turn deltas with periodic full snapshots.

A checkpoint row holds either the *delta* of one turn (the messages it added, its usage, phase and
budget changes) or a *snapshot* of the whole state after that turn. Loading folds the nearest snapshot
with the deltas after it, so writing a turn costs in proportion to that turn's data, never to the length
of the history.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, JsonValue, NonNegativeInt, model_validator

from runtime_core._base import FrozenModel, trusted
from runtime_core.budgets import BudgetState
from runtime_core.exceptions import CheckpointChainError
from runtime_core.messages import AssistantMessage, Message, ToolResultMessage
from runtime_core.tools import ToolCall
from runtime_core.usage import Usage

__all__ = [
    "Checkpoint",
    "CheckpointDelta",
    "CheckpointSnapshot",
    "CheckpointState",
    "CheckpointStatus",
    "TurnDelta",
    "check_chain",
    "fold_checkpoints",
]


class CheckpointStatus(StrEnum):
    """Whether the turn a checkpoint describes has finished."""

    OPEN = "open"
    """Created at turn start and updated at each tool call and result."""
    FINAL = "final"
    """Finalised at turn end."""


class TurnDelta(FrozenModel):
    """What one turn changed. ``None`` fields mean "unchanged"."""

    messages: tuple[Message, ...] = ()
    usage: Usage = Usage()
    sop_phase: str | None = None
    budget: BudgetState | None = None
    variables: dict[str, JsonValue] = Field(default_factory=dict)


class CheckpointState(FrozenModel):
    """The full resumable state of a run after a turn."""

    turn: NonNegativeInt = 0
    messages: tuple[Message, ...] = ()
    usage: Usage = Usage()
    sop_phase: str | None = None
    budget: BudgetState | None = None
    variables: dict[str, JsonValue] = Field(default_factory=dict)

    def apply(self, turn: int, delta: TurnDelta) -> CheckpointState:
        """Return the state after applying `delta` as turn `turn`."""
        return _state(
            turn,
            self.messages + delta.messages,
            self.usage + delta.usage,
            delta.sop_phase if delta.sop_phase is not None else self.sop_phase,
            delta.budget if delta.budget is not None else self.budget,
            {**self.variables, **delta.variables} if delta.variables else self.variables,
        )

    @property
    def pending_tool_calls(self) -> tuple[ToolCall, ...]:
        """Tool calls requested by the model that have no result message yet."""
        answered = {m.tool_call_id for m in self.messages if isinstance(m, ToolResultMessage)}
        return tuple(
            call
            for message in self.messages
            if isinstance(message, AssistantMessage)
            for call in message.tool_calls
            if call.id not in answered
        )


class CheckpointDelta(FrozenModel):
    """A checkpoint row holding one turn's delta."""

    kind: Literal["delta"] = "delta"
    run_id: str = Field(min_length=1)
    turn: NonNegativeInt
    parent_turn: NonNegativeInt | None = None
    status: CheckpointStatus = CheckpointStatus.OPEN
    created_at: AwareDatetime
    delta: TurnDelta = TurnDelta()


class CheckpointSnapshot(FrozenModel):
    """A checkpoint row holding the full state after a turn (every K turns and after compaction)."""

    kind: Literal["snapshot"] = "snapshot"
    run_id: str = Field(min_length=1)
    turn: NonNegativeInt
    parent_turn: NonNegativeInt | None = None
    status: CheckpointStatus = CheckpointStatus.OPEN
    created_at: AwareDatetime
    state: CheckpointState

    @model_validator(mode="after")
    def _turn_matches_state(self) -> CheckpointSnapshot:
        if self.state.turn != self.turn:
            raise ValueError(f"snapshot of turn {self.turn} holds the state of turn {self.state.turn}")
        return self


Checkpoint = Annotated[CheckpointDelta | CheckpointSnapshot, Field(discriminator="kind")]
"""A checkpoint row, discriminated by ``kind``."""


def fold_checkpoints(checkpoints: Iterable[Checkpoint], *, at_turn: int | None = None) -> CheckpointState:
    """Rebuild the state from a run's checkpoint rows.

    Args:
        checkpoints: The run's rows, in ascending turn order.
        at_turn: Stop after this turn (for fork and time travel); ``None`` folds them all.

    Returns:
        The nearest snapshot's state with every later delta applied (an empty state if there are none).
    """
    rows = [c for c in checkpoints if at_turn is None or c.turn <= at_turn]
    start = 0
    state = CheckpointState()
    for index in range(len(rows) - 1, -1, -1):
        row = rows[index]
        if isinstance(row, CheckpointSnapshot):
            state, start = row.state, index + 1
            break
    deltas = rows[start:]
    if not deltas:
        return state
    # Gather everything, then build the state once: applying delta after delta would copy (and
    # validate) the growing message list every time, quadratic in the number of turns.
    messages = list(state.messages)
    usage, phase, budget, variables = state.usage, state.sop_phase, state.budget, dict(state.variables)
    for row in deltas:
        assert isinstance(row, CheckpointDelta)  # every row after the last snapshot is a delta
        delta = row.delta
        messages.extend(delta.messages)
        usage = usage + delta.usage
        phase = delta.sop_phase if delta.sop_phase is not None else phase
        budget = delta.budget if delta.budget is not None else budget
        variables.update(delta.variables)
    return _state(deltas[-1].turn, tuple(messages), usage, phase, budget, variables)


def _state(
    turn: int,
    messages: tuple[Message, ...],
    usage: Usage,
    sop_phase: str | None,
    budget: BudgetState | None,
    variables: dict[str, JsonValue],
) -> CheckpointState:
    # Every part comes from validated checkpoints: validating the (long) message list again would cost
    # more than the rest of a resume.
    return trusted(
        CheckpointState,
        {
            "turn": turn,
            "messages": messages,
            "usage": usage,
            "sop_phase": sop_phase,
            "budget": budget,
            "variables": variables,
        },
    )


def check_chain(run_id: str, checkpoint: Checkpoint, *, last_turn: int | None, last_parent: int | None) -> bool:
    """Validate a checkpoint row against a run's newest row, for run store implementations.

    Args:
        run_id: The run the row is appended to.
        checkpoint: The new row.
        last_turn: Turn of the run's newest row (``None`` when it has none).
        last_parent: Parent turn of that newest row.

    Returns:
        Whether the row replaces the newest one (the same turn, written again).

    Raises:
        CheckpointChainError: The row belongs to another run, is older than the newest, or names the
            wrong parent.
    """
    if checkpoint.run_id != run_id:
        raise CheckpointChainError(
            f"checkpoint of run {checkpoint.run_id!r} appended to run {run_id!r}",
            run_id=run_id,
            turn=checkpoint.turn,
            parent_turn=checkpoint.parent_turn,
        )
    replace = last_turn is not None and last_turn == checkpoint.turn
    if last_turn is not None and checkpoint.turn < last_turn:
        raise CheckpointChainError(
            f"checkpoint for turn {checkpoint.turn} is older than the latest (turn {last_turn})",
            run_id=run_id,
            turn=checkpoint.turn,
            parent_turn=checkpoint.parent_turn,
        )
    # Replacing a turn's row keeps its parent; a new row's parent is the newest row.
    expected_parent = last_parent if replace else last_turn
    if checkpoint.parent_turn != expected_parent:
        raise CheckpointChainError(
            f"checkpoint for turn {checkpoint.turn} names parent {checkpoint.parent_turn}, "
            f"but the previous checkpoint is {expected_parent}",
            run_id=run_id,
            turn=checkpoint.turn,
            parent_turn=checkpoint.parent_turn,
        )
    return replace
