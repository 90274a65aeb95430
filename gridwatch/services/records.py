"""Backups, restores and the tamper-evident record."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from gridwatch.services._common import Actor, actor_name, audit, policy, require, require_region, require_system
from gridwatch.storage import Store


def backup(store: Store, actor: Actor, path: str | Path) -> dict[str, Any]:
    """A consistent backup of the database into a new folder, through this store's connection.

    Only an administrator of the whole region (or the command line) may take one: a backup holds every record.
    """
    from gridwatch import backup as backups

    require_region(store, actor, "people.manage")
    manifest = backups.backup(store, path, actor=actor_name(actor))
    audit(store, actor=actor_name(actor), action="backup", subject=str(path),
          detail={"tables": len(manifest["tables"])})
    return {"path": str(path), "schema_version": manifest["schema_version"], "tables": manifest["tables"],
            "chain_head": manifest["chain_head"]}


def admin_backup(store: Store, actor: Actor, *, folder: str | Path | None = None) -> dict[str, Any]:
    """An administrator's backup from the app: a new time-stamped folder under ``backup_dir``."""
    require_region(store, actor, "people.manage")
    base = Path(folder or policy(store).settings.backup_dir)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return backup(store, actor, base / f"gridwatch-{stamp}")


def restore(actor: Actor, path: str | Path, target: str | Path, *, replace: bool = False,
            key_file: str | Path | None = None) -> dict[str, Any]:
    """Restore a backup folder into a database file or a PostgreSQL database (a URL), checked (its signature with
    the audit key of ``key_file``, else the one beside ``target`` or in the environment) before it takes the
    target's place; only the command line restores (it opens no running database)."""
    from gridwatch import backup as backups

    require_system(actor, "backup.restore")
    return backups.restore(path, target, replace=replace, key_file=key_file)


def audit_verify(store: Store, actor: Actor) -> dict[str, Any]:
    """Recompute the tamper-evident chain over task events and the audit log (see :mod:`gridwatch.audit`)."""
    from gridwatch import audit as chain

    require_region(store, actor, "people.manage")
    return chain.verify(store)


def audit_head(store: Store, actor: Actor) -> dict[str, Any]:
    """The chain's head, to print on exported reports (anyone who may see a report may see it)."""
    from gridwatch import audit as chain

    require(store, actor, "report.view")
    return chain.head(store)


def audit_rotate_key(store: Store, actor: Actor) -> dict[str, Any]:
    """A fresh audit key for new links, the old ones kept for old links; only the command line rotates keys."""
    from gridwatch import audit as chain

    require_system(actor, "audit.rotate_key")
    rotated = chain.rotate_key(store)
    audit(store, actor=actor_name(actor), action="audit.rotate_key", detail={"current": rotated["current"]})
    return rotated
