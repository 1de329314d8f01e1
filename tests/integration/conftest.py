"""Fixtures of the cross-plane tests: the throwaway PostgreSQL server of the persistence tests.

Integration tests need every plane installed, so they run in the full workspace environment only (not
in the per-plane isolated environments of `scripts/check_planes.py`).
"""

from tests.persistence.conftest import postgres_bindir, postgres_server, postgres_url

__all__ = ["postgres_bindir", "postgres_server", "postgres_url"]
