"""Loading township boundaries: formats, CRSs, repairs, and bad input refused with the database unchanged."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gridwatch import services
from gridwatch.audit import open_sealed
from gridwatch.crs import geodesic_distance_m
from gridwatch.errors import CRSError, GridwatchError, ValidationError
from gridwatch.i18n import translate_error
from gridwatch.storage import Store

from conftest import copy_db

COUNTY = "410329"
CODES = ["410329001", "410329002", "410329003"]
NAMES = ["西部乡", "中部镇", "东部乡"]
FIELDS = dict(level="township", code_field="XZDM", name_field="XZMC", parent_field="FJDM")


# -- helpers ---------------------------------------------------------------------------------


def county_geom(store: Store) -> shapely.Geometry:
    """伊川县 as stored."""
    wkb = store.scalar(f"SELECT {store.geom_to_wkb_sql('geom')} FROM units WHERE code = ?", [COUNTY])
    return shapely.from_wkb(bytes(wkb))


def three_parts(county: shapely.Geometry) -> list[shapely.Geometry]:
    """The county cut into west, middle and east thirds by two vertical lines."""
    x0, y0, x1, y1 = county.bounds
    xs = [x0 - 0.01, x0 + (x1 - x0) / 3, x0 + 2 * (x1 - x0) / 3, x1 + 0.01]
    return [shapely.clip_by_rect(county, xs[i], y0 - 0.01, xs[i + 1], y1 + 0.01) for i in range(3)]


def write_geojson(path: Path, geoms, codes=CODES, names=NAMES, parents=None) -> Path:
    """A GeoJSON written by hand, so that invalid and empty geometries survive as given."""
    parents = parents or [COUNTY] * len(codes)
    features = [
        {"type": "Feature", "properties": {"XZDM": c, "XZMC": n, "FJDM": p},
         "geometry": json.loads(shapely.to_geojson(g))}
        for c, n, p, g in zip(codes, names, parents, geoms)
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
                    encoding="utf-8")
    return path


def frame(geoms, codes=CODES, names=NAMES) -> gpd.GeoDataFrame:
    """The townships as a GeoDataFrame in WGS84."""
    return gpd.GeoDataFrame({"XZDM": codes, "XZMC": names, "FJDM": [COUNTY] * len(codes)},
                            geometry=list(geoms), crs=4326)


def zip_shapefile(gdf: gpd.GeoDataFrame, folder: Path, name: str, *, drop: tuple[str, ...] = ()) -> Path:
    """Write ``gdf`` as a Shapefile, leave out the ``drop`` suffixes, and zip the rest."""
    folder.mkdir(parents=True, exist_ok=True)
    gdf.to_file(folder / f"{name}.shp", driver="ESRI Shapefile")
    archive = folder / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for member in sorted(folder.glob(f"{name}.*")):
            if member.suffix not in (".zip", *drop):
                z.write(member, member.name)
    return archive


def snapshot(store: Store) -> tuple[int, int, str, int]:
    """Counts of units and cells, a checksum of the cells' owner columns, and the audit length."""
    rows = store.query(
        "SELECT cell, city_code, county_code, township_code, village_code FROM cells ORDER BY cell")
    digest = hashlib.sha256(repr([tuple(r.values()) for r in rows]).encode()).hexdigest()
    return (store.scalar("SELECT count(*) FROM units"), len(rows), digest,
            store.scalar("SELECT count(*) FROM audit_log"))


def township_areas(store: Store) -> dict[str, float]:
    """area_km2 of the stored townships by code."""
    return {r["code"]: r["area_km2"] for r in store.query("SELECT code, area_km2 FROM units WHERE level = 'township'")}


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def county_db(tmp_path_factory) -> tuple[Path, shapely.Geometry]:
    """A file database for 伊川县 (no demo) with the 3 townships loaded; built once per module."""
    folder = tmp_path_factory.mktemp("boundaries")
    path = folder / "county.duckdb"
    with open_sealed(str(path)) as s:
        services.init_region(s, services.CLI, region=COUNTY, resolution=8)
        county = county_geom(s)
        services.load_boundaries(s, services.CLI, write_geojson(folder / "three.geojson", three_parts(county)), **FIELDS)
    return path, county


@pytest.fixture
def loaded(county_db, tmp_path) -> tuple[Store, shapely.Geometry]:
    """A private copy of ``county_db``: the store and the county geometry."""
    path = copy_db(county_db[0], tmp_path, "county.duckdb")  # with its audit key and head
    with open_sealed(str(path)) as s:
        yield s, county_db[1]


