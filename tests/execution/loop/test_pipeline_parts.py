"""The tool pipeline's parts: argument check, spooling, rate limiting, caching, and the pipeline's stages."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import JsonValue

from runtime_core.clock import ManualClock
from runtime_core.exceptions import ToolExecutionError
from runtime_core.function_tools import tool
from runtime_core.memory import InMemorySpoolStore
from runtime_core.pipeline import RateLimiter, ToolResultCache
from runtime_core.policy import (
    Escalation,
    PolicyContext,
    PolicyDecision,
    PolicyEngine,
    PolicyOutcome,
)
from runtime_core.tools import ToolCall, ToolContext, ToolEffect, ToolError, ToolErrorCode, ToolResult, ToolSpec
from runtime_execution.loop import (
    InMemoryToolCache,
    Rate,
    Screened,
    SpoolPolicy,
    TokenBucketRateLimiter,
    ToolPipeline,
    spool_output,
)
from runtime_execution.loop._arguments import argument_problems
from runtime_execution.tools import LocalToolRegistry

KIB64 = 64 * 1024


def call(name: str, call_id: str = "call-1", **arguments: Any) -> ToolCall:
    return ToolCall.model_validate({"id": call_id, "name": name, "arguments": arguments})


def tool_context(call_id: str = "call-1", workspace: Path | None = None) -> ToolContext:
    return ToolContext(run_id="run-1", tool_call_id=call_id, agent_id="agent", turn=1, workspace=workspace)


POLICY_CONTEXT = PolicyContext(run_id="run-1", agent_id="agent", turn=1)


def error_of(result: ToolResult | None) -> ToolError:
    """The error of a result that must be a failure."""
    assert result is not None
    assert result.error is not None
    return result.error


def refusal(screened: Screened) -> ToolError:
    """The error of a call that screening must have refused."""
    return error_of(screened.failure)


# -- argument_problems -----------------------------------------------------------------------------------


@tool(name="demo:args", effect=ToolEffect.NONE)
def demo_args(
    count: int,
    label: str | None = None,
    mode: Literal["fast", "slow"] = "fast",
    ratio: float = 1.0,
    flag: bool = False,
    tags: list[str] | None = None,
) -> str:
    """A tool whose schema pydantic generates."""
    return f"{count}{label}{mode}{ratio}{flag}{tags}"


SCHEMA: dict[str, Any] = demo_args.spec.parameters


def test_a_valid_call_has_no_problems() -> None:
    assert argument_problems(SCHEMA, {"count": 3}) == []
    full = {"count": 3, "label": "x", "mode": "slow", "ratio": 0.5, "flag": True, "tags": ["a"]}
    assert argument_problems(SCHEMA, full) == []


def test_missing_required_arguments() -> None:
    assert argument_problems(SCHEMA, {}) == ["missing required argument 'count'"]
    schema = {"type": "object", "properties": {"a": {}, "b": {}}, "required": ["a", "b"]}
    assert argument_problems(schema, {"b": 1}) == ["missing required argument 'a'"]


def test_unknown_arguments_when_extras_are_forbidden() -> None:
    assert SCHEMA["additionalProperties"] is False
    problems = argument_problems(SCHEMA, {"count": 1, "zeta": 1, "alpha": 2})
    assert problems == ["unknown argument(s) 'alpha', 'zeta' (allowed: count, flag, label, mode, ratio, tags)"]
    closed = {"type": "object", "additionalProperties": False}
    assert argument_problems(closed, {"x": 1}) == ["unknown argument(s) 'x' (allowed: none)"]


def test_unknown_arguments_pass_when_extras_are_allowed() -> None:
    open_schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert argument_problems(open_schema, {"a": "x", "other": object()}) == []


def test_bool_is_not_an_integer_or_a_number() -> None:
    assert argument_problems(SCHEMA, {"count": True}) == ["argument 'count' must be integer, got bool"]
    assert argument_problems(SCHEMA, {"count": 1, "ratio": False}) == ["argument 'ratio' must be number, got bool"]


def test_integral_floats_are_integers() -> None:
    assert argument_problems(SCHEMA, {"count": 1.0}) == []
    assert argument_problems(SCHEMA, {"count": 1.5}) == ["argument 'count' must be integer, got float"]
    assert argument_problems(SCHEMA, {"count": float("nan")}) == ["argument 'count' must be integer, got float"]


def test_ints_are_numbers_but_not_booleans_or_strings() -> None:
    assert argument_problems(SCHEMA, {"count": 1, "ratio": 2}) == []
    assert argument_problems(SCHEMA, {"count": 1, "flag": 1}) == ["argument 'flag' must be boolean, got int"]
    assert argument_problems(SCHEMA, {"count": "1"}) == ["argument 'count' must be integer, got str"]


def test_optional_from_a_pydantic_schema() -> None:
    assert "anyOf" in SCHEMA["properties"]["label"]
    assert argument_problems(SCHEMA, {"count": 1, "label": None}) == []
    assert argument_problems(SCHEMA, {"count": 1, "label": 7}) == ["argument 'label' must be string or null, got int"]
    assert argument_problems(SCHEMA, {"count": 1, "tags": "a"}) == ["argument 'tags' must be array or null, got str"]


def test_type_lists() -> None:
    schema = {"properties": {"v": {"type": ["integer", "null"]}}}
    assert argument_problems(schema, {"v": None}) == []
    assert argument_problems(schema, {"v": {}}) == ["argument 'v' must be integer or null, got dict"]


def test_enum() -> None:
    assert argument_problems(SCHEMA, {"count": 1, "mode": "slow"}) == []
    assert argument_problems(SCHEMA, {"count": 1, "mode": "medium"}) == [
        "argument 'mode' must be one of ['fast', 'slow'], got 'medium'"
    ]


def test_enum_compares_json_values_not_python_equality() -> None:
    # In JSON `true` is not `1`, as the type check above already knows; `True in [0, 1]` is true in Python.
    schema = {"properties": {"level": {"enum": [0, 1]}}}
    assert argument_problems(schema, {"level": 1}) == []
    assert argument_problems(schema, {"level": True}) != []


def test_unknown_or_unusual_type_keywords_let_the_tool_decide() -> None:
    assert argument_problems({"properties": {"id": {"type": "uuid"}}}, {"id": 42}) == []
    referenced = {"properties": {"item": {"anyOf": [{"$ref": "#/$defs/Item"}, {"type": "null"}]}}}
    assert argument_problems(referenced, {"item": "anything"}) == []
    assert argument_problems({"properties": {"x": {"type": 5}}}, {"x": "y"}) == []
    assert argument_problems({"properties": "nonsense", "required": "x"}, {"x": 1}) == []


def test_several_problems_are_reported_together() -> None:
    problems = argument_problems(SCHEMA, {"count": "x", "mode": "medium", "extra": 1})
    assert len(problems) == 3


# -- spooling --------------------------------------------------------------------------------------------


def test_spool_byte_boundary() -> None:
    policy = SpoolPolicy()
    assert not policy.needs_spool("x" * KIB64)
    assert policy.needs_spool("x" * (KIB64 + 1))


def test_spool_counts_utf8_bytes_not_characters() -> None:
    policy = SpoolPolicy()
    assert not policy.needs_spool("é" * (KIB64 // 2))  # two bytes each: exactly 64 KiB
    assert policy.needs_spool("é" * (KIB64 // 2) + "x")
    assert not policy.needs_spool("😀" * (KIB64 // 4))  # four bytes each
    assert policy.needs_spool("😀" * (KIB64 // 4) + "x")
    assert not policy.needs_spool("€" * 100)  # short strings take the cheap path


def test_spool_line_boundary_without_a_final_newline() -> None:
    policy = SpoolPolicy()
    assert not policy.needs_spool("\n".join(["line"] * 200))
    assert policy.needs_spool("\n".join(["line"] * 201))


def test_spool_line_boundary_with_a_final_newline() -> None:
    # Exactly 200 newline-terminated lines is 200 lines (as the spool store counts them), not 201.
    policy = SpoolPolicy()
    assert not policy.needs_spool("line\n" * 200)
    assert policy.needs_spool("line\n" * 201)


def test_spool_small_limits() -> None:
    policy = SpoolPolicy(max_bytes=8, max_lines=2)
    assert not policy.needs_spool("12345678")
    assert policy.needs_spool("123456789")
    assert not policy.needs_spool("a\nb")
    assert policy.needs_spool("a\nb\nc")


def test_spool_policy_rejects_non_positive_limits() -> None:
    with pytest.raises(ValueError, match="positive"):
        SpoolPolicy(view_lines=0)


def test_spool_output_view_disclosure_and_ref() -> None:
    content = "".join(f"line {i}\n" for i in range(300))
    store = InMemorySpoolStore()
    view, ref = asyncio.run(spool_output(content, store, SpoolPolicy()))
    digest = hashlib.sha256(content.encode()).hexdigest()
    assert ref.content_hash == digest
    assert ref.byte_size == len(content.encode())
    assert ref.line_count == 300
    lines = view.split("\n")
    assert lines[:100] == [f"line {i}" for i in range(100)]
    shown = "".join(f"line {i}\n" for i in range(100))
    assert lines[100] == (
        f"[output truncated: showing 100 of 300 lines ({len(shown)} of {len(content)} bytes); "
        f"the full output is stored as sha256:{digest} at {ref.uri}]"
    )
    assert len(lines) == 101
    assert asyncio.run(store.get(digest)) == content.encode()


def test_spool_output_view_bytes_never_split_a_character() -> None:
    content = "é" * 1000 + "\n" + "tail\n" * 300
    store = InMemorySpoolStore()
    view, ref = asyncio.run(spool_output(content, store, SpoolPolicy(view_bytes=101)))
    body, disclosure = view.rsplit("\n", 1)
    assert body == "é" * 50  # 101 bytes hold 50 whole characters
    assert disclosure.startswith("[output truncated: showing 1 of 301 lines (100 of ")
    assert ref.content_hash in disclosure
    assert asyncio.run(store.get(ref.content_hash)).decode() == content


def test_spool_output_single_long_line() -> None:
    content = "x" * (KIB64 + 10)
    view, ref = asyncio.run(spool_output(content, InMemorySpoolStore(), SpoolPolicy()))
    body, disclosure = view.split("\n")
    assert body == "x" * (16 * 1024)
    assert "showing 1 of 1 lines" in disclosure
    assert ref.line_count == 1


# -- rate limiting -----------------------------------------------------------------------------------------


def spec(name: str, effect: ToolEffect = ToolEffect.NONE, category: str = "general") -> ToolSpec:
    return ToolSpec(name=name, description=name, effect=effect, category=category)


def acquire(limiter: RateLimiter, name: str) -> float | None:
    return asyncio.run(limiter.acquire(call(name), spec(name)))


def test_rate_limiter_burst_then_wait() -> None:
    clock = ManualClock()
    limiter = TokenBucketRateLimiter({"web:*": Rate(per_second=2.0, burst=3)}, clock=clock)
    assert isinstance(limiter, RateLimiter)
    assert [acquire(limiter, "web:fetch") for _ in range(3)] == [None, None, None]
    assert acquire(limiter, "web:fetch") == pytest.approx(0.5)
    assert acquire(limiter, "web:fetch") == pytest.approx(0.5)  # a refusal takes nothing


def test_rate_limiter_refills_over_time() -> None:
    clock = ManualClock()
    limiter = TokenBucketRateLimiter({"web:fetch": Rate(per_second=1.0, burst=1)}, clock=clock)
    assert acquire(limiter, "web:fetch") is None
    clock.advance(timedelta(seconds=0.25))
    assert acquire(limiter, "web:fetch") == pytest.approx(0.75)
    clock.advance(timedelta(seconds=0.75))
    assert acquire(limiter, "web:fetch") is None
    assert acquire(limiter, "web:fetch") == pytest.approx(1.0)


def test_rate_limiter_refill_is_capped_at_the_burst() -> None:
    clock = ManualClock()
    limiter = TokenBucketRateLimiter({"web:fetch": Rate(per_second=1.0, burst=2)}, clock=clock)
    assert acquire(limiter, "web:fetch") is None
    clock.advance(timedelta(hours=1))
    assert [acquire(limiter, "web:fetch") for _ in range(3)] == [None, None, pytest.approx(1.0)]


def test_rate_limiter_leaves_unmatched_tools_alone() -> None:
    limiter = TokenBucketRateLimiter({"web:*": Rate(per_second=0.001)}, clock=ManualClock())
    assert all(acquire(limiter, "file:read") is None for _ in range(100))


def test_rate_limiter_first_matching_pattern_wins() -> None:
    rates = {"web:fetch": Rate(per_second=1.0, burst=3), "web:*": Rate(per_second=1.0, burst=1)}
    limiter = TokenBucketRateLimiter(rates, clock=ManualClock())
    assert [acquire(limiter, "web:fetch") is None for _ in range(4)] == [True, True, True, False]
    assert [acquire(limiter, "web:search") is None for _ in range(2)] == [True, False]
    reversed_order = TokenBucketRateLimiter(dict(reversed(rates.items())), clock=ManualClock())
    assert [acquire(reversed_order, "web:fetch") is None for _ in range(2)] == [True, False]


def test_rate_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="per_second"):
        Rate(per_second=0)
    with pytest.raises(ValueError, match="burst"):
        Rate(per_second=1, burst=0)


# -- result cache ------------------------------------------------------------------------------------------


def result(call_id: str = "call-1", content: str = "hello") -> ToolResult:
    return ToolResult(tool_call_id=call_id, tool_name="file:read", content=content, data=content)


def test_cache_hit_and_miss() -> None:
    async def scenario() -> None:
        cache = InMemoryToolCache(clock=ManualClock())
        assert isinstance(cache, ToolResultCache)
        read = call("file:read", path="a")
        assert await cache.get(read, tool_context()) is None
        await cache.put(read, tool_context(), result())
        assert await cache.get(read, tool_context()) == result()
        assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)

    asyncio.run(scenario())


def test_cache_key_is_name_arguments_in_any_order_and_workspace(tmp_path: Path) -> None:
    async def scenario() -> None:
        cache = InMemoryToolCache(clock=ManualClock())
        stored = call("file:read", path="a", options={"x": 1, "y": [1, 2]})
        await cache.put(stored, tool_context(workspace=tmp_path), result())
        reordered = ToolCall(id="other", name="file:read", arguments={"options": {"y": [1, 2], "x": 1}, "path": "a"})
        assert await cache.get(reordered, tool_context("other", tmp_path)) == result()
        assert await cache.get(call("file:read", path="b", options={"x": 1, "y": [1, 2]}), tool_context()) is None
        assert await cache.get(call("file:read", path="a", options={"x": 1, "y": [2, 1]}), tool_context()) is None
        assert await cache.get(call("file:info", path="a", options={"x": 1, "y": [1, 2]}), tool_context()) is None
        assert await cache.get(stored, tool_context(workspace=tmp_path / "elsewhere")) is None
        assert await cache.get(stored, tool_context(workspace=None)) is None

    asyncio.run(scenario())


def test_cache_ttl() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        cache = InMemoryToolCache(ttl_s=10.0, clock=clock)
        read = call("file:read", path="a")
        await cache.put(read, tool_context(), result())
        clock.advance(timedelta(seconds=10))
        assert await cache.get(read, tool_context()) is not None
        clock.advance(timedelta(milliseconds=1))
        assert await cache.get(read, tool_context()) is None
        assert len(cache) == 0

    asyncio.run(scenario())


def test_cache_evicts_the_least_recently_used() -> None:
    async def scenario() -> None:
        cache = InMemoryToolCache(max_entries=2, clock=ManualClock())
        a, b, c = (call("file:read", path=name) for name in "abc")
        await cache.put(a, tool_context(), result(content="a"))
        await cache.put(b, tool_context(), result(content="b"))
        assert await cache.get(a, tool_context()) is not None  # a is now the most recent
        await cache.put(c, tool_context(), result(content="c"))
        assert len(cache) == 2
        assert await cache.get(b, tool_context()) is None
        assert (await cache.get(a, tool_context()), await cache.get(c, tool_context())) == (
            result(content="a"),
            result(content="c"),
        )

    asyncio.run(scenario())


def test_cache_invalidate_forgets_everything() -> None:
    async def scenario() -> None:
        cache = InMemoryToolCache(clock=ManualClock())
        for name in "ab":
            await cache.put(call("file:read", path=name), tool_context(), result())
        await cache.invalidate()
        assert len(cache) == 0
        assert await cache.get(call("file:read", path="a"), tool_context()) is None

    asyncio.run(scenario())


def test_cache_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        InMemoryToolCache(max_entries=0)
    with pytest.raises(ValueError, match="ttl_s"):
        InMemoryToolCache(ttl_s=0)


# -- the pipeline ---------------------------------------------------------------------------------------


class Rules:
    """A tiny policy engine: a fixed decision per tool name, allow otherwise."""

    def __init__(self, decisions: Mapping[str, PolicyDecision]) -> None:
        self.decisions = dict(decisions)
        self.seen: list[tuple[str, str | None]] = []

    def evaluate(self, call: ToolCall, spec: ToolSpec | None, context: PolicyContext) -> PolicyDecision:
        self.seen.append((call.name, spec.name if spec is not None else None))
        return self.decisions.get(call.name, ALLOW)


ALLOW = PolicyDecision(allowed=True, policy_decision=PolicyOutcome.ALLOW, policy_rule_id="default")
DENY = PolicyDecision(
    allowed=False, policy_decision=PolicyOutcome.DENY, reason="writes are off today", policy_rule_id="no-writes"
)
ESCALATE = PolicyDecision(
    allowed=False,
    policy_decision=PolicyOutcome.DENY,
    policy_rule_id="admin-only",
    escalation=Escalation(permission="db:admin", level="admin"),
)
ASK = PolicyDecision(
    allowed=True,
    requires_confirmation=True,
    policy_decision=PolicyOutcome.ALLOW_WITH_CONFIRM,
    reason="a human looks first",
    policy_rule_id="ask-first",
)


class Probe:
    """Counts tool invocations."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []


