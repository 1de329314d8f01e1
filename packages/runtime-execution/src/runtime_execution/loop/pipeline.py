"""The tool pipeline: every tool call passes the same stages, in the spec's order.

1. resolve the tool by name (unknown → ``RESOURCE_NOT_FOUND``);
2. policy (deny → ``PERMISSION_DENIED`` or ``PERMISSION_ESCALATION_REQUIRED``; ask → approval);
3. argument check against the tool's schema (→ ``INVALID_ARGUMENTS``);
4. sandbox preflight: path arguments of file and shell tools must stay in the workspace
   (→ ``SANDBOX_VIOLATION``);
5. rate limit (→ ``RATE_LIMITED``);
6. result cache, for read-only tools;
7. execute, under the tool's timeout (→ ``TIMEOUT``), typed failures from the tool itself;
8. spool large outputs (the model sees a truncated view and a reference);
9. record (the agent loop writes the events).

Stages 1 to 4 are `ToolPipeline.screen`, 5 and 6 `ToolPipeline.gate` and 7 and 8 `ToolPipeline.execute`, so that the
loop can ask for approvals after screening and commit its write-ahead record right before executing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import JsonValue
from pydantic_core import to_jsonable_python

from runtime_core import trusted
from runtime_core.exceptions import ToolExecutionError
from runtime_core.pipeline import RateLimiter, ToolResultCache
from runtime_core.policy import PolicyContext, PolicyDecision, PolicyEngine, PolicyOutcome
from runtime_core.spool import SpoolStore
from runtime_core.tools import (
    ReconcilableTool,
    Tool,
    ToolCall,
    ToolContext,
    ToolEffect,
    ToolError,
    ToolErrorCode,
    ToolRegistry,
    ToolResult,
    ToolSpec,
    is_completion_tool,
)
from runtime_execution.loop._arguments import argument_problems
from runtime_execution.loop._deadline import timeout
from runtime_execution.loop.scheduling import PATH_ARGUMENTS, path_values
from runtime_execution.loop.spooling import SpoolPolicy, spool_output
from runtime_execution.tools.workspace import Workspace

__all__ = ["Screened", "ToolPipeline", "failed_result", "malformed_arguments"]

_SANDBOXED_CATEGORIES = frozenset({"file", "shell"})
_log = logging.getLogger("runtime_execution.loop")


_CONFIRM = PolicyDecision(
    allowed=True,
    requires_confirmation=True,
    policy_decision=PolicyOutcome.ALLOW_WITH_CONFIRM,
    reason="the tool asks for confirmation before every call",
    reason_code="tool:requires_confirmation",
)
"""Without a policy engine, the decision for tools declared ``requires_confirmation``."""


def failed_result(
    call: ToolCall,
    code: ToolErrorCode,
    message: str,
    details: Mapping[str, JsonValue] | None = None,
    *,
    duration_ms: float = 0.0,
) -> ToolResult:
    """Build the error result of `call`, worded for the model."""
    return ToolResult(
        tool_call_id=call.id,
        tool_name=call.name,
        content=f"Error ({code.value}): {message}",
        duration_ms=duration_ms,
        error=ToolError(code=code, message=message, details=to_jsonable_python(details or {}, fallback=repr)),
    )


def malformed_arguments(call: ToolCall) -> ToolResult | None:
    """The ``INVALID_ARGUMENTS`` result of a call whose argument text was not a JSON object, if it was not."""
    if call.raw_arguments is None:
        return None
    shown = call.raw_arguments if len(call.raw_arguments) <= 200 else call.raw_arguments[:200] + "..."
    message = f"the arguments of {call.name} must be a JSON object; got: {shown}"
    return failed_result(call, ToolErrorCode.INVALID_ARGUMENTS, message)


def _content(data: JsonValue) -> str:
    if isinstance(data, str):
        return data
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Screened:
    """A call after screening: ready to run, waiting for approval, or already failed.

    Attributes:
        call: The call.
        tool: The resolved tool, if any.
        decision: The policy decision, if the policy was consulted.
        failure: The error result when screening refused the call.
    """

    call: ToolCall
    tool: Tool | None
    decision: PolicyDecision | None
    failure: ToolResult | None = None

    @property
    def spec(self) -> ToolSpec | None:
        """The tool's spec, if the tool exists."""
        return self.tool.spec if self.tool is not None else None

    @property
    def needs_approval(self) -> bool:
        """Whether the call may run only once someone approves it."""
        return self.failure is None and self.decision is not None and self.decision.requires_confirmation