@pytest.fixture(scope="module")
def shared(county_db, tmp_path_factory) -> tuple[Store, shapely.Geometry]:
    """One copy of ``county_db`` for the tests that expect a refusal (each checks nothing changed)."""
    path = copy_db(county_db[0], tmp_path_factory.mktemp("shared"), "county.duckdb")
    with open_sealed(str(path)) as s:
        yield s, county_db[1]


def refused(store: Store, path: Path, exc_type: type[GridwatchError], **kwargs) -> GridwatchError:
    """Load ``path``, expect ``exc_type`` naming the file, and check nothing changed."""
    before = snapshot(store)
    with pytest.raises(exc_type) as info:
        services.load_boundaries(store, services.CLI, path, **{**FIELDS, **kwargs})
    assert type(info.value) is exc_type, f"{type(info.value).__name__}: {info.value}"
    assert path.name in str(info.value)
    assert snapshot(store) == before
    assert translate_error(info.value, "en") == str(info.value)
    return info.value


# -- loading ----------------------------------------------------------------------------------


def test_geojson_townships_split_the_grid(store, tmp_path):
    services.init_region(store, services.CLI, region=COUNTY, resolution=8)
    cells = store.scalar("SELECT count(*) FROM cells")
    assert store.scalar("SELECT count(*) FROM cells WHERE township_code IS NOT NULL") == 0
    path = write_geojson(tmp_path / "townships.geojson", three_parts(county_geom(store)))

    result = services.load_boundaries(store, services.CLI, path, **FIELDS)

    assert result["file"] == "townships.geojson"
    assert result["crs"] == "EPSG:4326"
    assert (result["units"], result["replaced"], result["repaired"], result["repaired_units"]) == (3, 0, 0, [])
    grid = result["grid"]
    assert grid["added"] == grid["removed"] == 0
    assert grid["moved"] == {"township": cells}  # every cell gains a township, nothing else moves
    assert grid["examples"] and all(e["level"] == "township" and e["from"] == "" and e["to"] in CODES
                                    for e in grid["examples"])
    per_township = {r["township_code"]: r["n"] for r in store.query(
        "SELECT township_code, count(*) AS n FROM cells GROUP BY township_code")}
    assert set(per_township) == set(CODES)
    assert sum(per_township.values()) == cells
    assert min(per_township.values()) > cells / 10
    assert store.scalar("SELECT count(*) FROM cells WHERE county_code <> ? OR county_code IS NULL", [COUNTY]) == 0
    stats = services.grid_stats(store, services.CLI)
    assert stats["units"]["township"] == 3
    assert stats["cells"] == cells
    stored = store.query("SELECT code, name, parent_code, source FROM units WHERE level = 'township' ORDER BY code")
    assert [(r["code"], r["name"], r["parent_code"]) for r in stored] == list(zip(CODES, NAMES, [COUNTY] * 3))
    assert {r["source"] for r in stored} == {"townships.geojson"}
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'boundaries.load'") == 1
    # the three areas add up to the county's
    county_km2 = store.scalar("SELECT area_km2 FROM units WHERE code = ?", [COUNTY])
    assert sum(township_areas(store).values()) == pytest.approx(county_km2, rel=1e-6)


def test_zipped_shapefile_in_gauss_kruger_lands_where_the_geojson_did(loaded, tmp_path):
    store, county = loaded
    geojson_areas = township_areas(store)
    geojson_cells = store.query_df("SELECT cell, township_code FROM cells ORDER BY cell")
    archive = zip_shapefile(frame(three_parts(county)).to_crs(4546), tmp_path / "shp", "xiangzhen")

    result = services.load_boundaries(store, services.CLI, archive, **FIELDS)

    assert result["crs"] == "EPSG:4546"
    assert (result["units"], result["replaced"]) == (3, 3)
    areas = township_areas(store)
    for code in CODES:
        assert areas[code] == pytest.approx(geojson_areas[code], rel=0.005)
    names = {r["code"]: r["name"] for r in store.query("SELECT code, name FROM units WHERE level = 'township'")}
    assert names == dict(zip(CODES, NAMES))  # Chinese names survive the .dbf
    after = store.query_df("SELECT cell, township_code FROM cells ORDER BY cell")
    assert (after.cell.to_numpy() == geojson_cells.cell.to_numpy()).all()
    same = (after.township_code.to_numpy() == geojson_cells.township_code.to_numpy()).mean()
    assert same > 0.99
    assert result["grid"]["moved"].get("township", 0) == int(round((1 - same) * len(after)))


