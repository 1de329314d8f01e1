"""Shared pydantic configuration for the persisted models of runtime_core."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

_set_attribute = object.__setattr__


class FrozenModel(BaseModel):
    """Immutable model that rejects unknown fields.

    Every persisted or transmitted model of the runtime derives from it: a run log entry must mean
    exactly what it meant when it was written, so instances never change and typos in field names
    fail validation instead of vanishing.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")


_M = TypeVar("_M", bound=FrozenModel)
_ALL_FIELDS: dict[type[FrozenModel], set[str]] = {}
"""Per class, the ``model_fields_set`` of its trusted instances: every field, one set shared by all of them."""


def trusted(cls: type[_M], fields: dict[str, Any]) -> _M:
    """Build `cls` from a complete dict of already valid field values, without validation.

    For the hot path only (the run log writer places thousands of events per second): every field must
    be present and valid, which the caller guarantees. It does what ``BaseModel.model_construct`` does
    for a model without defaults to fill in, aliases, extras or private attributes, several times faster.
    """
    instance = cls.__new__(cls)
    _set_attribute(instance, "__dict__", fields)
    # Shared, not copied: a frozen model never adds to its fields set (pydantic's copies get their own), and
    # a set of every field name per event is memory the run log would otherwise keep for each event.
    all_fields = _ALL_FIELDS.get(cls)
    if all_fields is None:
        all_fields = _ALL_FIELDS[cls] = set(cls.model_fields)
    _set_attribute(instance, "__pydantic_fields_set__", all_fields)
    _set_attribute(instance, "__pydantic_extra__", None)
    _set_attribute(instance, "__pydantic_private__", None)
    return instance
