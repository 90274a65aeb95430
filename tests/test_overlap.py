"""Tests of gridwatch.overlap: exact cell/polygon intersection areas, checked against GEOS."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h3
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch import overlap
from gridwatch.errors import ValidationError
from gridwatch.overlap import cells_to_convex_xy, convex_overlap_areas

BOUNDARIES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "boundaries"

#: three mutually adjacent counties of Luoyang: Luolong, Yanshi, Yichuan
COUNTIES = ("410311", "410307", "410329")

#: allowed error, relative to the cell's area
RTOL = 1e-9

PROPS = settings(max_examples=20, deadline=None, derandomize=True)


def cell_of(lat: float, lng: float, res: int) -> int:
    """Return the H3 cell of a point as an integer."""
    return h3.str_to_int(h3.latlng_to_cell(lat, lng, res))


def cells_of(lat: np.ndarray, lng: np.ndarray, res: int | np.ndarray) -> np.ndarray:
    """Return the H3 cells of points as a uint64 array."""
    res = np.broadcast_to(res, np.shape(lat))
    return np.array([cell_of(a, b, int(r)) for a, b, r in zip(lat, lng, res, strict=True)], dtype=np.uint64)


def all_pairs(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair every one of n convex polygons with every one of m polygons."""
    ci, pi = np.meshgrid(np.arange(n), np.arange(m), indexing="ij")
    return ci.ravel(), pi.ravel()


def assert_matches_geos(
    convex_xy: np.ndarray, polygons: np.ndarray, ci: np.ndarray, pi: np.ndarray, *, exact_zeros: bool = False
) -> np.ndarray:
    """Compare with ``shapely.area(shapely.intersection(...))`` pair by pair and return the areas.

    With ``exact_zeros``, pairs that only touch (GEOS area exactly 0) must get
    exactly 0 too: callers test ``area > 0``.
    """
    got = convex_overlap_areas(convex_xy, polygons, ci, pi)
    cells = shapely.polygons(convex_xy[ci])
    expected = shapely.area(shapely.intersection(cells, polygons[pi]))
    assert got.shape == expected.shape
    assert np.isfinite(got).all()
    error = np.abs(got - expected) / shapely.area(cells)
    worst = int(np.argmax(error)) if len(error) else 0
    assert error.max(initial=0.0) <= RTOL, f"pair {worst}: {got[worst]!r} instead of {expected[worst]!r}"
    if exact_zeros:
        np.testing.assert_array_equal(got[expected == 0], 0.0)
    return got


@contextmanager
def counting_geos_fallbacks() -> Iterator[list[int]]:
    """Record how many pairs each call hands over to the GEOS fallback."""
    calls: list[int] = []
    fallback = overlap._shapely_areas

    def spy(convex_xy: np.ndarray, polygons: np.ndarray) -> np.ndarray:
        calls.append(len(polygons))
        return fallback(convex_xy, polygons)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(overlap, "_shapely_areas", spy)
        yield calls


@pytest.fixture
def geos_calls() -> Iterator[list[int]]:
    """Pairs handed over to the GEOS fallback during the test, per call."""
    with counting_geos_fallbacks() as calls:
        yield calls


# -- random polygons around cells --------------------------------------------------


def star(center: np.ndarray, radius: float, points: int, rng: np.random.Generator) -> shapely.Polygon:
    """Make a concave star with random angles and inner radii."""
    angle = np.sort(rng.uniform(0, 2 * np.pi, 2 * points))
    r = radius * np.where(np.arange(2 * points) % 2 == 0, 1.0, rng.uniform(0.2, 0.6, 2 * points))
    return shapely.Polygon(np.c_[center[0] + r * np.cos(angle), center[1] + r * np.sin(angle)])


