"""Layer versions and the registry of layer kinds.

Every upload of a layer file becomes a *version* of its kind (``layer_versions``), with its accepted features
(``layer_features``: attributes as JSON, geometry as WKB in WGS84, or an H3 cell for per-cell kinds), so that any
version can be published again later. At most one version of a kind is published; publishing calls the kind's
``publish`` hook inside one transaction, which replaces whatever the previously published version produced (cell
flags, tasks) and reports the differences. Restoring an older version is publishing its stored frame again.

The contract with the modules that define kinds (``gridwatch.zones``, ``gridwatch.heat``, ``gridwatch.bare``):

* ``read(source: Path, *, name: str, crs: str | None, store: Store, **options) -> LayerRead``; the frame holds one
  row per feature, WGS84 shapely geometries in a ``geometry`` column (per-cell kinds: an int64 ``cell`` column
  instead), other columns are attributes. Readers may set ``frame.attrs["crs"]`` (the CRS the file was read in) and
  ``frame.attrs["repaired"]`` (how many geometries were repaired); both are stored with the version.
* ``publish(store, version, frame, actor, *, dispatch) -> dict`` with at least ``cells_added``, ``cells_removed``,
  ``tasks_opened`` and ``tasks_closed``; idempotent; called inside an open transaction. ``dispatch`` is the
  :class:`~gridwatch.policy.DispatchPolicy` of the policy in force (the service-level hours of tasks it opens).

Tasks made moot by a new version are withdrawn with :func:`gridwatch.workflow.withdraw_tasks` (a ``withdrawn``
event by :data:`PUBLISH_ACTOR` with a note), never deleted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from gridwatch.errors import NotFound, ValidationError
from gridwatch.i18n import N_
from gridwatch.policy import Policy
from gridwatch.storage import Store
from gridwatch.tasks import naive_utc
from layers.base import LayerRead

__all__ = ["LayerKind", "register", "kinds", "get_kind", "PUBLISH_ACTOR", "sha256_of", "store_version", "load",
           "frame_of", "publish", "restore", "preview_differences", "versions", "version_info",
           "published_version", "publications", "DIFFERENCE_KEYS"]

#: the actor recorded on task events a publication causes
PUBLISH_ACTOR = "layer-publish"

#: the keys every publish hook reports
DIFFERENCE_KEYS = ("cells_added", "cells_removed", "tasks_opened", "tasks_closed")

#: modules that register kinds when imported
_KIND_MODULES = ("gridwatch.zones", "gridwatch.heat", "gridwatch.bare", "gridwatch.heatsources")

_LABELS = (N_("withdrawn"), N_("publish"), N_("restore"), N_("cells_added"), N_("cells_removed"),
           N_("tasks_opened"), N_("tasks_closed"), N_("cells_affected"), N_("previous"), N_("published"),
           N_("differences"), N_("warnings"))


@dataclass(frozen=True)
class LayerKind:
    """A kind of layer: how its files are read and what publishing a version of it does.

    Attributes
    ----------
    kind : str
        ``no_burn_zones``, ``coal_sale_points``, ``chp_plants``, ``boilers`` or ``bare_land``.
    geometry : str
        ``polygon``, ``point`` or ``cells`` (per-cell rows, no geometry).
    read : callable
        ``read(source, *, name, crs, store, **options) -> LayerRead``.
    publish : callable
        ``publish(store, version, frame, actor, *, dispatch) -> dict`` of differences.
    label : str
        English display name (a msgid).
    """

    kind: str
    geometry: str
    read: Callable[..., LayerRead]
    publish: Callable[..., dict]
    label: str = ""


_REGISTRY: dict[str, LayerKind] = {}


def register(kind: LayerKind) -> None:
    """Register (or replace) a layer kind."""
    if kind.geometry not in ("polygon", "point", "cells"):
        raise ValueError(f"bad geometry {kind.geometry!r} for layer kind {kind.kind!r}")
    _REGISTRY[kind.kind] = kind


def kinds() -> dict[str, LayerKind]:
    """Every registered layer kind, importing the modules that define them first (absent ones are skipped)."""
    for module in _KIND_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            if exc.name != module:  # the module exists but is broken: say so
                raise
    return dict(_REGISTRY)


def get_kind(kind: str) -> LayerKind:
    """The registered kind called ``kind``.

    Raises
    ------
    ValidationError
        Unknown kind, naming the known ones.
    """
    known = kinds()
    if kind not in known:
        raise ValidationError("Unknown layer kind {kind!r}; known kinds: {known}.", kind=kind,
                              known=", ".join(sorted(known)))
    return known[kind]




def sha256_of(source: Path | bytes) -> str:
    """The SHA-256 of a file or of bytes, as hex."""
    digest = hashlib.sha256()
    if isinstance(source, (bytes, bytearray, memoryview)):
        digest.update(source)
    else:
        with open(source, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# -- storing versions --------------------------------------------------------------------------------------------

def _json_ready(frame: pd.DataFrame) -> list[str]:
    """One JSON object per row (C-level serialisation, no Python loop over rows)."""
    if frame.shape[1] == 0:
        return ["{}"] * len(frame)
    text = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="s", force_ascii=False)
    lines = text.split("\n")
    return [line for line in lines if line] if len(frame) else []


def _attribute_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("geometry", "cell")]


def store_version(store: Store, kind: str, read: LayerRead, *, file_name: str, sha256: str, actor: str,
                  crs: str = "", repaired: int = 0, options: dict | None = None,
                  now: dt.datetime | None = None) -> int:
    """Store a read layer as the next version of ``kind``; returns the version number.

    Parameters
    ----------
    store : Store
        The database.
    kind : str
        The layer kind.
    read : LayerRead
        What the kind's reader returned.
    file_name, sha256, actor, crs : str
        Recorded with the version.
    repaired : int
        Geometries repaired while reading.
    options : dict, optional
        Reader options, recorded as JSON.
    """
    frame = read.frame
    lk = get_kind(kind)
    now = naive_utc(now)
    attrs = _attribute_columns(frame)
    n = len(frame)
    if lk.geometry == "cells":
        if "cell" not in frame.columns:
            raise ValidationError("The {kind} reader gave no cell column.", kind=kind)
        geometry = pa.nulls(n, type=pa.binary())
        cells = pa.array(frame["cell"].to_numpy(dtype=np.int64))
    else:
        if "geometry" not in frame.columns:
            raise ValidationError("The {kind} reader gave no geometry column.", kind=kind)
        geometry = pa.array(shapely.to_wkb(np.asarray(frame["geometry"], dtype=object)), type=pa.binary())
        cells = pa.nulls(n, type=pa.int64())
    columns = {c: str(frame[c].dtype) for c in attrs}
    rejects = read.rejected.to_dict(orient="records") if len(read.rejected) else []
    with store.transaction():
        version = int(store.scalar("SELECT COALESCE(max(version), 0) + 1 FROM layer_versions WHERE kind = ?",
                                   [kind]))
        store.execute(
            "INSERT INTO layer_versions (kind, version, uploaded_by, uploaded_at, file_name, sha256, crs, rows,"
            " rejected, repaired, warnings, rejects, columns, options, published)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, FALSE)",
            [kind, version, actor, now, file_name, sha256, crs, n, len(read.rejected), int(repaired),
             json.dumps(list(read.warnings), ensure_ascii=False),
             json.dumps(rejects, ensure_ascii=False, default=str),
             json.dumps(columns), json.dumps(options or {}, ensure_ascii=False, default=str)])
        if n:
            store.insert_arrow("layer_features", pa.table({
                "kind": pa.array([kind] * n, type=pa.string()),
                "version": pa.array(np.full(n, version, dtype=np.int32)),
                "feature_no": pa.array(np.arange(n, dtype=np.int64)),
                "attributes": pa.array(_json_ready(frame[attrs]), type=pa.string()),
                "geometry": geometry,
                "cell": cells,
            }))
    return version


def _source_path(source: Path | bytes | str, name: str | None, workdir: Path) -> tuple[Path, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        file_name = Path(name or "upload").name
        path = workdir / file_name
        path.write_bytes(bytes(source))
        return path, file_name
    path = Path(source)
    if not path.is_file():
        raise ValidationError("File {file} does not exist.", file=str(path))
    return path, name or path.name


def load(store: Store, kind: str, source: Path | bytes | str, *, actor: str, policy: Policy,
         name: str | None = None, crs: str | None = None, publish_now: bool = False, now: dt.datetime | None = None,
         **options: Any) -> dict[str, Any]:
    """Read a layer file, store it as a new version of ``kind`` and, if asked, publish it.

    Parameters
    ----------
    store : Store
        The database.
    kind : str
        A registered layer kind.
    source : path or bytes
        The file, or its bytes (then ``name`` gives the file name and its suffix the format).
    actor : str
        Who uploads.
    policy : Policy
        The rules in force, for what publishing (or its trial) does.
    name : str, optional
        The file name to record.
    crs : str, optional
        The CRS the user declares (``gcj02`` for consumer map-app coordinates).
    publish_now : bool
        Publish the new version at once.
    **options
        Reader options (``layer`` for a GeoPackage layer, column names, ...).

    Returns
    -------
    dict
        ``kind``, ``version``, ``rows``, ``rejected``, ``repaired``, ``crs``, ``warnings``, ``published`` and
        ``cells_affected`` (cells added plus cells removed by publishing — computed by a rolled-back trial
        publication when not published), with the publication's ``differences``.
    """
    lk = get_kind(kind)
    with tempfile.TemporaryDirectory(prefix="gridwatch-layer-") as tmp:
        path, file_name = _source_path(source, name, Path(tmp))
        digest = sha256_of(path)
        read = lk.read(path, name=file_name, crs=crs, store=store, **options)
    used_crs = str(read.frame.attrs.get("crs", crs or ""))
    repaired = int(read.frame.attrs.get("repaired", 0))
    with store.transaction():
        version = store_version(store, kind, read, file_name=file_name, sha256=digest, actor=actor, crs=used_crs,
                                repaired=repaired, options=options, now=now)
        differences = publish(store, kind, version, actor=actor, policy=policy, now=now) if publish_now else None
    if differences is None:
        differences = preview_differences(store, kind, version, policy=policy, now=now)
    return {
        "kind": kind, "version": version, "rows": read.accepted, "rejected": int(len(read.rejected)),
        "repaired": repaired, "crs": used_crs, "warnings": list(read.warnings), "published": publish_now,
        "cells_affected": (int(differences.get("cells_added", 0)) + int(differences.get("cells_removed", 0))
                           if differences is not None else None),
        "differences": differences,
    }


# -- reading versions back --------------------------------------------------------------------------------------

def version_info(store: Store, kind: str, version: int) -> dict[str, Any]:
    """The stored record of one version (warnings, rejects, columns and options decoded).

    Raises
    ------
    NotFound
        No such version.
    """
    rows = store.query("SELECT * FROM layer_versions WHERE kind = ? AND version = ?", [kind, int(version)])
    if not rows:
        raise NotFound("Layer {kind} has no version {version}.", kind=kind, version=int(version))
    info = rows[0]
    for key in ("warnings", "rejects", "columns", "options"):
        info[key] = json.loads(info[key])
    return info


def _restore_dtypes(attrs: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    for col, dtype in columns.items():
        if col not in attrs.columns:
            attrs[col] = pd.Series([None] * len(attrs), dtype=object)
        try:
            if dtype.startswith("datetime64"):
                attrs[col] = pd.to_datetime(attrs[col], utc="UTC" in dtype or "tz" in dtype)
            elif dtype in ("object",):
                continue
            else:
                attrs[col] = attrs[col].astype(dtype)
        except (TypeError, ValueError):
            continue
    return attrs[list(columns)]


def frame_of(store: Store, kind: str, version: int) -> pd.DataFrame:
    """The stored frame of a version, as the kind's reader gave it (geometry decoded, attribute types restored)."""
    info = version_info(store, kind, version)
    lk = get_kind(kind)
    rows = store.query_df(
        "SELECT feature_no, attributes, geometry, cell FROM layer_features WHERE kind = ? AND version = ?"
        " ORDER BY feature_no", [kind, int(version)])
    columns = info["columns"]
    if len(rows) and columns:
        attrs = pd.read_json(io.StringIO("\n".join(rows.attributes)), lines=True, orient="records", dtype=False)
    else:
        attrs = pd.DataFrame(index=range(len(rows)))
    attrs = _restore_dtypes(attrs, columns)
    if lk.geometry == "cells":
        attrs.insert(0, "cell", rows.cell.to_numpy(dtype=np.int64))
    else:
        wkb = rows.geometry.to_numpy(dtype=object)
        attrs.insert(0, "geometry", shapely.from_wkb(np.asarray([bytes(b) for b in wkb], dtype=object))
                     if len(wkb) else np.array([], dtype=object))
    attrs.attrs["crs"] = info["crs"]
    attrs.attrs["repaired"] = int(info["repaired"])
    return attrs


