"""Leaflet maps as compact cell data: views, aggregation, assets served locally, basemaps, cell status."""

from __future__ import annotations

import re

import folium
import h3
import numpy as np
import pytest

from gridwatch import maps

PARENT = "862a10727ffffff"  # a res-6 cell in 伊川县


def _children(res: int = 8) -> np.ndarray:
    return np.array([h3.str_to_int(c) for c in h3.cell_to_children(PARENT, res)], dtype=np.uint64)


def test_every_cell_is_drawn_at_the_grid_resolution_when_it_fits():
    cells = _children()
    data = maps.cell_layer_data(cells, np.zeros(len(cells)), max_cells=len(cells))
    assert data["res"] == 8 and data["n"] is None and data["total"] == 49
    assert sorted(data["c"]) == sorted(h3.int_to_str(int(c)) for c in cells)


def test_parents_carry_the_most_urgent_status_and_their_cell_count():
    cells = _children()
    status = np.zeros(len(cells), dtype=int)
    sibling_of_first = [i for i, c in enumerate(cells) if h3.cell_to_parent(h3.int_to_str(int(c)), 7)
                        == h3.cell_to_parent(h3.int_to_str(int(cells[0])), 7)]
    status[sibling_of_first[1]] = maps.STATUSES.index("overdue")
    status[sibling_of_first[2]] = maps.STATUSES.index("active")
    data = maps.cell_layer_data(cells, status, max_cells=10)
    assert data["res"] == 7 and len(data["c"]) == 7 and sum(data["n"]) == 49 and set(data["n"]) == {7}
    worst = dict(zip(data["c"], data["s"]))
    assert worst[h3.cell_to_parent(h3.int_to_str(int(cells[0])), 7)] == maps.STATUSES.index("overdue")
    assert sorted(worst.values()).count(0) == 6
    # fewer allowed cells: one more level up
    assert maps.cell_layer_data(cells, status, max_cells=1) | {"c": None} == {
        "res": 6, "c": None, "s": [3], "n": [49], "total": 49}


def test_only_the_cells_in_view_are_sent():
    cells = _children()
    lat, lng = h3.cell_to_latlng(h3.int_to_str(int(cells[0])))
    view = maps.MapView(lat - 0.003, lng - 0.003, lat + 0.003, lng + 0.003, zoom=16)
    data = maps.cell_layer_data(cells, np.zeros(len(cells)), view=view)
    assert h3.int_to_str(int(cells[0])) in data["c"]
    assert 1 <= len(data["c"]) < 10 and data["total"] == len(data["c"])  # the view, padded by a quarter


def test_zoomed_out_views_use_coarser_cells():
    assert [maps.view_resolution(z, 8) for z in (16, 12, 10, 9, 8, 6)] == [8, 8, 8, 7, 6, 5]
    assert maps.view_resolution(3, 8) < maps.view_resolution(6, 8)


def test_fit_zoom_fits_the_bounds():
    county = (34.25, 112.25, 34.60, 112.70)
    zoom = maps.fit_zoom(county, width=560, height=460)
    span_px = (112.70 - 112.25) / 360 * 256 * 2 ** zoom
    assert span_px <= 560 < 2 * span_px


def test_points_are_rounded_and_clipped_to_the_view():
    coords = maps.point_layer_data([34.1234567, 40.0], [112.1234567, 100.0],
                                   view=maps.MapView(34.0, 112.0, 34.5, 112.5, 12))
    assert coords == [34.12346, 112.12346]


def _rendered(basemap: maps.Basemap | None = None, label: str = "clean") -> str:
    m = maps.base_map(bounds=(34.25, 112.25, 34.60, 112.70), assets="/app/static/vendor", basemap=basemap)
    group = folium.FeatureGroup().add_to(m)
    cells = _children()
    maps.CellLayer(maps.cell_layer_data(cells, np.zeros(len(cells))), labels=[label, "b", "c", "d"],
                   colours=list(maps.STATUS_COLOURS.values())).add_to(group)
    return m.get_root().render()


