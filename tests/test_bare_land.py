"""Bare land: windowed GeoTIFF reading per cell (any CRS, nodata, window size), survey polygons, publishing,
patches, change between uploads, escalation and survey tasks."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest
import rasterio
import shapely
from h3ronpy import cells_area_m2
from rasterio.transform import from_origin

from gridwatch import bare, layerstore, workflow
from gridwatch.errors import CRSError, ValidationError
from gridwatch.grid import latlng_to_cells
from gridwatch.policy import Policy
from layers.bare_land import bare_cells_from_raster, pixel_area_m2, raster_date

NOW = dt.datetime(2026, 4, 1, 2, 0)
#: the rules in force: the default policy
POLICY = Policy()


def write_tif(path: Path, data: np.ndarray, *, crs: str | None, transform, nodata=None, tiled=True, tags=None):
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype.name,
                   crs=crs, transform=transform, nodata=nodata)
    if tiled:
        profile.update(tiled=True, blockxsize=64, blockysize=64)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        if tags:
            dst.update_tags(**tags)
    return path


def brute_force(data: np.ndarray, transform, crs: str, *, bare, valid, resolution=8) -> pd.DataFrame:
    """Every pixel centre to its cell with h3 directly: counts per cell (the reference)."""
    rows, cols = np.mgrid[0:data.shape[0], 0:data.shape[1]]
    x, y = transform @ (cols.ravel() + 0.5, rows.ravel() + 0.5)
    lng, lat = pyproj.Transformer.from_crs(crs, 4326, always_xy=True).transform(x, y)
    cells = latlng_to_cells(np.asarray(lat), np.asarray(lng), resolution).astype(np.int64)
    v = valid.ravel()
    frame = pd.DataFrame({"cell": cells[v], "bare": bare.ravel()[v]})
    return frame.groupby("cell").agg(observed_px=("bare", "size"), bare_px=("bare", "sum")).reset_index()


@pytest.fixture
def land_cover(tmp_path):
    """300 × 260 pixels of 10 m in CGCS2000 / 3-degree Gauss-Kruger CM 111° E (EPSG:4546) over 伊川县, with
    ESA WorldCover-style classes (60 = bare), a nodata corner and a bare block of known size."""
    rng = np.random.default_rng(4)
    data = rng.choice(np.array([10, 30, 40, 60], dtype=np.uint8), size=(300, 260), p=[.4, .3, .2, .1])
    data[:40, :40] = 255
    data[100:160, 100:200] = 60
    to_gk = pyproj.Transformer.from_crs(4326, 4546, always_xy=True)
    x0, y0 = to_gk.transform(112.42, 34.45)
    transform = from_origin(round(x0, -1), round(y0, -1), 10, 10)
    path = write_tif(tmp_path / "lc.tif", data, crs="EPSG:4546", transform=transform, nodata=255,
                     tags={"ACQUISITION_DATE": "2026-03-15"})
    return path, data, transform


def test_raster_per_cell_matches_pixel_by_pixel_h3(land_cover):
    path, data, transform = land_cover
    cells = bare_cells_from_raster(path, resolution=8, bare_classes=[60])
    ref = brute_force(data, transform, "EPSG:4546", bare=data == 60, valid=data != 255)
    merged = cells.merge(ref, on="cell", suffixes=("", "_ref"), how="outer")
    assert len(merged) == len(cells) == len(ref)
    assert (merged.observed_px == merged.observed_px_ref).all() and (merged.bare_px == merged.bare_px_ref).all()
    assert cells.observed_px.sum() == (data != 255).sum() == 300 * 260 - 1600
    assert cells.bare_px.sum() == (data == 60).sum()
    assert np.allclose(cells.fraction, cells.bare_px / cells.observed_px)
    # areas: pixel counts times the 10 m pixel's area on the ellipsoid (GK scale ≈ 1.0002 at 112.4° E)
    px = cells.bare_m2 / cells.bare_px.where(cells.bare_px > 0)
    assert px.dropna().between(99.9, 100.0).all()
    assert raster_date(path) == dt.date(2026, 3, 15)


def test_windows_smaller_than_the_raster_give_the_same_result(land_cover):
    path, _, _ = land_cover
    whole = bare_cells_from_raster(path, resolution=8, bare_classes=[60], window_size=10_000)
    for size in (37, 64, 100):
        windowed = bare_cells_from_raster(path, resolution=8, bare_classes=[60], window_size=size)
        pd.testing.assert_frame_equal(windowed, whole)


def test_cells_found_window_by_window_when_the_raster_has_too_many(land_cover, monkeypatch):
    """Above a size the raster's cells are not found once for the whole raster but for each window: same result."""
    import layers.bare_land as bare_land

    path, _, _ = land_cover
    once = bare_cells_from_raster(path, resolution=8, bare_classes=[60], window_size=64)
    monkeypatch.setattr(bare_land, "_MAX_SHARE_CELLS", 0)
    per_window = bare_cells_from_raster(path, resolution=8, bare_classes=[60], window_size=64)
    pd.testing.assert_frame_equal(per_window, once)


