"""Grid invariants (DESIGN §1) on real boundaries, proven with property-based tests."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.demo import units_with_demo
from gridwatch.grid import Units, build_grid, cells_to_polygons, compare_grids
from gridwatch.errors import NotFound, ValidationError

PROPS = settings(max_examples=60, deadline=None, derandomize=True)


@pytest.fixture(scope="module")
def grids(shipped_units):
    """Three real regions: Luoyang city by county (res 8), the province by county (res 7),
    and 伊川县 with generated townships and villages (res 8)."""
    demo_units = units_with_demo(shipped_units, "410329")
    return {
        "luoyang": build_grid(shipped_units, "410300", 8),
        "province": build_grid(shipped_units, "410000", 7),
        "yichuan": build_grid(demo_units, "410329", 8),
    }


def _random_points_in(geom, rng, n):
    x0, y0, x1, y1 = geom.bounds
    pts = rng.uniform((x0, y0), (x1, y1), size=(n * 4, 2))
    inside = shapely.contains_xy(geom, pts[:, 0], pts[:, 1])
    return pts[inside][:n]


@pytest.mark.parametrize("name", ["luoyang", "province", "yichuan"])
@PROPS
@given(seed=st.integers(0, 2**32 - 1))
def test_every_point_of_the_region_lies_in_one_cell_of_the_grid(grids, name, seed):
    grid = grids[name]
    region = grid.units.geoms[grid.units.index_of(grid.region_code)]
    pts = _random_points_in(region, np.random.default_rng(seed), 200)
    cells, pos = grid.locate(pts[:, 1], pts[:, 0])
    assert (pos >= 0).all(), f"points outside the grid: {pts[pos < 0][:3]}"
    assert (grid.cells[pos] == cells).all()


@pytest.mark.parametrize("name,levels", [("luoyang", ["city", "county"]), ("province", ["city", "county"]),
                                         ("yichuan", ["city", "county", "township", "village"])])
def test_every_cell_has_exactly_one_owner_per_level_and_owners_nest(grids, name, levels):
    grid = grids[name]
    assert len(np.unique(grid.cells)) == len(grid.cells)
    assert list(grid.owner) == levels or set(grid.owner) == set(levels)
    parent = grid.units.parent_index()
    for level in levels:
        owners = grid.owner[level]
        assert (owners >= 0).all(), f"{(owners < 0).sum()} cells without a {level}"
        assert (grid.units.levels[owners] == level).all()
    for upper, lower in zip(levels, levels[1:]):
        assert (parent[grid.owner[lower]] == grid.owner[upper]).all(), f"{lower} owners do not nest in {upper}"


@pytest.mark.parametrize("name,level", [("luoyang", "county"), ("province", "county"), ("yichuan", "village")])
@PROPS
@given(data=st.data())
def test_owner_is_the_unit_of_largest_overlap(grids, name, level, data):
    grid = grids[name]
    units = grid.units
    i = data.draw(st.integers(0, len(grid.cells) - 1))
    hexagon = cells_to_polygons(grid.cells[i : i + 1])[0]
    owner = grid.owner[level][i]
    same_level = np.flatnonzero(units.levels == level)
    parent = units.parent_index()
    if level == "village":  # candidates are the villages of the cell's township
        same_level = same_level[parent[same_level] == grid.owner["township"][i]]
    elif name == "luoyang":  # candidates are the counties of the region
        same_level = same_level[parent[same_level] == units.index_of("410300")]
    areas = shapely.area(shapely.intersection(hexagon, units.geoms[same_level]))
    if areas.max() > 0:
        best = same_level[np.flatnonzero(areas == areas.max())].min()
        assert areas[same_level == owner][0] == pytest.approx(areas.max(), rel=1e-9, abs=1e-15), (
            f"cell {grid.cells[i]:x}: owner {units.codes[owner]} overlaps {areas[same_level == owner][0]}, "
            f"{units.codes[best]} overlaps {areas.max()}")
    else:  # a sliver cell: the nearest unit
        dist = shapely.distance(hexagon.centroid, units.geoms[same_level])
        assert dist[same_level == owner][0] == pytest.approx(dist.min())


@pytest.fixture(scope="module")
def luoyang_cores(grids):
    """Luoyang's counties shrunk by about 1 km: points inside lie far from any border."""
    units = grids["luoyang"].units
    counties = np.flatnonzero((units.levels == "county") & (units.parent_index() == units.index_of("410300")))
    cores = shapely.buffer(units.geoms[counties], -0.01)
    shapely.prepare(cores)
    return units.codes[counties], cores


