"""Fixtures of the facade tests: the throwaway PostgreSQL server of the persistence tests."""

from tests.persistence.conftest import postgres_bindir, postgres_server, postgres_url

__all__ = ["postgres_bindir", "postgres_server", "postgres_url"]