def random_polygons(center: np.ndarray, size: float, rng: np.random.Generator) -> np.ndarray:
    """Make polygons with holes, multipolygons, stars and box differences about a cell's ``size`` around ``center``."""

    def near(scale: float = 1.0) -> np.ndarray:
        return center + rng.normal(0, size * scale, 2)

    cloud = shapely.buffer(shapely.multipoints(np.array([near(1.5) for _ in range(12)])), size * 0.3, quad_segs=3)
    disc = shapely.buffer(shapely.points(*near(0.3)), size * 1.2, quad_segs=4)
    holed = shapely.difference(disc, star(near(0.3), size * 0.5, 5, rng))
    x0, y0 = near(0.5)
    notches = shapely.union(
        shapely.box(x0 - size / 2, y0 - 2 * size, x0, y0 + size / 3), shapely.box(*near(0.5), *(near(0.5) + size))
    )
    boxes = shapely.difference(shapely.box(x0 - size, y0 - size, x0 + size, y0 + size), notches)
    islands = shapely.union(star(near(), size * 0.6, 7, rng), star(near(2.0), size * 0.4, 4, rng))
    shapes = [cloud, holed, boxes, islands, star(near(0.5), size * 0.8, 6, rng)]
    return np.array([shapely.make_valid(shape) for shape in shapes], dtype=object)


@PROPS
@given(lat=st.floats(31, 37), lng=st.floats(110, 117), res=st.integers(6, 9), seed=st.integers(0, 2**32 - 1))
def test_random_cells_against_random_polygons(lat, lng, res, seed):
    """Real H3 cells against polygons with holes, multipolygons and concave shapes agree with GEOS."""
    rng = np.random.default_rng(seed)
    size = h3.average_hexagon_edge_length(res, unit="km") / 100  # about a cell, in degrees
    offsets = rng.normal(0, size, (12, 2))
    convex_xy = cells_to_convex_xy(cells_of(lat + offsets[:, 1], lng + offsets[:, 0], res))
    polygons = random_polygons(np.array([lng, lat]), size, rng)
    assert set(shapely.get_type_id(polygons)) <= {3, 6}
    with counting_geos_fallbacks() as geos_calls:
        got = assert_matches_geos(convex_xy, polygons, *all_pairs(len(convex_xy), len(polygons)))
    assert got.max() > 0  # some pairs overlap
    assert geos_calls == []  # all decided by the vectorised path


# -- exact degeneracies ------------------------------------------------------------


def lattice_convex(rng: np.random.Generator) -> np.ndarray:
    """Make a convex polygon on a small lattice, padded to 6 vertices, of random orientation and start."""
    while True:
        hull = shapely.convex_hull(shapely.multipoints(rng.integers(0, 5, (7, 2)).astype(float)))
        if hull.geom_type == "Polygon":
            ring = np.asarray(hull.exterior.coords)[:-1]
            if len(ring) <= 6:
                break
    if rng.random() < 0.5:
        ring = ring[::-1]
    ring = np.concatenate([ring, np.repeat(ring[-1:], 6 - len(ring), axis=0)])
    return np.roll(ring, rng.integers(0, 6), axis=0)


def lattice_polygon(rng: np.random.Generator) -> shapely.Geometry:
    """Make unions and differences of lattice boxes and triangles: shared edges, vertices, collinear overlaps."""
    lo = rng.integers(0, 9, (3, 2)) * 0.5
    hi = lo + rng.integers(1, 5, (3, 2)) * 0.5
    shape = shapely.union_all(shapely.box(lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]))
    if rng.random() < 0.5:
        hole = rng.integers(0, 9, 2) * 0.5
        shape = shapely.difference(shape, shapely.box(*hole, *(hole + 0.5)))
    if rng.random() < 0.3:
        shape = shapely.union(shape, shapely.Polygon(rng.integers(0, 5, (3, 2))).buffer(0))
    parts = [p for p in shapely.get_parts(shapely.make_valid(shape)) if p.geom_type == "Polygon"]
    return shapely.MultiPolygon(parts) if len(parts) > 1 else parts[0]


