"""Storage: :func:`open_store` opens the DuckDB or PostgreSQL store a URL names; the interface is in ``base``.

The backends import :mod:`gridwatch.storage.base` and this module imports them only when a store is opened, so no
module of the package imports another in a circle. Nothing here knows the tamper-evident seal: the edge that opens
a store for use installs it (:func:`gridwatch.audit.open_sealed`).
"""

from __future__ import annotations

from gridwatch.storage.base import Params, Store, list_migrations, split_sql

__all__ = ["Store", "Params", "open_store", "list_migrations", "split_sql", "is_postgres_url"]


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database (``postgresql://`` or ``postgres://``) rather than DuckDB.

    Examples
    --------
    >>> is_postgres_url("postgresql://gw@db:5432/gridwatch"), is_postgres_url("data/gridwatch.duckdb")
    (True, False)
    """
    return str(url).startswith(("postgresql://", "postgres://"))


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the store named by ``url``: ``:memory:``, a DuckDB file, or ``postgresql://…``.

    This opens and migrates only; a store opened for use also seals every transaction it commits, which
    :func:`gridwatch.audit.open_sealed` adds.

    Parameters
    ----------
    url : str
        Where the data live.
    migrate : bool
        Apply pending migrations (default).

    Examples
    --------
    >>> with open_store(":memory:") as store:
    ...     store.scalar("SELECT count(*) FROM schema_migrations") == len(list_migrations())
    True
    """
    store: Store
    if is_postgres_url(url):
        from gridwatch.storage.postgres import PostgresStore

        store = PostgresStore(url)
    else:
        from gridwatch.storage.duckdb import DuckDBStore

        store = DuckDBStore(url)
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store
