"""Model providers: OpenAI Chat Completions, Anthropic Messages, scripted scenarios and recorded runs.

Every provider implements `runtime_core.providers.ModelProvider`. The HTTP providers take an injected
`httpx.AsyncClient`, retry 429, 5xx, timeouts and connection errors with capped exponential backoff
honouring ``Retry-After``, and raise `runtime_core.exceptions.ProviderError` for every failure.
"""

from runtime_execution.providers.anthropic import AnthropicProvider
from runtime_execution.providers.openai import OpenAIProvider
from runtime_execution.providers.recorded import RecordedProvider
from runtime_execution.providers.scripted import (
    Scenario,
    ScriptedError,
    ScriptedProvider,
    ScriptedStep,
    ScriptedToolCall,
)

__all__ = [
    # HTTP providers
    "AnthropicProvider",
    "OpenAIProvider",
    # scripted scenarios
    "ScriptedProvider",
    "Scenario",
    "ScriptedStep",
    "ScriptedToolCall",
    "ScriptedError",
    # replay of a run log
    "RecordedProvider",
]
