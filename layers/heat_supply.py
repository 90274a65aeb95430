"""Heat-supply radii: power plants, the boiler inventory, and the exact inside-radius test.

Henan's plans close coal boilers (and small coal CHP units) inside the heat-supply
radius of large combined heat and power plants: plants of at least 300 MW that
supply heat get a 30 km radius, measured along the WGS84 ellipsoid. This module
reads plants (the WRI Global Power Plant Database rows, whose CHP flag staff set)
and boiler inventories (CSV with coordinate columns, or any frame another reader
made), and decides for any number of points whether they lie inside a radius,
which qualifying plant is nearest, and how far it is, exactly on the ellipsoid.

The inside test (:class:`RadiusIndex`) is exact and fast:

1. A lookup table of small lng/lat squares (0.0025°) says for each square
   "inside some radius", "outside every radius" or "near an edge". A square is
   decided only when its centre's distance to a plant, widened by the square's
   half-diagonal and the error bound of the distance formula, keeps the whole
   square on one side (the geodesic distance is a metric, so the triangle
   inequality holds). Points in decided squares need one table look-up.
2. Points in edge squares get the local ellipsoidal distance formula (meridian
   and prime-vertical radii of curvature at the mid-latitude), whose error is
   below 5 cm at 36 km in Henan's latitudes; only pairs within
   :func:`formula_margin_m` of the radius go to :meth:`pyproj.Geod.inv`.

Examples
--------
>>> index = RadiusIndex([112.50113], [34.414573], 30_000.0)
>>> index.inside([112.50113, 112.9], [34.6, 34.414573]).tolist()
[True, False]
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyproj
import shapely

from gridwatch.crs import WGS84, check_lnglat_bounds, resolve_crs, to_wgs84
from gridwatch.errors import ValidationError
from layers.base import LayerRead, N_, empty_rejected, rejected_frame

__all__ = [
    "RadiusIndex",
    "formula_margin_m",
    "local_distance_m",
    "geodesic_circle",
    "read_plants",
    "plants_from_frame",
    "read_boilers",
    "boilers_from_frame",
    "BOILER_STATUSES",
    "is_coal",
]

_GEOD = pyproj.Geod(ellps="WGS84")
_A = 6378137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)
#: the largest radius of curvature anywhere on the ellipsoid (meridian radius at the poles), metres
_R_MAX = _A / math.sqrt(1 - _E2)
#: the smallest meridian radius (at the equator), metres
_M_MIN = _A * (1 - _E2)
#: size of the lookup squares, degrees
_TABLE_DEG = 0.0025
#: radii beyond this are refused (the local formula's error bound is checked up to here)
MAX_RADIUS_M = 200_000.0
#: boiler statuses as stored; "overdue" is derived (still to close after the deadline)
BOILER_STATUSES = ("to_close", "closed", "integrated", "exempt")


def formula_margin_m(radius_m: float) -> float:
    """Error bound (metres) of :func:`local_distance_m` for distances up to ``radius_m``.

    The formula's error grows with the cube of the distance; measured on 2 M
    random pairs in 31–37° N it stays below 0.05 m at 36 km. The bound used,
    ``1 m + 1e-13 · r³`` (3.7 m at 30 km, 101 m at 100 km), is that times
    at least 75.

    Examples
    --------
    >>> round(formula_margin_m(30_000.0), 2)
    3.7
    """
    return 1.0 + 1e-13 * float(radius_m) ** 3


def local_distance_m(lng1: Any, lat1: Any, lng2: Any, lat2: Any) -> np.ndarray:
    """Distance on the WGS84 ellipsoid by the local (mid-latitude) formula, vectorised.

    ``sqrt((M·Δφ)² + (N·cos φm·Δλ)²)`` with the meridian radius ``M`` and the
    prime-vertical radius ``N`` at the mid-latitude ``φm``. Within
    :func:`formula_margin_m` of the geodesic distance for the short distances
    the radius test needs; not for long lines.

    Examples
    --------
    >>> round(float(local_distance_m(112.0, 34.0, 112.0, 34.1)), 1)
    11092.3
    """
    lng1, lat1, lng2, lat2 = (np.asarray(v, dtype=np.float64) for v in (lng1, lat1, lng2, lat2))
    phim = np.radians((lat1 + lat2) * 0.5)
    s = np.sin(phim)
    w2 = 1.0 - _E2 * s * s
    w = np.sqrt(w2)
    n = _A / w
    m = n * (1.0 - _E2) / w2
    dn = m * np.radians(lat2 - lat1)
    de = n * np.cos(phim) * np.radians(lng2 - lng1)
    return np.hypot(dn, de)


def geodesic_circle(lng: float, lat: float, radius_m: float, *, vertices: int = 128) -> shapely.Polygon:
    """The geodesic circle of ``radius_m`` around a point, as a lng/lat polygon (for maps).

    Vertices are the points at ``radius_m`` along geodesics in ``vertices``
    evenly spaced azimuths (:meth:`pyproj.Geod.fwd`).

    Examples
    --------
    >>> ring = geodesic_circle(112.5, 34.4, 30_000.0, vertices=8)
    >>> len(ring.exterior.coords)
    9
    """
    az = np.linspace(0.0, 360.0, vertices, endpoint=False)
    x, y, _ = _GEOD.fwd(np.full(vertices, float(lng)), np.full(vertices, float(lat)), az,
                         np.full(vertices, float(radius_m)))
    return shapely.Polygon(np.column_stack([x, y])[::-1])


class RadiusIndex:
    """Exact "inside any radius" tests and nearest-centre distances for many points.

    Parameters
    ----------
    lng, lat : array_like
        Centres (the qualifying plants), WGS84 degrees.
    radius_m : float
        Radius, metres, on the WGS84 ellipsoid; a point at exactly the radius is inside.

    Examples
    --------
    >>> idx = RadiusIndex([112.0, 113.0], [34.0, 34.0], 30_000.0)
    >>> inside, nearest, dist = idx.classify([112.1, 112.9, 112.5], [34.0, 34.0, 34.0])
    >>> inside.tolist(), nearest.tolist(), np.round(dist).tolist()
    ([True, True, False], [0, 1, -1], [9238.0, 9238.0, nan])
    """

    def __init__(self, lng: Any, lat: Any, radius_m: float) -> None:
        self.lng = np.asarray(lng, dtype=np.float64).ravel()
        self.lat = np.asarray(lat, dtype=np.float64).ravel()
        if self.lng.shape != self.lat.shape:
            raise ValidationError("Centres need as many longitudes as latitudes ({lng} and {lat}).",
                                  lng=self.lng.size, lat=self.lat.size)
        radius_m = float(radius_m)
        if not 0 < radius_m <= MAX_RADIUS_M:
            raise ValidationError("A heat-supply radius must be more than 0 and at most {max} m (got {value}).",
                                  max=MAX_RADIUS_M, value=radius_m)
        if self.lng.size:
            check_lnglat_bounds(np.column_stack([self.lng, self.lat]), source="plants")
            if np.abs(self.lat).max() > 80:
                raise ValidationError("Heat-supply radii are supported between 80° S and 80° N.")
        self.radius_m = radius_m
        self.margin_m = formula_margin_m(radius_m)
        self._build_table()

    # -- the lookup table ------------------------------------------------------------------------

    def _build_table(self) -> None:
        c = _TABLE_DEG
        # geodesic half-diagonal of any table square is below this (largest radii of curvature)
        self._half_diag = 0.5 * math.radians(c) * _R_MAX * math.sqrt(2.0)
        reach = self.radius_m + 2 * self._half_diag + self.margin_m
        dlat = math.degrees(reach / _M_MIN)
        if not self.lng.size:
            self._x0, self._y0, self._nx, self._ny = 0.0, 0.0, 1, 1
            self._table = np.zeros(1, dtype=np.uint8)
            return
        cos_far = np.cos(np.radians(np.minimum(np.abs(self.lat) + dlat, 89.0)))
        dlng = np.degrees(reach / (_A * cos_far))
        x0 = float(np.min(self.lng - dlng)) - 2 * c
        y0 = float(np.min(self.lat - dlat)) - 2 * c
        nx = int(math.ceil((float(np.max(self.lng + dlng)) + 2 * c - x0) / c)) + 1
        ny = int(math.ceil((float(np.max(self.lat + dlat)) + 2 * c - y0) / c)) + 1
        inside = np.zeros((ny, nx), dtype=bool)
        edge = np.zeros((ny, nx), dtype=bool)
        r_in = self.radius_m - self._half_diag - self.margin_m
        r_out = self.radius_m + self._half_diag + self.margin_m
        for plng, plat, pdlng in zip(self.lng, self.lat, dlng):
            j0 = max(int((plng - pdlng - x0) / c), 1)
            j1 = min(int((plng + pdlng - x0) / c) + 2, nx - 1)
            i0 = max(int((plat - dlat - y0) / c), 1)
            i1 = min(int((plat + dlat - y0) / c) + 2, ny - 1)
            # local_distance_m, separated: the radii of curvature depend on the row only
            cx = x0 + (np.arange(j0, j1) + 0.5) * c
            cy = y0 + (np.arange(i0, i1) + 0.5) * c
            phim = np.radians((cy + plat) * 0.5)
            w2 = 1.0 - _E2 * np.sin(phim) ** 2
            n = _A / np.sqrt(w2)
            dn2 = (n * (1.0 - _E2) / w2 * np.radians(cy - plat)) ** 2
            east = n * np.cos(phim)
            de = np.radians(cx - plng)
            d2 = np.square(east[:, None] * de[None, :])
            d2 += dn2[:, None]
            inside[i0:i1, j0:j1] |= d2 <= r_in * r_in
            edge[i0:i1, j0:j1] |= d2 <= r_out * r_out
        # 0 outside every radius, 1 inside one, 2 near an edge; the outer two rings stay 0
        table = np.where(inside, 1, np.where(edge, 2, 0)).astype(np.uint8)
        self._x0, self._y0, self._nx, self._ny = x0, y0, nx, ny
        self._table = table.ravel()

    def _states(self, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
        inv = 1.0 / _TABLE_DEG
        with np.errstate(invalid="ignore"):  # NaN or far-off coordinates land on the outer (outside) ring
            ix = ((lng - self._x0) * inv).astype(np.int32)
            iy = ((lat - self._y0) * inv).astype(np.int32)
        np.clip(ix, 0, self._nx - 1, out=ix)
        np.clip(iy, 0, self._ny - 1, out=iy)
        iy *= self._nx
        iy += ix
        return self._table.take(iy)

    # -- queries --------------------------------------------------------------------------------

    def inside(self, lng: Any, lat: Any) -> np.ndarray:
        """Whether each point lies within the radius of some centre (geodesic distance ≤ radius).

        Parameters
        ----------
        lng, lat : array_like
            WGS84 degrees; NaN counts as outside.

        Returns
        -------
        ndarray of bool
        """
        lng = np.ascontiguousarray(lng, dtype=np.float64).ravel()
        lat = np.ascontiguousarray(lat, dtype=np.float64).ravel()
        if not self.lng.size:
            return np.zeros(lng.shape, dtype=bool)
        state = self._states(lng, lat)
        out = state == 1
        edge = np.flatnonzero(state == 2)
        if edge.size:
            out[edge] = self._inside_exact(lng[edge], lat[edge])
        return out

    def _inside_exact(self, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
        out = np.zeros(lng.shape, dtype=bool)
        step = max(1, 2_000_000 // max(self.lng.size, 1))
        for start in range(0, lng.size, step):
            sl = slice(start, start + step)
            d = local_distance_m(self.lng[None, :], self.lat[None, :], lng[sl, None], lat[sl, None])
            sure = (d <= self.radius_m - self.margin_m).any(axis=1)
            band = np.abs(d - self.radius_m) <= self.margin_m
            band &= ~sure[:, None]
            rows, plants = np.nonzero(band)
            part = sure
            if rows.size:
                _, _, exact = _GEOD.inv(self.lng[plants], self.lat[plants], lng[sl][rows], lat[sl][rows])
                hit = rows[np.asarray(exact) <= self.radius_m]
                part[hit] = True
            out[sl] = part
        return out

    def nearest(self, lng: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        """The nearest centre of each point and its geodesic distance (exact, :meth:`pyproj.Geod.inv`).

        Candidates within 0.1 % (plus the formula margin) of the shortest local
        distance are measured with the geodesic, so the choice is exact too;
        ties go to the lower index.

        Returns
        -------
        index : ndarray of int64
            Position of the nearest centre (-1 when there are no centres or the point is NaN).
        distance_m : ndarray of float64
            Geodesic distance to it, metres (NaN where index is -1).
        """
        lng = np.ascontiguousarray(lng, dtype=np.float64).ravel()
        lat = np.ascontiguousarray(lat, dtype=np.float64).ravel()
        index = np.full(lng.shape, -1, dtype=np.int64)
        dist = np.full(lng.shape, np.nan)
        if not self.lng.size or not lng.size:
            return index, dist
        step = max(1, 2_000_000 // self.lng.size)
        for start in range(0, lng.size, step):
            sl = slice(start, start + step)
            plng, plat = lng[sl], lat[sl]
            d = local_distance_m(self.lng[None, :], self.lat[None, :], plng[:, None], plat[:, None])
            best = np.min(np.where(np.isnan(d), np.inf, d), axis=1)
            ok = np.isfinite(best)
            tol = best * 1e-3 + 2 * formula_margin_m(min(float(np.max(best[ok], initial=0.0)), MAX_RADIUS_M))
            rows, plants = np.nonzero(d <= (best + tol)[:, None])
            if not rows.size:
                continue
            _, _, exact = _GEOD.inv(self.lng[plants], self.lat[plants], plng[rows], plat[rows])
            exact = np.asarray(exact, dtype=np.float64)
            order = np.lexsort((plants, exact, rows))
            rows, plants, exact = rows[order], plants[order], exact[order]
            first = np.ones(rows.size, dtype=bool)
            first[1:] = rows[1:] != rows[:-1]
            index[sl][rows[first]] = plants[first]
            dist[sl][rows[first]] = exact[first]
        return index, dist

    def classify(self, lng: Any, lat: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Inside flag, nearest centre and geodesic distance; the last two only for points inside.

        Returns
        -------
        inside : ndarray of bool
        nearest : ndarray of int64
            -1 for points outside every radius.
        distance_m : ndarray of float64
            NaN for points outside every radius.
        """
        lng = np.ascontiguousarray(lng, dtype=np.float64).ravel()
        lat = np.ascontiguousarray(lat, dtype=np.float64).ravel()
        inside = self.inside(lng, lat)
        nearest = np.full(lng.shape, -1, dtype=np.int64)
        dist = np.full(lng.shape, np.nan)
        idx = np.flatnonzero(inside)
        if idx.size:
            n, d = self.nearest(lng[idx], lat[idx])
            nearest[idx], dist[idx] = n, d
        return inside, nearest, dist


