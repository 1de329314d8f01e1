"""The ``agent-runtime`` command group: global options, logging, versions and the subcommands."""

from __future__ import annotations

import logging
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import click

from runtime_facade.cli.approvals import approvals, approve
from runtime_facade.cli.context import CliState, one_line_errors
from runtime_facade.cli.database import db
from runtime_facade.cli.demo import demo
from runtime_facade.cli.events import events
from runtime_facade.cli.runs import cancel, fork, replay, resume, run, runs
from runtime_facade.cli.server import serve
from runtime_facade.otel import configure_otel
from runtime_telemetry import PLANE_LOGGERS, JsonFormatter, RunContextFilter

__all__ = ["DISTRIBUTIONS", "cli", "main"]

DISTRIBUTIONS = (
    "runtime-core",
    "runtime-telemetry",
    "runtime-control",
    "runtime-persistence",
    "runtime-execution",
    "runtime-facade",
)
"""The six packages of Agent Runtime, whose versions ``--version`` prints."""

_LOG_LEVELS = ("debug", "info", "warning", "error")


class _Commands(click.Group):
    """The root group: every error of bad input, in any subcommand, becomes one line and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        with one_line_errors():
            return super().invoke(ctx)


def _print_versions(context: click.Context, parameter: click.Parameter, value: bool) -> None:
    if not value or context.resilient_parsing:
        return
    for distribution in DISTRIBUTIONS:
        click.echo(f"{distribution} {version(distribution)}")
    context.exit()


def _configure_logging(level: str, as_json: bool) -> None:
    """Send the planes' log records to stderr (the CLI is the application: it may configure logging)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RunContextFilter())
    handler.setFormatter(
        JsonFormatter({"service": "agent-runtime"})
        if as_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    for name in PLANE_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level.upper())


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_versions,
    help="Print the versions of the six packages and exit.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Project configuration file (default: the nearest agent-runtime.toml).",
)
@click.option(
    "--log-level", type=click.Choice(_LOG_LEVELS), help="Level of log records on stderr (default: [telemetry])."
)
@click.option("--log-json", is_flag=True, default=None, help="Log records as JSON lines (default: [telemetry]).")
@click.option(
    "--otel",
    is_flag=True,
    default=None,
    help="Send traces and metrics over OTLP/HTTP to $OTEL_EXPORTER_OTLP_ENDPOINT (otel extra; default: [telemetry]).",
)
@click.pass_context
def cli(
    context: click.Context, config_path: Path | None, log_level: str | None, log_json: bool | None, otel: bool | None
) -> None:
    """Agent Runtime: run LLM agents deterministically, durably and under governance.

    Runs are stored in the project's database: --db URL, else [database] url of agent-runtime.toml
    (AGENT_RUNTIME_DATABASE_URL), else .agent-runtime/runtime.db in the project directory.

    Exit status: 0 done, 1 run failed or cancelled, 2 bad input, 3 replay diverged, 4 waiting for an
    approval, 130 interrupted.
    """
    state = context.ensure_object(CliState)
    state.config_path = config_path
    telemetry = state.config.telemetry
    _configure_logging(log_level or telemetry.log_level, telemetry.log_json if log_json is None else log_json)
    if telemetry.otel if otel is None else otel:
        providers = configure_otel()  # without the extra: one line naming it (see `_Commands`)
        context.call_on_close(providers.shutdown)  # flush what the command recorded before the process ends


for _command in (run, resume, replay, fork, cancel, runs, events, approvals, approve, db, serve, demo):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``agent-runtime`` console script."""
    cli.main(prog_name="agent-runtime")
