"""How the stores run their transactions on an engine.

- **SQLite** runs each transaction inline, on the event loop's thread, on one connection the store keeps
  open for its lifetime. A transaction is a handful of statements that never wait for the network;
  handing it to a worker thread would cost more than running it (DESIGN §4: no thread hop per statement
  on the hot path). A lock serialises the store's transactions if several threads share the store; other
  connections (other stores, other processes) wait for the write lock up to the engine's busy timeout.
- **PostgreSQL** runs each whole transaction in a worker thread (``asyncio.to_thread``) on a connection
  from the engine's pool: a transaction waits on the network and maybe on row locks held by other
  workers, which must not block the event loop. One hop per transaction, not per statement.

Most operations run SQLAlchemy Core statements on a `Connection`. The hot path — the run store's append,
once or twice per turn — runs `Prepared` statements straight on the driver's cursor instead: each is a
Core statement compiled once for the engine's dialect, with SQLAlchemy's own type processors applied to
its parameters, so the SQL and the stored values are exactly what Core would send, without the
~15-20 µs that SQLAlchemy's execution machinery adds to every statement. Reads of many rows (a run's log,
the events a loaded checkpoint references) run that way too: Core's result rows cost ~1.5 µs each.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar, cast

from sqlalchemy import Dialect, Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from runtime_persistence._revisions import outdated_error, schema_revisions
from runtime_persistence.exceptions import DatabaseError
from runtime_persistence.schema import SCHEMA_REVISION

__all__ = ["SQLITE_BEGIN_KEY", "Database", "Direct", "Prepared", "database_errors"]

T = TypeVar("T")

SQLITE_BEGIN_KEY: Final = "agent_runtime.begin"
"""Key in a SQLite connection's ``info`` naming the ``BEGIN`` statement of its next transaction.

