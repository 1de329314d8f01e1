"""The live view of a run on stderr: turns, tool calls, policy decisions, approvals and cost.

On a terminal it is a rich view (event lines scrolling above a status line with the turn, the tokens and
the cost); otherwise plain lines, one per event worth showing, for logs and pipes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from types import TracebackType
from typing import Self

import click
from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from runtime_core.approvals import ApprovalDecision
from runtime_core.events import (
    ApprovalRequestedPayload,
    ApprovalResolvedPayload,
    Event,
    ModelRespondedPayload,
    PolicyDecidedPayload,
    RecoveryStartedPayload,
    RunCancelledPayload,
    RunCompletedPayload,
    RunCreatedPayload,
    RunFailedPayload,
    RunStartedPayload,
    ToolCalledPayload,
    ToolFailedPayload,
    ToolFinishedPayload,
    TurnFinishedPayload,
    TurnStartedPayload,
)
from runtime_core.usage import Usage
from runtime_execution import ResumeRepeats

__all__ = ["ProgressView", "describe"]

_ARGUMENTS_WIDTH = 80
_ANSWERS = {ApprovalDecision.ALLOW: "allowed", ApprovalDecision.DENY: "denied"}
_STYLES = {
    "policy.decided": "yellow",
    "approval.requested": "bold magenta",
    "approval.resolved": "magenta",
    "tool.failed": "red",
    "run.failed": "bold red",
    "run.cancelled": "bold red",
    "run.completed": "bold green",
    "turn.started": "bold",
}


def describe(event: Event) -> str | None:
    """One line for an event worth showing in a run's progress (``None`` for bookkeeping events)."""
    payload = event.payload
    if isinstance(payload, RunCreatedPayload):
        return f"run {event.run_id} · agent {payload.agent.name} · {payload.agent.model}"
    if isinstance(payload, RunStartedPayload):
        return "resumed" if payload.resumed else None
    if isinstance(payload, TurnStartedPayload):
        return f"turn {event.turn}" + (" (recovery)" if payload.recovery else "")
    if isinstance(payload, ToolCalledPayload):
        return f"  call {payload.call.name} {_arguments(payload.call.arguments)}"
    if isinstance(payload, PolicyDecidedPayload):
        decision = payload.decision
        verdict = decision.policy_action or decision.policy_decision  # engines may leave the action unset
        return f"  policy {verdict.value} {payload.tool_name} ({decision.reason})"
    if isinstance(payload, ApprovalRequestedPayload):
        return f"  approval {payload.approval_id} requested for {payload.call.name}"
    if isinstance(payload, ApprovalResolvedPayload):
        by = f" by {payload.resolved_by}" if payload.resolved_by else ""
        answer = "expired (denied)" if payload.expired else _ANSWERS[payload.decision]
        return f"  approval {payload.approval_id} {answer}{by}"
    if isinstance(payload, ToolFinishedPayload):
        return f"  done {payload.result.tool_name}"
    if isinstance(payload, ToolFailedPayload):
        retry = " (retrying)" if payload.will_retry else ""
        return f"  failed {payload.result.tool_name}: {payload.error.code.value}: {payload.error.message}{retry}"
    if isinstance(payload, RecoveryStartedPayload):
        return f"recovery turn ({payload.trigger})"
    if isinstance(payload, TurnFinishedPayload):
        return f"  {payload.tool_calls} tool call(s) · {_usage(payload.usage)}"
    if isinstance(payload, RunCompletedPayload):
        return f"completed: {payload.summary}"
    if isinstance(payload, RunFailedPayload):
        return f"failed ({payload.reason}): {payload.message}"
    if isinstance(payload, RunCancelledPayload):
        return f"cancelled: {payload.reason or 'by request'}"
    return None


def _arguments(arguments: object) -> str:
    text = json.dumps(arguments, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= _ARGUMENTS_WIDTH else text[: _ARGUMENTS_WIDTH - 1] + "…"


def _usage(usage: Usage) -> str:
    return f"{usage.input_tokens:,} in / {usage.output_tokens:,} out tokens · ${usage.cost_usd:.4f}"


class ProgressView:
    """Shows a run's events on stderr as they arrive (``with ProgressView() as view: view.show(event)``).

    A resumed run repeats the decisions of the turn it was interrupted in (`ResumeRepeats`); the view shows
    each once, also across processes once told what was shown before (`remember`).

    Args:
        live: Draw the rich view (default: when stderr is a terminal).
    """

    def __init__(self, *, live: bool | None = None) -> None:
        self._console = Console(stderr=True, highlight=False)
        self._live_enabled = self._console.is_terminal if live is None else live
        self._live: Live | None = None
        self._repeats = ResumeRepeats()
        self._usage = Usage()
        self._turn = 0

    def __enter__(self) -> Self:
        if self._live_enabled:
            self._live = Live(self._status(), console=self._console, transient=True, refresh_per_second=8)
            self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def remember(self, events: Iterable[Event]) -> None:
        """Take events shown before (by another process) into account without showing them."""
        for event in events:
            self._count(event)

    def show(self, event: Event) -> None:
        """Show one event (if it is worth a line) and update the totals."""
        if not self._count(event):
            return
        line = describe(event)
        if line is not None:
            self.note(line, style=_STYLES.get(event.type.value))
        if self._live is not None:
            self._live.update(self._status())

    def note(self, text: str, *, style: str | None = None) -> None:
        """Show a line that is not an event (what the demo does, say)."""
        if self._live is None:
            click.echo(text, err=True)
        else:
            self._live.console.print(Text(text, style=style or ""))

    def _count(self, event: Event) -> bool:
        """Update the totals; whether the event is new (not a resumed turn's repeat)."""
        if self._repeats.is_repeat(event):
            return False
        if isinstance(event.payload, ModelRespondedPayload):
            self._usage = self._usage + event.payload.usage
        self._turn = max(self._turn, event.turn)
        return True

    def _status(self) -> Spinner:
        return Spinner("dots", Text(f"turn {self._turn} · {_usage(self._usage)}", style="dim"))
