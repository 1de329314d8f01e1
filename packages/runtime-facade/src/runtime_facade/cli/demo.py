"""``demo``: the offline demo run, its approval, its replay and a summary of what happened."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click

from runtime_core.approvals import Approval
from runtime_facade.cli.context import EXIT_FAILED, EXIT_OK, database_option, run_async, state
from runtime_facade.cli.database import display_url
from runtime_facade.cli.progress import ProgressView
from runtime_facade.demo import DemoOutcome, prepare_workspace, run_demo

__all__ = ["demo"]


@click.command()
@click.option("--keep", is_flag=True, help="Keep the temporary workspace (its path is printed).")
@database_option
def demo(keep: bool) -> None:
    """Run the offline demo: a scripted agent fixes a bug under a policy that asks, then the run is replayed.

    The run is stored in the project's database like any other (`agent-runtime runs list` shows it).
    Exit status 0 when the run completed and its replay is identical, 1 otherwise.
    """
    directory = Path(tempfile.mkdtemp(prefix="agent-runtime-demo-"))
    try:
        workspace = prepare_workspace(directory)
        click.echo(f"demo workspace: {workspace} (a git repository with greet.py and its failing test)", err=True)
        runtime = state().runtime()

        async def go() -> DemoOutcome:
            async with runtime:
                with ProgressView() as view:

                    def approving(approval: Approval) -> None:
                        view.note(
                            f"demo approves {approval.id}: {approval.tool_call.name} on "
                            f"{approval.tool_call.arguments.get('path')} ({approval.reason})",
                            style="bold magenta",
                        )

                    return await run_demo(runtime, workspace, on_event=view.show, on_approval=approving)

        outcome = run_async(go())
        _summary(outcome, state().database_url(), workspace if keep else None)
    finally:
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)
    raise click.exceptions.Exit(EXIT_OK if outcome.ok else EXIT_FAILED)


def _summary(outcome: DemoOutcome, database: str, kept: Path | None) -> None:
    result, replay, usage = outcome.result, outcome.replay, outcome.usage
    tools = ", ".join(f"{name} x{count}" for name, count in outcome.tools.items())
    policy = ", ".join(f"{outcome.policy[action]} {action}" for action in ("allow", "ask", "deny"))
    if replay.identical:
        replayed = f"identical: {replay.decisions} decisions, zero divergence"
    else:
        assert replay.divergence is not None  # a report that is not identical says where
        where = replay.divergence
        replayed = f"DIVERGES at seq {where.seq}, turn {where.turn}: expected {where.expected}, got {where.actual}"
    rows = {
        "run": f"{result.run_id} {result.status.value} in {result.turns} turns",
        "tools called": f"{outcome.tools.total()}: {tools}",
        "policy": f"{outcome.policy.total()} decisions: {policy}",
        "approvals": f"{len(outcome.approvals)} asked, approved by the demo",
        "tokens": f"{usage.input_tokens:,} in / {usage.output_tokens:,} out ({usage.requests} model calls)",
        "cost": f"${usage.cost_usd:.4f} (a scripted model is free)",
        "replay": replayed,
        "database": display_url(database),
        "workspace": str(kept) if kept is not None else "removed (keep it with --keep)",
    }
    click.echo("\nDemo summary")
    for name, value in rows.items():
        click.echo(f"  {name:<13} {value}")
    click.echo("\ngreet.py, changed by the agent (git diff):")
    for line in outcome.diff.splitlines():
        click.echo(f"  {line}")
