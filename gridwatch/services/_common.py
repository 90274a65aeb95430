"""What the service modules share: actors and scope checks, the policy, the region's settings and units, audit entries.

Every public service takes the store and an :data:`Actor` as its first two arguments: a signed-in
:class:`~gridwatch.auth.User`, whose grants and scope are checked by :func:`require`, or a :class:`SystemActor`
(the command line, a scheduled job, the demo builder), which may do everything and is recorded under its own name
(``system:cli``). There is no call without an actor, and so no call that skips the check.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely

from gridwatch import auth
from gridwatch.config import Settings
from gridwatch.errors import NotFound, ValidationError
from gridwatch.grid import OWNER_LEVELS, Grid, Units
from gridwatch.policy import Policy
from gridwatch.storage import Store



@dataclass(frozen=True)
class SystemActor:
    """A job or the command line: may do everything, and is recorded as ``system:<name>``.

    Examples
    --------
    >>> CLI.username
    'system:cli'
    """

    name: str

    @property
    def username(self) -> str:
        """The name under which its work is recorded."""
        return f"system:{self.name}"


#: who acts: a signed-in user (checked) or a system actor (recorded as such)
Actor = auth.User | SystemActor

#: the command line
CLI = SystemActor("cli")
#: scheduled jobs of the running app (FIRMS fetch, escalation, notifications)
SCHEDULER = SystemActor("scheduler")
#: the demo database's builder
DEMO = SystemActor("demo")
#: work the system does on its own behalf inside another service (kept for callers of the old name)
SYSTEM = SystemActor("system")


def actor_name(actor: Actor) -> str:
    """The name recorded for an actor (a user name, or ``system:<name>``)."""
    if isinstance(actor, (auth.User, SystemActor)):
        return actor.username
    raise TypeError(f"a service needs an actor (a signed-in user or a system actor), not {actor!r}")


def require(store: Store, actor: Actor, action: str, *, cell: int | None = None, unit: str | None = None) -> None:
    """Refuse (and record the refusal) unless the actor may do ``action`` here; system actors may do everything."""
    if isinstance(actor, SystemActor):
        return
    if not isinstance(actor, auth.User):
        raise TypeError(f"a service needs an actor (a signed-in user or a system actor), not {actor!r}")
    auth.require(store, actor, action, cell=cell, unit=unit)


def user_of(actor: Actor) -> auth.User | None:
    """The signed-in user behind an actor, or None for a system actor (which sees everything)."""
    if isinstance(actor, SystemActor):
        return None
    if not isinstance(actor, auth.User):
        raise TypeError(f"a service needs an actor (a signed-in user or a system actor), not {actor!r}")
    return actor


@functools.lru_cache(maxsize=1)
def _loaded_policy() -> Policy:
    return Policy.load()


def policy(store: Store) -> Policy:
    """The policy in force for this store: the one the edge attached when it opened it, else the settings' one."""
    attached = getattr(store, "policy", None)
    return attached if isinstance(attached, Policy) else _loaded_policy()


_grid_cache: dict[int, tuple[str, Grid]] = {}


_grid_lock = threading.Lock()


#: the longest upload name, in bytes (a file system takes 255)
_MAX_NAME_BYTES = 200


def upload_name(name: str | None) -> str:
    r"""Give the name an upload is written and reported under: its last path part, never a path.

    ``../../zones.zip`` gives ``zones.zip`` and no name gives ``upload``.

    Raises
    ------
    ValidationError
        The name has no file part (``..``, ``/``), holds a NUL or another control character, or is longer than a
        file system takes.

    Examples
    --------
    >>> upload_name("../../zones.zip"), upload_name(None), upload_name(r"C:\data\村界.kmz")
    ('zones.zip', 'upload', '村界.kmz')
    """
    if not name:
        return "upload"
    base = re.split(r"[\\/]", name)[-1].strip()
    if (base in ("", ".", "..") or any(ord(c) < 32 or ord(c) == 127 for c in base)
            or len(base.encode("utf-8")) > _MAX_NAME_BYTES):
        raise ValidationError("The upload name {name!r} is not a file name gridwatch can keep (a path, a control "
                              "character, or more than {limit} bytes); give the file a plain name such as zones.zip.",
                              name=name[:100], limit=_MAX_NAME_BYTES)
    return base


