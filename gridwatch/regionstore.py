"""The region's rows in the store: its settings, units, grid of cells and the stored grid as a :class:`Grid`.

Services speak of the region through these functions and leave the SQL here, as layer versions are kept by
:mod:`gridwatch.layerstore` and fire detections by :mod:`gridwatch.firestore`.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from gridwatch.errors import NotFound
from gridwatch.grid import OWNER_LEVELS, Grid, Units, cells_to_latlng
from gridwatch.storage import Store

__all__ = ["region_and_resolution", "units", "grid", "save_grid", "bounds", "geometry", "is_demo", "cells",
           "unit_name", "unit_level"]

_grid_cache: dict[int, tuple[str, Grid]] = {}
_grid_lock = threading.Lock()


def region_and_resolution(store: Store) -> tuple[str, int]:
    """The region's unit code and the grid's H3 resolution.

    Raises
    ------
    NotFound
        The database has no region yet.
    """
    region = store.get_meta("region")
    if region is None:
        raise NotFound("The database has no region yet; run `python -m gridwatch init --region CODE` first.")
    return region, int(store.get_meta("resolution", "8") or 8)


def units(store: Store, *, with_geoms: bool = True) -> Units:
    """Every stored administrative unit (with boundaries unless ``with_geoms`` is false)."""
    geom = f", {store.geom_to_wkb_sql('geom')} AS wkb" if with_geoms else ""
    rows = store.query(f"SELECT code, name, level, parent_code{geom} FROM units ORDER BY code")
    for r in rows:
        wkb = r.pop("wkb", None)
        r["geom"] = shapely.from_wkb(bytes(wkb)) if wkb is not None else None
    return Units.from_records(rows)


def unit_name(store: Store, code: str) -> str | None:
    """A unit's name, or None when there is no such unit."""
    return store.scalar("SELECT name FROM units WHERE code = ?", [code])


def unit_level(store: Store, code: str) -> str | None:
    """A unit's level, or None when there is no such unit."""
    return store.scalar("SELECT level FROM units WHERE code = ?", [code])


def save_grid(store: Store, built: Grid) -> None:
    """Replace the stored cells by a grid's, with their centres and owners (in the caller's transaction)."""
    lat, lng = cells_to_latlng(built.cells)
    columns: dict[str, Any] = {"cell": pa.array(built.cells.view(np.int64)), "lat": lat, "lng": lng}
    for level in OWNER_LEVELS:
        codes = built.owner_codes(level) if level in built.owner else np.full(len(built.cells), "", dtype=object)
        columns[f"{level}_code"] = pa.array(np.where(codes == "", None, codes), type=pa.string())
    store.execute("DELETE FROM cells")
    store.insert_arrow("cells", pa.table(columns))
    store.set_meta("grid_built_at", pd.Timestamp.now(tz="UTC").isoformat())
    forget_grid(store)


def forget_grid(store: Store) -> None:
    """Drop the cached :class:`Grid` of a store (the next :func:`grid` reads it again)."""
    with _grid_lock:
        _grid_cache.pop(id(store), None)


def stored_owners(store: Store) -> pd.DataFrame:
    """Every stored cell with its owner codes, in cell order."""
    return store.query_df(
        "SELECT cell, city_code, county_code, township_code, village_code FROM cells ORDER BY cell")


def grid(store: Store) -> Grid:
    """The stored grid as a :class:`Grid` (cached per store until the grid is built again)."""
    region, resolution = region_and_resolution(store)
    built = store.get_meta("grid_built_at", "")
    with _grid_lock:
        cached = _grid_cache.get(id(store))
        if cached and cached[0] == built:
            return cached[1]
    known = units(store, with_geoms=False)
    table = stored_owners(store)
    owner = {}
    for level in OWNER_LEVELS:
        codes = table[f"{level}_code"].fillna("").to_numpy(dtype=object)
        if (codes != "").any():
            pos = np.minimum(np.searchsorted(known.codes, codes), len(known) - 1)
            owner[level] = np.where(known.codes[pos] == codes, pos, -1)
    out = Grid(region_code=region, resolution=resolution, units=known,
               cells=table.cell.to_numpy(dtype=np.int64).view(np.uint64), owner=owner)
    with _grid_lock:
        _grid_cache[id(store)] = (built, out)
    return out


def geometry(store: Store) -> shapely.Geometry | None:
    """The region's boundary (WGS84), or None before a region is set or when it has none."""
    region = store.get_meta("region")
    if region is None:
        return None
    wkb = store.scalar(f"SELECT {store.geom_to_wkb_sql('geom')} FROM units WHERE code = ?", [region])
    return shapely.from_wkb(bytes(wkb)) if wkb is not None else None


def bounds(store: Store) -> tuple[float, float, float, float]:
    """West, south, east, north of the region's boundary (WGS84)."""
    region, _ = region_and_resolution(store)
    wkb = store.scalar(f"SELECT {store.geom_to_wkb_sql('geom')} FROM units WHERE code = ?", [region])
    return tuple(shapely.from_wkb(bytes(wkb)).bounds)  # type: ignore[return-value]


def is_demo(store: Store) -> bool:
    """Whether the region carries generated demo units or people."""
    return bool(store.scalar("SELECT (SELECT count(*) FROM units WHERE is_demo)"
                             " + (SELECT count(*) FROM people WHERE is_demo) > 0"))


def cells(store: Store, *, unit_code: str | None = None) -> pd.DataFrame:
    """Cells of the region (or of one unit in it) with centres and their village and township (codes, names).

    Raises
    ------
    NotFound
        ``unit_code`` is not the code of a unit that owns cells.
    """
    where, params = "", []
    if unit_code:
        level = unit_level(store, unit_code)
        if level not in OWNER_LEVELS:
            raise NotFound("No administrative unit with code {code}.", code=unit_code)
        where, params = f" WHERE {level}_code = ?", [unit_code]
    return store.query_df(
        "SELECT c.cell, c.lat, c.lng, c.township_code, t.name AS township_name, c.village_code,"
        " v.name AS village_name FROM cells c LEFT JOIN units t ON t.code = c.township_code"
        f" LEFT JOIN units v ON v.code = c.village_code{where} ORDER BY c.cell",
        params,
    )
