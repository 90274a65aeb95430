"""Heat-supply radii: the exact inside test, the plant and boiler readers, publishing, statuses and tasks."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely

from conftest import REPO, SHARED_DATA, copy_db, drop_db, needs_shared
from gridwatch import heat, layerstore, workflow
from gridwatch.errors import NotFound, ValidationError
from gridwatch.audit import open_sealed
from gridwatch.policy import Policy
from layers.heat_supply import (RadiusIndex, formula_margin_m, geodesic_circle, is_coal, local_distance_m,
                                read_boilers, read_plants)

GEOD = pyproj.Geod(ellps="WGS84")
PLANTS_CSV = SHARED_DATA / "plants" / "henan_plants_from_wri_raw.csv"
#: the two ≥ 300 MW coal plants inside 伊川县 (SOURCES.md) and the Luoyang ones whose radius reaches it
YICHUAN_PLANTS = {"1070746": "Yichuan Longquan Kim Hyung power station", "1075774": "Yichuan-3 power station"}
NOW = dt.datetime(2026, 3, 1, 2, 0)
#: the rules in force: the default policy
POLICY = Policy()


def brute_inside(plng, plat, lng, lat, radius):
    """Inside any radius by pyproj's geodesic against every centre (the reference)."""
    out = np.zeros(len(lng), dtype=bool)
    for x, y in zip(plng, plat):
        _, _, d = GEOD.inv(np.full(len(lng), x), np.full(len(lng), y), lng, lat)
        out |= np.asarray(d) <= radius
    return out


def brute_nearest(plng, plat, lng, lat):
    d = np.stack([np.asarray(GEOD.inv(np.full(len(lng), x), np.full(len(lng), y), lng, lat)[2])
                  for x, y in zip(plng, plat)], axis=1)
    return d.argmin(axis=1), d.min(axis=1)


@pytest.fixture(scope="module")
def big_plants():
    """Every ≥ 300 MW plant of the province (real WRI rows)."""
    if not PLANTS_CSV.is_file():
        pytest.skip("../shared/data (real public data) is not present beside the repository")
    frame = read_plants(PLANTS_CSV).frame
    big = frame[frame.capacity_mw >= 300]
    xy = shapely.get_coordinates(big.geometry.to_numpy())
    return big.reset_index(drop=True), xy[:, 0], xy[:, 1]


# -- the geometry --------------------------------------------------------------------------------------------

def test_local_formula_error_is_far_below_the_margin():
    rng = np.random.default_rng(7)
    n = 200_000
    plng, plat = rng.uniform(110, 117, n), rng.uniform(31, 37, n)
    dist = rng.uniform(0, 36_000, n)
    lng, lat, _ = GEOD.fwd(plng, plat, rng.uniform(0, 360, n), dist)
    err = np.abs(local_distance_m(plng, plat, lng, lat) - dist)
    assert err.max() < 0.06  # metres, at up to 36 km
    assert formula_margin_m(30_000) > 50 * err.max()


@needs_shared()
def test_inside_is_exact_near_the_edge_where_a_sphere_is_not(big_plants):
    _, plng, plat = big_plants
    rng = np.random.default_rng(410329)
    n = 60_000
    k = rng.integers(0, len(plng), n)
    offsets = np.concatenate([rng.uniform(-5, 5, n - 4000), np.full(2000, 1e-3), np.full(2000, -1e-3)])
    lng, lat, _ = GEOD.fwd(plng[k], plat[k], rng.uniform(0, 360, n), 30_000 + offsets)
    index = RadiusIndex(plng, plat, 30_000)
    truth = brute_inside(plng, plat, lng, lat, 30_000)
    assert (index.inside(lng, lat) != truth).sum() == 0
    # a spherical formula (haversine, mean radius) gets some of these wrong: the set is a real test
    r = 6_371_008.8
    p1, p2 = np.radians(plat[k]), np.radians(lat)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lng - plng[k]) / 2) ** 2
    sphere_own = 2 * r * np.arcsin(np.sqrt(h)) <= 30_000
    _, _, own = GEOD.inv(plng[k], plat[k], lng, lat)
    assert (sphere_own != (np.asarray(own) <= 30_000)).sum() > 1000


