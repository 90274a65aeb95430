"""Known static heat sources and farmland as layers; the 疑似固定热源 — 请核实 check and the answers that grow them.

Two layer kinds are registered here:

``static_heat_sources``
    Points or polygons GIS staff maintain: factories, kilns, flares and other places that burn all year, each with
    a name, a kind and who added it. Publishing a version marks every grid cell a source lies in or touches
    (``layer_cell_flags``); detections in those cells are still counted (stored, in every count) but not
    dispatched as straw burning: their outcome is ``static_source``. Open heat-source checks of cells the version
    now covers are withdrawn.
``farmland``
    Polygons. In a key period nothing is suppressed on farmland: a detection there is dispatched even on a known
    static source. Where no farmland layer is published, every cell counts as farmland.

A cell that keeps burning (``persistent_days`` days within ``persistent_window_days``) and is not on the layer gets
one ``heat_source_check`` task for its inspector while none is open (:func:`open_heat_source_checks`). A verified
answer ``static_source_confirmed`` adds the place to the layer as a new, published version, recorded as added by the
reporter and published by the verifier (:func:`apply_check_findings`); ``field_burning`` keeps dispatching, and the
cell is not asked about again within the persistence window.

Cells, not exact shapes, decide "on a static source": a satellite detection's position is good to a pixel (375 m to
1 km), coarser than a factory's outline, so the cell is as precise as the data. Farmland is decided exactly (point
in polygon, :class:`layers.no_burn_zones.ZoneIndex`), as no-burn zones are.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from gridwatch import layerstore, workflow
from gridwatch.grid import cells_to_latlng, latlng_to_cells
from gridwatch.i18n import N_, task_title_columns
from gridwatch.layerfiles import read_layer_file
from gridwatch.policy import DispatchPolicy, Policy
from gridwatch.storage import Store
from gridwatch.tasks import ACTIVE_STATES, Kind, Priority, naive_utc
from layers.base import LayerRead, rejected_frame
from layers.heat_sources import SOURCE_KINDS, farmland_from_features, static_sources_from_features
from gridwatch.zones import replace_cell_flags
from layers.no_burn_zones import ZoneIndex, zone_cells

__all__ = ["STATIC_SOURCES", "FARMLAND", "SOURCE_KINDS", "read_static_sources", "read_farmland",
           "publish_static_sources", "publish_farmland", "source_cells", "static_test_for", "farmland_test_for",
           "open_heat_source_checks", "apply_check_findings", "CHECK_SOURCE_KIND"]

STATIC_SOURCES = "static_heat_sources"
FARMLAND = "farmland"
#: the ``source_kind`` of heat-source checks (their ``source_key`` is the cell, and the day the check opened)
CHECK_SOURCE_KIND = "repeated_heat"
#: the finding that adds a place to the layer
CONFIRMED = "static_source_confirmed"

_LABELS = (N_("Static heat sources"), N_("Farmland"), N_("factory"), N_("kiln"), N_("flare"), N_("other"),
           N_("sources"), N_("checks_opened"), N_("static_source_in_key_period"))

_index_cache: dict[tuple, ZoneIndex | None] = {}
_index_lock = threading.Lock()


def _resolution(store: Store) -> int:
    return int(store.get_meta("resolution", "8") or 8)


def _with_file_attrs(read: LayerRead, crs: str, repaired: list[int], warnings: list[str],
                     rejected: pd.DataFrame, total: int) -> LayerRead:
    merged = pd.concat([rejected, read.rejected], ignore_index=True) if len(rejected) else read.rejected
    out = LayerRead(source=read.source, frame=read.frame,
                    rejected=merged.sort_values("line", kind="stable", ignore_index=True), read=total,
                    warnings=[*warnings, *read.warnings])
    out.frame.attrs["crs"] = crs
    out.frame.attrs["repaired"] = len(repaired)
    return out


# -- readers -----------------------------------------------------------------------------------------------------

def read_static_sources(source: Path, *, name: str | None = None, crs: str | None = None, store: Store | None = None,
                        layer: str | None = None, source_kind: str | None = None, kind_field: str | None = None,
                        name_field: str | None = None, added_by_field: str | None = None, added_by: str = "",
                        x_field: str | None = None, y_field: str | None = None, encoding: str | None = None,
                        max_area_change: float = 0.01) -> LayerRead:
    """Read a static heat source file (points or polygons in any format :func:`read_layer_file` reads).

    ``source_kind`` gives one kind for all features, else ``kind_field`` (or a column named like ``kind``/``类型``)
    per feature; ``added_by`` is recorded for features whose file names nobody (the uploader).
    """
    got = read_layer_file(source, crs=crs, layer=layer, geometry="any", x_field=x_field, y_field=y_field,
                          encoding=encoding, max_area_change=max_area_change, name=name)
    read = static_sources_from_features(got.geoms, got.attributes, source=got.source, feature_no=got.feature_no,
                                        source_kind=source_kind, kind_field=kind_field, name_field=name_field,
                                        added_by_field=added_by_field, added_by=added_by)
    return _with_file_attrs(read, got.crs, got.repaired, got.warnings, got.rejected, got.read)


def read_farmland(source: Path, *, name: str | None = None, crs: str | None = None, store: Store | None = None,
                  layer: str | None = None, name_field: str | None = None, encoding: str | None = None,
                  max_area_change: float = 0.01) -> LayerRead:
    """Read a farmland file (polygons)."""
    got = read_layer_file(source, crs=crs, layer=layer, geometry="polygon", encoding=encoding,
                          max_area_change=max_area_change, name=name)
    read = farmland_from_features(got.geoms, got.attributes, source=got.source, feature_no=got.feature_no,
                                  name_field=name_field)
    return _with_file_attrs(read, got.crs, got.repaired, got.warnings, got.rejected, got.read)


# -- publishing ----------------------------------------------------------------------------------------------------

def _grid_cells(store: Store) -> np.ndarray:
    return np.sort(store.query_df("SELECT cell FROM cells").cell.to_numpy(dtype=np.int64))


def source_cells(frame: pd.DataFrame, resolution: int) -> pd.DataFrame:
    """Each source's cells: ``cell`` (int64), ``source_kind``, ``border`` — a point's cell, every cell a polygon
    lies in or touches (:func:`layers.no_burn_zones.zone_cells`)."""
    geoms = np.asarray(frame.geometry.to_numpy(dtype=object), dtype=object)
    kinds = frame.source_kind.astype(str).to_numpy(dtype=object) if "source_kind" in frame else np.full(
        len(geoms), FARMLAND, dtype=object)
    types = shapely.get_type_id(geoms) if len(geoms) else np.zeros(0, dtype=np.int64)
    parts = [pd.DataFrame({"cell": np.zeros(0, dtype=np.int64), "source_kind": np.zeros(0, dtype=object),
                           "border": np.zeros(0, dtype=bool)})]
    points = np.flatnonzero(np.isin(types, (0, 4)))
    if len(points):
        parts_of = shapely.get_parts(geoms[points], return_index=True)
        xy = shapely.get_coordinates(parts_of[0])
        cells = latlng_to_cells(xy[:, 1], xy[:, 0], resolution).view(np.int64)
        parts.append(pd.DataFrame({"cell": cells, "source_kind": kinds[points][parts_of[1]], "border": False}))
    polygons = np.flatnonzero(np.isin(types, (3, 6)))
    if len(polygons):
        pairs = zone_cells(geoms[polygons], resolution)
        parts.append(pd.DataFrame({"cell": pairs.cell.to_numpy(dtype=np.uint64).view(np.int64),
                                   "source_kind": kinds[polygons][pairs.zone.to_numpy()],
                                   "border": pairs.border.to_numpy(dtype=bool)}))
    out = pd.concat(parts, ignore_index=True)
    # one row per (kind, cell): a cell wholly inside some source of the kind is not a border cell
    return (out.groupby(["source_kind", "cell"], sort=True).border.all().reset_index()
            [["cell", "source_kind", "border"]])


def _replace_flags(store: Store, kind: str, version: int, flags: pd.DataFrame) -> tuple[int, int]:
    """Replace the cell flags of ``kind`` by those on the grid; returns cells added and removed."""
    flags = flags[np.isin(flags.cell.to_numpy(dtype=np.int64), _grid_cells(store))]
    return replace_cell_flags(store, kind, version, flags, flag_column="source_kind")


def publish_static_sources(store: Store, version: int, frame: pd.DataFrame, actor: str, *,
                           dispatch: DispatchPolicy) -> dict[str, Any]:
    """Publish static heat sources: replace their cells, withdraw open heat-source checks of cells now covered."""
    flags = source_cells(frame, _resolution(store))
    added, removed = _replace_flags(store, STATIC_SOURCES, version, flags)
    states = [s.value for s in ACTIVE_STATES]
    moot = store.query_df(
        "SELECT t.id FROM tasks t WHERE t.kind = ? AND t.state IN (" + ", ".join("?" * len(states)) + ")"
        " AND t.cell IN (SELECT cell FROM layer_cell_flags WHERE kind = ?) ORDER BY t.id",
        [Kind.HEAT_SOURCE_CHECK.value, *states, STATIC_SOURCES])
    closed = workflow.withdraw_tasks(store, moot.id.to_numpy(dtype=np.int64),
                                     note="The cell is on the published static heat source layer.",
                                     actor=layerstore.PUBLISH_ACTOR)
    counts = frame.source_kind.value_counts() if len(frame) else pd.Series(dtype=int)
    return {"cells_added": added, "cells_removed": removed, "tasks_opened": 0, "tasks_closed": closed,
            "sources": {k: int(counts.get(k, 0)) for k in SOURCE_KINDS}}


def publish_farmland(store: Store, version: int, frame: pd.DataFrame, actor: str, *,
                     dispatch: DispatchPolicy) -> dict[str, Any]:
    """Publish farmland: replace its cells (``border`` where a field's edge crosses a cell)."""
    flags = source_cells(frame.assign(source_kind=FARMLAND), _resolution(store))
    added, removed = _replace_flags(store, FARMLAND, version, flags)
    with _index_lock:
        for key in [k for k in _index_cache if k[0] == id(store)]:
            _index_cache.pop(key, None)
    return {"cells_added": added, "cells_removed": removed, "tasks_opened": 0, "tasks_closed": 0,
            "fields": int(len(frame))}


layerstore.register(layerstore.LayerKind(STATIC_SOURCES, "point", read_static_sources, publish_static_sources,
                                         label="Static heat sources"))
layerstore.register(layerstore.LayerKind(FARMLAND, "polygon", read_farmland, publish_farmland, label="Farmland"))


# -- the tests fire triage uses ------------------------------------------------------------------------------------

def static_test_for(store: Store) -> Callable[[np.ndarray], np.ndarray] | None:
    """``test(cells) -> bool array``: the cell lies on a published static heat source; None while none is.

    One query of the layer's cells per call (an ingest): a sorted array and a binary search per detection.
    """
    if layerstore.published_version(store, STATIC_SOURCES) is None:
        return None
    cells = np.unique(store.query_df("SELECT cell FROM layer_cell_flags WHERE kind = ?",
                                     [STATIC_SOURCES]).cell.to_numpy(dtype=np.int64))
    if not len(cells):
        return None

    def test(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values).view(np.int64) if np.asarray(values).dtype == np.uint64 else np.asarray(
            values, dtype=np.int64)
        pos = np.minimum(np.searchsorted(cells, values), len(cells) - 1)
        return cells[pos] == values

    return test


def farmland_test_for(store: Store) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
    """The exact point-in-farmland test of the published farmland (built once per version and process); None while
    no farmland layer is published (then every cell counts as farmland)."""
    version = layerstore.published_version(store, FARMLAND)
    if version is None:
        return None
    published_at = str(store.scalar("SELECT published_at FROM layer_versions WHERE kind = ? AND version = ?",
                                    [FARMLAND, version]))
    key = (id(store), version, published_at)
    with _index_lock:
        found = key in _index_cache
        index = _index_cache.get(key)
    if not found:
        frame = layerstore.frame_of(store, FARMLAND, version)
        index = (ZoneIndex.build(frame.geometry.to_numpy(dtype=object), _resolution(store)) if len(frame)
                 else None)
        with _index_lock:
            _index_cache[key] = index

    def test(lat: np.ndarray, lng: np.ndarray, cells: np.ndarray) -> np.ndarray:
        if index is None:  # a published layer with no field: no farmland anywhere
            return np.zeros(len(lat), dtype=bool)
        return index.contains(lat, lng, cells)

    return test


# -- the check and its answers ---------------------------------------------------------------------------------------

def open_heat_source_checks(store: Store, cells: pd.DataFrame, *, policy: DispatchPolicy, now: dt.datetime,
                            actor: str = "dispatch") -> int:
    """Open one ``heat_source_check`` per cell of ``cells`` (``cell``, ``days``) that has none open and none answered
    within the persistence window; returns how many were opened. Call inside the ingest's transaction."""
    if cells is None or not len(cells):
        return 0
    now = naive_utc(now)
    since = now - dt.timedelta(days=int(policy.persistent_window_days))
    states = [s.value for s in ACTIVE_STATES]
    store.execute("CREATE TEMP TABLE IF NOT EXISTS repeated_cells (cell BIGINT)")
    store.execute("DELETE FROM repeated_cells")
    store.insert_arrow("repeated_cells", pa.table({"cell": pa.array(cells.cell.to_numpy(dtype=np.int64))}))
    asked = store.query_df(
        "SELECT DISTINCT t.cell FROM tasks t JOIN repeated_cells r ON r.cell = t.cell WHERE t.kind = ?"
        " AND (t.state IN (" + ", ".join("?" * len(states)) + ") OR (t.state <> 'withdrawn' AND t.created_at >= ?))",
        [Kind.HEAT_SOURCE_CHECK.value, *states, since])
    store.execute("DELETE FROM repeated_cells")
    fresh = cells[~cells.cell.isin(asked.cell)].drop_duplicates("cell").reset_index(drop=True)
    if not len(fresh):
        return 0
    day = policy.local_dates(np.array([np.datetime64(now, "ns")]))[0]
    hours = float(policy.sla_by_kind.get(Kind.HEAT_SOURCE_CHECK, policy.sla_by_kind[Kind.MANUAL]))
    n = len(fresh)
    workflow.open_tasks(
        store, kind=Kind.HEAT_SOURCE_CHECK, cells=fresh.cell.to_numpy(dtype=np.int64), source_kind=CHECK_SOURCE_KIND,
        source_keys=np.asarray([f"{c}@{day}" for c in fresh.cell.to_numpy(dtype=np.int64)], dtype=object),
        priority=np.full(n, Priority.NORMAL), due=np.full(n, np.datetime64(now + dt.timedelta(hours=hours), "s")),
        titles=task_title_columns("heat_source_check", {"days": fresh.days.astype(int).astype(str),
                                                        "window": [str(int(policy.persistent_window_days))] * n}),
        now=now, actor=actor, detail={"by": "dispatch", "rule": "persistent_days", "reason": "repeated_heat"})
    return n


def _place_of(cell: int, report: dict, resolution: int) -> shapely.Point:
    """Where a confirmed source is: the report's GPS fix when it lies in the task's cell, else the cell's centre."""
    gps = report.get("gps") or {}
    if gps.get("lat") is not None and gps.get("lng") is not None:
        at = latlng_to_cells(np.array([float(gps["lat"])]), np.array([float(gps["lng"])]), resolution)
        if int(at.view(np.int64)[0]) == int(cell):
            return shapely.Point(float(gps["lng"]), float(gps["lat"]))
    lat, lng = cells_to_latlng(np.array([cell], dtype=np.int64).view(np.uint64))
    return shapely.Point(float(lng[0]), float(lat[0]))


def apply_check_findings(store: Store, *, policy: Policy, now: dt.datetime | None = None) -> dict[str, Any] | None:
    """Add the places of verified ``static_source_confirmed`` checks to the static heat source layer.

    The published version's features plus one point per check (kind ``other``, named by the report's note, added by
    the reporter) become a new version, uploaded by the reporter(s) and published by the verifier, in the caller's
    transaction. Each check is applied once (``static_source_additions``). Returns the publication, or None when
    there was nothing to add.
    """
    now = naive_utc(now)
    done = store.query_df(
        "SELECT t.id, t.cell,"
        " (SELECT e.detail FROM task_events e WHERE e.task_id = t.id AND e.to_state = 'reported'"
        "  ORDER BY e.id DESC LIMIT 1) AS report,"
        " (SELECT e.actor FROM task_events e WHERE e.task_id = t.id AND e.to_state = 'reported'"
        "  ORDER BY e.id DESC LIMIT 1) AS reporter,"
        " (SELECT e.actor FROM task_events e WHERE e.task_id = t.id AND e.to_state = 'verified'"
        "  ORDER BY e.id DESC LIMIT 1) AS verifier"
        " FROM tasks t WHERE t.kind = ? AND t.state IN ('verified', 'closed')"
        " AND NOT EXISTS (SELECT 1 FROM static_source_additions a WHERE a.task_id = t.id) ORDER BY t.id",
        [Kind.HEAT_SOURCE_CHECK.value])
    reports = [json.loads(r or "{}") for r in done.report]
    take = np.array([r.get("finding") == CONFIRMED for r in reports], dtype=bool)
    if not take.any():
        return None
    done = done[take].reset_index(drop=True)
    reports = [r for r, keep in zip(reports, take, strict=True) if keep]
    resolution = _resolution(store)
    places = [_place_of(int(c), r, resolution) for c, r in zip(done.cell, reports, strict=True)]
    names = [(r.get("note") or "").strip()[:200] or f"#{int(i)}" for i, r in zip(done.id, reports, strict=True)]
    added = pd.DataFrame({
        "geometry": np.array(places, dtype=object),
        "name": pd.array(names, dtype="str"),
        "source_kind": pd.array(["other"] * len(done), dtype="str"),
        "added_by": pd.array(done.reporter.fillna("").astype(str).tolist(), dtype="str"),
        "feature_no": np.zeros(len(done), dtype=np.int64),
        "task_id": pd.array(done.id.astype(str).tolist(), dtype="str"),
    })
    current = layerstore.published_version(store, STATIC_SOURCES)
    frame = added
    if current is not None:
        before = layerstore.frame_of(store, STATIC_SOURCES, current)
        if "task_id" not in before.columns:
            before["task_id"] = pd.array([""] * len(before), dtype="str")
        frame = pd.concat([before[list(added.columns)].astype({c: "str" for c in ("name", "source_kind", "added_by",
                                                                                      "task_id")}), added],
                          ignore_index=True)
    reporters = ", ".join(dict.fromkeys(done.reporter.fillna("").astype(str)))
    verifier = str(done.verifier.dropna().iloc[-1]) if done.verifier.notna().any() else layerstore.PUBLISH_ACTOR
    ids = ",".join(str(int(i)) for i in done.id)
    read = LayerRead(source=f"heat_source_check {ids}", frame=frame, rejected=rejected_frame([], [], [], []),
                     read=len(frame))
    digest = layerstore.sha256_of((ids + "|" + frame.drop(columns="geometry").to_json(force_ascii=False)
                                   + "|" + ";".join(shapely.to_wkt(frame.geometry.to_numpy(dtype=object))))
                                  .encode("utf-8"))
    with store.transaction():
        version = layerstore.store_version(store, STATIC_SOURCES, read, file_name=f"heat_source_check {ids}",
                                           sha256=digest, actor=reporters or verifier, crs="EPSG:4326", now=now,
                                           options={"tasks": [int(i) for i in done.id]})
        result = layerstore.publish(store, STATIC_SOURCES, version, actor=verifier, policy=policy, now=now)
        store.insert_arrow("static_source_additions", pa.table({
            "task_id": pa.array(done.id.to_numpy(dtype=np.int64)),
            "cell": pa.array(done.cell.to_numpy(dtype=np.int64)),
            "version": pa.array(np.full(len(done), version, dtype=np.int32)),
            "added_by": pa.array(done.reporter.fillna("").astype(str).tolist(), type=pa.string()),
            "verified_by": pa.array(done.verifier.fillna(verifier).astype(str).tolist(), type=pa.string()),
            "added_at": pa.repeat(pa.scalar(now, type=pa.timestamp("us")), len(done)),
        }))
    return result
