"""Token and cost accounting."""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

from pydantic import Field, NonNegativeInt, field_validator

from runtime_core._base import FrozenModel, trusted

__all__ = ["Pricing", "Usage"]


class Usage(FrozenModel):
    """Tokens and cost consumed by one or more model calls.

    Instances add up with ``+``; `Usage()` is the zero.
    """

    input_tokens: NonNegativeInt = 0
    output_tokens: NonNegativeInt = 0
    cached_input_tokens: NonNegativeInt = Field(default=0, description="Part of input_tokens served from cache.")
    requests: NonNegativeInt = 0
    cost_usd: float = Field(default=0.0, ge=0.0)

    @field_validator("cost_usd")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("cost_usd must be finite")
        return value

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = self.cost_usd + other.cost_usd
        if not math.isfinite(cost):
            raise ValueError("cost_usd overflowed")
        # Sums of valid counts are valid: skip validation, which costs more than the additions.
        return trusted(
            Usage,
            {
                "input_tokens": self.input_tokens + other.input_tokens,
                "output_tokens": self.output_tokens + other.output_tokens,
                "cached_input_tokens": self.cached_input_tokens + other.cached_input_tokens,
                "requests": self.requests + other.requests,
                "cost_usd": cost,
            },
        )


@runtime_checkable
class Pricing(Protocol):
    """Prices model usage (the control plane's model catalog is one)."""

    def cost(self, model: str, usage: Usage) -> float:
        """Return the USD cost of `usage` on `model` (``"provider:model"``).

        Raises:
            NotFoundError: The model has no price.
        """
        ...
