"""Execution plane of Agent Runtime.

The agent loop, the tool registry and pipeline, built-in and MCP tools, model providers over httpx,
routing, context compaction, caches, SOP, delegation, DAG orchestration and the CLI-agent runner.
It reaches durable state only through `runtime_core` protocols, never `runtime_persistence`.
"""

from importlib.metadata import version as _version

__version__ = _version("runtime-execution")

__all__ = [
    # metadata
    "__version__",
]