class ToolPipeline:
    """The stages every tool call passes. One pipeline serves every run of an agent loop.

    Args:
        policy: Decides each call; ``None`` allows every call, asking for approval only of tools declared
            ``requires_confirmation`` (no decision is recorded for the others).
        rate_limiter: Grants permits; ``None`` means no limit.
        cache: Caches results of read-only tools; ``None`` disables caching.
        spool: Where large outputs go; ``None`` leaves outputs whole.
        spool_policy: When an output is large and how much of it the model sees.
    """

    def __init__(
        self,
        *,
        policy: PolicyEngine | None = None,
        rate_limiter: RateLimiter | None = None,
        cache: ToolResultCache | None = None,
        spool: SpoolStore | None = None,
        spool_policy: SpoolPolicy | None = None,
    ) -> None:
        self.policy = policy
        self.rate_limiter = rate_limiter
        self.cache = cache
        self.spool = spool
        self.spool_policy = spool_policy or SpoolPolicy()

    # -- stages 1-4 ----------------------------------------------------------------------------------

    def screen(
        self, call: ToolCall, tools: ToolRegistry, context: PolicyContext | None, workspace: Path | None
    ) -> Screened:
        """Resolve, decide, check the arguments and preflight the sandbox.

        `context` is what the policy decides on; it may be ``None`` only when the pipeline has no policy.
        """
        tool = tools.get(call.name)
        if tool is None:
            return Screened(call, None, None, failed_result(call, *_unknown(call.name, tools)))
        malformed = malformed_arguments(call)
        if malformed is not None:
            return Screened(call, tool, None, malformed)
        spec = tool.spec
        if self.policy is not None:
            if context is None:
                raise ValueError("a pipeline with a policy screens calls with a PolicyContext")
            decision: PolicyDecision | None = self.policy.evaluate(call, spec, context)
        elif spec.requires_confirmation:
            decision = _CONFIRM
        else:
            decision = None
        if decision is not None and not decision.allowed:
            code = (
                ToolErrorCode.PERMISSION_ESCALATION_REQUIRED
                if decision.escalation is not None
                else ToolErrorCode.PERMISSION_DENIED
            )
            reason = decision.reason or "the policy denies this call"
            return Screened(call, tool, decision, failed_result(call, code, reason, {"rule": decision.policy_rule_id}))
        problems = argument_problems(spec.parameters, call.arguments)
        if problems:
            message = f"invalid arguments for {spec.name}: " + "; ".join(problems)
            return Screened(call, tool, decision, failed_result(call, ToolErrorCode.INVALID_ARGUMENTS, message))
        violation = _sandbox_violation(call, spec, workspace)
        if violation is not None:
            return Screened(call, tool, decision, violation)
        return Screened(call, tool, decision)

    # -- stages 5-6 ----------------------------------------------------------------------------------

    @property
    def gates(self) -> bool:
        """Whether `gate` can hold a call back (a rate limiter or a cache is set); if not, skip it."""
        return self.rate_limiter is not None or self.cache is not None

    async def gate(self, screened: Screened, context: ToolContext) -> ToolResult | None:
        """Apply the rate limit and the cache: return a result when the call must not (or need not) run."""
        call, spec = screened.call, screened.spec
        assert spec is not None, "only screened-in calls reach the gate"
        if self.rate_limiter is not None:
            wait = await self.rate_limiter.acquire(call, spec)
            if wait is not None:
                return failed_result(
                    call,
                    ToolErrorCode.RATE_LIMITED,
                    f"{spec.name} is rate limited: try again in {wait:.1f} s",
                    {"retry_after_s": round(wait, 3)},
                )
        if self.cache is not None and spec.effect is ToolEffect.NONE:
            cached = await self.cache.get(call, context)
            if cached is not None:
                return cached.model_copy(update={"tool_call_id": call.id, "cached": True, "duration_ms": 0.0})
        return None

    # -- stages 7-8 ----------------------------------------------------------------------------------

    async def execute(
        self, screened: Screened, context: ToolContext, timeout_s: float, *, reconcile: bool = False
    ) -> ToolResult:
        """Run the tool under its timeout, spool a large output, and update the cache.

        With `reconcile`, call the tool's ``reconcile`` hook instead (a ``compensable`` call whose
        outcome a crash left unknown). Never raises for a tool failure: every failure becomes an error
        result. Cancellation propagates.
        """
        call, tool = screened.call, screened.tool
        assert tool is not None
        spec = tool.spec
        started = time.perf_counter()
        failure: tuple[ToolErrorCode, str, Mapping[str, JsonValue]] | None = None
        try:
            with timeout(timeout_s):
                if reconcile:
                    assert isinstance(tool, ReconcilableTool)
                    data = await tool.reconcile(call, context)
                else:
                    data = await tool.invoke(call.arguments, context)
        except TimeoutError:
            failure = (
                ToolErrorCode.TIMEOUT,
                f"{spec.name} did not finish within {timeout_s:g} s",
                {"timeout_s": timeout_s},
            )
        except ToolExecutionError as error:
            failure = _error_code(error.code), str(error), error.details
        except Exception as error:  # a tool that breaks its contract must not take the run down
            failure = ToolErrorCode.EXECUTION_FAILED, f"{type(error).__name__}: {error}", {}
        duration_ms = (time.perf_counter() - started) * 1000.0
        if failure is None:
            try:
                content = _content(data)
                if self.spool is not None and self.spool_policy.needs_spool(content):
                    result = await self._spooled(call, content, duration_ms)
                else:
                    result = _plain_result(call, data, content, duration_ms)
            except Exception as error:  # an unserialisable value, a failing spool store
                message = f"{spec.name} returned a result that could not be recorded: {type(error).__name__}: {error}"
                result = failed_result(call, ToolErrorCode.EXECUTION_FAILED, message, duration_ms=duration_ms)
        else:
            result = failed_result(call, *failure, duration_ms=duration_ms)
        if self.cache is not None and not is_completion_tool(spec.name):
            await self._update_cache(spec, call, context, result)
        return result

    async def _update_cache(self, spec: ToolSpec, call: ToolCall, context: ToolContext, result: ToolResult) -> None:
        try:
            assert self.cache is not None
            if spec.effect is not ToolEffect.NONE:
                await self.cache.invalidate()
            elif result.error is None:
                await self.cache.put(call, context, result)
        except Exception:  # the result stands; a broken cache only costs (and logs) a miss
            _log.exception("tool result cache %r failed for %s", self.cache, call.name)

    async def _spooled(self, call: ToolCall, content: str, duration_ms: float) -> ToolResult:
        assert self.spool is not None
        view, ref = await spool_output(content, self.spool, self.spool_policy)
        return ToolResult(tool_call_id=call.id, tool_name=call.name, content=view, spool=ref, duration_ms=duration_ms)


