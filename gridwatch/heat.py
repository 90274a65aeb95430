"""Heat supply: power plants with their CHP flag and radius, the boiler inventory, and the two boiler rules.

Layer kinds ``chp_plants`` and ``boilers`` (registered with :mod:`gridwatch.layerstore`
when this module is imported). Publishing plants stores every plant with the CHP
flag in force (the file's flag unless staff marked the plant, see :func:`mark_chp`)
and gives each qualifying plant (CHP and at least ``min_chp_mw``) its radius;
publishing either layer re-evaluates the boilers against two separate rules of the plans:

``eliminate_35tph``
    Region-wide, tied to no radius: every coal boiler of ``small_boiler_tph`` (35 t/h) **or less** is eliminated
    (HN-2024 §3(3) 全面淘汰35蒸吨/小时以下的燃煤锅炉; XC-2024 3(3) 35蒸噸/小時及以下, the stricter reading, kept).
    The clause names boilers only: a CHP unit is not judged by this rule.
``chp_radius``
    Coal boilers and 落后燃煤小热电机组 (coal units of type ``chp_unit`` as loaded: an inventory lists the small CHP
    units; they are judged by being such units, never by t/h) inside the ``radius_m`` (30 km) of a CHP plant of at
    least ``min_chp_mw`` (300 MW) are closed or integrated by ``deadline`` (2025-12-31; HN-2024 §3(3), XC-2024 3(3)).

A boiler due under either rule is ``listed``; each listed boiler still to close in the region has one
``boiler_check`` task. Tasks made moot (the boiler left the inventory, no rule applies any more, or its status
moved on) are withdrawn through :func:`gridwatch.workflow.withdraw_tasks`, never deleted.

Statuses are ``to_close``, ``closed``, ``integrated`` and ``exempt`` (no heat
substitution); a boiler under the radius rule still ``to_close`` after the deadline
shows as ``overdue`` (the region-wide rule has no date in the clause). Every change is recorded with who and when
(``boiler_status_history``); a verified ``boiler_check`` report whose finding is
``closed`` or ``integrated`` moves the status (:func:`apply_boiler_findings`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from gridwatch import workflow
from gridwatch.config import Settings
from gridwatch.errors import NotFound, ValidationError
from gridwatch.grid import latlng_to_cells
from gridwatch.i18n import N_, task_title_columns
from gridwatch.policy import DispatchPolicy, Policy
from gridwatch.storage import Store
from gridwatch.tasks import ACTIVE_STATES, Kind, Priority, naive_utc
from gridwatch.workflow import open_tasks
from layers.base import LayerRead
from layers.heat_supply import (BOILER_STATUSES, RadiusIndex, boilers_from_frame, geodesic_circle,
                                plants_from_frame, read_boilers, read_plants)

__all__ = ["HeatPolicy", "read_chp_plants", "read_boiler_inventory", "publish_plants", "publish_boilers",
           "mark_chp", "boiler_status_update", "apply_boiler_findings", "evaluate_boilers", "plants_table",
           "boilers_table", "boilers_in_radius", "boilers_due", "radius_polygons", "ACTOR", "plants_reaching_region",
           "demo_boilers_csv", "add_demo_heat", "SHIPPED_PLANTS"]

#: the actor recorded for changes a publication makes
ACTOR = "layer-publish"
_TASK_SOURCE = "boiler"


@dataclass(frozen=True)
class HeatPolicy:
    """The configurable rules of the heat-supply radius (settings ``heat_*``).

    Attributes
    ----------
    min_chp_mw : float
        CHP plants of at least this capacity get a radius (300 MW).
    radius_m : float
        The radius on the WGS84 ellipsoid (30 km).
    small_boiler_tph : float
        Coal boilers of this capacity **or less** are eliminated region-wide (35 t/h, inclusive).
    deadline : datetime.date
        Boilers under the radius rule still to close after this day are overdue (2025-12-31).
    """

    min_chp_mw: float = 300.0
    radius_m: float = 30_000.0
    small_boiler_tph: float = 35.0
    deadline: dt.date = dt.date(2025, 12, 31)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "HeatPolicy":
        """The policy from settings (``heat_min_chp_mw``, ``heat_radius_km``, ``heat_small_boiler_tph``,
        ``heat_boiler_deadline``)."""
        s = settings or Settings.load()
        try:
            return cls(min_chp_mw=float(s.heat_min_chp_mw), radius_m=float(s.heat_radius_km) * 1000.0,
                       small_boiler_tph=float(s.heat_small_boiler_tph),
                       deadline=dt.date.fromisoformat(str(s.heat_boiler_deadline)))
        except ValueError as exc:
            raise ValidationError("Heat-supply settings are not valid ({reason}); heat_min_chp_mw, heat_radius_km "
                                  "and heat_small_boiler_tph are numbers, heat_boiler_deadline a date "
                                  "YYYY-MM-DD.", reason=str(exc)) from exc




def _resolution(store: Store) -> int:
    return int(store.get_meta("resolution", "8") or 8)


# --------------------------------------------------------------------------------------------------
# Reading (the layer kinds' read functions)
# --------------------------------------------------------------------------------------------------

def _is_csv(source: Path | bytes, name: str | None) -> bool:
    label = (name or (str(source) if not isinstance(source, bytes) else "")).lower()
    return label.endswith((".csv", ".txt")) or (isinstance(source, bytes) and not label)


def _with_crs(read: LayerRead, crs: str) -> LayerRead:
    read.frame.attrs["crs"] = crs
    return read


def _vector(source: Path | bytes, name: str | None, crs: str | None, to_layer: Any, **options: Any) -> LayerRead:
    """Any vector point layer through layers-core's reader (geometries in WGS84), then ``to_layer``."""
    from gridwatch.layerfiles import read_layer_file  # noqa: PLC0415 - avoids a cycle through layerstore

    if isinstance(source, bytes):
        raise ValidationError("Give {file} as a file path; only CSV can be read from bytes here.", file=name)
    raw = read_layer_file(source, crs=crs, geometry="point", name=name, **options)
    frame = raw.attributes.assign(geometry=np.asarray(raw.geoms, dtype=object))
    out = to_layer(frame, source=raw.source, lines=np.asarray(raw.feature_no))
    out.rejected = pd.concat([raw.rejected, out.rejected], ignore_index=True).sort_values("line", ignore_index=True)
    out.warnings = [*raw.warnings, *out.warnings]
    out.read = raw.read
    out.frame.attrs["repaired"] = len(raw.repaired)
    return _with_crs(out, raw.crs)