@PROPS
@given(seed=st.integers(0, 2**32 - 1))
def test_lattice_degeneracies(seed):
    """Vertices on edges, shared vertices and collinear edges, all exact on a lattice, agree with GEOS."""
    rng = np.random.default_rng(seed)
    convex_xy = np.array([lattice_convex(rng) for _ in range(15)])
    polygons = np.array([lattice_polygon(rng) for _ in range(15)], dtype=object)
    with counting_geos_fallbacks() as geos_calls:
        got = assert_matches_geos(convex_xy, polygons, *all_pairs(15, 15), exact_zeros=True)
    assert (got > 0).any() and (got == 0).any()
    assert geos_calls == []


@PROPS
@given(lat=st.floats(31, 37), lng=st.floats(110, 117), res=st.integers(6, 9), seed=st.integers(0, 2**32 - 1))
def test_unions_of_cells(lat, lng, res, seed):
    """Polygons made of H3 cells share the cells' edges and vertices exactly: members are full, others empty."""
    rng = np.random.default_rng(seed)
    center = h3.latlng_to_cell(lat, lng, res)
    disk = np.array([h3.str_to_int(c) for c in h3.grid_disk(center, 2)], dtype=np.uint64)
    members = disk[rng.random(len(disk)) < 0.5]
    union = shapely.union_all(shapely.polygons(cells_to_convex_xy(members)))
    children = np.array([h3.str_to_int(c) for c in h3.cell_to_children(center, res + 1)], dtype=np.uint64)
    mixed = shapely.symmetric_difference(union, shapely.union_all(shapely.polygons(cells_to_convex_xy(children))))
    polygons = np.array([union, shapely.make_valid(mixed)], dtype=object)
    assert set(shapely.get_type_id(polygons)) <= {3, 6}
    cells = np.array([h3.str_to_int(c) for c in h3.grid_disk(center, 3)], dtype=np.uint64)
    convex_xy = cells_to_convex_xy(cells)
    with counting_geos_fallbacks() as geos_calls:
        got = assert_matches_geos(convex_xy, polygons, *all_pairs(len(cells), 2), exact_zeros=True)
    share = got.reshape(len(cells), 2)[:, 0] / shapely.area(shapely.polygons(convex_xy))
    np.testing.assert_allclose(share, np.isin(cells, members), atol=1e-12)
    assert geos_calls == []


# -- chosen configurations around one H3 cell ----------------------------------------


@pytest.fixture(scope="module")
def cell() -> dict:
    """Provide a res-8 cell in Luoyang: its vertices, polygon, area and the vertices of its neighbours."""
    index = cell_of(34.62, 112.45, 8)
    xy = cells_to_convex_xy(np.array([index], dtype=np.uint64))
    neighbours = np.array([h3.str_to_int(c) for c in h3.grid_ring(h3.int_to_str(index), 1)], dtype=np.uint64)
    polygon = shapely.polygons(xy[0])
    return {
        "xy": xy,
        "v": xy[0],
        "polygon": polygon,
        "area": polygon.area,
        "neighbours": cells_to_convex_xy(neighbours),
    }


def one_cell(cell: dict, polygon: shapely.Geometry) -> float:
    """Area of the cell's overlap with a polygon, checked against GEOS."""
    got = assert_matches_geos(
        cell["xy"], np.array([polygon], dtype=object), np.array([0]), np.array([0]), exact_zeros=True
    )
    return float(got[0])


def test_cell_fully_inside(cell):
    """A cell far inside a polygon is wholly covered."""
    assert one_cell(cell, shapely.buffer(cell["polygon"], 0.05)) == pytest.approx(cell["area"], rel=1e-12)


def test_cell_fully_outside(cell):
    """A cell far from a polygon does not overlap it."""
    assert one_cell(cell, shapely.box(100, 20, 101, 21)) == 0.0


def test_polygon_is_the_cell(cell):
    """A polygon equal to the cell covers it, all edges shared."""
    assert one_cell(cell, cell["polygon"]) == pytest.approx(cell["area"], rel=1e-12)