def test_runs_clipped_to_a_window_edge_go_to_the_hexagon_holding_the_pixel(tmp_path):
    """Two hexagons whose left edges meet a row 33.88 px left of a window, 0.018 px apart: both runs start on
    the window's first pixel of that row, and it belongs to the one starting further right. (The pixel is row
    9876, column 2048 of the 10,000² benchmark raster; here the raster starts so that it falls on row 300,
    column 700, the first column of a 700-pixel window.)"""
    rng = np.random.default_rng(11)
    data = np.repeat(np.repeat(rng.choice(np.array([10, 60], dtype=np.uint8), size=(50, 50)), 20, axis=0), 20,
                     axis=1)
    transform = from_origin(480_000 + 10 * (2048 - 700), 3_850_000 - 10 * (9876 - 300), 10, 10)
    path = write_tif(tmp_path / "edge.tif", data, crs="EPSG:4546", transform=transform, tiled=True)
    ref = brute_force(data, transform, "EPSG:4546", bare=data == 60, valid=np.ones(data.shape, dtype=bool))
    for window_size in (None, 700, 350):
        cells = bare_cells_from_raster(path, resolution=8, bare_classes=[60], window_size=window_size)
        merged = cells.merge(ref, on="cell", suffixes=("", "_ref"), how="outer")
        assert len(merged) == len(cells) == len(ref) > 100
        wrong = merged[(merged.observed_px != merged.observed_px_ref) | (merged.bare_px != merged.bare_px_ref)]
        assert wrong.empty, (window_size, wrong.head().to_dict("records"))


def test_geographic_raster_index_mode_and_float_nodata(tmp_path):
    # 0.0002° pixels in CGCS2000 geographic (EPSG:4490), a bare-soil index with NaN and -9999 as no data
    rng = np.random.default_rng(9)
    data = rng.uniform(-0.5, 0.5, size=(200, 220)).astype(np.float32)
    data[:10] = np.nan
    data[:, :5] = -9999
    transform = from_origin(112.40, 34.44, 0.0002, 0.0002)
    path = write_tif(tmp_path / "bsi.tif", data, crs="EPSG:4490", transform=transform, nodata=-9999, tiled=False)
    cells = bare_cells_from_raster(path, resolution=8, threshold=0.1)
    valid = np.isfinite(data) & (data != -9999)
    ref = brute_force(data, transform, "EPSG:4490", bare=valid & (data >= 0.1), valid=valid)
    merged = cells.merge(ref, on="cell", suffixes=("", "_ref"))
    assert len(merged) == len(ref) == len(cells)
    assert (merged.observed_px == merged.observed_px_ref).all() and (merged.bare_px == merged.bare_px_ref).all()
    # a 0.0002° pixel at 34.43° N: 0.0002° of latitude ≈ 22.18 m, of longitude ≈ 18.39 m
    area = pixel_area_m2(pyproj.CRS(4490), transform, np.array([112.42]), np.array([34.43]))[0]
    assert area == pytest.approx(22.18 * 18.39, rel=2e-3)


