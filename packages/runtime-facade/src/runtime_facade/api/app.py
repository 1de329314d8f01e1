"""`create_app`: the FastAPI application of a `Runtime` (routes, authentication, errors, metrics)."""

from __future__ import annotations

import hmac
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Query, Request, Response, Security
from fastapi import Path as PathParameter
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import NonNegativeInt
from starlette.concurrency import run_in_threadpool

import runtime_facade
from runtime_core.approvals import Approval, ApprovalDecision, ApprovalStatus
from runtime_core.runs import Run, RunStatus
from runtime_execution import ReplayReport
from runtime_facade.agent_files import AgentDefinition, load_agent, parse_agent, resolve_inside
from runtime_facade.api.errors import ApiError, error_responses, install_error_handlers, state_conflicts
from runtime_facade.api.metrics import PrometheusExport
from runtime_facade.api.models import (
    AgentSource,
    ApprovalList,
    CancelRequest,
    CreateRunRequest,
    ErrorType,
    EventList,
    ForkRequest,
    Health,
    ReplayRequest,
    ResolveApprovalRequest,
    ResumeRequest,
    RunList,
)
from runtime_facade.api.sse import event_stream
from runtime_facade.runtime import Runtime

__all__ = ["create_app"]

# Sequence numbers and turns reach SQL: bounded so that no integer overflows a database column.
_MAX_SEQ = 2**62
_SSE = "text/event-stream"
_COMMON = (401, 422, 500, 503)
# One message of the event stream (OpenAPI 3.1 describes each message of a text/event-stream with `schema`):
# an event, or the `error` message that ends a stream that failed.
_SSE_MESSAGE = {
    "oneOf": [
        {
            "type": "object",
            "required": ["id", "event", "data"],
            "properties": {
                "id": {"type": "string", "description": "The event's seq."},
                "event": {"type": "string", "not": {"const": "error"}, "description": "The event's type."},
                "data": {
                    "type": "string",
                    "description": "The event as JSON.",
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": "#/components/schemas/Event"},
                },
            },
        },
        {
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"const": "error", "description": "The stream failed: this is its last message."},
                "data": {
                    "type": "string",
                    "description": "What failed, as JSON.",
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": "#/components/schemas/ErrorBody"},
                },
            },
        },
    ]
}
# NUL cannot be stored in (or looked up from) a PostgreSQL text column: refused before the store sees it.
_NO_NUL = r"^[^\x00]+$"
_Id = Annotated[str, PathParameter(max_length=200, pattern=_NO_NUL)]


