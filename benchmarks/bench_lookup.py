"""Point lookups: owners at every level for a million points, against bare point-to-cell conversion."""

from __future__ import annotations

import dataclasses

import numpy as np

from benchmarks import Result, Target, benchmark
from benchmarks.common import measure, province_grid, random_points
from gridwatch import services

N_POINTS = 1_000_000


@benchmark
def responsible_1m() -> Result:
    """``services.responsible_batch`` on 1 M seeded random points in Henan's bbox (province grid, res 8)."""
    import polars as pl
    import polars_h3 as plh3
    from h3ronpy.vector import coordinates_to_cells

    grid = province_grid(8)  # built once, outside the timing
    lat, lng = random_points(N_POINTS)
    res = grid.resolution

    out = services.responsible_batch(grid, lat, lng)
    inside = float(np.mean(out["in_region"]))
    ours = measure("responsible_1m", lambda: services.responsible_batch(grid, lat, lng), items=N_POINTS)
    ours = dataclasses.replace(ours, value=None)

    df = pl.DataFrame({"lat": lat, "lng": lng})
    candidates = [
        measure("polars_h3_latlng_to_cell_1m",
                lambda: df.select(plh3.latlng_to_cell("lat", "lng", res)), items=N_POINTS),
        measure("h3ronpy_coordinates_to_cells_1m",
                lambda: coordinates_to_cells(lat, lng, res), items=N_POINTS),
    ]
    fastest = min(candidates, key=lambda m: m.seconds)
    base = dataclasses.replace(fastest, name="fastest_latlng_to_cell_1m", value=None)
    return Result(ours, base, Target(min_throughput=2_000_000, max_ratio=1.5), unit="points/s",
                  details={"points": N_POINTS, "share_in_region": round(inside, 4),
                           "levels": sorted(grid.owner), "fastest": fastest.name,
                           "candidates": {m.name: {"seconds": m.seconds, "cpu_seconds": m.cpu_seconds,
                                                   "points_per_s": N_POINTS / m.seconds} for m in candidates}})
