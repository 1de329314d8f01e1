"""Commands that drive runs (``run``, ``resume``, ``fork``, ``replay``, ``cancel``) and read them (``runs``)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

import click

from runtime_core.events import Event
from runtime_core.runs import RunResult, RunStatus
from runtime_execution import ReplayReport, RunHandle
from runtime_facade.cli.context import (
    EXIT_DIVERGED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_WAITING,
    database_option,
    json_option,
    run_async,
    state,
)
from runtime_facade.cli.output import RUN_LINE_HEADER, echo_json, result_json, run_json, run_line, status_text
from runtime_facade.cli.progress import ProgressView
from runtime_facade.runtime import Runtime

__all__ = ["cancel", "drive", "follow", "fork", "replay", "resume", "run", "runs", "show_result"]

_AGENT_FILE = click.Path(exists=False, dir_okay=False, path_type=Path)


async def drive(handle: RunHandle, view: ProgressView, *, after_seq: int = 0) -> tuple[RunResult, bool]:
    """Show a run's events until its driver returns; Ctrl-C cancels the run instead of killing the process.

    Returns:
        The result, and whether it was interrupted by Ctrl-C.
    """
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        handle.cancel("interrupted (Ctrl-C)")

    loop = asyncio.get_running_loop()
    with suppress(NotImplementedError):  # Windows: Ctrl-C stays a KeyboardInterrupt
        loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        async for item in handle.events(after_seq=after_seq, deltas=False):
            if isinstance(item, Event):
                view.show(item)
        return await handle.result(), interrupted
    finally:
        with suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)


async def show_result(runtime: Runtime, result: RunResult, *, as_json: bool, interrupted: bool = False) -> int:
    """Print a run's outcome (and how to go on when it waits for an approval); return the exit status."""
    approvals = await runtime.pending_approvals(result.run_id) if result.status is RunStatus.WAITING_APPROVAL else ()
    if as_json:
        echo_json(result_json(result, approvals))
    elif result.status is RunStatus.COMPLETED:
        click.echo(f"run {result.run_id} completed in {result.turns} turn(s): {result.output or ''}")
    else:
        detail = f": {result.error}" if result.error else ""
        click.echo(f"run {result.run_id} {result.status.value} ({result.reason}){detail}")
    if approvals:
        db = f" --db {state().database}" if state().database else ""
        for approval in approvals:
            click.echo(f"waiting for approval {approval.id}: {approval.tool_call.name} ({approval.reason})", err=True)
            click.echo(f"  answer it:  agent-runtime approve{db} {approval.id}   (or --deny)", err=True)
        click.echo(f"  then:       agent-runtime resume{db} {result.run_id}", err=True)
    if interrupted:
        return EXIT_INTERRUPTED
    if result.status is RunStatus.COMPLETED:
        return EXIT_OK
    return EXIT_WAITING if result.status is RunStatus.WAITING_APPROVAL else EXIT_FAILED


async def follow(runtime: Runtime, handle: RunHandle, *, as_json: bool, shown: Sequence[Event] = ()) -> int:
    """Show a run's progress until its driver returns, then its outcome; return the exit status.

    `shown` are the events recorded before (a resumed run's): the view skips them and the decisions the
    resumed turn repeats.
    """
    with ProgressView() as view:
        view.remember(shown)
        result, interrupted = await drive(handle, view, after_seq=shown[-1].seq if shown else 0)
    return await show_result(runtime, result, as_json=as_json, interrupted=interrupted)


def _read_task(task: str) -> str:
    return sys.stdin.read() if task == "-" else task


@click.command()
@click.argument("agent_file", type=_AGENT_FILE)
@click.option("--task", "-t", required=True, help="What the agent should do ('-' reads it from stdin).")
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Root of the file and shell tools, instead of the agent file's workspace (default: the file's, "
    "else [runtime] workspace, else the current directory).",
)
@database_option
@json_option
def run(agent_file: Path, task: str, workspace: Path | None, as_json: bool) -> None:
    """Run an agent to its end, or until it waits for an approval.

    Exit status: 0 completed, 1 failed or cancelled, 4 waiting for an approval, 130 interrupted.
    """
    runtime = state().runtime()

    async def go() -> int:
        async with runtime:
            handle = await runtime.start(str(agent_file), _read_task(task), workspace=workspace)
            return await follow(runtime, handle, as_json=as_json)

    raise click.exceptions.Exit(run_async(go()))


