"""The ``agent-runtime`` command line (see docs/cli.md).

Every command is a thin layer over `runtime_facade.Runtime`; bad input ends with one line on stderr and
exit status 2, never a traceback.
"""

from runtime_facade.cli.app import cli, main

__all__ = ["cli", "main"]
