"""Backend fixtures: the conformance suite runs once per provider (openai, anthropic, scripted)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.execution.providers.fakes import Backend, FakeAPI, HTTPBackend, ScriptedBackend


def _backend(name: str) -> Iterator[Backend]:
    if name == "scripted":
        yield ScriptedBackend()
        return
    with FakeAPI(name) as api:
        yield HTTPBackend(api)


@pytest.fixture(params=["openai", "anthropic", "scripted"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Every provider, its "server" scripted through `Backend.queue`."""
    yield from _backend(request.param)


@pytest.fixture(params=["openai", "anthropic"])
def http_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The providers that speak HTTP (wire-format failures apply only to them)."""
    yield from _backend(request.param)
