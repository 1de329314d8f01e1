"""A scripted agent on SQLite that kills itself (SIGKILL) at a chosen point: the crash test's subject.

Usage::

    python crash_agent.py DB_PATH LEDGER_PATH start RUN_ID KILL_POINT
    python crash_agent.py DB_PATH LEDGER_PATH resume RUN_ID [allow|deny|none]

Kill points: ``before_append:N`` / ``after_append:N`` (around the N-th commit of the run log),
``in_tool_before`` / ``in_tool_after`` (inside the unsafe tool, before or after its effect), ``none``.
The final line printed is a JSON object with the run's status and reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runtime_core import AgentSpec, Approval, ApprovalDecision, ApprovalResolution, RecoveryConfig, ToolEffect, tool
from runtime_core.checkpoints import Checkpoint
from runtime_core.events import EventDraft
from runtime_core.stores import Lease
from runtime_execution import AgentLoop, LocalToolRegistry, ScriptedProvider, builtin_tools
from runtime_persistence import SqlRunStore, create_engine, upgrade

SCRIPT = {
    "steps": [
        {"tool_calls": [{"name": "file:list", "arguments": {}}]},
        {"tool_calls": [{"name": "ledger:append", "arguments": {"line": "paid"}}]},
        {"tool_calls": [{"name": "complete_task", "arguments": {"summary": "paid once"}}]},
    ]
}
AGENT = AgentSpec(name="payer", model="scripted:crash", recovery=RecoveryConfig(enabled=False))


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class KillingStore(SqlRunStore):
    """Counts the run log's commits and dies around the chosen one."""

    def __init__(self, *args: Any, kill: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kill = kill
        self.appends = 0

    async def append(self, lease: Lease, events: Sequence[EventDraft], checkpoint: Checkpoint | None = None) -> Any:
        self.appends += 1
        if self.kill == f"before_append:{self.appends}":
            die()
        placed = await super().append(lease, events, checkpoint)
        if self.kill == f"after_append:{self.appends}":
            die()
        return placed


class Approver:
    def __init__(self, decision: ApprovalDecision) -> None:
        self.decision = decision

    async def decide(self, approval: Approval) -> ApprovalResolution:
        return ApprovalResolution(approval_id=approval.id, decision=self.decision, resolved_by="crash-test")


async def main(argv: list[str]) -> dict[str, Any]:
    db, ledger, mode, run_id, option = argv[0], Path(argv[1]), argv[2], argv[3], argv[4] if len(argv) > 4 else "none"
    kill = option if mode == "start" else "none"

    @tool(name="ledger:append", effect=ToolEffect.UNSAFE)
    async def append(line: str) -> str:
        """Append a line to the ledger (an effect that must never happen twice)."""
        if kill == "in_tool_before":
            die()
        with ledger.open("a") as handle:  # noqa: ASYNC230 - a tiny write, kept in line to crash exactly here
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if kill == "in_tool_after":
            die()
        return f"appended {line}"

    engine = create_engine(f"sqlite:///{db}")
    try:
        if mode == "start":
            upgrade(engine)
        store = KillingStore(engine, kill=kill)
        replies = (
            0
            if mode == "start"
            else sum(1 for e in await store.read_events(run_id) if e.type.value == "model.responded")
        )
        approvals = None if option in ("none", "") or mode == "start" else Approver(ApprovalDecision(option))
        loop = AgentLoop(
            providers=[ScriptedProvider(SCRIPT, start=replies)],
            tools=LocalToolRegistry([*builtin_tools(), append]),
            store=store,
            workspace=ledger.parent,
            approvals=approvals,
            worker=f"crash-agent-{os.getpid()}",
        )
        if mode == "start":
            handle = await loop.start(AGENT, "Pay once", run_id=run_id)
        else:
            handle = await loop.resume(run_id, steal=True)
        result = await handle.result()
        await store.close()
        return {"status": result.status.value, "reason": result.reason}
    finally:
        engine.dispose()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:]))), flush=True)