The engine's ``begin`` listener (`runtime_persistence.engine`) emits it, or a plain ``BEGIN`` without it.
"""


class Prepared:
    """A Core statement compiled once for a dialect, to run on the driver's cursor (see `Direct`).

    Args:
        statement: A statement whose parameters are all named bind parameters supplied at execution.
        dialect: The engine's dialect.
    """

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if not isinstance(compiled, SQLCompiler):
            raise TypeError(f"not a SQL statement: {statement!r}")
        self.sql: str = compiled.string
        binds = compiled.binds
        names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(binds)
        self._positional = compiled.positional
        # (name, SQLAlchemy's bind processor for the parameter's type on this dialect, or None): the values
        # Core would send. The dialect's implementation of the type, as Core takes it: a type decorator's
        # own processor would stop at its generic `impl` (a SQLite timestamp would reach the driver as a
        # datetime, for sqlite3's deprecated adapter to write in another format than Core's).
        self._plan: tuple[tuple[str, Callable[[Any], Any] | None], ...] = tuple(
            (name, binds[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names
        )

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        """Return `values` as the driver takes them: processed, and in order for a positional paramstyle."""
        if self._positional:
            return [values[name] if process is None else process(values[name]) for name, process in self._plan]
        return {name: values[name] if process is None else process(values[name]) for name, process in self._plan}


class Direct:
    """Runs `Prepared` statements on one driver cursor, inside a transaction `Database.write_direct` opened."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def fetch_one(self, statement: Prepared, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Execute a query and return its first row."""
        self._cursor.execute(statement.sql, statement.parameters(values))
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    def execute(self, statement: Prepared, values: Mapping[str, Any]) -> None:
        """Execute a statement (on PostgreSQL its errors may surface at the next query or the commit)."""
        self._cursor.execute(statement.sql, statement.parameters(values))

    def execute_many(self, statement: Prepared, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute a statement once per row (one ``executemany``)."""
        self._cursor.executemany(statement.sql, [statement.parameters(row) for row in rows])

    def fetch_all(self, statement: Prepared, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute a query and return its rows, with the values the driver returns (no type processing)."""
        self._cursor.execute(statement.sql, statement.parameters(values))
        rows: list[tuple[Any, ...]] = self._cursor.fetchall()  # the driver's cursor is untyped
        return rows


class Database:
    """Runs one store's transactions on `engine` (see the module documentation for how).

    Args:
        engine: An engine from `runtime_persistence.create_engine`.
        check_schema: Verify on first use that the schema is at `SCHEMA_REVISION`.
    """

    def __init__(self, engine: Engine, *, check_schema: bool) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.inline = self.dialect == "sqlite"
        self._connection: Connection | None = None
        self._lock = threading.Lock()
        self._schema_checked = not check_schema
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error

    def prepare(self, statement: ClauseElement) -> Prepared:
        """Compile `statement` for this engine's dialect."""
        return Prepared(statement, self.engine.dialect)

    async def write(self, operation: str, work: Callable[[Connection], T]) -> T:
        """Run `work` in a write transaction (SQLite: ``BEGIN IMMEDIATE``) and commit it."""
        if self.inline:
            return self._inline(operation, work, "BEGIN IMMEDIATE")
        return await asyncio.to_thread(self._pooled, operation, work)

    async def read(self, operation: str, work: Callable[[Connection], T]) -> T:
        """Run `work` in a read transaction (a consistent snapshot)."""
        if self.inline:
            return self._inline(operation, work, None)
        return await asyncio.to_thread(self._pooled, operation, work)

    async def write_direct(self, operation: str, work: Callable[[Direct], T]) -> T:
        """Run `work` with `Prepared` statements in one write transaction on the driver, and commit it.

        On PostgreSQL the statements are pipelined: results are read only by queries (`Direct.fetch_one`),
        and a statement's error may surface at the next query or at the commit, rolling everything back.

        Raises:
            IntegrityError: A constraint refused a statement (the transaction was rolled back).
            DatabaseError: The database failed (the transaction was rolled back).
        """
        return await self._run_direct(operation, work, "BEGIN IMMEDIATE")

    async def read_direct(self, operation: str, work: Callable[[Direct], T]) -> T:
        """Run `work` with `Prepared` statements in one read transaction on the driver (as `read` does).

        Raises:
            DatabaseError: The database failed.
        """
        return await self._run_direct(operation, work, "BEGIN")

    async def _run_direct(self, operation: str, work: Callable[[Direct], T], begin: str) -> T:
        """`work` in a transaction on the driver: SQLite's opened with `begin`, inline; a pooled one in a thread."""
        if self.inline:
            with self._lock:
                connection = self._connected(operation)
                return self._direct(operation, connection.connection.dbapi_connection, work, begin)
        return await asyncio.to_thread(self._pooled_direct, operation, work)

    async def close(self) -> None:
        """Return the store's connection to the engine's pool (a later operation would take a new one)."""
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                connection.close()

    def _inline(self, operation: str, work: Callable[[Connection], T], begin: str | None) -> T:
        with self._lock:
            connection = self._connected(operation)
            try:
                if begin is not None:
                    connection.info[SQLITE_BEGIN_KEY] = begin
                with connection.begin():
                    return work(connection)
            except IntegrityError:
                raise  # the store maps constraint violations to its own errors
            except DBAPIError as exc:
                raise _database_error(operation, exc) from exc

    def _pooled(self, operation: str, work: Callable[[Connection], T]) -> T:
        try:
            self._check_pooled()
            with self.engine.begin() as connection:
                return work(connection)
        except IntegrityError:
            raise
        except DBAPIError as exc:
            raise _database_error(operation, exc) from exc

    def _pooled_direct(self, operation: str, work: Callable[[Direct], T]) -> T:
        try:
            self._check_pooled()
            raw = self.engine.raw_connection()
        except DBAPIError as exc:
            raise _database_error(operation, exc) from exc
        try:
            # psycopg opens the transaction with the first statement.
            return self._direct(operation, raw.driver_connection, work, None)
        except DatabaseError as exc:
            cause = exc.__cause__
            if isinstance(cause, self._driver_error) and self.engine.dialect.is_disconnect(
                cast(Any, cause), raw.driver_connection, None
            ):
                raw.invalidate(cause)  # never hand a broken connection to the next transaction
            raise
        finally:
            raw.close()

    def _direct(self, operation: str, driver: Any, work: Callable[[Direct], T], begin: str | None) -> T:
        cursor = driver.cursor()
        # psycopg's pipeline mode sends statements without waiting for each result: a query's fetch and the
        # commit are the only round trips (an append: two, whatever it writes). Errors surface there.
        pipeline = driver.pipeline() if self.dialect == "postgresql" else contextlib.nullcontext()
        try:
            with pipeline:
                if begin is not None:
                    cursor.execute(begin)
                result = work(Direct(cursor))
                driver.commit()
            return result
        except BaseException as exc:
            with contextlib.suppress(self._driver_error):  # a broken connection: the original error says why
                driver.rollback()
            if not isinstance(exc, self._driver_error):
                raise
            wrapped = DBAPIError.instance(None, None, exc, self._driver_error)
            if isinstance(wrapped, IntegrityError):
                raise wrapped from exc  # the store maps constraint violations to its own errors
            if not isinstance(wrapped, DBAPIError):  # pragma: no cover - instance() wraps driver errors
                raise
            raise _database_error(operation, wrapped) from exc
        finally:
            cursor.close()

    def _connected(self, operation: str) -> Connection:
        connection = self._connection
        if connection is not None and not connection.closed and not connection.invalidated:
            return connection
        if connection is not None:
            connection.close()
            self._connection = None
        try:
            connection = self.engine.connect()
        except DBAPIError as exc:
            raise _database_error(operation, exc) from exc
        try:
            if not self._schema_checked:
                self._check_schema(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _check_pooled(self) -> None:
        if not self._schema_checked:
            with self.engine.connect() as connection:
                self._check_schema(connection)

    def _check_schema(self, connection: Connection) -> None:
        with connection.begin():
            revisions = schema_revisions(connection)
        if revisions != [SCHEMA_REVISION]:
            raise outdated_error(self.engine, revisions)
        self._schema_checked = True


@contextlib.contextmanager
def database_errors(operation: str) -> Iterator[None]:
    """Raise the driver's errors inside the block as `DatabaseError`s (for the migration functions)."""
    try:
        yield
    except DBAPIError as exc:
        raise _database_error(operation, exc) from exc


def _database_error(operation: str, exc: DBAPIError) -> DatabaseError:
    return DatabaseError(
        f"{operation} failed: {exc.orig if exc.orig is not None else exc}",
        operation=operation,
        retryable=_retryable(exc),
    )


def _retryable(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    if isinstance(exc.orig, sqlite3.Error):
        # sqlite3 reports a missing table as an OperationalError too: only a busy database is worth a retry.
        message = str(exc.orig).lower()
        return "locked" in message or "busy" in message
    # psycopg: lost connections, serialization failures and deadlocks are OperationalErrors.
    return isinstance(exc, OperationalError)
