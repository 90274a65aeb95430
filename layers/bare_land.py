"""Bare land from a GeoTIFF: bare area and fraction per H3 cell, read window by window.

A raster is either a land-cover map (bare where the pixel holds one of the chosen
classes) or a bare-soil index (bare where the value is at least a threshold).
It is read in windows aligned to its blocks, so rasters larger than memory work;
nothing ever reads the whole band.

Each pixel belongs to the H3 cell its centre falls in. Per window, the candidate
cells (those touching the window's footprint, found in WGS84) are drawn into the
window as runs of pixels per row (a pixel belongs to the hexagon containing its
centre; hexagon vertices are projected into the raster's CRS with pyproj, then into
pixel coordinates of the *whole* raster before the window's integer offset is taken
off, so a pixel is decided identically whatever the window size), and bare and
observed pixels are summed per run with :func:`numpy.add.reduceat`: one pass over the
pixels, no per-pixel labels. Counting is integer per cell, so windowing cannot change
the result.

Areas come from the pixel footprint on the WGS84 ellipsoid at the cell's centre:
for a projected CRS the pixel's area in the CRS times the Jacobian of the CRS's
inverse there (central differences of one pixel; the reciprocal of the projection's
areal scale) times ``M·N·cos φ``; for a geographic CRS ``Δλ·Δφ·M·N·cos φ``
(meridian and prime-vertical radii of curvature). Over one cell (≈ 1 km) the
footprint changes by far less than 0.01 %.

Examples
--------
>>> import tempfile, pathlib, rasterio
>>> from rasterio.transform import from_origin
>>> path = pathlib.Path(tempfile.mkdtemp()) / "lc.tif"
>>> data = np.full((40, 40), 10, dtype=np.uint8); data[:20] = 60
>>> with rasterio.open(path, "w", driver="GTiff", width=40, height=40, count=1, dtype="uint8",
...                    crs="EPSG:32649", transform=from_origin(700_000, 3_810_000, 10, 10)) as dst:
...     dst.write(data, 1)
>>> cells = bare_cells_from_raster(path, resolution=8, bare_classes=[60])
>>> round(float(cells.bare_m2.sum() / cells.observed_m2.sum()), 3)
0.5
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyproj
import rasterio
import shapely
from affine import Affine
from h3ronpy import grid_disk
from h3ronpy.vector import ContainmentMode, geometry_to_cells
from rasterio.windows import Window

from gridwatch.crs import WGS84
from gridwatch.errors import CRSError, ValidationError
from gridwatch.grid import cells_to_latlng, cells_to_polygons

from .untrusted import GDAL_NO_NETWORK

__all__ = ["bare_cells_from_raster", "raster_windows", "raster_date", "pixel_area_m2", "CELL_COLUMNS"]

#: columns of the per-cell frame
CELL_COLUMNS = ("cell", "observed_px", "bare_px", "observed_m2", "bare_m2", "fraction")
#: default target window edge in pixels (rounded to whole blocks)
_WINDOW = 2048
_A = 6378137.0
_E2 = (1 / 298.257223563) * (2 - 1 / 298.257223563)


@functools.lru_cache(maxsize=16)
def _transformers(wkt: str) -> tuple[pyproj.Transformer, pyproj.Transformer]:
    """Transformers raster CRS → WGS84 and back (lng/lat order), cached: building one takes tens of ms.

    When PROJ knows exactly one way between the two CRSs (a projection of the same datum, the usual case), the
    transformers are rebuilt from that operation's pipeline: the same numbers, but usable on a new thread at no
    cost, where a CRS-to-CRS transformer first spends ≈ 65 ms setting itself up again.
    """
    crs = pyproj.CRS.from_wkt(wkt)
    pair = []
    for source, target in ((crs, WGS84.pyproj_crs), (WGS84.pyproj_crs, crs)):
        transformer = pyproj.Transformer.from_crs(source, target, always_xy=True)
        if len(pyproj.transformer.TransformerGroup(source, target, always_xy=True).transformers) == 1:
            transformer = pyproj.Transformer.from_pipeline(transformer.definition)
        pair.append(transformer)
    return pair[0], pair[1]


def raster_windows(src: rasterio.io.DatasetReader, window_size: int | None = None) -> Iterator[Window]:
    """Windows covering the raster, aligned to its blocks.

    Parameters
    ----------
    src : rasterio dataset
    window_size : int, optional
        Window edge in pixels. Default: whole blocks adding up to about 2048 pixels a side
        (a striped file's strips are grouped to full-width windows of about 4 M pixels).

    Yields
    ------
    rasterio.windows.Window
    """
    height, width = src.height, src.width
    if window_size is not None:
        if int(window_size) < 1:
            raise ValidationError("The window size must be at least 1 pixel (got {value}).", value=window_size)
        wh = ww = int(window_size)
    else:
        bh, bw = src.block_shapes[0]
        if bw >= width:  # strips: full rows, about 4 M pixels per window
            ww = width
            wh = max(bh, (max(1, 4_000_000 // max(width, 1)) // bh) * bh)
        else:
            wh = max(bh, (_WINDOW // bh) * bh)
            ww = max(bw, (_WINDOW // bw) * bw)
    for row in range(0, height, wh):
        for col in range(0, width, ww):
            yield Window(col, row, min(ww, width - col), min(wh, height - row))


#: how a TIFF starts (little- and big-endian, classic and BigTIFF)
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@contextmanager
def _open_raster(path: str | Path) -> Iterator[rasterio.io.DatasetReader]:
    """Open an uploaded GeoTIFF: TIFF bytes only, the GTiff driver only, and GDAL without network.

    A VRT (or any other document that names data elsewhere) under a ``.tif`` name is refused by its first bytes,
    and the GTiff driver is the only one GDAL may try.
    """
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic not in _TIFF_MAGIC:
        raise ValidationError("{file} is not a GeoTIFF: it does not start as a TIFF file does.", file=Path(path).name)
    with rasterio.Env(**GDAL_NO_NETWORK), rasterio.open(path, driver="GTiff") as src:
        yield src


def raster_date(path: str | Path) -> dt.date | None:
    """The acquisition date a GeoTIFF carries (``TIFFTAG_DATETIME`` or an ``ACQUISITION_DATE`` tag), if any."""
    with _open_raster(path) as src:
        tags = src.tags()
    for key in ("ACQUISITION_DATE", "acquisition_date", "DATE", "TIFFTAG_DATETIME"):
        text = str(tags.get(key, "")).strip()
        if len(text) >= 10:
            try:
                return dt.date.fromisoformat(text[:10].replace(":", "-"))
            except ValueError:
                continue
    return None


def pixel_area_m2(crs: pyproj.CRS, transform: Affine, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Area on the WGS84 ellipsoid of one pixel of a raster at the given places (square metres).

    Parameters
    ----------
    crs : pyproj.CRS
        The raster's CRS (geographic or projected).
    transform : Affine
        The raster's geotransform.
    lng, lat : ndarray
        Where (WGS84 degrees).

    Examples
    --------
    >>> from rasterio.transform import from_origin
    >>> round(float(pixel_area_m2(pyproj.CRS(32649), from_origin(0, 0, 10, 10), [111.0], [0.0])[0]), 2)
    100.08
    """
    return _pixel_area(crs.is_geographic, crs.to_wkt(), transform, lng, lat)


def _pixel_area(geographic: bool, wkt: str, transform: Affine, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """:func:`pixel_area_m2` for a CRS given by its WKT: a worker thread touches no ``pyproj.CRS`` (one made on
    another thread sets itself up again, ≈ 20 ms)."""
    lng = np.asarray(lng, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    det = abs(transform.a * transform.e - transform.b * transform.d)
    phi = np.radians(lat)
    w2 = 1.0 - _E2 * np.sin(phi) ** 2
    n = _A / np.sqrt(w2)
    m = n * (1.0 - _E2) / w2
    per_rad2 = m * n * np.cos(phi)  # m² of the ellipsoid per square radian of longitude × latitude there
    if geographic:
        return det * math.radians(1.0) ** 2 * per_rad2
    # a projected CRS: the Jacobian of its inverse (central differences of one pixel) gives the radians² of one
    # CRS unit², through the cached pipeline transformers (a pyproj.Proj would set itself up again on every thread)
    to_wgs, from_wgs = _transformers(wkt)
    x, y = (np.asarray(v, dtype=np.float64) for v in from_wgs.transform(lng, lat))
    h = math.sqrt(det)
    lam, phs = to_wgs.transform(np.concatenate([x + h, x - h, x, x]), np.concatenate([y, y, y + h, y - h]))
    lam, phs = np.radians(np.asarray(lam)).reshape(4, -1), np.radians(np.asarray(phs)).reshape(4, -1)
    jacobian = np.abs((lam[0] - lam[1]) * (phs[2] - phs[3]) - (lam[2] - lam[3]) * (phs[0] - phs[1])) / (4 * h * h)
    return det * jacobian * per_rad2


def _footprint_wgs84(to_wgs: pyproj.Transformer, transform: Affine, window: Window, steps: int = 8
                     ) -> shapely.Polygon:
    """The window's outline (pixel edges, each side in ``steps`` pieces) in WGS84."""
    c0, r0 = window.col_off, window.row_off
    c1, r1 = c0 + window.width, r0 + window.height
    t = np.linspace(0.0, 1.0, steps + 1)[:-1]
    cols = np.concatenate([c0 + (c1 - c0) * t, np.full(steps, c1), c1 - (c1 - c0) * t, np.full(steps, c0)])
    rows = np.concatenate([np.full(steps, r0), r0 + (r1 - r0) * t, np.full(steps, r1), r1 - (r1 - r0) * t])
    x, y = transform @ (cols, rows)
    lng, lat = to_wgs.transform(x, y)
    if not (np.isfinite(lng).all() and np.isfinite(lat).all()):
        raise CRSError("Part of the raster cannot be transformed to WGS84; check its coordinate reference system.")
    return shapely.Polygon(np.column_stack([lng, lat]))


def _candidate_cells(footprint: shapely.Polygon, resolution: int) -> np.ndarray:
    cells = np.asarray(geometry_to_cells(footprint, resolution,
                                         containment_mode=ContainmentMode.IntersectsBoundary), dtype=np.uint64)
    if not cells.size:
        lat, lng = footprint.centroid.y, footprint.centroid.x
        from gridwatch.grid import latlng_to_cells

        cells = latlng_to_cells(np.array([lat]), np.array([lng]), resolution)
    ring = np.asarray(grid_disk(cells, 1, flatten=True), dtype=np.uint64)
    return np.unique(ring)


def _cell_vertices(cells: np.ndarray) -> np.ndarray:
    """Hexagon vertices (lng, lat) of cells, shape (n, k, 2), read straight from h3ronpy's WKB.

    Hexagons (7 points with the closing one, 125 bytes of WKB) are sliced out of the binary buffer without
    building geometries; any other cell (pentagons, cells with distortion vertices) goes through shapely and
    is padded by repeating its last vertex.
    """
    from h3ronpy.vector import cells_to_wkb_polygons

    cells = np.asarray(cells, dtype=np.uint64)
    arr = pa.array(cells_to_wkb_polygons(cells))
    if len(arr) and arr.null_count == 0:
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
        data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
        if (np.diff(offsets) == 125).all() and sys.byteorder == "little" and (data[offsets[:-1]] == 1).all():
            block = data[offsets[0]:offsets[-1]].reshape(len(arr), 125)[:, 13:]
            return np.ascontiguousarray(block).view("<f8").reshape(len(arr), 7, 2)[:, :6].copy()
    xy, owner = shapely.get_coordinates(cells_to_polygons(cells), return_index=True)
    count = np.bincount(owner, minlength=len(cells)) - 1  # without the closing vertex
    start = np.cumsum(count + 1) - (count + 1)
    k = int(count.max())
    take = start[:, None] + np.minimum(np.arange(k), count[:, None] - 1)
    return xy[take]


def _cells_in_pixels(cells: np.ndarray, from_wgs: pyproj.Transformer, inverse: Affine) -> np.ndarray:
    """Hexagon vertices of ``cells`` in pixel coordinates (column, row) of the whole raster, shape (n, k, 2)."""
    lnglat = _cell_vertices(cells)
    x, y = from_wgs.transform(lnglat[:, :, 0].ravel(), lnglat[:, :, 1].ravel())
    col, row = inverse @ (np.asarray(x), np.asarray(y))
    return np.stack([col, row], axis=-1).reshape(lnglat.shape)


def _span_starts(verts: np.ndarray, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Where each hexagon's run of pixels starts on each pixel row of the window.

    A pixel belongs to the hexagon containing its centre. Row ``r`` (centre ``r + 0.5``) crosses a convex
    hexagon between its left and right edges; the run starts at the first column whose centre is at or right of
    the left crossing. Computed in whole-raster pixel coordinates, then shifted by the window's integer offset,
    so a pixel is decided the same in any window. Runs are half-open: each ends where the next starts.

    Returns
    -------
    flat : ndarray of int64
        Sorted start offsets into the window's flattened pixels (row-major), unique, the first 0.
    which : ndarray of int64
        The hexagon (index into ``verts``) of each run.
    """
    r_off, c_off = int(window.row_off), int(window.col_off)
    h, w = int(window.height), int(window.width)
    a = verts
    b = np.roll(verts, -1, axis=1)
    # the left chain: edges whose outward normal points to smaller columns (orientation from the shoelace sign)
    orient = np.sign(np.sum(a[:, :, 0] * b[:, :, 1] - b[:, :, 0] * a[:, :, 1], axis=1))
    dy = b[:, :, 1] - a[:, :, 1]
    cell_of, edge_of = np.nonzero(orient[:, None] * dy < 0)
    a, b = a[cell_of, edge_of], b[cell_of, edge_of]
    # rows whose centre r + 0.5 lies in [min y, max y) of the edge: each row meets one left edge per hexagon
    lo, hi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    r0 = np.clip(np.ceil(lo - 0.5), r_off, r_off + h).astype(np.int64)
    r1 = np.clip(np.ceil(hi - 0.5), r_off, r_off + h).astype(np.int64)
    n = r1 - r0
    total = int(n.sum())
    pick = np.repeat(np.arange(n.size), n)
    rows = np.arange(total) + np.repeat(r0 - (np.cumsum(n) - n), n)
    # the edge's column at row r is x(r) = at_zero + r · slope (the edge's own two numbers, whatever the window)
    slope = (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    at_zero = a[:, 0] + (0.5 - a[:, 1]) * slope
    left = at_zero[pick] + rows * slope[pick]
    which = cell_of[pick]
    col = np.ceil(left - 0.5).astype(np.int64) - c_off
    inside = col < w
    col, rows, which, left = np.maximum(col[inside], 0), rows[inside] - r_off, which[inside], left[inside]
    flat = rows * w + col
    # Runs ordered by the pixel they start on. Several runs may start on one pixel (runs clipped to the window's
    # first column, or a hexagon's corner narrower than a pixel): the one starting furthest right covers it, so
    # those few are ordered by where they start and the last of each pixel is kept.
    order = np.argsort(flat.astype(np.uint32) if h * w < 2**32 else flat, kind="stable")
    flat_sorted = flat[order]
    same = flat_sorted[1:] == flat_sorted[:-1]
    if same.any():
        tied = np.zeros(flat.size, dtype=bool)
        tied[1:] |= same
        tied[:-1] |= same
        at = np.flatnonzero(tied)
        order[at] = order[at][np.lexsort((left[order[at]], flat_sorted[at]))]
    which = which[order]
    last = np.ones(flat.size, dtype=bool)
    last[:-1] = ~same
    return flat_sorted[last], which[last]


_THREADS = 2
#: up to this many cells, the raster's cells and their pixel outlines are found once, before counting, not per
#: window
_MAX_SHARE_CELLS = 2_000_000
#: mean area of an H3 cell per resolution, km² (h3's published averages), to size the raster's cell set
_MEAN_CELL_KM2 = {5: 252.9, 6: 36.13, 7: 5.161, 8: 0.7373, 9: 0.1053, 10: 0.01504, 11: 0.002149,
                  12: 0.0003071}


def _approx_cells(outline: shapely.Polygon, resolution: int) -> float:
    """About how many cells cover a lng/lat outline (its area over the mean cell area)."""
    from gridwatch.crs import geodesic_area_m2

    area_km2 = float(geodesic_area_m2(outline)[()]) / 1e6
    return area_km2 / _MEAN_CELL_KM2.get(int(resolution), 0.7373 / 7 ** (int(resolution) - 8))


@dataclass(frozen=True)
class _CellSet:
    """Cells found once for the whole raster: ids (sorted), hexagons in whole-raster pixel coordinates, their pixel
    bounds (col0, row0, col1, row1) and the area of one pixel at each cell's centre (m²)."""

    cells: np.ndarray
    verts: np.ndarray
    bounds: np.ndarray
    pixel_m2: np.ndarray


def _cells_of(outline: shapely.Polygon, resolution: int, from_wgs: pyproj.Transformer, inverse: Affine,
              geographic: bool, wkt: str, transform: Affine) -> _CellSet:
    """Every cell of an outline with its hexagon in whole-raster pixel coordinates, pixel bounds and pixel area."""
    cells = _candidate_cells(outline, resolution)
    verts = _cells_in_pixels(cells, from_wgs, inverse)
    bounds = np.column_stack([verts[:, :, 0].min(1), verts[:, :, 1].min(1), verts[:, :, 0].max(1),
                              verts[:, :, 1].max(1)])
    lat, lng = cells_to_latlng(cells)
    return _CellSet(cells, verts, bounds, _pixel_area(geographic, wkt, transform, lng, lat))


def _in_dtype(values: Any, dtype: np.dtype) -> Any:
    """``values`` in an integer raster's own type, so comparisons run on the raster's bytes (a float would make
    numpy convert every pixel); values the type cannot hold are dropped from arrays (no pixel equals them)."""
    if not np.issubdtype(dtype, np.integer):
        return values
    info = np.iinfo(dtype)
    array = np.atleast_1d(np.asarray(values, dtype=np.float64))
    fits = (array == np.round(array)) & (array >= info.min) & (array <= info.max)
    if np.ndim(values) == 0:
        return dtype.type(array[0]) if fits[0] else values
    return array[fits].astype(dtype)


@dataclass(frozen=True)
class _Masks:
    """One window's bare pixels and observed pixels (``valid`` None: every pixel has data)."""

    window: Window
    bare: np.ndarray
    valid: np.ndarray | None


class _Scratch:
    """One worker's window buffers, reused from window to window: reading and testing into them spares allocating
    (and faulting in) a few MB per window; a window's masks are used up before the next one is read."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
        size = shape[0] * shape[1]
        array = self._arrays.get(name)
        if array is None or array.size < size or array.dtype != dtype:
            array = self._arrays[name] = np.empty(size, dtype=dtype)
        return array[:size].reshape(shape)


@dataclass(frozen=True)
class _Job:
    """Counting bare and observed pixels per cell, window by window (what every worker shares)."""

    path: Path
    band: int
    resolution: int
    classes: np.ndarray | None
    threshold: float | None
    nodata: float | None
    transform: Affine
    wkt: str
    #: the bare test is already false on nodata pixels (a land-cover nodata value that is not a bare class)
    bare_excludes_nodata: bool = False

    def _masks(self, src: rasterio.io.DatasetReader, window: Window, scratch: _Scratch) -> _Masks | None:
        """Read one window and test its pixels; None when it holds no data."""
        shape = (int(window.height), int(window.width))
        data = src.read(self.band, window=window, out=scratch.get("data", shape, np.dtype(src.dtypes[self.band - 1])))
        nodata, classes = self.nodata, self.classes
        if np.issubdtype(data.dtype, np.floating):
            valid = np.isfinite(data)
            if nodata is not None and not math.isnan(nodata):
                valid &= data != nodata
        else:
            # an integer nodata value outside the window's range of values marks no pixel: two quick reductions
            # instead of a comparison and a count
            value = _in_dtype(nodata, data.dtype) if nodata is not None else None
            valid = data != value if isinstance(value, np.integer) and data.min() <= value <= data.max() else None
        if classes is not None:
            wanted = _in_dtype(classes, data.dtype)
            bare = (np.isin(data, wanted) if wanted.size != 1
                    else np.equal(data, wanted[0], out=scratch.get("bare", shape, np.dtype(bool))))
        else:
            with np.errstate(invalid="ignore"):
                bare = np.greater_equal(data, self.threshold, out=scratch.get("bare", shape, np.dtype(bool)))
        if valid is not None:
            n_valid = np.count_nonzero(valid)
            if not n_valid:
                return None
            if n_valid == valid.size:
                valid = None
            elif not self.bare_excludes_nodata:
                bare &= valid
        return _Masks(window, bare, valid)

    def _window_cells(self, window: Window, to_wgs: pyproj.Transformer, from_wgs: pyproj.Transformer,
                      inverse: Affine, share: _CellSet | None) -> tuple[np.ndarray, np.ndarray]:
        """The cells that may hold pixels of the window: their keys (cell ids, or with ``share`` their indices
        into it) and their hexagons in pixel coordinates."""
        if share is None:
            cells = _candidate_cells(_footprint_wgs84(to_wgs, self.transform, window), self.resolution)
            return cells.astype(np.int64), _cells_in_pixels(cells, from_wgs, inverse)
        b = share.bounds
        c0, r0 = window.col_off, window.row_off
        pick = np.flatnonzero((b[:, 2] >= c0) & (b[:, 0] <= c0 + window.width)
                              & (b[:, 3] >= r0) & (b[:, 1] <= r0 + window.height))
        return pick, share.verts[pick]

    def _count(self, masks: _Masks, to_wgs: pyproj.Transformer, from_wgs: pyproj.Transformer, inverse: Affine,
               share: _CellSet | None, found: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]) -> None:
        """Sum one window's bare and observed pixels per cell into ``found`` (cell keys, observed, bare)."""
        window, bare, valid = masks.window, masks.bare, masks.valid
        keys, verts = self._window_cells(window, to_wgs, from_wgs, inverse, share)
        flat, which = _span_starts(verts, window)
        if not flat.size or flat[0] != 0:
            raise ValidationError("The cells do not cover window {window} of {file}; is the raster's CRS "
                                  "right?", window=str(window), file=self.path.name)
        acc = np.uint16 if int(window.width) < 65_536 else np.uint32  # a run is at most a row long
        bare_run = np.add.reduceat(bare.view(np.uint8).ravel(), flat, dtype=acc)
        if valid is None:
            obs_run = np.diff(flat, append=bare.size)
        else:
            obs_run = np.add.reduceat(valid.view(np.uint8).ravel(), flat, dtype=acc)
        observed = np.bincount(which, weights=obs_run, minlength=len(keys))
        bare_count = np.bincount(which, weights=bare_run, minlength=len(keys))
        keep = observed > 0
        found[0].append(keys[keep])
        found[1].append(observed[keep])
        found[2].append(bare_count[keep])

    def run(self, windows: Iterator[Window], share: _CellSet | None
            ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """Count the windows this worker takes from ``windows`` (shared by the workers: each takes the next one
        when it is free, so none waits on a slower share), with its own dataset handle."""
        to_wgs, from_wgs = _transformers(self.wkt)
        inverse = ~self.transform
        found: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
        scratch = _Scratch()
        with _open_raster(self.path) as src:
            for window in windows:
                masks = self._masks(src, window, scratch)
                if masks is not None:
                    self._count(masks, to_wgs, from_wgs, inverse, share, found)
        return found


class _Windows:
    """The windows to count, handed out one at a time to whichever worker asks (thread-safe)."""

    def __init__(self, windows: list[Window]) -> None:
        self._windows = iter(windows)
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[Window]:
        return self

    def __next__(self) -> Window:
        with self._lock:
            return next(self._windows)


def _bands(width: int, height: int, n: int) -> list[Window]:
    """``n`` full-width bands of rows of about equal height covering the raster (fewer when it is short)."""
    edges = sorted({round(height * i / n) for i in range(n + 1)})
    return [Window(0, r0, width, r1 - r0) for r0, r1 in zip(edges[:-1], edges[1:], strict=True)]


def _merge_cells(parts: list[_CellSet]) -> _CellSet:
    """One set of cells (each once, sorted) from the bands' overlapping sets."""
    cells = np.concatenate([p.cells for p in parts])
    _, first = np.unique(cells, return_index=True)
    return _CellSet(*(np.concatenate([getattr(p, f.name) for p in parts])[first]
                      for f in dataclasses.fields(_CellSet)))


def bare_cells_from_raster(
    path: str | Path,
    *,
    resolution: int,
    bare_classes: Iterable[int | float] | None = None,
    threshold: float | None = None,
    band: int = 1,
    window_size: int | None = None,
    crs: Any = None,
) -> pd.DataFrame:
    """Bare area and fraction per H3 cell of a land-cover or bare-soil-index GeoTIFF, read in windows.

    Parameters
    ----------
    path : path
        The GeoTIFF.
    resolution : int
        H3 resolution of the cells (the store's).
    bare_classes : iterable of numbers, optional
        Land-cover mode: the class values that are bare land.
    threshold : float, optional
        Index mode: values at or above this are bare (give exactly one of ``bare_classes`` and ``threshold``).
    band : int
        The band to read (1-based).
    window_size : int, optional
        Window edge in pixels; default whole blocks of about 2048 pixels a side.
    crs : optional
        The raster's CRS when the file has none (never guessed).

    Returns
    -------
    DataFrame
        ``cell`` (int64), ``observed_px`` and ``bare_px`` (pixels with data / bare pixels whose centre is in
        the cell), ``observed_m2``, ``bare_m2`` and ``fraction`` (bare / observed), one row per cell with
        data, sorted by cell.

    Raises
    ------
    ValidationError
        Neither or both modes given, no such band, a rotated raster.
    CRSError
        The file has no CRS and none was given.
    """
    if (bare_classes is None) == (threshold is None):
        raise ValidationError("Give either the bare land-cover classes or an index threshold for {file}, not "
                              "both or neither.", file=Path(path).name)
    classes = None if bare_classes is None else np.asarray(list(bare_classes), dtype=np.float64)
    with _open_raster(path) as src:
        if not 1 <= band <= src.count:
            raise ValidationError("{file} has {count} band(s); band {band} does not exist.", file=Path(path).name,
                                  count=src.count, band=band)
        if src.crs is None and crs is None:
            raise CRSError("{file} declares no coordinate reference system; give it (for example EPSG:4490 or "
                           "EPSG:4546).", file=Path(path).name)
        raster_crs = pyproj.CRS.from_user_input(src.crs.to_wkt() if src.crs is not None else crs)
        transform = src.transform
        if transform.b != 0 or transform.d != 0:
            raise ValidationError("{file} is rotated; warp it to a north-up grid first.", file=Path(path).name)
        nodata = src.nodatavals[band - 1]
        width, height = src.width, src.height
        windows = list(raster_windows(src, window_size))
    excludes = bool(classes is not None and nodata is not None and not math.isnan(nodata)
                    and not np.isin(nodata, classes))
    wkt, geographic = raster_crs.to_wkt(), raster_crs.is_geographic
    job = _Job(Path(path), band, resolution, classes, threshold, nodata, transform, wkt,
               bare_excludes_nodata=excludes)
    to_wgs, from_wgs = _transformers(wkt)
    inverse = ~transform
    outline = _footprint_wgs84(to_wgs, transform, Window(0, 0, width, height), steps=64)
    # Two workers (GDAL reads, numpy, pyproj and h3ronpy release the GIL). When the raster's cells are not too many,
    # they are found once, before counting: each worker takes one band of rows and the bands' sets are merged (else
    # each window finds its own). Then each worker, with its own dataset handle, counts the next window not yet
    # taken until none is left.
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        share = None
        if _approx_cells(outline, resolution) <= _MAX_SHARE_CELLS:
            parts = list(pool.map(
                lambda band_window: _cells_of(_footprint_wgs84(to_wgs, transform, band_window, steps=64),
                                              resolution, from_wgs, inverse, geographic, wkt, transform),
                _bands(width, height, _THREADS)))
            share = _merge_cells(parts)
        queue = _Windows(windows)
        workers = [pool.submit(job.run, queue, share) for _ in range(min(_THREADS, len(windows)))]
        results = [w.result() for w in workers]
    found_keys = [c for r in results for c in r[0]]
    found_obs = [c for r in results for c in r[1]]
    found_bare = [c for r in results for c in r[2]]
    if not found_keys:
        return pd.DataFrame({c: pd.Series(dtype=np.int64 if c in ("cell", "observed_px", "bare_px") else np.float64)
                             for c in CELL_COLUMNS})
    keys = np.concatenate(found_keys)
    if share is not None:  # indices into the raster's cell set: sum by index, keep the cells with data
        n = len(share.cells)
        observed_px = np.bincount(keys, weights=np.concatenate(found_obs), minlength=n).astype(np.int64)
        bare_px = np.bincount(keys, weights=np.concatenate(found_bare), minlength=n).astype(np.int64)
        seen = observed_px > 0
        uniq, observed_px, bare_px, area = share.cells[seen].astype(np.int64), observed_px[seen], bare_px[seen], \
            share.pixel_m2[seen]
    else:
        uniq, inverse_idx = np.unique(keys, return_inverse=True)
        observed_px = np.bincount(inverse_idx, weights=np.concatenate(found_obs), minlength=uniq.size).astype(
            np.int64)
        bare_px = np.bincount(inverse_idx, weights=np.concatenate(found_bare), minlength=uniq.size).astype(np.int64)
        lat, lng = cells_to_latlng(uniq.astype(np.uint64))
        area = _pixel_area(geographic, wkt, transform, lng, lat)
    return pd.DataFrame({"cell": uniq, "observed_px": observed_px, "bare_px": bare_px,
                         "observed_m2": observed_px * area, "bare_m2": bare_px * area,
                         "fraction": bare_px / observed_px})
