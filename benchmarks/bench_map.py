"""Map payloads: bytes sent to the browser for the compact cell layer against a plain folium GeoJSON layer."""

from __future__ import annotations

import gzip
import time

import folium
import h3
import numpy as np

from benchmarks import Measurement, Result, Target, benchmark
from benchmarks.common import SEED, YICHUAN, geom_of, province_grid, shipped_units
from gridwatch import maps
from gridwatch.grid import build_grid

ASSETS = "/app/static/vendor"
N_FIRES = 500
#: a tablet's map frame, pixels
VIEW_PX = (1024, 768)


def _render(m: folium.Map) -> bytes:
    return m.get_root().render().encode()


def _ours(cells: np.ndarray, status: np.ndarray, fires: tuple[np.ndarray, np.ndarray],
          bounds: tuple[float, float, float, float], view: maps.MapView | None = None) -> bytes:
    """What the app sends for one view: the map page and the layers of that view."""
    m = maps.base_map(bounds=bounds, assets=ASSETS)
    group = folium.FeatureGroup(name="gridwatch").add_to(m)
    data = maps.cell_layer_data(cells, status, view=view)
    maps.CellLayer(data, labels=list(maps.STATUSES), colours=list(maps.STATUS_COLOURS.values())).add_to(group)
    maps.PointLayer(maps.point_layer_data(*fires, view=view), colour="#d62728", label="fire").add_to(group)
    return _render(m)


def _geojson(cell_ids: list[str], status: np.ndarray, fires: tuple[np.ndarray, np.ndarray],
             bounds: tuple[float, float, float, float]) -> bytes:
    """The same content as a plain folium GeoJSON layer at full precision (cells as polygons, fires as points)."""
    features = []
    for cell, code in zip(cell_ids, status):
        ring = [[lng, lat] for lat, lng in h3.cell_to_boundary(cell)]
        features.append({"type": "Feature", "properties": {"cell": cell, "status": maps.STATUSES[code]},
                         "geometry": {"type": "Polygon", "coordinates": [ring + ring[:1]]}})
    for lat, lng in zip(*fires):
        features.append({"type": "Feature", "properties": {"kind": "fire"},
                         "geometry": {"type": "Point", "coordinates": [float(lng), float(lat)]}})
    south, west, north, east = bounds
    m = folium.Map(location=[(south + north) / 2, (west + east) / 2], tiles=None)
    folium.GeoJson({"type": "FeatureCollection", "features": features}).add_to(m)
    return _render(m)


def _size(name: str, make, repeats: int = 3) -> Measurement:
    samples, payload = [], b""
    for _ in range(repeats):
        t0 = time.perf_counter()
        payload = make()
        samples.append(time.perf_counter() - t0)
    return Measurement(name=name, seconds=float(np.median(samples)), repeats=repeats, samples=tuple(samples),
                       size=len(payload), value=payload)


def _county():
    grid = build_grid(shipped_units(), YICHUAN, 8)
    cells = np.asarray(grid.cells, dtype=np.uint64)
    rng = np.random.default_rng(SEED)
    status = rng.choice(len(maps.STATUSES), size=len(cells), p=[0.55, 0.3, 0.1, 0.05])
    west, south, east, north = geom_of(YICHUAN).bounds
    lat = rng.uniform(south, north, N_FIRES)
    lng = rng.uniform(west, east, N_FIRES)
    return cells, status, (lat, lng), (south, west, north, east)


@benchmark
def map_county_bytes() -> Result:
    """伊川县 (every res-8 cell with a status, 500 fire points): the page's map vs a plain folium GeoJSON."""
    cells, status, fires, bounds = _county()
    ids = [h3.int_to_str(int(c)) for c in cells]
    ours = _size("compact_cell_layer", lambda: _ours(cells, status, fires, bounds))
    base = _size("folium_geojson_full_precision", lambda: _geojson(ids, status, fires, bounds))
    return Result(ours, base, Target(max_ratio=0.10), unit="bytes", details={
        "cells": len(cells), "fire_points": N_FIRES,
        "ours_gzip_bytes": len(gzip.compress(ours.value)), "geojson_gzip_bytes": len(gzip.compress(base.value)),
        "ours_bytes_per_cell": round(ours.size / len(cells), 1),
        "geojson_bytes_per_cell": round(base.size / len(cells), 1)})


def _view_at(lat: float, lng: float, zoom: int) -> maps.MapView:
    """The bounds a ``VIEW_PX`` map shows around (lat, lng) at ``zoom`` (Web Mercator)."""
    w, h = VIEW_PX
    deg_per_px = 360.0 / (256 * 2 ** zoom)
    half_w, half_h = w / 2 * deg_per_px, h / 2 * deg_per_px * np.cos(np.radians(lat))
    return maps.MapView(lat - half_h, lng - half_w, lat + half_h, lng + half_w, zoom)


@benchmark
def map_worst_view_gz() -> Result:
    """The whole province at res 8 (≈278 k cells, 500 fires): the largest gzipped view over zooms 5–18."""
    grid = province_grid(8)
    cells = np.asarray(grid.cells, dtype=np.uint64)
    rng = np.random.default_rng(SEED)
    status = rng.choice(len(maps.STATUSES), size=len(cells), p=[0.55, 0.3, 0.1, 0.05])
    west, south, east, north = geom_of("410000").bounds
    fires = (rng.uniform(south, north, N_FIRES), rng.uniform(west, east, N_FIRES))
    bounds = (south, west, north, east)
    centre = ((south + north) / 2, (west + east) / 2)
    sizes = {}

    def worst() -> bytes:
        biggest = b""
        for zoom in range(5, 19):
            payload = gzip.compress(_ours(cells, status, fires, bounds, _view_at(*centre, zoom)))
            sizes[zoom] = len(payload)
            biggest = max(biggest, payload, key=len)
        return biggest

    ours = _size("largest_view_gzip", worst, repeats=1)
    # baseline: the same 伊川县-sized neighbourhood as a plain GeoJSON, gzipped, for scale
    county, c_status, c_fires, c_bounds = _county()
    ids = [h3.int_to_str(int(c)) for c in county]
    base = _size("county_geojson_gzip", lambda: gzip.compress(_geojson(ids, c_status, c_fires, c_bounds)),
                 repeats=1)
    return Result(ours, base, Target(max_size=1_000_000, note="ratio informational"), unit="bytes",
                  details={"province_cells": len(cells), "gzip_bytes_by_zoom": sizes})
