"""The agent loop: orchestrator, turn executor, tool pipeline, batch scheduling and control signals."""

from runtime_execution.loop.agent import AgentLoop, LoopEvent, ModelDelta, RunHandle
from runtime_execution.loop.cache import InMemoryToolCache
from runtime_execution.loop.control import RunControl
from runtime_execution.loop.pipeline import Screened, ToolPipeline, failed_result
from runtime_execution.loop.ratelimit import Rate, TokenBucketRateLimiter
from runtime_execution.loop.replay import Decision, Divergence, ReplayReport, ResumeRepeats, decisions
from runtime_execution.loop.scheduling import (
    WILDCARD,
    ResourceAccess,
    ResourceResolver,
    default_resources,
    plan_groups,
)
from runtime_execution.loop.spooling import SpoolPolicy, spool_output
from runtime_execution.loop.states import AgentStatus, can_transition

__all__ = [
    "WILDCARD",
    "AgentLoop",
    "AgentStatus",
    "Decision",
    "Divergence",
    "decisions",
    "InMemoryToolCache",
    "LoopEvent",
    "ModelDelta",
    "Rate",
    "ReplayReport",
    "ResumeRepeats",
    "ResourceAccess",
    "ResourceResolver",
    "RunControl",
    "RunHandle",
    "Screened",
    "SpoolPolicy",
    "TokenBucketRateLimiter",
    "ToolPipeline",
    "can_transition",
    "default_resources",
    "failed_result",
    "plan_groups",
    "spool_output",
]
