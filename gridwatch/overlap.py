"""Exact, vectorised areas of intersection between convex polygons (H3 cells) and arbitrary polygons."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import shapely

from gridwatch.errors import ValidationError

__all__ = ["cells_to_convex_xy", "convex_overlap_areas"]

#: number of consecutive boundary segments grouped under one box of the
#: spatial index; boxes are cheap to query but costly to create in GEOS
_CHUNK = 8

#: candidates processed per block; small blocks keep the temporaries in cache
_BLOCK = 16384

#: areas within this fraction of the cell's area of 0 or of the whole cell
#: are rounding noise, returned as exactly 0 or the cell's area
_SNAP = 1e-12

#: a pair whose area before the inside/outside decision is within this
#: fraction of the cell's area of 0 is about empty or about full, and its
#: sign cannot tell which, see :func:`_overlap_core`
_AMBIGUOUS = 1e-9


def cells_to_convex_xy(cells: np.ndarray) -> np.ndarray:
    """Vertex array of H3 cells, ready for :func:`convex_overlap_areas`.

    Parameters
    ----------
    cells : numpy.ndarray of uint64, shape (n,)
        H3 cell indexes.

    Returns
    -------
    numpy.ndarray of float64, shape (n, k, 2)
        Vertices (x = longitude, y = latitude, degrees) of every cell,
        counter-clockwise, not closed. ``k`` is 6 unless a cell has more
        vertices (class III cells crossing an icosahedron edge have up to
        10 vertices); cells with fewer than ``k`` vertices (pentagons) are
        padded by repeating their last vertex, which adds zero-length edges.

    Raises
    ------
    ValidationError
        If ``cells`` is not one-dimensional or holds an invalid cell index.

    Notes
    -----
    Cells crossing the antimeridian get a ring with a longitude jump, as in
    any lng/lat rendering; :func:`convex_overlap_areas` detects such
    non-convex rings and delegates them to GEOS.

    Examples
    --------
    >>> import h3
    >>> cell = h3.str_to_int(h3.latlng_to_cell(34.75, 113.62, 8))
    >>> cells_to_convex_xy(np.array([cell], dtype=np.uint64)).shape
    (1, 6, 2)
    """
    from h3ronpy.vector import cells_to_wkb_polygons

    cells = np.asarray(cells)
    if cells.ndim != 1:
        raise ValidationError("Expected a one-dimensional array of H3 cells, got shape {shape}.", shape=cells.shape)
    if cells.size == 0:
        return np.zeros((0, 6, 2))
    try:
        wkb = cells_to_wkb_polygons(cells.astype(np.uint64, copy=False))
    except ValueError as exc:
        raise ValidationError("Invalid H3 cell index: {reason}", reason=str(exc)) from exc
    rings = shapely.get_exterior_ring(shapely.from_wkb(np.asarray(wkb.to_numpy(), dtype=object)))
    xy, owner = shapely.get_coordinates(rings, return_index=True)
    count = np.bincount(owner, minlength=len(cells)) - 1  # drop the closing vertex
    if (count < 3).any():
        raise ValidationError("Invalid H3 cell index: no boundary for {cell}.", cell=int(cells[np.argmin(count)]))
    start = np.cumsum(count + 1) - (count + 1)
    k = max(6, int(count.max()))
    take = start[:, None] + np.minimum(np.arange(k), count[:, None] - 1)
    out = xy[take]
    clockwise = _signed_area2(out) < 0
    out[clockwise] = out[clockwise, ::-1]
    return out


def convex_overlap_areas(
    convex_xy: np.ndarray,
    polygons: np.ndarray,
    convex_index: np.ndarray,
    polygon_index: np.ndarray,
) -> np.ndarray:
    """Planar area of intersection of convex polygons with (multi)polygons, pair by pair.

    The drop-in, vectorised equivalent of
    ``shapely.area(shapely.intersection(convex[convex_index], polygons[polygon_index]))``
    for many pairs: it integrates ``x dy`` (Green's theorem) over the boundary
    of each intersection, made of the polygon's boundary segments clipped to
    the convex polygon and of the convex polygon's edges inside the polygon.

    Parameters
    ----------
    convex_xy : numpy.ndarray of float64, shape (n, k, 2)
        Vertices (x, y) of ``n`` convex polygons, in either orientation, not
        closed. A polygon with fewer than ``k`` vertices is padded by
        repeating a vertex; zero-length edges are ignored. A polygon that is
        not convex after all (e.g. a cell ring across the antimeridian) is
        handled by GEOS.
    polygons : numpy.ndarray of object, shape (m,)
        Valid shapely Polygon or MultiPolygon geometries, holes allowed,
        empty geometries allowed. They get prepared (``shapely.prepare``) as a
        side effect.
    convex_index : numpy.ndarray of int, shape (p,)
        Convex polygon of each pair, in ``[0, n)``.
    polygon_index : numpy.ndarray of int, shape (p,)
        Polygon of each pair, in ``[0, m)``.

    Returns
    -------
    numpy.ndarray of float64, shape (p,)
        Area of the intersection of each pair, in coordinate units squared;
        agrees with GEOS to about 1e-12 of the convex polygon's area. Areas
        within 1e-12 of the convex polygon's area of 0 or of the whole are
        returned as exactly 0 or the whole (``shapely.area`` of the convex
        polygon, up to rounding), so that pairs that only touch get 0, as
        with GEOS.

    Raises
    ------
    ValidationError
        On arrays of the wrong shape, non-finite vertices, indexes out of
        range or geometries that are not polygonal.

    Notes
    -----
    The polygons' boundaries are split into segments once, and a spatial
    index finds, for each pair, the segments of its polygon whose boxes meet
    the convex polygon's box; a pair meeting none is wholly inside or
    outside, decided by one point-in-polygon test.

    Degenerate contacts (a polygon vertex exactly on an edge or a vertex of
    the convex polygon, boundaries overlapping along an edge) are resolved by
    simulation of simplicity: the polygon is treated as shifted by an
    infinitesimal vector, which leaves the area unchanged. The rare pairs the
    vectorised path cannot decide with certainty (crossings made
    contradictory by rounding in nearly degenerate configurations, a thin
    sliver of boundary through the centre of an about empty or full overlap,
    convex polygons that are not convex) are computed by GEOS instead.

    The polygons are assumed valid (as GEOS needs them to be); coordinates
    are planar, so lng/lat areas are in square degrees.

    Examples
    --------
    >>> square = np.array([[[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]])
    >>> polygons = np.array([shapely.box(1.0, 1.0, 3.0, 3.0)], dtype=object)
    >>> convex_overlap_areas(square, polygons, np.array([0]), np.array([0]))
    array([1.])
    """
    convex_xy, polygons, convex_index, polygon_index = _validate(convex_xy, polygons, convex_index, polygon_index)
    if convex_index.size == 0:
        return np.zeros(0)
    m = len(polygons)
    key = convex_index * m + polygon_index
    pair_key, inverse = np.unique(key, return_inverse=True)
    pair_convex = pair_key // m
    pair_polygon = pair_key % m
    used_convex, pair_local = np.unique(pair_convex, return_inverse=True)
    areas = _overlap_core(convex_xy, used_convex, polygons, pair_key, pair_local, pair_polygon)
    return areas[inverse]


def _validate(
    convex_xy: np.ndarray, polygons: np.ndarray, convex_index: np.ndarray, polygon_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coerce the arguments of :func:`convex_overlap_areas` and reject bad ones."""
    convex_xy = np.asarray(convex_xy, dtype=np.float64)
    if convex_xy.ndim != 3 or convex_xy.shape[1] < 3 or convex_xy.shape[2] != 2:
        raise ValidationError("convex_xy must have shape (n, k >= 3, 2), got {shape}.", shape=convex_xy.shape)
    if not np.isfinite(convex_xy).all():
        raise ValidationError("convex_xy holds non-finite coordinates.")
    polygons = np.asarray(polygons, dtype=object)
    if polygons.ndim != 1:
        raise ValidationError("polygons must be a one-dimensional array, got shape {shape}.", shape=polygons.shape)
    kinds = shapely.get_type_id(polygons)
    if not np.isin(kinds, (3, 6)).all():
        raise ValidationError("polygons must all be Polygon or MultiPolygon geometries.")
    convex_index = np.asarray(convex_index)
    polygon_index = np.asarray(polygon_index)
    if convex_index.ndim != 1 or convex_index.shape != polygon_index.shape:
        raise ValidationError(
            "convex_index and polygon_index must be one-dimensional and of equal length, got {a} and {b}.",
            a=convex_index.shape,
            b=polygon_index.shape,
        )
    for name, index, size in (
        ("convex_index", convex_index, len(convex_xy)),
        ("polygon_index", polygon_index, len(polygons)),
    ):
        if index.size and (not np.issubdtype(index.dtype, np.integer) or index.min() < 0 or index.max() >= size):
            raise ValidationError("{name} must hold integers in [0, {size}).", name=name, size=size)
    return convex_xy, polygons, convex_index.astype(np.int64), polygon_index.astype(np.int64)


def _signed_area2(xy: np.ndarray) -> np.ndarray:
    """Twice the signed area of rings of shape (n, k, 2), computed relative to their first vertex."""
    v = xy - xy[:, :1, :]
    w = np.roll(v, -1, axis=1)
    return (v[..., 0] * w[..., 1] - v[..., 1] * w[..., 0]).sum(axis=1)


def _perturbation_sign(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Sign of ``cross(d, eps)`` for an infinitesimal ``eps = (e1, e2)`` with ``e2 >> e1 > 0``."""
    return np.where(dx != 0, np.sign(dx), -np.sign(dy))


def _polygon_segments(polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boundary segments of polygons, interior on their left, grouped by polygon.

    Returns
    -------
    start, end : numpy.ndarray of float64, shape (s, 2)
    owner : numpy.ndarray of int64, shape (s,)
        Position of the owning polygon in ``polygons``, non-decreasing.
    """
    parts, part_owner = shapely.get_parts(polygons, return_index=True)
    parts = shapely.orient_polygons(parts, exterior_cw=False)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[:-1] == ring[1:]
    start, end = xy[:-1][same], xy[1:][same]
    owner = part_owner[ring_part[ring[:-1][same]]]
    keep = (start != end).any(axis=1)
    return start[keep], end[keep], owner[keep].astype(np.int64)


class _Chunks(NamedTuple):
    """Runs of at most :data:`_CHUNK` consecutive boundary segments of one polygon."""

    start: np.ndarray  # (c,) first segment
    length: np.ndarray  # (c,)
    box: np.ndarray  # (c, 4) xmin, ymin, xmax, ymax
    owner: np.ndarray  # (c,) owner of the segments


def _chunk_segments(seg_box: np.ndarray, seg_owner: np.ndarray) -> _Chunks:
    """Group segments (sorted by owner) into chunks of one owner each."""
    ns = len(seg_owner)
    index = np.arange(ns)
    first = np.ones(ns, dtype=bool)
    first[1:] = seg_owner[1:] != seg_owner[:-1]
    owner_start = np.maximum.accumulate(np.where(first, index, 0))
    start = np.flatnonzero((index - owner_start) % _CHUNK == 0)
    box = np.stack(
        [
            np.minimum.reduceat(seg_box[:, 0], start),
            np.minimum.reduceat(seg_box[:, 1], start),
            np.maximum.reduceat(seg_box[:, 2], start),
            np.maximum.reduceat(seg_box[:, 3], start),
        ],
        axis=1,
    )
    return _Chunks(start, np.diff(np.append(start, ns)), box, seg_owner[start])


def _chunk_hits(chunks: _Chunks, pair_box: np.ndarray, pair_owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pair, chunk) combinations whose closed boxes intersect, the chunk belonging to the pair's polygon.

    Each polygon gets a lane of its own along x, its boxes and its pairs'
    boxes being shifted by ``lane * pitch``, so that a query only meets the
    chunks of its own polygon even where polygons overlap. Rounding is
    monotonic, so shifted boxes that truly intersect still intersect.

    Parameters
    ----------
    chunks : _Chunks
        Chunks, ``owner`` being the lane.
    pair_box : numpy.ndarray, shape (q, 4)
        Boxes of the pairs to look for.
    pair_owner : numpy.ndarray, shape (q,)
        Lane of each pair's polygon.
    """
    if len(chunks.start) == 0 or len(pair_box) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    low = min(chunks.box[:, 0].min(), pair_box[:, 0].min())
    high = max(chunks.box[:, 2].max(), pair_box[:, 2].max())
    pitch = 2.0 * (high - low) + 1.0
    chunk_shift = chunks.owner * pitch
    pair_shift = pair_owner * pitch
    tree = shapely.STRtree(_envelopes(chunks.box, chunk_shift - low))
    pair, chunk = tree.query(_envelopes(pair_box, pair_shift - low))
    same = chunks.owner[chunk] == pair_owner[pair]
    return pair[same], chunk[same]


def _envelopes(box: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Geometries whose envelopes are boxes (q, 4), shifted along x.

    Diagonals: GEOS builds two-point lines about twice as fast as boxes.
    """
    line = np.empty((len(box), 2, 2))
    line[:, 0, 0] = box[:, 0] + shift
    line[:, 1, 0] = box[:, 2] + shift
    line[:, 0, 1] = box[:, 1]
    line[:, 1, 1] = box[:, 3]
    return shapely.linestrings(line)


def _expand_hits(
    chunks: _Chunks, seg_box: np.ndarray, pair_box: np.ndarray, pair: np.ndarray, chunk: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(pair, segment) combinations of (pair, chunk) hits whose closed boxes intersect.

    ``seg_box`` and ``pair_box`` are (4, s) and (4, p) arrays of xmin, ymin,
    xmax, ymax.
    """
    count = chunks.length[chunk]
    seg = np.repeat(chunks.start[chunk] - (np.cumsum(count) - count), count) + np.arange(count.sum())
    pair = np.repeat(pair, count)
    near = seg_box[0].take(seg) <= pair_box[2].take(pair)
    near &= seg_box[2].take(seg) >= pair_box[0].take(pair)
    near &= seg_box[1].take(seg) <= pair_box[3].take(pair)
    near &= seg_box[3].take(seg) >= pair_box[1].take(pair)
    return pair[near], seg[near]


class _Cells(NamedTuple):
    """Convex polygons made counter-clockwise, relative to their first vertex, vertex-major."""

    origin: np.ndarray  # (n, 2) first vertex, in input coordinates
    vx: np.ndarray  # (k, n) vertices
    vy: np.ndarray
    nx: np.ndarray  # (k, n) next vertices
    ny: np.ndarray
    ex: np.ndarray  # (k, n) edge vectors
    ey: np.ndarray
    tie: np.ndarray  # (k, n) whether a polygon vertex exactly on an edge's line counts as inside
    full: np.ndarray  # (k, n) integral of x dy along each edge
    area: np.ndarray  # (n,)
    usable: np.ndarray  # (n,) convex with positive area
    flat: np.ndarray  # (n,) convex with zero area: all vertices on a line
    box: np.ndarray  # (n, 4) xmin, ymin, xmax, ymax in input coordinates
    centroid: np.ndarray  # (2, n) mean of the vertices, an inner point, relative to the first vertex
    inradius2: np.ndarray  # (n,) squared distance from the centroid to the nearest edge line


def _prepare_cells(xy: np.ndarray) -> _Cells:
    """Orient, shift and check convex polygons of shape (n, k, 2) (``xy`` is modified)."""
    flip = _signed_area2(xy) < 0
    xy[flip] = xy[flip, ::-1]
    origin = xy[:, 0, :].copy()
    # shifting is exact for coordinates of one sign within a factor 2 (Sterbenz)
    v = np.ascontiguousarray((xy - origin[:, None, :]).transpose(2, 1, 0))
    vx, vy = v[0], v[1]
    nx, ny = np.roll(vx, -1, axis=0), np.roll(vy, -1, axis=0)
    ex, ey = nx - vx, ny - vy
    full = (ny - vy) * (vx + nx) * 0.5
    area = full.sum(axis=0)
    side = ex[:, None, :] * (vy[None, :, :] - vy[:, None, :]) - ey[:, None, :] * (vx[None, :, :] - vx[:, None, :])
    convex = (side >= 0).all(axis=(0, 1))
    usable = convex & (area > 0)
    flat = convex & (area <= 0)
    tie = _perturbation_sign(ex, ey) >= 0  # zero-length edges: every point inside, no crossing
    corners = np.ascontiguousarray(xy.transpose(2, 1, 0))
    box = np.stack(
        [
            np.minimum.reduce(corners[0], axis=0),
            np.minimum.reduce(corners[1], axis=0),
            np.maximum.reduce(corners[0], axis=0),
            np.maximum.reduce(corners[1], axis=0),
        ],
        axis=1,
    )
    centroid = np.stack([vx.mean(axis=0), vy.mean(axis=0)])
    length2 = ex * ex + ey * ey
    with np.errstate(divide="ignore", invalid="ignore"):
        depth2 = np.where(length2 > 0, (ex * (centroid[1] - vy) - ey * (centroid[0] - vx)) ** 2 / length2, np.inf)
    inradius2 = np.minimum.reduce(depth2, axis=0)
    return _Cells(origin, vx, vy, nx, ny, ex, ey, tie, full, area, usable, flat, box, centroid, inradius2)


class _Sums(NamedTuple):
    """Per-pair sums accumulated block by block."""

    boundary: np.ndarray  # (p,) integral of x dy along the polygon's boundary inside the cell
    tail: np.ndarray  # (p,) signed integrals of x dy from each crossing to the end of its edge
    net: np.ndarray  # (p * k,) entries minus exits into the polygon along each edge
    pieces: np.ndarray  # (p,) number of segments with a part of positive length inside the cell
    clearance2: np.ndarray  # (p,) squared distance from the cell's centroid to the nearest such part
    broken: np.ndarray  # (p,) number of segments whose crossings contradict their ends' positions


def _accumulate(cells: _Cells, cell: np.ndarray, pair: np.ndarray, a: np.ndarray, b: np.ndarray, sums: _Sums) -> None:
    """Add the contributions of (pair, segment) candidates to ``sums``.

    ``cell`` and ``pair`` give each candidate's cell and pair, ``a`` and ``b``
    its segment's ends relative to the cell's first vertex. Arrays of shape
    (k, c) hold one value per cell vertex or edge and candidate; ``flat``
    indexes them raveled.

    Each crossing of a segment and a cell edge is located once, and that
    point ends both the segment's part inside the cell and the edge's part
    inside the polygon, so the pieces always join up, even where the two
    lines are nearly parallel and the crossing point is ill-conditioned.
    """
    k, c = cells.vx.shape[0], len(cell)
    ax, ay, bx, by = a[:, 0], a[:, 1], b[:, 0], b[:, 1]
    dx, dy = bx - ax, by - ay
    vx, vy = cells.vx.take(cell, axis=1), cells.vy.take(cell, axis=1)
    ex, ey = cells.ex.take(cell, axis=1), cells.ey.take(cell, axis=1)
    # segment ends against the cell's edge lines, each computed once so that
    # the segments sharing an end agree
    dax, day = ax - vx, ay - vy
    dbx, dby = bx - vx, by - vy
    sa = ex * day - ey * dax
    sb = ex * dby - ey * dbx
    tie = cells.tie.take(cell, axis=1)
    a_in, b_in = sa > 0, sb > 0
    a_in |= (sa == 0) & tie
    b_in |= (sb == 0) & tie
    possible = (a_in | b_in).all(axis=0)
    flat = np.flatnonzero((a_in != b_in) & possible)
    edge, row = np.divmod(flat, c)

    # the edge's ends against the segment's line: does the segment cross the edge?
    following = np.where(edge == k - 1, row, flat + c)
    seg_dx, seg_dy = dx[row], dy[row]
    tie = _perturbation_sign(seg_dx, seg_dy) < 0
    hv0 = seg_dy * dax.take(flat) - seg_dx * day.take(flat)
    hv1 = seg_dy * dax.take(following) - seg_dx * day.take(following)
    left1 = (hv1 > 0) | ((hv1 == 0) & tie)
    hit = np.flatnonzero(((hv0 > 0) | ((hv0 == 0) & tie)) != left1)
    flat, edge, row, hv0, hv1, left1 = flat[hit], edge[hit], row[hit], hv0[hit], hv1[hit], left1[hit]
    sa_c, sb_c = sa.take(flat), sb.take(flat)
    on_a, on_b = sa_c == 0, sb_c == 0
    ex_c, ey_c = ex.take(flat), ey.take(flat)
    # a polygon vertex exactly on the edge line is located by projection, so
    # that both segments meeting there agree on where they cross the edge
    qx = np.where(on_a, dax.take(flat), dbx.take(flat))
    qy = np.where(on_a, day.take(flat), dby.take(flat))
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(on_a | on_b, (qx * ex_c + qy * ey_c) / (ex_c * ex_c + ey_c * ey_c), hv0 / (hv0 - hv1))
    s = np.clip(s, 0.0, 1.0)
    v_x, v_y = vx.take(flat), vy.take(flat)
    n_x, n_y = cells.nx[edge, cell[row]], cells.ny[edge, cell[row]]
    px, py = v_x * (1 - s) + n_x * s, v_y * (1 - s) + n_y * s

    # the segment's part inside the cell: from its start or where it enters,
    # to its end or where it leaves
    entry = b_in.take(flat)
    n_entries = np.bincount(row[entry], minlength=c)
    n_exits = np.bincount(row[~entry], minlength=c)
    a_inside, b_inside = a_in.all(axis=0).astype(np.int64), b_in.all(axis=0).astype(np.int64)
    sound = (n_entries <= 1 - a_inside) & (n_exits <= 1 - b_inside) & (n_entries + a_inside == n_exits + b_inside)
    x0, y0 = ax.copy(), ay.copy()
    x1, y1 = bx.copy(), by.copy()
    x0[row[entry]], y0[row[entry]] = px[entry], py[entry]
    x1[row[~entry]], y1[row[~entry]] = px[~entry], py[~entry]
    piece = np.flatnonzero(sound & (a_inside + n_entries == 1) & ((x0 != x1) | (y0 != y1)))
    np.add.at(sums.boundary, pair[piece], (y1[piece] - y0[piece]) * (x0[piece] + x1[piece]) * 0.5)
    np.add.at(sums.pieces, pair[piece], 1)
    x0, y0, x1, y1 = x0[piece], y0[piece], x1[piece], y1[piece]
    ux, uy = x1 - x0, y1 - y0
    cx, cy = cells.centroid[0].take(cell[piece]) - x0, cells.centroid[1].take(cell[piece]) - y0
    t = np.clip((cx * ux + cy * uy) / (ux * ux + uy * uy), 0.0, 1.0)
    np.minimum.at(sums.clearance2, pair[piece], (cx - t * ux) ** 2 + (cy - t * uy) ** 2)
    np.add.at(sums.broken, pair[~sound], 1)

    # the edge's part inside the polygon, from each crossing to the edge's end
    sign = np.where(left1, 1, -1)  # entering the polygon, or leaving it
    crossing_pair = pair[row]
    np.add.at(sums.tail, crossing_pair, sign * (n_y - py) * (px + n_x) * 0.5)
    np.add.at(sums.net, crossing_pair * k + edge, sign)


def _overlap_core(
    convex_xy: np.ndarray,
    used_convex: np.ndarray,
    polygons: np.ndarray,
    pair_key: np.ndarray,
    pair_local: np.ndarray,
    pair_polygon: np.ndarray,
) -> np.ndarray:
    """Areas of the distinct pairs ``pair_key`` (convex * m + polygon).

    The area is the integral of ``x dy`` along the boundary of the
    intersection: the polygon's boundary inside the cell, plus the cell's
    edges inside the polygon. The latter is ``state0 * area(cell) + sum(cum *
    edge) + tail``, where ``state0`` tells whether the first cell vertex is
    inside the polygon, ``cum`` counts the net entries into the polygon before
    each cell vertex, ``edge`` is the integral along each whole edge and
    ``tail`` the signed integrals from each crossing to its edge's end.

    With ``a0`` the area if ``state0`` were 0: as the area lies in ``[0,
    area(cell)]``, ``a0 < 0`` means ``state0`` is 1 and ``a0 > 0`` means it is
    0. Within ``tol`` of 0, the overlap is about empty or about full: a
    point-in-polygon test of the cell's centroid decides when the boundary
    keeps clear of it, GEOS otherwise. GEOS also takes the pairs whose
    crossings contradict each other (rounding in nearly degenerate
    configurations) and the cells that are not convex.

    All decisions about the arrangement of the two boundaries rest on two
    orientation tests, each evaluated once per (segment, cell) combination so
    that adjacent segments and edges agree: a polygon vertex against a cell
    edge's line, and a cell vertex against a polygon segment's line. Exact
    zeros are broken as if the polygon were shifted by ``eps = (e1, e2)``,
    ``e2 >> e1 > 0`` (simulation of simplicity).
    """
    m = len(polygons)
    n_pairs = len(pair_key)
    cells = _prepare_cells(convex_xy[used_convex])
    k = cells.vx.shape[0]

    upoly, pair_owner = np.unique(pair_polygon, return_inverse=True)
    seg_a, seg_b, seg_owner = _polygon_segments(polygons[upoly])
    seg_box = np.concatenate([np.minimum(seg_a, seg_b), np.maximum(seg_a, seg_b)], axis=1)
    chunks = _chunk_segments(seg_box, seg_owner)
    query = np.flatnonzero(cells.usable[pair_local])
    hit_pair, hit_chunk = _chunk_hits(chunks, cells.box[pair_local[query]], pair_owner[query])
    hit_pair = query[hit_pair]

    sums = _Sums(
        boundary=np.zeros(n_pairs),
        tail=np.zeros(n_pairs),
        net=np.zeros(n_pairs * k, np.int64),
        pieces=np.zeros(n_pairs, np.int64),
        clearance2=np.full(n_pairs, np.inf),
        broken=np.zeros(n_pairs, np.int64),
    )
    pair_box = np.ascontiguousarray(cells.box[pair_local].T)
    seg_box = np.ascontiguousarray(seg_box.T)
    step = max(1, _BLOCK // _CHUNK)
    for start in range(0, len(hit_pair), step):
        block = slice(start, start + step)
        pair, seg = _expand_hits(chunks, seg_box, pair_box, hit_pair[block], hit_chunk[block])
        cell = pair_local[pair]
        origin = cells.origin[cell]
        _accumulate(cells, cell, pair, seg_a[seg] - origin, seg_b[seg] - origin, sums)

    net = sums.net.reshape(n_pairs, k)
    cum = np.cumsum(net, axis=1) - net
    a0 = sums.boundary + sums.tail + (cum * cells.full[:, pair_local].T).sum(axis=1)
    full = cells.area[pair_local]
    usable = cells.usable[pair_local]
    tol = _AMBIGUOUS * full
    state0 = (a0 < -tol).astype(np.int64)
    ambiguous = np.abs(a0) <= tol
    # about empty or full: a disc around the centroid that the boundary does
    # not enter is wholly inside or outside the polygon, and too large to fit
    # in an overlap (or a gap) of at most tol
    clear2 = np.minimum(sums.clearance2, cells.inradius2[pair_local])
    probe = np.flatnonzero(ambiguous & usable & (np.pi * clear2 > 2 * tol))
    if probe.size:
        target = polygons[pair_polygon[probe]]
        shapely.prepare(target[~shapely.is_prepared(target)])
        centroid = cells.origin[pair_local[probe]] + cells.centroid[:, pair_local[probe]].T
        state0[probe] = shapely.contains_xy(target, centroid[:, 0], centroid[:, 1])
    states = state0[:, None] + cum
    result = a0 + state0 * full
    bare = probe[sums.pieces[probe] == 0]
    result[bare] = state0[bare] * full[bare]  # no boundary inside: exactly empty or full
    decided = np.zeros(n_pairs, dtype=bool)
    decided[probe] = True
    suspect = (
        (ambiguous & ~decided)
        | (sums.broken > 0)
        | ((states < 0) | (states > 1)).any(axis=1)
        | (net.sum(axis=1) != 0)
        | (result < -tol)
        | (result > full + tol)
        | ~np.isfinite(result)
    )
    result = np.clip(result, 0.0, full)
    # below the accuracy of the method: pairs that only touch get exactly 0
    result[result <= _SNAP * full] = 0.0
    result = np.where(result >= (1 - _SNAP) * full, full, result)
    result[cells.flat[pair_local]] = 0.0
    redo = np.flatnonzero((suspect & usable) | ~(usable | cells.flat[pair_local]))
    if redo.size:
        result[redo] = _shapely_areas(convex_xy[pair_key[redo] // m], polygons[pair_polygon[redo]])
    return result


def _shapely_areas(convex_xy: np.ndarray, polygons: np.ndarray) -> np.ndarray:
    """GEOS areas of intersection, for the pairs the vectorised path leaves out."""
    return shapely.area(shapely.intersection(shapely.polygons(convex_xy), polygons))
