"""No-burn zones and coal sale points as layers: reading, publishing (cell flags, coal checks) and the zone test.

Two layer kinds are registered here:

``no_burn_zones``
    Polygons with a zone type: ``high_polluting_fuel`` (高污染燃料禁燃区) or ``straw_burning`` (秸秆禁烧区).
    Publishing a version stores, per zone type, every grid cell inside or touching a zone in ``layer_cell_flags``
    (``border`` where a zone boundary crosses the cell) and re-checks the coal sale points against the new zones.
``coal_sale_points``
    Points; every loose-coal (散煤) sale point inside a high-polluting-fuel zone gets a ``coal_check`` task.
    Points no longer in a zone (or no longer listed) have their open checks withdrawn.

Henan bans open straw burning province-wide (《河南省大气污染防治条例》 art. 54): while no straw zone is published
the whole region is the straw zone (:func:`zone_cells_table` marks it ``default``). :func:`zone_test_for` gives the
exact point-in-zone test of the *published* zones for fire triage, and :func:`generate_coal_checks` the recurring
coal check of every high-polluting-fuel zone cell (回头看), monthly by default.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from gridwatch import layerstore, workflow
from gridwatch.errors import NotFound, ValidationError
from gridwatch.grid import latlng_to_cells
from gridwatch.i18n import N_, task_title_columns
from gridwatch.layerfiles import read_layer_file
from gridwatch.policy import DispatchPolicy
from gridwatch.storage import Store
from gridwatch.tasks import ACTIVE_STATES, Kind, Priority, naive_utc
from gridwatch.workflow import open_tasks
from layers.base import LayerRead, rejected_frame
from layers.no_burn_zones import (ZONE_TYPES, ZoneIndex, coal_points_from_features, zone_cells,
                                  zones_from_features)

__all__ = ["ZONES", "COAL_POINTS", "read_zones", "read_coal_points", "publish_zones", "publish_coal_points",
           "zone_test_for", "zone_cells_table", "generate_coal_checks", "coal_point_keys", "COAL_ZONE_TYPE",
           "DEFAULT_COAL_CADENCE_DAYS"]

ZONES = "no_burn_zones"
COAL_POINTS = "coal_sale_points"
#: the zone type in which loose coal may not be sold, and whose cells get the recurring coal check
COAL_ZONE_TYPE = "high_polluting_fuel"
DEFAULT_COAL_CADENCE_DAYS = 30

_LABELS = (N_("No-burn zones"), N_("Coal sale points"), N_("high_polluting_fuel"), N_("straw_burning"),
           N_("border_cells"), N_("in_zone"), N_("loose_coal"), N_("points"), N_("zones"), N_("cadence_days"))




def _resolution(store: Store) -> int:
    return int(store.get_meta("resolution", "8") or 8)


def _grid_cells(store: Store) -> np.ndarray:
    return np.sort(store.query_df("SELECT cell FROM cells").cell.to_numpy(dtype=np.int64).view(np.uint64))


def replace_cell_flags(store: Store, kind: str, version: int, flags: pd.DataFrame, *,
                       flag_column: str = "flag") -> tuple[int, int]:
    """Replace the cell flags of one layer kind by ``flags`` (``cell``, ``border`` and ``flag_column``), all of
    version ``version``, in the caller's transaction; returns the cells added and removed."""
    before = store.query_df("SELECT DISTINCT cell FROM layer_cell_flags WHERE kind = ?", [kind]).cell
    after = pd.Series(flags.cell.unique())
    store.execute("DELETE FROM layer_cell_flags WHERE kind = ?", [kind])
    if len(flags):
        store.insert_arrow("layer_cell_flags", pa.table({
            "kind": pa.array([kind] * len(flags), type=pa.string()),
            "flag": pa.array(flags[flag_column].astype(str).tolist(), type=pa.string()),
            "cell": pa.array(flags.cell.to_numpy(dtype=np.int64)),
            "border": pa.array(flags.border.to_numpy(dtype=bool)),
            "version": pa.array(np.full(len(flags), int(version), dtype=np.int32)),
        }))
    return int((~after.isin(before)).sum()), int((~before.isin(after)).sum())