@needs_shared()
def test_inside_and_nearest_match_pyproj_on_random_points(big_plants):
    _, plng, plat = big_plants
    rng = np.random.default_rng(1)
    lng, lat = rng.uniform(110.3, 116.7, 20_000), rng.uniform(31.3, 36.4, 20_000)
    index = RadiusIndex(plng, plat, 30_000)
    inside, nearest, dist = index.classify(lng, lat)
    assert np.array_equal(inside, brute_inside(plng, plat, lng, lat, 30_000))
    best, best_d = brute_nearest(plng, plat, lng, lat)
    assert np.array_equal(nearest[inside], best[inside])
    assert np.allclose(dist[inside], best_d[inside], rtol=0, atol=1e-6)
    assert (nearest[~inside] == -1).all() and np.isnan(dist[~inside]).all()
    all_n, all_d = index.nearest(lng, lat)
    assert np.array_equal(all_n, best) and np.allclose(all_d, best_d, rtol=0, atol=1e-6)


def test_index_edge_cases():
    index = RadiusIndex([112.0], [34.0], 30_000)
    # points at 30 km ± 1 µm (as far as float coordinates allow): decided as pyproj decides
    lng, lat, _ = GEOD.fwd(np.full(8, 112.0), np.full(8, 34.0), np.arange(8) * 45.0,
                           np.array([30_000 - 1e-6, 30_000 + 1e-6] * 4))
    _, _, d = GEOD.inv(np.full(8, 112.0), np.full(8, 34.0), lng, lat)
    assert index.inside(lng, lat).tolist() == (np.asarray(d) <= 30_000).tolist() == [True, False] * 4
    assert index.inside([np.nan, 170.0, 112.0], [34.0, 0.0, np.nan]).tolist() == [False, False, False]
    assert RadiusIndex([], [], 30_000).inside([112.0], [34.0]).tolist() == [False]
    assert RadiusIndex([], [], 30_000).nearest([112.0], [34.0])[0].tolist() == [-1]
    with pytest.raises(ValidationError):
        RadiusIndex([112.0], [34.0], 0)


def test_geodesic_circle_vertices_lie_on_the_radius():
    circle = geodesic_circle(112.5, 34.41, 30_000.0, vertices=64)
    xy = shapely.get_coordinates(circle.exterior)[:-1]
    _, _, d = GEOD.inv(np.full(len(xy), 112.5), np.full(len(xy), 34.41), xy[:, 0], xy[:, 1])
    assert np.allclose(d, 30_000.0, atol=1e-6)
    assert circle.is_valid and circle.exterior.is_ccw


# -- readers --------------------------------------------------------------------------------------------------

@needs_shared()
def test_read_real_plants_with_chp_marks():
    read = read_plants(PLANTS_CSV, chp=["1070746", "Yichuan-3 power station", "no such plant"])
    assert read.read == 96 and read.accepted == 93
    # the three hydro dams without a capacity
    assert read.rejected.line.tolist() == [34, 35, 36]
    assert set(read.rejected.reason) == {"bad_capacity"}
    frame = read.frame.set_index("plant_id")
    assert frame.chp.sum() == 2 and frame.loc[list(YICHUAN_PLANTS), "chp"].all()
    assert frame.loc["1070746", "capacity_mw"] == 1320.0
    assert frame.loc["1070746", "geometry"].equals(shapely.Point(112.50113, 34.414573))
    assert any("no such plant" in w for w in read.warnings)
    assert any("no chp column" in w for w in read.warnings)


