"""The embedded DuckDB backend: one connection per process, a cursor per thread.

The spatial extension is loaded from the ``duckdb-extension-spatial`` package
by its path, so nothing is downloaded at run time; DuckDB checks its signature.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from gridwatch.errors import DiskFull, StorageError, is_disk_full
from gridwatch.storage.base import Params, Store
from gridwatch.storage.text import check_arrow, check_params, check_rows

__all__ = ["DuckDBStore", "spatial_extension_path"]

#: DuckDB's row-group size, the unit of its parallel scans
_ROW_GROUP = 122_880


def spatial_extension_path() -> Path:
    """Path of the signed spatial extension shipped for the installed DuckDB version."""
    import duckdb_extension_spatial

    root = Path(duckdb_extension_spatial.__file__).parent / "extensions"
    path = root / f"v{duckdb.__version__}" / "spatial.duckdb_extension"
    if not path.is_file():
        found = sorted(root.glob("*/spatial.duckdb_extension"))
        raise StorageError(
            "The spatial extension for DuckDB {version} is missing (found: {found}); "
            "install duckdb and duckdb-extension-spatial of the same version (see requirements.txt).",
            version=duckdb.__version__,
            found=", ".join(p.parent.name for p in found) or "none",
        )
    return path


log = logging.getLogger(__name__)


class DuckDBStore(Store):
    """A DuckDB database file, or ``:memory:`` for tests.

    Parameters
    ----------
    path : str
        File path or ``:memory:``.
    read_only : bool
        Open without write access.
    """

    backend = "duckdb"

    def __init__(self, path: str = ":memory:", *, read_only: bool = False) -> None:
        super().__init__()
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as exc:
            message = str(exc)
            log.warning("cannot open %s: %s", path, message)  # the operator's log keeps the detail (paths, pid)
            if "lock" in message.lower():
                raise StorageError(
                    "The database {name} is in use by another gridwatch process (a command or the running app); "
                    "wait until it has finished, then try again.",
                    name=Path(path).name,
                ) from exc
            raise StorageError("Cannot open the database {name}; the server log says why.",
                               name=Path(path).name) from exc
        self._con.execute(f"LOAD '{spatial_extension_path()}'")
        self._cursors: list[Any] = []
        self._lock = threading.Lock()

    def _new_cursor(self) -> Any:
        cur = self._con.cursor()
        with self._lock:
            self._cursors.append(cur)
        return cur

    def close(self) -> None:
        """Close every cursor and the connection."""
        with self._lock:
            for cur in self._cursors:
                try:
                    cur.close()
                except duckdb.Error:
                    pass
            self._cursors.clear()
        self._con.close()

    def _lock_scope(self) -> str:
        """The database file (every store of this process opened on it), or this store when in memory."""
        return super()._lock_scope() if self.path == ":memory:" else f"duckdb:{Path(self.path).resolve()}"

    def _begin(self, cur: Any) -> None:
        cur.execute("BEGIN TRANSACTION")

    def _commit(self, cur: Any) -> None:
        try:
            cur.execute("COMMIT")
        except duckdb.Error as exc:  # a full disk shows here first: the log is written at the commit
            raise self._failure(exc) from exc

    def _rollback(self, cur: Any) -> None:
        try:
            cur.execute("ROLLBACK")
        except duckdb.Error as exc:  # after a fatal error (a full disk) there may be nothing left to roll back
            log.warning("rollback failed: %s", str(exc).split("\n")[0])

    def _run(self, sql: str, params: Params) -> Any:
        check_params(sql, params)
        cur = self._cursor()
        try:
            return cur.execute(sql, list(params) if params is not None else None)
        except duckdb.Error as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: Exception) -> StorageError:
        detail = str(exc).split("\n")[0]
        self._statement_failed(detail)
        if is_disk_full(exc):
            log.info("a write failed for want of disk space: %s", detail)
            return DiskFull()
        return StorageError("Database error: {detail}", detail=detail)

    def execute(self, sql: str, params: Params = None) -> None:  # noqa: D102
        self._run(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:  # noqa: D102
        if not rows:
            return
        check_rows(sql, rows)
        cur = self._cursor()
        try:
            cur.executemany(sql, [list(r) for r in rows])
        except duckdb.Error as exc:
            raise self._failure(exc) from exc

    def query(self, sql: str, params: Params = None) -> list[dict[str, Any]]:  # noqa: D102
        result = self._run(sql, params)
        names = [d[0] for d in result.description]
        return [dict(zip(names, row)) for row in result.fetchall()]

    def query_df(self, sql: str, params: Params = None) -> pd.DataFrame:  # noqa: D102
        return self._run(sql, params).df()

    def query_arrow(self, sql: str, params: Params = None) -> pa.Table:
        """Rows as an Arrow table (the fastest way out of DuckDB)."""
        result = self._run(sql, params)
        return result.to_arrow_table() if hasattr(result, "to_arrow_table") else result.arrow()

    def insert_arrow(self, table: str, data: pa.Table, *, wkb: Sequence[str] = ()) -> int:  # noqa: D102
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", table):
            raise StorageError("Bad table name {table}", table=table)
        check_arrow(data)
        for name in data.column_names:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise StorageError("Bad column name {column} for {table}", column=name, table=table)
        cur = self._cursor()
        if data.num_rows > _ROW_GROUP:
            # DuckDB scans an Arrow table chunk by chunk in parallel: one big chunk would use one thread.
            data = pa.Table.from_batches(data.to_batches(max_chunksize=_ROW_GROUP), schema=data.schema)
        cur.register("_gridwatch_incoming", data)
        try:
            columns = ", ".join(data.column_names)
            values = ", ".join(f"ST_GeomFromWKB({c})" if c in wkb else c for c in data.column_names)
            cur.execute(f"INSERT INTO {table} ({columns}) SELECT {values} FROM _gridwatch_incoming")
        except duckdb.Error as exc:
            raise self._failure(exc) from exc
        finally:
            cur.unregister("_gridwatch_incoming")
        return data.num_rows

    def geom_from_wkb_sql(self) -> str:  # noqa: D102
        return "ST_GeomFromWKB(?)"

    def geom_to_wkb_sql(self, column: str) -> str:  # noqa: D102
        return f"ST_AsWKB({column})"