def test_shapefile_without_prj_loads_when_the_crs_is_given(loaded, tmp_path):
    store, county = loaded
    archive = zip_shapefile(frame(three_parts(county)).to_crs(4546), tmp_path / "shp", "noprj", drop=(".prj",))
    result = services.load_boundaries(store, services.CLI, archive, crs="EPSG:4546", **FIELDS)
    assert result["crs"] == "EPSG:4546"
    assert result["replaced"] == 3


def test_geopackage_with_two_layers_needs_a_layer(loaded, tmp_path):
    store, county = loaded
    path = tmp_path / "two.gpkg"
    parts = three_parts(county)
    frame(parts).to_file(path, layer="xiangzhen", driver="GPKG")
    frame(parts[:1], codes=CODES[:1], names=NAMES[:1]).to_file(path, layer="other", driver="GPKG")

    err = refused(store, path, ValidationError)
    assert "xiangzhen" in str(err) and "other" in str(err)

    result = services.load_boundaries(store, services.CLI, path, layer="xiangzhen", **FIELDS)
    assert result["units"] == 3


def test_gcj02_input_is_shifted_back_by_about_half_a_kilometre(loaded, tmp_path):
    store, county = loaded
    path = write_geojson(tmp_path / "gcj.geojson", three_parts(county))

    def centroids() -> np.ndarray:
        rows = store.query(f"SELECT code, {store.geom_to_wkb_sql('geom')} AS wkb FROM units WHERE level = 'township'"
                           " ORDER BY code")
        return np.array([shapely.from_wkb(bytes(r["wkb"])).centroid.coords[0] for r in rows])

    as_wgs84 = services.load_boundaries(store, services.CLI, path, **FIELDS)
    plain = centroids()
    as_gcj = services.load_boundaries(store, services.CLI, path, crs="gcj02", **FIELDS)
    shifted = centroids()

    assert as_wgs84["crs"] == "EPSG:4326" and as_gcj["crs"] == "GCJ-02"
    distance = geodesic_distance_m(lat1=plain[:, 1], lng1=plain[:, 0], lat2=shifted[:, 1], lng2=shifted[:, 0])
    assert ((distance > 500) & (distance < 600)).all(), distance
    # around 伊川县 GCJ-02 lies east of WGS84 (and a little south), so the WGS84 result moves west
    assert (shifted[:, 0] < plain[:, 0]).all()


def test_slightly_invalid_ring_is_repaired_and_reported(loaded, tmp_path):
    store, county = loaded
    parts = three_parts(county)
    west = parts[0]
    assert west.geom_type == "Polygon"
    ring = list(west.exterior.coords)
    x, y = ring[0]
    e = 1e-4  # a ~10 m triangle inside the polygon, touching the ring at its first vertex
    inward = [(x + e, y + 2 * e), (x + 2 * e, y + e)] if west.contains(shapely.Point(x + e, y + e)) else \
        [(x - e, y - 2 * e), (x - 2 * e, y - e)]
    bad = shapely.Polygon(ring[:-1] + [ring[0], *inward, ring[0]])
    assert not bad.is_valid
    path = write_geojson(tmp_path / "touching.geojson", [bad, *parts[1:]])

    result = services.load_boundaries(store, services.CLI, path, **FIELDS)

    assert result["repaired_units"] == [CODES[0]]
    assert result["repaired"] == 1
    stored = shapely.from_wkb(bytes(store.scalar(f"SELECT {store.geom_to_wkb_sql('geom')} FROM units WHERE code = ?",
                                                 [CODES[0]])))
    assert stored.is_valid
    assert stored.area == pytest.approx(west.area, rel=1e-4)


# -- bad input: a specific error naming the file and what is wrong, nothing stored -------------


def test_shapefile_without_prj_and_no_crs_is_refused(shared, tmp_path):
    store, county = shared
    archive = zip_shapefile(frame(three_parts(county)).to_crs(4546), tmp_path / "shp", "noprj", drop=(".prj",))
    err = refused(store, archive, CRSError)
    assert "declares no coordinate reference system" in str(err)


