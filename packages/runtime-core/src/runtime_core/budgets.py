"""Budgets (what a run may spend) and budget state (what it has spent), stored in checkpoints."""

from __future__ import annotations

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from runtime_core._base import FrozenModel
from runtime_core.usage import Usage

__all__ = ["Budget", "BudgetState"]


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


class BudgetState(FrozenModel):
    """A budget together with what has been spent and reserved against it.

    Model calls reserve an estimate before they run and settle to the reported usage afterwards, so
    ``reserved_*`` is non-zero only while a call is in flight.
    """

    budget: Budget = Budget()
    spent: Usage = Usage()
    turns: NonNegativeInt = 0
    tool_calls: NonNegativeInt = 0
    wall_time_s: NonNegativeFloat = 0.0
    reserved_tokens: NonNegativeInt = 0
    reserved_cost_usd: NonNegativeFloat = 0.0
