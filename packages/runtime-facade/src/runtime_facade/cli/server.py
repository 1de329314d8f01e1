"""``serve``: the HTTP API (`runtime_facade.api`, which needs the ``server`` extra)."""

from __future__ import annotations

import click

from runtime_facade.cli.context import database_option, state

__all__ = ["serve"]


@click.command()
@click.option("--host", help="Interface to bind (default: [server] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="TCP port (default: [server] port, 8321; 0: any free one).")
@click.option("--token-file", type=click.Path(dir_okay=False), help="File holding the bearer token of the API.")
@database_option
def serve(host: str | None, port: int | None, token_file: str | None) -> None:
    """Serve the HTTP API until interrupted (only on a loopback address unless a token is configured)."""
    # Imported here: without the `server` extra the import fails with an ImportError naming it (one line, exit 2).
    from runtime_facade.api import serve as serve_api

    serve_api(
        state().config,
        database=state().database,
        host=host,
        port=port,
        token_file=token_file,
        announce=lambda url: click.echo(f"Agent Runtime API listening on {url}", err=True),  # whatever the log level
    )