def test_raster_errors(tmp_path):
    data = np.zeros((20, 20), dtype=np.uint8)
    path = write_tif(tmp_path / "nocrs.tif", data, crs=None, transform=from_origin(500_000, 3_800_000, 10, 10))
    with pytest.raises(CRSError):
        bare_cells_from_raster(path, resolution=8, bare_classes=[60])
    ok = bare_cells_from_raster(path, resolution=8, bare_classes=[60], crs="EPSG:4546")
    assert ok.observed_px.sum() == 400 and ok.bare_px.sum() == 0
    with pytest.raises(ValidationError):
        bare_cells_from_raster(path, resolution=8, bare_classes=[60], threshold=0.2, crs="EPSG:4546")
    with pytest.raises(ValidationError):
        bare_cells_from_raster(path, resolution=8, bare_classes=[60], band=2, crs="EPSG:4546")


def test_survey_polygons_exact_overlap():
    cell = int(latlng_to_cells(np.array([34.40]), np.array([112.45]), 8)[0])
    hexagon = shapely.Polygon(__import__("h3").cell_to_boundary(__import__("h3").int_to_str(cell)))
    hexagon = shapely.Polygon([(x, y) for y, x in hexagon.exterior.coords])
    cx, cy = hexagon.centroid.x, hexagon.centroid.y
    half = shapely.box(cx - 0.01, cy - 0.01, cx, cy + 0.01)      # the cell's west half (and more, outside)
    overlapping = shapely.box(cx - 0.005, cy - 0.001, cx - 0.001, cy + 0.001)  # inside the first: counted once
    out = bare.cells_from_polygons(np.array([half, overlapping], dtype=object), 8).set_index("cell")
    area = float(np.asarray(cells_area_m2(__import__("pyarrow").array(np.array([cell], dtype=np.uint64))))[0])
    share = hexagon.intersection(half).area / hexagon.area
    assert out.loc[cell, "fraction"] == pytest.approx(share, abs=1e-9) and 0.45 < share < 0.55
    assert out.loc[cell, "bare_m2"] == pytest.approx(share * area, rel=1e-9)
    assert out.loc[cell, "observed_m2"] == pytest.approx(area)


def test_bare_change_between_frames():
    a = pd.DataFrame({"cell": [1, 2, 3, 5], "bare_m2": [500.0, 0.0, 900.0, 450.0]})
    b = pd.DataFrame({"cell": [1, 2, 4, 5], "bare_m2": [0.0, 600.0, 700.0, 500.0]})
    change = bare.bare_change(a, b, min_m2=400)
    assert change["newly_bare"] == [2] and change["no_longer_bare"] == [1]
    assert change["bare_area_change_m2"] == pytest.approx(-500 + 600 + 50) and change["common_cells"] == 3


# -- publishing in a store ----------------------------------------------------------------------------------------

def _two_dates(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray, object]:
    """Two land-cover rasters over the same ground in 伊川县: block A bare on both dates, block B only on
    the first, block C only on the second."""
    to_gk = pyproj.Transformer.from_crs(4326, 4546, always_xy=True)
    x0, y0 = to_gk.transform(112.42, 34.45)
    transform = from_origin(round(x0, -1), round(y0, -1), 10, 10)
    first = np.full((240, 240), 10, dtype=np.uint8)
    first[20:60, 20:60] = 60      # A
    first[120:170, 150:200] = 60  # B
    second = np.full((240, 240), 10, dtype=np.uint8)
    second[20:60, 20:60] = 60     # A
    second[180:230, 30:80] = 60   # C
    p1 = write_tif(tmp_path / "2026-01.tif", first, crs="EPSG:4546", transform=transform,
                   tags={"ACQUISITION_DATE": "2026-01-05"})
    p2 = write_tif(tmp_path / "2026-04.tif", second, crs="EPSG:4546", transform=transform,
                   tags={"ACQUISITION_DATE": "2026-04-10"})
    return p1, p2, first, second, transform


