"""The tamper-evident seal over the records accountability decisions rest on (task events, the audit log).

Rows are never changed after they are written; this module makes a change, a deletion, an insertion or a
truncation afterwards detectable. Every transaction seals what it wrote before it commits (transaction hooks
installed by :func:`install`): one link per source and run of consecutive ids, whose MAC (HMAC-SHA256 with the
audit key, which never lives in the database: :mod:`gridwatch.auditkey`) covers the link before it, so the chain's
head covers every sealed row. Sealers take turns on the chain head (a process lock on DuckDB, which has one
writing process; an advisory lock on PostgreSQL) and each seals only its own rows. After each seal the head is
anchored outside the database as well (the head file beside it). :func:`verify` recomputes everything and lists
every problem with where it is; :func:`head` is the value to print on an exported report.

Storage knows nothing of the seal (it offers transaction hooks, :meth:`Store.add_transaction_hooks`); the edges
that open a store for use (the app, the command line, a backup's restore, the tests) open it with
:func:`open_sealed`.

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
import hmac
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gridwatch import auditkey
from gridwatch.errors import StorageError, ValidationError
from gridwatch.i18n import N_
from gridwatch.storage import Store, open_store

__all__ = ["SOURCES", "GENESIS", "UNSEALED_LIMIT_S", "open_sealed", "install", "keyring", "rotate_key", "verify", "head"]

#: sealed tables and the columns of their canonical text, in order (links with a key)
SOURCES: dict[str, tuple[str, ...]] = {
    "task_events": ("id", "task_id", "happened_at", "actor", "from_state", "to_state", "detail", "sets",
                    "assignee_id", "due_at"),
    "audit_log": ("id", "logged_at", "actor", "action", "subject", "detail"),
    "problem_events": ("id", "problem_id", "happened_at", "actor", "person_id", "from_state", "to_state", "detail"),
}
#: the canonical columns of links sealed before keys (migration 0010)
LEGACY_SOURCES: dict[str, tuple[str, ...]] = {
    "task_events": ("id", "task_id", "happened_at", "actor", "from_state", "to_state", "detail"),
    "audit_log": SOURCES["audit_log"],
}
#: each source's time column: when a row was written
WRITTEN_AT = {"task_events": "happened_at", "audit_log": "logged_at", "problem_events": "happened_at"}
log = logging.getLogger(__name__)
#: the ``prev_hash`` of the first link
GENESIS = "0" * 64
#: seconds a row may stay unsealed before verification fails (rows are sealed in the transaction that writes
#: them; an unsealed row older than this was written around the seal)
UNSEALED_LIMIT_S = 5.0


def _canonical_sql(source: str, alias: str = "", *, legacy: bool = False) -> str:
    """SQL for one row's canonical text: fields joined by U+001F, NULL as U+0002 (neither occurs in the data;
    PostgreSQL text cannot hold U+0000)."""
    prefix = f"{alias}." if alias else ""
    columns = (LEGACY_SOURCES if legacy else SOURCES)[source]
    return " || chr(31) || ".join(f"coalesce(CAST({prefix}{column} AS VARCHAR), chr(2))" for column in columns)


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


def _link_hash(prev: str, seq: int, source: str, first: int, last: int, rows: int, digest: str) -> str:
    """The hash of a link sealed before keys (migration 0010): plain SHA-256."""
    return hashlib.sha256(f"{prev}|{seq}|{source}|{first}|{last}|{rows}|{digest}".encode()).hexdigest()


def _link_mac(key: bytes, key_id: str, prev: str, seq: int, source: str, first: int, last: int, rows: int,
              digest: str) -> str:
    """The MAC of a keyed link: HMAC-SHA256 with the audit key ``key_id`` over the link and the one before."""
    text = f"{prev}|{seq}|{source}|{first}|{last}|{rows}|{digest}|{key_id}"
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _runs(ids: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` positions of the runs of consecutive values in the sorted ``ids``.

    Examples
    --------
    >>> _runs(np.array([3, 4, 5, 9, 11, 12]))
    [(0, 3), (3, 4), (4, 6)]
    """
    if not len(ids):
        return []
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    edges = [0, *breaks.tolist(), len(ids)]
    return list(zip(edges[:-1], edges[1:]))