def test_plants_chp_column_and_rejects():
    csv = ("gppd_idnr,name,primary_fuel,capacity_mw,latitude,longitude,chp\n"
           "P1,甲电厂,Coal,600,34.4,112.5,是\n"
           "P2,乙电厂,Coal,350,34.5,112.6,no\n"
           "P1,重复,Coal,300,34.5,112.6,yes\n"
           "P4,丙电厂,Coal,300,,112.6,yes\n").encode("gb18030")
    read = read_plants(csv)
    assert read.frame[["plant_id", "chp", "fuel"]].values.tolist() == [["P1", True, "Coal"], ["P2", False, "Coal"]]
    assert read.rejected[["line", "reason"]].values.tolist() == [[4, "duplicate_id"], [5, "bad_coordinates"]]


def test_boiler_reader_statuses_crs_and_rejects():
    # CGCS2000 3-degree Gauss-Kruger, central meridian 111° E (EPSG:4546), as county inventories often are
    to_gk = pyproj.Transformer.from_crs(4326, 4546, always_xy=True)
    x, y = to_gk.transform(112.45, 34.42)
    csv = ("编号,企业名称,燃料类型,蒸吨,类型,状态,x,y\n"
           f"B1,甲厂,燃煤,20,锅炉,待关停,{x:.3f},{y:.3f}\n"
           f"B2,乙厂,燃气,10,,已关停,{x + 100:.3f},{y:.3f}\n"
           f"B3,丙厂,煤,abc,,,{x:.3f},{y:.3f}\n"
           f"B4,丁厂,燃煤,8,热电机组,拆了,{x:.3f},{y:.3f}\n").encode("utf-8")
    read = read_boilers(csv, name="boilers.csv", crs="EPSG:4546")
    frame = read.frame
    assert frame[["boiler_id", "fuel", "coal", "unit_type", "status"]].values.tolist() == [
        ["B1", "燃煤", True, "boiler", "to_close"], ["B2", "燃气", False, "boiler", "closed"]]
    p = frame.geometry[0]
    assert abs(p.x - 112.45) < 1e-8 and abs(p.y - 34.42) < 1e-8
    assert read.rejected[["line", "reason"]].values.tolist() == [[4, "bad_capacity"], [5, "bad_status"]]
    assert is_coal(["Coal Mine Methane", "coal", "Gas"]).tolist() == [False, True, False]
    # coordinate columns named by the user
    named = read_boilers("id,name,fuel,capacity,东坐标,北坐标\nB9,戊厂,燃煤,4,112.5,34.4\n".encode(),
                         x_field="东坐标", y_field="北坐标")
    assert named.frame.geometry[0].equals(shapely.Point(112.5, 34.4))
    with pytest.raises(ValidationError):
        read_boilers(b"id,name,fuel,capacity,e,n\nB9,x,coal,4,112.5,34.4\n", x_field="east", y_field="n")


# -- publishing in a store -------------------------------------------------------------------------------------

def _boilers_csv() -> bytes:
    """Hand-placed boilers at known bearings and distances from Yichuan Longquan Kim Hyung (1070746)."""
    plant = (112.50113, 34.414573)
    rows = [("B-coal-10km", "燃煤", 20, "boiler", "", 90, 10_000),       # listed, small
            ("B-coal-big", "燃煤", 40, "boiler", "", 60, 12_000),         # listed, not small
            ("B-outside", "燃煤", 10, "boiler", "", 180, 12_000),         # listed, outside the county: no task
            ("B-gas", "燃气", 10, "boiler", "", 0, 5_000),                 # not coal: not listed
            ("B-chp-small", "燃煤", 30, "chp_unit", "", 270, 8_000),      # small coal CHP unit: listed
            ("B-chp-big", "燃煤", 75, "chp_unit", "", 300, 8_000),        # a coal CHP unit: listed, t/h aside
            ("B-closed", "燃煤", 10, "boiler", "closed", 45, 10_000),     # listed, no task
            ("B-far", "燃煤", 10, "boiler", "", 200, 60_000)]             # outside every radius: eliminated
    lines = ["boiler_id,name,fuel,capacity_tph,unit_type,status,longitude,latitude"]
    for bid, fuel, cap, kind, status, az, dist in rows:
        lng, lat, _ = GEOD.fwd(plant[0], plant[1], az, dist)
        lines.append(f"{bid},{bid}（演示）,{fuel},{cap},{kind},{status},{lng:.9f},{lat:.9f}")
    return ("\n".join(lines) + "\n").encode()


