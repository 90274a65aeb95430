"""Layer versions: stored uploads, publish and restore, previews, the services' role checks and the CLI."""

from __future__ import annotations

import hashlib
import json

import geopandas as gpd
import pytest
import shapely

from gridwatch import auth, layerstore, services
from gridwatch.audit import open_sealed
from gridwatch.cli import main
from gridwatch.errors import CRSError, NotFound, PermissionDenied, ValidationError
from gridwatch.policy import Policy
from gridwatch.storage import open_store

#: the rules in force: the default policy
POLICY = Policy()


def centre(store) -> tuple[float, float]:
    row = store.query("SELECT avg(lat) AS lat, avg(lng) AS lng FROM cells")[0]
    return round(row["lat"], 3), round(row["lng"], 3)


@pytest.fixture
def zone_files(tmp_path, demo_store):
    lat, lng = centre(demo_store)
    big = shapely.box(lng - 0.03, lat - 0.03, lng + 0.03, lat + 0.03)
    small = shapely.box(lng - 0.01, lat - 0.01, lng + 0.01, lat + 0.01)
    first, second = tmp_path / "v1.geojson", tmp_path / "v2.geojson"
    gpd.GeoDataFrame({"名称": ["城关", "南部"], "类型": ["高污染燃料禁燃区", "秸秆禁烧区"], "面积": [3.5, 1.25]},
                     geometry=[big, small], crs=4326).to_file(first)
    gpd.GeoDataFrame({"名称": ["城关"], "类型": ["高污染燃料禁燃区"], "面积": [0.4]},
                     geometry=[small], crs=4326).to_file(second)
    return first, second


def test_kinds_are_registered_and_unknown_ones_refused():
    known = layerstore.kinds()
    assert {"no_burn_zones", "coal_sale_points"} <= set(known)
    assert known["no_burn_zones"].geometry == "polygon" and known["coal_sale_points"].geometry == "point"
    with pytest.raises(ValidationError, match="no_burn_zones"):
        layerstore.get_kind("rivers")
    assert {"kind": "no_burn_zones", "geometry": "polygon", "label": "No-burn zones"} in services.layer_kinds()


def test_each_upload_is_a_version_with_its_file_facts_and_features(demo_store, zone_files):
    first, second = zone_files
    a = layerstore.load(demo_store, "no_burn_zones", first, actor="gis", policy=POLICY)
    b = layerstore.load(demo_store, "no_burn_zones", second.read_bytes(), name="第二版.geojson", actor="gis2",
                        policy=POLICY)
    assert (a["version"], b["version"]) == (1, 2)
    assert (a["rows"], a["rejected"], a["repaired"], a["crs"], a["published"]) == (2, 0, 0, "EPSG:4326", False)
    versions = layerstore.versions(demo_store, "no_burn_zones")
    assert versions.version.tolist() == [2, 1]
    assert versions.file_name.tolist() == ["第二版.geojson", "v1.geojson"]
    assert versions.uploaded_by.tolist() == ["gis2", "gis"]
    assert versions.sha256.tolist() == [hashlib.sha256(p.read_bytes()).hexdigest() for p in (second, first)]
    assert versions.rows.tolist() == [1, 2] and not versions.published.any()
    frame = layerstore.frame_of(demo_store, "no_burn_zones", 1)
    assert frame.columns.tolist() == ["geometry", "zone_type", "name", "feature_no"]
    assert frame.name.tolist() == ["城关", "南部"] and frame.feature_no.tolist() == [1, 2]
    assert str(frame.feature_no.dtype) == "int64"
    source = gpd.read_file(first).geometry.to_numpy()
    assert all(shapely.equals_exact(frame.geometry.to_numpy(), source, tolerance=0))
    # nothing is published by loading: no flags, no tasks
    assert demo_store.scalar("SELECT count(*) FROM layer_cell_flags") == 0
    with pytest.raises(NotFound, match="version 9"):
        layerstore.frame_of(demo_store, "no_burn_zones", 9)


