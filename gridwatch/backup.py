"""Backups and restores of a gridwatch database, with a manifest that proves the copy is whole.

A backup is a folder written through the store's own connection inside one read-only snapshot (so the running app
can take it while people work): for DuckDB by ``EXPORT DATABASE`` in Parquet, for PostgreSQL one ``pg_dump``
archive of that same snapshot (``pg_dump --snapshot``); plus ``gridwatch-backup.json``: the schema version, every
table's row count and the tamper-evident chain's head (:mod:`gridwatch.audit`) as the snapshot sees them, and the
SHA-256 of every file. A restore checks the manifest and the files, restores into a new database file (DuckDB:
``IMPORT DATABASE``) or a new database beside the target (PostgreSQL: ``pg_restore``), then checks the row counts
and the chain again before the new one takes the target's place; a damaged or incomplete backup is refused and
nothing is written.

Examples
--------
>>> import tempfile, pathlib
>>> from gridwatch.audit import open_sealed
>>> with tempfile.TemporaryDirectory() as tmp, open_sealed(":memory:") as store:
...     made = backup(store, pathlib.Path(tmp) / "b")
...     back = restore(pathlib.Path(tmp) / "b", pathlib.Path(tmp) / "r.duckdb")
>>> made["tables"]["roles"] == back["tables"]["roles"] == 7
True
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from gridwatch import __version__, audit
from gridwatch.errors import ValidationError
from gridwatch.layerstore import sha256_of
from gridwatch.storage import Store, is_postgres_url

__all__ = ["MANIFEST", "backup", "restore", "table_counts"]

#: the manifest's file name inside a backup folder
MANIFEST = "gridwatch-backup.json"


def table_counts(store: Store) -> dict[str, int]:
    """Rows of every table of the database (:meth:`Store.tables`), by name."""
    return {name: int(store.scalar(f'SELECT count(*) FROM "{name}"')) for name in store.tables()}




def _schema_version(store: Store) -> int:
    return int(store.scalar("SELECT max(version) FROM schema_migrations") or 0)


def backup(store: Store, path: str | Path, *, actor: str = "system") -> dict[str, Any]:
    """Write a consistent backup of ``store`` into the new folder ``path``; returns the manifest.

    Raises
    ------
    ValidationError
        ``path`` exists and is not an empty folder (a backup never overwrites anything).
    StorageError
        The export fails (PostgreSQL: pg_dump is missing or fails).
    """
    target = Path(path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValidationError("The backup folder {path} already exists and is not empty; choose a new folder.",
                              path=str(target))
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    with store.snapshot():  # one snapshot: the export and the counts see the same data
        kind = store.dump(partial)
        manifest = {
            "format": kind,
            "gridwatch": __version__,
            "schema_version": _schema_version(store),
            "taken_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "taken_by": actor,
            "tables": table_counts(store),
            "chain_head": audit.head(store),
        }
    manifest["files"] = {p.name: sha256_of(p) for p in sorted(partial.iterdir())}
    (partial / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2, default=str) + "\n",
                                    encoding="utf-8")
    if target.exists():
        target.rmdir()
    partial.rename(target)  # the folder appears whole or not at all
    return manifest


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


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
                              "was restored.", seq=chain["first_broken"]["seq"])
    return counts, chain


def _manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files, tables = dict(manifest["files"]), dict(manifest["tables"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValidationError("{path} is not a gridwatch backup (no readable {manifest}).", path=str(folder),
                              manifest=MANIFEST) from exc
    for name, digest in files.items():
        file = folder / name
        if not file.is_file() or sha256_of(file) != digest:
            raise ValidationError("The backup {path} is damaged: {file} is missing or changed since the backup was "
                                  "taken; nothing was restored.", path=str(folder), file=name)
    manifest["tables"] = tables
    return manifest


def restore(path: str | Path, target: str | Path, *, replace: bool = False) -> dict[str, Any]:
    """Restore the backup folder ``path`` into the DuckDB file or the PostgreSQL database (a ``postgresql://``
    URL) ``target``, of the backend it was taken from; returns what was checked.

    The backup is restored into a new file (a new database) beside ``target`` and checked (row counts against the
    manifest, the tamper-evident chain) before it takes ``target``'s place, so a failure leaves ``target`` as it
    was. PostgreSQL: see :func:`gridwatch.storage.postgres.restore_dump` (the role needs CREATEDB).

    Raises
    ------
    ValidationError
        Not a backup, a damaged backup, a backup of the other backend, ``target`` exists without ``replace``, or
        the restored data do not match.
    StorageError
        ``target`` is in use by a running app; PostgreSQL: pg_restore is missing or fails.
    """
    from gridwatch.storage.postgres import DUMP_FORMAT

    folder = Path(path)
    manifest = _manifest(folder)
    from_postgres = manifest.get("format") == DUMP_FORMAT
    if is_postgres_url(str(target)) != from_postgres:
        raise ValidationError("The backup {path} holds a {backend} database; restore it into a {backend} database.",
                              path=str(folder), backend="PostgreSQL" if from_postgres else "DuckDB")
    if from_postgres:
        from gridwatch.storage.postgres import redact_url, restore_dump

        counts, chain = restore_dump(folder, str(target), replace=replace,
                                     check=lambda store: _checked(store, manifest), opener=audit.open_sealed)
        return {"restored": redact_url(str(target)), "schema_version": manifest["schema_version"], "tables": counts,
                "chain_head": chain["head"], "taken_at": manifest["taken_at"]}
    from gridwatch.storage.duckdb import DuckDBStore

    target = Path(target)
    if target.exists() and not replace:
        raise ValidationError("{path} already exists; restore into a new file, or replace it on purpose.",
                              path=str(target))
    if target.exists():
        DuckDBStore(str(target)).close()  # refuses, naming the lock, while the app holds the file
    fresh = target.with_name(target.name + ".restoring")
    fresh.unlink(missing_ok=True)
    try:
        with DuckDBStore(str(fresh)) as store:
            store.execute(f"IMPORT DATABASE '{_quoted(folder)}'")
        with audit.open_sealed(str(fresh)) as store:  # applies newer migrations, if the backup is older
            counts, chain = _checked(store, manifest)
    except BaseException:
        fresh.unlink(missing_ok=True)
        raise
    fresh.replace(target)
    return {"restored": str(target), "schema_version": manifest["schema_version"], "tables": counts,
            "chain_head": chain["head"], "taken_at": manifest["taken_at"]}
