"""PostgreSQL fixtures of the persistence tests: they run everywhere, CI included, and never skip silently.

- ``postgres_server`` (session): a throwaway PostgreSQL server (``tests/postgres.py``) started once per test
  session: ``initdb`` into a temp dir, 127.0.0.1 only, random port, run as the ``postgres`` system user when the
  tests run as root. It is stopped and its directory deleted at the end of the session, also on failure.
- ``postgres_url`` (function): the SQLAlchemy URL (``postgresql+psycopg://...``) of a fresh, empty database
  created for the test and dropped after it, so that tests never see each other's tables.
- ``postgres_bindir`` (session): the PostgreSQL binaries, for tests that start servers of their own.
- ``url`` (function, one per backend): a SQLite file or a fresh PostgreSQL database; ``engine``: an engine on
  it with the schema at head (a test module that needs another engine overrides it).

Environment variables:

- ``AGENT_RUNTIME_TEST_POSTGRES_URL=postgresql://user[:password]@host:port/database``: use that existing
  server instead of starting one; each test's database is created and dropped there.
- ``AGENT_RUNTIME_SKIP_POSTGRES=1``: when PostgreSQL cannot run here (no binaries), skip the PostgreSQL tests
  with that reason. Without it, missing binaries **fail** these tests with instructions: CI must prove the
  PostgreSQL backend, so a machine that cannot run it is an error there, not a skip. The variable only permits
  skipping what cannot run (with the binaries present the tests run anyway) and is refused when ``CI`` is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import Engine

from tests.persistence.support import BACKENDS, backend_url, migrated_engine
from tests.postgres import ENV_URL, PostgresServer, PostgresUnavailableError, find_bindir

ENV_SKIP = "AGENT_RUNTIME_SKIP_POSTGRES"


def postgres_unavailable(reason: str) -> NoReturn:
    """Fail with ``reason`` and how to fix it, or skip when ``AGENT_RUNTIME_SKIP_POSTGRES=1`` asks to."""
    if os.environ.get(ENV_SKIP) == "1":
        if os.environ.get("CI"):
            pytest.fail(f"{ENV_SKIP}=1 is not honoured in CI (CI is set): {reason}", pytrace=False)
        pytest.skip(f"{ENV_SKIP}=1: {reason}")
    pytest.fail(
        f"{reason}\nThe PostgreSQL tests must run (DESIGN §13). Install the PostgreSQL server binaries, or set "
        f"{ENV_URL}=postgresql://user@host:port/database to use an existing server, or set {ENV_SKIP}=1 "
        "to skip them explicitly on this machine (never in CI).",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def postgres_bindir() -> Path:
    """The directory of the PostgreSQL binaries (fails, or skips on request, when there is none)."""
    try:
        return find_bindir()
    except PostgresUnavailableError as exc:
        reason = str(exc)  # reported outside the except block: no "during handling" traceback noise
    if os.environ.get(ENV_URL, "").strip():
        # The developer chose an external server: only the tests that start servers of their own cannot run.
        pytest.skip(f"{ENV_URL} is set and no PostgreSQL binaries are installed: {reason}")
    postgres_unavailable(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server: a throwaway one, or the one ``AGENT_RUNTIME_TEST_POSTGRES_URL`` names."""
    try:
        server = PostgresServer.from_environment()
    except PostgresUnavailableError as exc:
        reason = str(exc)
    else:
        with server:
            yield server
        return
    postgres_unavailable(reason)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """SQLAlchemy URL of a fresh database for this test, dropped afterwards (open connections included)."""
    # The test name in the database name helps when looking at a shared server; the suffix makes it unique.
    stem = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40]
    name = f"t_{stem}_{os.urandom(4).hex()}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    with migrated_engine(url) as engine:
        yield engine