@needs_shared()
def test_real_plants_and_boilers_published(county):
    loaded = layerstore.load(county, "chp_plants", PLANTS_CSV, actor="gis", policy=POLICY, publish_now=True,
                             chp=",".join(YICHUAN_PLANTS), now=NOW)
    assert loaded["rows"] == 93 and loaded["rejected"] == 3 and loaded["crs"] == "EPSG:4326"
    diff = loaded["differences"]
    assert diff["qualifying"] == 2 and diff["cells_added"] > 0 and diff["cells_removed"] == 0
    plants = heat.plants_table(county)
    qualifying = plants[plants.qualifies]
    assert dict(zip(qualifying.plant_id, qualifying.name)) == YICHUAN_PLANTS
    assert (qualifying.radius_m == 30_000).all() and plants[~plants.qualifies].radius_m.isna().all()

    boilers = layerstore.load(county, "boilers", _boilers_csv(), name="boilers.csv", actor="gis", policy=POLICY,
                              publish_now=True, now=NOW)
    assert boilers["differences"]["boilers_listed"] == 7  # six inside a radius, B-far by the 35 t/h rule
    table = heat.boilers_in_radius(county, dispatch=POLICY.dispatch, today=dt.date(2025, 6, 1)).set_index("boiler_id")
    assert sorted(table.index) == ["B-chp-big", "B-chp-small", "B-closed", "B-coal-10km", "B-coal-big", "B-outside"]
    # a CHP unit is never "small" by t/h: the 35 t/h rule names boilers
    assert table.small.to_dict() == {"B-coal-10km": True, "B-coal-big": False, "B-chp-small": False,
                                     "B-chp-big": False, "B-closed": True, "B-outside": True}
    assert table.in_region.to_dict() == {"B-coal-10km": True, "B-coal-big": True, "B-chp-small": True,
                                         "B-chp-big": True, "B-closed": True, "B-outside": False}
    # distances and nearest plants against pyproj's geodesic to both qualifying plants
    best, best_d = brute_nearest(qualifying.lng.to_numpy(), qualifying.lat.to_numpy(), table.lng.to_numpy(),
                                 table.lat.to_numpy())
    assert table.plant_id.tolist() == qualifying.plant_id.to_numpy()[best].tolist()
    assert np.allclose(table.distance_m.to_numpy(), best_d, atol=1e-6)
    assert table.loc["B-coal-10km", "distance_m"] == pytest.approx(best_d[table.index.get_loc("B-coal-10km")])
    assert table.status.to_dict() == {"B-coal-10km": "to_close", "B-coal-big": "to_close", "B-chp-big": "to_close",
                                      "B-chp-small": "to_close", "B-closed": "closed", "B-outside": "to_close"}
    # after the deadline, what is still to close is overdue
    late = heat.boilers_in_radius(county, dispatch=POLICY.dispatch, today=dt.date(2026, 1, 1)).set_index("boiler_id")
    assert late.status.to_dict()["B-coal-10km"] == "overdue" and late.status.to_dict()["B-closed"] == "closed"
    tasks = county.query_df("SELECT source_key, state, title FROM tasks WHERE kind = 'boiler_check' ORDER BY 1")
    assert tasks.source_key.tolist() == ["B-chp-big", "B-chp-small", "B-coal-10km", "B-coal-big"]
    assert (tasks.state == "open").all()  # no people in this store: open, unassigned
    assert "燃煤锅炉核查" in tasks.title[0]