def test_hole_is_the_cell(cell):
    """A hole equal to the cell leaves nothing of it."""
    ring = shapely.Polygon(shapely.buffer(cell["polygon"], 0.05).exterior, [cell["v"]])
    assert one_cell(cell, ring) == 0.0


def test_neighbours_share_edges_and_vertices(cell):
    """Cells that only share an edge or a vertex with a polygon get exactly 0."""
    ring = shapely.union_all(shapely.polygons(cell["neighbours"]))
    assert one_cell(cell, shapely.difference(ring, cell["polygon"])) == 0.0
    polygons = np.array([cell["polygon"]], dtype=object)
    got = convex_overlap_areas(cell["neighbours"], polygons, np.arange(6), np.zeros(6, int))
    np.testing.assert_array_equal(got, 0.0)


def test_polygon_through_cell_vertices(cell):
    """Polygons through the cell's vertices and along its edges, from inside and outside."""
    v = cell["v"]
    center = v.mean(axis=0)
    triangle = shapely.Polygon(v[[0, 2, 4]])  # three chords between cell vertices
    assert one_cell(cell, triangle) == pytest.approx(triangle.area, rel=1e-9)
    dart = shapely.Polygon([v[0], v[1] + 3 * (v[1] - center), v[2], v[1]])  # edges 0-1 and 1-2, from outside
    assert one_cell(cell, dart) == 0.0
    wedge = shapely.Polygon([v[0], v[1], v[2], center])  # the same edges, from inside
    assert one_cell(cell, wedge) == pytest.approx(wedge.area, rel=1e-9)
    fan = shapely.Polygon([v[3], v[4], v[5], 2 * v[0] - v[3]])  # edges 3-4 and 4-5, closing across the cell
    assert 0 < one_cell(cell, fan) < cell["area"]


def test_polygon_inside_cell(cell):
    """A polygon (or a part of a multipolygon) inside the cell counts whole."""
    center = cell["v"].mean(axis=0)
    size = np.sqrt(cell["area"])
    tiny = star(center, size * 0.3, 5, np.random.default_rng(1))
    assert one_cell(cell, tiny) == pytest.approx(tiny.area, rel=1e-9)
    parts = shapely.MultiPolygon([tiny, shapely.box(*(center + size * 10), *(center + size * 11))])
    assert one_cell(cell, parts) == pytest.approx(tiny.area, rel=1e-9)


def test_hole_inside_cell(cell):
    """A hole inside the cell is taken out, an island inside the hole counts again."""
    center = cell["v"].mean(axis=0)
    hole = star(center, np.sqrt(cell["area"]) * 0.3, 5, np.random.default_rng(2))
    holed = shapely.Polygon(shapely.buffer(cell["polygon"], 0.05).exterior, [hole.exterior.coords])
    assert one_cell(cell, holed) == pytest.approx(cell["area"] - hole.area, rel=1e-9)
    island = shapely.Polygon(center + 0.4 * (np.asarray(hole.exterior.coords) - center))
    expected = cell["area"] - hole.area + island.area
    assert one_cell(cell, shapely.MultiPolygon([holed, island])) == pytest.approx(expected, rel=1e-9)


# -- input conventions -------------------------------------------------------------


def test_orientation_padding_and_pair_order(geos_calls):
    """Either orientation, repeated vertices anywhere, pairs in any order and repeated."""
    square = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]])
    padded = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0], [0.0, 2.0]])
    convex_xy = np.array([np.r_[square, square[-1:], square[-1:]], padded, padded[::-1]])
    polygons = np.array([shapely.box(1, 1, 3, 3), shapely.box(0, 0, 2, 2), shapely.box(-1, 0.5, 0.5, 1.5)])
    ci = np.array([2, 0, 1, 2, 0, 0, 1, 2, 2])
    pi = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    got = assert_matches_geos(convex_xy, polygons, ci, pi, exact_zeros=True)
    np.testing.assert_array_equal(got, [1.0, 1.0, 1.0, 4.0, 4.0, 0.5, 0.5, 0.5, 0.5])
    assert geos_calls == []


