"""Budgets (what a run may spend) and budget state (what it has spent), stored in checkpoints.

The arithmetic lives on `BudgetState` as pure methods (each returns a new state), so every driver
reserves, settles, judges and carves the same way, and a budget survives resume in the checkpoint.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from runtime_core._base import FrozenModel
from runtime_core.usage import Usage

__all__ = ["Budget", "BudgetLevel", "BudgetState", "BudgetVerdict"]


class Budget(FrozenModel):
    """Hard limits on what a run may consume; ``None`` means unlimited.

    Reaching ``soft_ratio`` of any limit triggers the recovery turn; reaching the limit itself stops the
    run with reason ``budget_exhausted``.
    """

    max_tokens: PositiveInt | None = None
    max_cost_usd: PositiveFloat | None = None
    max_turns: PositiveInt | None = None
    max_wall_time_s: PositiveFloat | None = None
    max_tool_calls: PositiveInt | None = None
    soft_ratio: float = Field(default=0.9, gt=0.0, le=1.0)


class BudgetLevel(StrEnum):
    """How close a budget is to its limits."""

    OK = "ok"
    SOFT = "soft"
    """At least ``soft_ratio`` of a limit is used: time for the recovery turn."""
    HARD = "hard"
    """A limit is reached: the run stops with ``budget_exhausted``."""


class BudgetVerdict(FrozenModel):
    """A budget judged against its limits: the worst level over every limit, and which limit it was."""

    level: BudgetLevel = BudgetLevel.OK
    limit: str | None = Field(default=None, description="tokens, cost_usd, turns, wall_time_s or tool_calls.")
    used: float = 0.0
    maximum: float | None = None

    @property
    def message(self) -> str:
        """A sentence for the run log and the user."""
        if self.level is BudgetLevel.OK or self.limit is None or self.maximum is None:
            return "within budget"
        verb = "reached" if self.level is BudgetLevel.HARD else "nearly reached"
        return f"the {self.limit} budget is {verb}: {_number(self.used)} of {_number(self.maximum)}"


def _number(value: float) -> str:
    """Counts in full (``1234567``), amounts with up to six significant digits (``0.0042``)."""
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def _lower(mine: float | None, left: float | None) -> float | None:
    if left is None:
        return mine
    return left if mine is None else min(mine, left)


class BudgetState(FrozenModel):
    """A budget together with what has been spent and reserved against it.

    Model calls `reserve` an estimate before they run and `settle` to the reported usage afterwards, so
    ``reserved_*`` is non-zero only while a call is in flight; reservations count as spent when judging.
    """

    budget: Budget = Budget()
    spent: Usage = Usage()
    turns: NonNegativeInt = 0
    tool_calls: NonNegativeInt = 0
    wall_time_s: NonNegativeFloat = 0.0
    reserved_tokens: NonNegativeInt = 0
    reserved_cost_usd: NonNegativeFloat = 0.0

    def _used(self) -> list[tuple[str, float, float | None]]:
        budget = self.budget
        return [
            ("tokens", self.spent.total_tokens + self.reserved_tokens, budget.max_tokens),
            ("cost_usd", self.spent.cost_usd + self.reserved_cost_usd, budget.max_cost_usd),
            ("turns", self.turns, budget.max_turns),
            ("wall_time_s", self.wall_time_s, budget.max_wall_time_s),
            ("tool_calls", self.tool_calls, budget.max_tool_calls),
        ]

    def reserve(self, *, tokens: int, cost_usd: float = 0.0) -> BudgetState:
        """Hold an estimate before a model call (released by `settle`)."""
        return self.model_copy(update={"reserved_tokens": tokens, "reserved_cost_usd": cost_usd})

    def settle(self, usage: Usage) -> BudgetState:
        """Replace the reservation with what the call really used."""
        return self.model_copy(update={"spent": self.spent + usage, "reserved_tokens": 0, "reserved_cost_usd": 0.0})

    def count(self, *, turns: int = 0, tool_calls: int = 0, wall_time_s: float = 0.0) -> BudgetState:
        """Add turns, tool calls and elapsed wall time."""
        return self.model_copy(
            update={
                "turns": self.turns + turns,
                "tool_calls": self.tool_calls + tool_calls,
                "wall_time_s": self.wall_time_s + wall_time_s,
            }
        )

    def verdict(self) -> BudgetVerdict:
        """Judge the state: ``hard`` if any limit is reached, else ``soft`` past any soft ratio, else ``ok``."""
        worst = BudgetVerdict()
        for name, used, maximum in self._used():
            if maximum is None:
                continue
            if used >= maximum:
                return BudgetVerdict(level=BudgetLevel.HARD, limit=name, used=used, maximum=maximum)
            if worst.level is BudgetLevel.OK and used >= maximum * self.budget.soft_ratio:
                worst = BudgetVerdict(level=BudgetLevel.SOFT, limit=name, used=used, maximum=maximum)
        return worst

    def carve(self, requested: Budget | None = None) -> Budget:
        """A child run's budget: what it asks for, never more than this state has left of a shared limit.

        Tokens, cost, wall time and tool calls are shared with the parent; turns are the child's own (the
        child's ``max_turns`` is what it asks for). A shared limit that is already used up leaves the
        child the smallest positive amount, so that the child stops at once with ``budget_exhausted``.
        The stricter of the two ``soft_ratio`` values applies.
        """
        requested = requested or Budget()
        left = {name: None if maximum is None else max(0.0, maximum - used) for name, used, maximum in self._used()}
        tokens = _lower(requested.max_tokens, left["tokens"])
        cost = _lower(requested.max_cost_usd, left["cost_usd"])
        turns = requested.max_turns
        wall = _lower(requested.max_wall_time_s, left["wall_time_s"])
        calls = _lower(requested.max_tool_calls, left["tool_calls"])
        return Budget(
            max_tokens=None if tokens is None else max(1, int(tokens)),
            max_cost_usd=None if cost is None else max(cost, 1e-9),
            max_turns=None if turns is None else max(1, int(turns)),
            max_wall_time_s=None if wall is None else max(wall, 1e-3),
            max_tool_calls=None if calls is None else max(1, int(calls)),
            soft_ratio=min(requested.soft_ratio, self.budget.soft_ratio),
        )

    def absorb(self, child: BudgetState) -> BudgetState:
        """Roll a finished child's consumption up into this (its parent's) state.

        Usage and tool calls add up; turns are the child's own, and its wall time already passed on the
        parent's clock.
        """
        return self.model_copy(
            update={"spent": self.spent + child.spent, "tool_calls": self.tool_calls + child.tool_calls}
        )