def make_tools(probe: Probe) -> LocalToolRegistry:
    @tool(name="file:peek", effect=ToolEffect.NONE, category="file")
    async def peek(path: str, directory: str = ".") -> str:
        probe.calls.append({"tool": "file:peek", "path": path})
        return f"peeked {path}"

    @tool(name="file:copy", effect=ToolEffect.IDEMPOTENT, category="file")
    async def copy(source: str, destination: str) -> str:
        probe.calls.append({"tool": "file:copy", "source": source, "destination": destination})
        return "copied"

    @tool(name="file:bulk", effect=ToolEffect.NONE, category="file")
    async def bulk(paths: list[str]) -> int:
        probe.calls.append({"tool": "file:bulk", "paths": paths})
        return len(paths)

    @tool(name="shell:run", effect=ToolEffect.UNSAFE, category="shell")
    async def run(command: str, cwd: str | None = None) -> str:
        probe.calls.append({"tool": "shell:run", "command": command})
        return "ran"

    @tool(name="web:get", effect=ToolEffect.NONE, category="web")
    async def get(path: str) -> str:
        probe.calls.append({"tool": "web:get", "path": path})
        return "got"

    @tool(name="db:write", effect=ToolEffect.IDEMPOTENT)
    async def write(key: str) -> str:
        probe.calls.append({"tool": "db:write", "key": key})
        return "written"

    @tool(name="db:fail", effect=ToolEffect.IDEMPOTENT)
    async def fail(code: str) -> str:
        probe.calls.append({"tool": "db:fail", "code": code})
        raise ToolExecutionError("the row changed underneath", code=code, details={"row": 7})

    @tool(name="db:slow", effect=ToolEffect.NONE)
    async def slow() -> str:
        probe.calls.append({"tool": "db:slow"})
        await asyncio.sleep(30)
        return "late"

    @tool(name="log:dump", effect=ToolEffect.NONE)
    async def dump(lines: int) -> str:
        probe.calls.append({"tool": "log:dump", "lines": lines})
        return "".join(f"entry {i}\n" for i in range(lines))

    @tool(name="log:count", effect=ToolEffect.NONE)
    async def count(key: str) -> dict[str, int]:
        probe.calls.append({"tool": "log:count", "key": key})
        return {"count": len(probe.calls)}

    return LocalToolRegistry([peek, copy, bulk, run, get, write, fail, slow, dump, count])


