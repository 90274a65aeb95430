"""No-burn zones and coal sale points: cell flags, the exact zone test, coal checks, the recurring check."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pytest
import shapely

from conftest import SHARED_DATA, needs_shared
from gridwatch import layerstore, services, zones
from gridwatch.crs import gcj02_to_wgs84, geodesic_area_m2
from gridwatch.errors import ValidationError
from gridwatch.grid import cells_to_polygons, latlng_to_cells
from gridwatch.org import assignees_for_cells
from gridwatch.policy import Policy
from layers.no_burn_zones import ZoneIndex, zone_type_of

NOW = dt.datetime(2026, 7, 1, 8, 0)
#: the rules in force: the default policy
POLICY = Policy()


def centre(store) -> tuple[float, float]:
    row = store.query("SELECT avg(lat) AS lat, avg(lng) AS lng FROM cells")[0]
    return round(row["lat"], 3), round(row["lng"], 3)


def zone_file(tmp_path, name, geoms, types, names=None):
    path = tmp_path / name
    gpd.GeoDataFrame({"名称": names or [f"区{i}" for i in range(len(geoms))], "类型": types},
                     geometry=list(geoms), crs=4326).to_file(path)
    return path


def boxes(store):
    lat, lng = centre(store)
    fuel = shapely.box(lng - 0.03, lat - 0.03, lng + 0.03, lat + 0.03)
    straw = shapely.box(lng - 0.03, lat + 0.06, lng + 0.03, lat + 0.10)
    return fuel, straw


def flags(store, flag):
    return store.query_df("SELECT cell, border FROM layer_cell_flags WHERE kind = 'no_burn_zones' AND flag = ?"
                          " ORDER BY cell", [flag])


def load(store, kind, path, **kw):
    return layerstore.load(store, kind, path, actor="gis", policy=POLICY, now=NOW, **kw)


# -- reading -------------------------------------------------------------------------------------------------------

def test_zone_types_are_recognised_in_chinese_and_english():
    got = zone_type_of(np.array(["高污染燃料禁燃区", "秸秆禁烧区", "straw_burning", "禁燃区", "郑州市禁煤区",
                                 "high_polluting_fuel", "公园", None], dtype=object))
    assert got.tolist() == ["high_polluting_fuel", "straw_burning", "straw_burning", "high_polluting_fuel",
                            "high_polluting_fuel", "high_polluting_fuel", "", ""]


def test_zone_reader_rejects_unknown_types_and_needs_a_type(tmp_path, demo_store):
    fuel, straw = boxes(demo_store)
    path = zone_file(tmp_path, "z.geojson", [fuel, straw], ["高污染燃料禁燃区", "公园"])
    read = zones.read_zones(path, store=demo_store)
    assert read.frame.zone_type.tolist() == ["high_polluting_fuel"]
    assert read.frame.name.tolist() == ["区0"]
    assert read.rejected[["line", "reason"]].values.tolist() == [[2, "unknown_zone_type"]]
    assert read.frame.attrs["crs"] == "EPSG:4326"
    every = zones.read_zones(path, zone_type="straw_burning")
    assert every.frame.zone_type.tolist() == ["straw_burning", "straw_burning"]
    bare = tmp_path / "bare.geojson"
    gpd.GeoDataFrame({"名称": ["x"]}, geometry=[fuel], crs=4326).to_file(bare)
    with pytest.raises(ValidationError, match="zone type"):
        zones.read_zones(bare)


def test_coal_points_outside_the_region_are_rejected(tmp_path, demo_store):
    lat, lng = centre(demo_store)
    path = tmp_path / "coal.csv"
    path.write_text(f"name,lng,lat,散煤\n甲,{lng},{lat},是\n远,100.0,30.0,是\n乙,{lng + 0.01},{lat},否\n",
                    encoding="utf-8")
    read = zones.read_coal_points(path, crs="EPSG:4326", store=demo_store)
    assert read.frame.name.tolist() == ["甲", "乙"]
    assert read.frame.loose_coal.tolist() == [True, False]
    assert read.rejected[["line", "reason"]].values.tolist() == [[3, "outside_region"]]


# -- cells and the exact test ---------------------------------------------------------------------------------------

def test_zone_cells_are_every_cell_touching_a_zone_and_interior_ones_are_wholly_inside(tmp_path, demo_store):
    fuel, straw = boxes(demo_store)
    result = load(demo_store, "no_burn_zones", zone_file(tmp_path, "z.geojson", [fuel, straw],
                                                          ["高污染燃料禁燃区", "秸秆禁烧区"]), publish_now=True)
    grid = demo_store.query_df("SELECT cell FROM cells ORDER BY cell").cell.to_numpy(dtype=np.int64)
    hexes = cells_to_polygons(grid.view(np.uint64))
    for flag, zone in (("high_polluting_fuel", fuel), ("straw_burning", straw)):
        got = flags(demo_store, flag)
        touching = shapely.intersects(zone, hexes)
        inside = shapely.covers(zone, hexes)
        assert got.cell.tolist() == grid[touching].tolist()  # brute force over every cell of the grid
        assert got.cell[~got.border].tolist() == grid[inside].tolist()
        assert result["differences"]["cells"][flag] == int(touching.sum()) > 50
    assert result["cells_affected"] == result["differences"]["cells_added"] == len(
        set(flags(demo_store, "high_polluting_fuel").cell) | set(flags(demo_store, "straw_burning").cell))


def test_zone_test_is_exact_near_borders_and_far_from_them(tmp_path, demo_store):
    assert zones.zone_test_for(demo_store) is None  # nothing published
    fuel, straw = boxes(demo_store)
    ring = shapely.Point(fuel.centroid).buffer(0.02, quad_segs=16)  # a round zone: no boundary along hex edges
    load(demo_store, "no_burn_zones", zone_file(tmp_path, "z.geojson", [ring, straw],
                                                ["高污染燃料禁燃区", "秸秆禁烧区"]), publish_now=True)
    test = zones.zone_test_for(demo_store)
    rng = np.random.default_rng(4)
    lat, lng = centre(demo_store)
    # 20,000 points over the zones' surroundings and 20,000 within 1 m of their boundaries
    lng1, lat1 = rng.uniform(lng - 0.05, lng + 0.05, 20_000), rng.uniform(lat - 0.05, lat + 0.12, 20_000)
    edge = shapely.get_coordinates(shapely.segmentize(shapely.boundary(shapely.union(ring, straw)), 1e-4))
    pick = edge[rng.integers(0, len(edge), 20_000)]
    lng2, lat2 = pick[:, 0] + rng.uniform(-1e-5, 1e-5, 20_000), pick[:, 1] + rng.uniform(-1e-5, 1e-5, 20_000)
    plng, plat = np.concatenate([lng1, lng2]), np.concatenate([lat1, lat2])
    cells = latlng_to_cells(plat, plng, 8).view(np.int64)
    got = test(plat, plng, cells)
    want = shapely.contains_xy(shapely.union(ring, straw), plng, plat)
    assert (got != want).sum() == 0
    assert 2_000 < want.sum() < 38_000  # both sides are well represented


def test_zone_index_with_overlapping_zones_and_a_hole():
    outer = shapely.Polygon(shapely.box(112.3, 34.3, 112.4, 34.4).exterior.coords,
                            [shapely.box(112.33, 34.33, 112.37, 34.37).exterior.coords])
    overlap = shapely.box(112.35, 34.35, 112.45, 34.45)
    index = ZoneIndex.build(np.array([outer, overlap], dtype=object), 8)
    rng = np.random.default_rng(7)
    lng, lat = rng.uniform(112.28, 112.47, 50_000), rng.uniform(34.28, 34.47, 50_000)
    want = shapely.contains_xy(outer, lng, lat) | shapely.contains_xy(overlap, lng, lat)
    assert (index.contains(lat, lng) != want).sum() == 0
    # the hole's middle is outside, the overlap's part of the hole inside
    assert index.contains(np.array([34.34, 34.36]), np.array([112.34, 112.36])).tolist() == [False, True]


def test_the_whole_region_is_the_straw_zone_until_straw_zones_are_published(tmp_path, demo_store):
    region_cells = demo_store.scalar("SELECT count(*) FROM cells")
    default = services.zone_cells(demo_store, services.CLI, zone_type="straw_burning")
    assert len(default) == region_cells and default["default"].all() and not default.border.any()
    fuel, straw = boxes(demo_store)
    load(demo_store, "no_burn_zones", zone_file(tmp_path, "f.geojson", [fuel], ["高污染燃料禁燃区"]), publish_now=True)
    assert len(services.zone_cells(demo_store, services.CLI, zone_type="straw_burning")) == region_cells
    load(demo_store, "no_burn_zones", zone_file(tmp_path, "s.geojson", [straw], ["秸秆禁烧区"]), publish_now=True)
    table = services.zone_cells(demo_store, services.CLI)
    assert set(table.zone_type) == {"straw_burning"} and not table["default"].any()
    assert len(table) == len(flags(demo_store, "straw_burning"))
    assert table.cell_id.str.len().eq(15).all()


# -- publishing: differences, coal checks ---------------------------------------------------------------------------

def test_republishing_reports_the_cells_that_changed_and_restore_brings_them_back(tmp_path, demo_store):
    fuel, _ = boxes(demo_store)
    half = shapely.box(*fuel.bounds[:2], (fuel.bounds[0] + fuel.bounds[2]) / 2, fuel.bounds[3])
    load(demo_store, "no_burn_zones", zone_file(tmp_path, "a.geojson", [fuel], ["禁燃区"]), publish_now=True)
    big = set(flags(demo_store, "high_polluting_fuel").cell)
    second = load(demo_store, "no_burn_zones", zone_file(tmp_path, "b.geojson", [half], ["禁燃区"]), publish_now=True)
    small = set(flags(demo_store, "high_polluting_fuel").cell)
    assert small < big
    diff = second["differences"]
    assert (diff["cells_added"], diff["cells_removed"], diff["previous"]) == (0, len(big - small), 1)
    back = layerstore.restore(demo_store, "no_burn_zones", 1, actor="gis", policy=POLICY)
    assert (back["cells_added"], back["cells_removed"], back["previous"]) == (len(big - small), 0, 2)
    assert set(flags(demo_store, "high_polluting_fuel").cell) == big
    again = layerstore.publish(demo_store, "no_burn_zones", 1, actor="gis", policy=POLICY)  # idempotent
    assert (again["cells_added"], again["cells_removed"]) == (0, 0)
    history = layerstore.publications(demo_store, "no_burn_zones")
    assert history.action.tolist() == ["publish", "restore", "publish", "publish"]
    assert history.version.tolist() == [1, 1, 2, 1]


def coal_file(tmp_path, rows, name="coal.csv"):
    path = tmp_path / name
    path.write_text("名称,经度,纬度,是否散煤\n" + "".join(f"{n},{x},{y},{s}\n" for n, x, y, s in rows),
                    encoding="utf-8")
    return path


def test_loose_coal_points_in_a_fuel_zone_get_checks_that_follow_the_published_zones(tmp_path, demo_store):
    fuel, straw = boxes(demo_store)
    (fx, fy), (sx, sy) = fuel.centroid.coords[0], straw.centroid.coords[0]
    rows = [("甲煤店", fx, fy, "是"), ("乙煤店", fx + 0.005, fy, "否"), ("丙煤店", fx + 0.2, fy, "是"),
            ("丁煤店", sx, sy, "是")]
    first = load(demo_store, "coal_sale_points", coal_file(tmp_path, rows), crs="EPSG:4326", publish_now=True)
    assert first["differences"]["tasks_opened"] == 0  # no zones yet
    both = zone_file(tmp_path, "z.geojson", [fuel, straw], ["高污染燃料禁燃区", "秸秆禁烧区"])
    published = load(demo_store, "no_burn_zones", both, publish_now=True)["differences"]
    assert (published["tasks_opened"], published["tasks_closed"]) == (1, 0)  # 甲 only: 乙 not loose, 丙 outside,
    tasks = demo_store.query_df("SELECT * FROM tasks WHERE kind = 'coal_check' ORDER BY id")  # 丁 in a straw zone
    assert len(tasks) == 1
    task = tasks.iloc[0]
    cell = int(latlng_to_cells(np.array([fy]), np.array([fx]), 8).view(np.int64)[0])
    assert task.cell == cell and task.title == "散煤销售点检查：甲煤店" and task.source_kind == "coal_sale_point"
    who = assignees_for_cells(demo_store, np.array([cell])).iloc[0]
    assert task.assignee_id == who.person_id and task.state == "assigned"
    assert task.due_at - task.created_at == dt.timedelta(hours=72)  # the coal_check SLA
    # publishing the same zones again changes nothing
    same = layerstore.publish(demo_store, "no_burn_zones", 1, actor="gis", policy=POLICY)
    assert (same["tasks_opened"], same["tasks_closed"]) == (0, 0)
    # zones without the fuel zone: the check is withdrawn, by layer-publish with a note, not deleted
    straw_only = load(demo_store, "no_burn_zones", zone_file(tmp_path, "s.geojson", [straw], ["秸秆禁烧区"]),
                      publish_now=True)["differences"]
    assert (straw_only["tasks_opened"], straw_only["tasks_closed"]) == (0, 1)
    shown = services.task_show(demo_store, services.CLI, int(task.id))
    assert shown["state"] == "withdrawn"
    last = shown["events"][-1]
    assert last["actor"] == "layer-publish" and "no longer" in last["detail"]["note"]
    # restoring the zones opens a new check for the point (the withdrawn one stays as it was)
    restored = layerstore.restore(demo_store, "no_burn_zones", 1, actor="gis", policy=POLICY)
    assert (restored["tasks_opened"], restored["tasks_closed"]) == (1, 0)
    keys = demo_store.query_df("SELECT source_key, state FROM tasks WHERE kind = 'coal_check' ORDER BY id")
    assert keys.state.tolist() == ["withdrawn", "assigned"]
    assert keys.source_key[1] == keys.source_key[0] + "#2"
    # a new point list without 甲: its check is withdrawn
    gone = load(demo_store, "coal_sale_points", coal_file(tmp_path, rows[1:], "coal2.csv"), crs="EPSG:4326",
                publish_now=True)["differences"]
    assert (gone["tasks_opened"], gone["tasks_closed"], gone["in_zone"]) == (0, 1, 0)


def test_recurring_coal_checks_cover_every_fuel_zone_cell_once_per_cadence(tmp_path, demo_store):
    assert zones.generate_coal_checks(demo_store, now=NOW) == {"created": 0, "cells": 0, "cadence_days": 30}
    fuel, straw = boxes(demo_store)
    load(demo_store, "no_burn_zones", zone_file(tmp_path, "z.geojson", [fuel, straw],
                                                ["高污染燃料禁燃区", "秸秆禁烧区"]), publish_now=True)
    fuel_cells = flags(demo_store, "high_polluting_fuel").cell
    first = zones.generate_coal_checks(demo_store, now=NOW)
    assert first == {"created": len(fuel_cells), "cells": len(fuel_cells), "cadence_days": 30}
    assert zones.generate_coal_checks(demo_store, now=NOW + dt.timedelta(days=1))["created"] == 0
    tasks = demo_store.query_df("SELECT cell, due_at, title FROM tasks WHERE kind = 'coal_check'")
    assert sorted(tasks.cell) == sorted(fuel_cells) and set(tasks.title) == {"禁燃区散煤回头看"}
    assert tasks.due_at.min() >= NOW + dt.timedelta(hours=24)
    assert tasks.due_at.max() <= NOW + dt.timedelta(hours=24 + 30 * 24)
    # "monthly" is the calendar month in Beijing: NOW is 07-01 16:00 there; 07-31 15:59 UTC is still July, 16:00 not
    assert tasks.due_at.max() <= dt.datetime(2026, 7, 31, 16, 0)
    assert zones.generate_coal_checks(demo_store, now=dt.datetime(2026, 7, 31, 15, 59))["created"] == 0
    assert zones.generate_coal_checks(demo_store, now=dt.datetime(2026, 7, 31, 16, 0))["created"] == len(fuel_cells)
    assert zones.generate_coal_checks(demo_store, now=NOW + dt.timedelta(days=31))["created"] == 0
    assert zones.generate_coal_checks(demo_store, now=NOW, cadence_days=7)["created"] == len(fuel_cells)
    with pytest.raises(ValidationError, match="cadence"):
        zones.generate_coal_checks(demo_store, now=NOW, cadence_days=0)
    # zones without a fuel zone: the open recurring checks are withdrawn
    active = demo_store.scalar("SELECT count(*) FROM tasks WHERE kind = 'coal_check' AND state <> 'withdrawn'")
    result = load(demo_store, "no_burn_zones", zone_file(tmp_path, "s.geojson", [straw], ["秸秆禁烧区"]),
                  publish_now=True)
    assert result["differences"]["tasks_closed"] == active
    assert demo_store.scalar("SELECT count(*) FROM tasks WHERE kind = 'coal_check' AND state <> 'withdrawn'") == 0


# -- real material ----------------------------------------------------------------------------------------------------

@needs_shared()
def test_zhengzhou_fuel_zone_from_gcj02_lands_on_the_true_districts(store):
    services.init_region(store, services.CLI, region="410100", resolution=7)
    path = SHARED_DATA / "zones" / "zhengzhou_jinranqu_five_districts_DERIVED_gcj02.geojson"
    result = layerstore.load(store, "no_burn_zones", path, actor="gis", policy=POLICY, crs="gcj02", publish_now=True)
    assert (result["rows"], result["rejected"], result["crs"]) == (1, 0, "gcj02")
    assert result["differences"]["zones"] == {"high_polluting_fuel": 1, "straw_burning": 0}
    raw = gpd.read_file(path).geometry.iloc[0]
    stored = layerstore.frame_of(store, "no_burn_zones", 1).geometry.iloc[0]
    # GCJ-02 → WGS84 moves Henan ≈ 0.006° west and ≈ 0.0016° north
    shift = np.asarray(stored.centroid.coords[0]) - np.asarray(raw.centroid.coords[0])
    assert -0.0075 < shift[0] < -0.0045 and 0.0005 < shift[1] < 0.0030
    first = raw.exterior.coords[0] if raw.geom_type == "Polygon" else None
    lat, lng = gcj02_to_wgs84(lat=first[1], lng=first[0]) if first is not None else (None, None)
    if lng is not None:
        assert np.allclose(stored.exterior.coords[0], (lng, lat), atol=1e-9)
    test = zones.zone_test_for(store)
    # 二七广场 (centre of 二七区) inside; 新郑国际机场 (航空港区, not among the five districts) outside
    spots_lat, spots_lng = np.array([34.7535, 34.5197]), np.array([113.6650, 113.8409])
    cells = latlng_to_cells(spots_lat, spots_lng, 7)
    assert test(spots_lat, spots_lng, cells).tolist() == [True, False]
    # the flagged cells cover the zone: their area is the zone's plus a border ring
    cells = flags(store, "high_polluting_fuel")
    cell_area = geodesic_area_m2(cells_to_polygons(cells.cell.to_numpy(dtype=np.int64).view(np.uint64))).sum()
    zone_area = geodesic_area_m2(np.array([stored]))[0]
    assert zone_area < cell_area < 1.6 * zone_area
    interior_area = geodesic_area_m2(cells_to_polygons(
        cells.cell[~cells.border].to_numpy(dtype=np.int64).view(np.uint64))).sum()
    assert 0.6 * zone_area < interior_area < zone_area