def _cells_of(mask: np.ndarray, transform) -> set[int]:
    ref = brute_force(mask.astype(np.uint8), transform, "EPSG:4546", bare=mask, valid=np.ones_like(mask))
    return set(ref.cell[ref.bare_px * 100 * 0.9997 >= 400].tolist())


def test_two_uploads_patches_tasks_and_change(county, tmp_path):
    p1, p2, first, second, transform = _two_dates(tmp_path)
    one = layerstore.load(county, "bare_land", p1, actor="gis", policy=POLICY,
                          publish_now=True, bare_class="60", now=NOW)
    assert one["crs"] == "EPSG:4546"
    d1 = one["differences"]
    bare_first = _cells_of(first == 60, transform)
    assert d1["cells_added"] == len(bare_first) == d1["patches_registered"] == d1["tasks_opened"]
    assert d1["observed_on"] == "2026-01-05" and d1["previous_observed_on"] is None
    # bare area: 1600 + 2500 pixels of ≈ 99.97 m² (the GK areal scale)
    assert d1["bare_area_m2"] == pytest.approx(4100 * 100, rel=1e-3)
    patches = bare.patches_table(county)
    assert set(patches.cell) == bare_first and (patches.status == "bare").all()
    assert (patches.first_seen.astype(str) == "2026-01-05").all()

    two = layerstore.load(county, "bare_land", p2, actor="gis", policy=POLICY, publish_now=True, bare_class=60, now=NOW)
    d2 = two["differences"]
    bare_second = _cells_of(second == 60, transform)
    assert d2["cells_added"] == len(bare_second - bare_first) > 0
    assert d2["cells_removed"] == len(bare_first - bare_second) > 0
    assert d2["bare_area_change_m2"] == pytest.approx((2500 - 2500) * 100, abs=2 * 100)
    assert d2["tasks_opened"] == len(bare_second - bare_first)
    # B's survey tasks are withdrawn (the image shows it covered), A's stay open
    assert d2["tasks_closed"] == len(bare_first - bare_second)
    status = bare.patches_table(county).set_index("cell").status
    assert set(status[status == "covered"].index) == bare_first - bare_second
    assert set(status[status == "bare"].index) == bare_second
    events = county.query_df("SELECT e.actor, e.detail FROM task_events e WHERE e.to_state = 'withdrawn'")
    assert (events.actor == "layer-publish").all() and all("covered" in json.loads(d)["note"] for d in events.detail)
    # the change between the two stored versions, from the versions themselves
    change = bare.bare_change(layerstore.frame_of(county, "bare_land", 1), layerstore.frame_of(county, "bare_land", 2),
                              min_m2=400)
    assert set(change["newly_bare"]) == bare_second - bare_first

    # re-publishing is idempotent; restoring the first version brings B back and covers C
    again = layerstore.publish(county, "bare_land", 2, actor="gis", policy=POLICY, now=NOW)
    assert again["tasks_opened"] == again["tasks_closed"] == again["cells_added"] == 0
    back = layerstore.restore(county, "bare_land", 1, actor="gis", policy=POLICY, now=NOW)
    assert back["cells_added"] == len(bare_first - bare_second) and back["patches_registered"] == 0


