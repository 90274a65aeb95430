"""Tests for gridwatch.crs: GCJ-02, CRS resolution, reprojection, bounds checks, geodesy."""

from __future__ import annotations

import numpy as np
import prcoords
import pyproj
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import LineString, MultiPolygon, Point, Polygon, box

from gridwatch.crs import (
    CRSSpec,
    check_lnglat_bounds,
    gcj02_to_wgs84,
    geodesic_area_m2,
    geodesic_distance_m,
    geometries_gcj02_to_wgs84,
    geometries_wgs84_to_gcj02,
    resolve_crs,
    to_wgs84,
    transform_geometries,
    wgs84_to_gcj02,
)
from gridwatch.errors import CRSError

# Inside the rough China box with a margin, so GCJ-02 shifts never cross its edge.
china_lng = st.floats(min_value=73.0, max_value=136.5, allow_nan=False)
china_lat = st.floats(min_value=1.0, max_value=55.0, allow_nan=False)


def _random_china_points(n: int, seed: int = 20240601) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(73.0, 136.5, n), rng.uniform(1.0, 55.0, n)


# --- GCJ-02 -----------------------------------------------------------------


def test_forward_matches_prcoords_reference():
    lng, lat = _random_china_points(2000)
    got_lat, got_lng = wgs84_to_gcj02(lat=lat, lng=lng)
    # prcoords takes and returns (lat, lon) pairs.
    ref = np.array([prcoords.wgs_gcj((la, lo)) for lo, la in zip(lng, lat)])
    np.testing.assert_allclose(got_lat, ref[:, 0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got_lng, ref[:, 1], rtol=0, atol=1e-9)


def test_inverse_is_better_than_prcoords_iterative_reference():
    lng, lat = _random_china_points(500, seed=7)
    g_lat, g_lng = wgs84_to_gcj02(lat=lat, lng=lng)
    w_lat, w_lng = gcj02_to_wgs84(lat=g_lat, lng=g_lng)
    assert np.max(np.abs(w_lng - lng)) < 1e-9
    assert np.max(np.abs(w_lat - lat)) < 1e-9
    ref = np.array([prcoords.gcj_wgs_bored((la, lo)) for lo, la in zip(g_lng, g_lat)])
    # prcoords stops at 1e-5 deg; agreement only to its own tolerance.
    assert np.max(np.abs(ref[:, 1] - w_lng)) < 1e-5
    assert np.max(np.abs(ref[:, 0] - w_lat)) < 1e-5


@settings(max_examples=300, deadline=None)
@given(lng=china_lng, lat=china_lat)
def test_inverse_round_trip_from_wgs(lng, lat):
    g_lat, g_lng = wgs84_to_gcj02(lat=lat, lng=lng)
    w_lat, w_lng = gcj02_to_wgs84(lat=g_lat, lng=g_lng)
    assert abs(w_lng - lng) < 1e-9
    assert abs(w_lat - lat) < 1e-9


@settings(max_examples=300, deadline=None)
@given(lng=china_lng, lat=china_lat)
def test_inverse_round_trip_from_gcj(lng, lat):
    w_lat, w_lng = gcj02_to_wgs84(lat=lat, lng=lng)
    g_lat, g_lng = wgs84_to_gcj02(lat=w_lat, lng=w_lng)
    assert abs(g_lng - lng) < 1e-9
    assert abs(g_lat - lat) < 1e-9


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(china_lng, china_lat), min_size=1, max_size=50))
def test_inverse_vectorised_equals_elementwise(points):
    lng = np.array([p[0] for p in points])
    lat = np.array([p[1] for p in points])
    v_lat, v_lng = gcj02_to_wgs84(lat=lat, lng=lng)
    for i, (lo, la) in enumerate(points):
        s_lat, s_lng = gcj02_to_wgs84(lat=la, lng=lo)
        assert abs(s_lng - v_lng[i]) < 1e-9 and abs(s_lat - v_lat[i]) < 1e-9


