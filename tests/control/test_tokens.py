"""Token counting: the heuristic's documented rule, the chat-format arithmetic, and exact tiktoken counts."""

from __future__ import annotations

import json
import sys

import pytest
import tiktoken

from runtime_control.tokens import (
    DEFAULT_ENCODING,
    HeuristicTokenCounter,
    TiktokenCounter,
    estimate_tokens,
)
from runtime_core.messages import AssistantMessage, Message, SystemMessage, ToolResultMessage, UserMessage
from runtime_core.providers import ModelRequest, TokenCounter
from runtime_core.tools import ToolCall, ToolSpec

CALL = ToolCall(id="call_1", name="file:read", arguments={"path": "README.md"})
SPEC = ToolSpec(
    name="file:read",
    description="Read a file.",
    parameters={"type": "object", "properties": {"path": {"type": "string"}}},
)
CONVERSATION: tuple[Message, ...] = (
    SystemMessage(content="You are terse."),
    UserMessage(content="Summarise the README."),
    AssistantMessage(content="Reading it.", tool_calls=(CALL,)),
    ToolResultMessage(tool_call_id="call_1", tool_name="file:read", content="# Agent Runtime\n"),
)


def tiny_encoding() -> tiktoken.Encoding:
    """A byte-level BPE with two merges ("ab", then "abc"), built locally: no download."""
    ranks = {bytes([byte]): byte for byte in range(256)}
    ranks[b"ab"] = 256
    ranks[b"abc"] = 257
    return tiktoken.Encoding(name="tiny", pat_str=r"\s+|\S+", mergeable_ranks=ranks, special_tokens={})


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("", 0), ("abcd", 1), ("abcde", 2), ("x" * 400, 100), ("é", 1), ("日本語", 3), ("日本語テキスト", 6)],
)
def test_heuristic_counts_four_utf8_bytes_per_token_rounded_up(text: str, tokens: int) -> None:
    assert HeuristicTokenCounter().count_text(text) == tokens


def test_heuristic_ratio_is_configurable() -> None:
    assert HeuristicTokenCounter(bytes_per_token=2).count_text("abcdef") == 3
    assert HeuristicTokenCounter(bytes_per_token=3.5).count_text("abcdefgh") == 3
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="bytes_per_token"):
            HeuristicTokenCounter(bytes_per_token=bad)


def test_conversation_arithmetic_by_hand() -> None:
    counter = HeuristicTokenCounter()

    def t(text: str) -> int:
        return counter.count_text(text)

    arguments = json.dumps(CALL.arguments, separators=(",", ":"))
    schema = json.dumps(SPEC.parameters, separators=(",", ":"), sort_keys=True)
    expected = (
        3  # reply priming
        + (3 + t("You are terse."))
        + (3 + t("Summarise the README."))
        + (3 + t("Reading it.") + 3 + t("file:read") + t(arguments))
        + (3 + t("file:read") + t("# Agent Runtime\n"))
        + (8 + t("file:read") + t("Read a file.") + t(schema))
    )
    assert counter.count_messages(CONVERSATION, [SPEC]) == expected
    assert estimate_tokens(CONVERSATION, [SPEC]) == expected
    assert counter.count_messages([]) == 3
    assert counter.count_messages([AssistantMessage()]) == 6


def test_count_request_counts_messages_and_tools() -> None:
    request = ModelRequest(model="gpt-4.1", messages=CONVERSATION, tools=(SPEC,), max_output_tokens=500)
    counter = HeuristicTokenCounter()
    assert counter.count_request(request) == counter.count_messages(CONVERSATION, [SPEC])


def test_counters_satisfy_the_protocol() -> None:
    assert isinstance(HeuristicTokenCounter(), TokenCounter)
    assert isinstance(TiktokenCounter(tiny_encoding()), TokenCounter)


def test_tiktoken_counts_exactly_with_a_local_encoding() -> None:
    counter = TiktokenCounter(tiny_encoding())
    assert counter.count_text("abc abc") == 3  # "abc", " ", "abc"
    assert counter.count_text("abd") == 2  # "ab", "d"
    assert counter.count_text("héllo") == 6  # no merges: one token per UTF-8 byte
    assert counter.count_text("<|endoftext|>") == len("<|endoftext|>")  # special-token text is plain text
    messages: list[Message] = [UserMessage(content="abc abc"), AssistantMessage(tool_calls=(CALL,))]
    arguments = json.dumps(CALL.arguments, separators=(",", ":"))
    expected = 3 + (3 + 3) + (3 + 0 + 3 + len("file:read") + len(arguments.encode()))
    assert counter.count_messages(messages) == expected


def test_tiktoken_encoding_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    requested: list[str] = []

    def get_encoding(name: str) -> tiktoken.Encoding:
        requested.append(name)
        return tiny_encoding()

    # tiktoken would download the named encoding's BPE file; tests never reach the network.
    monkeypatch.setattr(tiktoken, "get_encoding", get_encoding)
    assert TiktokenCounter().count_text("abc") == 1
    assert TiktokenCounter("cl100k_base").encoding.name == "tiny"
    assert requested == [DEFAULT_ENCODING, "cl100k_base"]


def test_missing_tiktoken_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    with pytest.raises(ImportError, match=r"runtime-control\[tiktoken\]"):
        TiktokenCounter()
