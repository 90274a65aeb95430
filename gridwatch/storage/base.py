"""The storage interface every backend implements: :class:`Store`, the numbered migrations and their SQL.

SQL in the domain modules is written once, with ``?`` placeholders and the SQL
both DuckDB and PostgreSQL accept; a backend translates what it must.
Geometries cross the interface as WKB bytes, H3 cells as signed 64-bit ints
(an H3 index never sets the top bit). The backends (:mod:`gridwatch.storage.duckdb`,
:mod:`gridwatch.storage.postgres`) import this module; :func:`gridwatch.storage.open_store` picks one of them.
"""

from __future__ import annotations

import abc
import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from gridwatch.errors import StorageError

__all__ = ["Store", "Params", "list_migrations", "split_sql"]

Params = Sequence[Any] | None
T = TypeVar("T")


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


def split_sql(script: str, backend: str | None = None) -> list[str]:
    r"""Split a migration script into statements (no semicolons inside strings here).

    A statement whose first line is ``--@duckdb`` or ``--@postgres`` belongs to that backend only: it is left
    out for another ``backend`` (and kept when ``backend`` is None). Other comments are removed.

    Examples
    --------
    >>> split_sql("CREATE TABLE a (x INT); -- note\n--@postgres\nCREATE INDEX a_x ON a (x);", "duckdb")
    ['CREATE TABLE a (x INT)']
    """
    statements = []
    for text in re.sub(r"--(?!@)[^\n]*", "", script).split(";"):
        text = text.strip()
        only = re.match(r"--@(duckdb|postgres)\s*\n", text)
        if only:
            text = text[only.end():].strip()
            if backend is not None and only[1] != backend:
                continue
        if text:
            statements.append(text)
    return statements


#: the thread locks of :meth:`Store.exclusive`, by database and name
_named_locks: dict[tuple[str, str], threading.Lock] = {}
_named_locks_guard = threading.Lock()