@pytest.mark.parametrize("fn", [wgs84_to_gcj02, gcj02_to_wgs84])
def test_outside_china_unchanged(fn):
    lng = np.array([2.35, -74.0, 139.69, 100.5, 72.0, 112.0, np.nan])
    lat = np.array([48.85, 40.7, 35.69, 0.5, 30.0, 56.0, 34.0])
    out_lat, out_lng = fn(lat=lat, lng=lng)
    np.testing.assert_array_equal(out_lng, lng)
    np.testing.assert_array_equal(out_lat, lat)


def test_mixed_inside_and_outside_and_shapes():
    lng = np.array([[2.35, 112.4], [113.6, -74.0]])
    lat = np.array([[48.85, 34.4], [34.7, 40.7]])
    out_lat, out_lng = wgs84_to_gcj02(lat=lat, lng=lng)
    assert out_lng.shape == (2, 2)
    assert out_lng[0, 0] == 2.35 and out_lat[1, 1] == 40.7
    assert out_lng[0, 1] != 112.4
    # inputs are not modified in place
    assert lng[0, 1] == 112.4


def test_scalars_give_floats_and_broadcasting():
    out = gcj02_to_wgs84(lat=34.4, lng=112.4)
    assert all(isinstance(v, float) for v in out)
    b_lat, b_lng = wgs84_to_gcj02(lat=34.4, lng=[112.4, 113.0])
    assert b_lng.shape == b_lat.shape == (2,)


def test_coordinates_go_in_by_name_and_come_back_latitude_first():
    with pytest.raises(TypeError):
        wgs84_to_gcj02(112.4, 34.4)  # an order left to memory is refused
    with pytest.raises(TypeError):
        geodesic_distance_m(34.0, 112.0, 35.0, 112.0)
    lat, lng = gcj02_to_wgs84(lat=34.39888, lng=112.4063)
    assert abs(lat - 34.4) < 1e-4 and abs(lng - 112.4) < 1e-4


@pytest.mark.parametrize(
    ("lng", "lat"),
    [(112.4, 34.4), (113.65, 34.76), (115.0, 32.0), (111.0, 33.5), (114.0, 31.5), (116.5, 34.0)],
)
def test_henan_offset_sanity_central_and_south(lng, lat):
    g_lat, g_lng = wgs84_to_gcj02(lat=lat, lng=lng)
    assert 0.005 <= g_lng - lng <= 0.007
    assert -0.003 <= g_lat - lat <= -0.001
    east_m = geodesic_distance_m(lat1=lat, lng1=lng, lat2=lat, lng2=g_lng)
    assert 450 < east_m < 650


@pytest.mark.parametrize(("lng", "lat"), [(114.35, 36.1), (112.9, 35.1), (110.5, 35.0), (116.0, 36.3)])
def test_henan_offset_sanity_north(lng, lat):
    # North of ~34.8 N the southward GCJ-02 shift fades to about zero (Anyang: +0.0001 deg).
    g_lat, g_lng = wgs84_to_gcj02(lat=lat, lng=lng)
    assert 0.005 <= g_lng - lng <= 0.007
    assert -0.003 <= g_lat - lat <= 0.0005


def test_geometries_round_trip_keeps_structure():
    hole = [(112.3, 34.3), (112.3, 34.35), (112.35, 34.35), (112.35, 34.3)]
    poly = Polygon([(112.0, 34.0), (112.5, 34.0), (112.5, 34.5), (112.0, 34.5)], [hole])
    geoms = np.array([MultiPolygon([poly]), LineString([(113, 34), (114, 35)]), Point(112.4, 34.4), None])
    there = geometries_wgs84_to_gcj02(geoms)
    back = geometries_gcj02_to_wgs84(there)
    assert back[3] is None
    assert [g.geom_type for g in back[:3]] == ["MultiPolygon", "LineString", "Point"]
    np.testing.assert_allclose(shapely.get_coordinates(back[:3]), shapely.get_coordinates(geoms[:3]), atol=1e-9)
    assert shapely.get_num_interior_rings(back[0].geoms[0]) == 1


