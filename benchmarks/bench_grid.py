"""Building grids: ``build_grid`` against one h3-py polygon fill of the same outline."""

from __future__ import annotations

import h3

from benchmarks import Result, Target, benchmark
from benchmarks.common import PROVINCE, YICHUAN, geom_of, measure, recall, remember, shipped_units, units_with_demo
from gridwatch.grid import build_grid


def _h3py_fill(code: str, resolution: int) -> int:
    """One h3-py 4.x call filling the outline of ``code`` (cells whose centre is inside)."""
    return len(h3.geo_to_cells(geom_of(code), resolution))


def _province_res8():
    units = shipped_units()
    return measure("grid_province_res8", lambda: build_grid(units, PROVINCE, 8), repeats=3)


@benchmark
def grid_province_res8() -> Result:
    """The province at res 8, owners at city and county level (157 counties as base)."""
    units = shipped_units()
    ours = remember(_province_res8())
    grid = build_grid(units, PROVINCE, 8)
    # The baseline takes ≈17 s: one run, no warm-up.
    cells = {}
    base = measure("h3_polygon_to_cells_province", lambda: cells.setdefault("n", _h3py_fill(PROVINCE, 8)),
                   repeats=1, warmup=False)
    return Result(ours, base, Target(max_seconds=1, max_ratio=0.06),
                  details={"cells": len(grid), "levels": sorted(grid.owner), "baseline_cells": cells["n"]})


@benchmark
def grid_yichuan_res8() -> Result:
    """伊川县 at res 8 with the demo townships and villages (owners down to village)."""
    units = units_with_demo(YICHUAN)
    ours = measure("grid_yichuan_res8", lambda: build_grid(units, YICHUAN, 8), repeats=5)
    grid = build_grid(units, YICHUAN, 8)
    cells = {}
    base = measure("h3_polygon_to_cells_yichuan", lambda: cells.__setitem__("n", _h3py_fill(YICHUAN, 8)),
                   repeats=5)
    return Result(ours, base, Target(max_seconds=0.2),
                  details={"cells": len(grid), "levels": sorted(grid.owner), "baseline_cells": cells["n"]})


@benchmark
def grid_province_res9() -> Result:
    """The province at res 9 (≈1.9 M cells); compared with res 8 of the same run (information only)."""
    units = shipped_units()
    ours = measure("grid_province_res9", lambda: build_grid(units, PROVINCE, 9), repeats=3)
    base = recall("grid_province_res8", _province_res8)
    grid = build_grid(units, PROVINCE, 9)
    return Result(ours, base, Target(max_seconds=3, note="ratio to res 8 informational"),
                  details={"cells": len(grid), "levels": sorted(grid.owner)})