def test_findings_and_escalation(county, tmp_path):
    p1, _, first, _, transform = _two_dates(tmp_path)
    layerstore.load(county, "bare_land", p1, actor="gis", policy=POLICY, publish_now=True, bare_class=60, now=NOW)
    patches = bare.patches_table(county).sort_values("id")
    # a verified survey report "greened" moves its patch
    task = county.query("SELECT id, source_key FROM tasks WHERE kind = 'bare_land_survey' ORDER BY id LIMIT 1")[0]
    for state in ("assigned", "in_progress"):
        workflow.transition(county, task["id"], state, actor="inspector", now=NOW)
    workflow.transition(county, task["id"], "reported", actor="inspector", actor_person_id=1, finding="greened", now=NOW)
    workflow.transition(county, task["id"], "verified", actor="leader", actor_person_id=2, now=NOW)
    applied = bare.apply_bare_findings(county, now=NOW)
    patch = int(task["source_key"].split(":")[0])
    assert [(a["patch_id"], a["to_status"]) for a in applied] == [(patch, "greened")]
    assert bare.apply_bare_findings(county, now=NOW) == []
    # first seen 2026-01-05: three months end with 2026-04-05; more than three months (超过三个月) from 04-06, once
    assert bare.escalate_bare_land(county, dt.date(2026, 4, 5), dispatch=POLICY.dispatch, now=NOW)["escalated"] == []
    esc = bare.escalate_bare_land(county, dt.date(2026, 4, 6), dispatch=POLICY.dispatch, now=NOW)
    assert sorted(esc["escalated"]) == sorted(set(patches.id) - {patch})
    assert esc["tasks_opened"] == len(esc["escalated"])
    assert bare.escalate_bare_land(county, dt.date(2026, 5, 1), dispatch=POLICY.dispatch, now=NOW)["escalated"] == []
    greening = county.query_df("SELECT priority, title FROM tasks WHERE source_kind = 'bare_greening'")
    assert (greening.priority == 3).all() and greening.title.str.contains("绿化").all()
    with pytest.raises(ValidationError):
        bare.patch_status_update(county, patch, "paved", actor="x")


def test_covered_land_is_due_for_greening_strictly_after_three_calendar_months(county, tmp_path):
    """HN-2017 覆盖…超过三个月的进行绿化: covered on 2026-03-31 (Beijing) is due on 07-01, not on 06-30."""
    p1, *_ = _two_dates(tmp_path)
    layerstore.load(county, "bare_land", p1, actor="gis", policy=POLICY, publish_now=True, bare_class=60, now=NOW)
    ids = bare.patches_table(county).sort_values("id").id.tolist()
    covered, later = ids[0], ids[1]
    # 2026-03-30 17:00 UTC is 2026-03-31 01:00 in Beijing: the day that counts is the Beijing one
    bare.patch_status_update(county, covered, "covered", actor="site", now=dt.datetime(2026, 3, 30, 17, 0))
    bare.patch_status_update(county, later, "covered", actor="site", now=dt.datetime(2026, 4, 1, 2, 0))
    for other in ids[2:]:
        bare.patch_status_update(county, other, "greened", actor="site", now=NOW)
    assert bare.escalate_bare_land(county, dt.date(2026, 6, 30), dispatch=POLICY.dispatch, now=NOW)["escalated"] == []
    first = bare.escalate_bare_land(county, dt.date(2026, 7, 1), dispatch=POLICY.dispatch, now=NOW)
    assert first["escalated"] == [covered] and first["tasks_opened"] == 1
    assert bare.escalate_bare_land(county, dt.date(2026, 7, 1), dispatch=POLICY.dispatch, now=NOW)["escalated"] == []
    second = bare.escalate_bare_land(county, dt.date(2026, 7, 2), dispatch=POLICY.dispatch, now=NOW)
    assert second["escalated"] == [later]
    note = county.query("SELECT note FROM bare_patch_history WHERE patch_id = ? ORDER BY id DESC LIMIT 1", [covered])
    assert note[0]["note"].startswith("escalated: covered for more than 3 months since 2026-03-31")


def test_months_are_added_in_calendar_months():
    from gridwatch.periods import add_months

    assert add_months(dt.date(2026, 3, 31), 3) == dt.date(2026, 6, 30)
    assert add_months(dt.date(2026, 3, 30), 3) == dt.date(2026, 6, 30)
    assert add_months(dt.date(2025, 11, 30), 3) == dt.date(2026, 2, 28)
    assert add_months(dt.date(2027, 11, 30), 3) == dt.date(2028, 2, 29)
    assert add_months(dt.date(2026, 12, 15), 3) == dt.date(2027, 3, 15)
    due = bare._due_for_greening(pd.Series([dt.date(2026, 3, 31)] * 3), dt.date(2026, 6, 30), 3)
    assert not due.any()
    assert bare._due_for_greening(pd.Series([dt.date(2026, 3, 31)]), dt.date(2026, 7, 1), 3).all()