def check_upload_size(source: str | Path | bytes, *, name: str | None = None) -> None:
    """Refuse a file larger than ``max_upload_mb``, or an upload name that is no file name, before it is read."""
    limit = float(Settings.load().max_upload_mb)
    if isinstance(source, (bytes, bytearray, memoryview)):
        size, label = len(source), upload_name(name)
    else:
        path = Path(source)
        size, label = (path.stat().st_size if path.is_file() else 0), upload_name(name) if name else path.name
    if size > limit * (1 << 20):
        raise ValidationError("{file} is {size:.0f} MB, more than the {limit:g} MB a file may have; split it or ask an "
                              "administrator to raise max_upload_mb.", file=label, size=size / (1 << 20), limit=limit)


def audit(store: Store, *, actor: str, action: str, subject: str = "", detail: dict | None = None) -> None:
    """Append an entry to the audit log."""
    store.execute(
        "INSERT INTO audit_log (actor, action, subject, detail) VALUES (?, ?, ?, ?)",
        [actor, action, subject, json.dumps(detail or {}, ensure_ascii=False, default=str)],
    )


def _settings(store: Store) -> tuple[str, int]:
    region = store.get_meta("region")
    if region is None:
        raise NotFound("The database has no region yet; run `python -m gridwatch init --region CODE` first.")
    return region, int(store.get_meta("resolution", "8") or 8)


def _units(store: Store, *, with_geoms: bool = True) -> Units:
    geom = f", {store.geom_to_wkb_sql('geom')} AS wkb" if with_geoms else ""
    rows = store.query(f"SELECT code, name, level, parent_code{geom} FROM units ORDER BY code")
    for r in rows:
        wkb = r.pop("wkb", None)
        r["geom"] = shapely.from_wkb(bytes(wkb)) if wkb is not None else None
    return Units.from_records(rows)


def _region_bounds(store: Store) -> tuple[float, float, float, float]:
    region, _ = _settings(store)
    wkb = store.scalar(f"SELECT {store.geom_to_wkb_sql('geom')} FROM units WHERE code = ?", [region])
    return tuple(shapely.from_wkb(bytes(wkb)).bounds)  # type: ignore[return-value]


def _upload_path(source: str | Path | bytes, name: str | None, workdir: Path) -> Path:
    if isinstance(source, (bytes, bytearray, memoryview)):
        path = workdir / upload_name(name)
        path.write_bytes(bytes(source))
        return path
    return Path(source)


def _region_geometry(store: Store) -> shapely.Geometry | None:
    region = store.get_meta("region")
    if region is None:
        return None
    wkb = store.scalar(f"SELECT {store.geom_to_wkb_sql('geom')} FROM units WHERE code = ?", [region])
    return shapely.from_wkb(bytes(wkb)) if wkb is not None else None


def stored_grid(store: Store) -> Grid:
    """The stored grid as a :class:`Grid` (cached per store until the next rebuild)."""
    region, resolution = _settings(store)
    built = store.get_meta("grid_built_at", "")
    with _grid_lock:
        cached = _grid_cache.get(id(store))
        if cached and cached[0] == built:
            return cached[1]
    units = _units(store, with_geoms=False)
    table = store.query_df(
        "SELECT cell, city_code, county_code, township_code, village_code FROM cells ORDER BY cell")
    owner = {}
    for level in OWNER_LEVELS:
        codes = table[f"{level}_code"].fillna("").to_numpy(dtype=object)
        if (codes != "").any():
            pos = np.minimum(np.searchsorted(units.codes, codes), len(units) - 1)
            owner[level] = np.where(units.codes[pos] == codes, pos, -1)
    grid = Grid(region_code=region, resolution=resolution, units=units,
                cells=table.cell.to_numpy(dtype=np.int64).view(np.uint64), owner=owner)
    with _grid_lock:
        _grid_cache[id(store)] = (built, grid)
    return grid