def test_pentagon_cells():
    """Pentagons come padded to six vertices and are measured like hexagons."""
    pentagons = np.array([h3.str_to_int(c) for c in h3.get_pentagons(8)], dtype=np.uint64)
    convex_xy = cells_to_convex_xy(pentagons)
    assert convex_xy.shape == (12, 6, 2)
    np.testing.assert_array_equal(convex_xy[:, 5], convex_xy[:, 4])  # the last vertex, repeated
    rng = np.random.default_rng(3)
    polygons = np.array([star(v.mean(axis=0), 0.02, 5, rng) for v in convex_xy], dtype=object)
    got = assert_matches_geos(convex_xy, polygons, np.arange(12), np.arange(12))
    assert (got > 0).all()


def test_non_convex_ring_is_left_to_geos(geos_calls):
    """A ring that is not convex is measured by GEOS."""
    arrow = np.array([[[0.0, 0.0], [2.0, 1.0], [0.0, 2.0], [0.5, 1.0]]])
    assert_matches_geos(arrow, np.array([shapely.box(0.25, 0, 3, 3)]), np.array([0]), np.array([0]))
    assert geos_calls == [1]


def test_overlapping_polygons():
    """Polygons piled on each other: each pair meets only its own polygon's boundary."""
    cells = cells_of(np.full(40, 34.5), 112.5 + 0.01 * np.arange(40), 8)
    convex_xy = cells_to_convex_xy(cells)
    center = convex_xy.reshape(-1, 2).mean(axis=0)
    discs = shapely.buffer(shapely.points(*center), 0.05 + 0.004 * np.arange(40), quad_segs=64)
    got = assert_matches_geos(convex_xy, discs, *all_pairs(40, 40))
    full = np.repeat(shapely.area(shapely.polygons(convex_xy)), 40)
    assert ((got > 0) & (got < full)).any()


def test_cells_to_convex_xy_matches_h3():
    """Vertices are h3's boundary as (lng, lat), counter-clockwise, not closed."""
    rng = np.random.default_rng(4)
    cells = cells_of(rng.uniform(31, 37, 50), rng.uniform(110, 117, 50), rng.integers(6, 10, 50))
    convex_xy = cells_to_convex_xy(cells)
    assert convex_xy.shape == (50, 6, 2) and convex_xy.dtype == np.float64
    for xy, index in zip(convex_xy, cells, strict=True):
        boundary = np.array(h3.cell_to_boundary(h3.int_to_str(int(index))))[:, ::-1]
        assert {tuple(p) for p in np.round(xy, 9)} == {tuple(p) for p in np.round(boundary, 9)}
    assert shapely.is_ccw(shapely.linearrings(convex_xy)).all()
    assert cells_to_convex_xy(np.zeros(0, dtype=np.uint64)).shape == (0, 6, 2)


def test_cells_with_distortion_vertices():
    """Class III cells crossing an icosahedron edge have 7 or more vertices; the others get padded."""
    rng = np.random.default_rng(5)
    cells = np.unique(cells_of(rng.uniform(-60, 60, 400), rng.uniform(-170, 170, 400), 1))
    convex_xy = cells_to_convex_xy(cells)
    counts = np.array([len(h3.cell_to_boundary(h3.int_to_str(int(c)))) for c in cells])
    assert convex_xy.shape[1] == counts.max() > 6
    keep = np.flatnonzero(np.ptp(convex_xy[:, :, 0], axis=1) < 90)  # leave out the antimeridian
    polygons = np.array([shapely.box(-180, -90, 180, 0), shapely.buffer(shapely.points(20, 30), 40)], dtype=object)
    assert_matches_geos(convex_xy[keep], polygons, *all_pairs(len(keep), 2))


