"""Backups and restores of a gridwatch database that cannot attack the one who restores them.

A backup is a folder of data only: one Parquet file per table (geometries as WKB), written through the store's own
connection inside one read-only snapshot (so the running app can take it while people work), the chain head the
snapshot sees (``audit-head.json``, :mod:`gridwatch.audit`), and the manifest ``gridwatch-backup.json``: the
schema version, every table's row count and file, the size and SHA-256 of every file, signed with the audit key
(HMAC-SHA256, :mod:`gridwatch.auditkey`). It is written into ``<folder>.partial`` and renamed at the end, so a
folder of that name is whole; a failure (a full disk) removes the partial folder.

A restore never runs SQL or code from the backup. It checks the signature and that the folder holds exactly the
files the manifest lists, each of its size and hash, before anything is written; then it makes the schema from the
installed version's migrations (up to the backup's version) in a new database beside the target, loads each table
from its Parquet file as data (parents before the tables that refer to them), sets the sequences after the ids,
applies newer migrations, and checks the row counts and the tamper-evident record before the new database takes
the target's place, with the audit key and the anchored head beside it.

Examples
--------
>>> import tempfile, pathlib
>>> from gridwatch import audit
>>> with tempfile.TemporaryDirectory() as tmp, audit.open_sealed(":memory:") as store:
...     made = backup(store, pathlib.Path(tmp) / "b")
...     back = restore(pathlib.Path(tmp) / "b", pathlib.Path(tmp) / "r.duckdb", keyring=audit.keyring(store))
>>> made["tables"]["roles"] == back["tables"]["roles"] == 7
True
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import hmac
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from gridwatch import __version__, audit, auditkey
from gridwatch.errors import StorageError, ValidationError
from gridwatch.storage import Store, is_postgres_url, list_migrations, open_store

__all__ = ["MANIFEST", "HEAD_FILE", "FORMAT", "backup", "restore", "table_counts", "check_backup"]

#: the manifest's file name inside a backup folder
MANIFEST = "gridwatch-backup.json"
#: the chain head the backup's snapshot saw
HEAD_FILE = "audit-head.json"
#: the kind of backup this module writes and reads
FORMAT = "gridwatch-tables-1"
#: the largest manifest read (a manifest lists a few dozen files)
MANIFEST_MAX_BYTES = 4 << 20
#: errors of a write that found no room
_NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def table_counts(store: Store) -> dict[str, int]:
    """Rows of every table of the database (:meth:`Store.tables`), by name."""
    return {name: int(store.scalar(f'SELECT count(*) FROM "{name}"')) for name in store.tables()}


def _schema_version(store: Store) -> int:
    return int(store.scalar("SELECT max(version) FROM schema_migrations") or 0)


def _geometry_columns(store: Store, table: str) -> list[str]:
    if store.backend == "postgres":
        sql = ("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
               " AND table_name = ? AND udt_name = 'geometry' ORDER BY ordinal_position")
    else:
        sql = ("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
               " AND table_name = ? AND data_type = 'GEOMETRY' ORDER BY ordinal_position")
    return [r["column_name"] for r in store.query(sql, [table])]


def _columns(store: Store, table: str) -> list[str]:
    return [r["column_name"] for r in store.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = ? ORDER BY ordinal_position", [table])]


def _canonical(manifest: dict[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def _sign(manifest: dict[str, Any], ring: auditkey.Keyring) -> dict[str, str]:
    mac = hmac.new(ring.keys[ring.current], _canonical(manifest), hashlib.sha256).hexdigest()
    return {"key_id": ring.current, "hmac": mac}


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _no_room(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
            return True
        text = str(exc)
        if "No space left" in text or "File too large" in text or "Disk quota" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def backup(store: Store, path: str | Path, *, actor: str = "system") -> dict[str, Any]:
    """Write a consistent, signed backup of ``store`` into the new folder ``path``; returns the manifest.

    Raises
    ------
    ValidationError
        ``path`` exists and is not an empty folder (a backup never overwrites anything).
    StorageError
        The disk is full (nothing is left behind), or the audit key is missing (a backup is signed with it).
    """
    target = Path(path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValidationError("The backup folder {path} already exists and is not empty; choose a new folder.",
                              path=str(target))
    ring = audit.keyring(store)
    if ring is None:
        where = auditkey.key_path(store)
        raise StorageError("The audit key of this database is missing ({path}); put back the key file from its "
                           "backup or set GRIDWATCH_AUDIT_KEY. Nothing was saved.",
                           path=where.name if where else auditkey.KEY_ENV)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(parents=True)
        manifest = _write(store, partial, actor)
        manifest["signature"] = _sign(manifest, ring)
        (partial / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2, default=str) + "\n",
                                        encoding="utf-8")
        if target.exists():
            target.rmdir()
        partial.rename(target)  # the folder appears whole or not at all
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if _no_room(exc):
            raise StorageError("The disk is full: the backup could not be written to {path}, and nothing of it was "
                               "kept. Free some space or choose another disk, then try again.",
                               path=str(target)) from exc
        raise
    return manifest


def _write(store: Store, folder: Path, actor: str) -> dict[str, Any]:
    """Every table as Parquet, the chain head and the manifest's contents (unsigned), in one snapshot."""
    tables: dict[str, int] = {}
    files: dict[str, str] = {}
    with store.snapshot():  # one snapshot: the files, the counts and the head see the same data
        for name in store.tables():
            geoms = _geometry_columns(store, name)
            columns = _columns(store, name)
            select = ", ".join(f"{store.geom_to_wkb_sql(c)} AS {c}" if c in geoms else c for c in columns)
            data = store.query_arrow(f"SELECT {select} FROM {name}")
            file = f"{name}.parquet"
            pq.write_table(data, folder / file)
            tables[name] = data.num_rows
            files[name] = file
        head = audit.head(store)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "backend": store.backend,
            "gridwatch": __version__,
            "schema_version": _schema_version(store),
            "taken_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "taken_by": actor,
            "tables": tables,
            "table_files": files,
            "geometry": {name: _geometry_columns(store, name) for name in tables if _geometry_columns(store, name)},
            "chain_head": head,
        }
    (folder / HEAD_FILE).write_text(json.dumps({"seq": head["seq"], "hash": head["hash"]}) + "\n", encoding="utf-8")
    manifest["files"] = {p.name: {"size": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(folder.iterdir())}
    return manifest


def _read_manifest(folder: Path) -> dict[str, Any]:
    file = folder / MANIFEST
    try:
        if not file.is_file() or file.is_symlink() or file.stat().st_size > MANIFEST_MAX_BYTES:
            raise ValueError(file)
        manifest = json.loads(file.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise ValueError(manifest.get("format"))
        for key, kind in (("files", dict), ("tables", dict), ("table_files", dict), ("geometry", dict),
                          ("signature", dict), ("schema_version", int), ("chain_head", dict), ("backend", str)):
            if not isinstance(manifest.get(key), kind):
                raise ValueError(key)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ValidationError("{path} is not a gridwatch backup (no readable {manifest}).", path=str(folder),
                              manifest=MANIFEST) from exc
    return manifest


def check_backup(path: str | Path, ring: auditkey.Keyring | None) -> dict[str, Any]:
    """Check a backup folder without writing anything; returns its manifest.

    The manifest's signature must verify with the audit keys ``ring``, and the folder must hold exactly the files
    it lists, each of its size and SHA-256.

    Raises
    ------
    ValidationError
        Not a backup, no key to check it with, a bad signature, or a file extra, missing or changed.
    """
    folder = Path(path)
    manifest = _read_manifest(folder)
    signature = manifest["signature"]
    key_id = str(signature.get("key_id", ""))
    if ring is None or key_id not in ring.keys:
        raise ValidationError("The backup {path} is signed with the audit key {key_id}, which is not at hand; give "
                              "the key file of the database it was taken from. Nothing was restored.",
                              path=str(folder), key_id=key_id)
    expected = hmac.new(ring.keys[key_id], _canonical(manifest), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(signature.get("hmac", ""))):
        raise ValidationError("The backup {path} does not carry a valid signature: its manifest was changed or "
                              "made elsewhere. Nothing was restored.", path=str(folder))
    listed = dict(manifest["files"])
    for name in listed:  # plain names of files in the folder, nothing elsewhere
        if not isinstance(name, str) or Path(name).name != name or name.startswith(".") or name == MANIFEST:
            raise ValidationError("{path} is not a gridwatch backup (no readable {manifest}).", path=str(folder),
                                  manifest=MANIFEST)
    present = {p.name for p in folder.iterdir()} - {MANIFEST}
    for name in sorted(present - set(listed)):
        raise ValidationError("The backup {path} holds a file its manifest does not list ({file}); nothing was "
                              "restored.", path=str(folder), file=name)
    for name, fact in sorted(listed.items()):
        file = folder / name
        try:
            size, digest = int(fact["size"]), str(fact["sha256"])
        except (TypeError, KeyError, ValueError) as exc:
            raise ValidationError("{path} is not a gridwatch backup (no readable {manifest}).", path=str(folder),
                                  manifest=MANIFEST) from exc
        if not file.is_file() or file.is_symlink() or file.stat().st_size != size or _sha256(file) != digest:
            raise ValidationError("The backup {path} is damaged: {file} is missing or changed since the backup was "
                                  "taken; nothing was restored.", path=str(folder), file=name)
    files = set(manifest["table_files"].values()) | {HEAD_FILE}
    if not files <= set(listed) or set(manifest["table_files"]) != set(manifest["tables"]):
        raise ValidationError("{path} is not a gridwatch backup (no readable {manifest}).", path=str(folder),
                              manifest=MANIFEST)
    installed = max(number for number, _, _ in list_migrations())
    if manifest["schema_version"] > installed:
        raise ValidationError("The backup {path} was taken by a newer gridwatch (schema {version}); install that "
                              "version to restore it.", path=str(folder), version=manifest["schema_version"])
    return manifest


def _order(store: Store, tables: list[str]) -> list[str]:
    """``tables`` with every table after the tables it refers to (foreign keys)."""
    if store.backend == "postgres":
        sql = ("SELECT tc.table_name AS child, ccu.table_name AS parent FROM information_schema.table_constraints tc"
               " JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = tc.constraint_name"
               " AND ccu.table_schema = tc.table_schema"
               " WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()")
    else:
        sql = ("SELECT table_name AS child, referenced_table AS parent FROM duckdb_constraints()"
               " WHERE constraint_type = 'FOREIGN KEY'")
    parents: dict[str, set[str]] = {t: set() for t in tables}
    for row in store.query(sql):
        if row["child"] in parents and row["parent"] in parents and row["parent"] != row["child"]:
            parents[row["child"]].add(row["parent"])
    ordered: list[str] = []
    while parents:
        ready = sorted(t for t, p in parents.items() if not p - set(ordered))
        if not ready:  # a cycle: keep the rest in name order
            ready = sorted(parents)
        ordered += ready
        for t in ready:
            parents.pop(t)
    return ordered


def _sequences(store: Store) -> list[tuple[str, str, str]]:
    """``(table, column, sequence)`` of every column whose default draws from a sequence."""
    found = []
    for row in store.query("SELECT table_name, column_name, column_default FROM information_schema.columns"
                           " WHERE table_schema = current_schema() AND column_default LIKE '%nextval(%'"):
        match = re.search(r"nextval\('([A-Za-z_][A-Za-z0-9_]*)'", str(row["column_default"]))
        if match:
            found.append((row["table_name"], row["column_name"], match.group(1)))
    return found


def _set_sequence(store: Store, sequence: str, value: int) -> None:
    """Make ``sequence`` give values after ``value``."""
    if store.backend == "postgres":
        if value > 0:
            store.execute("SELECT setval(?, ?)", [sequence, value])
        return
    last = store.scalar("SELECT last_value FROM duckdb_sequences() WHERE sequence_name = ?", [sequence])
    missing = value - int(last or 0)
    if missing > 0:  # DuckDB cannot set a sequence: draw the values the restored rows hold
        store.execute(f"SELECT max(nextval('{sequence}')) FROM range(?)", [missing])


def _fill(url: str, folder: Path, manifest: dict[str, Any]) -> None:
    """Make the schema from the installed migrations and load the backup's tables into the new database ``url``."""
    with open_store(url, migrate=False) as store:
        store.migrate(upto=manifest["schema_version"])
        existing = set(store.tables())
        unknown = sorted(set(manifest["tables"]) - existing)
        if unknown:
            raise ValidationError("The backup {path} holds tables this version does not have ({tables}); nothing "
                                  "was restored.", path=str(folder), tables=", ".join(unknown))
        order = _order(store, list(manifest["tables"]))
        for name in reversed(order):  # what the migrations put there (the roles) comes from the backup; one
            store.execute(f'DELETE FROM "{name}"')  # at a time (DuckDB checks keys against the transaction's start)
        with store.transaction():
            for name in order:
                data = pq.read_table(folder / manifest["table_files"][name])
                columns = set(_columns(store, name))
                extra = [c for c in data.column_names if c not in columns]
                if extra or data.num_rows != int(manifest["tables"][name]):
                    raise ValidationError("The backup's table {table} does not fit this version's schema ({columns}); "
                                          "nothing was restored.", table=name, columns=", ".join(extra) or "rows")
                if data.num_rows:
                    store.insert_arrow(name, _plain_types(data), wkb=manifest["geometry"].get(name, ()))
            for table, column, sequence in _sequences(store):
                _set_sequence(store, sequence, int(store.scalar(f"SELECT coalesce(max({column}), 0) FROM {table}")))


def _plain_types(data: pa.Table) -> pa.Table:
    """Dictionary-encoded columns (as Parquet may give them back) decoded."""
    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in data.columns]
    return pa.Table.from_arrays(columns, names=data.column_names)


def _checked(store: Store, manifest: dict[str, Any]) -> tuple[dict[str, int], dict[str, Any]]:
    """The restored database's row counts and chain, checked against the manifest (raises when they differ)."""
    counts = table_counts(store)
    wrong = {name: (n, counts.get(name)) for name, n in manifest["tables"].items() if counts.get(name) != n}
    if wrong:
        raise ValidationError("The restored tables do not match the backup's manifest ({tables}); nothing "
                              "was restored.", tables=", ".join(sorted(wrong)))
    chain = audit.verify(store)
    if not chain["ok"]:
        raise ValidationError("The restored record fails its tamper-evident check at link {seq}; nothing "
                              "was restored.", seq=(chain["first_broken"] or chain["problems"][0]).get("seq", 0))
    if chain["head"]["hash"] != manifest["chain_head"]["hash"]:
        raise ValidationError("The restored record fails its tamper-evident check at link {seq}; nothing "
                              "was restored.", seq=manifest["chain_head"]["seq"])
    return counts, chain


class _At:
    """Where a database is, as the key and head files are found (:func:`auditkey.key_path`)."""

    def __init__(self, where: str) -> None:
        self.backend = "postgres" if is_postgres_url(where) else "duckdb"
        self.url = self.path = where


def _ring_for(target: str, key_file: str | Path | None, keyring: auditkey.Keyring | None) -> auditkey.Keyring | None:
    if keyring is not None:
        return keyring
    if key_file is not None:
        return auditkey.load_keyring(Path(key_file))
    return auditkey.load_keyring(auditkey.key_path(_At(target)))


def _place(ring: auditkey.Keyring, manifest: dict[str, Any], where: str) -> None:
    """The audit key and the backup's chain head beside the database ``where``."""
    key, head = auditkey.key_path(_At(where)), auditkey.head_path(_At(where))
    auditkey.write_private(key, ring.to_json())
    auditkey.write_head(head, manifest["chain_head"]["seq"], manifest["chain_head"]["hash"])


def _forget(where: str) -> None:
    for find in (auditkey.key_path, auditkey.head_path):
        path = find(_At(where))
        if path is not None:
            path.unlink(missing_ok=True)


def restore(path: str | Path, target: str | Path, *, replace: bool = False, key_file: str | Path | None = None,
            keyring: auditkey.Keyring | None = None) -> dict[str, Any]:
    """Restore the backup folder ``path`` into the DuckDB file or the PostgreSQL database (a ``postgresql://``
    URL) ``target``; returns what was checked.

    The audit keys that check the backup's signature and its chain come from ``keyring``, ``key_file``, the key
    file beside ``target`` (when it is replaced) or ``GRIDWATCH_AUDIT_KEY``; they are placed beside the restored
    database. The backup is restored into a new file (a new database) beside ``target`` and checked (row counts,
    the tamper-evident record and its head) before it takes ``target``'s place, so a failure leaves ``target`` as
    it was. PostgreSQL: the role needs CREATEDB.

    Raises
    ------
    ValidationError
        Not a backup, a bad signature, a file extra, missing or changed, ``target`` exists without ``replace``, or
        the restored data do not match.
    StorageError
        ``target`` is in use by a running app.
    """
    folder = Path(path)
    target = str(target)
    ring = _ring_for(target, key_file, keyring)
    manifest = check_backup(folder, ring)
    if (manifest["backend"] == "postgres") != is_postgres_url(target):
        raise ValidationError("The backup {path} holds a {backend} database; restore it into a {backend} database.",
                              path=str(folder), backend="PostgreSQL" if manifest["backend"] == "postgres" else "DuckDB")
    if is_postgres_url(target):
        from gridwatch.storage.postgres import redact_url, restore_database

        def build(fresh_url: str) -> tuple[dict[str, int], dict[str, Any]]:
            try:
                _fill(fresh_url, folder, manifest)
                _place(ring, manifest, fresh_url)
                with audit.open_sealed(fresh_url) as store:  # applies newer migrations, if the backup is older
                    return _checked(store, manifest)
            finally:
                _forget(fresh_url)

        counts, chain = restore_database(target, replace=replace, build=build)
        _place(ring, {**manifest, "chain_head": chain["head"]}, target)
        return {"restored": redact_url(target), "schema_version": manifest["schema_version"], "tables": counts,
                "chain_head": chain["head"], "taken_at": manifest["taken_at"]}
    from gridwatch.storage.duckdb import DuckDBStore

    file = Path(target)
    if file.exists() and not replace:
        raise ValidationError("{path} already exists; restore into a new file, or replace it on purpose.",
                              path=str(file))
    if file.exists():
        DuckDBStore(str(file)).close()  # refuses, naming the lock, while the app holds the file
    fresh = file.with_name(file.name + ".restoring")
    fresh.unlink(missing_ok=True)
    try:
        _fill(str(fresh), folder, manifest)
        _place(ring, manifest, str(fresh))
        with audit.open_sealed(str(fresh)) as store:  # applies newer migrations, if the backup is older
            counts, chain = _checked(store, manifest)
    except BaseException:
        fresh.unlink(missing_ok=True)
        _forget(str(fresh))
        raise
    fresh.replace(file)
    _place(ring, {**manifest, "chain_head": chain["head"]}, str(file))
    _forget(str(fresh))
    return {"restored": str(file), "schema_version": manifest["schema_version"], "tables": counts,
            "chain_head": chain["head"], "taken_at": manifest["taken_at"]}
