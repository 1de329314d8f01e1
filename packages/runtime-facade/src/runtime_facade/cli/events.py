"""``events``: a run's log, as text or JSON lines, optionally followed until the run ends."""

from __future__ import annotations

import click

from runtime_facade.cli.context import database_option, json_option, run_async, state
from runtime_facade.cli.output import echo_json, event_json
from runtime_facade.cli.progress import describe

__all__ = ["events"]


@click.command()
@click.argument("run_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until the run ends.")
@click.option("--after", type=click.IntRange(min=0), default=0, help="Only events after this seq.")
@database_option
@json_option
def events(run_id: str, follow: bool, after: int, as_json: bool) -> None:
    """Print a run's recorded events (with --json: one object per line with seq, type, turn, ts, payload)."""
    runtime = state().runtime()

    async def go() -> None:
        async with runtime:
            async for event in runtime.events(run_id, after_seq=after, follow=follow):
                if as_json:
                    echo_json(event_json(event))
                else:
                    line = describe(event)
                    click.echo(f"{event.seq:>5} {event.turn:>3} {event.type.value:<20} {(line or '').strip()}")

    run_async(go())