@PROPS
@given(seed=st.integers(0, 2**32 - 1))
def test_a_points_jurisdiction_is_its_cells_owner(grids, luoyang_cores, seed):
    grid = grids["luoyang"]
    codes, cores = luoyang_cores
    region = grid.units.geoms[grid.units.index_of("410300")]
    pts = _random_points_in(region, np.random.default_rng(seed), 50)
    _, pos = grid.locate(pts[:, 1], pts[:, 0])
    by_cell = grid.owner_codes("county", pos)
    for (x, y), code in zip(pts, by_cell):
        holders = list(codes[shapely.contains_xy(cores, x, y)])
        if holders:
            assert holders == [code]


def test_yichuan_grid_size_and_units(grids):
    grid = grids["yichuan"]
    counts = grid.unit_counts()
    assert counts["county"] == 1 and counts["city"] == 1
    assert counts["township"] == 14
    assert 80 <= counts["village"] <= 200
    area_km2 = 1243  # 伊川县, about 1,243 km²
    assert area_km2 / 0.75 < len(grid) < area_km2 / 0.45


def test_province_res7_has_all_counties(grids, shipped_units):
    grid = grids["province"]
    assert grid.unit_counts()["county"] == int((shipped_units.levels == "county").sum())
    assert grid.unit_counts()["city"] == 18


def test_ties_go_to_the_lower_code():
    square = shapely.box(0, 0, 1, 1)
    left, right = shapely.box(0, 0, 0.5, 1), shapely.box(0.5, 0, 1, 1)
    units = Units.from_records([
        {"code": "9", "name": "R", "level": "province", "parent_code": "", "geom": square},
        {"code": "91", "name": "B", "level": "city", "parent_code": "9", "geom": right},
        {"code": "90", "name": "A", "level": "city", "parent_code": "9", "geom": left},
    ])
    grid = build_grid(units, "9", 5)
    hexes = cells_to_polygons(grid.cells)
    a_area = shapely.area(shapely.intersection(hexes, left))
    b_area = shapely.area(shapely.intersection(hexes, right))
    owners = grid.owner_codes("city")
    assert ((a_area > b_area) <= (owners == "90")).all()
    assert ((b_area > a_area) <= (owners == "91")).all()
    tie = np.isclose(a_area, b_area, rtol=0, atol=0) & (a_area > 0)
    assert (owners[tie] == "90").all()


def test_unknown_region_and_region_without_boundary():
    units = Units.from_records([{"code": "1", "name": "X", "level": "county", "parent_code": "", "geom": None}])
    with pytest.raises(NotFound):
        build_grid(units, "2", 8)
    with pytest.raises(ValidationError, match="no boundary"):
        build_grid(units, "1", 8)


def test_compare_grids_reports_moves(grids):
    grid = grids["yichuan"]
    old_owner = {lvl: grid.owner_codes(lvl).copy() for lvl in grid.owner}
    old_owner["village"][:5] = "elsewhere"
    change = compare_grids(grid.cells[1:], {k: v[1:] for k, v in old_owner.items()}, grid)
    assert change.added == 1 and change.removed == 0
    assert change.moved == {"village": 4}
    assert {e["from"] for e in change.examples} == {"elsewhere"}
