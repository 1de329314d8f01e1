"""Every persisted model survives a round trip through Python data and through JSON."""

from __future__ import annotations

import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import runtime_core
from runtime_core._base import FrozenModel
from runtime_core.events import EventPayload

from .strategies import models


def _all_models() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    pending = list(FrozenModel.__subclasses__())
    while pending:
        model = pending.pop()
        found.append(model)
        pending.extend(model.__subclasses__())
    return sorted(found, key=lambda m: m.__name__)


MODELS = _all_models()
PAYLOADS = typing.get_args(typing.get_args(EventPayload)[0])


def test_every_model_is_public_and_covered() -> None:
    # A model added to runtime_core is round-tripped automatically; make sure none hides from users.
    assert len(MODELS) > 50
    private = [
        m.__name__ for m in MODELS if m.__module__.startswith("runtime_core") and m.__name__ not in runtime_core.__all__
    ]
    assert private == []


def test_every_event_type_has_exactly_one_payload() -> None:
    payload_types = sorted(typing.get_args(p.model_fields["type"].annotation)[0] for p in PAYLOADS)
    assert payload_types == sorted(t.value for t in runtime_core.EventType)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_round_trip(model: type[BaseModel], data: st.DataObject) -> None:
    value = data.draw(models(model))
    assert model.model_validate(value.model_dump()) == value
    assert model.model_validate_json(value.model_dump_json()) == value