def read_chp_plants(source: Path | bytes, *, name: str | None = None, crs: str | None = None,
                    store: Store | None = None, chp: Iterable[str] = (), **options: Any) -> LayerRead:
    """Read power plants (the ``chp_plants`` kind): a CSV with coordinate columns, or any point layer.

    A CSV's coordinates are WGS84 unless ``crs`` says otherwise (the WRI data are WGS84); ``chp``
    lists plant ids or names to mark as CHP on this upload (the WRI data have no such flag).
    """
    if isinstance(chp, str):
        chp = [c for c in chp.split(",") if c.strip()]
    if _is_csv(source, name):
        return _with_crs(read_plants(source, name=name, crs=crs, chp=chp, x_field=options.get("x_field"),
                                     y_field=options.get("y_field")), str(crs or "EPSG:4326"))
    return _vector(source, name, crs, lambda f, **kw: plants_from_frame(f, chp=chp, **kw), **options)


def read_boiler_inventory(source: Path | bytes, *, name: str | None = None, crs: str | None = None,
                          store: Store | None = None, **options: Any) -> LayerRead:
    """Read a boiler inventory (the ``boilers`` kind): a CSV with coordinate columns, or any point layer."""
    if _is_csv(source, name):
        return _with_crs(read_boilers(source, name=name, crs=crs, x_field=options.get("x_field"),
                                      y_field=options.get("y_field")), str(crs or "EPSG:4326"))
    return _vector(source, name, crs, boilers_from_frame, **options)


# --------------------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------------------

def _xy(frame: pd.DataFrame) -> np.ndarray:
    if not len(frame):
        return np.zeros((0, 2))
    return shapely.get_coordinates(np.asarray(frame["geometry"].to_numpy(), dtype=object))


def _qualifying(store: Store) -> pd.DataFrame:
    return store.query_df("SELECT plant_id, name, capacity_mw, lat, lng, radius_m FROM heat_plants"
                          " WHERE qualifies ORDER BY plant_id")


def _radius_cells(store: Store, policy: HeatPolicy) -> np.ndarray:
    """Grid cells whose centre lies inside some radius."""
    plants = _qualifying(store)
    cells = store.query_df("SELECT cell, lat, lng FROM cells")
    if plants.empty or cells.empty:
        return np.zeros(0, dtype=np.int64)
    index = RadiusIndex(plants.lng.to_numpy(), plants.lat.to_numpy(), policy.radius_m)
    return np.sort(cells.cell.to_numpy(dtype=np.int64)[index.inside(cells.lng.to_numpy(), cells.lat.to_numpy())])


