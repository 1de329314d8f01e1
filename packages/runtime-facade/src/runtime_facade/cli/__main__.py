"""``python -m runtime_facade.cli``: the same as the ``agent-runtime`` console script."""

from runtime_facade.cli import main

main()