@needs_shared()
def test_statuses_findings_republish_and_restore(county):
    layerstore.load(county, "chp_plants", PLANTS_CSV, actor="gis", policy=POLICY,
                    publish_now=True, chp="1070746,1075774", now=NOW)
    layerstore.load(county, "boilers", _boilers_csv(), name="b.csv", actor="gis", policy=POLICY,
                    publish_now=True, now=NOW)
    # publishing the same version again changes nothing
    again = layerstore.publish(county, "boilers", 1, actor="gis", policy=POLICY, now=NOW)
    assert again["tasks_opened"] == 0 and again["tasks_closed"] == 0 and again["cells_added"] == 0

    # a verified report "integrated" moves the status and withdraws nothing (the task is done)
    task = county.query("SELECT id FROM tasks WHERE source_key = 'B-coal-big'")[0]["id"]
    for state in ("assigned", "in_progress"):
        workflow.transition(county, task, state, actor="inspector-1", now=NOW)
    workflow.transition(county, task, "reported", actor="inspector-1", actor_person_id=1, finding="integrated",
                        now=NOW)
    workflow.transition(county, task, "verified", actor="leader-1", actor_person_id=2, now=NOW)
    applied = heat.apply_boiler_findings(county, dispatch=POLICY.dispatch, now=NOW)
    assert [(a["boiler_id"], a["to_status"]) for a in applied] == [("B-coal-big", "integrated")]
    assert heat.apply_boiler_findings(county, dispatch=POLICY.dispatch, now=NOW) == []  # once only
    history = county.query_df("SELECT boiler_id, from_status, to_status, changed_by, source, task_id"
                              " FROM boiler_status_history WHERE source = 'task'")
    assert history.values.tolist() == [["B-coal-big", "to_close", "integrated", "leader-1", "task", task]]

    # staff close a boiler by hand: its open task is withdrawn by layer-publish with a note
    result = heat.boiler_status_update(county, "B-coal-10km", "closed", actor="county-officer",
                                       dispatch=POLICY.dispatch, note="拆除", now=NOW)
    assert result["changed"] and result["tasks_closed"] == 1
    ev = county.query("SELECT e.actor, e.to_state, e.detail FROM task_events e JOIN tasks t ON t.id = e.task_id"
                      " WHERE t.source_key = 'B-coal-10km' ORDER BY e.id DESC LIMIT 1")[0]
    assert ev["actor"] == "layer-publish" and ev["to_state"] == "withdrawn"
    assert "closed" in json.loads(ev["detail"])["note"]
    with pytest.raises(ValidationError):
        heat.boiler_status_update(county, "B-coal-10km", "demolished", actor="x", dispatch=POLICY.dispatch)
    with pytest.raises(NotFound):
        heat.boiler_status_update(county, "nope", "closed", actor="x", dispatch=POLICY.dispatch)

    # a new inventory without B-chp-small: its task is withdrawn; restoring version 1 brings a new task
    lines = _boilers_csv().decode().splitlines()
    v2 = "\n".join(line for line in lines if not line.startswith("B-chp-small")) + "\n"
    second = layerstore.load(county, "boilers", v2.encode(), name="b2.csv", actor="gis", policy=POLICY,
                             publish_now=True, now=NOW)
    assert second["differences"]["tasks_closed"] == 1 and second["differences"]["cells_removed"] == 1
    restored = layerstore.restore(county, "boilers", 1, actor="gis", policy=POLICY, now=NOW)
    assert restored["tasks_opened"] == 1
    keys = county.query_df("SELECT source_key, state FROM tasks WHERE source_key LIKE 'B-chp-small%' ORDER BY id")
    assert keys.values.tolist() == [["B-chp-small", "withdrawn"], ["B-chp-small#2", "open"]]
    # statuses changed since are kept on re-publication (the file says to_close only by default)
    status = dict(county.query_df("SELECT boiler_id, status FROM boilers").values.tolist())
    assert status["B-coal-10km"] == "closed" and status["B-coal-big"] == "integrated"


