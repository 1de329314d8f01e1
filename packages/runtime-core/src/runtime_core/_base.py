"""Shared pydantic configuration for the persisted models of runtime_core."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict


class FrozenModel(BaseModel):
    """Immutable model that rejects unknown fields.

    Every persisted or transmitted model of the runtime derives from it: a run log entry must mean
    exactly what it meant when it was written, so instances never change and typos in field names
    fail validation instead of vanishing.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")


_M = TypeVar("_M", bound=FrozenModel)

# What `trusted` sets on a new instance, as the slot descriptors of `BaseModel` (calling a descriptor's
# setter directly skips the attribute lookup `object.__setattr__` does; a third of `trusted`'s time).
_new_instance = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


class _Shape:
    """What `trusted` needs to know of a model class: its fields, in order, and how to default them."""

    __slots__ = ("factories", "fields", "size", "template")

    def __init__(self, cls: type[FrozenModel]) -> None:
        # Shared by every trusted instance of the class: a frozen model never adds to its fields set
        # (pydantic's copies get their own), and a set per event is memory the run log would keep.
        self.fields = set(cls.model_fields)
        self.size = len(self.fields)
        # Every field in order with its default (`PydanticUndefined` if it has none, or a factory): merging
        # the given values into it keeps the order of the fields, which the model's JSON follows.
        self.template = {name: info.default for name, info in cls.model_fields.items()}
        self.factories = [
            (name, info.default_factory) for name, info in cls.model_fields.items() if info.default_factory is not None
        ]

    def complete(self, given: dict[str, Any]) -> dict[str, Any]:
        """`given` with the defaults of the fields it lacks, in the order of the fields."""
        fields = {**self.template, **given}
        for name, factory in self.factories:
            if name not in given:
                fields[name] = factory()  # type: ignore[call-arg]
        return fields


_SHAPES: dict[type[FrozenModel], _Shape] = {}
_checking = False


def check_trusted(enabled: bool) -> None:
    """Make `trusted` validate what it builds and raise when validation would have changed it.

    The test suite turns this on, so that every hot-path construction the suite exercises is proven to
    build exactly the model that validation would; in production `trusted` never validates.
    """
    global _checking
    _checking = enabled


def trusted(cls: type[_M], fields: dict[str, Any]) -> _M:
    """Build `cls` from already valid field values, without validation.

    For the hot path only (the agent loop records thousands of events per second from parts that are
    valid by construction): every value must be what validation would produce (the right types,
    tuples rather than lists, enum members), and a complete `fields` must be in the order of the model's
    fields (its JSON follows it), which the caller guarantees and `check_trusted` verifies under test.
    Fields left out get their defaults. It does what ``BaseModel.model_construct`` does for
    a model without aliases, extras or private attributes, several times faster.
    """
    try:
        shape = _SHAPES[cls]
    except KeyError:
        shape = _SHAPES[cls] = _Shape(cls)
    if len(fields) != shape.size:
        fields = shape.complete(fields)
    if _checking:
        _check(cls, fields)
    instance = _new_instance(cls)
    _set_dict(instance, fields)
    _set_fields_set(instance, shape.fields)
    _set_extra(instance, None)
    _set_private(instance, None)
    return instance


def _check(cls: type[FrozenModel], fields: dict[str, Any]) -> None:
    unknown = fields.keys() - cls.model_fields.keys()
    if unknown:
        raise TypeError(f"trusted {cls.__name__}: unknown fields {sorted(unknown)}")
    if list(fields) != list(cls.model_fields):
        raise TypeError(f"trusted {cls.__name__}: fields out of order {list(fields)}")
    validated = cls.model_validate(fields)
    changed = [name for name, value in validated.__dict__.items() if not _same(value, fields[name])]
    if changed:
        raise TypeError(f"trusted {cls.__name__}: validation would change {changed}")


def _same(validated: Any, given: Any) -> bool:
    return type(validated) is type(given) and validated == given
