"""Execution plane of Agent Runtime.

The agent loop, the tool registry and pipeline, built-in and MCP tools, model providers over httpx,
routing, context compaction, caches, SOP, delegation, DAG orchestration and the CLI-agent runner.
It reaches durable state only through `runtime_core` protocols, never `runtime_persistence`.
"""

from importlib.metadata import version as _version

from runtime_execution.loop import (
    WILDCARD,
    AgentLoop,
    AgentStatus,
    Decision,
    Divergence,
    InMemoryToolCache,
    LoopEvent,
    ModelDelta,
    Rate,
    ReplayReport,
    ResourceAccess,
    ResourceResolver,
    ResumeRepeats,
    RunControl,
    RunHandle,
    Screened,
    SpoolPolicy,
    TokenBucketRateLimiter,
    ToolPipeline,
    can_transition,
    decisions,
    default_resources,
    failed_result,
    plan_groups,
    spool_output,
)
from runtime_execution.providers import (
    AnthropicProvider,
    OpenAIProvider,
    RecordedProvider,
    Scenario,
    ScriptedError,
    ScriptedProvider,
    ScriptedStep,
    ScriptedToolCall,
)
from runtime_execution.tools import (
    DEFAULT_MCP_CONNECT_TIMEOUT_S,
    DEFAULT_MCP_TIMEOUT_S,
    DEFAULT_SHELL_OUTPUT_BYTES,
    DEFAULT_SHELL_TIMEOUT_S,
    CompleteTaskTool,
    LocalToolRegistry,
    MCPServer,
    MCPStdioParameters,
    MCPTool,
    ToolRegistryView,
    Workspace,
    builtin_tools,
    complete_task,
    file_edit,
    file_info,
    file_list,
    file_read,
    file_search,
    file_tools,
    file_write,
    shell_run,
    shell_tool,
)

__version__ = _version("runtime-execution")

__all__ = [
    # metadata
    "__version__",
    # the agent loop
    "AgentLoop",
    "AgentStatus",
    "LoopEvent",
    "ModelDelta",
    "RunControl",
    "RunHandle",
    "can_transition",
    # replay
    "Decision",
    "Divergence",
    "decisions",
    "ReplayReport",
    "ResumeRepeats",
    # the tool pipeline and its plug-ins
    "WILDCARD",
    "InMemoryToolCache",
    "Rate",
    "ResourceAccess",
    "ResourceResolver",
    "Screened",
    "SpoolPolicy",
    "TokenBucketRateLimiter",
    "ToolPipeline",
    "default_resources",
    "failed_result",
    "plan_groups",
    "spool_output",
    # model providers
    "AnthropicProvider",
    "OpenAIProvider",
    "RecordedProvider",
    "Scenario",
    "ScriptedError",
    "ScriptedProvider",
    "ScriptedStep",
    "ScriptedToolCall",
    # tool registries and the workspace sandbox
    "LocalToolRegistry",
    "ToolRegistryView",
    "Workspace",
    # built-in tools
    "DEFAULT_SHELL_OUTPUT_BYTES",
    "DEFAULT_SHELL_TIMEOUT_S",
    "CompleteTaskTool",
    "builtin_tools",
    "complete_task",
    "file_edit",
    "file_info",
    "file_list",
    "file_read",
    "file_search",
    "file_tools",
    "file_write",
    "shell_run",
    "shell_tool",
    # MCP servers (extra "mcp")
    "DEFAULT_MCP_CONNECT_TIMEOUT_S",
    "DEFAULT_MCP_TIMEOUT_S",
    "MCPServer",
    "MCPStdioParameters",
    "MCPTool",
]