@needs_shared()
def test_mark_chp_adds_and_removes_radii(county):
    layerstore.load(county, "chp_plants", PLANTS_CSV, actor="gis", policy=POLICY, publish_now=True, now=NOW)
    layerstore.load(county, "boilers", _boilers_csv(), name="b.csv", actor="gis", policy=POLICY,
                    publish_now=True, now=NOW)
    assert heat.boilers_in_radius(county, dispatch=POLICY.dispatch).empty  # no CHP plant yet
    # the region-wide 35 t/h rule needs no plant: the small coal boilers are due already
    due = heat.boilers_due(county, dispatch=POLICY.dispatch)
    assert sorted(due.boiler_id) == ["B-closed", "B-coal-10km", "B-far", "B-outside"]
    assert due.rules.map(tuple).unique().tolist() == [("eliminate_35tph",)] and due.distance_m.isna().all()
    marked = heat.mark_chp(county, ["Yichuan Longquan Kim Hyung power station"], actor="gis", dispatch=POLICY.dispatch,
                           now=NOW)
    # B-coal-10km has its task from the 35 t/h rule already; the CHP units and the 40 t/h boiler are new
    assert marked["marked"] == ["1070746"] and marked["qualifying"] == 1 and marked["tasks_opened"] == 3
    assert len(heat.boilers_in_radius(county, dispatch=POLICY.dispatch)) == 6
    # the mark survives a new upload of the plants without any flag
    layerstore.load(county, "chp_plants", PLANTS_CSV, actor="gis", policy=POLICY, publish_now=True, now=NOW)
    assert heat.plants_table(county).query("qualifies").plant_id.tolist() == ["1070746"]
    unmarked = heat.mark_chp(county, ["1070746"], chp=False, actor="gis", dispatch=POLICY.dispatch, now=NOW)
    assert unmarked["qualifying"] == 0 and unmarked["tasks_closed"] == 3 and unmarked["listed"] == 4
    with pytest.raises(NotFound):
        heat.mark_chp(county, ["no such plant"], actor="gis", dispatch=POLICY.dispatch)


def test_plants_reaching_a_region_and_demo_inventory():
    county = shapely.box(112.3, 34.3, 112.6, 34.6)
    frame = pd.DataFrame({"plant_id": ["in", "near", "far", "small", "gas"],
                          "capacity_mw": [600, 600, 600, 100, 600], "fuel": ["Coal", "Coal", "Coal", "Coal", "Gas"],
                          "geometry": [shapely.Point(112.4, 34.4), shapely.Point(112.6 + 0.3, 34.45),
                                       shapely.Point(113.5, 34.45), shapely.Point(112.4, 34.4),
                                       shapely.Point(112.4, 34.4)]})
    # 0.3° of longitude at 34.45° N is 27.6 km; 0.9° is 82.7 km
    assert heat.plants_reaching_region(frame, county, policy=heat.HeatPolicy()) == ["in", "near"]
    csv = heat.demo_boilers_csv(county, n=20)
    read = read_boilers(csv.encode())
    assert read.accepted == 20 and read.frame.name.str.endswith("（演示）").all()
    assert csv == heat.demo_boilers_csv(county, n=20)  # reproducible