def test_unknown_code_field_lists_the_fields(shared, tmp_path):
    store, county = shared
    path = write_geojson(tmp_path / "fields.geojson", three_parts(county))
    err = refused(store, path, ValidationError, code_field="CODE")
    message = str(err)
    assert "'CODE'" in message and "--code-field" in message
    for name in ("XZDM", "XZMC", "FJDM"):
        assert name in message


def test_bow_tie_polygon_is_refused(shared, tmp_path):
    store, county = shared
    parts = three_parts(county)
    x, y = parts[1].representative_point().coords[0]
    bow_tie = shapely.Polygon([(x - 0.02, y - 0.02), (x + 0.02, y + 0.02), (x + 0.02, y - 0.02), (x - 0.02, y + 0.02)])
    assert not bow_tie.is_valid
    path = write_geojson(tmp_path / "bowtie.geojson", [parts[0], bow_tie, parts[2]])
    err = refused(store, path, ValidationError)
    assert "feature 2" in str(err) and "Self-intersection" in str(err)


def test_empty_polygon_is_refused(shared, tmp_path):
    store, county = shared
    parts = three_parts(county)
    path = write_geojson(tmp_path / "empty.geojson", [parts[0], parts[1], shapely.Polygon()])
    err = refused(store, path, ValidationError)
    assert "feature 3" in str(err) and "no geometry" in str(err)


def test_overlapping_units_are_refused_naming_both(shared, tmp_path):
    store, county = shared
    x0, y0, x1, y1 = county.bounds
    west = shapely.clip_by_rect(county, x0, y0, x0 + 0.6 * (x1 - x0), y1)
    east = shapely.clip_by_rect(county, x0 + 0.4 * (x1 - x0), y0, x1, y1)
    path = write_geojson(tmp_path / "overlap.geojson", [west, east], codes=CODES[:2], names=NAMES[:2])
    err = refused(store, path, ValidationError)
    assert CODES[0] in str(err) and CODES[1] in str(err) and "overlap" in str(err)


def test_unit_overlapping_a_stored_unit_of_its_level_is_refused(loaded, tmp_path):
    store, county = loaded
    x0, y0, x1, y1 = county.bounds
    middle = shapely.clip_by_rect(county, x0 + 0.2 * (x1 - x0), y0, x0 + 0.8 * (x1 - x0), y1)
    path = write_geojson(tmp_path / "new.geojson", [middle], codes=["410329099"], names=["重叠乡"])
    err = refused(store, path, ValidationError)
    assert "410329099" in str(err) and "--replace" in str(err)


def test_replace_swaps_the_units_of_a_parent(loaded, tmp_path):
    store, county = loaded
    x0, y0, x1, y1 = county.bounds
    halves = [shapely.clip_by_rect(county, x0, y0, (x0 + x1) / 2, y1), shapely.clip_by_rect(county, (x0 + x1) / 2, y0, x1, y1)]
    path = write_geojson(tmp_path / "two.geojson", halves, codes=["410329201", "410329202"], names=["东乡", "西乡"],
                         parents=[COUNTY, COUNTY])
    result = services.load_boundaries(store, services.CLI, path, level="township", code_field="XZDM", name_field="XZMC",
                                      parent_field="FJDM", replace=True)
    assert result["removed_units"] == 3 and result["units"] == 2
    townships = {r["code"] for r in store.query("SELECT code FROM units WHERE level = 'township'")}
    assert townships == {"410329201", "410329202"}
    owners = {r["township_code"] for r in store.query("SELECT DISTINCT township_code FROM cells")}
    assert owners == {"410329201", "410329202"}


def test_unknown_parent_is_refused_naming_it(shared, tmp_path):
    store, county = shared
    path = write_geojson(tmp_path / "parent.geojson", three_parts(county), parents=[COUNTY, "419999", COUNTY])
    err = refused(store, path, ValidationError)
    assert "419999" in str(err) and "feature 2" in str(err) and CODES[1] in str(err)


def test_zip_with_a_path_outside_the_archive_is_refused(shared, tmp_path):
    store, county = shared
    good = zip_shapefile(frame(three_parts(county)), tmp_path / "shp", "good")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(evil, "w") as dst:
        for info in src.infolist():
            name = "../evil.shp" if info.filename == "good.shp" else info.filename
            dst.writestr(name, src.read(info))
    assert "../evil.shp" in zipfile.ZipFile(evil).namelist()
    err = refused(store, evil, ValidationError)
    assert "../evil.shp" in str(err) and "unsafe" in str(err)
    assert not (tmp_path.parent / "evil.shp").exists()