# --------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------

_PLANT_COLUMNS = {
    "plant_id": ("plant_id", "wri_power_plant_id", "gppd_idnr", "power plant id", "id", "电厂编号"),
    "name": ("name", "plant_name", "名称", "电厂名称"),
    "fuel": ("primary_fuel", "fuel", "燃料"),
    "capacity_mw": ("capacity_mw", "capacity (mw)", "capacity", "装机容量", "装机容量mw"),
    "latitude": ("latitude", "lat", "纬度", "y"),
    "longitude": ("longitude", "lng", "lon", "long", "经度", "x"),
    "chp": ("chp", "is_chp", "cogeneration", "热电联产"),
    "status": ("operational_status", "status", "运行状态"),
    "commissioning_year": ("commissioning_year", "commissioning date", "投产年份"),
}

_BOILER_COLUMNS = {
    "boiler_id": ("boiler_id", "id", "编号", "锅炉编号"),
    "name": ("name", "boiler_name", "enterprise", "名称", "企业名称"),
    "fuel": ("fuel", "燃料", "燃料类型"),
    "capacity_tph": ("capacity_tph", "capacity_t_h", "capacity (t/h)", "capacity", "蒸吨", "容量", "蒸吨/小时"),
    "unit_type": ("unit_type", "type", "类型"),
    "status": ("status", "状态"),
    "latitude": ("latitude", "lat", "纬度", "y"),
    "longitude": ("longitude", "lng", "lon", "long", "经度", "x"),
}

