"""Span, event and metric attribute names: the OpenTelemetry GenAI conventions and our own.

The GenAI semantic conventions are still experimental and their Python constants live in an incubating
package we do not depend on, so the names are spelled here once. Our own attributes use the
``agent_runtime.`` prefix; they join telemetry to the run log (run id, event ``seq``, tool call id) and
carry run-level aggregates under names of their own, so that a backend summing ``gen_ai.usage.*`` over
a trace never counts a model call twice.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AGENT_RUNTIME_APPROVAL_DECISION",
    "AGENT_RUNTIME_APPROVAL_EXPIRED",
    "AGENT_RUNTIME_APPROVAL_ID",
    "AGENT_RUNTIME_CACHE_NAME",
    "AGENT_RUNTIME_COMPACTION_STRATEGY",
    "AGENT_RUNTIME_COST_USD",
    "AGENT_RUNTIME_ERROR_CODE",
    "AGENT_RUNTIME_EVENT_SEQ",
    "AGENT_RUNTIME_PARENT_RUN_ID",
    "AGENT_RUNTIME_POLICY_DECISION",
    "AGENT_RUNTIME_POLICY_REASON_CODE",
    "AGENT_RUNTIME_QUEUE_NAME",
    "AGENT_RUNTIME_RECOVERY",
    "AGENT_RUNTIME_RECOVERY_TRIGGER",
    "AGENT_RUNTIME_RESUMED",
    "AGENT_RUNTIME_RUN_ID",
    "AGENT_RUNTIME_RUN_REASON",
    "AGENT_RUNTIME_RUN_STATUS",
    "AGENT_RUNTIME_TOOL_ATTEMPT",
    "AGENT_RUNTIME_TOOL_CACHED",
    "AGENT_RUNTIME_TOOL_EFFECT",
    "AGENT_RUNTIME_TOOL_OUTCOME",
    "AGENT_RUNTIME_TURN",
    "AGENT_RUNTIME_USAGE_TOTAL_COST_USD",
    "AGENT_RUNTIME_USAGE_TOTAL_INPUT_TOKENS",
    "AGENT_RUNTIME_USAGE_TOTAL_OUTPUT_TOKENS",
    "AGENT_RUNTIME_USAGE_TOTAL_TOOL_CALLS",
    "AGENT_RUNTIME_USAGE_TOTAL_TURNS",
    "ERROR_TYPE",
    "GEN_AI_AGENT_NAME",
    "GEN_AI_CONVERSATION_ID",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_PROVIDER_NAME",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_RESPONSE_FINISH_REASONS",
    "GEN_AI_RESPONSE_MODEL",
    "GEN_AI_TOKEN_TYPE",
    "GEN_AI_TOOL_CALL_ID",
    "GEN_AI_TOOL_NAME",
    "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
    "OPERATION_CHAT",
    "OPERATION_EXECUTE_TOOL",
    "OPERATION_INVOKE_AGENT",
    "TOKEN_TYPE_INPUT",
    "TOKEN_TYPE_OUTPUT",
    "TOOL_OUTCOME_DENIED",
    "TOOL_OUTCOME_ERROR",
    "TOOL_OUTCOME_SUCCESS",
]

# -- OpenTelemetry GenAI semantic conventions ---------------------------------------------------------

GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
"""The operation: ``invoke_agent``, ``chat`` or ``execute_tool``."""
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
"""The model provider (the part of ``"<provider>:<model>"`` before the colon)."""
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
"""The agent's name (``AgentSpec.name``)."""
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
"""The conversation: our run id."""
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
"""The model asked for (without the provider prefix)."""
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
"""The model that answered (without the provider prefix)."""
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
"""Why the model stopped, as a one-element list (``["tool_calls"]``)."""
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
"""Input tokens of one model call (``chat`` spans only)."""
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
"""Output tokens of one model call (``chat`` spans only)."""
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
"""Part of the input tokens served from the provider's prompt cache (set when not zero)."""
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
"""``input`` or ``output``, on the ``gen_ai.client.token.usage`` histogram."""
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
"""The tool's name as the model called it (``file:read``)."""
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
"""The tool call id (also the run log's ``tool_call_id``)."""
ERROR_TYPE: Final = "error.type"
"""The class of an error: a tool error code, a failure reason or ``model_error``."""

OPERATION_INVOKE_AGENT: Final = "invoke_agent"
"""``gen_ai.operation.name`` of the run span."""
OPERATION_CHAT: Final = "chat"
"""``gen_ai.operation.name`` of a model call span."""
OPERATION_EXECUTE_TOOL: Final = "execute_tool"
"""``gen_ai.operation.name`` of a tool call span."""
TOKEN_TYPE_INPUT: Final = "input"
"""``gen_ai.token.type`` of input tokens."""
TOKEN_TYPE_OUTPUT: Final = "output"
"""``gen_ai.token.type`` of output tokens."""

# -- Agent Runtime ------------------------------------------------------------------------------------