class _SealState:
    """What the seal keeps per store: its keyring, and per thread what the open transaction is sealing."""

    def __init__(self, keyring: auditkey.Keyring | None, key_file: Path | None, head_file: Path | None) -> None:
        self.keyring = keyring
        self.key_file = key_file
        self.head_file = head_file
        self.local = threading.local()


#: the chain head this process last committed, per DuckDB database (DuckDB has one writing process, and a
#: transaction reads the snapshot of its start, which may predate another thread's seal)
_heads: dict[str, tuple[int, str]] = {}
_seal_locks: dict[str, threading.RLock] = {}
_seal_guard = threading.Lock()


def _state(store: Store) -> _SealState | None:
    return getattr(store, "_audit_seal", None)


def _floors(store: Store) -> dict[str, tuple[int, np.ndarray]]:
    """What each source holds as this transaction begins: the last id its links seal, and the ids after it that
    no link seals (none, unless someone wrote around the seal). What the transaction writes comes after the one
    and is none of the others. One query."""
    last = "(SELECT coalesce(max(last_id), 0) FROM audit_chain WHERE source = '{s}')"
    found = store.query_arrow(" UNION ALL ".join(
        f"SELECT '{s}' AS source, {last.format(s=s)} AS last, CAST(NULL AS BIGINT) AS id"
        f" UNION ALL SELECT '{s}', NULL, id FROM {s} WHERE id > {last.format(s=s)}" for s in SOURCES))
    sources = np.asarray(found.column("source").to_pylist(), dtype=object)
    lasts, ids = found.column("last").to_pylist(), found.column("id").to_pylist()
    floors = {}
    for s in SOURCES:
        mine = sources == s
        sealed = next(int(v) for v, m in zip(lasts, mine) if m and v is not None)
        floors[s] = (sealed, np.array([v for v, m in zip(ids, mine) if m and v is not None], dtype=np.int64))
    return floors


def _on_begin(store: Store) -> None:
    state = _state(store)
    state.local.floors = _floors(store)
    state.local.locked = None
    state.local.pending = None


def _own_rows(store: Store, floors: dict[str, tuple[int, np.ndarray]]) -> list[tuple[str, pa.Table]]:
    """This transaction's rows of each source that has any: ids and canonical texts (each ending in U+001E), in
    id order. One query.

    DuckDB: a transaction sees the snapshot of its start, so the rows after the last sealed id that were not
    there as it began are its own. PostgreSQL (read committed): those of them this transaction wrote (``xmin``),
    not those committed by others since.
    """
    mine = ""
    if store.backend == "postgres":
        mine = " AND r.xmin::text::bigint = (pg_current_xact_id_if_assigned()::text::bigint % 4294967296)"
    rows = store.query_arrow(" UNION ALL ".join(
        f"SELECT '{s}' AS source, r.id, {_canonical_sql(s, 'r')} || chr(30) AS t FROM {s} r"
        f" WHERE r.id > {int(floors[s][0])}{mine}" for s in SOURCES) + " ORDER BY source, id")
    if not rows.num_rows:
        return []
    found = []
    for s in SOURCES:
        part = rows.filter(pc.equal(rows.column("source"), s))
        if len(floors[s][1]) and part.num_rows:
            part = part.filter(pa.array(~np.isin(part.column("id").to_numpy(), floors[s][1])))
        if part.num_rows:
            found.append((s, part))
    return found


def _lock_chain(store: Store) -> None:
    """Take the chain head for this transaction (released by :func:`_on_end`, after the head file is written)."""
    state = _state(store)
    if store.backend == "postgres":
        store.execute("SELECT pg_advisory_lock(hashtext('gridwatch.audit-seal'))")  # the session's, past COMMIT
        state.local.locked = "postgres"
        return
    with _seal_guard:
        lock = _seal_locks.setdefault(store._lock_scope(), threading.RLock())
    lock.acquire()
    state.local.locked = lock


def _tip(store: Store) -> tuple[int, str]:
    tip = store.query("SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1")
    seq, prev = (int(tip[0]["seq"]), tip[0]["hash"]) if tip else (0, GENESIS)
    if store.backend != "postgres":
        known = _heads.get(store._lock_scope())
        if known and known[0] > seq:
            seq, prev = known
    return seq, prev


