"""Typed error responses: every failure is ``{"error": {"type", "message", "problems"}}`` with a fitting status.

The runtime's exceptions map to statuses by kind (`NotFoundError` → 404, `LeaseHeldError` → 409, an
invalid agent file → 422 with one problem per line, ...); request validation is a 422 listing every
problem; anything else is a genuine bug, logged and answered with a typed 500.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from runtime_control.exceptions import ConfigFileError
from runtime_core.exceptions import (
    AgentRuntimeError,
    AlreadyExistsError,
    ApprovalResolvedError,
    ConfigurationError,
    FencingError,
    LeaseHeldError,
    NotFoundError,
    StoreError,
    UserError,
)
from runtime_facade.api.models import ErrorBody, ErrorDetail, ErrorType, Problem

__all__ = ["ApiError", "error_responses", "install_error_handlers", "state_conflicts"]

_log = logging.getLogger("runtime_facade.api")

_STATUS_TYPES = {401: ErrorType.UNAUTHORIZED, 404: ErrorType.NOT_FOUND, 405: ErrorType.METHOD_NOT_ALLOWED}
_DESCRIPTIONS = {
    401: "No bearer token, or a wrong one.",
    404: "No such run or approval.",
    409: "The request conflicts with the run's state (ended, leased by a live worker, already answered).",
    422: "The request or the agent file is invalid; `problems` lists every problem.",
    500: "A bug in the server (logged there).",
    503: "The database failed; nothing was written, retry later.",
}


class ApiError(Exception):
    """An error the API answers as it is (raised by routes and the authentication dependency).

    Attributes:
        status_code: The HTTP status.
        type: The kind of error.
        message: What went wrong.
        problems: Every problem, for an invalid request.
        headers: Extra response headers (``WWW-Authenticate``).
    """

    def __init__(
        self,
        status_code: int,
        type: ErrorType,
        message: str,
        *,
        problems: Sequence[Problem] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.type = type
        self.message = message
        self.problems = list(problems)
        self.headers = dict(headers or {})


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries of error statuses (their body is always `ErrorBody`)."""
    return {status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]} for status in statuses}


@contextmanager
def state_conflicts() -> Iterator[None]:
    """Within: a `ConfigurationError` about a run's state (it has ended, it is a fork) becomes a 409.

    Invalid agent files raised inside stay 422: they are the request's fault, not the run's state.
    """
    try:
        yield
    except ConfigFileError:
        raise
    except ConfigurationError as error:
        raise ApiError(409, ErrorType.CONFLICT, error.message) from error


def _response(
    status: int,
    type: ErrorType,
    message: str,
    problems: Sequence[Problem] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(type=type, message=message, problems=list(problems)))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _runtime_error(error: AgentRuntimeError) -> tuple[int, ErrorType, list[Problem]]:
    """Status, type and problems of a runtime exception; checked most specific first."""
    if isinstance(error, NotFoundError):
        return 404, ErrorType.NOT_FOUND, []
    if isinstance(error, ApprovalResolvedError):
        return 409, ErrorType.APPROVAL_RESOLVED, []
    if isinstance(error, AlreadyExistsError | FencingError):
        return 409, ErrorType.CONFLICT, []
    if isinstance(error, LeaseHeldError):
        return 409, ErrorType.LEASE_HELD, []
    if isinstance(error, ConfigFileError):
        problems = [Problem(location=p.location, message=p.message, line=p.line) for p in error.problems]
        return 422, ErrorType.INVALID_AGENT, problems
    if isinstance(error, UserError):
        return 422, ErrorType.INVALID_REQUEST, []
    if isinstance(error, StoreError):
        return 503, ErrorType.UNAVAILABLE, []
    return 500, ErrorType.INTERNAL, []


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of `app` with an `ErrorBody`."""

    async def api_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)  # registered for ApiError only
        return _response(error.status_code, error.type, error.message, error.problems, error.headers)

    async def validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)  # registered for RequestValidationError only
        problems = [
            Problem(location=".".join(str(part) for part in item.get("loc", ())), message=str(item.get("msg", "")))
            for item in error.errors()
        ]
        summary = "; ".join(f"{p.location}: {p.message}" for p in problems[:5]) or "invalid request"
        return _response(422, ErrorType.INVALID_REQUEST, f"invalid request: {summary}", problems)

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)  # registered for HTTPException only
        # FastAPI answers an undecodable body with a bare 400: every invalid request is a 422 here.
        status = 422 if error.status_code == 400 else error.status_code
        kind = _STATUS_TYPES.get(status, ErrorType.INVALID_REQUEST)
        return _response(status, kind, str(error.detail), headers=error.headers)

    async def runtime_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, AgentRuntimeError)  # registered for AgentRuntimeError only
        status, kind, problems = _runtime_error(error)
        if status >= 500:
            _log.error("%s %s failed: %s", request.method, request.url.path, error, exc_info=error)
        return _response(status, kind, error.message, problems)

    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        _log.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return _response(500, ErrorType.INTERNAL, "internal error (logged by the server)")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(AgentRuntimeError, runtime_error)
    app.add_exception_handler(Exception, unexpected_error)