def versions(store: Store, kind: str | None = None) -> pd.DataFrame:
    """Every stored version (newest first within a kind), with who, when, file, checksum, counts and state."""
    where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
    return store.query_df(
        "SELECT kind, version, uploaded_by, uploaded_at, file_name, sha256, crs, rows, rejected, repaired,"
        f" warnings, published, published_at, published_by FROM layer_versions {where}"
        " ORDER BY kind, version DESC", params)


def published_version(store: Store, kind: str) -> int | None:
    """The published version of ``kind``, or None."""
    value = store.scalar("SELECT version FROM layer_versions WHERE kind = ? AND published", [kind])
    return None if value is None else int(value)


# -- publishing -----------------------------------------------------------------------------------------------------

def publish(store: Store, kind: str, version: int, *, actor: str, policy: Policy, now: dt.datetime | None = None,
            action: str = "publish") -> dict[str, Any]:
    """Publish a stored version of ``kind``: the kind's hook replaces what the previous version produced.

    The hook opens and withdraws tasks under ``policy`` (its :attr:`~gridwatch.policy.Policy.dispatch`).

    Returns
    -------
    dict
        The hook's differences (``cells_added``, ``cells_removed``, ``tasks_opened``, ``tasks_closed``, ...)
        plus ``kind``, ``version`` and ``previous`` (the version published before, or None).
    """
    lk = get_kind(kind)
    now = naive_utc(now)
    with store.transaction():
        version_info(store, kind, version)
        previous = published_version(store, kind)
        frame = frame_of(store, kind, version)
        differences = dict(lk.publish(store, int(version), frame, actor, dispatch=policy.dispatch))
        for key in DIFFERENCE_KEYS:
            differences.setdefault(key, 0)
        store.execute("UPDATE layer_versions SET published = FALSE WHERE kind = ? AND published", [kind])
        store.execute("UPDATE layer_versions SET published = TRUE, published_at = ?, published_by = ?"
                      " WHERE kind = ? AND version = ?", [now, actor, kind, int(version)])
        store.execute(
            "INSERT INTO layer_publications (kind, version, previous, published_at, published_by, action, summary)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [kind, int(version), previous, now, actor, action, json.dumps(differences, default=str)])
        store.execute("INSERT INTO audit_log (actor, action, subject, detail) VALUES (?, ?, ?, ?)",
                      [actor, f"layer.{action}", f"{kind}:{int(version)}",
                       json.dumps({"previous": previous, **differences}, default=str)])
    return {"kind": kind, "version": int(version), "previous": previous, **differences}


def restore(store: Store, kind: str, version: int, *, actor: str, policy: Policy,
            now: dt.datetime | None = None) -> dict[str, Any]:
    """Publish an earlier version again (a roll-back); the same as :func:`publish`, recorded as a restore."""
    return publish(store, kind, version, actor=actor, policy=policy, now=now, action="restore")


class _TrialDone(Exception):
    """Raised to roll a trial publication back."""


def preview_differences(store: Store, kind: str, version: int, *, policy: Policy,
                        now: dt.datetime | None = None) -> dict[str, Any] | None:
    """What publishing ``version`` would change, found by publishing it in a transaction that is rolled back.

    Returns None when called inside an open transaction (a trial cannot be rolled back alone there).
    """
    if getattr(store._local, "depth", 0):
        return None
    result: dict[str, Any] = {}
    try:
        with store.transaction():
            result = publish(store, kind, version, actor=PUBLISH_ACTOR, policy=policy, now=now)
            raise _TrialDone
    except _TrialDone:
        pass
    return result


def publications(store: Store, kind: str | None = None) -> pd.DataFrame:
    """The publication history (publish and restore), newest first."""
    where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
    return store.query_df(f"SELECT * FROM layer_publications {where} ORDER BY id DESC", params)
