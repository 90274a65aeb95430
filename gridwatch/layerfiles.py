"""Reading any vector layer file GIS staff have into checked WGS84 features.

Formats: GeoJSON, zipped Shapefile (with or without ``.prj``; UTF-8 or GBK attributes), GeoPackage (a layer
picked when several), KML/KMZ (a network link is refused), CSV with coordinate columns. The file's CRS is used;
a file that declares none is never guessed: :class:`gridwatch.errors.CRSError` lists the candidate CRSs that fit its
coordinates, and :func:`crs_candidates` previews each (bounds after reprojection, share of features inside the
region) so a screen can let the user pick. Invalid polygons are repaired and reported, or rejected when the repair
changes their area by more than a threshold; features without a usable geometry are rejected row by row, never the
whole file. Every read is bounded and reaches no network (archives, GDAL's settings and the files that ask for data
elsewhere: see :mod:`gridwatch.ingest`).

Examples
--------
>>> import json, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "p.csv").write_text("name,lng,lat\\na,112.4,34.4\\nb,,34.4\\n", encoding="utf-8")
>>> got = read_layer_file(d / "p.csv", crs="EPSG:4326", geometry="point")
>>> got.crs, len(got.geoms), got.rejected.line.tolist(), got.rejected.reason.tolist()
('EPSG:4326', 1, [3], ['no_geometry'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from gridwatch.crs import CRSSpec, resolve_crs, to_wgs84
from gridwatch.errors import CRSError, GridwatchError, ValidationError
from gridwatch.ingest import RawVector, decide_crs, read_raw
from layers.base import N_, empty_rejected, rejected_frame

__all__ = ["LayerFile", "LAYER_SUFFIXES", "read_layer_file", "crs_candidates", "candidate_crs_codes",
           "repair_geometries", "read_coordinates_csv"]

#: file suffixes :func:`read_layer_file` reads
LAYER_SUFFIXES = (".geojson", ".json", ".zip", ".shp", ".gpkg", ".kml", ".kmz", ".csv", ".txt")

#: names recognised as coordinate columns of a CSV file (compared case-insensitively)
X_NAMES = ("lng", "lon", "long", "longitude", "x", "经度", "东经", "x坐标", "easting")
Y_NAMES = ("lat", "latitude", "y", "纬度", "北纬", "y坐标", "northing")

#: geographic CRSs offered for a file in degrees
GEOGRAPHIC_CANDIDATES = ("EPSG:4326", "EPSG:4490", "gcj02")


@dataclass
class LayerFile:
    """Features read from a layer file, in WGS84.

    Attributes
    ----------
    source : str
        The file name.
    geoms : ndarray of shapely geometries
        Accepted features, WGS84 (longitude, latitude).
    attributes : DataFrame
        Their attributes, same order, index reset.
    crs : str
        The CRS the file was read in (``EPSG:4546``, ``GCJ-02``, ...).
    feature_no : ndarray of int
        1-based feature (or CSV line) number of each accepted feature in the file.
    repaired : list of int
        1-based numbers of the features whose geometry was repaired.
    rejected : DataFrame
        ``line`` (feature number; for CSV the line, header = 1), ``reason``, ``message``, ``raw``.
    read : int
        Features read (accepted + rejected).
    warnings : list of str
        English remarks.
    """

    source: str
    geoms: np.ndarray
    attributes: pd.DataFrame
    crs: str
    feature_no: np.ndarray
    repaired: list[int] = field(default_factory=list)
    rejected: pd.DataFrame = field(default_factory=empty_rejected)
    read: int = 0
    warnings: list[str] = field(default_factory=list)


# -- CSV ---------------------------------------------------------------------------------------------------------

def _pick_column(columns: list[str], wanted: str | None, names: tuple[str, ...], what: str, file: str) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise ValidationError("{file} has no column {column!r}; its columns are {columns}.", file=file,
                                  column=wanted, columns=", ".join(columns))
        return wanted
    lowered = {c.strip().lower(): c for c in columns}
    for n in names:
        if n in lowered:
            return lowered[n]
    raise ValidationError(
        "{file} has no {what} column (looked for {names}); name it with the x/y column options.",
        file=file, what=what, names=", ".join(names))


def _read_text_table(path: Path) -> tuple[pd.DataFrame, str]:
    with path.open("rb") as handle:
        head = handle.read(65536)
    first = head.split(b"\n", 1)[0]
    sep = max((b",", b"\t", b";"), key=first.count).decode()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False, encoding=encoding,
                                sep=sep, engine="c")
            return frame, encoding
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise ValidationError("{file} cannot be read as a table: {reason}", file=path.name,
                                  reason=str(exc)) from exc
    raise ValidationError("{file} is neither UTF-8 nor GBK text.", file=path.name)  # pragma: no cover


def read_coordinates_csv(path: str | Path, *, x_field: str | None = None,
                         y_field: str | None = None) -> tuple[RawVector, np.ndarray]:
    """Read a CSV (or tab-separated) file with coordinate columns into points; returns them with line numbers.

    UTF-8 (with or without BOM) or GBK; blank lines are skipped; a row whose coordinates are missing or not
    numbers gets no geometry (None), so the caller rejects it with its line number.
    """
    path = Path(path)
    frame, _ = _read_text_table(path)
    columns = [str(c) for c in frame.columns]
    x = _pick_column(columns, x_field, X_NAMES, "x / longitude", path.name)
    y = _pick_column(columns, y_field, Y_NAMES, "y / latitude", path.name)
    lines = np.arange(len(frame), dtype=np.int64) + 2
    frame = frame.fillna("")
    blank = (frame == "").all(axis=1).to_numpy()
    frame, lines = frame[~blank].reset_index(drop=True), lines[~blank]
    xs = pd.to_numeric(frame[x].str.strip(), errors="coerce").to_numpy(dtype=float)
    ys = pd.to_numeric(frame[y].str.strip(), errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    geoms = np.full(len(frame), None, dtype=object)
    geoms[ok] = shapely.points(xs[ok], ys[ok])
    attributes = frame.drop(columns=[x, y])
    return RawVector(source=path.name, geoms=geoms, attributes=attributes, file_crs=None), lines


# -- geometry checks ---------------------------------------------------------------------------------------------

def repair_geometries(geoms: np.ndarray, *, max_area_change: float = 0.01
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Repair invalid polygons (vectorised ``make_valid``, keeping polygonal parts).

    Parameters
    ----------
    geoms : ndarray of shapely (Multi)Polygons
    max_area_change : float
        Largest relative change of area a repair may make (the area before is the one the rings enclose as
        drawn; a bow-tie whose lobes cancel has none, so its repair is refused).

    Returns
    -------
    out : ndarray
        The geometries, repaired ones replaced.
    repaired : ndarray of int
        Positions repaired.
    refused : ndarray of int
        Positions whose repair would change the area too much (left as they were).
    reasons : ndarray of str
        GEOS's reason for each refused one.
    """
    geoms = np.asarray(geoms, dtype=object)
    invalid = np.flatnonzero(~shapely.is_valid(geoms))
    out = geoms.copy()
    if not len(invalid):
        empty = np.array([], dtype=np.int64)
        return out, empty, empty, np.array([], dtype=object)
    bad = geoms[invalid]
    fixed = shapely.make_valid(bad)
    parts, owner = shapely.get_parts(fixed, return_index=True)
    polygonal = shapely.get_type_id(parts) == 3
    parts, owner = parts[polygonal], owner[polygonal]
    multi = np.full(len(bad), None, dtype=object)
    if len(parts):
        made = shapely.multipolygons(parts, indices=owner)
        multi[np.unique(owner)] = made
    empty = np.array([g is None for g in multi])
    multi[empty] = shapely.MultiPolygon()
    before = shapely.area(bad)
    after = shapely.area(multi.astype(object))
    change = np.where(before > 0, np.abs(after - before) / np.where(before > 0, before, 1), np.inf)
    refuse = empty | (change > max_area_change)
    out[invalid[~refuse]] = multi[~refuse]
    return (out, invalid[~refuse], invalid[refuse],
            np.asarray(shapely.is_valid_reason(bad[refuse]), dtype=object))