def publish_plants(store: Store, version: int, frame: pd.DataFrame, actor: str, *, dispatch: DispatchPolicy,
                   policy: HeatPolicy | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Publish a ``chp_plants`` version: store the plants, their CHP flag and radius, re-evaluate the boilers.

    Replaces the plants of the previously published version; idempotent. Call inside a transaction.
    ``dispatch`` gives the service-level hours of the ``boiler_check`` tasks opened.

    Returns
    -------
    dict
        ``cells_added`` / ``cells_removed`` (grid cells whose centre entered or left the radii),
        ``tasks_opened`` / ``tasks_closed`` (``boiler_check``), ``plants``, ``qualifying``,
        ``boilers_listed``.
    """
    policy = policy or HeatPolicy.from_settings()
    now = naive_utc(now)
    before = _radius_cells(store, policy)
    xy = _xy(frame)
    marks = store.query_df("SELECT plant_id, chp FROM chp_marks")
    chp_file = frame["chp"].to_numpy(dtype=bool) if len(frame) else np.zeros(0, dtype=bool)
    chp = chp_file.copy()
    if len(marks):
        mark = pd.Series(marks.chp.to_numpy(dtype=bool), index=marks.plant_id.astype(str))
        ids = frame["plant_id"].astype(str)
        has = ids.isin(mark.index).to_numpy()
        chp[has] = mark.loc[ids[has]].to_numpy(dtype=bool)
    capacity = frame["capacity_mw"].to_numpy(dtype=np.float64) if len(frame) else np.zeros(0)
    qualifies = chp & (capacity >= policy.min_chp_mw)
    year = frame["commissioning_year"] if "commissioning_year" in frame else pd.Series([None] * len(frame))
    store.execute("DELETE FROM heat_plants")
    if len(frame):
        store.insert_arrow("heat_plants", pa.table({
            "plant_id": pa.array(frame["plant_id"].astype(str).tolist()),
            "version": pa.array(np.full(len(frame), int(version), dtype=np.int64)),
            "name": pa.array(frame["name"].astype(str).tolist()),
            "fuel": pa.array(frame["fuel"].fillna("").astype(str).tolist()),
            "capacity_mw": pa.array(capacity),
            "chp_in_file": pa.array(chp_file),
            "chp": pa.array(chp),
            "qualifies": pa.array(qualifies),
            "radius_m": pa.array(np.where(qualifies, policy.radius_m, np.nan), from_pandas=True),
            "lat": pa.array(xy[:, 1]),
            "lng": pa.array(xy[:, 0]),
            "status": pa.array(frame["status"].fillna("").astype(str).tolist() if "status" in frame
                               else [""] * len(frame)),
            "commissioning_year": pa.array(pd.to_numeric(year, errors="coerce").to_numpy(np.float64),
                                           from_pandas=True).cast(pa.int32()),
        }))
    after = _radius_cells(store, policy)
    result = evaluate_boilers(store, dispatch=dispatch, actor=actor, policy=policy, now=now)
    return {"cells_added": int(np.setdiff1d(after, before).size),
            "cells_removed": int(np.setdiff1d(before, after).size),
            "tasks_opened": result["tasks_opened"], "tasks_closed": result["tasks_closed"],
            "plants": int(len(frame)), "qualifying": int(qualifies.sum()),
            "boilers_listed": result["listed"]}


def _history(store: Store, rows: pd.DataFrame, *, now: dt.datetime, actor: str, source: str,
             note: str = "", task_id: int | None = None) -> None:
    """Append status changes: ``rows`` has boiler_id, from_status, to_status."""
    if rows.empty:
        return
    n = len(rows)
    # a boiler new to the inventory has no earlier status: pandas gives NaN (a float) there once the merge mixes
    # known and new boilers, which Arrow refuses as text; write it as NULL
    before = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in rows.from_status]
    store.insert_arrow("boiler_status_history", pa.table({
        "boiler_id": pa.array(rows.boiler_id.astype(str).tolist()),
        "from_status": pa.array(before, type=pa.string()),
        "to_status": pa.array(rows.to_status.astype(str).tolist()),
        "changed_at": pa.array([now] * n, type=pa.timestamp("us")),
        "changed_by": pa.array([actor] * n),
        "source": pa.array([source] * n),
        "task_id": pa.array([task_id] * n, type=pa.int64()),
        "note": pa.array([note] * n),
    }))


def publish_boilers(store: Store, version: int, frame: pd.DataFrame, actor: str, *, dispatch: DispatchPolicy,
                    policy: HeatPolicy | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Publish a ``boilers`` version: the inventory replaces the previous one; boilers are re-evaluated.

    A boiler new to the inventory takes the file's status. A known boiler keeps
    its recorded status (changed since by tasks or staff) unless the file gives
    another status than ``to_close``; every change goes into the history.
    Boilers absent from this version stay on record as inactive. Call inside a
    transaction; idempotent. ``dispatch`` gives the service-level hours of the
    ``boiler_check`` tasks opened.

    Returns
    -------
    dict
        ``cells_added`` / ``cells_removed`` (cells holding a listed boiler),
        ``tasks_opened`` / ``tasks_closed``, ``boilers``, ``boilers_listed``, ``status_changes``.
    """
    policy = policy or HeatPolicy.from_settings()
    now = naive_utc(now)
    before = store.query_df("SELECT DISTINCT cell FROM boilers WHERE active AND listed").cell.to_numpy(np.int64)
    xy = _xy(frame)
    res = _resolution(store)
    cells = latlng_to_cells(xy[:, 1], xy[:, 0], res).astype(np.int64) if len(frame) else np.zeros(0, np.int64)
    incoming = pd.DataFrame({
        "boiler_id": frame["boiler_id"].astype(str).to_numpy() if len(frame) else np.zeros(0, dtype=object),
        "file_status": frame["status"].astype(str).to_numpy() if len(frame) else np.zeros(0, dtype=object),
    })
    known = store.query_df("SELECT boiler_id, status FROM boilers")
    merged = incoming.merge(known, on="boiler_id", how="left")
    new = merged.status.isna()
    explicit = merged.file_status.ne("to_close")
    status = np.where(new | explicit, merged.file_status, merged.status).astype(object)
    changes = pd.DataFrame({"boiler_id": merged.boiler_id, "from_status": merged.status.where(~new, None),
                            "to_status": status})
    changes = changes[new.to_numpy() | (merged.status.to_numpy() != status)]
    store.execute("CREATE TEMP TABLE IF NOT EXISTS incoming_boilers AS SELECT * FROM boilers LIMIT 0")
    store.execute("DELETE FROM incoming_boilers")
    if len(frame):
        changed = merged.boiler_id.isin(changes.boiler_id).to_numpy()
        store.insert_arrow("incoming_boilers", pa.table({
            "boiler_id": pa.array(incoming.boiler_id.tolist()),
            "version": pa.array(np.full(len(frame), int(version), dtype=np.int64)),
            "active": pa.array(np.ones(len(frame), dtype=bool)),
            "name": pa.array(frame["name"].astype(str).tolist()),
            "fuel": pa.array(frame["fuel"].fillna("").astype(str).tolist()),
            "coal": pa.array(frame["coal"].to_numpy(dtype=bool)),
            "unit_type": pa.array(frame["unit_type"].astype(str).tolist()),
            "capacity_tph": pa.array(frame["capacity_tph"].to_numpy(dtype=np.float64)),
            "lat": pa.array(xy[:, 1]), "lng": pa.array(xy[:, 0]),
            "cell": pa.array(cells),
            "in_region": pa.array(np.zeros(len(frame), dtype=bool)),
            "in_radius": pa.array(np.zeros(len(frame), dtype=bool)),
            "plant_id": pa.array([None] * len(frame), type=pa.string()),
            "distance_m": pa.array([None] * len(frame), type=pa.float64()),
            "small": pa.array(np.zeros(len(frame), dtype=bool)),
            "listed": pa.array(np.zeros(len(frame), dtype=bool)),
            "status": pa.array(status.tolist()),
            "status_changed_at": pa.array([now if c else None for c in changed], type=pa.timestamp("us")),
            "status_changed_by": pa.array([actor if c else "" for c in changed]),
        }))
    # keep when/by of unchanged statuses
    store.execute("UPDATE incoming_boilers SET status_changed_at = b.status_changed_at,"
                  " status_changed_by = b.status_changed_by FROM boilers b"
                  " WHERE b.boiler_id = incoming_boilers.boiler_id AND b.status = incoming_boilers.status")
    store.execute("UPDATE boilers SET active = FALSE"
                  " WHERE boiler_id NOT IN (SELECT boiler_id FROM incoming_boilers)")
    store.execute("DELETE FROM boilers WHERE boiler_id IN (SELECT boiler_id FROM incoming_boilers)")
    store.execute("INSERT INTO boilers SELECT * FROM incoming_boilers")
    store.execute("DELETE FROM incoming_boilers")
    _history(store, changes, now=now, actor=actor, source="upload", note=f"boilers version {int(version)}")
    result = evaluate_boilers(store, dispatch=dispatch, actor=actor, policy=policy, now=now)
    after = store.query_df("SELECT DISTINCT cell FROM boilers WHERE active AND listed").cell.to_numpy(np.int64)
    return {"cells_added": int(np.setdiff1d(after, before).size),
            "cells_removed": int(np.setdiff1d(before, after).size),
            "tasks_opened": result["tasks_opened"], "tasks_closed": result["tasks_closed"],
            "boilers": int(len(frame)), "boilers_listed": result["listed"], "status_changes": int(len(changes))}


def evaluate_boilers(store: Store, *, dispatch: DispatchPolicy, actor: str = ACTOR, policy: HeatPolicy | None = None,
                     now: dt.datetime | None = None) -> dict[str, int]:
    """Recompute every active boiler against the qualifying plants, then open and withdraw ``boiler_check`` tasks.

    ``dispatch`` gives the service-level hours of the tasks opened.

    Returns ``{"listed", "tasks_opened", "tasks_closed"}``.
    """
    policy = policy or HeatPolicy.from_settings()
    now = naive_utc(now)
    with store.transaction():
        boilers = store.query_df("SELECT boiler_id, lat, lng, cell, coal, unit_type, capacity_tph FROM boilers"
                                 " WHERE active ORDER BY boiler_id")
        plants = _qualifying(store)
        n = len(boilers)
        if n:
            index = RadiusIndex(plants.lng.to_numpy(), plants.lat.to_numpy(), policy.radius_m)
            inside, nearest, dist = index.classify(boilers.lng.to_numpy(), boilers.lat.to_numpy())
            plant_ids = np.where(nearest >= 0, plants.plant_id.to_numpy(dtype=object)[np.maximum(nearest, 0)]
                                 if len(plants) else None, None)
            coal = boilers.coal.to_numpy(dtype=bool)
            is_boiler = boilers.unit_type.ne("chp_unit").to_numpy()
            # XC-2024 3(3) 35蒸噸/小時及以下: inclusive; boilers only (a CHP unit is not judged by t/h)
            small = is_boiler & (boilers.capacity_tph.to_numpy(dtype=np.float64) <= policy.small_boiler_tph)
            listed = coal & (small | inside)  # eliminate_35tph anywhere, or chp_radius inside a radius
            store.execute("CREATE TEMP TABLE IF NOT EXISTS boiler_eval (boiler_id TEXT, in_radius BOOLEAN,"
                          " plant_id TEXT, distance_m DOUBLE, small BOOLEAN, listed BOOLEAN)")
            store.execute("DELETE FROM boiler_eval")
            store.insert_arrow("boiler_eval", pa.table({
                "boiler_id": pa.array(boilers.boiler_id.astype(str).tolist()),
                "in_radius": pa.array(inside), "plant_id": pa.array(list(plant_ids), type=pa.string()),
                "distance_m": pa.array(dist, from_pandas=True), "small": pa.array(small),
                "listed": pa.array(listed)}))
            store.execute("UPDATE boilers SET in_radius = e.in_radius, plant_id = e.plant_id,"
                          " distance_m = e.distance_m, small = e.small, listed = e.listed"
                          " FROM boiler_eval e WHERE e.boiler_id = boilers.boiler_id")
            store.execute("UPDATE boilers SET in_region = (cell IN (SELECT cell FROM cells)) WHERE active")
            store.execute("DELETE FROM boiler_eval")
        opened = _open_boiler_tasks(store, policy=policy, dispatch=dispatch, now=now, actor=actor)
        closed = _withdraw_moot_tasks(store, now=now)
        listed_count = int(store.scalar("SELECT count(*) FROM boilers WHERE active AND listed"))
    return {"listed": listed_count, "tasks_opened": opened, "tasks_closed": closed}


def _open_boiler_tasks(store: Store, *, policy: HeatPolicy, dispatch: DispatchPolicy, now: dt.datetime,
                       actor: str) -> int:
    """One ``boiler_check`` per listed boiler to close, in the region, without a task that is not withdrawn."""
    due_hours = dispatch.sla_by_kind.get(Kind.BOILER_CHECK, 168.0)
    wanted = store.query_df(
        "SELECT b.boiler_id, b.cell, b.name, b.capacity_tph, b.small, b.in_radius, b.distance_m, p.name AS plant,"
        " (SELECT count(*) FROM tasks t WHERE t.kind = 'boiler_check' AND t.source_kind = ?"
        "   AND (t.source_key = b.boiler_id OR t.source_key LIKE b.boiler_id || '#%')) AS earlier"
        " FROM boilers b LEFT JOIN heat_plants p ON p.plant_id = b.plant_id"
        " WHERE b.active AND b.listed AND b.in_region AND b.status = 'to_close'"
        " AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.kind = 'boiler_check' AND t.source_kind = ?"
        "   AND (t.source_key = b.boiler_id OR t.source_key LIKE b.boiler_id || '#%') AND t.state <> 'withdrawn')"
        " ORDER BY b.boiler_id", [_TASK_SOURCE, _TASK_SOURCE])
    if wanted.empty:
        return 0
    earlier = wanted.earlier.to_numpy(dtype=np.int64)
    keys = np.where(earlier == 0, wanted.boiler_id.astype(str),
                    wanted.boiler_id.astype(str) + "#" + (earlier + 1).astype(str)).astype(object)
    radius = wanted.in_radius.to_numpy(dtype=bool)
    late = radius & (now.date() > policy.deadline)  # the deadline is the radius rule's (2025年年底前)
    priority = np.where(wanted.small.to_numpy(dtype=bool) | late, Priority.KEY_PERIOD, Priority.NORMAL)
    due = np.datetime64(now) + np.timedelta64(int(due_hours * 3600), "s")
    for in_radius in (True, False):  # one title per rule: the radius rule names the plant and the distance
        chosen = radius == in_radius
        if not chosen.any():
            continue
        part = wanted[chosen]
        values = {"name": part.name.astype(str), "capacity_tph": part.capacity_tph.round(1).astype(str)}
        if in_radius:
            values.update({"distance_km": (part.distance_m / 1000).round(1).astype(str),
                           "plant": part.plant.fillna("").astype(str)})
        else:
            values["limit_tph"] = np.full(len(part), f"{policy.small_boiler_tph:g}", dtype=object)
        rule = "chp_radius" if in_radius else "eliminate_35tph"
        open_tasks(store, kind=Kind.BOILER_CHECK, cells=part.cell.to_numpy(dtype=np.int64), source_kind=_TASK_SOURCE,
                   source_keys=keys[chosen], priority=priority[chosen], due=np.full(len(part), due),
                   titles=task_title_columns("boiler_check" if in_radius else "boiler_eliminate", values), now=now,
                   actor=actor, detail={"by": actor, "rule": f"boiler_check per listed boiler ({rule})"})
    return int(len(wanted))


def _withdraw_moot_tasks(store: Store, *, now: dt.datetime) -> int:
    """Withdraw active ``boiler_check`` tasks whose boiler is gone, outside the radii, or no longer to close."""
    from gridwatch import layerstore  # noqa: PLC0415 - avoids a cycle through layerstore

    active = "', '".join(s.value for s in ACTIVE_STATES)
    moot = store.query_df(
        "SELECT t.id, b.boiler_id, b.active, b.listed, b.status FROM tasks t"
        " LEFT JOIN boilers b ON t.source_key = b.boiler_id OR t.source_key LIKE b.boiler_id || '#%'"
        f" WHERE t.kind = 'boiler_check' AND t.source_kind = ? AND t.state IN ('{active}')"
        " AND (b.boiler_id IS NULL OR NOT b.active OR NOT b.listed OR b.status <> 'to_close')"
        " ORDER BY t.id", [_TASK_SOURCE])
    notes = []
    for row in moot.itertuples(index=False):
        if row.boiler_id is None or pd.isna(row.boiler_id) or not row.active:
            notes.append("withdrawn: the boiler is no longer in the published inventory")
        elif not row.listed:
            notes.append("withdrawn: no rule lists the boiler any more (not a small coal boiler, not inside a "
                         "heat-supply radius)")
        else:
            notes.append(f"withdrawn: the boiler's status is now {row.status}")
    return workflow.withdraw_tasks(store, moot.id.to_numpy(), note=notes, actor=layerstore.PUBLISH_ACTOR, now=now)


# --------------------------------------------------------------------------------------------------
# Staff actions
# --------------------------------------------------------------------------------------------------

def mark_chp(store: Store, plants: Iterable[str], *, chp: bool = True, actor: str, dispatch: DispatchPolicy,
             note: str = "", policy: HeatPolicy | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Mark published plants as CHP (or not), by plant id or exact name; radii and boilers follow at once.

    The mark overrides the file's flag and is kept for later uploads of the same plant id. ``dispatch`` gives
    the service-level hours of the ``boiler_check`` tasks opened.

    Returns
    -------
    dict
        ``marked`` (plant ids), ``qualifying`` (plants with a radius now), plus the boiler evaluation
        (``listed``, ``tasks_opened``, ``tasks_closed``).

    Raises
    ------
    NotFound
        When a name or id matches no published plant.
    """
    policy = policy or HeatPolicy.from_settings()
    now = naive_utc(now)
    wanted = [str(p).strip() for p in plants if str(p).strip()]
    if not wanted:
        raise ValidationError("Name at least one plant (id or exact name) to mark.")
    with store.transaction():
        found = store.query_df("SELECT plant_id, name FROM heat_plants")
        ids: list[str] = []
        for w in wanted:
            hit = found[(found.plant_id == w) | (found.name == w)]
            if hit.empty:
                raise NotFound("There is no published plant with id or name {plant}.", plant=w)
            ids.extend(hit.plant_id.tolist())
        for pid in sorted(set(ids)):
            store.execute("DELETE FROM chp_marks WHERE plant_id = ?", [pid])
            store.execute("INSERT INTO chp_marks (plant_id, chp, marked_by, marked_at, note) VALUES (?, ?, ?, ?, ?)",
                          [pid, bool(chp), actor, now, note])
        _refresh_plant_flags(store, policy)
        result = evaluate_boilers(store, dispatch=dispatch, actor=actor, policy=policy, now=now)
        store.execute("INSERT INTO audit_log (actor, action, subject, detail) VALUES (?, ?, ?, ?)",
                      [actor, "heat.mark_chp", ",".join(sorted(set(ids))),
                       json.dumps({"chp": bool(chp), "note": note}, ensure_ascii=False)])
        qualifying = int(store.scalar("SELECT count(*) FROM heat_plants WHERE qualifies"))
    return {"marked": sorted(set(ids)), "chp": bool(chp), "qualifying": qualifying, **result}


def _refresh_plant_flags(store: Store, policy: HeatPolicy) -> None:
    store.execute("UPDATE heat_plants SET chp = COALESCE((SELECT m.chp FROM chp_marks m"
                  " WHERE m.plant_id = heat_plants.plant_id), chp_in_file)")
    store.execute("UPDATE heat_plants SET qualifies = chp AND capacity_mw >= ?,"
                  " radius_m = CASE WHEN chp AND capacity_mw >= ? THEN ? ELSE NULL END",
                  [policy.min_chp_mw, policy.min_chp_mw, policy.radius_m])


def boiler_status_update(store: Store, boiler_id: str, status: str, *, actor: str, dispatch: DispatchPolicy,
                         note: str = "", task_id: int | None = None, source: str = "manual",
                         now: dt.datetime | None = None) -> dict[str, Any]:
    """Change a boiler's status (to_close / closed / integrated / exempt), recording who and when.

    Tasks the change makes moot are withdrawn; moving back to ``to_close`` opens a
    ``boiler_check`` again when the boiler is listed, due after ``dispatch``'s hours.

    Returns
    -------
    dict
        ``boiler_id``, ``from_status``, ``to_status``, ``changed`` (False when the status was already that),
        ``tasks_opened``, ``tasks_closed``.
    """
    if status not in BOILER_STATUSES:
        raise ValidationError("Unknown boiler status {status!r}; use one of {allowed}.", status=status,
                              allowed=", ".join(BOILER_STATUSES))
    now = naive_utc(now)
    with store.transaction():
        rows = store.query("SELECT status FROM boilers WHERE boiler_id = ?", [str(boiler_id)])
        if not rows:
            raise NotFound("There is no boiler {id} in the inventory.", id=boiler_id)
        before = rows[0]["status"]
        if before == status:
            return {"boiler_id": str(boiler_id), "from_status": before, "to_status": status, "changed": False,
                    "tasks_opened": 0, "tasks_closed": 0}
        store.execute("UPDATE boilers SET status = ?, status_changed_at = ?, status_changed_by = ?"
                      " WHERE boiler_id = ?", [status, now, actor, str(boiler_id)])
        _history(store, pd.DataFrame({"boiler_id": [str(boiler_id)], "from_status": [before], "to_status": [status]}),
                 now=now, actor=actor, source=source, note=note, task_id=task_id)
        policy = HeatPolicy.from_settings()
        opened = _open_boiler_tasks(store, policy=policy, dispatch=dispatch, now=now, actor=actor)
        closed = _withdraw_moot_tasks(store, now=now)
    return {"boiler_id": str(boiler_id), "from_status": before, "to_status": status, "changed": True,
            "tasks_opened": opened, "tasks_closed": closed}


def apply_boiler_findings(store: Store, *, dispatch: DispatchPolicy,
                          now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Move boiler statuses from verified ``boiler_check`` reports (finding ``closed`` or ``integrated``).

    A task counts once verified (or closed after verification); its last report's
    finding decides, the verifier is recorded as who changed it. Reports already
    applied (a history row names the task) are skipped, so this is idempotent.
    ``dispatch`` is passed on to :func:`boiler_status_update`.
    """
    done = store.query_df(
        "SELECT t.id, t.source_key,"
        " (SELECT e.detail FROM task_events e WHERE e.task_id = t.id AND e.to_state = 'reported'"
        "  ORDER BY e.id DESC LIMIT 1) AS report,"
        " (SELECT e.actor FROM task_events e WHERE e.task_id = t.id AND e.to_state = 'verified'"
        "  ORDER BY e.id DESC LIMIT 1) AS verifier"
        " FROM tasks t WHERE t.kind = 'boiler_check' AND t.source_kind = ? AND t.state IN ('verified', 'closed')"
        " AND NOT EXISTS (SELECT 1 FROM boiler_status_history h WHERE h.task_id = t.id) ORDER BY t.id",
        [_TASK_SOURCE])
    out = []
    for row in done.itertuples(index=False):  # one row per verified report not yet applied
        finding = json.loads(row.report or "{}").get("finding")
        if finding not in ("closed", "integrated"):
            continue
        boiler_id = str(row.source_key).split("#", 1)[0]
        if not store.query("SELECT 1 FROM boilers WHERE boiler_id = ?", [boiler_id]):
            continue
        out.append(boiler_status_update(store, boiler_id, finding, actor=row.verifier or "verification",
                                        dispatch=dispatch, note=f"verified boiler_check task {int(row.id)}",
                                        task_id=int(row.id), source="task", now=now))
    return out


# --------------------------------------------------------------------------------------------------
# Lists
# --------------------------------------------------------------------------------------------------

def plants_table(store: Store) -> pd.DataFrame:
    """Published plants with their CHP flag (and whether staff set it), qualification and radius."""
    return store.query_df(
        "SELECT p.plant_id, p.name, p.fuel, p.capacity_mw, p.chp, p.chp_in_file, m.marked_by, m.marked_at,"
        " p.qualifies, p.radius_m, p.lat, p.lng, p.status, p.commissioning_year, p.version"
        " FROM heat_plants p LEFT JOIN chp_marks m ON m.plant_id = p.plant_id"
        " ORDER BY p.qualifies DESC, p.capacity_mw DESC, p.plant_id")


def boilers_table(store: Store, *, today: dt.date | None = None, policy: HeatPolicy | None = None,
                  listed_only: bool = False) -> pd.DataFrame:
    """Active boilers with the rules that make them due, nearest plant and distance, and the status in force.

    ``rules`` lists ``eliminate_35tph`` (a coal boiler of ``small_boiler_tph`` or less, anywhere) and ``chp_radius``
    (a coal boiler or small coal CHP unit inside a radius); ``plant_id`` and ``distance_m`` are given where a radius
    applies. ``status`` is ``overdue`` for a boiler under the radius rule still to close after its deadline.
    """
    policy = policy or HeatPolicy.from_settings()
    today = today or dt.date.today()
    frame = store.query_df(
        "SELECT b.boiler_id, b.name, b.fuel, b.coal, b.unit_type, b.capacity_tph, b.small, b.lat, b.lng, b.cell,"
        " b.in_region, b.in_radius, b.listed, b.plant_id, p.name AS plant, p.capacity_mw AS plant_mw, b.distance_m,"
        " b.status AS recorded_status, b.status_changed_at, b.status_changed_by,"
        " c.county_code, c.township_code, c.village_code"
        " FROM boilers b LEFT JOIN heat_plants p ON p.plant_id = b.plant_id LEFT JOIN cells c ON c.cell = b.cell"
        " WHERE b.active" + (" AND b.listed" if listed_only else "") +
        " ORDER BY b.distance_m NULLS LAST, b.boiler_id")
    coal = frame.coal.astype(bool)
    eliminate = (coal & frame.small.astype(bool)).to_numpy()
    radius = (coal & frame.in_radius.astype(bool)).to_numpy()
    frame.insert(frame.columns.get_loc("listed") + 1, "rules",
                 [[name for name, due in (("eliminate_35tph", e), ("chp_radius", r)) if due]
                  for e, r in zip(eliminate, radius, strict=True)])
    late = (frame.recorded_status == "to_close").to_numpy() & radius & (today > policy.deadline)
    frame.insert(frame.columns.get_loc("recorded_status"), "status",
                 np.where(late, "overdue", frame.recorded_status.astype(object)))
    return frame


def boilers_in_radius(store: Store, *, dispatch: DispatchPolicy, today: dt.date | None = None,
                      policy: HeatPolicy | None = None, listed_only: bool = True) -> pd.DataFrame:
    """Every coal boiler and small coal CHP unit inside a radius (the ``chp_radius`` rule) with plant and distance.

    With ``listed_only=False`` every boiler inside a radius (gas ones too). Verified findings not applied yet are
    applied first (:func:`apply_boiler_findings`, with ``dispatch``).
    """
    apply_boiler_findings(store, dispatch=dispatch)
    frame = boilers_table(store, today=today, policy=policy)
    chosen = frame.in_radius & (frame.rules.map(lambda r: "chp_radius" in r) if listed_only else True)
    return frame[chosen].reset_index(drop=True)


def boilers_due(store: Store, *, dispatch: DispatchPolicy, today: dt.date | None = None,
                policy: HeatPolicy | None = None, listed_only: bool = True) -> pd.DataFrame:
    """Every boiler due under either rule, each with ``rules`` (``eliminate_35tph``, ``chp_radius`` or both).

    ``boiler_id`` is the id as loaded; ``plant_id`` and ``distance_m`` (geodesic, to the nearest qualifying plant)
    are given where the radius rule applies. ``listed_only=False`` gives every active boiler, ``rules`` empty for
    those no rule lists. Verified findings not applied yet are applied first (:func:`apply_boiler_findings`).
    """
    apply_boiler_findings(store, dispatch=dispatch)
    return boilers_table(store, today=today, policy=policy, listed_only=listed_only)


def radius_polygons(store: Store, *, vertices: int = 128) -> list[dict[str, Any]]:
    """Each qualifying plant's geodesic circle (for maps): plant id, name, capacity, radius and polygon."""
    out = []
    for row in _qualifying(store).itertuples(index=False):  # one circle per plant, a few dozen at most
        out.append({"plant_id": row.plant_id, "name": row.name, "capacity_mw": float(row.capacity_mw),
                    "radius_m": float(row.radius_m),
                    "polygon": geodesic_circle(row.lng, row.lat, row.radius_m, vertices=vertices)})
    return out


# --------------------------------------------------------------------------------------------------
# Plants near a region, and the demo
# --------------------------------------------------------------------------------------------------

#: the shipped WRI plant rows of Henan (CC BY 4.0, see data/plants/README.md)
SHIPPED_PLANTS = Path(__file__).resolve().parent.parent / "data" / "plants" / "henan_plants_from_wri_raw.csv"
#: label of generated demo boilers
DEMO_BOILER_NOTE = "（演示）"


def geodesic_distance_to_region_m(*, lat: np.ndarray, lng: np.ndarray, region: shapely.Geometry) -> np.ndarray:
    """Geodesic distance (m) from points to a lng/lat polygon: 0 inside, else to the nearest boundary vertex.

    The boundary is densified to 0.001° (≈ 100 m) first, so the result is within a few metres of the exact
    distance to the boundary.
    """
    from gridwatch.crs import geodesic_distance_m  # noqa: PLC0415

    lng = np.asarray(lng, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    boundary = shapely.get_coordinates(shapely.segmentize(region.boundary, 0.001))
    out = np.zeros(lng.shape)
    outside = ~shapely.contains_xy(region, lng, lat)
    for i in np.flatnonzero(outside):  # a few dozen plants, each against the boundary vertices at once
        out[i] = float(np.min(geodesic_distance_m(lat1=lat[i], lng1=lng[i], lat2=boundary[:, 1],
                                                  lng2=boundary[:, 0])))
    return out


def plants_reaching_region(frame: pd.DataFrame, region: shapely.Geometry, *, policy: HeatPolicy | None = None,
                           coal_only: bool = True) -> list[str]:
    """Ids of plants of at least the minimum capacity whose radius reaches ``region`` (coal plants by default)."""
    from layers.heat_supply import is_coal  # noqa: PLC0415

    policy = policy or HeatPolicy.from_settings()
    big = frame[(frame.capacity_mw >= policy.min_chp_mw) & (is_coal(frame.fuel) if coal_only else True)]
    if big.empty:
        return []
    xy = _xy(big)
    dist = geodesic_distance_to_region_m(lat=xy[:, 1], lng=xy[:, 0], region=region)
    return big.plant_id[dist <= policy.radius_m].astype(str).tolist()


def demo_boilers_csv(region: shapely.Geometry, *, n: int = 48, seed: int = 410329) -> str:
    """A generated boiler inventory inside and around ``region``, every name marked （演示） (demo data).

    Mixed fuels (mostly coal), capacities 2–75 t/h, some small coal CHP units, a few already
    closed, integrated or exempt.
    """
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = region.buffer(0.05).bounds
    pts = rng.uniform((x0, y0), (x1, y1), size=(20 * n, 2))
    keep = shapely.contains_xy(region.buffer(0.02), pts[:, 0], pts[:, 1])
    pts = pts[keep][:n]
    fuel = rng.choice(["燃煤", "燃煤", "燃煤", "燃煤", "燃气", "生物质"], size=len(pts))
    capacity = rng.choice([2.0, 4.0, 6.0, 10.0, 15.0, 20.0, 35.0, 40.0, 65.0, 75.0], size=len(pts))
    unit_type = np.where(rng.random(len(pts)) < 0.15, "chp_unit", "boiler")
    status = rng.choice(["", "", "", "", "", "", "closed", "integrated", "exempt"], size=len(pts))
    rows = ["boiler_id,name,fuel,capacity_tph,unit_type,status,longitude,latitude"]
    for i, (x, y) in enumerate(pts):  # a generated file of a few dozen lines
        kind = "热电机组" if unit_type[i] == "chp_unit" else "锅炉"
        rows.append(f"DEMO-B{i + 1:03d},演示企业{i + 1:02d}{kind}{DEMO_BOILER_NOTE},{fuel[i]},{capacity[i]:g},"
                    f"{unit_type[i]},{status[i]},{x:.6f},{y:.6f}")
    return "\n".join(rows) + "\n"


def add_demo_heat(store: Store, *, region: str, policy: Policy, actor: str = "demo") -> dict[str, Any]:
    """Demo content: the shipped real plants (the ≥ 300 MW coal plants reaching the region marked CHP) and a
    generated, labelled boiler inventory, both loaded and published as layer versions under ``policy``."""
    from gridwatch import layerstore  # noqa: PLC0415

    geom = shapely.from_wkb(bytes(store.scalar(
        f"SELECT {store.geom_to_wkb_sql('geom')} FROM units WHERE code = ?", [region])))
    plants = read_plants(SHIPPED_PLANTS).frame
    chp = plants_reaching_region(plants, geom)
    loaded = layerstore.load(store, "chp_plants", SHIPPED_PLANTS, actor=actor, policy=policy, publish_now=True,
                             chp=",".join(chp))
    boilers = layerstore.load(store, "boilers", demo_boilers_csv(geom).encode("utf-8"),
                              name="演示锅炉清单_demo_boilers.csv", actor=actor, policy=policy, publish_now=True)
    return {"plants": loaded["rows"], "chp_marked": chp, "boilers": boilers["rows"],
            "boilers_listed": int(boilers["differences"].get("boilers_listed", 0)),
            "tasks_opened": int(boilers["differences"].get("tasks_opened", 0))}


# --------------------------------------------------------------------------------------------------
# Registration with the layer store
# --------------------------------------------------------------------------------------------------

def _register() -> None:
    try:
        from gridwatch import layerstore  # noqa: PLC0415 - layers-core's module; absent in older trees
    except ImportError:  # pragma: no cover - before the layer store exists
        return
    layerstore.register(layerstore.LayerKind(kind="chp_plants", geometry="point", read=read_chp_plants,
                                             publish=publish_plants, label=N_("Power plants (CHP)")))
    layerstore.register(layerstore.LayerKind(kind="boilers", geometry="point", read=read_boiler_inventory,
                                             publish=publish_boilers, label=N_("Boiler inventory")))


_register()