def test_one_published_version_and_restore_publishes_an_older_one_again(demo_store, zone_files):
    first, second = zone_files
    layerstore.load(demo_store, "no_burn_zones", first, actor="gis", policy=POLICY, publish_now=True)
    layerstore.load(demo_store, "no_burn_zones", second, actor="gis", policy=POLICY, publish_now=True)
    assert layerstore.published_version(demo_store, "no_burn_zones") == 2
    assert layerstore.versions(demo_store, "no_burn_zones").published.tolist() == [True, False]
    layerstore.restore(demo_store, "no_burn_zones", 1, actor="lead", policy=POLICY)
    versions = layerstore.versions(demo_store, "no_burn_zones")
    assert versions.published.tolist() == [False, True] and versions.published_by.tolist()[1] == "lead"
    audit = demo_store.query("SELECT action, subject FROM audit_log WHERE action LIKE 'layer.%'"
                             " AND subject LIKE 'no_burn_zones:%' ORDER BY id")
    assert [(r["action"], r["subject"]) for r in audit] == [
        ("layer.publish", "no_burn_zones:1"), ("layer.publish", "no_burn_zones:2"),
        ("layer.restore", "no_burn_zones:1")]


def test_a_trial_publication_changes_nothing(demo_store, zone_files):
    first, _ = zone_files
    loaded = layerstore.load(demo_store, "no_burn_zones", first, actor="gis", policy=POLICY)
    tasks = demo_store.scalar("SELECT count(*) FROM tasks")
    assert loaded["cells_affected"] == loaded["differences"]["cells_added"] > 0
    assert demo_store.scalar("SELECT count(*) FROM layer_cell_flags") == 0
    assert demo_store.scalar("SELECT count(*) FROM layer_publications WHERE kind = 'no_burn_zones'") == 0
    assert layerstore.published_version(demo_store, "no_burn_zones") is None
    published = layerstore.publish(demo_store, "no_burn_zones", 1, actor="gis", policy=POLICY)
    assert published["cells_added"] == loaded["cells_affected"]
    assert demo_store.scalar("SELECT count(DISTINCT cell) FROM layer_cell_flags") == published["cells_added"]
    assert demo_store.scalar("SELECT count(*) FROM tasks") == tasks


def test_a_failing_file_stores_no_version(demo_store, tmp_path):
    path = tmp_path / "noprj.csv"
    path.write_text("name,x,y\n甲,380000,3810000\n", encoding="utf-8")
    with pytest.raises(CRSError, match="noprj.csv"):
        layerstore.load(demo_store, "coal_sale_points", path, actor="gis", policy=POLICY)
    assert layerstore.versions(demo_store, "coal_sale_points").empty


# -- services: roles and the screen's data ------------------------------------------------------------------------

def account(store, name, role):
    services.add_user(store, services.CLI, name, "correct horse battery", role=role, unit="410329")
    return auth.load_user(store, name)


def test_gis_staff_load_and_publish_other_roles_are_refused(demo_store, zone_files):
    first, _ = zone_files
    gis, inspector = account(demo_store, "gis_t", "gis_staff"), account(demo_store, "insp_t", "inspector")
    with pytest.raises(PermissionDenied):
        services.layer_load(demo_store, inspector, "no_burn_zones", first)
    assert layerstore.versions(demo_store, "no_burn_zones").empty
    assert demo_store.scalar("SELECT count(*) FROM access_denials") >= 1
    result = services.layer_load(demo_store, gis, "no_burn_zones", first.read_bytes(), name="v1.geojson",
                                 publish=True)
    assert result["published"] and result["version"] == 1
    assert layerstore.versions(demo_store, "no_burn_zones").uploaded_by.tolist() == ["gis_t"]
    with pytest.raises(PermissionDenied):
        services.layer_restore(demo_store, inspector, "no_burn_zones", 1)
    with pytest.raises(PermissionDenied):
        services.layer_list(demo_store, inspector)
    assert services.layer_versions(demo_store, gis, "no_burn_zones").version.tolist() == [1]


def test_preview_gives_simplified_geojson_bounds_and_what_publishing_would_do(demo_store, zone_files):
    first, _ = zone_files
    services.layer_load(demo_store, services.CLI, "no_burn_zones", first)
    preview = services.layer_preview(demo_store, services.CLI, "no_burn_zones", 1)
    lat, lng = centre(demo_store)
    assert preview["rows"] == preview["shown"] == 2
    assert preview["bounds"] == pytest.approx([lng - 0.03, lat - 0.03, lng + 0.03, lat + 0.03])
    features = preview["geojson"]["features"]
    assert [f["properties"]["name"] for f in features] == ["城关", "南部"]
    assert features[0]["geometry"]["type"] == "Polygon"
    json.dumps(preview["geojson"])  # plain data, ready for a map
    assert preview["differences"]["cells_added"] > 0 and preview["info"]["file_name"] == "v1.geojson"
    assert demo_store.scalar("SELECT count(*) FROM layer_cell_flags") == 0