def create_app(
    runtime: Runtime,
    *,
    token: str | None,
    agents_dir: str | os.PathLike[str] | None = None,
    metrics: PrometheusExport | None = None,
) -> FastAPI:
    """Build the HTTP API of `runtime` (docs/http-api.md describes every route).

    The caller owns `runtime` (and closes it); `serve` builds one and runs the app with uvicorn.

    Args:
        runtime: The runtime the routes drive; build it with ``approval_wait=True`` so that runs wait in
            process for the answers given through ``POST /v1/approvals/{id}``.
        token: The bearer token every route but ``/healthz`` and ``/openapi.json`` requires; ``None``
            serves without authentication (`serve` allows that on a loopback address only).
        agents_dir: Where agent files named by ``agent_path`` are read, and what the paths of agent texts
            and workspaces are relative to; none of them may leave it (default: the current directory).
        metrics: Serves ``GET /metrics`` (its bridge must be one of the runtime's sinks); without it the
            route does not exist.
    """
    agents = _Agents(Path(agents_dir) if agents_dir is not None else Path.cwd())
    app = FastAPI(
        title="Agent Runtime",
        version=runtime_facade.__version__,
        summary="Durable, governed agent runs over HTTP: runs, their events as Server-Sent Events, approvals.",
        # The interactive pages load their scripts from a CDN; the server stays offline.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    guard = [Depends(_bearer(token))] if token is not None else []
    responses = error_responses(*(_COMMON if token is not None else _COMMON[1:]))

    @app.get("/healthz", tags=["health"], responses=error_responses(500))
    async def health() -> Health:
        """Liveness: the server answers (no authentication)."""
        return Health(version=runtime_facade.__version__)

    app.include_router(_runs(runtime, agents), dependencies=guard, responses=responses)
    app.include_router(_approvals(runtime), dependencies=guard, responses=responses)
    if metrics is not None:
        app.include_router(_metrics(metrics), dependencies=guard, responses=responses)
    return app


def _bearer(token: str) -> Callable[[HTTPAuthorizationCredentials | None], Awaitable[None]]:
    """The dependency that checks ``Authorization: Bearer <token>`` in constant time."""
    scheme = HTTPBearer(auto_error=False, description="The server's token (`agent-runtime serve` docs).")
    expected = token.encode()

    # A default rather than Annotated: the annotation is a string here and `scheme` is local.
    async def require_token(credentials: HTTPAuthorizationCredentials | None = Security(scheme)) -> None:  # noqa: B008
        if credentials is None:
            raise ApiError(
                401,
                ErrorType.UNAUTHORIZED,
                "this route needs a bearer token: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="agent-runtime"'},
            )
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise ApiError(
                401,
                ErrorType.UNAUTHORIZED,
                "the bearer token is not valid",
                headers={"WWW-Authenticate": 'Bearer realm="agent-runtime", error="invalid_token"'},
            )

    return require_token


class _Agents:
    """Turns an `AgentSource` into an `AgentDefinition`, reading files from the agents directory only."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    async def definition(self, source: AgentSource) -> AgentDefinition | None:
        # Parsing reads files (the agent file, its scenario, policy and instructions): off the event loop.
        return await run_in_threadpool(self._definition, source)

    def _definition(self, source: AgentSource) -> AgentDefinition | None:
        if source.agent is not None:
            return parse_agent(source.agent, base_dir=self.root, confine=True)
        if source.agent_path is not None:
            return load_agent(self.inside(source.agent_path, "agent_path"))
        return None

    def inside(self, value: str, field: str) -> Path:
        """`value` relative to the agents directory, which it may not leave."""
        path = resolve_inside(self.root, value)
        if path is None:
            raise ApiError(422, ErrorType.INVALID_REQUEST, f"{field} must stay inside the server's agents directory")
        return path

    def workspace(self, value: str) -> Path:
        """A workspace directory, relative to the agents directory, which it may not leave."""
        path = self.inside(value, "workspace")
        if not path.is_dir():
            raise ApiError(422, ErrorType.INVALID_REQUEST, f"workspace {value!r} is not a directory on the server")
        return path


def _runs(runtime: Runtime, agents: _Agents) -> APIRouter:
    router = APIRouter(prefix="/v1/runs", tags=["runs"])

    @router.post("", status_code=201, responses=error_responses(409))
    async def create_run(body: CreateRunRequest, response: Response) -> Run:
        """Start a run; it goes on in the server (follow it with the events route)."""
        definition = await agents.definition(body)
        assert definition is not None  # CreateRunRequest requires an agent
        workspace = None if body.workspace is None else await run_in_threadpool(agents.workspace, body.workspace)
        handle = await runtime.start(
            definition, body.task, workspace=workspace, metadata=body.metadata, run_id=body.run_id
        )
        response.headers["Location"] = f"/v1/runs/{handle.run_id}"
        return await runtime.get_run(handle.run_id)

    @router.get("")
    async def list_runs(
        status: Annotated[RunStatus | None, Query(description="Only runs in this status.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many runs.")] = 100,
    ) -> RunList:
        """The most recent runs, newest first."""
        return RunList(runs=list(await runtime.list_runs(status=status, limit=limit)))

    @router.get("/{run_id}", responses=error_responses(404))
    async def get_run(run_id: _Id) -> Run:
        """A run's record (a projection of its log)."""
        return await runtime.get_run(run_id)

    @router.post("/{run_id}/cancel", responses=error_responses(404, 409))
    async def cancel_run(run_id: _Id, body: Annotated[CancelRequest | None, Body()] = None) -> Run:
        """Cancel a run wherever it is driven and deny its pending approvals (409 if it has ended)."""
        with state_conflicts():
            return await runtime.cancel(run_id, None if body is None else body.reason)

    @router.post("/{run_id}/resume", responses=error_responses(404, 409))
    async def resume_run(run_id: _Id, body: Annotated[ResumeRequest | None, Body()] = None) -> Run:
        """Continue a run from its last checkpoint in this server (after a restart or a crash)."""
        with state_conflicts():
            handle = await runtime.resume(run_id, steal=body is not None and body.steal)
        return await runtime.get_run(handle.run_id)

    @router.post("/{run_id}/fork", status_code=201, responses=error_responses(404))
    async def fork_run(run_id: _Id, body: ForkRequest, response: Response) -> Run:
        """Start a new run from the end of turn `at_turn` of this one (optionally with another agent)."""
        agent = await agents.definition(body)
        handle = await runtime.fork(run_id, at_turn=body.at_turn, agent=agent)
        response.headers["Location"] = f"/v1/runs/{handle.run_id}"
        return await runtime.get_run(handle.run_id)

    @router.post("/{run_id}/replay", responses=error_responses(404, 409))
    async def replay_run(run_id: _Id, body: Annotated[ReplayRequest | None, Body()] = None) -> ReplayReport:
        """Re-drive the run offline and report the first decision that differs from its log."""
        agent = None if body is None else await agents.definition(body)
        with state_conflicts():
            return await runtime.replay(run_id, agent=agent)

    @router.get(
        "/{run_id}/events",
        response_model=None,
        responses={
            200: {
                "description": "The run's events: a Server-Sent Events stream that ends with the run, or "
                "(with `Accept: application/json`) the events recorded so far.",
                "content": {_SSE: {"schema": _SSE_MESSAGE}, "application/json": {"schema": {}}},
                "model": EventList,
            },
            204: {"description": "The run has ended and no event follows the one named (EventSource stops)."},
            **error_responses(404),
        },
    )
    async def run_events(
        run_id: _Id,
        request: Request,
        after: Annotated[NonNegativeInt | None, Query(le=_MAX_SEQ, description="Only events after this seq.")] = None,
        last_event_id: Annotated[
            NonNegativeInt | None,
            Header(le=_MAX_SEQ, description="The seq of the last event received (wins over `after`)."),
        ] = None,
    ) -> Response:
        """A run's events after a seq, as Server-Sent Events (default) or JSON."""
        run = await runtime.get_run(run_id)
        after_seq = last_event_id if last_event_id is not None else after or 0
        if _wants_json(request.headers.get("accept", "")):
            events = [event async for event in runtime.events(run_id, after_seq=after_seq)]
            return Response(EventList(events=events).model_dump_json(), media_type="application/json")
        if run.status.is_terminal and run.last_seq <= after_seq:
            return Response(status_code=204)
        return StreamingResponse(
            event_stream(runtime.events(run_id, after_seq=after_seq, follow=True)),
            media_type=_SSE,
            # Proxies must neither cache nor buffer a live stream.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


def _wants_json(accept: str) -> bool:
    """Whether the client asked for JSON rather than an event stream."""
    return "application/json" in accept and _SSE not in accept


def _approvals(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/v1/approvals", tags=["approvals"])

    @router.get("")
    async def list_approvals(
        run_id: Annotated[str | None, Query(max_length=200, pattern=_NO_NUL, description="Only this run's.")] = None,
        pending: Annotated[bool, Query(description="Only those waiting for an answer.")] = True,
    ) -> ApprovalList:
        """Approval requests, oldest first."""
        status = ApprovalStatus.PENDING if pending else None
        return ApprovalList(approvals=list(await runtime.approval_store.list(run_id=run_id, status=status)))

    @router.post("/{approval_id}", responses=error_responses(404, 409))
    async def resolve_approval(approval_id: _Id, body: ResolveApprovalRequest) -> Approval:
        """Answer an approval request; the run waiting for it in this server continues at once."""
        return await runtime.approve(
            approval_id,
            allow=body.decision is ApprovalDecision.ALLOW,
            note=body.note,
            resolved_by=body.resolved_by or "http-api",
            sticky=body.sticky,
        )

    return router


def _metrics(metrics: PrometheusExport) -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"description": "Prometheus text exposition.", "content": {"text/plain": {}}}},
    )
    async def export_metrics() -> Response:
        """The runtime's metrics (runs, turns, tool calls, tokens, cost, approvals) for Prometheus."""
        return Response(metrics.render(), media_type=metrics.content_type)

    return router