AGENT_RUNTIME_RUN_ID: Final = "agent_runtime.run_id"
"""The run id: every span of a run carries it."""
AGENT_RUNTIME_PARENT_RUN_ID: Final = "agent_runtime.parent_run_id"
"""The delegating run of a child run (on its run span)."""
AGENT_RUNTIME_EVENT_SEQ: Final = "agent_runtime.event.seq"
"""The ``seq`` of the run-log event that opened a span (or that a span event records)."""
AGENT_RUNTIME_TURN: Final = "agent_runtime.turn"
"""The turn number of a model or tool call."""
AGENT_RUNTIME_RECOVERY: Final = "agent_runtime.recovery"
"""True on the turn metric and on the model calls of the recovery turn."""
AGENT_RUNTIME_RECOVERY_TRIGGER: Final = "agent_runtime.recovery.trigger"
"""What started the recovery turn: ``max_turns``, ``soft_budget`` or ``wall_time``."""
AGENT_RUNTIME_RESUMED: Final = "agent_runtime.resumed"
"""True on a run span opened by a resumed driver (a ``run.started`` with ``resumed``)."""
AGENT_RUNTIME_COST_USD: Final = "agent_runtime.cost_usd"
"""Cost in USD of one model call (``chat`` spans)."""
AGENT_RUNTIME_RUN_STATUS: Final = "agent_runtime.run.status"
"""How the run ended: ``completed``, ``failed`` or ``cancelled``."""
AGENT_RUNTIME_RUN_REASON: Final = "agent_runtime.run.reason"
"""The terminal reason of a failed or cancelled run (``recovery_failed``, ``error:<code>``...)."""
AGENT_RUNTIME_USAGE_TOTAL_INPUT_TOKENS: Final = "agent_runtime.usage.total_input_tokens"
"""Run span aggregate: input tokens of the model calls this process saw."""
AGENT_RUNTIME_USAGE_TOTAL_OUTPUT_TOKENS: Final = "agent_runtime.usage.total_output_tokens"
"""Run span aggregate: output tokens of the model calls this process saw."""
AGENT_RUNTIME_USAGE_TOTAL_COST_USD: Final = "agent_runtime.usage.total_cost_usd"
"""Run span aggregate: cost in USD of the model calls this process saw."""
AGENT_RUNTIME_USAGE_TOTAL_TURNS: Final = "agent_runtime.usage.total_turns"
"""Run span aggregate: turns finished."""
AGENT_RUNTIME_USAGE_TOTAL_TOOL_CALLS: Final = "agent_runtime.usage.total_tool_calls"
"""Run span aggregate: tool calls the model made."""
AGENT_RUNTIME_TOOL_OUTCOME: Final = "agent_runtime.tool.outcome"
"""How a tool call ended: ``success``, ``error`` or ``denied``."""
AGENT_RUNTIME_TOOL_EFFECT: Final = "agent_runtime.tool.effect"
"""The effect class of a tool with effects (from ``tool.started``)."""
AGENT_RUNTIME_TOOL_ATTEMPT: Final = "agent_runtime.tool.attempt"
"""The attempt number of a tool call that is retried."""
AGENT_RUNTIME_TOOL_CACHED: Final = "agent_runtime.tool.cached"
"""True when the result came from the tool-result cache."""
AGENT_RUNTIME_ERROR_CODE: Final = "agent_runtime.error.code"
"""The code of an ``error`` event."""
AGENT_RUNTIME_POLICY_DECISION: Final = "agent_runtime.policy.decision"
"""The policy outcome: ``allow``, ``allow_with_confirm`` or ``deny``."""
AGENT_RUNTIME_POLICY_REASON_CODE: Final = "agent_runtime.policy.reason_code"
"""Why the policy decided as it did."""
AGENT_RUNTIME_APPROVAL_ID: Final = "agent_runtime.approval.id"
"""The id of an approval request."""
AGENT_RUNTIME_APPROVAL_DECISION: Final = "agent_runtime.approval.decision"
"""The answer to an approval request: ``allow`` or ``deny``."""
AGENT_RUNTIME_APPROVAL_EXPIRED: Final = "agent_runtime.approval.expired"
"""True when the approval request expired (and was denied)."""
AGENT_RUNTIME_COMPACTION_STRATEGY: Final = "agent_runtime.compaction.strategy"
"""The compaction strategy that ran."""
AGENT_RUNTIME_CACHE_NAME: Final = "agent_runtime.cache.name"
"""Which cache hit: ``tool_result``."""
AGENT_RUNTIME_QUEUE_NAME: Final = "agent_runtime.queue.name"
"""The queue a depth observation is about."""

TOOL_OUTCOME_SUCCESS: Final = "success"
"""The tool ran and succeeded."""
TOOL_OUTCOME_ERROR: Final = "error"
"""The tool failed (or could not run)."""
TOOL_OUTCOME_DENIED: Final = "denied"
"""The policy or an approver refused the call."""