def _before_commit(store: Store, *, now: dt.datetime | None = None) -> int:
    """Seal this transaction's rows, inside it: one link per source and run of consecutive ids."""
    state = _state(store)
    floors = getattr(state.local, "floors", None)
    if floors is None:
        return 0
    batches = _own_rows(store, floors)
    if not batches:
        return 0
    ring = state.keyring
    if ring is None:
        raise StorageError("The audit key of this database is missing ({path}); put back the key file from its "
                           "backup or set GRIDWATCH_AUDIT_KEY. Nothing was saved.",
                           path=state.key_file.name if state.key_file else auditkey.KEY_ENV)
    key = ring.keys[ring.current]
    _lock_chain(store)
    seq, prev = _tip(store)
    moment = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    links = []
    for source, rows in batches:
        ids = rows.column("id").to_numpy()
        texts = rows.column("t")
        for start, stop in _runs(ids):
            first, last, count = int(ids[start]), int(ids[stop - 1]), stop - start
            digest = sha256_of_terminated(texts.slice(start, count))
            seq += 1
            link = _link_mac(key, ring.current, prev, seq, source, first, last, count, digest)
            links.append([seq, source, first, last, count, digest, prev, link, moment, ring.current])
            prev = link
    store.executemany("INSERT INTO audit_chain (seq, source, first_id, last_id, rows, digest, prev_hash, hash,"
                      " sealed_at, key_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", links)
    state.local.pending = (seq, prev)
    return len(links)


def _on_end(store: Store, committed: bool) -> None:
    """After the transaction: anchor the new head outside the database, then let the next sealer in."""
    state = _state(store)
    locked, pending = getattr(state.local, "locked", None), getattr(state.local, "pending", None)
    state.local.floors = state.local.locked = state.local.pending = None
    if locked is None:
        return
    try:
        if committed and pending is not None:
            if store.backend != "postgres":
                _heads[store._lock_scope()] = pending
            if state.head_file is not None:
                try:
                    auditkey.write_head(state.head_file, *pending)
                except OSError as exc:  # the change is committed; a head file behind the chain is no failure
                    log.warning("cannot write the audit head file %s: %s", state.head_file, exc)
    finally:
        if locked == "postgres":
            try:
                store.execute("SELECT pg_advisory_unlock(hashtext('gridwatch.audit-seal'))")
            except StorageError:
                pass  # the connection is gone, and its lock with it
        else:
            locked.release()


def install(store: Store) -> None:
    """Seal every transaction of this store before it commits (idempotent).

    The audit key is read from its file or ``GRIDWATCH_AUDIT_KEY``. A database whose chain has no keyed link (a
    new database, or one sealed before keys) gets a new key file; a database with keyed links and no key keeps
    none: verification reports the key missing, and every change that would need a seal is refused.
    """
    if _state(store) is not None:
        return
    key_file, head_file = auditkey.key_path(store), auditkey.head_path(store)
    ring = auditkey.load_keyring(key_file)
    if ring is None:
        keyed = int(store.scalar("SELECT count(*) FROM audit_chain WHERE key_id IS NOT NULL"))
        anchored = auditkey.read_head(head_file)
        if not keyed and not (anchored and anchored["seq"] > 0):
            if key_file is None:
                key_id = "m" + secrets.token_hex(4)
                ring = auditkey.Keyring(key_id, {key_id: secrets.token_bytes(auditkey.KEY_BYTES)}, ":memory:")
            else:
                ring = auditkey.create_keyring(key_file)
    if store.backend != "postgres":
        _heads.pop(store._lock_scope(), None)  # a file opened anew may have been replaced (a restore)
    store._audit_seal = _SealState(ring, key_file, head_file)
    store.add_transaction_hooks(begin=_on_begin, before_commit=_before_commit, end=_on_end)


def keyring(store: Store) -> auditkey.Keyring | None:
    """The audit keys of a store opened with :func:`open_sealed` (None when they are missing)."""
    state = _state(store)
    return state.keyring if state else auditkey.load_keyring(auditkey.key_path(store))


