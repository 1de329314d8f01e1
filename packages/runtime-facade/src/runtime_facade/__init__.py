"""Facade of Agent Runtime.

The composition root `create_runtime()`, configuration, the `agent-runtime` CLI, the HTTP API,
workers and the demo. The only place that instantiates and wires concrete implementations.
"""

from importlib.metadata import version as _version

__version__ = _version("runtime-facade")

__all__ = [
    # metadata
    "__version__",
]