#: status words staff write, mapped to the stored statuses
_STATUS_WORDS = {
    "": "to_close", "to_close": "to_close", "to close": "to_close", "待关停": "to_close", "待淘汰": "to_close",
    "closed": "closed", "已关停": "closed", "已淘汰": "closed", "integrated": "integrated", "已并网": "integrated",
    "已整合": "integrated", "exempt": "exempt", "豁免": "exempt", "无替代热源": "exempt",
}

_TRUE_WORDS = {"1", "true", "yes", "y", "t", "是", "chp"}
_COAL = re.compile(r"coal|煤", re.IGNORECASE)


def is_coal(fuel: Any) -> np.ndarray:
    """Whether each fuel names coal (``Coal``, ``coal_chp``, ``燃煤``; not coal-mine methane).

    Examples
    --------
    >>> is_coal(["Coal", "Coal Mine Methane", "燃煤", "Gas"]).tolist()
    [True, False, True, False]
    """
    s = pd.Series(np.asarray(fuel, dtype=object)).fillna("").astype(str)
    return (s.str.contains(_COAL) & ~s.str.contains("methane", case=False)).to_numpy(dtype=bool)


def _pick(frame: pd.DataFrame, wanted: dict[str, tuple[str, ...]]) -> dict[str, str]:
    lower = {str(c).strip().lower(): c for c in frame.columns}
    found = {}
    for key, aliases in wanted.items():
        for alias in aliases:
            if alias in lower:
                found[key] = lower[alias]
                break
    return found