def rotate_key(store: Store) -> dict[str, Any]:
    """Add a fresh key to the database's keyring file and seal with it from now on; old links keep verifying.

    Raises
    ------
    ValidationError
        The keys come from ``GRIDWATCH_AUDIT_KEY`` (put the new key first in the variable instead), or the
        database is in memory.
    StorageError
        There is no key file to rotate.
    """
    state = _state(store)
    if os.environ.get(auditkey.KEY_ENV, "").strip():
        raise ValidationError("The audit keys come from {variable}: put a new key first in it (keep the old ones "
                              "after it) instead.", variable=auditkey.KEY_ENV)
    if state is None or state.key_file is None:
        raise ValidationError("An in-memory database has no key file to rotate.")
    ring = auditkey.rotate_keyring(state.key_file)
    state.keyring = ring
    return {"key_file": str(state.key_file), "current": ring.current, "keys": sorted(ring.keys)}


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
    try:
        install(store)
    except BaseException:
        store.close()
        raise
    return store


def head(store: Store) -> dict[str, Any]:
    """The chain's head: ``seq``, ``hash`` and when it was sealed (``None`` values before the first link)."""
    rows = store.query("SELECT seq, hash, sealed_at FROM audit_chain ORDER BY seq DESC LIMIT 1")
    if not rows:
        return {"seq": 0, "hash": GENESIS, "sealed_at": None}
    return {"seq": int(rows[0]["seq"]), "hash": rows[0]["hash"], "sealed_at": rows[0]["sealed_at"]}


#: what verification finds, as message ids filled in with where it is (translated where they are shown)
MESSAGES = {
    "key_missing": N_("The audit key is missing ({where}): the keyed links cannot be checked and nothing can be "
                      "sealed; put back the key file from its backup."),
    "key_unknown": N_("Link {seq} ({source}, rows {first_id} to {last_id}) was sealed with the key {key_id}, which "
                      "the keyring does not hold."),
    "link_forged": N_("Link {seq} ({source}, rows {first_id} to {last_id}) does not carry a valid MAC: it was forged "
                      "or changed."),
    "link_changed": N_("Link {seq} ({source}, rows {first_id} to {last_id}) does not follow the link before it."),
    "sequence_gap": N_("Links are missing before link {seq}: the chain goes from link {previous} to link {seq}."),
    "rows_missing_or_added": N_("Link {seq} seals {expected} rows of {source} ({first_id} to {last_id}) but {found} "
                                "are there: rows were deleted or added."),
    "rows_changed": N_("Rows {first_id} to {last_id} of {source} (link {seq}) were changed after they were "
                       "sealed."),
    "unsealed": N_("{count} rows of {source} were never sealed and were not written in the last {limit} seconds "
                   "(ids {ids})."),
    "truncated": N_("The chain ends at link {seq} but its head file says link {anchored}: the last links or rows "
                    "were removed."),
    "head_differs": N_("Link {seq} is not the link the head file anchored: the chain was rewritten."),
    "head_file_missing": N_("The head file {path} is missing, so removed links could go unnoticed; it is written "
                            "again at the next change."),
    "task_row_differs": N_("Task {task_id}: its {column} is {stored} but its events give {derived}."),
}
#: most problems of one kind listed one by one (the count says how many there are)
MAX_LISTED = 50


def _problem(reason: str, **where: Any) -> dict[str, Any]:
    return {"reason": reason, **where, "message": MESSAGES[reason].format(**where)}


def _rows_of(store: Store, source: str, *, legacy: bool) -> pa.Table:
    text = _canonical_sql(source, "r", legacy=legacy)
    return store.query_arrow(f"SELECT r.id, r.{WRITTEN_AT[source]} AS at, {text} || chr(30) AS t FROM {source} r"
                             " ORDER BY r.id")