class Store(abc.ABC):
    """A gridwatch database: one per process, a cursor per thread, writes in transactions.

    Use as a context manager, or call :meth:`close`.
    """

    backend: str = "abstract"

    def __init__(self) -> None:
        self._local = threading.local()
        self._hooks: list[tuple[Any, Any, Any]] = []

    def add_transaction_hooks(self, *, begin: Callable[["Store"], Any] | None = None,
                              before_commit: Callable[["Store"], Any] | None = None,
                              end: Callable[["Store", bool], Any] | None = None) -> None:
        """Run hooks around every outermost writing transaction of this store (a :meth:`snapshot` runs none).

        ``begin(store)`` runs right after the transaction begins, inside it; ``before_commit(store)`` inside it,
        right before it commits (an exception rolls the transaction back and is raised); ``end(store, committed)``
        after it committed or rolled back, outside it (also when ``begin`` or ``before_commit`` failed). Storage
        knows nothing of what hooks do: the tamper-evident seal registers itself here when the edge opens a store
        for use (:func:`gridwatch.audit.open_sealed`), and seals what the transaction wrote in the transaction.
        """
        hooks = (begin, before_commit, end)
        if hooks not in self._hooks:
            self._hooks.append(hooks)

    def _run_hooks(self, which: int, *args: Any) -> None:
        if getattr(self._local, "hooked", False):
            for hooks in self._hooks:
                if hooks[which] is not None:
                    hooks[which](self, *args)

    def _end_hooks(self, committed: bool) -> None:
        if not getattr(self._local, "hooked", False):
            return
        self._local.hooked = False
        errors = []
        for hooks in self._hooks:
            if hooks[2] is not None:
                try:
                    hooks[2](self, committed)
                except Exception as exc:  # noqa: BLE001 - every end hook runs (they release locks)
                    errors.append(exc)
        if errors:
            raise errors[0]

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
        >>> from gridwatch.storage import open_store
        >>> with open_store(":memory:") as store:
        ...     with store.transaction():
        ...         store.execute("INSERT INTO meta VALUES ('k', 'v')")
        ...     store.scalar("SELECT value FROM meta WHERE key = 'k'")
        'v'
        """
        cur = self._cursor()
        depth = self._local.depth
        if depth == 0:
            if getattr(self._local, "snapshot_next", False):  # opened by snapshot()
                self._local.snapshot_next = False
                self._begin_snapshot(cur)
                self._local.hooked = False
            else:
                self._begin(cur)
                self._local.hooked = bool(self._hooks)
            self._local.failed = None
        self._local.depth = depth + 1
        try:
            if depth == 0:
                self._run_hooks(0)
            yield self
            if depth == 0 and self._local.failed is None:
                self._run_hooks(1)
        except BaseException:
            self._local.depth = depth
            if depth == 0:
                try:
                    self._rollback(cur)
                finally:
                    self._end_hooks(False)
            raise
        self._local.depth = depth
        if depth == 0:
            failed = self._local.failed
            if failed is not None:
                try:
                    self._rollback(cur)
                finally:
                    self._end_hooks(False)
                raise StorageError(
                    "The change was not saved: a statement inside it failed ({detail}); nothing was written.",
                    detail=failed,
                )
            try:
                self._commit(cur)
            except BaseException:
                self._end_hooks(False)
                raise
            self._end_hooks(True)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator["Store"]:
        """Run the block in one read-only transaction in which every statement sees the same moment (what a
        backup reads through); it must be the outermost transaction.

        Examples
        --------
        >>> from gridwatch.storage import open_store
        >>> with open_store(":memory:") as store, store.snapshot():
        ...     store.scalar("SELECT count(*) FROM roles")
        7
        """
        if getattr(self._local, "depth", 0):
            raise StorageError("A snapshot of the database cannot be taken inside a change; it must come first.")
        self._local.snapshot_next = True
        try:
            with self.transaction():
                yield self
        finally:
            self._local.snapshot_next = False

    def _begin_snapshot(self, cur: Any) -> None:
        """Begin the transaction of :meth:`snapshot` (a DuckDB transaction always reads one snapshot)."""
        self._begin(cur)

    def tables(self) -> list[str]:
        """The names of the database's own tables (not views, not an extension's), sorted."""
        return [r["table_name"] for r in self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"
            " AND table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name")]

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
    def insert_arrow(self, table: str, data: pa.Table, *, wkb: Sequence[str] = ()) -> int:
        """Bulk-insert an Arrow table whose column names match ``table``'s columns; the columns named in ``wkb``
        hold geometries as WKB (in WGS84) for geometry columns."""

    @abc.abstractmethod
    def geom_from_wkb_sql(self) -> str:
        """The SQL expression turning a WKB parameter into a stored geometry."""

    @abc.abstractmethod
    def geom_to_wkb_sql(self, column: str) -> str:
        """The SQL expression reading a stored geometry as WKB."""

    def retrying(self, work: Callable[[], T], *, attempts: int = 4, pause_s: float = 0.05) -> T:
        """Run ``work()`` (which opens its own transaction) again when it loses a write conflict to another session.

        After ``attempts`` tries the conflict is shown as a :class:`StorageError` in the user's language.
        """
        for attempt in range(attempts):
            try:
                return work()
            except StorageError as exc:
                if not self.is_write_conflict(exc) or attempt == attempts - 1:
                    if self.is_write_conflict(exc):
                        raise StorageError("Others were changing the same records at the same moment; your change "
                                           "was not saved. Try again.") from exc
                    raise
                time.sleep(pause_s * (2 ** attempt))
        raise AssertionError("unreachable")

    def is_write_conflict(self, exc: StorageError) -> bool:
        """Whether a failure is a write-write conflict between concurrent transactions (worth retrying)."""
        return "conflict" in str(exc.params.get("detail", "")).lower()

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator["Store"]:
        """One transaction that no other session doing ``name`` runs beside, in this process or any other.

        Sessions of this process wait on a thread lock; a backend several processes share also holds a
        database-wide lock for the transaction (:meth:`_lock_database`). Work whose idempotence is a check
        before a write (an anti-join, no unique index) runs in here, so two of them never both pass the check.
        """
        with _named_locks_guard:
            lock = _named_locks.setdefault((self._lock_scope(), name), threading.Lock())
        with lock, self.transaction():
            self._lock_database(name)
            yield self

    def next_ids(self, sequence: str, n: int) -> np.ndarray:
        """``n`` new values of ``sequence``, in increasing order (int64): ids for rows inserted in bulk."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", sequence):
            raise StorageError("Bad sequence name {sequence}", sequence=sequence)
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        ids = self.query_arrow(f"SELECT nextval('{sequence}') AS id FROM {self._series_sql()}", [int(n)])
        return np.sort(ids.column("id").to_numpy().astype(np.int64, copy=False))

    def _series_sql(self) -> str:
        """A table expression of as many rows as its one parameter says (DuckDB's ``range``)."""
        return "range(?)"

    def _lock_scope(self) -> str:
        """What this process's locks are shared across: the database (stores opened on one file share them)."""
        return f"store:{id(self)}"

    def _lock_database(self, name: str) -> None:
        """Inside a transaction: hold the database-wide lock ``name`` until it ends.

        DuckDB has one writing process, which :meth:`exclusive` serialises with its thread lock, so this does
        nothing here; a shared backend (PostgreSQL: ``pg_advisory_xact_lock``) overrides it.
        """

    def sha256_hex_sql(self, expr: str) -> str:
        """SQL for the lower-case hex SHA-256 of a text expression (DuckDB's ``sha256``; backends override)."""
        return f"sha256({expr})"

    def scalar(self, sql: str, params: Params = None) -> Any:
        """The first column of the first row, or None."""
        rows = self.query(sql, params)
        return next(iter(rows[0].values())) if rows else None

    # -- schema ---------------------------------------------------------------------------
    def migrate(self, upto: int | None = None) -> list[str]:
        """Apply the migrations not yet applied (up to number ``upto``); safe to call repeatedly. Returns their
        names."""
        self.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        done = {r["version"] for r in self.query("SELECT version FROM schema_migrations")}
        applied = []
        for number, name, sql in list_migrations():
            if number in done or (upto is not None and number > upto):
                continue
            with self.transaction():
                for statement in split_sql(sql, self.backend):
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
