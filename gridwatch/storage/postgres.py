"""The PostgreSQL + PostGIS backend: a connection pool per process, a connection per thread.

The SQL of the domain modules is shared with DuckDB: ``?`` placeholders become psycopg's ``%s`` (with every
literal ``%`` doubled), DuckDB's type names (``DOUBLE``, ``BLOB``, ``HUGEINT``, ...) become PostgreSQL's, and
parameters are bound on the client (:class:`psycopg.ClientCursor`), so an untyped ``?`` behaves as in DuckDB
(``? IS NULL`` needs no cast). Connections run in autocommit mode with the session time zone set to UTC; a
transaction is an explicit ``BEGIN`` ... ``COMMIT`` on the thread's connection, and a failed statement aborts it
exactly as DuckDB does (every later statement fails, the commit refuses). Bulk inserts stream an Arrow table as
CSV through ``COPY ... FROM STDIN`` (vectorised by pyarrow's CSV writer). ``numeric`` results (PostgreSQL's
``sum(bigint)`` and ``avg``) come back as ``int`` or ``float``, as DuckDB's ``HUGEINT`` and ``DOUBLE`` do.

Examples
--------
>>> to_psycopg("SELECT * FROM t WHERE a = ? AND b LIKE '50%?'", with_params=True)
"SELECT * FROM t WHERE a = %s AND b LIKE '50%%?'"
>>> to_psycopg("CREATE TEMP TABLE x (a DOUBLE, b BLOB)", with_params=False)
'CREATE TEMP TABLE x (a DOUBLE PRECISION, b BYTEA)'
>>> redact_url("postgresql://gw:secret@db.example:5432/gridwatch")
'postgresql://gw@db.example:5432/gridwatch'
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from gridwatch.errors import DiskFull, StorageError, is_disk_full
from gridwatch.storage.base import Params, Store
from gridwatch.storage.text import check_arrow, check_params, check_rows

__all__ = ["PostgresStore", "to_psycopg", "redact_url", "restore_database", "fresh_name", "database_url"]

T = TypeVar("T")
log = logging.getLogger(__name__)

#: connections one store (one process) may hold at once; ``GRIDWATCH_PG_POOL_MAX`` overrides
DEFAULT_POOL_MAX = 20
#: seconds to wait for a connection (to the server, or from a full pool)
CONNECT_TIMEOUT = 10
#: rows per CSV chunk streamed through COPY
_COPY_CHUNK = 65_536

# quoted text, identifiers, comments and dollar-quoted bodies: never rewritten except for doubling '%'
_QUOTED = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|\$([A-Za-z_]*)\$.*?\$\1\$""", re.S)
# DuckDB type names PostgreSQL lacks, outside quotes
_TYPES = [
    (re.compile(r"\bDOUBLE\b(?!\s+PRECISION)", re.I), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
    (re.compile(r"\b(?:HUGEINT|UBIGINT)\b", re.I), "NUMERIC"),
    (re.compile(r"\b(?:TINYINT|UTINYINT|USMALLINT)\b", re.I), "SMALLINT"),
    (re.compile(r"\bUINTEGER\b", re.I), "BIGINT"),
]
_GEOMETRY = re.compile(r"(?<=\w)(\s+)GEOMETRY\b(?!\s*\()", re.I)  # the type after a column name, not a name

# PostgreSQL type OIDs of the built-in types gridwatch reads
_BOOL, _BYTEA, _INT8, _INT2, _INT4, _TEXT, _FLOAT4, _FLOAT8 = 16, 17, 20, 21, 23, 25, 700, 701
_NUMERIC, _DATE, _TIMESTAMP, _TIMESTAMPTZ, _INTERVAL = 1700, 1082, 1114, 1184, 1186
_INTS = {_INT2: ("int16", "Int16", pa.int16()), _INT4: ("int32", "Int32", pa.int32()),
         _INT8: ("int64", "Int64", pa.int64())}
_ARROW = {_BOOL: pa.bool_(), _BYTEA: pa.binary(), _TEXT: pa.string(), 1043: pa.string(), 1042: pa.string(),
          19: pa.string(), _FLOAT4: pa.float64(), _FLOAT8: pa.float64(), _DATE: pa.date32(),
          _TIMESTAMP: pa.timestamp("us"), _TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
          _INTERVAL: pa.duration("us")}


def redact_url(url: str) -> str:
    """The URL without its password (safe to show and log)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@functools.lru_cache(maxsize=4096)
def to_psycopg(sql: str, *, with_params: bool) -> str:
    """Translate a statement of the shared SQL for psycopg.

    Parameters
    ----------
    sql : str
        The statement, with DuckDB-style ``?`` placeholders.
    with_params : bool
        Whether parameters are passed: then ``?`` outside quotes becomes ``%s`` and every ``%`` is doubled
        (psycopg reads ``%`` everywhere in a statement with parameters, even inside quotes).

    Returns
    -------
    str
        The statement for :meth:`psycopg.Cursor.execute`.
    """
    out: list[str] = []
    pos = 0

    def plain(text: str) -> str:
        for pattern, repl in _TYPES:
            text = pattern.sub(repl, text)
        if with_params:
            text = text.replace("%", "%%").replace("?", "%s")
        return text

    for match in _QUOTED.finditer(sql):
        out.append(plain(sql[pos:match.start()]))
        quoted = match.group(0)
        out.append(quoted.replace("%", "%%") if with_params else quoted)
        pos = match.end()
    out.append(plain(sql[pos:]))
    return "".join(out)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.split("\n")[0]


def _make_loader():
    """A loader for ``numeric`` giving ``int`` for whole values and ``float`` otherwise (DuckDB's types)."""
    from psycopg.adapt import Loader

    class NumberLoader(Loader):
        def load(self, data: Any) -> int | float:  # noqa: D102
            text = bytes(data)
            if b"." in text or b"e" in text or b"E" in text or b"N" in text or b"n" in text:
                return float(text)
            return int(text)

    return NumberLoader


class PostgresStore(Store):
    """A PostgreSQL database with PostGIS, named by a ``postgresql://`` URL.

    Parameters
    ----------
    url : str
        ``postgresql://user:password@host:port/dbname`` (any libpq URL).
    pool_max : int or None
        Most connections this store holds at once (one per thread using it); default ``GRIDWATCH_PG_POOL_MAX``
        or 20.

    Raises
    ------
    StorageError
        The server cannot be reached, refuses the user or has no such database (the message names the URL
        without its password).
    """

    backend = "postgres"

    def __init__(self, url: str, *, pool_max: int | None = None) -> None:
        super().__init__()
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self.safe_url = redact_url(url)
        self._psycopg = psycopg
        self._loader = _make_loader()
        try:  # one direct connection first: libpq's own message says what is wrong
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT).close()
        except (psycopg.Error, ValueError) as exc:
            raise StorageError("Cannot connect to the PostgreSQL database {url}: {detail}",
                               url=self.safe_url, detail=_first_line(exc)) from exc
        size = pool_max or int(os.environ.get("GRIDWATCH_PG_POOL_MAX", DEFAULT_POOL_MAX))
        self._pool = ConnectionPool(
            url, min_size=1, max_size=max(size, 1), open=True, timeout=CONNECT_TIMEOUT, name="gridwatch",
            kwargs={"autocommit": True, "cursor_factory": psycopg.ClientCursor, "connect_timeout": CONNECT_TIMEOUT},
            configure=self._configure, reset=self._reset, check=ConnectionPool.check_connection,
        )
        self._held: dict[threading.Thread, Any] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- connections ----------------------------------------------------------------------------
    def _configure(self, conn: Any) -> None:
        conn.adapters.register_loader("numeric", self._loader)
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET application_name = 'gridwatch'")

    @staticmethod
    def _reset(conn: Any) -> None:
        conn.execute("DISCARD TEMP")

    def _new_cursor(self) -> Any:
        """Take a connection from the pool for this thread (returning those of finished threads first)."""
        from psycopg_pool import PoolTimeout

        if self._closed:
            raise StorageError("The database {url} is closed.", url=self.safe_url)
        with self._lock:
            for thread in [t for t in self._held if not t.is_alive()]:
                self._give_back(self._held.pop(thread))
        try:
            conn = self._pool.getconn()
        except PoolTimeout as exc:
            raise StorageError("All {n} connections to {url} are in use; try again shortly.",
                               n=self._pool.max_size, url=self.safe_url) from exc
        except self._psycopg.Error as exc:
            raise StorageError("Cannot connect to the PostgreSQL database {url}: {detail}",
                               url=self.safe_url, detail=_first_line(exc)) from exc
        with self._lock:
            self._held[threading.current_thread()] = conn
        return conn

    def _give_back(self, conn: Any) -> None:
        try:
            self._pool.putconn(conn)
        except Exception:  # noqa: BLE001 - a connection the pool cannot take back is dropped
            pass

    def _drop_connection(self) -> None:
        """Forget this thread's connection (after it broke), so the next statement takes a fresh one."""
        conn = getattr(self._local, "cursor", None)
        if conn is None or getattr(self._local, "depth", 0) > 0:
            return  # inside a transaction every statement must keep failing until it ends
        self._local.cursor = None
        with self._lock:
            self._held.pop(threading.current_thread(), None)
        self._give_back(conn)

    def close(self) -> None:
        """Close every connection and the pool.

        The threads' connections are closed here rather than given back: the pool returns a connection through a
        background worker (its reset), which a closing pool no longer runs, so a given-back connection could stay
        open on the server (and keep the database from being dropped or renamed).
        """
        if self._closed:
            return
        self._closed = True
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for conn in held:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone either way
                pass
        self._pool.close()

    # -- transactions ---------------------------------------------------------------------------
    def _begin(self, cur: Any) -> None:
        self._plain(cur, "BEGIN")

    def _begin_snapshot(self, cur: Any) -> None:
        self._plain(cur, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def _commit(self, cur: Any) -> None:
        self._plain(cur, "COMMIT")

    def _rollback(self, cur: Any) -> None:
        try:
            cur.execute("ROLLBACK")
        except self._psycopg.Error:
            pass  # the connection broke: the server has rolled back already
        if cur.broken or cur.closed:
            self._drop_connection()

    def _plain(self, conn: Any, sql: str) -> None:
        try:
            conn.execute(sql)
        except self._psycopg.Error as exc:
            raise self._failure(exc, conn) from exc

    # -- statements -----------------------------------------------------------------------------
    def _failure(self, exc: Exception, conn: Any = None) -> StorageError:
        detail = _first_line(exc)
        self._statement_failed(detail)
        lost = conn is not None and (conn.broken or conn.closed)
        if lost:
            self._drop_connection()
        state = getattr(exc, "sqlstate", None) or ""
        if is_disk_full(exc):
            log.info("a write failed for want of disk space on the database server: %s", detail)
            return DiskFull()
        if lost or state.startswith(("08", "57P")):  # connection exceptions, server shutdown
            return StorageError("The connection to the PostgreSQL database {url} failed: {detail}",
                                url=self.safe_url, detail=detail)
        return StorageError("Database error: {detail}", detail=detail)

    def _run(self, sql: str, params: Params, fetch: bool) -> tuple[list[Any], list[tuple]]:
        check_params(sql, params)
        conn = self._cursor()
        values = None if params is None else list(params)
        text = to_psycopg(sql, with_params=values is not None)
        try:
            with conn.cursor() as cur:
                cur.execute(text, values)
                if not fetch or cur.description is None:
                    return [], []
                return list(cur.description), cur.fetchall()
        except self._psycopg.Error as exc:
            raise self._failure(exc, conn) from exc

    def execute(self, sql: str, params: Params = None) -> None:  # noqa: D102
        self._run(sql, params, fetch=False)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:  # noqa: D102
        if not rows:
            return
        check_rows(sql, rows)
        conn = self._cursor()
        try:
            with conn.cursor() as cur:
                cur.executemany(to_psycopg(sql, with_params=True), [list(r) for r in rows])
        except self._psycopg.Error as exc:
            raise self._failure(exc, conn) from exc

    def query(self, sql: str, params: Params = None) -> list[dict[str, Any]]:  # noqa: D102
        description, rows = self._run(sql, params, fetch=True)
        names = [d.name for d in description]
        return [dict(zip(names, row)) for row in rows]

    def query_df(self, sql: str, params: Params = None) -> pd.DataFrame:
        """Rows as a pandas DataFrame with DuckDB's dtypes (nullable ``Int64`` where NULLs occur, dates as
        ``datetime64[us]``)."""
        description, rows = self._run(sql, params, fetch=True)
        columns = list(zip(*rows)) if rows else [()] * len(description)
        frame = pd.DataFrame({i: _series(d.type_code, list(values)) for i, (d, values)
                              in enumerate(zip(description, columns))}, index=pd.RangeIndex(len(rows)))
        frame.columns = [d.name for d in description]
        return frame

    def query_arrow(self, sql: str, params: Params = None) -> pa.Table:
        """Rows as an Arrow table, typed from the result's column types."""
        description, rows = self._run(sql, params, fetch=True)
        columns = list(zip(*rows)) if rows else [()] * len(description)
        arrays = [_arrow(d.type_code, list(values)) for d, values in zip(description, columns)]
        return pa.Table.from_arrays(arrays, names=[d.name for d in description])

    def insert_arrow(self, table: str, data: pa.Table, *, wkb: Sequence[str] = ()) -> int:
        """Bulk-insert through ``COPY ... FROM STDIN`` in CSV, written by pyarrow chunk by chunk (geometries as
        hex EWKB in WGS84, which PostGIS reads)."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", table):
            raise StorageError("Bad table name {table}", table=table)
        for name in data.column_names:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise StorageError("Bad column name {column} for {table}", column=name, table=table)
        check_arrow(data)
        if data.num_rows == 0:
            self._run(f"SELECT {', '.join(data.column_names)} FROM {table} LIMIT 0", None, fetch=False)
            return 0
        for name in wkb:
            data = data.set_column(data.column_names.index(name), name, _hex_ewkb(data.column(name)))
        data = _csv_ready(data)
        conn = self._cursor()
        statement = f"COPY {table} ({', '.join(data.column_names)}) FROM STDIN (FORMAT csv)"
        options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
        try:
            with conn.cursor() as cur, cur.copy(statement) as copy:
                for batch in data.to_batches(max_chunksize=_COPY_CHUNK):
                    sink = io.BytesIO()
                    pacsv.write_csv(pa.Table.from_batches([batch]), sink, write_options=options)
                    copy.write(sink.getvalue())
        except self._psycopg.Error as exc:
            raise self._failure(exc, conn) from exc
        return data.num_rows

    # -- dialect --------------------------------------------------------------------------------
    def geom_from_wkb_sql(self) -> str:  # noqa: D102
        return "ST_GeomFromWKB(?, 4326)"

    def geom_to_wkb_sql(self, column: str) -> str:  # noqa: D102
        return f"ST_AsBinary({column})"

    def sha256_hex_sql(self, expr: str) -> str:  # noqa: D102
        return f"encode(sha256(convert_to({expr}, 'UTF8')), 'hex')"

    def _series_sql(self) -> str:
        """As many rows as the parameter says (``generate_series``)."""
        return "generate_series(1, ?)"

    def _lock_database(self, name: str) -> None:
        """Serialise ``name`` across every process on this database (released when the transaction ends)."""
        self.execute("SELECT pg_advisory_xact_lock(hashtext(?))", [f"gridwatch.{name}"])

    def tables(self) -> list[str]:
        """The tables of the current schema, without those an extension owns (PostGIS' ``spatial_ref_sys``)."""
        return [r["name"] for r in self.query(
            "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT EXISTS (SELECT 1 FROM pg_depend d"
            "   WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')"
            " ORDER BY c.relname")]

    def translate_ddl(self, statement: str) -> str:
        """DuckDB's column types in PostgreSQL's words; geometries are PostGIS geometries in WGS84.

        Examples
        --------
        >>> PostgresStore.translate_ddl(None, "CREATE TABLE u (a DOUBLE, g GEOMETRY, b BLOB)")
        'CREATE TABLE u (a DOUBLE PRECISION, g geometry(Geometry, 4326), b BYTEA)'
        """
        return _GEOMETRY.sub(r"\1geometry(Geometry, 4326)", to_psycopg(statement, with_params=False))

    def migrate(self, upto: int | None = None) -> list[str]:
        """Create PostGIS when missing, then apply pending migrations, one process at a time (advisory lock)."""
        try:
            has = self.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'postgis'")
            if not has:
                self.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except StorageError as exc:
            raise StorageError(
                "PostGIS is not available in the PostgreSQL database {url} ({detail}); install PostGIS on the "
                "server and run CREATE EXTENSION postgis in that database as its owner or a superuser.",
                url=self.safe_url, detail=exc.params.get("detail", str(exc))) from exc
        self.execute("SELECT pg_advisory_lock(hashtext('gridwatch.migrate'))")
        try:
            return super().migrate(upto)
        finally:
            self.execute("SELECT pg_advisory_unlock(hashtext('gridwatch.migrate'))")


def _hex_ewkb(column: pa.ChunkedArray) -> pa.Array:
    """WKB geometries as hex EWKB with SRID 4326 (what a ``geometry(Geometry, 4326)`` column reads as text)."""
    import shapely

    geoms = shapely.from_wkb(np.asarray(column.to_pylist(), dtype=object))
    texts = shapely.to_wkb(shapely.set_srid(geoms, 4326), hex=True, include_srid=True)
    return pa.array(texts, type=pa.string(), from_pandas=True)


def _csv_ready(data: pa.Table) -> pa.Table:
    """Columns PostgreSQL's CSV input reads as the table's types: plain values, UTC times, bytea as hex."""
    columns = []
    for column in data.columns:
        kind = column.type
        if pa.types.is_dictionary(kind):
            column = column.cast(kind.value_type)
            kind = column.type
        if pa.types.is_timestamp(kind) and kind.tz is not None:
            column = column.cast(pa.timestamp(kind.unit))  # Arrow keeps UTC values; the column stores UTC
        elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
            text = [None if v is None else "\\x" + v.hex() for v in column.to_pylist()]
            column = pa.chunked_array([pa.array(text, type=pa.string())])
        elif pa.types.is_null(kind):
            column = column.cast(pa.string())
        elif pa.types.is_floating(kind):
            # pyarrow writes "inf"/"nan" as PostgreSQL reads them; nothing to do
            pass
        columns.append(column)
    return pa.Table.from_arrays(columns, names=data.column_names)


def _series(oid: int, values: list[Any]) -> Any:
    """One result column as DuckDB's ``df()`` would give it."""
    has_null = any(v is None for v in values)
    if oid in _INTS or (oid == _NUMERIC and all(v is None or isinstance(v, int) for v in values)):
        plain, nullable, _ = _INTS.get(oid, _INTS[_INT8])
        return pd.array(values, dtype=nullable) if has_null else np.array(values, dtype=plain)
    if oid in (_FLOAT4, _FLOAT8, _NUMERIC):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if oid == _BOOL:
        return pd.array(values, dtype="boolean") if has_null else np.array(values, dtype=bool)
    if oid in (_TIMESTAMP, _DATE):
        return np.array([np.datetime64("NaT") if v is None else v for v in values], dtype="datetime64[us]")
    if oid == _TIMESTAMPTZ:
        return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("us")
    if oid == _INTERVAL:
        return pd.to_timedelta(values)
    return pd.Series(values, dtype=object) if not values else pd.Series(values)


def _arrow(oid: int, values: list[Any]) -> pa.Array:
    """One result column as an Arrow array of the column's type."""
    if oid in _INTS:
        return pa.array(values, type=_INTS[oid][2])
    if oid == _NUMERIC:
        whole = all(v is None or isinstance(v, int) for v in values)
        return pa.array(values, type=pa.int64() if whole else pa.float64())
    kind = _ARROW.get(oid)
    if kind is not None:
        if oid == _TIMESTAMPTZ:
            values = [None if v is None else v.astimezone(dt.UTC) for v in values]
        return pa.array(values, type=kind)
    return pc.cast(pa.array(values), pa.string()) if values and isinstance(values[0], str) else pa.array(values)


# -- restores: a new database beside the old one, renamed into place ------------------------------------------------


def _database_url(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + urllib.parse.quote(name), parts.query,
                                    parts.fragment))


def _admin(url: str) -> Any:
    """An autocommit connection to the server of ``url`` outside its database (``postgres``, else ``template1``),
    for creating, dropping and renaming databases."""
    import psycopg

    last: Exception | None = None
    for maintenance in ("postgres", "template1"):
        try:
            return psycopg.connect(_database_url(url, maintenance), autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            last = exc
    raise StorageError("Cannot connect to the PostgreSQL database {url}: {detail}", url=redact_url(url),
                       detail=_first_line(last))


def _in_use(admin: Any, name: str) -> int:
    return int(admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                             [name]).fetchone()[0])


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def restore_database(url: str, *, replace: bool, build: Callable[[str], T]) -> T:
    """Make the database ``url`` names anew: ``build(fresh_url)`` fills and checks a new database beside it
    (``<name>_restoring``), raising when it is not right; only then is the old database dropped (``replace``) and
    the new one renamed to its name, so a failure leaves the old one as it was. Returns what ``build`` returned.
    The role needs the CREATEDB privilege.

    Raises
    ------
    ValidationError
        The database exists and ``replace`` is not given.
    StorageError
        The database is in use by others (stop the app first), or the server refuses.
    """
    import psycopg

    from gridwatch.errors import ValidationError

    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.lstrip("/"))
    if not name:
        raise ValidationError("The URL {url} names no database; add the database's name after the server.",
                              url=redact_url(url))
    fresh = fresh_name(name)
    fresh_url = _database_url(url, fresh)
    with _admin(url) as admin:
        exists = admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name]).fetchone()[0]
        if exists and not replace:
            raise ValidationError("The database {url} already exists; restore into a new database, or replace it "
                                  "on purpose.", url=redact_url(url))
        if exists and _in_use(admin, name):
            raise StorageError("The database {url} is in use by {n} connections; stop the app (every process "
                               "using it) before replacing it.", url=redact_url(url), n=_in_use(admin, name))
        try:
            _drop(admin, fresh)  # a failed restore's leftover
            admin.execute(f"CREATE DATABASE {_ident(fresh)}")
        except psycopg.Error as exc:
            raise StorageError("Cannot create the database {url}: {detail}", url=redact_url(fresh_url),
                               detail=_first_line(exc)) from exc
    try:
        result = build(fresh_url)
        with _admin(url) as admin:
            if exists:
                try:
                    admin.execute(f"DROP DATABASE {_ident(name)}")
                except psycopg.errors.ObjectInUse as exc:
                    raise StorageError("The database {url} is in use by {n} connections; stop the app (every "
                                       "process using it) before replacing it.", url=redact_url(url),
                                       n=_in_use(admin, name)) from exc
            _retry_in_use(lambda: admin.execute(f"ALTER DATABASE {_ident(fresh)} RENAME TO {_ident(name)}"))
    except BaseException:
        with _admin(url) as admin:
            _drop(admin, fresh)
        raise
    return result


def fresh_name(name: str) -> str:
    """The name of the database a restore of ``name`` fills before it takes ``name``'s place."""
    return name[:50] + "_restoring"


def database_url(url: str, name: str) -> str:
    """``url`` naming the database ``name`` on the same server."""
    return _database_url(url, name)


def _retry_in_use(work: Callable[[], Any]) -> None:
    """Run an admin statement again while the database is in use: a closed connection may still be ending on the
    server for a moment."""
    import psycopg

    for attempt in range(10):
        try:
            work()
            return
        except psycopg.errors.ObjectInUse:
            if attempt == 9:
                raise
            time.sleep(0.1 * (attempt + 1))


def _drop(admin: Any, name: str) -> None:
    """Drop a database only this restore uses (a plain DROP also ends autovacuum on it, which FORCE may not)."""
    _retry_in_use(lambda: admin.execute(f"DROP DATABASE IF EXISTS {_ident(name)}"))