def _raw_text(attributes: pd.DataFrame, positions: np.ndarray) -> list[str]:
    if not len(positions):
        return []
    sub = attributes.iloc[positions]
    if sub.shape[1] == 0:
        return [""] * len(positions)
    return sub.astype(object).where(sub.notna(), "").astype(str).agg(" | ".join, axis=1).tolist()


# -- CRS candidates ----------------------------------------------------------------------------------------------

def candidate_crs_codes(xy: np.ndarray) -> list[str]:
    """CRSs that fit coordinates of shape (N, 2): geographic ones for degrees, CGCS2000 Gauss-Kruger zones for
    metres (the zone read from an 8-digit easting's leading digits; every central meridian for a 6-digit one)."""
    xy = xy[np.isfinite(xy).all(axis=1)]
    if not len(xy):
        return list(GEOGRAPHIC_CANDIDATES)
    x, y = xy[:, 0], xy[:, 1]
    if (np.abs(x) <= 180).all() and (np.abs(y) <= 90).all():
        return list(GEOGRAPHIC_CANDIDATES)
    codes: list[str] = []
    zones = np.unique((x // 1_000_000).astype(np.int64))
    if (x >= 1_000_000).all() and len(zones) <= 2:
        for zone in zones:
            if 25 <= zone <= 45:   # 3-degree zones with the zone number in the easting: EPSG:4513–4533
                codes.append(f"EPSG:{4513 + zone - 25}")
            elif 13 <= zone <= 23:  # 6-degree zones: EPSG:4491–4501
                codes.append(f"EPSG:{4491 + zone - 13}")
    if (x < 1_000_000).all():
        codes += [f"EPSG:{c}" for c in range(4534, 4555)]  # 3-degree, central meridian 75°E … 135°E
        codes += [f"EPSG:{c}" for c in range(4502, 4513)]  # 6-degree, central meridian 75°E … 135°E
    return codes


def _preview(geoms: np.ndarray, code: str, name: str, region: shapely.Geometry | None) -> dict[str, Any]:
    spec = resolve_crs(code)
    item: dict[str, Any] = {"crs": spec.name if not spec.is_gcj02 else "gcj02",
                            "name": spec.pyproj_crs.name if spec.pyproj_crs is not None else "GCJ-02",
                            "bounds": None, "inside": 0.0, "in_region": False}
    try:
        wgs = to_wgs84(geoms, spec, source=name)
    except GridwatchError:
        return item
    item["bounds"] = [round(float(v), 6) for v in shapely.total_bounds(wgs)]
    if region is not None and len(wgs):
        centre = shapely.get_coordinates(shapely.point_on_surface(wgs))
        shapely.prepare(region)
        inside = shapely.contains_xy(region, centre[:, 0], centre[:, 1])
        item["inside"] = round(float(inside.mean()), 4)
        item["in_region"] = bool(item["inside"] >= 0.5)
    return item


def crs_candidates(path: str | Path, *, layer: str | None = None, region: shapely.Geometry | None = None,
                   x_field: str | None = None, y_field: str | None = None, limit: int = 2000
                   ) -> list[dict[str, Any]]:
    """The CRSs a file without one could be in, each with a preview, those putting it in the region first.

    Parameters
    ----------
    path : path
        The file.
    layer : str, optional
        The layer of a multi-layer file.
    region : shapely geometry, optional
        The region (WGS84) the features should fall in.
    x_field, y_field : str, optional
        Coordinate columns of a CSV file.
    limit : int
        Features sampled for the preview.

    Returns
    -------
    list of dict
        ``crs`` (what to pass as ``crs``), ``name``, ``bounds`` (WGS84 after reprojection, or None when the
        coordinates cannot be in that CRS), ``inside`` (share of features whose representative point lies in the
        region) and ``in_region`` (at least half of them).
    """
    path = Path(path)
    raw = _read_any(path, layer=layer, x_field=x_field, y_field=y_field)[0]
    geoms = raw.geoms[[g is not None and not g.is_empty for g in raw.geoms]]
    if len(geoms) > limit:
        geoms = geoms[np.linspace(0, len(geoms) - 1, limit).astype(np.int64)]
    codes = candidate_crs_codes(shapely.get_coordinates(geoms))
    items = [_preview(geoms, code, raw.source, region) for code in codes]
    items = [i for i in items if i["bounds"] is not None] or items
    order = sorted(range(len(items)), key=lambda i: (not items[i]["in_region"], -items[i]["inside"], i))
    return [items[i] for i in order]


def _no_crs(name: str, codes: list[str]) -> CRSError:
    return CRSError(
        "{file} declares no coordinate reference system and gridwatch does not guess one; choose one of "
        "{candidates} (the GIS screen previews each), or give another EPSG code.",
        file=name, candidates=", ".join(codes[:8]) + (" …" if len(codes) > 8 else ""))


# -- reading -----------------------------------------------------------------------------------------------------

def _read_any(path: Path, *, layer: str | None, x_field: str | None, y_field: str | None,
              encoding: str | None = None) -> tuple[RawVector, np.ndarray, bool]:
    """The raw features, their 1-based numbers (lines for CSV), and whether the file really declares its CRS."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ValidationError("File {file} does not exist.", file=str(path))
    if suffix not in LAYER_SUFFIXES:
        raise ValidationError("{file} is not a layer file gridwatch can read ({formats}).", file=path.name,
                              formats=", ".join(LAYER_SUFFIXES))
    if suffix in (".csv", ".txt"):
        raw, lines = read_coordinates_csv(path, x_field=x_field, y_field=y_field)
        return raw, lines, False
    raw = read_raw(path, layer=layer, encoding=encoding)
    numbers = np.arange(1, len(raw.geoms) + 1, dtype=np.int64)
    declared = raw.file_crs is not None
    if declared and suffix in (".geojson", ".json"):
        # GDAL reports EPSG:4326 for every GeoJSON without a "crs" member (RFC 7946); metres there mean the
        # writer left the CRS out, which is no declaration at all.
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        if b'"crs"' not in head:
            xy = shapely.get_coordinates(raw.geoms[[g is not None for g in raw.geoms]])
            if len(xy) and not ((np.abs(xy[:, 0]) <= 180).all() and (np.abs(xy[:, 1]) <= 90).all()):
                declared = False
                raw.file_crs = None
    return raw, numbers, declared


def read_layer_file(path: str | Path, *, crs: str | None = None, layer: str | None = None,
                    geometry: str = "any", x_field: str | None = None, y_field: str | None = None,
                    encoding: str | None = None, max_area_change: float = 0.01,
                    name: str | None = None, region: shapely.Geometry | None = None) -> LayerFile:
    """Read a layer file into WGS84 features, rejecting bad features one by one.

    Parameters
    ----------
    path : path
        GeoJSON, zipped Shapefile, GeoPackage, KML/KMZ or CSV with coordinate columns.
    crs : str, optional
        The CRS the user declares: needed when the file declares none; ``gcj02`` for coordinates taken from a
        consumer map app (over a file's geographic CRS); a CRS contradicting the file's is refused.
    layer : str, optional
        The layer of a multi-layer file.
    geometry : {"any", "polygon", "point"}
        What features must be: others are rejected (``not_polygon`` / ``not_point``).
    x_field, y_field : str, optional
        Coordinate columns of a CSV (default: recognised names such as lng/lat, x/y, 经度/纬度).
    encoding : str, optional
        Attribute encoding of a Shapefile without ``.cpg`` (default: detected, UTF-8 or GBK).
    max_area_change : float
        Largest relative area change a polygon repair may make.
    name : str, optional
        The name to report the file under.
    region : shapely geometry, optional
        The region (WGS84): when the file declares no CRS, the error lists first the candidates placing it there.

    Raises
    ------
    CRSError
        The file declares no CRS and none was given (the message lists candidates), or the given one
        contradicts the file's, or the coordinates cannot be in the CRS.
    ValidationError
        Unreadable file, layer not chosen, no features at all.
    """
    path = Path(path)
    raw, numbers, _ = _read_any(path, layer=layer, x_field=x_field, y_field=y_field, encoding=encoding)
    source = name or raw.source
    n = len(raw.geoms)
    geoms = raw.geoms
    missing = np.array([g is None for g in geoms], dtype=bool)
    if n:
        missing |= shapely.is_empty(np.where(missing, shapely.Point(), geoms).astype(object))
    if not raw.file_crs and not crs:
        codes = candidate_crs_codes(shapely.get_coordinates(geoms[~missing]))
        if region is not None and len(codes) > 1:
            sample = geoms[~missing][:2000].astype(object)
            previews = [_preview(sample, code, source, region) for code in codes]
            fitting = [code for code, p in zip(codes, previews) if p["in_region"]]
            codes = fitting or codes
        raise _no_crs(source, codes)
    spec: CRSSpec = decide_crs(raw.file_crs, crs, source)
    reasons = np.full(n, "", dtype=object)
    messages = np.full(n, "", dtype=object)
    reasons[missing] = "no_geometry"
    messages[missing] = "The feature has no geometry (or its coordinates are missing)."
    ok = ~missing
    types = np.full(n, -1)
    types[ok] = shapely.get_type_id(geoms[ok].astype(object))
    if geometry == "polygon":
        wrong = ok & ~np.isin(types, (3, 6))
        reasons[wrong], messages[wrong] = "not_polygon", "The feature is not a polygon."
    elif geometry == "point":
        single = ok & (types == 4) & (shapely.get_num_geometries(np.where(ok, geoms, shapely.Point()).astype(object))
                                      == 1)
        if single.any():
            geoms = geoms.copy()
            geoms[single] = shapely.get_geometry(geoms[single].astype(object), 0)
            types[single] = 0
        wrong = ok & (types != 0)
        reasons[wrong], messages[wrong] = "not_point", "The feature is not a point."
    ok = reasons == ""
    if ok.any():
        wgs = np.asarray(geoms, dtype=object).copy()
        wgs[ok] = to_wgs84(geoms[ok].astype(object), spec, source=source)
        geoms = wgs
    repaired: list[int] = []
    if geometry in ("polygon", "any") and ok.any():
        poly = np.flatnonzero(ok & np.isin(types, (3, 6)))
        fixed, rep, refused, why = repair_geometries(geoms[poly], max_area_change=max_area_change)
        geoms = geoms.copy()
        geoms[poly] = fixed
        repaired = [int(numbers[poly[i]]) for i in rep]
        bad = poly[refused]
        reasons[bad] = "invalid_geometry"
        messages[bad] = [f"The polygon is invalid ({w}) and repairing it would change its area by more than "
                         f"{max_area_change:.0%}; fix it in a GIS." for w in why]
    ok = reasons == ""
    rejected_pos = np.flatnonzero(~ok)
    rejected = rejected_frame(numbers[rejected_pos], reasons[rejected_pos], messages[rejected_pos],
                              _raw_text(raw.attributes, rejected_pos))
    warnings = list(raw.warnings)
    if repaired:
        features = ", ".join(map(str, repaired[:10])) + (" …" if len(repaired) > 10 else "")
        warnings.append(N_("{count} invalid geometries were repaired (features {features}).").format(
            count=len(repaired), features=features))
    if n and not ok.any():
        raise ValidationError("{file}: none of its {count} features can be used (first problem, feature {feature}: "
                              "{reason}).", file=source, count=n, feature=int(numbers[rejected_pos[0]]),
                              reason=str(reasons[rejected_pos[0]]))
    if n == 0:
        raise ValidationError("{file} holds no features.", file=source)
    return LayerFile(source=source, geoms=np.asarray(geoms[ok], dtype=object),
                     attributes=raw.attributes[ok].reset_index(drop=True),
                     crs=spec.name if not spec.is_gcj02 else "gcj02", feature_no=numbers[ok], repaired=repaired,
                     rejected=rejected, read=n, warnings=warnings)

