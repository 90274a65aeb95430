"""The tamper-evident seal over the records accountability decisions rest on (task events, the audit log).

Rows are never changed after they are written; this module makes a change, a deletion or an insertion afterwards
detectable. Right after every transaction commits, what it wrote is sealed (a commit hook installed by
:func:`install`): one link per source, whose hash covers the link before it, so the chain's head covers every
sealed row. :func:`verify` recomputes the chain and names the first broken link; :func:`head` is the value to print
on an exported report so it can be checked against the database later.

Storage knows nothing of the seal (it offers commit hooks, :meth:`Store.add_commit_hook`); the edges that open a
store for use (the app, the command line, a backup's restore, the tests) open it with :func:`open_sealed`.

Examples
--------
>>> with open_sealed(":memory:") as store:
...     with store.transaction():
...         store.execute("INSERT INTO audit_log (actor, action) VALUES ('a', 'x')")
...     report = verify(store)
>>> report["ok"], report["links"], report["rows"]
(True, 1, 1)
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from gridwatch.storage import Store, open_store

__all__ = ["SOURCES", "GENESIS", "open_sealed", "install", "seal", "seal_committed", "verify", "head"]

#: sealed tables and the columns of their canonical text, in order
SOURCES: dict[str, tuple[str, ...]] = {
    "task_events": ("id", "task_id", "happened_at", "actor", "from_state", "to_state", "detail"),
    "audit_log": ("id", "logged_at", "actor", "action", "subject", "detail"),
    "problem_events": ("id", "problem_id", "happened_at", "actor", "person_id", "from_state", "to_state", "detail"),
}
#: the ``prev_hash`` of the first link
GENESIS = "0" * 64


def _canonical_sql(store: Store, source: str, alias: str = "") -> str:
    """SQL for one row's canonical text: fields joined by U+001F, NULL as U+0002 (neither occurs in the data;
    PostgreSQL text cannot hold U+0000)."""
    prefix = f"{alias}." if alias else ""
    fields = [f"coalesce(CAST({prefix}{column} AS VARCHAR), chr(2))" for column in SOURCES[source]]
    return " || chr(31) || ".join(fields)


def _digests(store: Store, source: str, *, first: int | None = None) -> pd.DataFrame:
    """SHA-256 of the rows' canonical texts joined by U+001E in id order, per chain link (or of the rows after
    ``first`` when given): columns ``seq`` (or nothing), ``n``, ``first_id``, ``last_id``, ``digest``."""
    text = _canonical_sql(store, source, "r")
    digest = store.sha256_hex_sql(f"string_agg({text}, chr(30) ORDER BY r.id)")
    if first is not None and store.backend == "duckdb":
        return _digest_streamed(store, source, text, first)
    if first is not None:
        return store.query_df(f"SELECT count(*) AS n, min(r.id) AS first_id, max(r.id) AS last_id, {digest} AS digest"
                              f" FROM {source} r WHERE r.id > ?", [first])
    return store.query_df(
        f"SELECT c.seq, count(r.id) AS n, {digest} AS digest FROM audit_chain c"
        f" LEFT JOIN {source} r ON r.id BETWEEN c.first_id AND c.last_id WHERE c.source = ? GROUP BY c.seq",
        [source])


def sha256_of_terminated(texts: pa.ChunkedArray | pa.Array) -> str:
    """SHA-256 (hex) of Arrow strings that each end with one separator character, less the last separator.

    The strings' data buffers are hashed back to back, without building the joined text.

    Examples
    --------
    >>> texts = pa.chunked_array([["a\x1e", "é\x1e"], ["", "c\x1e"]])
    >>> sha256_of_terminated(texts) == hashlib.sha256("a\x1eé\x1ec".encode()).hexdigest()
    True
    """
    chunks = []
    for chunk in (texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]):
        if not pa.types.is_large_string(chunk.type):
            chunk = chunk.cast(pa.large_string())
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64)[chunk.offset:chunk.offset + len(chunk) + 1]
        if len(chunk) and offsets[-1] > offsets[0]:
            chunks.append((chunk.buffers()[2], int(offsets[0]), int(offsets[-1])))
    sha = hashlib.sha256()
    remaining = sum(end - start for _, start, end in chunks) - 1  # less the last separator
    for data, start, end in chunks:
        size = min(end - start, remaining)
        sha.update(memoryview(data)[start:start + size])
        remaining -= size
    return sha.hexdigest()


def _digest_streamed(store: Store, source: str, text: str, first: int) -> pd.DataFrame:
    """:func:`_digests` of the rows after ``first``, hashed as they stream out of DuckDB.

    The same digest as the SQL (each row's canonical text, U+001E between rows, in id order): the texts come out
    as Arrow strings, each followed by U+001E, so the bytes to hash are the strings' data buffers back to back,
    less the last separator. DuckDB's ordered ``string_agg`` sorts and copies every text first: for the 265 k
    events of a large fire dispatch it took 0.24 s against ≈ 0.1 s here.
    """
    rows = store.query_arrow(f"SELECT r.id, {text} || chr(30) AS t FROM {source} r WHERE r.id > ? ORDER BY r.id",
                             [first])
    n = rows.num_rows
    if not n:
        return pd.DataFrame({"n": [0], "first_id": [None], "last_id": [None], "digest": [None]})
    ids = rows.column("id")
    return pd.DataFrame({"n": [n], "first_id": [int(ids[0].as_py())], "last_id": [int(ids[n - 1].as_py())],
                         "digest": [sha256_of_terminated(rows.column("t"))]})


def _link_hash(prev: str, seq: int, source: str, first: int, last: int, rows: int, digest: str) -> str:
    return hashlib.sha256(f"{prev}|{seq}|{source}|{first}|{last}|{rows}|{digest}".encode()).hexdigest()


def seal(store: Store, *, now: dt.datetime | None = None) -> int:
    """Seal the rows written since the last link (one link per source with new rows); returns the links added.

    Runs inside the caller's transaction (the commit hook) so the seal and the rows commit together.
    """
    tip = store.query("SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1")
    seq, prev = (int(tip[0]["seq"]), tip[0]["hash"]) if tip else (0, GENESIS)
    sealed_to = {r["source"]: int(r["last"]) for r in store.query(
        "SELECT source, max(last_id) AS last FROM audit_chain GROUP BY source")}
    moment = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    added = 0
    for source in SOURCES:
        newest = store.scalar(f"SELECT max(id) FROM {source}")
        if newest is None or int(newest) <= sealed_to.get(source, 0):
            continue
        batch = _digests(store, source, first=sealed_to.get(source, 0)).iloc[0]
        first, last, count, digest = int(batch.first_id), int(batch.last_id), int(batch.n), str(batch.digest)
        seq += 1
        link = _link_hash(prev, seq, source, first, last, count, digest)
        store.execute("INSERT INTO audit_chain (seq, source, first_id, last_id, rows, digest, prev_hash, hash,"
                      " sealed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      [seq, source, first, last, count, digest, prev, link, moment])
        prev = link
        added += 1
    return added


def seal_committed(store: Store) -> int:
    """Seal what has been committed and not sealed yet, one sealer at a time.

    Sealers are serialised (:meth:`Store.exclusive`) and each seal runs in a fresh transaction that sees every
    commit before it, so links never fork. Rows committed by a process that dies before sealing are sealed by the
    next commit anywhere, and are reported as unsealed by :func:`verify` until then.
    """
    with store.exclusive("seal"):
        return seal(store)


def install(store: Store) -> None:
    """Seal after every commit of this store (idempotent)."""
    store.add_commit_hook(seal_committed)


def open_sealed(url: str) -> Store:
    """Open the store ``url`` names for use: open it, apply pending migrations, and seal every commit from now on.

    The one way the app, the command line, a backup's restore and the tests open a store; the sealing is installed
    before anything is written, so no transaction of the returned store goes unsealed.

    Parameters
    ----------
    url : str
        ``:memory:``, a DuckDB file, or a ``postgresql://`` URL (see :func:`gridwatch.storage.open_store`).

    Returns
    -------
    Store
        Migrated, with the seal installed; use it as a context manager or close it.

    Examples
    --------
    >>> with open_sealed(":memory:") as store:
    ...     with store.transaction():
    ...         store.execute("INSERT INTO audit_log (actor, action) VALUES ('a', 'x')")
    ...     head(store)["seq"]
    1
    """
    store = open_store(url)
    install(store)
    return store


def head(store: Store) -> dict[str, Any]:
    """The chain's head: ``seq``, ``hash`` and when it was sealed (``None`` values before the first link)."""
    rows = store.query("SELECT seq, hash, sealed_at FROM audit_chain ORDER BY seq DESC LIMIT 1")
    if not rows:
        return {"seq": 0, "hash": GENESIS, "sealed_at": None}
    return {"seq": int(rows[0]["seq"]), "hash": rows[0]["hash"], "sealed_at": rows[0]["sealed_at"]}


def verify(store: Store) -> dict[str, Any]:
    """Recompute the chain; report the first broken link and any rows not sealed yet.

    Returns
    -------
    dict
        ``ok`` (no broken link), ``links``, ``rows`` (sealed), ``unsealed`` (rows written outside a transaction,
        sealed by the next one), ``head`` (:func:`head`), ``first_broken`` (None, or ``seq``, ``source``,
        ``first_id``, ``last_id`` and ``reason``: ``rows_changed``, ``rows_missing_or_added``, ``link_changed``
        or ``sequence_gap``).
    """
    links = store.query_df("SELECT seq, source, first_id, last_id, rows, digest, prev_hash, hash FROM audit_chain"
                           " ORDER BY seq")
    found = {}
    for source in SOURCES:
        if (links.source == source).any():
            for row in _digests(store, source).itertuples(index=False):
                found[int(row.seq)] = (int(row.n), row.digest)
    prev, broken, expected_seq = GENESIS, None, 1
    sealed_rows = 0
    for link in links.itertuples(index=False):
        where = {"seq": int(link.seq), "source": link.source, "first_id": int(link.first_id),
                 "last_id": int(link.last_id)}
        if int(link.seq) != expected_seq:
            broken = {**where, "reason": "sequence_gap"}
            break
        count, digest = found.get(int(link.seq), (0, None))
        if count != int(link.rows):
            broken = {**where, "reason": "rows_missing_or_added"}
            break
        if digest != link.digest:
            broken = {**where, "reason": "rows_changed"}
            break
        if link.prev_hash != prev or link.hash != _link_hash(prev, int(link.seq), link.source, int(link.first_id),
                                                              int(link.last_id), int(link.rows), link.digest):
            broken = {**where, "reason": "link_changed"}
            break
        prev = link.hash
        sealed_rows += int(link.rows)
        expected_seq += 1
    unsealed = 0
    for source in SOURCES:
        last = links[links.source == source].last_id.max() if len(links) else None
        unsealed += int(store.scalar(f"SELECT count(*) FROM {source} WHERE id > ?",
                                     [int(last) if last is not None and pd.notna(last) else 0]))
    return {"ok": broken is None, "links": int(len(links)), "rows": sealed_rows, "unsealed": unsealed,
            "head": head(store), "first_broken": broken}
