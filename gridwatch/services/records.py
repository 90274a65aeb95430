"""Backups, restores and the tamper-evident record."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from gridwatch import auth
from gridwatch.config import Settings
from gridwatch.services._common import SYSTEM, audit
from gridwatch.storage import Store


def backup(store: Store, path: str | Path, *, actor: str = SYSTEM) -> dict[str, Any]:
    """A consistent backup of the database into a new folder, through this store's connection."""
    from gridwatch import backup as backups

    manifest = backups.backup(store, path, actor=actor)
    audit(store, actor=actor, action="backup", subject=str(path), detail={"tables": len(manifest["tables"])})
    return {"path": str(path), "schema_version": manifest["schema_version"], "tables": manifest["tables"],
            "chain_head": manifest["chain_head"]}


def admin_backup(store: Store, user: auth.User, *, folder: str | Path | None = None) -> dict[str, Any]:
    """An administrator's backup from the app: a new time-stamped folder under ``backup_dir``."""
    auth.require(store, user, "people.manage")
    base = Path(folder or Settings.load().backup_dir)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return backup(store, base / f"gridwatch-{stamp}", actor=user.username)


def restore(path: str | Path, target: str | Path, *, replace: bool = False) -> dict[str, Any]:
    """Restore a backup folder into a database file or a PostgreSQL database (a URL), checked before it takes the
    target's place."""
    from gridwatch import backup as backups

    return backups.restore(path, target, replace=replace)


def audit_verify(store: Store) -> dict[str, Any]:
    """Recompute the tamper-evident chain over task events and the audit log (see :mod:`gridwatch.audit`)."""
    from gridwatch import audit as chain

    return chain.verify(store)


def audit_head(store: Store) -> dict[str, Any]:
    """The chain's head, to print on exported reports."""
    from gridwatch import audit as chain

    return chain.head(store)