def test_crs_candidates_service_uses_the_region(demo_store, tmp_path):
    lat, lng = centre(demo_store)
    projected = gpd.GeoSeries([shapely.Point(lng, lat)], crs=4326).to_crs(4546).iloc[0]
    path = tmp_path / "pts.csv"
    path.write_text(f"name,x,y\n甲,{projected.x:.3f},{projected.y:.3f}\n", encoding="utf-8")
    items = services.layer_crs_candidates(demo_store, services.CLI, path.read_bytes(), name="pts.csv")
    assert [i["crs"] for i in items[:2]] == ["EPSG:4546", "EPSG:4508"]
    assert items[0]["in_region"] and not items[2]["in_region"]
    assert items[0]["bounds"][:2] == pytest.approx([lng, lat], abs=1e-6)
    loaded = services.layer_load(demo_store, services.CLI, "coal_sale_points", path, crs=items[0]["crs"])
    assert (loaded["rows"], loaded["crs"]) == (1, "EPSG:4546")


def test_layer_picker_lists_geopackage_layers(tmp_path, demo_store):
    path = tmp_path / "two.gpkg"
    lat, lng = centre(demo_store)
    for layer in ("zones_a", "zones_b"):
        gpd.GeoDataFrame({"类型": ["禁燃区"]}, geometry=[shapely.box(lng, lat, lng + 0.01, lat + 0.01)],
                         crs=4326).to_file(path, layer=layer, driver="GPKG")
    assert services.layer_file_layers(path.read_bytes(), name="two.gpkg") == ["zones_a", "zones_b"]
    with pytest.raises(ValidationError, match="zones_a, zones_b"):
        services.layer_load(demo_store, services.CLI, "no_burn_zones", path)
    assert services.layer_load(demo_store, services.CLI, "no_burn_zones", path, layer="zones_b")["rows"] == 1


# -- the command line -----------------------------------------------------------------------------------------------

def run(db, *argv):
    lines: list[str] = []
    status = main([*argv, "--db", str(db), "--lang", "en"], out=lines.append)
    return status, lines


def test_cli_load_list_publish_restore(demo_copy, tmp_path, zone_files, monkeypatch):
    monkeypatch.delenv("GRIDWATCH_DB", raising=False)
    db = demo_copy
    first, second = zone_files
    status, out = run(db, "layers", "load", "no_burn_zones", str(first), "--json")
    assert status == 0
    result = json.loads(out[0])
    assert list(result)[:6] == ["version", "rows", "rejected", "repaired", "crs", "cells_affected"]
    assert (result["version"], result["rows"], result["crs"], result["published"]) == (1, 2, "EPSG:4326", False)
    status, out = run(db, "layers", "load", "no_burn_zones", str(second), "--zone-type", "straw_burning",
                      "--publish", "--json")
    assert status == 0 and json.loads(out[0])["differences"]["zones"] == {"high_polluting_fuel": 0,
                                                                        "straw_burning": 1}
    status, out = run(db, "layers", "publish", "no_burn_zones", "1", "--json")
    assert status == 0 and json.loads(out[0])["previous"] == 2
    status, out = run(db, "layers", "restore", "no_burn_zones", "2", "--json")
    assert status == 0 and json.loads(out[0])["version"] == 2
    status, out = run(db, "layers", "list", "--json")
    listed = json.loads(out[0])
    assert [(r["kind"], r["version"], r["published"]) for r in listed if r["kind"] == "no_burn_zones"] == [
        ("no_burn_zones", 2, True), ("no_burn_zones", 1, False)]
    status, out = run(db, "layers", "publish", "no_burn_zones", "7", "--json")
    assert status == 2 and "no version 7" in json.loads(out[0])["error"]
    status, out = run(db, "layers", "load", "rivers", str(first), "--json")
    assert status == 2 and "rivers" in json.loads(out[0])["error"]
    status, out = run(db, "zones", "coal-checks", "--json")
    assert status == 0 and json.loads(out[0])["created"] == 0  # the straw-only version is published
    with open_sealed(str(db)) as store:
        assert layerstore.published_version(store, "no_burn_zones") == 2