def test_the_map_loads_its_scripts_from_the_app_and_nothing_else():
    html = _rendered()
    urls = set(re.findall(r"""(?:src|href)=["']([^"']+)""", html))
    assert urls == {"/app/static/vendor/leaflet-1.9.4/leaflet.js", "/app/static/vendor/h3-js-4.2.1/h3-js.umd.js",
                    "/app/static/vendor/leaflet-1.9.4/leaflet.css"}
    assert "http://" not in html and "https://" not in html
    for url in urls:  # and the app has them
        assert (maps.__file__ and __import__("pathlib").Path(__file__).parents[1] / "static" / "vendor"
                / url.removeprefix("/app/static/vendor/")).is_file()


def test_cells_travel_as_ids_not_polygons():
    html = _rendered()
    assert len(re.findall(r"\"88[0-9a-f]{13}\"", html)) == 49 and "Polygon" not in html and "coordinates" not in html


def test_labels_are_escaped():
    assert "<script>alert" not in _rendered(label="<script>alert(1)</script>")


def test_basemaps_from_settings():
    assert not maps.Basemap.from_settings("", "")
    tianditu = maps.Basemap.from_settings("", "", "abc123")
    assert "tk=abc123" in tianditu.url and "LAYER=cva" in tianditu.labels_url and tianditu.subdomains == "01234567"
    own = maps.Basemap.from_settings("http://tiles.intranet.example/{z}/{x}/{y}.png", "")
    assert own.attribution == "tiles.intranet.example"
    html = _rendered(own)
    assert "tiles.intranet.example/{z}/{x}/{y}.png" in html


def test_a_view_from_leaflet_is_checked():
    assert maps.MapView.from_leaflet(None, 10) is None
    assert maps.MapView.from_leaflet({"_southWest": {"lat": None, "lng": 1}, "_northEast": {}}, 3) is None
    bounds = {"_southWest": {"lat": 34.6, "lng": 112.2}, "_northEast": {"lat": 34.3, "lng": 112.7}}
    assert maps.MapView.from_leaflet(bounds, 11) is None  # upside down


def test_cell_status_for_the_leaders_map(demo_store):
    import datetime as dt

    from gridwatch import services

    leader = services.current_user(demo_store, services.sign_in(demo_store, "leader", "demo-2026").token)
    status = services.cell_status(demo_store, leader)
    assert set(status.status) <= set(maps.STATUSES) and len(status) > 0
    assert (status.status_code == status.status.map(maps.STATUSES.index)).all()
    # a cell with an open, not overdue task is active; nobody has reported anywhere yet, so the rest are unvisited
    active = set(demo_store.query_df(
        "SELECT DISTINCT cell FROM tasks WHERE kind <> 'routine_patrol' AND state NOT IN ('verified', 'closed')"
        " AND due_at >= ?", [dt.datetime.now(dt.UTC).replace(tzinfo=None)]).cell)
    mine = set(status.cell)
    assert set(status.cell[status.status == "active"]) == active & mine
    assert set(status.status[~status.cell.isin(active)]) <= {"not_observed", "overdue"}
    south, west, north, east = services.scope_bounds(demo_store, leader)
    lat, lng = h3.cell_to_latlng(status.cell_id.iloc[0])
    assert south <= lat <= north and west <= lng <= east


@pytest.mark.parametrize("zoom", [6, 9, 12, 15])
def test_a_province_view_stays_small(zoom):
    """Bounded by max_cells whatever the zoom (the benchmark measures bytes)."""
    rng = np.random.default_rng(1)
    base = np.array([h3.str_to_int(c) for c in h3.cell_to_children("852a1073fffffff", 8)], dtype=np.uint64)
    data = maps.cell_layer_data(base, rng.integers(0, 4, len(base)), max_cells=100,
                                view=maps.MapView(33.0, 111.0, 36.0, 114.0, zoom))
    assert len(data["c"]) <= 100 and (data["n"] is None or sum(data["n"]) == data["total"])
