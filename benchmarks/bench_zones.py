"""Exact no-burn-zone flags for a million fire points against 2,000 zone polygons."""

from __future__ import annotations

import dataclasses

import numpy as np
import shapely

from benchmarks import Result, Target, benchmark
from benchmarks.common import HENAN_BBOX, SEED, measure, random_points
from gridwatch.grid import latlng_to_cells
from layers.no_burn_zones import ZoneIndex

N_POINTS = 1_000_000
N_ZONES = 2_000
RESOLUTION = 8


def generated_zones(n: int = N_ZONES, seed: int = SEED) -> np.ndarray:
    """``n`` irregular star-shaped polygons (24 vertices, radius 0.5–5 km) scattered over Henan's bbox."""
    rng = np.random.default_rng(seed)
    lng0, lat0, lng1, lat1 = HENAN_BBOX
    cx, cy = rng.uniform(lng0, lng1, n), rng.uniform(lat0, lat1, n)
    angles = np.linspace(0, 2 * np.pi, 25)[:-1]
    radius_km = rng.uniform(0.5, 5.0, (n, 1)) * rng.uniform(0.6, 1.4, (n, len(angles)))
    dy = radius_km / 111.32 * np.sin(angles)
    dx = radius_km / (111.32 * np.cos(np.radians(cy[:, None]))) * np.cos(angles)
    rings = np.stack([cx[:, None] + dx, cy[:, None] + dy], axis=-1)
    rings = np.concatenate([rings, rings[:, :1]], axis=1)
    return shapely.polygons(rings)


def strtree_contains(tree: shapely.STRtree, zones: np.ndarray, lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
    """The baseline: index candidates (bounding boxes), then the exact vectorised contains."""
    point, zone = tree.query(shapely.points(lng, lat), predicate=None)
    inside = shapely.contains_xy(zones[zone], lng[point], lat[point])
    out = np.zeros(len(lat), dtype=bool)
    out[point[inside]] = True
    return out


@benchmark
def zones_1m() -> Result:
    """``ZoneIndex.contains`` on 1 M seeded random points in Henan's bbox (cells given, as triage has them) against
    STRtree candidates + ``contains_xy``; both must agree on every point."""
    zones = generated_zones()
    shapely.prepare(zones)
    build = measure("zone_index_build", lambda: ZoneIndex.build(zones, RESOLUTION), repeats=1, warmup=False)
    index = build.value
    lat, lng = random_points(N_POINTS)
    # 10 % of the points within 30 m of a zone boundary, where only the exact polygon decides
    rng = np.random.default_rng(SEED + 1)
    edge = shapely.get_coordinates(shapely.segmentize(shapely.boundary(zones), 0.0005))
    near = rng.integers(0, len(edge), N_POINTS // 10)
    lng[: len(near)] = edge[near, 0] + rng.uniform(-3e-4, 3e-4, len(near))
    lat[: len(near)] = edge[near, 1] + rng.uniform(-3e-4, 3e-4, len(near))
    cells = latlng_to_cells(lat, lng, RESOLUTION)

    ours = measure("zone_index_contains_1m", lambda: index.contains(lat, lng, cells), items=N_POINTS)
    tree = shapely.STRtree(zones)
    base = measure("strtree_contains_xy_1m", lambda: strtree_contains(tree, zones, lat, lng), items=N_POINTS)
    with_cells = measure("zone_index_contains_with_cell_lookup_1m", lambda: index.contains(lat, lng),
                         items=N_POINTS, repeats=1)
    disagreements = int((ours.value != base.value).sum())
    inside = int(ours.value.sum())
    return Result(dataclasses.replace(ours, value=None), dataclasses.replace(base, value=None),
                  Target(min_throughput=3_000_000, note="exact: 0 disagreements with the baseline required"),
                  unit="points/s",
                  details={"points": N_POINTS, "zones": N_ZONES, "resolution": RESOLUTION,
                           "points_near_boundaries": int(len(near)), "inside": inside,
                           "disagreements": disagreements, "index_build_seconds": round(build.seconds, 3),
                           "zone_cells": int(len(index.cells)), "interior_cells": int(index.interior.sum()),
                           "with_cell_lookup_points_per_s": round(N_POINTS / with_cells.seconds)})
