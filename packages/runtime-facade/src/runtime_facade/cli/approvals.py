"""``approvals list`` and ``approve``: answering the policy's ``ask`` decisions."""

from __future__ import annotations

import getpass

import click

from runtime_facade.cli.context import database_option, json_option, run_async, state
from runtime_facade.cli.output import approval_json, echo_json

__all__ = ["approvals", "approve"]


@click.group()
def approvals() -> None:
    """Approval requests waiting for an answer."""


@approvals.command("list")
@click.option("--run", "run_id", metavar="RUN_ID", help="Only this run's requests.")
@database_option
@json_option
def list_approvals(run_id: str | None, as_json: bool) -> None:
    """The pending approval requests, oldest first."""
    runtime = state().runtime()

    async def go() -> None:
        async with runtime:
            if run_id is not None:
                await runtime.get_run(run_id)  # an unknown run is an error, not an empty list
            pending = await runtime.pending_approvals(run_id)
        for approval in pending:
            if as_json:
                echo_json(approval_json(approval))
            else:
                arguments = approval.tool_call.arguments
                click.echo(
                    f"{approval.id}  {approval.run_id}  {approval.tool_call.name} {arguments}  {approval.reason}"
                )

    run_async(go())


@click.command()
@click.argument("approval_id")
@click.option("--deny", is_flag=True, help="Refuse the call (the model is told; the run goes on).")
@click.option("--note", help="Recorded with the answer (and shown to the model on a denial).")
@database_option
@json_option
def approve(approval_id: str, deny: bool, note: str | None, as_json: bool) -> None:
    """Answer an approval request; continue its run with `agent-runtime resume RUN_ID`."""
    runtime = state().runtime()

    async def go() -> None:
        async with runtime:
            answered = await runtime.approve(approval_id, allow=not deny, note=note, resolved_by=_who())
        if as_json:
            echo_json(approval_json(answered))
            return
        click.echo(f"approval {answered.id} {answered.status.value} ({answered.tool_call.name})")
        click.echo(f"continue the run with: agent-runtime resume {answered.run_id}", err=True)

    run_async(go())


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return "cli"
