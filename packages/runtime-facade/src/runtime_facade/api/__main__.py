"""``python -m runtime_facade.api``: serve the HTTP API without the CLI (``agent-runtime serve`` is the same)."""

from __future__ import annotations

import argparse
import logging
import sys

from runtime_core.exceptions import UserError
from runtime_facade.api.server import serve
from runtime_facade.config import load_config


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, configure logging (this is an application) and serve; 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m runtime_facade.api", description=__doc__)
    parser.add_argument("--db", help="SQLAlchemy URL of the database (default: the project's)")
    parser.add_argument("--host", help="interface to bind (default: server.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default: server.port, 8321; 0: any free port)")
    parser.add_argument("--token-file", help="file holding the bearer token")
    parser.add_argument("--config", help="agent-runtime.toml to read (default: the nearest one)")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("runtime_facade", "uvicorn"):
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        serve(
            load_config(options.config),
            database=options.db,
            host=options.host,
            port=options.port,
            token_file=options.token_file,
        )
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