def _coordinate_fields(frame: pd.DataFrame, cols: dict[str, str], x_field: str | None, y_field: str | None,
                       source: str) -> None:
    """Use the coordinate columns the user named (``--x-field`` / ``--y-field``) instead of recognised names."""
    for key, wanted in (("longitude", x_field), ("latitude", y_field)):
        if wanted is None:
            continue
        if wanted not in frame.columns:
            raise ValidationError("{source} has no column {column}; its columns are {columns}.", source=source,
                                  column=wanted, columns=", ".join(map(str, frame.columns)))
        cols[key] = wanted


def _read_csv(source: Path | bytes) -> pd.DataFrame:
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any bytes
        raise ValidationError("Cannot decode the file as UTF-8 or GBK.")
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=True)


def _numbers(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values.astype(str).str.strip().replace("", np.nan), errors="coerce").to_numpy(
        np.float64, copy=True)


def _points(frame: pd.DataFrame, cols: dict[str, str], crs: Any, source: str
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Longitudes, latitudes (WGS84) and a validity mask from coordinate or geometry columns."""
    if "geometry" in frame.columns and ("longitude" not in cols or "latitude" not in cols):
        geoms = np.asarray(frame["geometry"].to_numpy(), dtype=object)
        good = shapely.get_type_id(geoms) == 0  # points (None gives -1)
        good &= ~shapely.is_empty(geoms)
        x = np.full(len(geoms), np.nan)
        y = np.full(len(geoms), np.nan)
        if good.any():
            xy = shapely.get_coordinates(geoms[good])
            x[good], y[good] = xy[:, 0], xy[:, 1]
        return x, y, good & np.isfinite(x) & np.isfinite(y)
    if "longitude" not in cols or "latitude" not in cols:
        raise ValidationError("{source} has no coordinate columns; name them longitude and latitude "
                              "(or lng/lat, 经度/纬度).", source=source)
    x = _numbers(frame[cols["longitude"]])
    y = _numbers(frame[cols["latitude"]])
    good = np.isfinite(x) & np.isfinite(y)
    spec = resolve_crs(crs)
    if good.any() and spec != WGS84:
        pts = to_wgs84(shapely.points(x[good], y[good]), spec, source=source)
        xy = shapely.get_coordinates(pts)
        x[good], y[good] = xy[:, 0], xy[:, 1]
    elif good.any():
        check_lnglat_bounds(np.column_stack([x[good], y[good]]), source=source)
    return x, y, good


def _raw_lines(frame: pd.DataFrame) -> list[str]:
    return [",".join(str(v) for v in row if not isinstance(v, shapely.Geometry))
            for row in frame.itertuples(index=False)]


def _split(frame: pd.DataFrame, bad: dict[str, tuple[np.ndarray, str]], source: str, lines: np.ndarray,
           out: pd.DataFrame, warnings: list[str]) -> LayerRead:
    rejected = np.zeros(len(frame), dtype=bool)
    parts = []
    for reason, (mask, message) in bad.items():
        mask = mask & ~rejected
        rejected |= mask
        if mask.any():
            raw = np.asarray(_raw_lines(frame[mask]), dtype=object)
            parts.append(rejected_frame(lines[mask], [reason] * int(mask.sum()), [message] * int(mask.sum()), raw))
    rej = pd.concat(parts, ignore_index=True).sort_values("line", ignore_index=True) if parts else empty_rejected()
    return LayerRead(source=source, frame=out[~rejected].reset_index(drop=True), rejected=rej, read=len(frame),
                     warnings=warnings)


def plants_from_frame(frame: pd.DataFrame, *, source: str = "plants", crs: Any = None,
                      chp: Iterable[str] = (), lines: np.ndarray | None = None, x_field: str | None = None,
                      y_field: str | None = None) -> LayerRead:
    """Power plants from a frame of attribute columns (and coordinates or a ``geometry`` column).

    Parameters
    ----------
    frame : DataFrame
        Columns named as in the WRI Global Power Plant Database (``name``,
        ``capacity_mw``, ``latitude``, ``longitude``, ``primary_fuel`` or ``fuel``,
        ``commissioning_year``, an id such as ``wri_power_plant_id`` or
        ``gppd_idnr``) or their Chinese names; an optional ``chp`` column
        (yes/true/1/是).
    source : str
        Name used in messages.
    crs : optional
        CRS of coordinate columns (default WGS84).
    chp : iterable of str
        Plant ids or exact names to mark as CHP (the source has no CHP flag).
    lines : ndarray, optional
        Line numbers of the rows in the file (default: row + 2, after a header).
    x_field, y_field : str, optional
        Coordinate columns, when not named longitude/latitude (lng/lat, x/y, 经度/纬度).

    Returns
    -------
    LayerRead
        Frame columns ``plant_id, name, fuel, capacity_mw, chp, status,
        commissioning_year, geometry`` (shapely points, WGS84).
    """
    cols = _pick(frame, _PLANT_COLUMNS)
    _coordinate_fields(frame, cols, x_field, y_field, source)
    for need in ("name", "capacity_mw"):
        if need not in cols:
            raise ValidationError("{source} has no {column} column; a plant layer needs name, capacity_mw and "
                                  "coordinates.", source=source, column=need)
    lines = np.arange(len(frame)) + 2 if lines is None else np.asarray(lines)
    x, y, good_xy = _points(frame, cols, crs, source)

    def text(key: str) -> np.ndarray:
        if key not in cols:
            return np.full(len(frame), "", dtype=object)
        return frame[cols[key]].fillna("").astype(str).str.strip().to_numpy(dtype=object)

    name = text("name")
    ids = text("plant_id")
    ids = np.where(ids == "", name, ids)
    capacity = _numbers(frame[cols["capacity_mw"]])
    flag = pd.Series(text("chp")).str.lower().isin(_TRUE_WORDS).to_numpy(copy=True)
    marked = {str(v).strip() for v in chp}
    flag |= np.isin(ids, list(marked)) | np.isin(name, list(marked))
    year = pd.Series(text("commissioning_year")).str.extract(r"(\d{4})")[0]
    out = pd.DataFrame({
        "plant_id": ids, "name": name, "fuel": text("fuel"), "capacity_mw": capacity, "chp": flag,
        "status": text("status"), "commissioning_year": pd.to_numeric(year, errors="coerce").astype("Int64"),
        "geometry": np.asarray(shapely.points(np.where(good_xy, x, 0.0), np.where(good_xy, y, 0.0)), dtype=object),
    })
    dup = pd.Series(ids).duplicated().to_numpy()
    bad = {
        "bad_coordinates": (~good_xy, "The plant has no valid longitude/latitude."),
        "bad_capacity": (~(capacity >= 0), "The capacity (MW) is missing or not a non-negative number."),
        "no_name": (name == "", "The plant has no name."),
        "duplicate_id": (dup, "Another row earlier in the file has the same plant id."),
    }
    warnings = [] if "chp" in cols else [N_("The file has no chp column; plants are CHP only where marked by id or "
                                            "name.")]
    unknown = marked - set(ids) - set(name)
    if unknown:
        warnings.append(N_("No plant has the id or name {names}.").format(names=", ".join(sorted(unknown))))
    return _split(frame, bad, source, lines, out, warnings)


def read_plants(source: Path | bytes, *, name: str | None = None, crs: Any = None,
                chp: Iterable[str] = (), x_field: str | None = None, y_field: str | None = None) -> LayerRead:
    """Read a power-plant CSV (WRI Global Power Plant Database columns); see :func:`plants_from_frame`.

    Examples
    --------
    >>> csv = b"name,capacity_mw,latitude,longitude,primary_fuel\\nA,600,34.4,112.5,Coal\\nB,x,34,112,Coal\\n"
    >>> r = read_plants(csv, chp=["A"])
    >>> r.frame[["name", "capacity_mw", "chp"]].values.tolist(), r.rejected.reason.tolist()
    ([['A', 600.0, True]], ['bad_capacity'])
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    return plants_from_frame(_read_csv(source), source=label, crs=crs, chp=chp, x_field=x_field, y_field=y_field)


def boilers_from_frame(frame: pd.DataFrame, *, source: str = "boilers", crs: Any = None,
                       lines: np.ndarray | None = None, x_field: str | None = None,
                       y_field: str | None = None) -> LayerRead:
    """A boiler inventory from a frame: name, fuel, capacity (t/h), location, status.

    Parameters
    ----------
    frame : DataFrame
        Columns ``name``, ``fuel``, ``capacity_tph`` (or ``capacity``, 蒸吨),
        coordinates (``longitude``/``latitude`` or a ``geometry`` column of
        points), and optionally ``boiler_id``, ``unit_type`` (``boiler`` or
        ``chp_unit``) and ``status`` (to_close / closed / integrated / exempt,
        or 待关停 / 已关停 / 已并网 / 豁免; empty = to_close).

    Returns
    -------
    LayerRead
        Frame columns ``boiler_id, name, fuel, capacity_tph, unit_type, status, coal, geometry``.
    """
    cols = _pick(frame, _BOILER_COLUMNS)
    _coordinate_fields(frame, cols, x_field, y_field, source)
    for need in ("name", "fuel", "capacity_tph"):
        if need not in cols:
            raise ValidationError("{source} has no {column} column; a boiler inventory needs name, fuel, "
                                  "capacity_tph and a location.", source=source, column=need)
    lines = np.arange(len(frame)) + 2 if lines is None else np.asarray(lines)
    x, y, good_xy = _points(frame, cols, crs, source)

    def text(key: str, default: str = "") -> np.ndarray:
        if key not in cols:
            return np.full(len(frame), default, dtype=object)
        return frame[cols[key]].fillna("").astype(str).str.strip().to_numpy(dtype=object)

    ids = text("boiler_id")
    ids = np.where(ids == "", np.char.add("line-", lines.astype(str)).astype(object), ids)
    capacity = _numbers(frame[cols["capacity_tph"]])
    status_text = pd.Series(text("status")).str.lower()
    status = status_text.map(_STATUS_WORDS)
    unit_type = pd.Series(text("unit_type", "boiler")).str.lower().replace({"": "boiler", "chp": "chp_unit",
                                                                            "热电机组": "chp_unit", "锅炉": "boiler"})
    fuel = text("fuel")
    out = pd.DataFrame({
        "boiler_id": ids, "name": text("name"), "fuel": fuel, "capacity_tph": capacity,
        "unit_type": unit_type.to_numpy(dtype=object), "status": status.fillna("to_close").to_numpy(dtype=object),
        "coal": is_coal(fuel),
        "geometry": np.asarray(shapely.points(np.where(good_xy, x, 0.0), np.where(good_xy, y, 0.0)), dtype=object),
    })
    bad = {
        "bad_coordinates": (~good_xy, "The boiler has no valid location."),
        "bad_capacity": (~(capacity >= 0), "The capacity (t/h) is missing or not a non-negative number."),
        "bad_status": (status.isna().to_numpy(), "Unknown status; use to_close, closed, integrated or exempt."),
        "bad_unit_type": (~unit_type.isin(["boiler", "chp_unit"]).to_numpy(), "Unknown unit type; use boiler or "
                                                                              "chp_unit."),
        "duplicate_id": (pd.Series(ids).duplicated().to_numpy(), "Another row has the same boiler id."),
    }
    return _split(frame, bad, source, lines, out, [])


def read_boilers(source: Path | bytes, *, name: str | None = None, crs: Any = None, x_field: str | None = None,
                 y_field: str | None = None) -> LayerRead:
    """Read a boiler inventory CSV with coordinate columns; see :func:`boilers_from_frame`.

    Examples
    --------
    >>> csv = "boiler_id,name,fuel,capacity_tph,lng,lat\\nB1,厂A,燃煤,20,112.5,34.5\\n".encode()
    >>> read_boilers(csv).frame[["boiler_id", "coal", "status"]].values.tolist()
    [['B1', True, 'to_close']]
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    return boilers_from_frame(_read_csv(source), source=label, crs=crs, x_field=x_field, y_field=y_field)