@click.command()
@click.argument("run_id")
@click.option("--steal", is_flag=True, help="Take the run over from a worker known to be dead.")
@database_option
@json_option
def resume(run_id: str, steal: bool, as_json: bool) -> None:
    """Continue a run from its last checkpoint (after an approval, a crash or Ctrl-C).

    Exit status as for `run`.
    """
    runtime = state().runtime()

    async def go() -> int:
        async with runtime:
            before = [event async for event in runtime.events(run_id)]
            handle = await runtime.resume(run_id, steal=steal)
            return await follow(runtime, handle, as_json=as_json, shown=before)

    raise click.exceptions.Exit(run_async(go()))


@click.command()
@click.argument("run_id")
@click.option("--at-turn", type=click.IntRange(min=0), required=True, help="Start after this finished turn.")
@click.option("--agent", "agent_file", type=_AGENT_FILE, help="Go on with this agent instead of the run's.")
@database_option
@json_option
def fork(run_id: str, at_turn: int, agent_file: Path | None, as_json: bool) -> None:
    """Start a new run from the end of a turn of another run.

    Exit status as for `run`.
    """
    runtime = state().runtime()

    async def go() -> int:
        async with runtime:
            agent = None if agent_file is None else str(agent_file)
            handle = await runtime.fork(run_id, at_turn=at_turn, agent=agent)
            click.echo(f"forked run {run_id} at turn {at_turn} into {handle.run_id}", err=True)
            return await follow(runtime, handle, as_json=as_json)

    raise click.exceptions.Exit(run_async(go()))


@click.command()
@click.argument("run_id")
@click.option("--agent", "agent_file", type=_AGENT_FILE, help="Replay with this agent (policy, tools, scenario).")
@database_option
@json_option
def replay(run_id: str, agent_file: Path | None, as_json: bool) -> None:
    """Re-drive a run offline and compare its decisions with its log.

    Exit status: 0 identical, 3 on divergence (the first one is printed).
    """
    runtime = state().runtime()

    async def go() -> ReplayReport:
        async with runtime:
            return await runtime.replay(run_id, agent=None if agent_file is None else str(agent_file))

    report = run_async(go())
    if as_json:
        echo_json(report.model_dump(mode="json"))
    elif report.identical:
        click.echo(f"replay of {run_id}: identical ({report.decisions} decisions)")
    else:
        assert report.divergence is not None  # a report that is not identical says where
        where = report.divergence
        click.echo(f"replay of {run_id}: diverges at decision {where.index + 1} (seq {where.seq}, turn {where.turn})")
        click.echo(f"  expected: {where.expected or '(nothing: the log ends here)'}")
        click.echo(f"  actual:   {where.actual or '(nothing: the replay ended here)'}")
    raise click.exceptions.Exit(EXIT_OK if report.identical else EXIT_DIVERGED)


@click.command()
@click.argument("run_id")
@click.option("--reason", help="Recorded with the cancellation.")
@database_option
@json_option
def cancel(run_id: str, reason: str | None, as_json: bool) -> None:
    """Cancel a run that has not ended (its pending approvals are denied)."""
    runtime = state().runtime()

    async def go() -> None:
        async with runtime:
            cancelled = await runtime.cancel(run_id, reason)
        if as_json:
            echo_json(run_json(cancelled))
        else:
            click.echo(f"run {run_id} {cancelled.status.value}")

    run_async(go())


@click.group()
def runs() -> None:
    """List and show recorded runs."""


@runs.command("list")
@click.option("--status", type=click.Choice([status.value for status in RunStatus]), help="Only runs in this state.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most this many.")
@database_option
@json_option
def list_runs(status: str | None, limit: int, as_json: bool) -> None:
    """The most recent runs, newest first."""
    runtime = state().runtime()

    async def go() -> None:
        async with runtime:
            found = await runtime.list_runs(status=None if status is None else RunStatus(status), limit=limit)
        if as_json:
            for item in found:
                echo_json(run_json(item))
            return
        click.echo(RUN_LINE_HEADER)
        for item in found:
            click.echo(run_line(item))

    run_async(go())


@runs.command("show")
@click.argument("run_id")
@database_option
@json_option
def show_run(run_id: str, as_json: bool) -> None:
    """One run's record."""
    runtime = state().runtime()

    async def go() -> None:
        async with runtime:
            found = await runtime.get_run(run_id)
        if as_json:
            echo_json(run_json(found))
            return
        fields = {
            "run": found.id,
            "agent": f"{found.agent.name} ({found.agent.model})",
            "task": found.task,
            "status": status_text(found),
            "turns": found.turns,
            "tokens": f"{found.usage.input_tokens:,} in / {found.usage.output_tokens:,} out",
            "cost": f"${found.usage.cost_usd:.4f}",
            "events": found.last_seq,
            "parent": found.parent_run_id,
            "created": found.created_at.isoformat(),
            "updated": found.updated_at.isoformat(),
        }
        for name, value in fields.items():
            if value is not None:
                click.echo(f"{name + ':':<9}{value}")

    run_async(go())
