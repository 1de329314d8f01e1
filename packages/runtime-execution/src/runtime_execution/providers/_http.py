"""Private helpers shared by the HTTP providers: retries with backoff, SSE parsing, JSON checks."""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from runtime_core.exceptions import ProviderError
from runtime_core.providers import ModelRequest

MAX_BODY_CHARS = 2000
"""Error bodies are truncated to this many characters before they go into a `ProviderError`."""

Sleep = Callable[[float], Awaitable[None]]

SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)
"""What reading an unexpected payload shape raises; each parse site turns these into `shape_error`."""


def truncate(text: str) -> str:
    """Cut `text` to `MAX_BODY_CHARS` characters."""
    return text if len(text) <= MAX_BODY_CHARS else text[:MAX_BODY_CHARS] + "...[truncated]"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How an HTTP provider retries: ``max_retries`` extra attempts with capped exponential backoff."""

    max_retries: int = 2
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number `attempt` (0-based); ``Retry-After`` wins, capped."""
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        base = min(self.backoff_s * (2.0**attempt), self.max_backoff_s)
        # Full jitter in the upper half keeps concurrent clients from retrying in lockstep.
        return min(self.max_backoff_s, base / 2 + random.uniform(0, base / 2))


def _retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


async def send_with_retries(
    client: httpx.AsyncClient,
    build: Callable[[], httpx.Request],
    *,
    provider: str,
    policy: RetryPolicy,
    sleep: Sleep,
    stream: bool = False,
) -> httpx.Response:
    """Send a request, retrying on 429, 5xx, timeouts and connection errors.

    Returns:
        A successful (2xx) response. With ``stream=True`` the body is unread and the caller must close it.

    Raises:
        ProviderError: A non-retryable status, or retries exhausted (``retryable=True``).
    """
    attempt = 0
    while True:
        retry_after: float | None = None
        try:
            response = await client.send(build(), stream=stream)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            if attempt >= policy.max_retries:
                raise ProviderError(
                    f"{provider}: request failed after {attempt + 1} attempts: {type(exc).__name__}: {exc}",
                    provider=provider,
                    retryable=True,
                ) from exc
        except httpx.HTTPError as exc:
            # Misconfiguration (bad URL, proxy, local protocol misuse): retrying cannot help.
            raise ProviderError(f"{provider}: request failed: {type(exc).__name__}: {exc}", provider=provider) from exc
        else:
            if response.is_success:
                return response
            body = truncate((await response.aread()).decode("utf-8", "replace"))
            await response.aclose()
            status = response.status_code
            if not _retryable_status(status):
                raise ProviderError(
                    f"{provider}: HTTP {status}: {body[:200]}", provider=provider, status_code=status, body=body
                )
            if attempt >= policy.max_retries:
                raise ProviderError(
                    f"{provider}: HTTP {status} after {attempt + 1} attempts",
                    provider=provider,
                    status_code=status,
                    body=body,
                    retryable=True,
                )
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        await sleep(policy.delay(attempt, retry_after))
        attempt += 1


def loads(text: str | bytes, *, provider: str, what: str = "response") -> Any:
    """Parse JSON, turning a decoding failure into a `ProviderError`."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        snippet = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise ProviderError(
            f"{provider}: malformed JSON in {what}: {exc}", provider=provider, body=truncate(snippet)
        ) from exc


def shape_error(provider: str, exc: Exception, payload: object) -> ProviderError:
    """A `ProviderError` for a response whose JSON does not have the expected shape."""
    return ProviderError(
        f"{provider}: unexpected response shape ({type(exc).__name__}: {exc})",
        provider=provider,
        body=truncate(json.dumps(payload, default=str)),
    )


async def iter_sse(response: httpx.Response, *, provider: str) -> AsyncIterator[tuple[str | None, str]]:
    """Yield ``(event, data)`` pairs of a server-sent event stream.

    Raises:
        ProviderError: The connection failed mid-stream (``retryable=True``).
    """
    event: str | None = None
    data: list[str] = []
    try:
        async for line in response.aiter_lines():
            if line == "":
                if data:
                    yield event, "\n".join(data)
                event, data = None, []
                continue
            if line.startswith(":"):
                continue  # a comment / keep-alive
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
            # Other fields (id, retry) and unknown lines are ignored, as the SSE specification asks.
    except httpx.HTTPError as exc:
        raise ProviderError(f"{provider}: stream interrupted: {exc}", provider=provider, retryable=True) from exc
    if data:
        yield event, "\n".join(data)


def wire_tool_name(name: str) -> str:
    """Encode a runtime tool name for APIs that allow only ``[a-zA-Z0-9_-]``: ``:`` → ``__``, ``.`` → ``--``."""
    return name.replace(":", "__").replace(".", "--")


def tool_name_table(names: list[str]) -> dict[str, str]:
    """Map wire names back to the runtime names of the request's tools."""
    return {wire_tool_name(name): name for name in names}


def runtime_tool_name(wire: str, table: dict[str, str]) -> str:
    """Decode a wire tool name: the request's table first, then the reverse of `wire_tool_name`."""
    if wire in table:
        return table[wire]
    if "__" in wire:
        server, _, operation = wire.partition("__")
        return f"{server}:{operation.replace('--', '.')}"
    return wire


def monotonic_ms(start: float) -> float:
    """Milliseconds elapsed since `start` (a `time.monotonic()` value)."""
    return max(0.0, (time.monotonic() - start) * 1000.0)


class HttpProvider:
    """Plumbing shared by the HTTP providers: client, endpoint, retry policy, timeout and name.

    Subclasses build the request body (`_body`) and their authentication headers (`_auth_headers`);
    `_send` posts with retries and returns the (possibly streaming) response.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        url: str,
        api_key: str | None,
        max_retries: int,
        backoff_s: float,
        max_backoff_s: float,
        timeout_s: float,
        sleep: Sleep,
        name: str,
    ) -> None:
        self._client = client
        self._url = url
        self._api_key = api_key
        self._policy = RetryPolicy(max_retries=max_retries, backoff_s=backoff_s, max_backoff_s=max_backoff_s)
        self._timeout = timeout_s
        self._sleep = sleep
        self._name = name

    @property
    def name(self) -> str:
        """Provider name, the prefix of ``AgentSpec.model``."""
        return self._name

    def _body(self, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
        raise NotImplementedError

    def _auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    async def _send(self, request: ModelRequest, *, stream: bool) -> httpx.Response:
        def build() -> httpx.Request:
            headers = {"content-type": "application/json", **self._auth_headers()}
            if stream:
                headers["accept"] = "text/event-stream"
            return self._client.build_request(
                "POST", self._url, json=self._body(request, stream=stream), headers=headers, timeout=self._timeout
            )

        return await send_with_retries(
            self._client, build, provider=self._name, policy=self._policy, sleep=self._sleep, stream=stream
        )
