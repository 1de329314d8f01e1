"""What every command shares: exit codes, the project configuration, the database, errors as one line."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from runtime_core.exceptions import LeaseHeldError, UserError
from runtime_facade.config import ProjectConfig, load_config
from runtime_facade.runtime import Runtime, create_runtime
from runtime_persistence import DatabaseError, SchemaOutdatedError, default_sqlite_url

__all__ = [
    "EXIT_DIVERGED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "EXIT_WAITING",
    "CliState",
    "database_option",
    "json_option",
    "fail",
    "one_line_errors",
    "run_async",
    "schema_problem",
    "state",
]

EXIT_OK = 0
"""The run completed (or the command did what it was asked)."""
EXIT_FAILED = 1
"""The run failed or was cancelled; ``db check``: the schema is behind."""
EXIT_USAGE = 2
"""Bad input: unknown id, invalid file, unreachable or outdated database, wrong options."""
EXIT_DIVERGED = 3
"""``replay``: the replay differs from the log."""
EXIT_WAITING = 4
"""The run waits for an approval (answer it with ``approve``, then ``resume``)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C: the run was cancelled (128 + SIGINT, the shell convention)."""

_T = TypeVar("_T")


@dataclass
class CliState:
    """The global options, resolved once per invocation (``click.Context.obj``).

    Attributes:
        config_path: ``--config``: the project configuration file (default: the nearest ``agent-runtime.toml``).
        database: ``--db``: a database URL given on the command line (wins over the configuration).
    """

    config_path: Path | None = None
    database: str | None = None
    _config: ProjectConfig | None = field(default=None, repr=False)

    @property
    def config(self) -> ProjectConfig:
        """The project configuration with its ``AGENT_RUNTIME_*`` overrides (read on first use)."""
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def database_url(self) -> str:
        """The database the command works on: ``--db``, else the configuration's, else the embedded default."""
        return self.database or self.config.database.url or default_sqlite_url(self.config.root)

    def runtime(self) -> Runtime:
        """A runtime on the command's database (the embedded default is upgraded on first use, nothing else).

        File and shell tools of agents that name no workspace work in ``[runtime] workspace``, else in the
        current directory.

        Raises:
            SchemaOutdatedError: A named database is behind (``agent-runtime db upgrade``).
            DatabaseError: The database cannot be reached.
        """
        config = self.config
        return create_runtime(
            self.database, config=config, workspace=config.resolve(config.runtime.workspace) or Path.cwd()
        )


def _set_database(context: click.Context, parameter: click.Parameter, value: str | None) -> None:
    if value is not None:
        context.ensure_object(CliState).database = value


database_option = click.option(
    "--db",
    metavar="URL",
    expose_value=False,
    callback=_set_database,
    help="Database URL (default: [database] url of agent-runtime.toml, else .agent-runtime/runtime.db).",
)
"""``--db URL`` on every command that uses the database."""

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per line) on stdout.")
"""``--json`` on every command that prints records."""


def state() -> CliState:
    """The current invocation's `CliState`."""
    return click.get_current_context().find_object(CliState) or CliState()


def run_async(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run a command's coroutine on a fresh event loop."""
    return asyncio.run(coroutine)


def fail(message: str, code: int = EXIT_USAGE) -> click.exceptions.Exit:
    """Print `message` on stderr and return the exception that ends the command with `code` (raise it)."""
    click.echo(f"error: {message}", err=True)
    return click.exceptions.Exit(code)


def schema_problem(error: SchemaOutdatedError) -> str:
    """What is wrong with the schema, and the command that fixes it (not the library call)."""
    return error.problem if error.ahead else f"{error.problem}: run `agent-runtime db upgrade`"


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn bad input into one line on stderr and exit status 2 (one line per problem of an invalid file).

    Ctrl-C outside a run (which handles it itself) ends with status 130, without a traceback.
    """
    try:
        yield
    except SchemaOutdatedError as error:
        raise fail(schema_problem(error)) from None
    except DatabaseError as error:  # the driver's message may run over several lines: its first says it
        raise fail(f"cannot use the database: {str(error).splitlines()[0]}") from None
    except (UserError, LeaseHeldError) as error:
        for line in str(error).splitlines() or [type(error).__name__]:
            click.echo(f"error: {line}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from None
    except ImportError as error:  # an optional dependency missing: the message names the extra
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
