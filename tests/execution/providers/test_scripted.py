"""ScriptedProvider specifics: scenario files, defaults, exhaustion."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from runtime_core.exceptions import ConfigurationError, ProviderError
from runtime_core.messages import UserMessage
from runtime_core.providers import FinishReason, ModelRequest, ResponseComplete
from runtime_core.tools import ToolCall
from runtime_core.usage import Usage
from runtime_execution.providers import Scenario, ScriptedProvider, ScriptedStep

ROOT = Path(__file__).resolve().parents[3]
REQUEST = ModelRequest(model="demo", messages=(UserMessage(content="Summarise the README, please."),))


def test_demo_scenario_file_plays_in_order() -> None:
    provider = ScriptedProvider.from_file(ROOT / "examples" / "scenarios" / "demo.toml")
    assert provider.name == "scripted"
    assert provider.remaining == 3

    async def play() -> None:
        first = await provider.complete(REQUEST)
        assert first.model == "demo"
        assert first.message.content == "Let me read the README first."
        assert first.message.tool_calls == (ToolCall(id="call_0_0", name="file:read", arguments={"path": "README.md"}),)
        assert first.finish_reason is FinishReason.TOOL_CALLS
        assert first.usage == Usage(input_tokens=120, output_tokens=18, cached_input_tokens=100, requests=1)
        with pytest.raises(ProviderError, match="overloaded") as caught:
            await provider.complete(REQUEST)
        assert (caught.value.status_code, caught.value.retryable) == (529, True)
        chunks = [chunk async for chunk in provider.stream(REQUEST)]
        final = chunks[-1]
        assert isinstance(final, ResponseComplete)
        assert final.response.message.tool_calls == (
            ToolCall(id="finish", name="complete_task", arguments={"summary": "Read the README."}),
        )
        assert final.response.latency_ms == pytest.approx(10.0)
        with pytest.raises(ProviderError, match="scenario exhausted: all 3 steps"):
            await provider.complete(REQUEST)

    asyncio.run(play())


def test_json_scenario_and_default_usage(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"steps": [{"text": "Twelve chars"}]}')
    response = asyncio.run(ScriptedProvider.from_file(path).complete(REQUEST))
    assert response.model == "scripted"
    assert response.message.content == "Twelve chars"
    # Default usage: about one token per four characters, deterministic.
    assert response.usage.output_tokens == 3
    assert response.usage.input_tokens > 0
    assert response.usage.requests == 1


def test_streaming_exhaustion_raises() -> None:
    provider = ScriptedProvider({"steps": []})

    async def consume() -> None:
        async for _ in provider.stream(REQUEST):
            pass

    with pytest.raises(ProviderError, match="scenario exhausted"):
        asyncio.run(consume())


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("bad.toml", "steps = [ not toml"),
        ("bad.json", '{"steps": [ not json'),
        ("unknown.json", '{"steps": [{"txt": "typo"}]}'),
        ("both.json", '{"steps": [{"text": "x", "error": {"message": "y"}}]}'),
    ],
)
def test_invalid_scenario_file_is_a_configuration_error(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigurationError, match="invalid scenario file"):
        ScriptedProvider.from_file(path)


def test_missing_scenario_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        ScriptedProvider.from_file(tmp_path / "absent.toml")


def test_error_step_cannot_carry_a_reply() -> None:
    with pytest.raises(ValidationError):
        ScriptedStep.model_validate({"text": "x", "error": {"message": "y"}})
    assert Scenario().steps == ()


def test_documented_scenario_matches_the_example_file() -> None:
    import re
    import tomllib

    docs = (ROOT / "docs" / "providers.md").read_text()
    block = re.search(r"```toml\n(.*?)```", docs, re.DOTALL)
    assert block is not None
    example = (ROOT / "examples" / "scenarios" / "demo.toml").read_text()
    assert tomllib.loads(block.group(1)) == tomllib.loads(example)