@pytest.mark.parametrize(
    ("convex_xy", "polygons", "ci", "pi"),
    [
        (np.zeros((4, 2)), [shapely.box(0, 0, 1, 1)], [0], [0]),
        (np.zeros((1, 4, 2)), [shapely.box(0, 0, 1, 1)], [1], [0]),
        (np.zeros((1, 4, 2)), [shapely.box(0, 0, 1, 1)], [0], [0, 0]),
        (np.zeros((1, 4, 2)), [shapely.box(0, 0, 1, 1)], [0.0], [0]),
        (np.zeros((1, 4, 2)), [shapely.Point(0, 0)], [0], [0]),
        (np.full((1, 4, 2), np.nan), [shapely.box(0, 0, 1, 1)], [0], [0]),
    ],
    ids=["2d-vertices", "index-out-of-range", "unequal-indexes", "float-index", "not-polygonal", "nan"],
)
def test_rejects_bad_input(convex_xy, polygons, ci, pi):
    """Malformed arguments raise ValidationError (a ValueError)."""
    with pytest.raises(ValidationError):
        convex_overlap_areas(convex_xy, np.array(polygons, dtype=object), np.array(ci), np.array(pi))


def test_invalid_cell_is_rejected():
    """An invalid H3 index raises ValidationError."""
    with pytest.raises(ValidationError):
        cells_to_convex_xy(np.array([5], dtype=np.uint64))


def test_empty_inputs():
    """No pairs give no areas; empty polygons overlap nothing."""
    square = np.array([[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])
    polygons = np.array([shapely.Polygon(), shapely.MultiPolygon(), shapely.box(0, 0, 1, 1)], dtype=object)
    assert convex_overlap_areas(square, polygons, np.zeros(0, int), np.zeros(0, int)).shape == (0,)
    got = convex_overlap_areas(square, polygons, np.zeros(3, int), np.arange(3))
    np.testing.assert_array_equal(got, [0.0, 0.0, 1.0])


# -- real county boundaries ----------------------------------------------------------


def load_county(adcode: str) -> shapely.Geometry:
    """Read a county boundary of the shared data (a GeoJSON geometry with a "properties" member)."""
    with (BOUNDARIES / "henan_admin_index.csv").open(encoding="utf-8") as index:
        rows = {row["adcode"]: row for row in csv.DictReader(index)}
    document = json.loads((BOUNDARIES / rows[adcode]["file"]).read_text(encoding="utf-8"))
    document.pop("properties", None)
    return shapely.from_geojson(json.dumps(document))


@pytest.mark.skipif(
    not (BOUNDARIES / "henan_admin_index.csv").is_file(),
    reason=f"the shared county boundaries are not at {BOUNDARIES}",
)
def test_county_borders(geos_calls):
    """Res-8 cells along the shared borders of three real counties agree with GEOS and split between them."""
    from h3ronpy import ContainmentMode
    from h3ronpy.vector import wkb_to_cells

    counties = np.array([load_county(code) for code in COUNTIES], dtype=object)
    assert shapely.is_valid(counties).all()
    touched = [
        wkb_to_cells(shapely.to_wkb(counties[[i]]), 8, ContainmentMode.IntersectsBoundary, flatten=True).to_numpy()
        for i in range(len(counties))
    ]
    cells, seen = np.unique(np.concatenate(touched), return_counts=True)
    border = cells[seen >= 2].astype(np.uint64)
    assert len(border) > 100
    convex_xy = cells_to_convex_xy(border)
    got = assert_matches_geos(convex_xy, counties, *all_pairs(len(border), len(counties)))
    share = got.reshape(len(border), len(counties)) / shapely.area(shapely.polygons(convex_xy))[:, None]
    assert (share.sum(axis=1) <= 1 + 1e-9).all()  # the counties do not overlap
    assert ((share > 0).sum(axis=1) >= 2).all()  # border cells are split between counties
    assert geos_calls == []
