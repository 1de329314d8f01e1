"""How commands print records: one JSON object per line with ``--json``, short text otherwise."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from runtime_core.approvals import Approval
from runtime_core.events import Event
from runtime_core.runs import Run, RunResult

__all__ = [
    "RUN_LINE_HEADER",
    "approval_json",
    "echo_json",
    "event_json",
    "result_json",
    "run_json",
    "run_line",
    "status_text",
]

_TASK_WIDTH = 48


def echo_json(value: object) -> None:
    """Print `value` as one JSON line on stdout."""
    click.echo(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def result_json(result: RunResult, approvals: Sequence[Approval] = ()) -> dict[str, Any]:
    """The ``--json`` line of ``run``, ``resume`` and ``fork``: the result, its cost and pending approvals."""
    return {
        **result.model_dump(mode="json"),
        "summary": result.completion.summary if result.completion is not None else None,
        "cost_usd": result.usage.cost_usd,
        "approvals": [approval_json(approval) for approval in approvals],
    }


def run_json(run: Run) -> dict[str, Any]:
    """A run record, with its cost at the top level like a result's."""
    return {**run.model_dump(mode="json"), "cost_usd": run.usage.cost_usd}


def event_json(event: Event) -> dict[str, Any]:
    """An event of the run log as ``events --json`` prints it."""
    return event.model_dump(mode="json", include={"seq", "type", "turn", "ts", "tool_call_id", "payload"})


def approval_json(approval: Approval) -> dict[str, Any]:
    """An approval request, with the tool it is for at the top level."""
    return {**approval.model_dump(mode="json"), "tool": approval.tool_call.name}


def status_text(run: Run) -> str:
    """A run's status, with its reason when that says more (``waiting_approval (approval_required)``)."""
    return run.status.value if run.reason in (None, run.status.value) else f"{run.status.value} ({run.reason})"


def run_line(run: Run) -> str:
    """One row of ``runs list``."""
    task = " ".join(run.task.split())
    task = task if len(task) <= _TASK_WIDTH else task[: _TASK_WIDTH - 1] + "…"
    return (
        f"{run.id}  {status_text(run):<34} {run.turns:>5}  {run.usage.total_tokens:>8,}  ${run.usage.cost_usd:<8.4f}"
        f" {run.agent.name}  {task}"
    )


RUN_LINE_HEADER = f"{'RUN':<30}  {'STATUS':<34} {'TURNS':>5}  {'TOKENS':>8}  {'COST':<8}  AGENT  TASK"
"""The header above `run_line` rows."""