def _check_links(links: pd.DataFrame, ring: auditkey.Keyring | None, store: Store, problems: list,
                 *, now: dt.datetime, limit_s: float) -> tuple[int, int]:
    """Every link against its rows, its predecessor and its key; rows no link seals. Returns (sealed, unsealed)."""
    counts: dict[int, tuple[int, str | None]] = {}
    sealed = unsealed = 0
    for source in SOURCES:
        mine = links[links.source == source]
        bounds, rows = [], None
        for legacy in (False, True):
            part = mine[mine.key_id.isna() == legacy]
            if legacy and part.empty:
                continue
            rows = _rows_of(store, source, legacy=legacy)
            ids = rows.column("id").to_numpy()
            lo = np.searchsorted(ids, part.first_id.to_numpy(dtype=np.int64), "left")
            hi = np.searchsorted(ids, part.last_id.to_numpy(dtype=np.int64), "right")
            bounds.append((lo, hi))
            texts = rows.column("t")
            for seq, expected, start, stop in zip(part.seq.to_numpy(), part.rows.to_numpy(), lo, hi):
                n = int(stop - start)
                counts[int(seq)] = (n, sha256_of_terminated(texts.slice(int(start), n)) if n == expected else None)
        ids = rows.column("id").to_numpy()  # the same rows in either read
        delta = np.zeros(len(ids) + 1, dtype=np.int64)
        for lo, hi in bounds:
            np.add.at(delta, lo, 1)
            np.add.at(delta, hi, -1)
        loose = np.flatnonzero(np.cumsum(delta)[:-1] == 0)
        unsealed += len(loose)
        if len(loose):
            at = rows.column("at").to_numpy(zero_copy_only=False)[loose].astype("datetime64[us]")
            recent = ((at >= np.datetime64(now - dt.timedelta(seconds=limit_s)))
                      & (at <= np.datetime64(now + dt.timedelta(seconds=limit_s))))
            old = loose[~recent]  # written before the limit, dated ahead of now, or undated
            if len(old):
                shown = ", ".join(str(int(i)) for i in ids[old[:MAX_LISTED]])
                problems.append(_problem("unsealed", count=len(old), source=source, limit=f"{limit_s:g}",
                                         ids=shown + (" …" if len(old) > MAX_LISTED else "")))
    prev, expected_seq, seen_keyed = GENESIS, 1, False
    for link in links.itertuples(index=False):
        seq, first, last, rows = int(link.seq), int(link.first_id), int(link.last_id), int(link.rows)
        where = {"seq": seq, "source": link.source, "first_id": first, "last_id": last}
        if seq != expected_seq:
            problems.append(_problem("sequence_gap", previous=expected_seq - 1, **where))
        if link.prev_hash != prev:
            problems.append(_problem("link_changed", **where))
        keyed = isinstance(link.key_id, str)
        if keyed:
            seen_keyed = True
            if ring is not None:
                key = ring.keys.get(link.key_id)
                if key is None:
                    problems.append(_problem("key_unknown", key_id=link.key_id, **where))
                elif not hmac.compare_digest(link.hash, _link_mac(key, link.key_id, link.prev_hash, seq, link.source,
                                                                  first, last, rows, link.digest)):
                    problems.append(_problem("link_forged", **where))
        elif seen_keyed:
            problems.append(_problem("link_forged", **where))
        elif link.hash != _link_hash(link.prev_hash, seq, link.source, first, last, rows, link.digest):
            problems.append(_problem("link_changed", **where))
        found, digest = counts.get(seq, (0, None))
        if found != rows:
            problems.append(_problem("rows_missing_or_added", expected=rows, found=found, **where))
        elif digest != link.digest:
            problems.append(_problem("rows_changed", **where))
        else:
            sealed += rows
        prev, expected_seq = link.hash, seq + 1
    return sealed, unsealed