class Broken:
    """A hand-written tool that breaks its contract in a chosen way."""

    def __init__(self, name: str, behaviour: str) -> None:
        self._spec = ToolSpec(name=name, description="broken", effect=ToolEffect.NONE)
        self.behaviour = behaviour

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    async def invoke(self, arguments: Mapping[str, Any], context: ToolContext) -> JsonValue:
        if self.behaviour == "raise":
            raise KeyError("boom")
        if self.behaviour == "details":
            raise ToolExecutionError("odd details", code="CONFLICT", details={"where": Path("x")})
        return {"not", "json"}  # type: ignore[return-value]  # the point: a tool that returns a set


def screen(
    pipeline: ToolPipeline, tools: LocalToolRegistry, the_call: ToolCall, workspace: Path | None = None
) -> Screened:
    return pipeline.screen(the_call, tools, POLICY_CONTEXT, workspace)


def run_call(pipeline: ToolPipeline, screened: Screened, timeout_s: float = 5.0) -> ToolResult:
    assert screened.failure is None, screened.failure
    return asyncio.run(pipeline.execute(screened, tool_context(screened.call.id), timeout_s))


def test_unknown_tool_lists_the_available_tools() -> None:
    tools = make_tools(Probe())
    screened = screen(ToolPipeline(), tools, call("file:nope", path="a"))
    assert screened.tool is None
    assert screened.decision is None
    assert screened.spec is None
    assert not screened.needs_approval
    failure = screened.failure
    assert failure is not None
    error = error_of(failure)
    assert error.code is ToolErrorCode.RESOURCE_NOT_FOUND
    assert failure.tool_call_id == "call-1"
    message = error.message
    assert "'file:nope'" in message
    assert message.endswith("available tools: " + ", ".join(tools.names()))
    assert failure.content == f"Error (RESOURCE_NOT_FOUND): {message}"


