"""Token counting: a fast heuristic to reserve budget before a model call, exact counts with tiktoken.

The heuristic ([`HeuristicTokenCounter`][runtime_control.tokens.HeuristicTokenCounter]) needs nothing
and runs in microseconds; it is what budgets reserve with. Exact counts for OpenAI tokenizers
([`TiktokenCounter`][runtime_control.tokens.TiktokenCounter]) need the optional extra
``runtime-control[tiktoken]``.

Both count a conversation the same way, following OpenAI's published chat format: every message costs
its text plus a fixed overhead for its role and separators, and every reply is primed with a few tokens.
Tool calls count their name and JSON arguments; tool definitions count their name, description and JSON
schema. Providers render tool definitions in their own internal format, so even the exact counter is
exact for text and close, not exact, for tools.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runtime_core.messages import AssistantMessage, Message, ToolResultMessage
from runtime_core.providers import ModelRequest
from runtime_core.tools import ToolSpec

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "DEFAULT_ENCODING",
    "HeuristicTokenCounter",
    "TiktokenCounter",
    "estimate_tokens",
]

DEFAULT_ENCODING = "o200k_base"
"""The tiktoken encoding of current OpenAI models (GPT-4o, GPT-4.1, GPT-5, o-series)."""

_MESSAGE_OVERHEAD = 3  # role and separators of one chat message (OpenAI cookbook)
_REPLY_OVERHEAD = 3  # every reply is primed with <|start|>assistant<|message|>
_TOOL_CALL_OVERHEAD = 3  # id and framing of one tool call in an assistant message
_TOOL_SPEC_OVERHEAD = 8  # framing of one tool definition in the request


class _ConversationCounter(ABC):
    """The chat-format arithmetic shared by every counter; subclasses count text."""

    @abstractmethod
    def count_text(self, text: str) -> int:
        """Return the number of tokens of `text`."""

    def count_messages(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> int:
        """Return the prompt tokens of `messages` and the definitions of `tools`.

        Args:
            messages: The conversation, in order.
            tools: The tools offered to the model.

        Returns:
            Message text plus per-message overhead, tool calls, tool definitions and reply priming.
        """
        total = _REPLY_OVERHEAD
        for message in messages:
            total += _MESSAGE_OVERHEAD + self._count_message(message)
        for spec in tools:
            schema = json.dumps(spec.parameters, separators=(",", ":"), sort_keys=True)
            total += _TOOL_SPEC_OVERHEAD + self.count_text(spec.name) + self.count_text(spec.description)
            total += self.count_text(schema)
        return total

    def count_request(self, request: ModelRequest) -> int:
        """Return the prompt tokens of `request` (messages and tools; not its output allowance)."""
        return self.count_messages(request.messages, request.tools)

    def _count_message(self, message: Message) -> int:
        if isinstance(message, AssistantMessage):
            total = self.count_text(message.content or "")
            for call in message.tool_calls:
                arguments = json.dumps(call.arguments, separators=(",", ":"), ensure_ascii=False)
                total += _TOOL_CALL_OVERHEAD + self.count_text(call.name) + self.count_text(arguments)
            return total
        if isinstance(message, ToolResultMessage):
            return self.count_text(message.tool_name) + self.count_text(message.content)
        return self.count_text(message.content)


class HeuristicTokenCounter(_ConversationCounter):
    """Estimates tokens without a tokenizer: one token per `bytes_per_token` bytes of UTF-8.

    For English text and code four bytes (four characters) per token is close to what BPE tokenizers
    produce; counting bytes rather than characters makes non-Latin scripts, which tokenize less
    efficiently, count more. The result is always rounded up.

    Args:
        bytes_per_token: Average UTF-8 bytes per token; lower values estimate more tokens (a safety
            margin for budgets).
    """

    def __init__(self, bytes_per_token: float = 4.0) -> None:
        if not (math.isfinite(bytes_per_token) and bytes_per_token > 0):
            raise ValueError(f"bytes_per_token must be a positive number, not {bytes_per_token!r}")
        self.bytes_per_token = bytes_per_token

    def count_text(self, text: str) -> int:
        """Return ``ceil(utf8_bytes / bytes_per_token)``."""
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        return math.ceil(size / self.bytes_per_token)


class TiktokenCounter(_ConversationCounter):
    """Exact token counts with a tiktoken encoding (extra ``runtime-control[tiktoken]``).

    tiktoken downloads the files of a named encoding on first use and caches them (``TIKTOKEN_CACHE_DIR``).
    Where nothing may reach the network, pass a ready `tiktoken.Encoding` built from local files, or
    pre-populate the cache.

    Args:
        encoding: A `tiktoken.Encoding`, or the name of one (``"o200k_base"`` for current OpenAI models,
            ``"cl100k_base"`` for GPT-4 and GPT-3.5).

    Raises:
        ImportError: tiktoken is not installed; the message names the extra.
    """

    def __init__(self, encoding: tiktoken.Encoding | str = DEFAULT_ENCODING) -> None:
        self.encoding = _get_encoding(encoding) if isinstance(encoding, str) else encoding

    def count_text(self, text: str) -> int:
        """Return the number of tokens of `text`; special-token text counts as ordinary text."""
        return len(self.encoding.encode_ordinary(text))


_HEURISTIC = HeuristicTokenCounter()


def estimate_tokens(messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> int:
    """Estimate the prompt tokens of a conversation with the default heuristic (4 bytes per token).

    Args:
        messages: The conversation.
        tools: The tools offered to the model.

    Returns:
        The estimated prompt tokens.
    """
    return _HEURISTIC.count_messages(messages, tools)


def _get_encoding(name: str) -> tiktoken.Encoding:
    # Imported here: tiktoken is an optional extra, and runtime_control must import without it.
    try:
        import tiktoken
    except ImportError as error:
        raise ImportError(
            "exact token counts need tiktoken: install the extra with `pip install 'runtime-control[tiktoken]'`"
        ) from error
    return tiktoken.get_encoding(name)
