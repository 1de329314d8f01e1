"""``serve``: the HTTP API (``runtime_facade.api``, which needs the ``server`` extra)."""

from __future__ import annotations

import importlib

import click

from runtime_facade.cli.context import database_option, fail, state

__all__ = ["serve"]


@click.command()
@click.option("--host", help="Interface to bind (default: [server] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="TCP port (default: [server] port, 8321).")
@click.option("--token-file", type=click.Path(dir_okay=False), help="File holding the bearer token of the API.")
@database_option
def serve(host: str | None, port: int | None, token_file: str | None) -> None:
    """Serve the HTTP API until interrupted (127.0.0.1 unless a token is configured)."""
    try:
        # Imported here: the API and its server dependencies are an optional extra.
        api = importlib.import_module("runtime_facade.api")
    except ModuleNotFoundError as error:
        if error.name != "runtime_facade.api":
            raise  # a missing dependency of the API: its ImportError names the extra
        raise fail("the HTTP API is not part of this installation of runtime-facade") from None
    api.serve(state().config, database=state().database, host=host, port=port, token_file=token_file)
