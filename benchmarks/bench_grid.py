"""Building grids: ``build_grid`` against one h3-py polygon fill of the same outline.

Set-up (reading the shipped GeoJSON, generating the demo partition) is cached
in :mod:`benchmarks.common` and stays outside the timing. ``build_grid`` is
timed after one warm-up run where that is cheap (res 8); at res 9 the first of
the three runs is the warm-up's stand-in (the median discards a slow first run).
"""

from __future__ import annotations

import dataclasses

import h3

from benchmarks import Measurement, Result, Target, benchmark
from benchmarks.common import PROVINCE, YICHUAN, geom_of, measure, recall, remember, shipped_units, units_with_demo
from gridwatch.grid import build_grid


def _h3py_fill(code: str, resolution: int) -> list[str]:
    """One h3-py 4.x call filling the outline of ``code`` (cells whose centre is inside)."""
    return h3.geo_to_cells(geom_of(code), resolution)


def _grid_details(m: Measurement) -> dict:
    grid = m.value
    return {"cells": len(grid), "levels": sorted(grid.owner), "units_per_level": grid.unit_counts()}


def _province_res8() -> Measurement:
    units = shipped_units()
    return measure("grid_province_res8", lambda: build_grid(units, PROVINCE, 8), repeats=3)


@benchmark
def grid_province_res8() -> Result:
    """The province at res 8, owners at city and county level (157 counties as base)."""
    shipped_units()
    ours = remember(_province_res8())
    # The baseline takes 10-17 s: one run, no warm-up.
    base = measure("h3_polygon_to_cells_province", lambda: _h3py_fill(PROVINCE, 8), repeats=1, warmup=False)
    return Result(ours, base, Target(max_seconds=1, max_ratio=0.06),
                  details=_grid_details(ours) | {"baseline_cells": len(base.value)})


@benchmark
def grid_yichuan_res8() -> Result:
    """伊川县 at res 8 with the demo townships and villages (owners down to village)."""
    units = units_with_demo(YICHUAN)
    ours = measure("grid_yichuan_res8", lambda: build_grid(units, YICHUAN, 8), repeats=5)
    base = measure("h3_polygon_to_cells_yichuan", lambda: _h3py_fill(YICHUAN, 8), repeats=5)
    return Result(ours, base, Target(max_seconds=0.2),
                  details=_grid_details(ours) | {"baseline_cells": len(base.value)})


@benchmark
def grid_province_res9() -> Result:
    """The province at res 9 (≈1.9 M cells); the ratio to res 8 of the same run is information only."""
    units = shipped_units()
    ours = measure("grid_province_res9", lambda: build_grid(units, PROVINCE, 9), repeats=3, warmup=False)
    base = recall("grid_province_res8", _province_res8)
    details = _grid_details(ours)
    ours = dataclasses.replace(ours, value=None)  # free the 1.9 M-cell grid
    return Result(ours, base, Target(max_seconds=3, note="ratio to res 8 informational"), details=details)