def _check_tasks(store: Store, problems: list) -> int:
    """Every task row against its events: the state of its last event, the assignee and due time of the last
    event that set them (tasks whose events predate :data:`workflow.DERIVED_COLUMNS` are checked for their state
    only). Returns the tasks checked."""
    def last(where: str, column: str) -> str:
        return (f"(SELECT task_id, {column} AS v FROM (SELECT task_id, {column}, row_number() OVER (PARTITION BY"
                f" task_id ORDER BY id DESC) AS k FROM task_events{where}) x WHERE k = 1)")

    wrong = store.query_df(
        "SELECT t.id, t.state, s.v AS state_events, t.assignee_id, a.task_id IS NOT NULL AS has_assignee,"
        " a.v AS assignee_id_events, t.due_at, d.task_id IS NOT NULL AS has_due, d.v AS due_at_events"
        f" FROM tasks t LEFT JOIN {last('', 'to_state')} s ON s.task_id = t.id"
        f" LEFT JOIN {last(' WHERE sets LIKE ' + chr(39) + '%assignee_id%' + chr(39), 'assignee_id')} a"
        " ON a.task_id = t.id"
        f" LEFT JOIN {last(' WHERE sets LIKE ' + chr(39) + '%due_at%' + chr(39), 'due_at')} d ON d.task_id = t.id"
        " WHERE t.state IS DISTINCT FROM s.v OR (a.task_id IS NOT NULL AND t.assignee_id IS DISTINCT FROM a.v)"
        " OR (d.task_id IS NOT NULL AND t.due_at IS DISTINCT FROM d.v) ORDER BY t.id")
    listed = 0
    for row in wrong.itertuples(index=False):
        for column, applies in (("state", True), ("assignee_id", bool(row.has_assignee)),
                                ("due_at", bool(row.has_due))):
            stored, derived = getattr(row, column), getattr(row, f"{column}_events")
            if not applies or (pd.isna(stored) and pd.isna(derived)) or stored == derived:
                continue
            if listed < MAX_LISTED:
                problems.append(_problem("task_row_differs", task_id=int(row.id), column=column,
                                         stored=_plain(stored), derived=_plain(derived)))
            listed += 1
    return int(store.scalar("SELECT count(*) FROM tasks"))


def _plain(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def verify(store: Store, *, now: dt.datetime | None = None, limit_s: float = UNSEALED_LIMIT_S) -> dict[str, Any]:
    """Recompute the chain, compare it with its anchored head and check the task rows against their events.

    Parameters
    ----------
    store : Store
        The database (opened with :func:`open_sealed`, or plainly: the key and head files are found the same way).
    now : datetime, optional
        The moment unsealed rows are aged against (naive UTC; default now).
    limit_s : float
        Seconds a row may stay unsealed (:data:`UNSEALED_LIMIT_S`).

    Returns
    -------
    dict
        ``ok`` (no problem), ``links``, ``rows`` (sealed and intact), ``unsealed``, ``head`` (:func:`head`),
        ``anchored`` (the head file's ``seq`` and ``hash``, or None), ``tasks`` (task rows checked), ``problems``
        (each with its ``reason``, where it is — ``seq``, ``source``, ``first_id``, ``last_id``, ``task_id``,
        ``column`` … — and a ``message``; reasons: :data:`MESSAGES`), ``first_broken`` (the first problem of a
        link, or None).
    """
    state = _state(store)
    key_file = state.key_file if state else auditkey.key_path(store)
    head_file = state.head_file if state else auditkey.head_path(store)
    ring = state.keyring if state else auditkey.load_keyring(key_file)
    moment = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    problems: list[dict[str, Any]] = []
    links = store.query_df("SELECT seq, source, first_id, last_id, rows, digest, prev_hash, hash, key_id"
                           " FROM audit_chain ORDER BY seq")
    links["key_id"] = links.key_id.astype(object).where(links.key_id.notna(), None)
    if links.key_id.notna().any() and ring is None:
        problems.append(_problem("key_missing", where=key_file.name if key_file else auditkey.KEY_ENV))
    sealed, unsealed = _check_links(links, ring, store, problems, now=moment, limit_s=limit_s)
    top = head(store)
    anchored = auditkey.read_head(head_file)
    if anchored is not None:
        if anchored["seq"] > top["seq"]:
            problems.append(_problem("truncated", seq=top["seq"], anchored=anchored["seq"]))
        elif anchored["seq"] > 0:
            there = links.hash[links.seq == anchored["seq"]]
            if there.empty or there.iloc[0] != anchored["hash"]:
                problems.append(_problem("head_differs", seq=anchored["seq"]))
    elif head_file is not None and links.key_id.notna().any():
        problems.append(_problem("head_file_missing", path=head_file.name))
    tasks = _check_tasks(store, problems)
    first = next((p for p in problems if "seq" in p and "source" in p), None)
    return {"ok": not problems, "links": int(len(links)), "rows": sealed, "unsealed": unsealed, "head": top,
            "anchored": anchored, "tasks": tasks, "problems": problems, "first_broken": first}