def test_transform_geometries_passes_lng_then_lat():
    seen = {}

    def fn(lng, lat):
        seen["lng"], seen["lat"] = lng.copy(), lat.copy()
        return lng, lat

    transform_geometries([Point(112.0, 34.0)], fn)
    assert seen["lng"].tolist() == [112.0] and seen["lat"].tolist() == [34.0]


# --- resolve_crs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "EPSG:4326"),
        ("EPSG:4326", "EPSG:4326"),
        ("epsg:4490", "EPSG:4490"),
        (4490, "EPSG:4490"),
        ("4546", "EPSG:4546"),
        (pyproj.CRS.from_epsg(4546), "EPSG:4546"),
        (pyproj.CRS.from_epsg(4490).to_wkt(), "EPSG:4490"),
        ("+proj=tmerc +lat_0=0 +lon_0=111 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs", None),
    ],
)
def test_resolve_crs_accepts(value, name):
    spec = resolve_crs(value)
    assert isinstance(spec, CRSSpec)
    assert not spec.is_gcj02
    assert isinstance(spec.pyproj_crs, pyproj.CRS)
    if name is not None:
        assert spec.name == name


@pytest.mark.parametrize("value", ["gcj02", "GCJ-02", "gcj-02", "GCJ02", " Gcj-02 "])
def test_resolve_crs_gcj02(value):
    spec = resolve_crs(value)
    assert spec.is_gcj02 and spec.pyproj_crs is None and spec.name == "GCJ-02"


@pytest.mark.parametrize("value", ["mars", "", "EPSG:999999", "gcj", 0, -4326, True, 4.5, [4326]])
def test_resolve_crs_rejects(value):
    with pytest.raises(CRSError) as info:
        resolve_crs(value)
    message = str(info.value)
    assert repr(value) in message
    assert "GCJ-02" in message and "EPSG" in message and "WKT" in message
    assert info.value.params["value"] == value
    assert "{value" in info.value.template  # the value is a param, not baked into the msgid


def test_resolve_crs_rejects_non_horizontal():
    with pytest.raises(CRSError, match="neither geographic nor projected"):
        resolve_crs("EPSG:5773")  # EGM96 height


def test_crsspec_is_frozen():
    spec = resolve_crs("gcj02")
    with pytest.raises(AttributeError):
        spec.name = "x"  # type: ignore[misc]


# --- to_wgs84 -------------------------------------------------------------------


def test_to_wgs84_from_gauss_kruger_4546():
    lng, lat = 112.43, 34.41
    fwd = pyproj.Transformer.from_crs(4326, 4546, always_xy=True)
    x, y = fwd.transform(lng, lat)
    assert 600_000 < x < 660_000 and 3_780_000 < y < 3_840_000  # 1.43 deg east of CM 111E
    out = to_wgs84(np.array([Point(x, y), LineString([(x, y), (x + 1000, y)])]), resolve_crs("EPSG:4546"), source="pts.csv")
    assert abs(out[0].x - lng) < 1e-7 and abs(out[0].y - lat) < 1e-7
    assert out[1].geom_type == "LineString"


def test_to_wgs84_from_gcj02_and_cgcs2000_and_wgs84():
    g_lat, g_lng = wgs84_to_gcj02(lat=34.4, lng=112.4)
    out = to_wgs84([Point(g_lng, g_lat)], resolve_crs("gcj02"), source="a.geojson")
    assert abs(out[0].x - 112.4) < 1e-9 and abs(out[0].y - 34.4) < 1e-9
    out = to_wgs84([Point(112.4, 34.4)], resolve_crs(4490), source="a.geojson")
    assert abs(out[0].x - 112.4) < 1e-6 and abs(out[0].y - 34.4) < 1e-6
    out = to_wgs84([Point(112.4, 34.4, 10.0)], resolve_crs(None), source="a.geojson")
    assert out[0].equals(Point(112.4, 34.4)) and not out[0].has_z


