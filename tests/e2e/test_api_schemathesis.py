"""Schemathesis over the served OpenAPI document: no input makes any route answer 5xx or break its schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e._api_support import TOKEN, ApiServer, complete, read_sse, step, wait_for, write_agent

_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    running = ApiServer(tmp_path_factory.mktemp("schemathesis")).start()
    with running.client() as client:
        _seed(running, client)
    yield running
    running.stop()


def _seed(server: ApiServer, client: httpx.Client) -> None:
    """A completed run and an answered approval, so that lists hold real records to check against the schema."""
    steps = [step(("file:write", {"path": "seed.txt", "content": "x"})), complete()]
    agent = write_agent(server.directory, "seed", steps, ask=("file:write",))
    run = client.post("/v1/runs", json={"agent": agent, "task": "seed", "run_id": "seed-run"}).json()

    def pending() -> list[dict[str, Any]]:
        approvals: list[dict[str, Any]] = client.get("/v1/approvals", params={"run_id": run["id"]}).json()["approvals"]
        return approvals

    (approval,) = wait_for(pending, what="the seed run's approval")
    client.post(f"/v1/approvals/{approval['id']}", json={"decision": "allow"}).raise_for_status()
    with client.stream("GET", f"/v1/runs/{run['id']}/events") as response:
        assert read_sse(response)[-1].event == "run.completed"


def _strategies(operation: Any) -> Iterator[tuple[str, Any]]:
    """Valid and invalid inputs, and for a run's routes valid inputs about a real (completed) run."""
    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
        yield mode.value, operation.as_strategy(generation_mode=mode)
    if "{run_id}" in operation.path:
        yield "seed run", operation.as_strategy(path_parameters={"run_id": "seed-run"})


def test_no_input_breaks_the_api(server: ApiServer) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    failures: dict[str, BaseException] = {}
    calls: dict[str, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 12

    for operation in operations:
        for kind, strategy in _strategies(operation):
            label = f"{operation.label} ({kind})"
            calls[label] = 0

            @settings(
                max_examples=20,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def check(case: schemathesis.Case) -> None:
                calls[label] += 1  # noqa: B023 - check() runs before label changes
                case.call_and_validate(base_url=server.url, headers=headers, checks=_CHECKS, timeout=10)

            try:
                check()
            except Unsatisfiable:  # an operation without inputs (GET /healthz) has no invalid ones
                assert kind == "negative", label
                assert not operation.body, label
            except Exception as error:  # every operation is checked, then all failures are reported together
                failures[label] = error

    assert not failures, "\n\n".join(f"{label}:\n{error}" for label, error in failures.items())
    assert sum(calls.values()) > 300, calls