def _in_sorted(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    if not len(sorted_values):
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[pos] == values


def _with_file_attrs(read: LayerRead, crs: str, repaired: list[int], warnings: list[str],
                     rejected: pd.DataFrame, total: int) -> LayerRead:
    merged = pd.concat([rejected, read.rejected], ignore_index=True) if len(rejected) else read.rejected
    out = LayerRead(source=read.source, frame=read.frame,
                    rejected=merged.sort_values("line", kind="stable", ignore_index=True), read=total,
                    warnings=[*warnings, *read.warnings])
    out.frame.attrs["crs"] = crs
    out.frame.attrs["repaired"] = len(repaired)
    out.frame.attrs["repaired_features"] = repaired
    return out


# -- readers -----------------------------------------------------------------------------------------------------

def read_zones(source: Path, *, name: str | None = None, crs: str | None = None, store: Store | None = None,
               layer: str | None = None, zone_type: str | None = None, type_field: str | None = None,
               name_field: str | None = None, max_area_change: float = 0.01,
               encoding: str | None = None) -> LayerRead:
    """Read a no-burn zone file (any format :func:`gridwatch.layerfiles.read_layer_file` reads).

    Parameters
    ----------
    source : Path
        The file.
    name : str, optional
        The file name to report.
    crs : str, optional
        The CRS the user declares (``gcj02`` for map-app coordinates).
    store : Store, optional
        Unused (zones may reach beyond the region; only cells of the region are flagged).
    layer : str, optional
        The layer of a multi-layer file.
    zone_type : str, optional
        One zone type for all features; else ``type_field`` (or a recognised column) per feature.
    type_field, name_field : str, optional
        Columns holding the zone type and the name.
    max_area_change : float
        Largest relative area change a polygon repair may make.
    encoding : str, optional
        Shapefile attribute encoding (detected by default).
    """
    got = read_layer_file(source, crs=crs, layer=layer, geometry="polygon", encoding=encoding,
                          max_area_change=max_area_change, name=name)
    read = zones_from_features(got.geoms, got.attributes, source=got.source, feature_no=got.feature_no,
                               zone_type=zone_type, type_field=type_field, name_field=name_field)
    if not len(read.frame):
        raise ValidationError("{file}: no feature has a recognised zone type ({types}).", file=got.source,
                              types=", ".join(ZONE_TYPES))
    return _with_file_attrs(read, got.crs, got.repaired, got.warnings, got.rejected, got.read)


def read_coal_points(source: Path, *, name: str | None = None, crs: str | None = None, store: Store | None = None,
                     layer: str | None = None, name_field: str | None = None, loose_field: str | None = None,
                     x_field: str | None = None, y_field: str | None = None,
                     encoding: str | None = None) -> LayerRead:
    """Read a coal sale point file (points: GeoJSON, Shapefile, GeoPackage, KML/KMZ, or CSV with coordinates).

    With a store, points outside the region's grid are rejected (``outside_region``).
    """
    got = read_layer_file(source, crs=crs, layer=layer, geometry="point", x_field=x_field, y_field=y_field,
                          encoding=encoding, name=name)
    read = coal_points_from_features(got.geoms, got.attributes, source=got.source, feature_no=got.feature_no,
                                     name_field=name_field, loose_field=loose_field)
    rejected = got.rejected
    if store is not None and len(read.frame):
        xy = shapely.get_coordinates(read.frame.geometry.to_numpy(dtype=object))
        cells = latlng_to_cells(xy[:, 1], xy[:, 0], _resolution(store))
        outside = ~_in_sorted(_grid_cells(store), cells)
        if outside.any():
            rows = np.flatnonzero(outside)
            extra = rejected_frame(read.frame.feature_no.to_numpy()[rows], ["outside_region"] * len(rows),
                                   ["The point lies outside the region's grid."] * len(rows),
                                   [f"{read.frame.name.iloc[i]} | {xy[i, 0]:.6f}, {xy[i, 1]:.6f}" for i in rows])
            rejected = pd.concat([rejected, extra], ignore_index=True)
            read = LayerRead(source=read.source, frame=read.frame[~outside].reset_index(drop=True),
                             rejected=read.rejected, read=read.read, warnings=read.warnings)
    if not len(read.frame):
        raise ValidationError("{file}: none of its points lies in the region.", file=got.source)
    return _with_file_attrs(read, got.crs, got.repaired, got.warnings, rejected, got.read)


# -- publishing --------------------------------------------------------------------------------------------------

_index_cache: dict[tuple[int, int, str], Any] = {}
_index_lock = threading.Lock()


def _published_frame(store: Store, kind: str) -> tuple[int | None, pd.DataFrame | None]:
    version = layerstore.published_version(store, kind)
    if version is None:
        return None, None
    return version, layerstore.frame_of(store, kind, version)


def _flags_for(frame: pd.DataFrame, resolution: int, grid: np.ndarray) -> pd.DataFrame:
    """(flag, cell, border) of the region's cells inside or touching the zones of ``frame``, per zone type."""
    parts = []
    for zone_type in ZONE_TYPES:
        geoms = frame.geometry.to_numpy(dtype=object)[(frame.zone_type == zone_type).to_numpy()]
        if not len(geoms):
            continue
        pairs = zone_cells(geoms, resolution)
        per_cell = pairs.groupby("cell", sort=True).border.all()  # interior of any zone wins
        cells = per_cell.index.to_numpy(dtype=np.uint64)
        keep = _in_sorted(grid, cells)
        parts.append(pd.DataFrame({"flag": zone_type, "cell": cells[keep].view(np.int64),
                                   "border": per_cell.to_numpy(dtype=bool)[keep]}))
    if not parts:
        return pd.DataFrame({"flag": pd.Series([], dtype="str"), "cell": np.array([], dtype=np.int64),
                             "border": np.array([], dtype=bool)})
    return pd.concat(parts, ignore_index=True)


def publish_zones(store: Store, version: int, frame: pd.DataFrame, actor: str, *,
                  dispatch: DispatchPolicy) -> dict[str, Any]:
    """Publish no-burn zones: replace the zone cell flags and re-check the coal sale points (in a transaction).

    ``dispatch`` gives the service-level hours of the coal checks opened.

    Returns
    -------
    dict
        ``cells_added`` / ``cells_removed`` (cells entering / leaving any zone), ``tasks_opened`` /
        ``tasks_closed`` (coal checks), ``zones`` per type, ``cells`` per type and ``border_cells``.
    """
    resolution = _resolution(store)
    flags = _flags_for(frame, resolution, _grid_cells(store))
    cells_added, cells_removed = replace_cell_flags(store, ZONES, version, flags)
    _forget_indexes(store)
    zone_index = _zone_index(frame[(frame.zone_type == COAL_ZONE_TYPE).to_numpy()], resolution)
    _, points = _published_frame(store, COAL_POINTS)
    opened, closed = _sync_coal_tasks(store, points, zone_index, actor=actor, dispatch=dispatch)
    coal_cells = flags.cell[(flags.flag == COAL_ZONE_TYPE).to_numpy()]
    recurring = store.query_df(
        "SELECT id, cell FROM tasks WHERE kind = ? AND source_kind = 'cadence' AND state IN ("
        + ", ".join("?" * len(ACTIVE_STATES)) + ")", [Kind.COAL_CHECK.value, *[s.value for s in ACTIVE_STATES]])
    closed += workflow.withdraw_tasks(
        store, recurring.id[~recurring.cell.isin(coal_cells)].to_numpy(dtype=np.int64),
        note="The cell is no longer in a high-polluting-fuel no-burn zone.", actor=layerstore.PUBLISH_ACTOR)
    counts = frame.zone_type.value_counts()
    return {
        "cells_added": cells_added,
        "cells_removed": cells_removed,
        "tasks_opened": opened,
        "tasks_closed": closed,
        "zones": {t: int(counts.get(t, 0)) for t in ZONE_TYPES},
        "cells": {t: int((flags.flag == t).sum()) for t in ZONE_TYPES},
        "border_cells": int(flags.border.sum()),
    }


def publish_coal_points(store: Store, version: int, frame: pd.DataFrame, actor: str, *,
                        dispatch: DispatchPolicy) -> dict[str, Any]:
    """Publish coal sale points: open a coal check for each loose-coal point inside a high-polluting-fuel zone,
    withdraw the open checks of points no longer listed or no longer in a zone (``dispatch``: the checks' hours)."""
    resolution = _resolution(store)
    _, zones = _published_frame(store, ZONES)
    zone_index = None
    if zones is not None:
        zone_index = _zone_index(zones[(zones.zone_type == COAL_ZONE_TYPE).to_numpy()], resolution)
    opened, closed = _sync_coal_tasks(store, frame, zone_index, actor=actor, dispatch=dispatch)
    inside = _points_in_zone(frame, zone_index, resolution)
    return {"cells_added": 0, "cells_removed": 0, "tasks_opened": opened, "tasks_closed": closed,
            "points": int(len(frame)), "loose_coal": int(frame.loose_coal.sum()),
            "in_zone": int((inside & frame.loose_coal.to_numpy(dtype=bool)).sum())}


def _zone_index(frame: pd.DataFrame, resolution: int) -> ZoneIndex | None:
    if frame is None or not len(frame):
        return None
    return ZoneIndex.build(frame.geometry.to_numpy(dtype=object), resolution)


def _points_in_zone(frame: pd.DataFrame | None, zone_index: ZoneIndex | None, resolution: int) -> np.ndarray:
    if frame is None or not len(frame) or zone_index is None:
        return np.zeros(0 if frame is None else len(frame), dtype=bool)
    xy = shapely.get_coordinates(frame.geometry.to_numpy(dtype=object))
    return zone_index.contains(xy[:, 1], xy[:, 0])


def coal_point_keys(frame: pd.DataFrame) -> np.ndarray:
    """A stable key per sale point (name and position to 1e-6°), so the same point keeps its task across versions."""
    xy = shapely.get_coordinates(frame.geometry.to_numpy(dtype=object))
    text = (frame.name.astype(str) + "|" + pd.Series(np.round(xy[:, 0], 6)).map("{:.6f}".format) + ","
            + pd.Series(np.round(xy[:, 1], 6)).map("{:.6f}".format))
    return np.asarray([hashlib.sha1(t.encode("utf-8")).hexdigest()[:16] for t in text], dtype=object)


def _sync_coal_tasks(store: Store, points: pd.DataFrame | None, zone_index: ZoneIndex | None, *, actor: str,
                     dispatch: DispatchPolicy, now: dt.datetime | None = None) -> tuple[int, int]:
    """Open coal checks for loose-coal points in a zone that have none, withdraw active ones no longer due."""
    now = naive_utc(now)
    resolution = _resolution(store)
    existing = store.query_df(
        "SELECT id, source_key, state FROM tasks WHERE kind = ? AND source_kind = 'coal_sale_point'",
        [Kind.COAL_CHECK.value])
    base = existing.source_key.str.split("#").str[0] if len(existing) else pd.Series([], dtype="str")
    wanted = pd.DataFrame({"key": np.array([], dtype=object)})
    if points is not None and len(points):
        due_here = points.loose_coal.to_numpy(dtype=bool) & _points_in_zone(points, zone_index, resolution)
        sel = points[due_here].reset_index(drop=True)
        if len(sel):
            xy = shapely.get_coordinates(sel.geometry.to_numpy(dtype=object))
            wanted = pd.DataFrame({"key": coal_point_keys(sel), "name": sel.name.astype(str).to_numpy(),
                                   "lat": xy[:, 1], "lng": xy[:, 0]}).drop_duplicates("key", ignore_index=True)
    active = existing.state.isin([s.value for s in ACTIVE_STATES]) if len(existing) else pd.Series([], dtype=bool)
    moot = existing[active & ~base.isin(wanted.key)] if len(existing) else existing
    closed = workflow.withdraw_tasks(
        store, moot.id.to_numpy(dtype=np.int64),
        note="The coal sale point is no longer listed in a high-polluting-fuel no-burn zone.",
        actor=layerstore.PUBLISH_ACTOR, now=now)
    live = base[existing.state != "withdrawn"] if len(existing) else base
    fresh = wanted[~wanted.key.isin(live)].reset_index(drop=True)
    if not len(fresh):
        return 0, closed
    generation = base.value_counts()
    suffix = fresh.key.map(generation).fillna(0).astype(int)
    keys = np.where(suffix > 0, fresh.key + "#" + (suffix + 1).astype(str), fresh.key)
    cells = latlng_to_cells(fresh.lat.to_numpy(), fresh.lng.to_numpy(), resolution).view(np.int64)
    hours = dispatch.sla_by_kind[Kind.COAL_CHECK]
    open_tasks(store, kind=Kind.COAL_CHECK, cells=cells, source_kind="coal_sale_point",
               source_keys=np.asarray(keys, dtype=object), priority=np.full(len(fresh), Priority.NO_BURN_ZONE),
               due=np.full(len(fresh), np.datetime64(now + dt.timedelta(hours=hours), "s")),
               titles=task_title_columns("coal_sale_point", {"name": fresh.name}), now=now, actor=actor,
               detail={"by": layerstore.PUBLISH_ACTOR, "reason": "loose_coal_in_zone"})
    return int(len(fresh)), closed


layerstore.register(layerstore.LayerKind(ZONES, "polygon", read_zones, publish_zones, label="No-burn zones"))
layerstore.register(layerstore.LayerKind(COAL_POINTS, "point", read_coal_points, publish_coal_points,
                                         label="Coal sale points"))


# -- queries, the zone test, the recurring coal check -------------------------------------------------------------

def _forget_indexes(store: Store) -> None:
    with _index_lock:
        for key in [k for k in _index_cache if k[0] == id(store)]:
            _index_cache.pop(key, None)


def zone_test_for(store: Store) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
    """The exact point-in-zone test of the published no-burn zones (both types), or None when none are published.

    The callable matches the ``zone_test`` hook of :func:`gridwatch.fires.triage`:
    ``zone_test(lat, lng, cells) -> bool ndarray`` (cells at the grid's resolution, uint64 or int64). It is built
    once per published version and process.
    """
    version = layerstore.published_version(store, ZONES)
    if version is None:
        return None
    published_at = str(store.scalar("SELECT published_at FROM layer_versions WHERE kind = ? AND version = ?",
                                    [ZONES, version]))
    key = (id(store), version, published_at)
    with _index_lock:
        index = _index_cache.get(key)
    if index is None:
        frame = layerstore.frame_of(store, ZONES, version)
        frame = frame[frame.zone_type.isin(ZONE_TYPES).to_numpy()]
        index = _zone_index(frame, _resolution(store))
        with _index_lock:
            _index_cache[key] = index
    if index is None:
        return None

    def zone_test(lat: np.ndarray, lng: np.ndarray, cells: np.ndarray) -> np.ndarray:
        return index.contains(lat, lng, cells)

    return zone_test


def zone_cells_table(store: Store, *, zone_type: str | None = None) -> pd.DataFrame:
    """Cells of the published zones: ``cell`` (int64), ``zone_type``, ``border``, ``default``.

    Without a published straw zone the whole region is the straw-burning ban zone (``default`` True, no border).
    """
    if zone_type is not None and zone_type not in ZONE_TYPES:
        raise ValidationError("Unknown zone type {zone_type!r}; use one of {types}.", zone_type=zone_type,
                              types=", ".join(ZONE_TYPES))
    flags = store.query_df("SELECT cell, flag AS zone_type, border FROM layer_cell_flags WHERE kind = ?"
                           " ORDER BY flag, cell", [ZONES])
    flags["default"] = False
    if not (flags.zone_type == "straw_burning").any():
        region = store.query_df("SELECT cell FROM cells ORDER BY cell")
        flags = pd.concat([flags, pd.DataFrame({"cell": region.cell.to_numpy(dtype=np.int64),
                                                "zone_type": "straw_burning", "border": False, "default": True})],
                          ignore_index=True)
    if zone_type is not None:
        flags = flags[flags.zone_type == zone_type]
    return flags.reset_index(drop=True)


def generate_coal_checks(store: Store, *, now: dt.datetime | None = None, cadence_days: int | None = None,
                         actor: str = "coal-checks") -> dict[str, int]:
    """Open the recurring coal check (回头看) due now for every cell of a high-polluting-fuel zone; idempotent.

    One ``coal_check`` per zone cell and cadence window, due times spread over the window, cells checked longest ago
    first. The default cadence (``coal_check_cadence_days`` = 30, "monthly") is the calendar month in Beijing time;
    another number of days gives windows of that many days.

    Returns
    -------
    dict
        ``created``, ``cells`` (zone cells), ``cadence_days``.
    """
    now = naive_utc(now)
    cadence = DEFAULT_COAL_CADENCE_DAYS if cadence_days is None else cadence_days
    try:
        cadence = int(cadence)
    except (TypeError, ValueError):
        cadence = 0
    if cadence < 1:
        raise ValidationError("The coal check cadence must be a whole number of days, at least 1 (got {value}).",
                              value=cadence_days)
    if cadence == DEFAULT_COAL_CADENCE_DAYS:  # "monthly": the calendar month in Beijing time, not 30-day windows
        from gridwatch.periods import period_at  # noqa: PLC0415 - periods imports policy, which imports tasks

        month = period_at("month", now)
        window_key = f"month:{month.start.isoformat()[:7]}"
        window_hours = (month.utc_bounds()[1] - now).total_seconds() / 3600
    else:
        window_key = f"{cadence}d:{int((now - dt.datetime(2024, 1, 1)).days // cadence)}"
        window_hours = cadence * 24 + 24.0  # as before: the first due a day after now, the last a window later
    with store.transaction():
        cells = store.query_df(
            "SELECT f.cell, max(e.happened_at) AS last_visit FROM"
            " (SELECT DISTINCT cell FROM layer_cell_flags WHERE kind = ? AND flag = ?) f"
            " LEFT JOIN tasks t ON t.cell = f.cell AND t.kind = ? LEFT JOIN task_events e ON e.task_id = t.id"
            " AND e.to_state = 'reported' GROUP BY f.cell", [ZONES, COAL_ZONE_TYPE, Kind.COAL_CHECK.value])
        if cells.empty:
            return {"created": 0, "cells": 0, "cadence_days": cadence}
        key = cells.cell.astype(str) + f":{window_key}"
        existing = store.query_df("SELECT source_key FROM tasks WHERE kind = ? AND source_kind = 'cadence'",
                                  [Kind.COAL_CHECK.value])
        fresh = cells[~key.isin(existing.source_key)].copy()
        fresh["source_key"] = key[fresh.index]
        if fresh.empty:
            return {"created": 0, "cells": int(len(cells)), "cadence_days": cadence}
        order = fresh.assign(never=fresh.last_visit.notna()).sort_values(
            ["never", "last_visit"], na_position="first").reset_index(drop=True)
        # due from a day after now (or the window's last hour, if sooner) up to the window's end
        first_due = min(24.0, max(window_hours - 1, 0.0))
        spread = pd.to_timedelta(np.linspace(first_due, max(window_hours, first_due), len(order)), unit="h")
        due = pd.Timestamp(now) + spread
        open_tasks(store, kind=Kind.COAL_CHECK, cells=order.cell.to_numpy(dtype=np.int64), source_kind="cadence",
                   source_keys=order.source_key.to_numpy(dtype=object),
                   priority=np.full(len(order), Priority.ROUTINE), due=due.to_numpy(),
                   titles=task_title_columns("coal_recheck", n=len(order)), now=now, actor=actor,
                   detail={"by": "coal_checks", "cadence_days": cadence})
    return {"created": int(len(order)), "cells": int(len(cells)), "cadence_days": cadence}


def zone_version_frame(store: Store, version: int | None = None) -> pd.DataFrame:
    """The zones of a version (the published one by default)."""
    version = version if version is not None else layerstore.published_version(store, ZONES)
    if version is None:
        raise NotFound("No no-burn zones are published yet.")
    return layerstore.frame_of(store, ZONES, version)