def _plain_result(call: ToolCall, data: JsonValue, content: str, duration_ms: float) -> ToolResult:
    # A text result is its content: keeping it in `data` too would store (and replay) it twice.
    structured = None if isinstance(data, str) else data
    fields = {"tool_call_id": call.id, "tool_name": call.name, "content": content, "duration_ms": duration_ms}
    if structured is not None:
        fields["data"] = structured
    return trusted(ToolResult, fields)


def _unknown(name: str, tools: ToolRegistry) -> tuple[ToolErrorCode, str]:
    available = ", ".join(spec.name for spec in tools.specs())
    return ToolErrorCode.RESOURCE_NOT_FOUND, f"there is no tool named {name!r}; available tools: {available}"


def _error_code(code: str) -> ToolErrorCode:
    try:
        return ToolErrorCode(code)
    except ValueError:
        return ToolErrorCode.EXECUTION_FAILED


def _sandbox_violation(call: ToolCall, spec: ToolSpec, workspace: Path | None) -> ToolResult | None:
    if workspace is None or spec.category not in _SANDBOXED_CATEGORIES:
        return None
    sandbox = Workspace(workspace)
    for key in PATH_ARGUMENTS:
        for value in path_values({key: call.arguments.get(key)}):
            try:
                sandbox.resolve(value)
            except ToolExecutionError as error:
                return failed_result(call, _error_code(error.code), str(error), {"argument": key})
    return None
