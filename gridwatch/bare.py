"""Bare land (裸地): per-cell bare area from rasters or survey polygons, patches (建档), change, escalation.

Layer kind ``bare_land`` (geometry ``cells``, registered with :mod:`gridwatch.layerstore`
when this module is imported). An upload is a GeoTIFF (land-cover classes with the
chosen bare class, or a bare-soil index with a threshold; read window by window by
:func:`layers.bare_land.bare_cells_from_raster`) or survey polygons (any polygon file
layers-core reads; exact hexagon–polygon overlap by :mod:`gridwatch.overlap`). Either
way the version holds one row per cell: ``observed_m2``, ``bare_m2``, ``fraction``
and the date the data show (``observed_on``).

Publishing compares the new cells with the published ones (cells observed in both):
newly bare, no longer bare, and the change in bare area; registers a patch for every
newly bare cell (status ``bare``, first-seen date, area), moves patches the imagery no
longer shows as bare to ``covered``, opens a ``bare_land_survey`` task for each newly
bare cell and withdraws survey tasks made moot. Survey findings (covered, greened,
still bare) move patch statuses (:func:`apply_bare_findings`); a patch covered, or still bare, for more
than three calendar months (strictly more, Beijing days) escalates to greening (:func:`escalate_bare_land`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from h3ronpy import cells_area_m2
from h3ronpy.vector import ContainmentMode, geometry_to_cells

from gridwatch import workflow
from gridwatch.config import Settings
from gridwatch.errors import ValidationError
from gridwatch.i18n import N_, task_title_columns
from gridwatch.overlap import cells_to_convex_xy, convex_overlap_areas
from gridwatch.policy import DispatchPolicy
from gridwatch.storage import Store
from gridwatch.tasks import ACTIVE_STATES, Kind, Priority, naive_utc
from gridwatch.workflow import open_tasks
from layers.bare_land import bare_cells_from_raster, raster_date
from layers.base import LayerRead, empty_rejected

__all__ = ["BarePolicy", "read_bare_land", "cells_from_polygons", "bare_change", "publish_bare_land",
           "apply_bare_findings", "escalate_bare_land", "patch_status_update", "bare_cells_table", "patches_table",
           "PATCH_STATUSES", "ACTOR"]

ACTOR = "layer-publish"
PATCH_STATUSES = ("bare", "covered", "greened")
_RASTER_SUFFIXES = (".tif", ".tiff", ".gtiff")
_SURVEY_SOURCE = "bare_patch"
_GREENING_SOURCE = "bare_greening"


@dataclass(frozen=True)
class BarePolicy:
    """Configurable bare-land rules (settings ``bare_land_months``, ``bare_land_min_m2``).

    Attributes
    ----------
    months : int
        A patch covered (or still bare) for more than this many calendar months escalates to greening (3;
        HN-2017 超过三个月的进行绿化).
    min_m2 : float
        A cell counts as bare when it holds at least this much bare area (400 m², a 20 m × 20 m patch).
    """

    months: int = 3
    min_m2: float = 400.0

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "BarePolicy":
        s = settings or Settings.load()
        try:
            return cls(months=int(s.bare_land_months), min_m2=float(s.bare_land_min_m2))
        except ValueError as exc:
            raise ValidationError("Bare-land settings are not valid ({reason}); bare_land_months is a whole number, "
                                  "bare_land_min_m2 a number.", reason=str(exc)) from exc




def _resolution(store: Store | None) -> int:
    return int(store.get_meta("resolution", "8") or 8) if store is not None else 8


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------

def cells_from_polygons(polygons: np.ndarray, resolution: int) -> pd.DataFrame:
    """Bare area per H3 cell covered by survey polygons (WGS84), by exact hexagon–polygon overlap.

    Overlapping polygons are merged first, so no ground is counted twice. The
    area of a cell's part is its share of the hexagon (exact planar overlap in
    longitude/latitude, :func:`gridwatch.overlap.convex_overlap_areas`) times
    the cell's area on the ellipsoid.

    Returns
    -------
    DataFrame
        ``cell``, ``observed_m2`` (the cell's area: a survey looks at the whole cell), ``bare_m2``, ``fraction``.
    """
    geoms = np.asarray(polygons, dtype=object)
    geoms = geoms[~shapely.is_empty(geoms)] if geoms.size else geoms
    if not geoms.size:
        return pd.DataFrame({"cell": np.zeros(0, np.int64), "observed_m2": [], "bare_m2": [], "fraction": []})
    merged = shapely.union_all(geoms)
    cells = np.unique(np.asarray(geometry_to_cells(merged, resolution,
                                                   containment_mode=ContainmentMode.IntersectsBoundary),
                                 dtype=np.uint64))
    xy = cells_to_convex_xy(cells)
    overlap = convex_overlap_areas(xy, np.array([merged], dtype=object), np.arange(cells.size),
                                   np.zeros(cells.size, dtype=np.int64))
    hexagon = np.abs(shapely.area(shapely.polygons(np.concatenate([xy, xy[:, :1]], axis=1))))
    area = np.asarray(cells_area_m2(pa.array(cells)), dtype=np.float64)
    share = np.clip(overlap / hexagon, 0.0, 1.0)
    keep = share > 0
    return pd.DataFrame({"cell": cells[keep].astype(np.int64), "observed_m2": area[keep],
                         "bare_m2": share[keep] * area[keep], "fraction": share[keep]})


def _parse_date(value: Any, source: str) -> dt.date:
    try:
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise ValidationError("The date {value!r} given for {file} is not a date YYYY-MM-DD.", value=value,
                              file=source) from exc


def _classes(value: Any) -> list[float] | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, str):
        return [float(v) for v in value.replace(";", ",").split(",") if v.strip()]
    return [float(v) for v in value]


def read_bare_land(source: Path | bytes, *, name: str | None = None, crs: str | None = None,
                   store: Store | None = None, bare_class: Any = None, threshold: Any = None,
                   date: Any = None, band: Any = 1, window_size: Any = None, **options: Any) -> LayerRead:
    """Read a bare-land upload into per-cell rows (the ``bare_land`` kind's reader).

    Parameters
    ----------
    source : Path
        A GeoTIFF, or survey polygons in any format layers-core reads.
    name : str, optional
        The file name.
    crs : str, optional
        The CRS when the file declares none.
    store : Store, optional
        Gives the grid resolution (default 8).
    bare_class : int or str, optional
        Raster, land-cover mode: the bare class(es), e.g. ``60`` (ESA WorldCover) or ``"60,61"``.
    threshold : float, optional
        Raster, index mode: values at or above are bare (e.g. a bare-soil index of 0.1).
    date : str, optional
        The date the data show, YYYY-MM-DD; default the raster's acquisition-date tag. Required otherwise.
    band, window_size : int, optional
        Raster band (1) and window edge in pixels (default: whole blocks of about 2048 pixels).

    Returns
    -------
    LayerRead
        Frame ``cell, observed_m2, bare_m2, fraction, observed_on, source`` (one row per cell).
    """
    if isinstance(source, bytes):
        raise ValidationError("Give the bare-land file {file} as a path.", file=name)
    path = Path(source)
    label = name or path.name
    if path.suffix.lower() in _RASTER_SUFFIXES:
        classes = _classes(bare_class)
        thr = None if threshold in (None, "") else float(threshold)
        if (classes is None) == (thr is None):
            raise ValidationError("For the raster {file} give either the bare land-cover class (bare_class, e.g. 60) "
                                  "or an index threshold (threshold, e.g. 0.1).", file=label)
        observed_on = _parse_date(date, label) if date not in (None, "") else raster_date(path)
        if observed_on is None:
            raise ValidationError("{file} carries no acquisition date; give the date the image shows "
                                  "(date=YYYY-MM-DD).", file=label)
        cells = bare_cells_from_raster(path, resolution=_resolution(store), bare_classes=classes, threshold=thr,
                                       band=int(band), window_size=None if window_size in (None, "") else
                                       int(window_size), crs=crs)
        frame = cells[["cell", "observed_m2", "bare_m2", "fraction"]].assign(
            observed_on=observed_on.isoformat(), source="raster")
        import rasterio  # noqa: PLC0415

        with rasterio.open(path) as src:
            used = src.crs.to_string() if src.crs is not None else str(crs)
        frame.attrs["crs"] = used
        warnings = [] if len(frame) else [N_("{file} holds no pixels with data.").format(file=label)]
        return LayerRead(source=label, frame=frame, rejected=empty_rejected(), read=len(frame), warnings=warnings)
    if date in (None, ""):
        raise ValidationError("Give the date of the survey {file} (date=YYYY-MM-DD).", file=label)
    observed_on = _parse_date(date, label)
    from gridwatch.layerfiles import read_layer_file  # noqa: PLC0415 - avoids a cycle through layerstore

    raw = read_layer_file(path, crs=crs, geometry="polygon", name=label, **options)
    cells = cells_from_polygons(raw.geoms, _resolution(store))
    frame = cells.assign(observed_on=observed_on.isoformat(), source="survey")
    frame.attrs["crs"] = raw.crs
    frame.attrs["repaired"] = len(raw.repaired)
    return LayerRead(source=raw.source, frame=frame, rejected=raw.rejected, read=raw.read,
                     warnings=[*raw.warnings, N_("{polygons} survey polygons cover {cells} cells.").format(
                         polygons=len(raw.geoms), cells=len(frame))])


# --------------------------------------------------------------------------------------------------
# Change between two uploads
# --------------------------------------------------------------------------------------------------

def bare_change(before: pd.DataFrame, after: pd.DataFrame, *, min_m2: float) -> dict[str, Any]:
    """What changed between two per-cell bare-land frames (``cell``, ``bare_m2``), over cells both observed.

    Returns
    -------
    dict
        ``newly_bare`` and ``no_longer_bare`` (sorted cell ids), ``bare_area_before_m2`` /
        ``bare_area_after_m2`` (over the common cells), ``bare_area_change_m2``, ``common_cells``.

    Examples
    --------
    >>> a = pd.DataFrame({"cell": [1, 2, 3], "bare_m2": [500.0, 0.0, 900.0]})
    >>> b = pd.DataFrame({"cell": [1, 2, 4], "bare_m2": [0.0, 600.0, 700.0]})
    >>> c = bare_change(a, b, min_m2=400)
    >>> c["newly_bare"], c["no_longer_bare"], c["bare_area_change_m2"]
    ([2], [1], 100.0)
    """
    a = before[["cell", "bare_m2"]].astype({"cell": np.int64}).rename(columns={"bare_m2": "bare_m2_a"})
    b = after[["cell", "bare_m2"]].astype({"cell": np.int64}).rename(columns={"bare_m2": "bare_m2_b"})
    both = a.merge(b, on="cell", how="inner").set_index("cell")
    was = both.bare_m2_a >= min_m2
    now = both.bare_m2_b >= min_m2
    return {"newly_bare": both.index[now & ~was].astype(np.int64).tolist(),
            "no_longer_bare": both.index[was & ~now].astype(np.int64).tolist(),
            "bare_area_before_m2": float(both.bare_m2_a.sum()), "bare_area_after_m2": float(both.bare_m2_b.sum()),
            "bare_area_change_m2": float(both.bare_m2_b.sum() - both.bare_m2_a.sum()),
            "common_cells": int(len(both))}


# --------------------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------------------

def _patch_history(store: Store, ids: np.ndarray, before: np.ndarray, after: str, *, now: dt.datetime, actor: str,
                   note: str) -> None:
    n = len(ids)
    if not n:
        return
    store.insert_arrow("bare_patch_history", pa.table({
        "patch_id": pa.array(np.asarray(ids, dtype=np.int64)),
        "from_status": pa.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                                 for v in before], type=pa.string()),
        "to_status": pa.array([after] * n), "changed_at": pa.array([now] * n, type=pa.timestamp("us")),
        "changed_by": pa.array([actor] * n), "note": pa.array([note] * n)}))


def publish_bare_land(store: Store, version: int, frame: pd.DataFrame, actor: str, *, dispatch: DispatchPolicy,
                      policy: BarePolicy | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Publish a ``bare_land`` version: replace the per-cell rows, register patches, open and withdraw tasks.

    Only cells of the store's grid count. Call inside a transaction; idempotent. ``dispatch`` gives the
    service-level hours of the survey tasks opened.

    Returns
    -------
    dict
        ``cells_added`` / ``cells_removed`` (cells newly bare / no longer bare), ``tasks_opened`` /
        ``tasks_closed``, ``bare_area_change_m2`` (over cells observed in both), ``bare_area_m2``,
        ``bare_cells``, ``patches_registered``, ``observed_on``, ``previous_observed_on``, ``cells_outside``.
    """
    policy = policy or BarePolicy.from_settings()
    now = naive_utc(now)
    grid = store.query_df("SELECT cell FROM cells").cell.to_numpy(dtype=np.int64)
    cells = frame["cell"].to_numpy(dtype=np.int64) if len(frame) else np.zeros(0, np.int64)
    inside = np.isin(cells, grid)
    new = frame[inside].reset_index(drop=True)
    observed_on = str(new.observed_on.iloc[0]) if len(new) else (str(frame.observed_on.iloc[0]) if len(frame)
                                                                  else None)
    prev = store.query_df("SELECT cell, bare_m2, observed_on FROM bare_land_cells")
    prev_date = str(prev.observed_on.iloc[0]) if len(prev) else None
    change = bare_change(prev, new, min_m2=policy.min_m2) if len(prev) else {
        "newly_bare": new.cell[new.bare_m2 >= policy.min_m2].astype(np.int64).tolist(), "no_longer_bare": [],
        "bare_area_change_m2": float(new.bare_m2.sum()) if len(new) else 0.0}
    store.execute("DELETE FROM bare_land_cells")
    if len(new):
        store.insert_arrow("bare_land_cells", pa.table({
            "cell": pa.array(new.cell.to_numpy(dtype=np.int64)),
            "version": pa.array(np.full(len(new), int(version), dtype=np.int64)),
            "observed_m2": pa.array(new.observed_m2.to_numpy(dtype=np.float64)),
            "bare_m2": pa.array(new.bare_m2.to_numpy(dtype=np.float64)),
            "fraction": pa.array(new.fraction.to_numpy(dtype=np.float64)),
            "observed_on": pa.array(pd.to_datetime(new.observed_on).dt.date.tolist(), type=pa.date32()),
            "is_bare": pa.array(new.bare_m2.to_numpy(dtype=np.float64) >= policy.min_m2)}))
    day = dt.date.fromisoformat(observed_on[:10]) if observed_on else now.date()
    registered = _update_patches(store, new, change, policy=policy, version=int(version), day=day, now=now,
                                 actor=actor)
    opened = _open_survey_tasks(store, change["newly_bare"], day=day, now=now, actor=actor, dispatch=dispatch)
    closed = _withdraw_moot_surveys(store, now=now)
    bare_now = new[new.bare_m2 >= policy.min_m2] if len(new) else new
    return {"cells_added": len(change["newly_bare"]), "cells_removed": len(change["no_longer_bare"]),
            "tasks_opened": opened, "tasks_closed": closed,
            "bare_area_change_m2": round(float(change["bare_area_change_m2"]), 1),
            "bare_area_m2": round(float(bare_now.bare_m2.sum()) if len(bare_now) else 0.0, 1),
            "bare_cells": int(len(bare_now)), "patches_registered": registered, "observed_on": observed_on,
            "previous_observed_on": prev_date, "cells_outside": int((~inside).sum())}


def _update_patches(store: Store, new: pd.DataFrame, change: dict, *, policy: BarePolicy, version: int,
                    day: dt.date, now: dt.datetime, actor: str) -> int:
    """Register patches of newly bare cells, refresh still-bare ones, mark no-longer-bare ones covered."""
    open_patches = store.query_df("SELECT id, cell, status FROM bare_patches WHERE status IN ('bare', 'covered')")
    by_cell = open_patches.set_index("cell") if len(open_patches) else None
    bare = new[new.bare_m2 >= policy.min_m2]
    # still bare (and back to bare): last seen, area
    if len(bare):
        store.execute("CREATE TEMP TABLE IF NOT EXISTS bare_now (cell BIGINT, bare_m2 DOUBLE)")
        store.execute("DELETE FROM bare_now")
        store.insert_arrow("bare_now", pa.table({"cell": pa.array(bare.cell.to_numpy(dtype=np.int64)),
                                                 "bare_m2": pa.array(bare.bare_m2.to_numpy(dtype=np.float64))}))
        store.execute("UPDATE bare_patches SET last_seen = greatest(last_seen, ?), bare_m2 = n.bare_m2, version = ?"
                      " FROM bare_now n WHERE n.cell = bare_patches.cell AND bare_patches.status IN ('bare', 'covered')",
                      [day, version])
        store.execute("DELETE FROM bare_now")
    newly = np.asarray(change["newly_bare"], dtype=np.int64)
    reopened = open_patches[open_patches.cell.isin(newly) & (open_patches.status == "covered")]
    _move_patches(store, reopened, "bare", now=now, actor=actor, note=f"bare again in the data of {day.isoformat()}")
    fresh = newly[~np.isin(newly, open_patches.cell.to_numpy(dtype=np.int64))] if by_cell is not None else newly
    if fresh.size:
        area = bare.set_index("cell").bare_m2.reindex(fresh).to_numpy(dtype=np.float64)
        store.insert_arrow("bare_patches", pa.table({
            "cell": pa.array(fresh), "first_seen": pa.array([day] * fresh.size, type=pa.date32()),
            "last_seen": pa.array([day] * fresh.size, type=pa.date32()), "bare_m2": pa.array(area),
            "status": pa.array(["bare"] * fresh.size),
            "status_changed_at": pa.array([now] * fresh.size, type=pa.timestamp("us")),
            "status_changed_by": pa.array([actor] * fresh.size),
            "escalated_at": pa.array([None] * fresh.size, type=pa.timestamp("us")),
            "version": pa.array(np.full(fresh.size, version, dtype=np.int64))}))
        ids = store.query_df(f"SELECT id FROM bare_patches WHERE status = 'bare' AND first_seen = ? AND cell IN "
                             f"({', '.join(map(str, fresh.tolist()))})", [day]).id.to_numpy(dtype=np.int64)
        _patch_history(store, ids, np.full(ids.size, None, dtype=object), "bare", now=now, actor=actor,
                       note=f"registered from the data of {day.isoformat()}")
    gone = np.asarray(change["no_longer_bare"], dtype=np.int64)
    covered = open_patches[open_patches.cell.isin(gone) & (open_patches.status == "bare")]
    _move_patches(store, covered, "covered", now=now, actor=actor,
                  note=f"no longer bare in the data of {day.isoformat()}")
    return int(fresh.size)


def _move_patches(store: Store, patches: pd.DataFrame, status: str, *, now: dt.datetime, actor: str,
                  note: str) -> None:
    """Give ``patches`` (rows of ``bare_patches`` with ``id`` and ``status``) a new status, with their history."""
    if not len(patches):
        return
    ids = patches.id.to_numpy(dtype=np.int64)
    store.execute(f"UPDATE bare_patches SET status = ?, status_changed_at = ?, status_changed_by = ?"
                  f" WHERE id IN ({', '.join(map(str, ids))})", [status, now, actor])
    _patch_history(store, ids, patches.status.to_numpy(), status, now=now, actor=actor, note=note)


def _existing_keys(store: Store, source_kind: str, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    rows = store.query_df("SELECT source_key FROM tasks WHERE kind = 'bare_land_survey' AND source_kind = ?",
                          [source_kind])
    return set(rows.source_key) & set(keys)


def _open_survey_tasks(store: Store, cells: list[int], *, day: dt.date, now: dt.datetime, actor: str,
                       dispatch: DispatchPolicy) -> int:
    if not cells:
        return 0
    patches = store.query_df(
        f"SELECT id, cell, bare_m2 FROM bare_patches WHERE status = 'bare' AND cell IN ({', '.join(map(str, cells))})"
        " ORDER BY id")
    keys = [f"{int(i)}:{day.isoformat()}" for i in patches.id]
    known = _existing_keys(store, _SURVEY_SOURCE, keys)
    todo = patches[[k not in known for k in keys]]
    if todo.empty:
        return 0
    keys = np.asarray([f"{int(i)}:{day.isoformat()}" for i in todo.id], dtype=object)
    hours = dispatch.sla_by_kind.get(Kind.BARE_LAND_SURVEY, 72.0)
    titles = task_title_columns("bare_land_survey", {"area_m2": todo.bare_m2.round(0).astype(int).astype(str),
                                                     "date": np.full(len(todo), day.isoformat(), dtype=object)})
    open_tasks(store, kind=Kind.BARE_LAND_SURVEY, cells=todo.cell.to_numpy(dtype=np.int64), source_kind=_SURVEY_SOURCE,
               source_keys=keys, priority=np.full(len(todo), Priority.NORMAL),
               due=np.full(len(todo), np.datetime64(now) + np.timedelta64(int(hours * 3600), "s")), titles=titles,
               now=now, actor=actor, detail={"by": actor, "rule": "bare_land_survey per newly bare cell"})
    return int(len(todo))


def _withdraw_moot_surveys(store: Store, *, now: dt.datetime) -> int:
    """Withdraw active survey tasks whose patch the data no longer show as bare (covered or greened)."""
    from gridwatch import layerstore  # noqa: PLC0415 - avoids a cycle through layerstore

    active = "', '".join(s.value for s in ACTIVE_STATES)
    moot = store.query_df(
        "SELECT t.id, p.status FROM tasks t JOIN bare_patches p"
        " ON p.id = CAST(split_part(t.source_key, ':', 1) AS BIGINT)"
        f" WHERE t.kind = 'bare_land_survey' AND t.source_kind = ? AND t.state IN ('{active}')"
        " AND p.status <> 'bare' ORDER BY t.id", [_SURVEY_SOURCE])
    return workflow.withdraw_tasks(
        store, moot.id.to_numpy(), now=now, actor=layerstore.PUBLISH_ACTOR,
        note=[f"withdrawn: the patch is now {status} in the published bare-land data" for status in moot.status])


# --------------------------------------------------------------------------------------------------
# Findings, staff changes, escalation
# --------------------------------------------------------------------------------------------------

def patch_status_update(store: Store, patch_id: int, status: str, *, actor: str, note: str = "",
                        now: dt.datetime | None = None) -> dict[str, Any]:
    """Set a patch's status (bare / covered / greened), recording who and when."""
    if status not in PATCH_STATUSES:
        raise ValidationError("Unknown bare-land status {status!r}; use one of {allowed}.", status=status,
                              allowed=", ".join(PATCH_STATUSES))
    now = naive_utc(now)
    with store.transaction():
        rows = store.query("SELECT status FROM bare_patches WHERE id = ?", [int(patch_id)])
        if not rows:
            from gridwatch.errors import NotFound  # noqa: PLC0415

            raise NotFound("There is no bare-land patch {id}.", id=patch_id)
        before = rows[0]["status"]
        if before != status:
            _move_patches(store, pd.DataFrame({"id": [int(patch_id)], "status": [before]}), status, now=now,
                          actor=actor, note=note)
    return {"patch_id": int(patch_id), "from_status": before, "to_status": status, "changed": before != status}


def apply_bare_findings(store: Store, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Move patch statuses from verified ``bare_land_survey`` reports (covered, greened); idempotent."""
    done = store.query_df(
        "SELECT t.id, t.source_key,"
        " (SELECT e.detail FROM task_events e WHERE e.task_id = t.id AND e.to_state = 'reported'"
        "  ORDER BY e.id DESC LIMIT 1) AS report,"
        " (SELECT e.actor FROM task_events e WHERE e.task_id = t.id AND e.to_state = 'verified'"
        "  ORDER BY e.id DESC LIMIT 1) AS verifier"
        " FROM tasks t WHERE t.kind = 'bare_land_survey' AND t.source_kind IN (?, ?)"
        " AND t.state IN ('verified', 'closed') AND NOT EXISTS (SELECT 1 FROM bare_patch_history h"
        "   WHERE h.note = 'verified bare_land_survey task ' || CAST(t.id AS TEXT)) ORDER BY t.id",
        [_SURVEY_SOURCE, _GREENING_SOURCE])
    out = []
    for row in done.itertuples(index=False):  # one row per verified report not yet applied
        finding = json.loads(row.report or "{}").get("finding")
        if finding not in ("covered", "greened"):
            continue
        patch = int(str(row.source_key).split(":", 1)[0])
        out.append(patch_status_update(store, patch, finding, actor=row.verifier or "verification",
                                       note=f"verified bare_land_survey task {int(row.id)}", now=now))
    return out


def _due_for_greening(since: pd.Series, today: dt.date, months: int) -> np.ndarray:
    """Whether more than ``months`` calendar months have passed from each day ``since`` to ``today`` (超过三个月).

    The months end when the day ``since`` plus ``months`` (:func:`gridwatch.periods.add_months`, kept inside the
    month reached) ends: covered on 03-31, three months end with 06-30, and the land is due on 07-01, not before.
    """
    from gridwatch.periods import add_months  # noqa: PLC0415 - periods imports policy, which imports tasks

    return np.asarray([add_months(day, months) < today for day in since], dtype=bool)


def escalate_bare_land(store: Store, today: dt.date, *, dispatch: DispatchPolicy, policy: BarePolicy | None = None,
                       now: dt.datetime | None = None, actor: str = "escalation") -> dict[str, Any]:
    """Escalate to greening, once each, patches covered, or still bare, for more than ``months`` calendar months.

    HN-2017: 暂时不能开工的建设用地，建设单位对裸露地面采用可降解材料进行覆盖，超过三个月的进行绿化. A
    ``covered`` patch counts from the Beijing day it was recorded covered; a patch still ``bare`` from the day it was
    first seen. Either is due only when strictly more than ``months`` months have passed: on ``today`` after the
    day that ends them (see :func:`_due_for_greening`). ``today`` is a Beijing date.

    Each escalated patch gets ``escalated_at``, a history entry and a high-priority
    ``bare_land_survey`` task (source ``bare_greening``) asking for greening, due
    after ``dispatch``'s hours for surveys.

    Returns
    -------
    dict
        ``escalated`` (patch ids), ``tasks_opened``.
    """
    from gridwatch.policy import Policy  # noqa: PLC0415

    policy = policy or BarePolicy.from_settings()
    now = naive_utc(now)
    with store.transaction():
        candidates = store.query_df(
            "SELECT id, cell, bare_m2, first_seen, status, status_changed_at FROM bare_patches"
            " WHERE status IN ('bare', 'covered') AND escalated_at IS NULL ORDER BY id")
        if candidates.empty:
            return {"escalated": [], "tasks_opened": 0}
        local = Policy()
        covered = candidates.status.eq("covered").to_numpy()
        since = pd.Series([local.local_date(pd.Timestamp(c).to_pydatetime()) if is_covered
                           else pd.Timestamp(f).date()
                           for f, c, is_covered in zip(candidates.first_seen, candidates.status_changed_at, covered,
                                                       strict=True)])
        chosen = _due_for_greening(since, today, policy.months)
        due = candidates[chosen].reset_index(drop=True)
        if due.empty:
            return {"escalated": [], "tasks_opened": 0}
        ids = due.id.to_numpy(dtype=np.int64)
        store.execute(f"UPDATE bare_patches SET escalated_at = ? WHERE id IN ({', '.join(map(str, ids))})", [now])
        days = since[chosen].reset_index(drop=True)
        for i, row in enumerate(due.itertuples(index=False)):  # one history line per escalated patch
            _patch_history(store, np.asarray([row.id]), np.asarray([row.status], dtype=object), row.status, now=now,
                           actor=actor, note=f"escalated: {row.status} for more than {policy.months} months since "
                                             f"{days[i].isoformat()}, greening required")
        keys = np.asarray([f"{int(i)}:greening" for i in ids], dtype=object)
        known = _existing_keys(store, _GREENING_SOURCE, list(keys))
        fresh = np.asarray([k not in known for k in keys])
        if fresh.any():
            hours = dispatch.sla_by_kind.get(Kind.BARE_LAND_SURVEY, 72.0)
            titles = task_title_columns("bare_greening", {
                "first_seen": due.first_seen.astype(str), "area_m2": due.bare_m2.round(0).astype(int).astype(str)
            }).take(np.flatnonzero(fresh))
            open_tasks(store, kind=Kind.BARE_LAND_SURVEY, cells=due.cell.to_numpy(dtype=np.int64)[fresh],
                       source_kind=_GREENING_SOURCE, source_keys=keys[fresh],
                       priority=np.full(int(fresh.sum()), Priority.KEY_PERIOD),
                       due=np.full(int(fresh.sum()), np.datetime64(now) + np.timedelta64(int(hours * 3600), "s")),
                       titles=titles, now=now, actor=actor,
                       detail={"by": actor, "rule": "bare land escalated to greening"})
    return {"escalated": ids.tolist(), "tasks_opened": int(fresh.sum())}


# --------------------------------------------------------------------------------------------------
# Lists
# --------------------------------------------------------------------------------------------------

def bare_cells_table(store: Store) -> pd.DataFrame:
    """Per-cell bare land of the published version, with owners."""
    return store.query_df(
        "SELECT b.cell, b.observed_m2, b.bare_m2, b.fraction, b.is_bare, b.observed_on, b.version,"
        " c.county_code, c.township_code, c.village_code, c.lat, c.lng"
        " FROM bare_land_cells b JOIN cells c ON c.cell = b.cell ORDER BY b.bare_m2 DESC, b.cell")


def patches_table(store: Store, *, status: str | None = None) -> pd.DataFrame:
    """Registered patches (newest first), with owners."""
    where, params = ("WHERE p.status = ?", [status]) if status else ("", [])
    return store.query_df(
        "SELECT p.id, p.cell, p.first_seen, p.last_seen, p.bare_m2, p.status, p.status_changed_at,"
        " p.status_changed_by, p.escalated_at, c.township_code, c.village_code, c.lat, c.lng"
        f" FROM bare_patches p JOIN cells c ON c.cell = p.cell {where} ORDER BY p.first_seen DESC, p.id", params)


def _register() -> None:
    try:
        from gridwatch import layerstore  # noqa: PLC0415
    except ImportError:  # pragma: no cover - before the layer store exists
        return
    layerstore.register(layerstore.LayerKind(kind="bare_land", geometry="cells", read=read_bare_land,
                                             publish=publish_bare_land, label=N_("Bare land")))


_register()
