"""Shared pydantic configuration for the persisted models of runtime_core."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class FrozenModel(BaseModel):
    """Immutable model that rejects unknown fields.

    Every persisted or transmitted model of the runtime derives from it: a run log entry must mean
    exactly what it meant when it was written, so instances never change and typos in field names
    fail validation instead of vanishing.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")