@needs_shared()
def test_cli_heat_supply_boilers_json(county_db, tmp_path):
    db = copy_db(county_db, tmp_path, "cli.duckdb")
    with open_sealed(str(db)) as s:
        layerstore.load(s, "chp_plants", PLANTS_CSV, actor="gis", policy=POLICY,
                        publish_now=True, chp="1070746", now=NOW)
        extra = []
        for bid, cap, az, dist in (("B-35.0-far", 35.0, 200, 60_000), ("B-35.5-far", 35.5, 200, 60_000),
                                   ("B-35.0-near", 35.0, 120, 9_000)):
            lng, lat, _ = GEOD.fwd(112.50113, 34.414573, az, dist)
            extra.append(f"{bid},{bid}（演示）,燃煤,{cap},boiler,,{lng:.9f},{lat:.9f}")
        csv = _boilers_csv().decode() + "\n".join(extra) + "\n"
        layerstore.load(s, "boilers", csv.encode(), name="b.csv", actor="gis", policy=POLICY,
                        publish_now=True, now=NOW)
    out = subprocess.run([sys.executable, "-m", "gridwatch", "heat-supply", "boilers", "--db", str(db), "--json"],
                         cwd=REPO, capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)["boilers"]
    rules = {r["boiler_id"]: r["rules"] for r in rows}
    assert rules == {
        "B-chp-big": ["chp_radius"], "B-chp-small": ["chp_radius"], "B-coal-big": ["chp_radius"],
        "B-coal-10km": ["eliminate_35tph", "chp_radius"], "B-closed": ["eliminate_35tph", "chp_radius"],
        "B-outside": ["eliminate_35tph", "chp_radius"], "B-far": ["eliminate_35tph"],
        "B-35.0-far": ["eliminate_35tph"], "B-35.0-near": ["eliminate_35tph", "chp_radius"]}  # 35.0 t/h: inclusive
    by_id = {r["boiler_id"]: r for r in rows}
    assert by_id["B-35.0-far"]["distance_m"] is None and by_id["B-35.0-far"]["plant_id"] is None
    assert by_id["B-35.0-near"]["distance_m"] == pytest.approx(9_000, abs=1e-3)
    everything = json.loads(subprocess.run(
        [sys.executable, "-m", "gridwatch", "heat-supply", "boilers", "--all", "--db", str(db), "--json"],
        cwd=REPO, capture_output=True, text=True, check=True).stdout)["boilers"]
    assert sorted(r["boiler_id"] for r in everything if not r["rules"]) == ["B-35.5-far", "B-gas"]
    first = min((r for r in rows if r["distance_m"] is not None), key=lambda r: r["distance_m"])
    _, _, d = GEOD.inv(112.50113, 34.414573, first["lng"], first["lat"])
    assert first["plant_id"] == "1070746" and first["distance_m"] == pytest.approx(d, abs=1e-3)
    drop_db(db)


@needs_shared()
def test_publishing_an_inventory_that_adds_removes_and_changes_boilers(county):
    layerstore.load(county, "chp_plants", PLANTS_CSV, actor="gis", policy=POLICY, publish_now=True,
                    chp="1070746", now=NOW)
    layerstore.load(county, "boilers", _boilers_csv(), name="b.csv", actor="gis", policy=POLICY,
                    publish_now=True, now=NOW)
    lines = _boilers_csv().decode().splitlines()
    kept = [line for line in lines if not line.startswith(("B-gas", "B-coal-big"))]  # two removed
    kept = [line.replace(",20,boiler,,", ",20,boiler,closed,") if line.startswith("B-coal-10km") else line
            for line in kept]  # one changed (status closed in the file)
    new = lines[1].replace("B-coal-10km", "B-new")  # one added, beside B-coal-10km
    second = layerstore.load(county, "boilers", ("\n".join([*kept, new]) + "\n").encode(), name="b2.csv",
                             actor="gis", policy=POLICY, publish_now=True, now=NOW)
    assert second["differences"]["status_changes"] == 2  # B-new appears, B-coal-10km closed
    history = county.query("SELECT boiler_id, from_status, to_status FROM boiler_status_history"
                           " WHERE note = 'boilers version 2' ORDER BY boiler_id")
    assert [list(row.values()) for row in history] == [["B-coal-10km", "to_close", "closed"],
                                                       ["B-new", None, "to_close"]]
    active = dict(county.query_df("SELECT boiler_id, active FROM boilers").values.tolist())
    assert not active["B-gas"] and not active["B-coal-big"] and active["B-new"]
    tasks = dict(county.query_df("SELECT source_key, state FROM tasks WHERE kind = 'boiler_check'").values.tolist())
    assert tasks["B-coal-big"] == "withdrawn" and tasks["B-coal-10km"] == "withdrawn" and tasks["B-new"] == "open"
