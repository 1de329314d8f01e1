"""The HTTP API end to end: a real server (``python -m runtime_facade.api``) on 127.0.0.1, driven with httpx."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from runtime_facade.api.sse import _error_message
from tests.e2e._api_support import ApiServer, SseMessage, complete, read_sse, step, wait_for, write_agent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    running = ApiServer(tmp_path_factory.mktemp("api")).start()
    yield running
    running.stop()


@pytest.fixture
def client(server: ApiServer) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def _simple_agent(server: ApiServer, name: str, *, delay_s: float = 0.0) -> str:
    steps = [
        step(("file:list", {"path": "."}), delay_s=delay_s),
        step(("file:write", {"path": f"{name}.txt", "content": "hello"}), delay_s=delay_s),
        step(("complete_task", {"summary": "listed and wrote"}), delay_s=delay_s),
    ]
    return write_agent(server.directory, name, steps)


def _start(client: httpx.Client, agent: str, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/runs", json={"agent": agent, "task": "list the files", **body})
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/v1/runs/{run['id']}"
    return run


def _stream(client: httpx.Client, run_id: str, *, limit: int | None = None, **headers: str) -> list[SseMessage]:
    with client.stream("GET", f"/v1/runs/{run_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return read_sse(response, limit=limit)


def _stored_seqs(client: httpx.Client, run_id: str) -> list[int]:
    response = client.get(f"/v1/runs/{run_id}/events", headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text
    return [event["seq"] for event in response.json()["events"]]


def _stored_types(client: httpx.Client, run_id: str) -> list[str]:
    response = client.get(f"/v1/runs/{run_id}/events", headers={"Accept": "application/json"})
    return [event["type"] for event in response.json()["events"]]


def _error(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == kind
    assert error["message"]
    return error


# -- health, authentication ------------------------------------------------------------------------------


def test_health_needs_no_token(server: ApiServer) -> None:
    with server.client(token=None) as anonymous:
        response = anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_routes_refuse_a_missing_or_wrong_token(server: ApiServer) -> None:
    with server.client(token=None) as anonymous:
        missing = anonymous.get("/v1/runs")
        metrics = anonymous.get("/metrics")
        schema = anonymous.get("/openapi.json")
    with server.client(token="not-the-token") as impostor:
        wrong = impostor.post("/v1/approvals/some-id", json={"decision": "allow"})
    _error(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    _error(metrics, 401, "unauthorized")
    _error(wrong, 401, "unauthorized")
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert schema.status_code == 200
    assert schema.json()["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


# -- runs and their events --------------------------------------------------------------------------------


def test_a_run_streams_to_completion_as_server_sent_events(server: ApiServer, client: httpx.Client) -> None:
    run = _start(client, _simple_agent(server, "streamed"))

    messages = _stream(client, run["id"])

    seqs = [int(message.id or 0) for message in messages]
    assert seqs == list(range(1, len(seqs) + 1))
    assert seqs == _stored_seqs(client, run["id"])
    assert messages[0].event == "run.created"
    assert messages[-1].event == "run.completed"
    for message in messages:
        event = message.json()
        assert (event["seq"], event["type"], event["run_id"]) == (int(message.id or 0), message.event, run["id"])
    assert client.get(f"/v1/runs/{run['id']}").json()["status"] == "completed"
    assert (server.directory / "workspace" / "streamed.txt").read_text() == "hello"


def test_the_schema_describes_each_kind_of_stream_message(server: ApiServer, client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    events = document["paths"]["/v1/runs/{run_id}/events"]["get"]["responses"]["200"]["content"]
    message_schema = events["text/event-stream"]["schema"]
    run = _start(client, _simple_agent(server, "described"))
    error = SseMessage(None, *_sse_fields(_error_message("the event stream failed: boom")))

    for message in [*_stream(client, run["id"]), error]:
        fields = {key: value for key, value in vars(message).items() if value is not None}
        (kind,) = [branch for branch in message_schema["oneOf"] if Draft202012Validator(branch).is_valid(fields)]
        # The data is JSON of the component the message's kind names (resolved in the whole document).
        content = {**document, "$ref": kind["properties"]["data"]["contentSchema"]["$ref"]}
        Draft202012Validator(content).validate(message.json())
        assert content["$ref"].endswith("/ErrorBody" if message.event == "error" else "/Event")


def _sse_fields(raw: bytes) -> tuple[str, str]:
    fields = dict(line.split(": ", 1) for line in raw.decode().splitlines() if line)
    return fields["event"], fields["data"]


def test_reconnecting_with_last_event_id_loses_and_repeats_nothing(server: ApiServer, client: httpx.Client) -> None:
    run = _start(client, _simple_agent(server, "reconnected", delay_s=0.3))

    first = _stream(client, run["id"], limit=3)  # the client drops the connection mid-run
    rest = _stream(client, run["id"], **{"Last-Event-ID": first[-1].id or ""})

    seqs = [int(message.id or 0) for message in first + rest]
    assert rest[-1].event == "run.completed"
    assert seqs == _stored_seqs(client, run["id"])
    # After the end: from the middle again, and nothing left after the last event (EventSource stops on 204).
    again = _stream(client, run["id"], **{"Last-Event-ID": "2"})
    assert [int(message.id or 0) for message in again] == seqs[2:]
    assert client.get(f"/v1/runs/{run['id']}/events", params={"after": 3}).status_code == 200
    done = client.get(f"/v1/runs/{run['id']}/events", headers={"Last-Event-ID": str(seqs[-1])})
    assert done.status_code == 204


def test_runs_are_listed_replayed_forked_and_protected_from_ending_twice(
    server: ApiServer, client: httpx.Client
) -> None:
    run = _start(client, _simple_agent(server, "lifecycle"), run_id="lifecycle-run-1", metadata={"ticket": 7})
    _stream(client, run["id"])

    listed = client.get("/v1/runs", params={"status": "completed", "limit": 50}).json()["runs"]
    assert run["id"] in [item["id"] for item in listed]
    assert client.get(f"/v1/runs/{run['id']}").json()["metadata"]["ticket"] == 7
    report = client.post(f"/v1/runs/{run['id']}/replay")
    assert report.status_code == 200, report.text
    assert report.json()["identical"] is True
    fork = client.post(f"/v1/runs/{run['id']}/fork", json={"at_turn": 1})
    assert fork.status_code == 201, fork.text
    assert fork.json()["id"] != run["id"]
    assert _stream(client, fork.json()["id"])[-1].event == "run.completed"
    _error(client.post(f"/v1/runs/{run['id']}/cancel", json={"reason": "too late"}), 409, "conflict")
    _error(client.post(f"/v1/runs/{run['id']}/resume"), 409, "conflict")
    _error(
        client.post("/v1/runs", json={"agent": _simple_agent(server, "x"), "task": "t", "run_id": run["id"]}),
        409,
        "conflict",
    )


def test_a_running_run_is_cancelled(server: ApiServer, client: httpx.Client) -> None:
    run = _start(client, _simple_agent(server, "cancelled", delay_s=2.0))

    response = client.post(f"/v1/runs/{run['id']}/cancel", json={"reason": "changed my mind"})

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert _stream(client, run["id"])[-1].event == "run.cancelled"


# -- bad input ---------------------------------------------------------------------------------------------


def test_bad_input_gets_typed_errors(server: ApiServer, client: httpx.Client) -> None:
    _error(client.get("/v1/runs/no-such-run"), 404, "not_found")
    _error(client.get("/v1/runs/no-such-run/events"), 404, "not_found")
    _error(client.post("/v1/approvals/no-such-approval", json={"decision": "deny"}), 404, "not_found")
    invalid = _error(
        client.post("/v1/runs", json={"agent": 'name = "a"\n[limits]\nmax_turns = 0\n', "task": "t"}),
        422,
        "invalid_agent",
    )
    assert any(problem["line"] is not None for problem in invalid["problems"])
    _error(client.post("/v1/runs", json={"agent_path": "../../etc/passwd", "task": "t"}), 422, "invalid_request")
    reading = _simple_agent(server, "x").replace("instructions = ", 'instructions_file = "/etc/passwd"\n# ')
    leaving = _error(client.post("/v1/runs", json={"agent": reading, "task": "t"}), 422, "invalid_agent")
    assert [problem["message"].endswith("must stay inside") for problem in leaving["problems"]] == [True], leaving
    nul = _simple_agent(server, "x").replace('workspace = "workspace"', 'workspace = "a\\u0000b"')
    _error(client.post("/v1/runs", json={"agent": nul, "task": "t"}), 422, "invalid_agent")
    outside = {"agent": _simple_agent(server, "x"), "task": "t", "workspace": "/"}
    _error(client.post("/v1/runs", json=outside), 422, "invalid_request")
    _error(client.post("/v1/runs", json={"agent_path": "missing.toml", "task": "t"}), 422, "invalid_agent")
    both = _error(client.post("/v1/runs", json={"agent": "x", "agent_path": "y", "task": "t"}), 422, "invalid_request")
    assert "not both" in both["message"]
    missing = _error(client.post("/v1/runs", json={"agent": "x"}), 422, "invalid_request")
    assert [problem["location"] for problem in missing["problems"]] == ["body.task"]
    _error(
        client.post("/v1/runs", content=b"{not json", headers={"Content-Type": "application/json"}),
        422,
        "invalid_request",
    )
    _error(client.get("/v1/runs", params={"limit": 0}), 422, "invalid_request")
    _error(client.get("/v1/runs/x/events", headers={"Last-Event-ID": "abc"}), 422, "invalid_request")


# -- approvals ---------------------------------------------------------------------------------------------


def _asking_agent(directory: Path, name: str) -> str:
    steps = [step(("file:write", {"path": f"{name}.txt", "content": "approved"})), complete("wrote it")]
    return write_agent(directory, name, steps, ask=("file:write",))


def _pending(client: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    response = client.get("/v1/approvals", params={"run_id": run_id})
    assert response.status_code == 200, response.text
    approvals: list[dict[str, Any]] = response.json()["approvals"]
    return approvals


def test_an_approval_round_trip_lets_the_waiting_run_finish(server: ApiServer, client: httpx.Client) -> None:
    run = _start(client, _asking_agent(server.directory, "asking"))
    streamed: list[SseMessage] = []

    def follow() -> None:
        with server.client() as own:
            streamed.extend(_stream(own, run["id"]))

    follower = threading.Thread(target=follow)
    follower.start()

    (approval,) = wait_for(lambda: _pending(client, run["id"]), what="the approval request")
    assert approval["tool_call"]["name"] == "file:write"
    assert client.get(f"/v1/runs/{run['id']}").json()["status"] == "waiting_approval"
    answer = client.post(f"/v1/approvals/{approval['id']}", json={"decision": "allow", "note": "fine"})
    follower.join(timeout=30)

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "allowed"
    assert not follower.is_alive()
    types = [message.event for message in streamed]
    assert types[-1] == "run.completed"
    assert "approval.requested" in types
    assert "approval.resolved" in types
    assert (server.directory / "workspace" / "asking.txt").read_text() == "approved"
    _error(client.post(f"/v1/approvals/{approval['id']}", json={"decision": "deny"}), 409, "approval_resolved")
    assert _pending(client, run["id"]) == []
    history = client.get("/v1/approvals", params={"run_id": run["id"], "pending": False}).json()["approvals"]
    assert [item["status"] for item in history] == ["allowed"]


# -- metrics -----------------------------------------------------------------------------------------------


def test_metrics_count_the_runs(server: ApiServer, client: httpx.Client) -> None:
    run = _start(client, _simple_agent(server, "measured"))
    _stream(client, run["id"])

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "agent_runtime_runs" in response.text
    assert "agent_runtime_turns" in response.text
    assert "gen_ai_client_token_usage" in response.text


# -- restarts ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("moment", ["waiting for an approval", "between model calls"])
def test_a_run_of_a_killed_server_resumes_after_a_restart(tmp_path: Path, moment: str) -> None:
    server = ApiServer(tmp_path).start()
    try:
        with server.client() as client:
            if moment == "waiting for an approval":
                run = _start(client, _asking_agent(tmp_path, "interrupted"))
                wait_for(lambda: _pending(client, run["id"]), what="the approval request")
            else:
                # Killed while the model "thinks" about its second reply (the resumed run asks again).
                steps = [step(("file:list", {"path": "."})), step(("file:list", {"path": "."}), delay_s=3), complete()]
                run = _start(client, write_agent(tmp_path, "interrupted", steps))
                wait_for(lambda: "turn.finished" in _stored_types(client, run["id"]), what="the first turn")
        server.kill()
        server.start()
        with server.client() as client:
            assert client.get(f"/v1/runs/{run['id']}").json()["status"] not in ("completed", "failed", "cancelled")
            resumed = client.post(f"/v1/runs/{run['id']}/resume", json={"steal": True})
            assert resumed.status_code == 200, resumed.text
            if moment == "waiting for an approval":
                for approval in wait_for(lambda: _pending(client, run["id"]), what="the approval request"):
                    answer = client.post(f"/v1/approvals/{approval['id']}", json={"decision": "allow"})
                    assert answer.status_code == 200, answer.text
            messages = _stream(client, run["id"])
            assert messages[-1].event == "run.completed"
            assert client.get(f"/v1/runs/{run['id']}").json()["status"] == "completed"
            seqs = _stored_seqs(client, run["id"])
            assert seqs == list(range(1, len(seqs) + 1))
    finally:
        server.stop()


# -- binding -----------------------------------------------------------------------------------------------


def test_without_a_token_the_server_refuses_other_than_loopback(tmp_path: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "runtime_facade.api", "--host", "0.0.0.0", "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "refusing to serve on 0.0.0.0 without a bearer token" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_without_a_token_loopback_is_served_openly(tmp_path: Path) -> None:
    server = ApiServer(tmp_path, token=None).start()
    try:
        with server.client(token=None) as anonymous:
            assert anonymous.get("/v1/runs").status_code == 200
        assert "serving without authentication" in server.log.read_text()
    finally:
        server.stop()


def test_the_public_surface() -> None:
    import runtime_facade.api as api

    assert sorted(api.__all__) == sorted(name for name in api.__all__ if hasattr(api, name))
    assert {"create_app", "serve", "PrometheusExport", "ErrorBody"} <= set(api.__all__)
