"""The built-in ``complete_task`` tool: the one call that ends a run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from pydantic import JsonValue, ValidationError

from runtime_core.exceptions import ToolExecutionError
from runtime_core.tools import COMPLETION_TOOL_NAME, CompleteTaskInput, ToolContext, ToolEffect, ToolSpec

__all__ = ["CompleteTaskTool", "complete_task"]


class CompleteTaskTool:
    """Validate the completion contract (`CompleteTaskInput`) and return it as data.

    The tool only checks and echoes the arguments; the agent loop reads the result and ends the run.
    Its effect is ``none``: calling it again changes nothing.
    """

    def __init__(self) -> None:
        schema = CompleteTaskInput.model_json_schema()
        schema.pop("title", None)
        self._spec = ToolSpec(
            name=COMPLETION_TOOL_NAME,
            description=(
                "Finish the task: give a summary of what was done, optionally the artifacts produced "
                "(paths or identifiers) and suggested next steps. Call it exactly once, at the end."
            ),
            parameters=cast(dict[str, JsonValue], schema),
            effect=ToolEffect.NONE,
            category="control",
        )

    @property
    def spec(self) -> ToolSpec:
        """The tool's specification."""
        return self._spec

    async def invoke(self, arguments: Mapping[str, Any], context: ToolContext) -> JsonValue:
        """Validate `arguments` against `CompleteTaskInput` and return the validated arguments.

        Raises:
            ToolExecutionError: ``INVALID_ARGUMENTS`` when the arguments break the completion contract.
        """
        try:
            parsed = CompleteTaskInput.model_validate(dict(arguments))
        except ValidationError as error:
            raise ToolExecutionError.invalid_arguments(COMPLETION_TOOL_NAME, error) from None
        return cast(JsonValue, parsed.model_dump(mode="json"))


complete_task = CompleteTaskTool()
"""The ``complete_task`` tool."""