def test_without_a_policy_every_call_is_allowed_without_a_decision() -> None:
    screened = screen(ToolPipeline(), make_tools(Probe()), call("db:write", key="k"))
    assert screened.failure is None
    assert screened.decision is None  # no engine, no decision to record
    assert not screened.needs_approval
    allowed = screen(ToolPipeline(policy=Rules({})), make_tools(Probe()), call("db:write", key="k"))
    assert allowed.failure is None
    assert allowed.decision == ALLOW


def test_the_policy_context_is_needed_only_with_a_policy() -> None:
    tools, the_call = make_tools(Probe()), call("db:write", key="k")
    assert ToolPipeline().screen(the_call, tools, None, None).failure is None
    with pytest.raises(ValueError, match="PolicyContext"):
        ToolPipeline(policy=Rules({})).screen(the_call, tools, None, None)


def test_policy_denial() -> None:
    rules = Rules({"db:write": DENY})
    assert isinstance(rules, PolicyEngine)
    screened = screen(ToolPipeline(policy=rules), make_tools(Probe()), call("db:write", key="k"))
    assert rules.seen == [("db:write", "db:write")]
    assert screened.decision == DENY
    error = refusal(screened)
    assert error.code is ToolErrorCode.PERMISSION_DENIED
    assert error.message == "writes are off today"
    assert error.details == {"rule": "no-writes"}
    assert not screened.needs_approval


