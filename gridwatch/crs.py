"""Coordinate reference systems: GCJ-02 conversion, reprojection to WGS84 and geodesy.

Axis order is part of every name here: separate coordinates are the keywords ``lat`` and ``lng`` (always given by
name, and returned in that order), and an array or geometry whose coordinates run longitude first, as in GeoJSON,
shapely and pyproj with ``always_xy``, says so (``geoms_or_lng_lat``, :data:`LngLatFunction`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyproj
import shapely
from numpy.typing import ArrayLike, NDArray

from gridwatch.errors import CRSError

__all__ = [
    "CRSSpec",
    "WGS84",
    "GCJ02",
    "wgs84_to_gcj02",
    "gcj02_to_wgs84",
    "transform_geometries",
    "geometries_gcj02_to_wgs84",
    "geometries_wgs84_to_gcj02",
    "resolve_crs",
    "to_wgs84",
    "check_lnglat_bounds",
    "geodesic_distance_m",
    "geodesic_area_m2",
]

# --------------------------------------------------------------------------
# GCJ-02 ("Mars coordinates")
# --------------------------------------------------------------------------

#: semi-major axis of the Krasovsky 1940 ellipsoid used by GCJ-02, metres
_GCJ_A = 6378245.0
#: first eccentricity squared of the Krasovsky 1940 ellipsoid
_GCJ_EE = 0.00669342162296594323
#: rough bounding box of China used by every published GCJ-02 implementation
_CHINA_LNG = (72.004, 137.8347)
_CHINA_LAT = (0.8293, 55.8271)
#: the inverse stops when the forward transform of its result is this close
_INVERSE_TOLERANCE_DEG = 1e-10
_INVERSE_MAX_ITERATIONS = 10

FloatOrArray = float | NDArray[np.float64]
#: a vectorised ``(lng, lat) -> (lng, lat)`` function, longitude first as shapely and ``always_xy`` pyproj call it
LngLatFunction = Callable[[NDArray[np.float64], NDArray[np.float64]], tuple[ArrayLike, ArrayLike]]


def _as_arrays(lng: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64], bool]:
    """Broadcast ``lng``/``lat`` to float arrays (longitude first); also tell whether both were scalars."""
    lng_a = np.asarray(lng, dtype=np.float64)
    lat_a = np.asarray(lat, dtype=np.float64)
    scalar = lng_a.ndim == 0 and lat_a.ndim == 0
    lng_a, lat_a = np.broadcast_arrays(lng_a, lat_a)
    return lng_a.copy(), lat_a.copy(), scalar


def _result(lng: NDArray[np.float64], lat: NDArray[np.float64], scalar: bool) -> tuple[FloatOrArray, FloatOrArray]:
    """``(lat, lng)``, as floats when the inputs were scalars."""
    if scalar:
        return float(lat), float(lng)
    return lat, lng


def _in_china(lng: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.bool_]:
    """The published rough "inside China" box test (NaN counts as outside)."""
    return (
        (lng >= _CHINA_LNG[0]) & (lng <= _CHINA_LNG[1]) & (lat >= _CHINA_LAT[0]) & (lat <= _CHINA_LAT[1])
    )


def _gcj_offset(lng: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """GCJ-02 minus WGS84, in degrees, at the WGS84 point (lng, lat); no box test."""
    x = lng - 105.0
    y = lat - 35.0
    pi = np.pi
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    d_lat += common
    d_lat += (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    d_lat += (160.0 * np.sin(y / 12.0 * pi) + 320.0 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    d_lng = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    d_lng += common
    d_lng += (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    d_lng += (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0

    rad_lat = lat / 180.0 * pi
    magic = np.sin(rad_lat)
    magic = 1.0 - _GCJ_EE * magic * magic
    sqrt_magic = np.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrt_magic) * pi)
    d_lng = (d_lng * 180.0) / (_GCJ_A / sqrt_magic * np.cos(rad_lat) * pi)
    return d_lng, d_lat


def wgs84_to_gcj02(*, lat: ArrayLike, lng: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    """Shift WGS84 latitude/longitude to GCJ-02 with the published algorithm.

    Points outside the rough box of China (72.004–137.8347 E,
    0.8293–55.8271 N) are returned unchanged, as every GCJ-02 implementation
    does.

    Parameters
    ----------
    lat, lng : float or array_like
        WGS84 latitude and longitude in degrees (keywords only); broadcast against each other.

    Returns
    -------
    lat, lng : float or ndarray
        GCJ-02 latitude and longitude; floats when both inputs are scalars.

    Examples
    --------
    >>> lat, lng = wgs84_to_gcj02(lat=34.4, lng=112.4)
    >>> round(lat - 34.4, 5), round(lng - 112.4, 5)
    (-0.00112, 0.0063)
    >>> wgs84_to_gcj02(lat=48.85, lng=2.35)  # Paris: outside China, unchanged
    (48.85, 2.35)
    """
    lng_a, lat_a, scalar = _as_arrays(lng, lat)
    inside = _in_china(lng_a, lat_a)
    if inside.any():
        d_lng, d_lat = _gcj_offset(lng_a[inside], lat_a[inside])
        lng_a[inside] += d_lng
        lat_a[inside] += d_lat
    return _result(lng_a, lat_a, scalar)


def gcj02_to_wgs84(*, lat: ArrayLike, lng: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    """Shift GCJ-02 latitude/longitude back to WGS84, accurately.

    Starts from the usual one-step inverse (subtract the offset computed at
    the GCJ-02 point) and refines it by fixed-point iteration until the
    forward transform of the result is within 1e-10° of the input everywhere,
    or 10 iterations have run. The result is within 1e-9° of the exact
    inverse (the one-step inverse alone is off by up to ~6e-5°, several metres).
    Points outside the rough box of China are returned unchanged.

    Parameters
    ----------
    lat, lng : float or array_like
        GCJ-02 latitude and longitude in degrees (keywords only); broadcast against each other.

    Returns
    -------
    lat, lng : float or ndarray
        WGS84 latitude and longitude; floats when both inputs are scalars.

    Examples
    --------
    >>> g_lat, g_lng = wgs84_to_gcj02(lat=34.4, lng=112.4)
    >>> lat, lng = gcj02_to_wgs84(lat=g_lat, lng=g_lng)
    >>> abs(lat - 34.4) < 1e-9 and abs(lng - 112.4) < 1e-9
    True
    >>> gcj02_to_wgs84(lat=[48.85, 34.4], lng=[2.35, 112.4])[1][0]  # outside China: unchanged
    np.float64(2.35)
    """
    lng_a, lat_a, scalar = _as_arrays(lng, lat)
    inside = _in_china(lng_a, lat_a)
    if inside.any():
        g_lng = lng_a[inside]
        g_lat = lat_a[inside]
        d_lng, d_lat = _gcj_offset(g_lng, g_lat)
        w_lng = g_lng - d_lng
        w_lat = g_lat - d_lat
        for _ in range(_INVERSE_MAX_ITERATIONS):
            d_lng, d_lat = _gcj_offset(w_lng, w_lat)
            e_lng = w_lng + d_lng - g_lng
            e_lat = w_lat + d_lat - g_lat
            error = max(np.nanmax(np.abs(e_lng), initial=0.0), np.nanmax(np.abs(e_lat), initial=0.0))
            if error < _INVERSE_TOLERANCE_DEG:
                break
            w_lng = w_lng - e_lng
            w_lat = w_lat - e_lat
        lng_a[inside] = w_lng
        lat_a[inside] = w_lat
    return _result(lng_a, lat_a, scalar)


# --------------------------------------------------------------------------
# Geometries
# --------------------------------------------------------------------------


def transform_geometries(geoms: ArrayLike, fn: LngLatFunction) -> NDArray[np.object_]:
    """Apply a vectorised ``(lng, lat) -> (lng, lat)`` function (longitude first) to every coordinate.

    Parameters
    ----------
    geoms : shapely geometry or array_like of them
        Geometries in any shape; ``None`` entries stay ``None``.
    fn : callable
        Called once with two 1-D float arrays (all longitudes, all latitudes)
        and returning two arrays of the same length. Z values are dropped:
        the results are 2-D.

    Returns
    -------
    ndarray of shapely geometries
        Same shape as ``geoms`` (0-d for a single geometry).

    Examples
    --------
    >>> from shapely import Point
    >>> transform_geometries([Point(1, 2)], lambda lng, lat: (lng + 1, lat * 2))
    array([<POINT (2 4)>], dtype=object)
    """

    def apply(lng: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        out_lng, out_lat = fn(lng, lat)
        return (
            np.asarray(out_lng, dtype=np.float64).reshape(lng.shape),
            np.asarray(out_lat, dtype=np.float64).reshape(lat.shape),
        )

    return np.asarray(shapely.transform(np.asarray(geoms, dtype=object), apply, include_z=False, interleaved=False))


def geometries_gcj02_to_wgs84(geoms: ArrayLike) -> NDArray[np.object_]:
    """Convert geometries from GCJ-02 to WGS84 with :func:`gcj02_to_wgs84`.

    Examples
    --------
    >>> from shapely import Point
    >>> p = geometries_gcj02_to_wgs84([Point(112.4063, 34.39888)])[0]
    >>> round(p.x, 4), round(p.y, 4)
    (112.4, 34.4)
    """
    return transform_geometries(geoms, lambda lng, lat: gcj02_to_wgs84(lat=lat, lng=lng)[::-1])


def geometries_wgs84_to_gcj02(geoms: ArrayLike) -> NDArray[np.object_]:
    """Convert geometries from WGS84 to GCJ-02 with :func:`wgs84_to_gcj02` (e.g. for AMap tiles)."""
    return transform_geometries(geoms, lambda lng, lat: wgs84_to_gcj02(lat=lat, lng=lng)[::-1])


# --------------------------------------------------------------------------
# CRS resolution and reprojection
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CRSSpec:
    """A coordinate reference system as gridwatch understands it.

    Attributes
    ----------
    name : str
        Display name: ``EPSG:nnnn`` when the CRS has an authority code,
        ``GCJ-02``, or the CRS's own name.
    pyproj_crs : pyproj.CRS or None
        The CRS; ``None`` for GCJ-02, which PROJ does not know.
    is_gcj02 : bool
        True for GCJ-02 longitude/latitude.
    """

    name: str
    pyproj_crs: pyproj.CRS | None
    is_gcj02: bool = False

    def __str__(self) -> str:
        return self.name


WGS84 = CRSSpec("EPSG:4326", pyproj.CRS.from_epsg(4326), False)
GCJ02 = CRSSpec("GCJ-02", None, True)

_GCJ02_NAMES = frozenset({"gcj02", "gcj-02", "gcj_02"})
_ACCEPTED_FORMS = "an EPSG code (4326, 'EPSG:4490', 'EPSG:4546'), 'GCJ-02' (or 'gcj02'), a WKT or PROJ string"


def _unknown_crs(value: object) -> CRSError:
    return CRSError(
        "Unknown coordinate reference system {value!r}. Accepted forms: {accepted}.",
        value=value,
        accepted=_ACCEPTED_FORMS,
    )


def _spec_from_pyproj(crs: pyproj.CRS, value: object) -> CRSSpec:
    if not (crs.is_geographic or crs.is_projected):
        raise CRSError(
            "Coordinate reference system {value!r} ({name}) is neither geographic nor projected; "
            "give a longitude/latitude or a projected CRS.",
            value=value,
            name=crs.name,
        )
    authority = crs.to_authority()
    name = f"{authority[0]}:{authority[1]}" if authority else crs.name
    return CRSSpec(name, crs, False)


def resolve_crs(value: str | int | pyproj.CRS | None) -> CRSSpec:
    """Turn what a user or a file says about a CRS into a :class:`CRSSpec`.

    Parameters
    ----------
    value : str, int, pyproj.CRS or None
        ``None`` (the default: EPSG:4326, WGS84 longitude/latitude), an EPSG
        code as an int or a string (``4490``, ``"4546"``, ``"EPSG:4326"``),
        ``"GCJ-02"`` / ``"gcj02"`` / ``"gcj-02"`` (any case), a WKT or PROJ
        string, or a :class:`pyproj.CRS`.

    Returns
    -------
    CRSSpec

    Raises
    ------
    CRSError
        For anything else, with a message naming ``value`` and the accepted forms.

    Examples
    --------
    >>> resolve_crs("gcj-02")
    CRSSpec(name='GCJ-02', pyproj_crs=None, is_gcj02=True)
    >>> resolve_crs(4490).name, resolve_crs("epsg:4546").name
    ('EPSG:4490', 'EPSG:4546')
    >>> resolve_crs("mars")
    Traceback (most recent call last):
    ...
    gridwatch.errors.CRSError: Unknown coordinate reference system 'mars'. Accepted forms: ...
    """
    if value is None:
        return WGS84
    if isinstance(value, CRSSpec):
        return value
    if isinstance(value, pyproj.CRS):
        return _spec_from_pyproj(value, value.name)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _unknown_crs(value)
    if isinstance(value, int):
        if value <= 0:
            raise _unknown_crs(value)
        try:
            return _spec_from_pyproj(pyproj.CRS.from_epsg(value), value)
        except pyproj.exceptions.CRSError as exc:
            raise _unknown_crs(value) from exc
    text = value.strip()
    if text.lower() in _GCJ02_NAMES:
        return GCJ02
    if not text:
        raise _unknown_crs(value)
    try:
        crs = pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError as exc:
        raise _unknown_crs(value) from exc
    return _spec_from_pyproj(crs, value)


@functools.lru_cache(maxsize=32)
def _transformer_to_wgs84(crs: pyproj.CRS) -> pyproj.Transformer:
    """Cached transformer to EPSG:4326 in (lng, lat) order (pyproj makes these thread-safe)."""
    return pyproj.Transformer.from_crs(crs, WGS84.pyproj_crs, always_xy=True)


@functools.lru_cache(maxsize=32)
def _is_wgs84(crs: pyproj.CRS) -> bool:
    return crs.equals(WGS84.pyproj_crs, ignore_axis_order=True)


def to_wgs84(geoms: ArrayLike, crs: CRSSpec, *, source: str) -> NDArray[np.object_]:
    """Reproject shapely geometries from ``crs`` to EPSG:4326 (longitude, latitude).

    GCJ-02 goes through :func:`gcj02_to_wgs84`; every other CRS through a
    pyproj transformer with ``always_xy=True``, so axis order is always
    (x/easting/longitude, y/northing/latitude) on both sides. EPSG:4490
    (CGCS2000) is transformed by pyproj too, which leaves it (almost)
    unchanged. Geographic input is checked with :func:`check_lnglat_bounds`.

    Parameters
    ----------
    geoms : array_like of shapely geometries
        Geometries in ``crs``.
    crs : CRSSpec
        From :func:`resolve_crs`.
    source : str
        File name, used in error messages.

    Returns
    -------
    ndarray of shapely geometries
        In EPSG:4326, 2-D.

    Raises
    ------
    CRSError
        If geographic input is not plausible degrees, or the transformation
        gives non-finite coordinates.

    Examples
    --------
    >>> from shapely import Point
    >>> out = to_wgs84([Point(112.4063, 34.39888)], resolve_crs("gcj02"), source="a.csv")
    >>> round(out[0].x, 4), round(out[0].y, 4)
    (112.4, 34.4)
    """
    geoms_a = np.asarray(geoms, dtype=object)
    if crs.is_gcj02:
        check_lnglat_bounds(geoms_a, source=source)
        return geometries_gcj02_to_wgs84(geoms_a)
    if crs.pyproj_crs is None:  # pragma: no cover - CRSSpec built by hand
        raise _unknown_crs(crs.name)
    if crs.pyproj_crs.is_geographic:
        check_lnglat_bounds(geoms_a, source=source)
    if _is_wgs84(crs.pyproj_crs):
        return np.asarray(shapely.force_2d(geoms_a))
    transformer = _transformer_to_wgs84(crs.pyproj_crs)
    out = transform_geometries(geoms_a, transformer.transform)
    coords = shapely.get_coordinates(out)
    if not np.isfinite(coords).all():
        raise CRSError(
            "Coordinates in {source} could not be transformed from {crs} to WGS84; "
            "check that --crs names the file's coordinate reference system.",
            source=source,
            crs=crs.name,
        )
    return out


def check_lnglat_bounds(geoms_or_lng_lat: ArrayLike, *, source: str) -> None:
    """Raise :class:`CRSError` unless all coordinates are plausible degrees.

    Parameters
    ----------
    geoms_or_lng_lat : array_like
        Shapely geometries, or a numeric array of shape ``(N, 2)`` with
        columns longitude, latitude (in that order). NaN coordinates are ignored.
    source : str
        File name, used in the message.

    Raises
    ------
    CRSError
        When some ``|lng| > 180`` or ``|lat| > 90``. If every value would fit
        with the two axes swapped, the message says so; otherwise it says
        the file is probably in a projected CRS that must be given with
        ``--crs``.

    Examples
    --------
    >>> check_lnglat_bounds([[112.4, 34.4]], source="fires.csv")
    >>> check_lnglat_bounds([[500000.0, 3806000.0]], source="fires.csv")
    Traceback (most recent call last):
    ...
    gridwatch.errors.CRSError: fires.csv has coordinates that are not longitude/latitude degrees (for example 500000.0, 3806000.0); it is probably in a projected CRS, which must be given with --crs.
    """
    arr = np.asarray(geoms_or_lng_lat)
    if arr.dtype == object:
        xy = shapely.get_coordinates(arr)
    else:
        xy = np.asarray(arr, dtype=np.float64).reshape(-1, 2)
    lng = xy[:, 0]
    lat = xy[:, 1]
    bad = (np.abs(lng) > 180.0) | (np.abs(lat) > 90.0)
    if not bad.any():
        return
    first = int(np.flatnonzero(bad)[0])
    example = f"{float(lng[first])!r}, {float(lat[first])!r}"
    # NaN compares False on both sides, so only finite values decide.
    swapped_fits = not ((np.abs(lat) > 180.0) | (np.abs(lng) > 90.0)).any()
    if swapped_fits:
        raise CRSError(
            "{source} has latitudes beyond ±90° (for example {example}) but every value would fit "
            "with longitude and latitude swapped; longitude must come first.",
            source=source,
            example=example,
        )
    raise CRSError(
        "{source} has coordinates that are not longitude/latitude degrees (for example {example}); "
        "it is probably in a projected CRS, which must be given with --crs.",
        source=source,
        example=example,
    )


# --------------------------------------------------------------------------
# Geodesy on the WGS84 ellipsoid
# --------------------------------------------------------------------------

_GEOD = pyproj.Geod(ellps="WGS84")


def geodesic_distance_m(*, lat1: ArrayLike, lng1: ArrayLike, lat2: ArrayLike, lng2: ArrayLike) -> NDArray[np.float64]:
    """Geodesic distance in metres between WGS84 points, on the WGS84 ellipsoid.

    Parameters
    ----------
    lat1, lng1, lat2, lng2 : float or array_like
        Degrees (keywords only); broadcast against each other.

    Returns
    -------
    ndarray
        Distances in metres, in the broadcast shape (0-d for scalars).

    Examples
    --------
    >>> round(float(geodesic_distance_m(lat1=34.0, lng1=112.0, lat2=35.0, lng2=112.0)))
    110931
    """
    arrays = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (lng1, lat1, lng2, lat2)))
    shape = arrays[0].shape
    flat = [np.ascontiguousarray(a).ravel().copy() for a in arrays]
    _, _, dist = _GEOD.inv(flat[0], flat[1], flat[2], flat[3])
    return np.asarray(dist, dtype=np.float64).reshape(shape)


def geodesic_area_m2(geoms: ArrayLike) -> NDArray[np.float64]:
    """Geodesic area in square metres of WGS84 geometries, on the WGS84 ellipsoid.

    Rings are oriented first (exteriors counter-clockwise, holes clockwise)
    so holes are subtracted whatever the input orientation.

    Parameters
    ----------
    geoms : shapely geometry or array_like of them
        Longitude/latitude geometries; non-polygonal ones have area 0,
        ``None`` gives NaN.

    Returns
    -------
    ndarray
        Areas in square metres, same shape as ``geoms``.

    Examples
    --------
    >>> from shapely import box
    >>> round(float(geodesic_area_m2(box(112.0, 34.0, 112.01, 34.01))[()]))
    1024695
    """
    arr = np.asarray(geoms, dtype=object)
    oriented = np.asarray(shapely.orient_polygons(arr, exterior_cw=False), dtype=object)
    out = np.full(arr.shape, np.nan, dtype=np.float64)
    for index, geom in np.ndenumerate(oriented):
        if geom is None:
            continue
        out[index] = _polygonal_area_m2(geom)
    return out


def _polygonal_area_m2(geom: shapely.Geometry) -> float:
    """Area of the polygonal parts of ``geom`` (pyproj would give lines an area too)."""
    if geom.is_empty:
        return 0.0
    kind = geom.geom_type
    if kind in ("Polygon", "MultiPolygon"):
        area, _ = _GEOD.geometry_area_perimeter(geom)
        return abs(area)
    if kind == "GeometryCollection":
        return float(sum(_polygonal_area_m2(part) for part in geom.geoms))
    return 0.0
