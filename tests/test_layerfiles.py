"""Reading layer files: every format GIS staff have, CRS handling (never guessed), geometry repair and rejection."""

from __future__ import annotations

import sqlite3
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gridwatch.crs import gcj02_to_wgs84
from gridwatch.errors import CRSError, ValidationError
from gridwatch.i18n import translate_error
from gridwatch.layerfiles import candidate_crs_codes, crs_candidates, read_layer_file, repair_geometries

# two squares near 伊川县 (112.4 E, 34.4 N), 0.02° a side
A = shapely.box(112.40, 34.40, 112.42, 34.42)
B = shapely.box(112.45, 34.40, 112.47, 34.42)
NAMES = ["城关禁燃区", "彭婆禁燃区"]
YICHUAN_BOX = shapely.box(112.1, 34.1, 112.8, 34.7)


def frame(geoms=(A, B), names=NAMES, crs=4326) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"名称": list(names), "类型": ["高污染燃料禁燃区"] * len(names)},
                            geometry=list(geoms), crs=crs)


def zip_shapefile(gdf: gpd.GeoDataFrame, folder: Path, stem: str, *, encoding: str = "UTF-8",
                  drop: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    gdf.to_file(folder / f"{stem}.shp", encoding=encoding)
    archive = folder / f"{stem}.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for part in sorted(folder.glob(f"{stem}.*")):
            if part.suffix.lower() not in (".zip", *drop):
                z.write(part, part.name)
    return archive


def corners(geom: shapely.Geometry) -> np.ndarray:
    return np.round(np.asarray(shapely.bounds(geom)), 6)


def test_geojson_in_wgs84_is_read_as_is(tmp_path):
    path = tmp_path / "zones.geojson"
    frame().to_file(path)
    got = read_layer_file(path, geometry="polygon")
    assert got.crs == "EPSG:4326"
    assert got.read == 2 and len(got.rejected) == 0 and got.repaired == []
    assert got.attributes["名称"].tolist() == NAMES
    assert corners(got.geoms[0]).tolist() == [112.40, 34.40, 112.42, 34.42]
    assert got.feature_no.tolist() == [1, 2]


def test_zipped_shapefile_in_gauss_kruger_comes_back_to_the_same_place(tmp_path):
    archive = zip_shapefile(frame().to_crs(4546), tmp_path / "shp", "zones")
    got = read_layer_file(archive, geometry="polygon")
    assert got.crs == "EPSG:4546"
    # a round trip through the projection: the corners come back to 1e-6 degrees (≈ 0.1 m)
    assert np.abs(np.asarray(shapely.bounds(got.geoms[1])) - [112.45, 34.40, 112.47, 34.42]).max() < 1e-6
    assert got.attributes["名称"].tolist() == NAMES


def test_shapefile_without_prj_is_never_guessed_and_the_candidates_are_previewed(tmp_path):
    archive = zip_shapefile(frame().to_crs(4546), tmp_path / "shp", "noprj", drop=(".prj",))
    with pytest.raises(CRSError) as info:
        read_layer_file(archive)
    # 6-digit eastings fit every central meridian: without the region all are candidates
    assert "noprj.zip" in str(info.value) and "EPSG:4534" in str(info.value)
    assert translate_error(info.value, "zh_CN") != str(info.value)
    with pytest.raises(CRSError) as info:
        read_layer_file(archive, region=YICHUAN_BOX)
    assert "EPSG:4546, EPSG:4508 (" in str(info.value)  # only CM 111° (3- and 6-degree zones) puts it here
    items = crs_candidates(archive, region=YICHUAN_BOX)
    assert len(items) == 21 + 11 and {i["crs"] for i in items} >= {"EPSG:4546", "EPSG:4547", "EPSG:4508"}
    assert [i["crs"] for i in items[:2]] == ["EPSG:4546", "EPSG:4508"]
    assert items[0]["in_region"] and items[0]["inside"] == 1.0
    assert items[0]["name"] == "CGCS2000 / 3-degree Gauss-Kruger CM 111E"
    assert np.abs(np.asarray(items[0]["bounds"]) - [112.40, 34.40, 112.47, 34.42]).max() < 1e-6
    assert not any(i["in_region"] for i in items[2:])
    got = read_layer_file(archive, crs=items[0]["crs"])
    assert got.crs == "EPSG:4546"


def test_zone_numbered_eastings_name_their_zone():
    # CGCS2000 3-degree zone 38 (EPSG:4526) puts 38 in front of the easting
    xy = np.array([[38_390_000.0, 3_810_000.0], [38_400_000.0, 3_820_000.0]])
    assert candidate_crs_codes(xy) == ["EPSG:4526"]
    assert candidate_crs_codes(np.array([[112.4, 34.4]])) == ["EPSG:4326", "EPSG:4490", "gcj02"]


def test_declared_crs_contradicted_by_the_user_is_refused(tmp_path):
    archive = zip_shapefile(frame().to_crs(4546), tmp_path / "shp", "zones")
    with pytest.raises(CRSError, match="EPSG:4546"):
        read_layer_file(archive, crs="EPSG:4547")


def test_geojson_in_metres_without_a_crs_member_is_not_taken_for_degrees(tmp_path):
    path = tmp_path / "metres.geojson"
    projected = frame().to_crs(4546)
    path.write_text(projected.to_json(drop_id=True).replace('"crs"', '"x_crs"'), encoding="utf-8")
    with pytest.raises(CRSError, match="metres.geojson declares no coordinate reference system"):
        read_layer_file(path)
    with pytest.raises(CRSError, match="EPSG:4546, EPSG:4508 "):
        read_layer_file(path, region=YICHUAN_BOX)
    got = read_layer_file(path, crs="EPSG:4546")
    assert np.abs(np.asarray(shapely.bounds(got.geoms[0])) - [112.40, 34.40, 112.42, 34.42]).max() < 1e-6


@pytest.mark.parametrize("encoding", ["GBK", "UTF-8"])
def test_shapefile_attributes_in_gbk_or_utf8_without_cpg(tmp_path, encoding):
    archive = zip_shapefile(frame(), tmp_path / "shp", "zones", encoding=encoding, drop=(".cpg",))
    with zipfile.ZipFile(archive) as z:
        assert not any(n.endswith(".cpg") for n in z.namelist())
    got = read_layer_file(archive)
    assert got.attributes["名称"].tolist() == NAMES
    assert got.attributes["类型"].tolist() == ["高污染燃料禁燃区"] * 2
    assert any(encoding in w for w in got.warnings)


def test_geopackage_with_two_layers_needs_a_choice(tmp_path):
    path = tmp_path / "two.gpkg"
    frame().to_file(path, layer="zones", driver="GPKG")
    frame(geoms=[B], names=["另一层"]).to_file(path, layer="other", driver="GPKG")
    with pytest.raises(ValidationError, match="other, zones|zones, other"):
        read_layer_file(path)
    got = read_layer_file(path, layer="other")
    assert got.attributes["名称"].tolist() == ["另一层"]


KML = """<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document><name>sale points</name>
<NetworkLink><name>remote</name><Link><href>http://127.0.0.1:9/more.kml</href></Link></NetworkLink>
<Placemark><name>甲煤店</name><Point><coordinates>112.41,34.41,0</coordinates></Point></Placemark>
<Placemark><name>乙煤店</name><Point><coordinates>112.46,34.41,0</coordinates></Point></Placemark>
</Document></kml>
"""


def test_kml_and_kmz_are_read_and_network_links_refused(tmp_path):
    without_link = "\n".join(line for line in KML.splitlines() if "NetworkLink" not in line)
    for text, refused in ((KML, True), (without_link, False)):
        kml = tmp_path / "points.kml"
        kml.write_text(text, encoding="utf-8")
        kmz = tmp_path / "points.kmz"
        with zipfile.ZipFile(kmz, "w") as z:
            z.writestr("doc.kml", text)
        for path in (kml, kmz):
            if refused:
                with pytest.raises(ValidationError, match=r"points.km[lz] refers to data elsewhere \(<NetworkLink>\)"):
                    read_layer_file(path, geometry="point")
                continue
            got = read_layer_file(path, geometry="point")
            assert got.crs == "EPSG:4326"
            assert got.attributes["Name"].tolist() == ["甲煤店", "乙煤店"]
            assert [(g.x, g.y) for g in got.geoms] == [(112.41, 34.41), (112.46, 34.41)]


def test_csv_with_coordinate_columns_gbk_and_bad_rows(tmp_path):
    path = tmp_path / "points.csv"
    path.write_bytes("名称,经度,纬度\n甲煤店,112.41,34.41\n乙煤店,abc,34.41\n\n丙煤店,112.46,34.41\n".encode("gbk"))
    with pytest.raises(CRSError, match="points.csv"):
        read_layer_file(path, geometry="point")  # a CSV declares no CRS
    got = read_layer_file(path, crs="EPSG:4490", geometry="point")
    assert got.crs == "EPSG:4490"
    assert got.attributes["名称"].tolist() == ["甲煤店", "丙煤店"]
    assert got.feature_no.tolist() == [2, 5]  # header = line 1, the blank line 4 is no row
    assert got.rejected[["line", "reason"]].values.tolist() == [[3, "no_geometry"]]
    assert "乙煤店" in got.rejected.raw[0]
    assert got.read == 3


def test_gcj02_is_converted_when_the_user_says_so(tmp_path):
    path = tmp_path / "amap.csv"
    path.write_text("name,lng,lat\n店,112.4063,34.39888\n", encoding="utf-8")
    got = read_layer_file(path, crs="gcj02", geometry="point")
    lat, lng = gcj02_to_wgs84(lat=34.39888, lng=112.4063)
    assert got.crs == "gcj02"
    assert (got.geoms[0].x, got.geoms[0].y) == pytest.approx((lng, lat), abs=1e-9)
    assert (round(lng, 4), round(lat, 4)) == (112.4, 34.4)  # ≈ 580 m west of the map-app position


def test_features_of_the_wrong_kind_or_without_geometry_are_rejected_one_by_one(tmp_path):
    path = tmp_path / "mixed.geojson"
    gpd.GeoDataFrame({"名称": ["面", "点", "空"]}, geometry=[A, shapely.Point(112.41, 34.41), None],
                     crs=4326).to_file(path)
    got = read_layer_file(path, geometry="polygon")
    assert got.attributes["名称"].tolist() == ["面"]
    assert got.rejected[["line", "reason"]].values.tolist() == [[2, "not_polygon"], [3, "no_geometry"]]


def test_inverted_hole_is_repaired_keeping_its_area_and_a_bow_tie_is_rejected(tmp_path):
    # a square 4 × 4 whose ring runs in to a triangle and back through the same vertex (an "inverted hole"):
    # invalid for GEOS, area 16 − 2 = 14 before and after repair
    ring = [(0, 0), (4, 0), (4, 4), (2, 4), (3, 2), (1, 2), (2, 4), (0, 4), (0, 0)]
    inverted = shapely.Polygon([(112.4 + x * 0.01, 34.4 + y * 0.01) for x, y in ring])
    bow_tie = shapely.Polygon([(112.5, 34.4), (112.52, 34.42), (112.52, 34.4), (112.5, 34.42)])
    assert not inverted.is_valid and not bow_tie.is_valid
    path = tmp_path / "bad.geojson"
    gpd.GeoDataFrame({"名称": ["倒洞", "蝴蝶结", "正常"]}, geometry=[inverted, bow_tie, B], crs=4326).to_file(path)
    got = read_layer_file(path, geometry="polygon")
    assert got.repaired == [1]
    assert got.attributes["名称"].tolist() == ["倒洞", "正常"]
    assert got.geoms[0].is_valid and got.geoms[0].area == pytest.approx(14e-4, rel=1e-9)
    assert got.rejected[["line", "reason"]].values.tolist() == [[2, "invalid_geometry"]]
    assert any("repaired" in w for w in got.warnings)


def test_repair_threshold_decides_between_repair_and_rejection():
    # a unit square whose top edge crosses itself, drawing two triangles of 0.2 × 0.05 / 2 = 0.005 each:
    # the drawn (shoelace) area is 1 + 0.005 − 0.005 = 1.0, the repaired one 1 + 0.005 + 0.005 = 1.01 (+1 %)
    geom = shapely.Polygon([(0, 0), (1, 0), (1, 1), (0.6, 1), (0.4, 1.1), (0.6, 1.1), (0.4, 1.0), (0, 1)])
    assert not geom.is_valid and geom.area == pytest.approx(1.0)
    fixed, repaired, refused, _ = repair_geometries(np.array([geom]), max_area_change=0.011)
    assert repaired.tolist() == [0] and refused.tolist() == []
    assert fixed[0].is_valid and fixed[0].area == pytest.approx(1.01)
    kept, repaired, refused, reasons = repair_geometries(np.array([geom]), max_area_change=0.009)
    assert repaired.tolist() == [] and refused.tolist() == [0] and reasons[0].startswith("Self-intersection")
    assert kept[0] is geom


def test_unreadable_and_unknown_files_are_refused_naming_them(tmp_path):
    bad = tmp_path / "notes.docx"
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(ValidationError, match="notes.docx"):
        read_layer_file(bad)
    broken = tmp_path / "broken.gpkg"
    sqlite3.connect(broken).close()
    with pytest.raises(ValidationError, match="broken.gpkg"):
        read_layer_file(broken)
    unsafe = tmp_path / "unsafe.zip"
    with zipfile.ZipFile(unsafe, "w") as z:
        z.writestr("../evil.shp", b"")
    with pytest.raises(ValidationError, match="unsafe"):
        read_layer_file(unsafe)
