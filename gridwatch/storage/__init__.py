"""The storage interface every backend implements, and :func:`open_store`.

SQL in the domain modules is written once, with ``?`` placeholders and the SQL
both DuckDB and PostgreSQL accept; a backend translates what it must.
Geometries cross the interface as WKB bytes, H3 cells as signed 64-bit ints
(an H3 index never sets the top bit).
"""

from __future__ import annotations

import abc
import contextlib
import re
import threading
from collections.abc import Iterator, Sequence
from importlib import resources
from typing import Any

import pandas as pd
import pyarrow as pa

from gridwatch.errors import StorageError

__all__ = ["Store", "open_store", "list_migrations"]

Params = Sequence[Any] | None


def list_migrations() -> list[tuple[int, str, str]]:
    """Return the numbered migrations as ``(number, name, sql)``, in order.

    Examples
    --------
    >>> list_migrations()[0][:2]
    (1, '0001_foundation')
    """
    found = []
    for item in resources.files("gridwatch.storage.migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_[a-z0-9_]+\.sql", item.name)
        if match:
            found.append((int(match.group(1)), item.name[:-4], item.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise StorageError("Migrations are not numbered 1..N without gaps: {numbers}", numbers=numbers)
    return found


def split_sql(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside strings here)."""
    without_comments = re.sub(r"--[^\n]*", "", script)
    return [s.strip() for s in without_comments.split(";") if s.strip()]


class Store(abc.ABC):
    """A gridwatch database: one per process, a cursor per thread, writes in transactions.

    Use as a context manager, or call :meth:`close`.
    """

    backend: str = "abstract"

    def __init__(self) -> None:
        self._local = threading.local()

    # -- connection handling ---------------------------------------------------------
    @abc.abstractmethod
    def _new_cursor(self) -> Any:
        """Open a cursor (DuckDB) or take a connection (PostgreSQL) for this thread."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the database."""

    def _cursor(self) -> Any:
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._new_cursor()
            self._local.cursor = cur
            self._local.depth = 0
        return cur

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Store"]:
        """Run the block in one transaction; nested blocks join the outer one.

        Examples
        --------
        >>> with open_store(":memory:") as store:
        ...     with store.transaction():
        ...         store.execute("INSERT INTO meta VALUES ('k', 'v')")
        ...     store.scalar("SELECT value FROM meta WHERE key = 'k'")
        'v'
        """
        cur = self._cursor()
        depth = self._local.depth
        if depth == 0:
            self._begin(cur)
            self._local.failed = None
        self._local.depth = depth + 1
        try:
            yield self
        except BaseException:
            self._local.depth = depth
            if depth == 0:
                self._rollback(cur)
            raise
        self._local.depth = depth
        if depth == 0:
            failed = self._local.failed
            if failed is not None:
                self._rollback(cur)
                raise StorageError(
                    "The change was not saved: a statement inside it failed ({detail}); nothing was written.",
                    detail=failed,
                )
            self._commit(cur)

    def _statement_failed(self, detail: str) -> None:
        """Remember, inside a transaction, that a statement failed, so the commit refuses."""
        if getattr(self._local, "depth", 0) > 0:
            self._local.failed = detail

    @abc.abstractmethod
    def _begin(self, cur: Any) -> None: ...

    @abc.abstractmethod
    def _commit(self, cur: Any) -> None: ...

    @abc.abstractmethod
    def _rollback(self, cur: Any) -> None: ...

    # -- statements ---------------------------------------------------------------------
    @abc.abstractmethod
    def execute(self, sql: str, params: Params = None) -> None:
        """Run one statement."""

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows."""

    @abc.abstractmethod
    def query(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        """Rows as dictionaries."""

    @abc.abstractmethod
    def query_df(self, sql: str, params: Params = None) -> pd.DataFrame:
        """Rows as a pandas DataFrame."""

    @abc.abstractmethod
    def insert_arrow(self, table: str, data: pa.Table) -> int:
        """Bulk-insert an Arrow table whose column names match ``table``'s columns."""

    @abc.abstractmethod
    def geom_from_wkb_sql(self) -> str:
        """The SQL expression turning a WKB parameter into a stored geometry."""

    @abc.abstractmethod
    def geom_to_wkb_sql(self, column: str) -> str:
        """The SQL expression reading a stored geometry as WKB."""

    def scalar(self, sql: str, params: Params = None) -> Any:
        """The first column of the first row, or None."""
        rows = self.query(sql, params)
        return next(iter(rows[0].values())) if rows else None

    # -- schema ---------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied; safe to call repeatedly. Returns their names."""
        self.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        done = {r["version"] for r in self.query("SELECT version FROM schema_migrations")}
        applied = []
        for number, name, sql in list_migrations():
            if number in done:
                continue
            with self.transaction():
                for statement in split_sql(sql):
                    self.execute(self.translate_ddl(statement))
                self.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [number, name])
            applied.append(name)
        return applied

    def translate_ddl(self, statement: str) -> str:
        """Adapt a shared DDL statement to this backend (identity by default)."""
        return statement

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """A value of the ``meta`` table."""
        value = self.scalar("SELECT value FROM meta WHERE key = ?", [key])
        return default if value is None else value

    def set_meta(self, key: str, value: str) -> None:
        """Set a value of the ``meta`` table."""
        with self.transaction():
            self.execute("DELETE FROM meta WHERE key = ?", [key])
            self.execute("INSERT INTO meta (key, value) VALUES (?, ?)", [key, value])


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the store named by ``url``: ``:memory:``, a DuckDB file, or ``postgresql://…``.

    Parameters
    ----------
    url : str
        Where the data live.
    migrate : bool
        Apply pending migrations (default).
    """
    if url.startswith(("postgresql://", "postgres://")):
        raise StorageError(
            "The PostgreSQL backend is not available in this version; use a DuckDB file path for {url}.",
            url=url.split("@")[-1],
        )
    from gridwatch.storage.duckdb import DuckDBStore

    store = DuckDBStore(url)
    if migrate:
        store.migrate()
    return store
