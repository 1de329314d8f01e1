"""Log records made while a run is driven carry its id, agent and turn (runtime_telemetry.RunContextFilter)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from runtime_core.function_tools import tool
from runtime_core.tools import ToolEffect
from runtime_execution import AgentLoop, ScriptedProvider
from runtime_telemetry import RunContextFilter, current_log_context
from tests.execution.loop._support import agent, call, calls, done


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(RunContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("parallel", [False, True])
def test_a_tools_records_carry_the_run_and_turn(parallel: bool) -> None:
    logger = logging.getLogger("runtime_execution.tests.tool")

    @tool(name="note:log", effect=ToolEffect.NONE)
    async def log_note(text: str) -> str:
        logger.warning("tool says %s", text)
        return "logged"

    first = [call("note:log", text="one"), call("note:log", text="two")] if parallel else [call("note:log", text="a")]
    handler = Records()
    logger.addHandler(handler)
    try:
        loop = AgentLoop(
            providers=[ScriptedProvider({"steps": [calls(*first), calls(call("note:log", text="b")), done("ok")]})],
            tools=[log_note],
        )
        result = asyncio.run(loop.run(agent(), "log"))
    finally:
        logger.removeHandler(handler)
    assert result.ok
    seen = [(record.getMessage(), record.run_id, record.agent, record.turn) for record in handler.records]  # type: ignore[attr-defined]
    texts = ["one", "two"] if parallel else ["a"]
    assert sorted(seen) == sorted(
        [(f"tool says {text}", result.run_id, agent().name, 1) for text in texts]
        + [("tool says b", result.run_id, agent().name, 2)]
    )
    assert current_log_context() == {}  # nothing leaks out of the run