def test_policy_denial_with_escalation() -> None:
    screened = screen(
        ToolPipeline(policy=Rules({"db:write": ESCALATE})), make_tools(Probe()), call("db:write", key="k")
    )
    error = refusal(screened)
    assert error.code is ToolErrorCode.PERMISSION_ESCALATION_REQUIRED
    assert error.message == "the policy denies this call"
    assert error.details == {"rule": "admin-only"}


def test_policy_ask_needs_approval() -> None:
    screened = screen(ToolPipeline(policy=Rules({"db:write": ASK})), make_tools(Probe()), call("db:write", key="k"))
    assert screened.failure is None
    assert screened.needs_approval
    assert screened.decision == ASK


def test_policy_comes_before_the_argument_check() -> None:
    tools = make_tools(Probe())
    denied = screen(ToolPipeline(policy=Rules({"db:write": DENY})), tools, call("db:write", bogus=1))
    assert refusal(denied).code is ToolErrorCode.PERMISSION_DENIED
    allowed = screen(ToolPipeline(policy=Rules({})), tools, call("db:write", bogus=1))
    error = refusal(allowed)
    assert error.code is ToolErrorCode.INVALID_ARGUMENTS
    assert error.message.startswith("invalid arguments for db:write: missing required argument 'key'")
    assert not allowed.needs_approval


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("file:peek", {"path": "../x"}),
        ("file:peek", {"path": "a/../../x"}),
        ("file:peek", {"path": "ok.txt", "directory": "../.."}),
        ("shell:run", {"command": "ls", "cwd": "../"}),
    ],
)
def test_sandbox_preflight_refuses_escapes_before_the_tool_runs(
    tmp_path: Path, name: str, arguments: dict[str, Any]
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    probe = Probe()
    screened = screen(ToolPipeline(), make_tools(probe), call(name, **arguments), workspace)
    error = refusal(screened)
    assert error.code is ToolErrorCode.SANDBOX_VIOLATION
    assert not screened.needs_approval
    assert probe.calls == []


def test_sandbox_preflight_refuses_absolute_paths_outside(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    outside = tmp_path / "outside" / "x"
    probe = Probe()
    screened = screen(ToolPipeline(), make_tools(probe), call("file:peek", path=str(outside)), workspace)
    error = refusal(screened)
    assert error.code is ToolErrorCode.SANDBOX_VIOLATION
    assert error.details == {"argument": "path"}
    assert probe.calls == []


def test_sandbox_preflight_lets_inside_paths_through(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    probe = Probe()
    pipeline = ToolPipeline()
    tools = make_tools(probe)
    for path in ("a.txt", "sub/../a.txt", str(workspace / "a.txt"), "."):
        screened = screen(pipeline, tools, call("file:peek", path=path), workspace)
        assert screened.failure is None, path
    assert run_call(pipeline, screen(pipeline, tools, call("file:peek", path="a.txt"), workspace)).content == (
        "peeked a.txt"
    )
    assert probe.calls == [{"tool": "file:peek", "path": "a.txt"}]


def test_sandbox_preflight_only_covers_file_and_shell_tools_with_a_workspace(tmp_path: Path) -> None:
    tools = make_tools(Probe())
    assert screen(ToolPipeline(), tools, call("web:get", path="../x"), tmp_path).failure is None
    assert screen(ToolPipeline(), tools, call("file:peek", path="../x"), None).failure is None


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("file:copy", {"source": "a.txt", "destination": "../stolen.txt"}),
        ("file:copy", {"source": "/etc/passwd", "destination": "a.txt"}),
        ("file:bulk", {"paths": ["a.txt", "../../x"]}),
    ],
)
def test_sandbox_preflight_covers_every_path_argument(tmp_path: Path, name: str, arguments: dict[str, Any]) -> None:
    # The scheduler treats source, destination and paths as paths; so must the sandbox preflight.
    workspace = tmp_path / "ws"
    workspace.mkdir()
    probe = Probe()
    screened = screen(ToolPipeline(), make_tools(probe), call(name, **arguments), workspace)
    error = refusal(screened)
    assert error.code is ToolErrorCode.SANDBOX_VIOLATION
    assert probe.calls == []


def test_execute_success() -> None:
    pipeline = ToolPipeline()
    result = run_call(pipeline, screen(pipeline, make_tools(Probe()), call("log:count", key="k")))
    assert result.error is None
    assert result.data == {"count": 1}
    assert result.content == '{"count":1}'
    assert result.tool_call_id == "call-1"
    assert result.tool_name == "log:count"
    assert result.duration_ms >= 0
    assert not result.cached


def test_execute_keeps_the_tool_error_code() -> None:
    pipeline = ToolPipeline()
    result = run_call(pipeline, screen(pipeline, make_tools(Probe()), call("db:fail", code="CONFLICT")))
    assert result.error is not None
    assert result.error.code is ToolErrorCode.CONFLICT
    assert result.error.message == "the row changed underneath"
    assert result.error.details == {"row": 7}
    assert result.content == "Error (CONFLICT): the row changed underneath"


def test_execute_maps_unknown_error_codes_to_execution_failed() -> None:
    pipeline = ToolPipeline()
    result = run_call(pipeline, screen(pipeline, make_tools(Probe()), call("db:fail", code="WEIRD")))
    assert result.error is not None
    assert result.error.code is ToolErrorCode.EXECUTION_FAILED


def test_execute_turns_a_plain_exception_into_execution_failed() -> None:
    pipeline = ToolPipeline()
    tools = LocalToolRegistry([Broken("odd:raise", "raise")])
    result = run_call(pipeline, screen(pipeline, tools, call("odd:raise")))
    assert result.error is not None
    assert result.error.code is ToolErrorCode.EXECUTION_FAILED
    assert result.error.message == "KeyError: 'boom'"


@pytest.mark.parametrize("behaviour", ["details", "set"])
def test_execute_never_raises_for_a_tool_that_breaks_its_contract(behaviour: str) -> None:
    # "Never raises for a tool failure": non-JSON error details or a non-JSON return value are tool bugs,
    # and must reach the model as an error result rather than end the run with an internal error.
    pipeline = ToolPipeline()
    tools = LocalToolRegistry([Broken("odd:tool", behaviour)])
    result = run_call(pipeline, screen(pipeline, tools, call("odd:tool")))
    assert result.error is not None
    assert result.error.code in (ToolErrorCode.CONFLICT, ToolErrorCode.EXECUTION_FAILED)


def test_execute_timeout() -> None:
    pipeline = ToolPipeline()
    probe = Probe()
    result = run_call(pipeline, screen(pipeline, make_tools(probe), call("db:slow")), timeout_s=0.05)
    assert probe.calls == [{"tool": "db:slow"}]
    assert result.error is not None
    assert result.error.code is ToolErrorCode.TIMEOUT
    assert result.error.details == {"timeout_s": 0.05}
    assert result.error.message == "db:slow did not finish within 0.05 s"
    assert 40 <= result.duration_ms < 5000


def test_execute_lets_cancellation_through() -> None:
    async def scenario() -> None:
        pipeline = ToolPipeline()
        screened = screen(pipeline, make_tools(Probe()), call("db:slow"))
        task = asyncio.create_task(pipeline.execute(screened, tool_context(), 30.0))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_gate_without_limiter_or_cache_lets_the_call_run() -> None:
    pipeline = ToolPipeline()
    screened = screen(pipeline, make_tools(Probe()), call("log:count", key="k"))
    assert asyncio.run(pipeline.gate(screened, tool_context())) is None


def test_gate_rate_limits() -> None:
    limiter = TokenBucketRateLimiter({"db:*": Rate(per_second=0.5)}, clock=ManualClock())
    pipeline = ToolPipeline(rate_limiter=limiter)
    tools = make_tools(Probe())
    first = screen(pipeline, tools, call("db:write", "c1", key="k"))
    second = screen(pipeline, tools, call("db:write", "c2", key="k"))
    assert asyncio.run(pipeline.gate(first, tool_context("c1"))) is None
    refused = asyncio.run(pipeline.gate(second, tool_context("c2")))
    assert refused is not None
    error = error_of(refused)
    assert error.code is ToolErrorCode.RATE_LIMITED
    assert error.details == {"retry_after_s": 2.0}
    assert refused.tool_call_id == "c2"
    assert "try again in 2.0 s" in refused.content


def test_a_cached_result_carries_the_new_call_id() -> None:
    async def scenario() -> None:
        probe = Probe()
        cache = InMemoryToolCache(clock=ManualClock())
        pipeline = ToolPipeline(cache=cache)
        tools = make_tools(probe)
        first = screen(pipeline, tools, call("log:count", "c1", key="k"))
        assert await pipeline.gate(first, tool_context("c1")) is None
        original = await pipeline.execute(first, tool_context("c1"), 5.0)
        assert len(cache) == 1
        again = screen(pipeline, tools, call("log:count", "c2", key="k"))
        cached = await pipeline.gate(again, tool_context("c2"))
        assert cached is not None
        assert cached.tool_call_id == "c2"
        assert cached.cached
        assert cached.duration_ms == 0.0
        assert (cached.content, cached.data) == (original.content, original.data)
        assert len(probe.calls) == 1
        other = screen(pipeline, tools, call("log:count", "c3", key="other"))
        assert await pipeline.gate(other, tool_context("c3")) is None

    asyncio.run(scenario())


def test_failed_reads_are_not_cached() -> None:
    async def scenario() -> None:
        cache = InMemoryToolCache(clock=ManualClock())
        pipeline = ToolPipeline(cache=cache)
        tools = make_tools(Probe())
        slow = screen(pipeline, tools, call("db:slow"))
        result = await pipeline.execute(slow, tool_context(), 0.01)
        assert result.error is not None
        assert len(cache) == 0

    asyncio.run(scenario())


def test_tools_with_effects_skip_the_cache_and_invalidate_it() -> None:
    async def scenario() -> None:
        probe = Probe()
        cache = InMemoryToolCache(clock=ManualClock())
        pipeline = ToolPipeline(cache=cache)
        tools = make_tools(probe)
        read = screen(pipeline, tools, call("log:count", "c1", key="k"))
        await pipeline.execute(read, tool_context("c1"), 5.0)
        write = screen(pipeline, tools, call("db:write", "c2", key="k"))
        assert await pipeline.gate(write, tool_context("c2")) is None
        await pipeline.execute(write, tool_context("c2"), 5.0)
        assert len(cache) == 0
        again = screen(pipeline, tools, call("log:count", "c3", key="k"))
        assert await pipeline.gate(again, tool_context("c3")) is None
        # Even a failed call with effects may have changed something.
        await pipeline.execute(read, tool_context("c1"), 5.0)
        failing = screen(pipeline, tools, call("db:fail", "c4", code="CONFLICT"))
        assert (await pipeline.execute(failing, tool_context("c4"), 5.0)).error is not None
        assert len(cache) == 0

    asyncio.run(scenario())


def test_large_outputs_are_spooled() -> None:
    async def scenario() -> None:
        store = InMemorySpoolStore()
        pipeline = ToolPipeline(spool=store)
        screened = screen(pipeline, make_tools(Probe()), call("log:dump", lines=500))
        result = await pipeline.execute(screened, tool_context(), 5.0)
        full = "".join(f"entry {i}\n" for i in range(500))
        assert result.error is None
        assert result.spool is not None
        assert result.data is None
        assert result.spool.content_hash == hashlib.sha256(full.encode()).hexdigest()
        assert result.content.startswith("entry 0\n")
        assert "entry 100\n" not in result.content
        assert result.content.endswith(f"at {result.spool.uri}]")
        assert await store.get(result.spool.content_hash) == full.encode()

    asyncio.run(scenario())


def test_small_outputs_and_pipelines_without_a_store_are_not_spooled() -> None:
    async def scenario() -> None:
        store = InMemorySpoolStore()
        tools = make_tools(Probe())
        small = await ToolPipeline(spool=store).execute(
            screen(ToolPipeline(), tools, call("log:dump", lines=3)), tool_context(), 5.0
        )
        assert small.spool is None
        assert small.content == "entry 0\nentry 1\nentry 2\n"
        assert small.data is None  # a text result is its content, stored once
        whole = await ToolPipeline().execute(
            screen(ToolPipeline(), tools, call("log:dump", lines=500)), tool_context(), 5.0
        )
        assert whole.spool is None
        assert whole.content.count("\n") == 500

    asyncio.run(scenario())