@pytest.mark.parametrize("crs", ["gcj02", "EPSG:4326", "EPSG:4490"])
def test_to_wgs84_geographic_checks_bounds(crs):
    with pytest.raises(CRSError, match="fires_utm.csv"):
        to_wgs84([Point(500000.0, 3806000.0)], resolve_crs(crs), source="fires_utm.csv")


# --- check_lnglat_bounds ---------------------------------------------------------


def test_check_lnglat_bounds_accepts_degrees():
    check_lnglat_bounds(np.array([[112.4, 34.4], [-179.9, -89.9], [np.nan, np.nan]]), source="ok.csv")
    check_lnglat_bounds(np.array([box(112, 34, 113, 35), None]), source="ok.geojson")
    check_lnglat_bounds(np.empty((0, 2)), source="empty.csv")


def test_check_lnglat_bounds_projected_message():
    with pytest.raises(CRSError) as info:
        check_lnglat_bounds(np.array([Point(112.4, 34.4), Point(543210.0, 3806000.0)]), source="plants_gk.geojson")
    message = str(info.value)
    assert "plants_gk.geojson" in message
    assert "projected" in message and "--crs" in message
    assert "543210.0" in message
    assert info.value.params["source"] == "plants_gk.geojson"


def test_check_lnglat_bounds_swapped_axes_message():
    with pytest.raises(CRSError, match="swapped") as info:
        check_lnglat_bounds([[34.4, 112.4]], source="latlng.csv")
    assert "latlng.csv" in str(info.value)


# --- geodesy ---------------------------------------------------------------------


def test_geodesic_distance_matches_pyproj_and_sanity():
    geod = pyproj.Geod(ellps="WGS84")
    lng1, lat1 = _random_china_points(50, seed=3)
    lng2, lat2 = _random_china_points(50, seed=4)
    _, _, ref = geod.inv(lng1, lat1, lng2, lat2)
    np.testing.assert_allclose(geodesic_distance_m(lat1=lat1, lng1=lng1, lat2=lat2, lng2=lng2), ref, rtol=1e-12)
    one_degree = float(geodesic_distance_m(lat1=34.0, lng1=112.4, lat2=35.0, lng2=112.4))
    assert 110_800 < one_degree < 111_100
    assert float(geodesic_distance_m(lat1=34.4, lng1=112.4, lat2=34.4, lng2=112.4)) == 0.0


def test_geodesic_distance_broadcasts():
    d = geodesic_distance_m(lat1=34.4, lng1=112.4, lat2=np.array([[34.5], [34.6]]), lng2=np.array([112.4, 112.5]))
    assert d.shape == (2, 2)
    assert geodesic_distance_m(lat1=34.4, lng1=112.4, lat2=34.4, lng2=112.5).shape == ()


def test_geodesic_area():
    geod = pyproj.Geod(ellps="WGS84")
    square = box(112.0, 34.0, 112.1, 34.1)
    clockwise = shapely.orient_polygons(square, exterior_cw=True)
    with_hole = Polygon(square.exterior.coords, [box(112.02, 34.02, 112.04, 34.04).exterior.coords])
    areas = geodesic_area_m2(np.array([square, clockwise, with_hole, MultiPolygon([square]), LineString([(112, 34), (113, 35), (112, 35)]), None]))
    ref = abs(geod.geometry_area_perimeter(square)[0])
    hole_ref = abs(geod.geometry_area_perimeter(box(112.02, 34.02, 112.04, 34.04))[0])
    assert areas[0] == pytest.approx(ref) and areas[1] == pytest.approx(ref) and areas[3] == pytest.approx(ref)
    assert areas[2] == pytest.approx(ref - hole_ref)
    assert areas[4] == 0.0 and np.isnan(areas[5])
    # ~ (0.1 deg * 92.3 km/deg) * (0.1 deg * 110.9 km/deg) at 34 N
    assert 100e6 < ref < 104e6
