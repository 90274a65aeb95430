"""Readers that turn files GIS staff have into checked WGS84 geometries and attributes.

A file's CRS is never guessed: it comes from the file, or from the user when
the file has none; a user's CRS that contradicts the file's is refused, except
GCJ-02, which files cannot declare (it looks like EPSG:4326).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import shapely

from gridwatch.crs import CRSSpec, resolve_crs, to_wgs84
from gridwatch.errors import CRSError, ValidationError

__all__ = ["VectorData", "read_vector", "repair_polygons"]

VECTOR_SUFFIXES = (".geojson", ".json", ".zip", ".shp", ".gpkg", ".kml", ".fgb")


@dataclass
class VectorData:
    """Features read from a file: WGS84 geometries, their attributes, and what was done."""

    source: str
    geoms: np.ndarray
    attributes: pd.DataFrame
    crs: str
    repaired: list[int] = field(default_factory=list)


def _dataset_path(path: Path) -> str:
    if path.suffix.lower() != ".zip":
        return str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
    except zipfile.BadZipFile as exc:
        raise ValidationError("{file} is not a readable zip archive.", file=path.name) from exc
    unsafe = [n for n in names if n.startswith("/") or ".." in Path(n).parts]
    if unsafe:
        raise ValidationError("{file} holds unsafe paths ({names}); it is refused.", file=path.name,
                              names=", ".join(unsafe[:3]))
    shapefiles = [n for n in names if n.lower().endswith(".shp")]
    if len(shapefiles) != 1:
        raise ValidationError(
            "{file} must hold exactly one Shapefile (.shp with its .dbf, .shx and .prj); found {count}.",
            file=path.name, count=len(shapefiles),
        )
    return f"/vsizip/{path}/{shapefiles[0]}"


def read_vector(path: str | Path, /, *, crs: str | None = None, layer: str | None = None) -> VectorData:
    """Read a vector file (GeoJSON, zipped Shapefile, GeoPackage, …) into WGS84.

    Parameters
    ----------
    path : path
        The file.
    crs : str, optional
        The CRS the user declares: required when the file declares none;
        ``gcj02`` for coordinates taken from a consumer map app.
    layer : str, optional
        Layer of a multi-layer file (GeoPackage).

    Raises
    ------
    ValidationError
        Unreadable file, several layers and none chosen, empty file.
    CRSError
        No CRS anywhere, or the user's CRS contradicts the file's.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise ValidationError("File {file} does not exist.", file=str(path))
    dataset = _dataset_path(path)
    try:
        layers = pyogrio.list_layers(dataset)
    except pyogrio.errors.DataSourceError as exc:
        raise ValidationError("{file} is not a vector file gridwatch can read ({formats}).", file=name,
                              formats=", ".join(VECTOR_SUFFIXES)) from exc
    layer_names = [str(n) for n in layers[:, 0]]
    if layer is None and len(layer_names) > 1:
        raise ValidationError("{file} has several layers ({layers}); choose one.", file=name,
                              layers=", ".join(layer_names))
    if layer is not None and layer not in layer_names:
        raise ValidationError("{file} has no layer {layer!r}; its layers are {layers}.", file=name, layer=layer,
                              layers=", ".join(layer_names))
    try:
        meta, _, geometry, field_data = pyogrio.raw.read(dataset, layer=layer, encoding=None)
    except pyogrio.errors.DataSourceError as exc:  # pragma: no cover - listed but unreadable
        raise ValidationError("{file} cannot be read: {reason}", file=name, reason=str(exc)) from exc
    if geometry is None or len(geometry) == 0:
        raise ValidationError("{file} holds no features.", file=name)
    geoms = shapely.from_wkb(geometry)
    attributes = pd.DataFrame({f: d for f, d in zip(meta["fields"], field_data)})
    spec = _decide_crs(meta.get("crs"), crs, name)
    missing = np.flatnonzero(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if len(missing):
        raise ValidationError(
            "{file}: feature {feature} has no geometry; remove it or draw its boundary.",
            file=name, feature=int(missing[0]) + 1,
        )
    return VectorData(source=name, geoms=to_wgs84(geoms, spec, source=name), attributes=attributes, crs=spec.name)


def _decide_crs(file_crs: str | None, user_crs: str | None, name: str) -> CRSSpec:
    user = resolve_crs(user_crs) if user_crs else None
    if not file_crs:
        if user is None:
            raise CRSError(
                "{file} declares no coordinate reference system; give it with --crs "
                "(EPSG:4326, EPSG:4490 for CGCS2000, gcj02 for map-app coordinates, or a projected EPSG code).",
                file=name,
            )
        return user
    declared = resolve_crs(file_crs)
    if user is None:
        return declared
    if user.is_gcj02:
        if declared.pyproj_crs is not None and declared.pyproj_crs.is_geographic:
            return user
        raise CRSError("{file} is in {declared}, a projected CRS, so it cannot be GCJ-02 longitude/latitude.",
                       file=name, declared=declared.name)
    if declared.pyproj_crs is not None and user.pyproj_crs is not None and not declared.pyproj_crs.equals(
        user.pyproj_crs, ignore_axis_order=True
    ):
        raise CRSError(
            "{file} declares {declared} but {given} was given; leave --crs out to use the file's CRS.",
            file=name, declared=declared.name, given=user.name,
        )
    return declared


def repair_polygons(geoms: np.ndarray, *, source: str, max_area_change: float = 0.01) -> tuple[np.ndarray, list[int]]:
    """Keep only polygonal parts, repairing invalid ones; refuse repairs that change the area much.

    Returns the MultiPolygons and the indices of the repaired features.
    """
    kinds = shapely.get_type_id(geoms)
    not_polygonal = np.flatnonzero(~np.isin(kinds, (3, 6)))
    if len(not_polygonal):
        i = int(not_polygonal[0])
        raise ValidationError(
            "{file}: feature {feature} is a {kind}, not a polygon; boundaries must be polygons.",
            file=source, feature=i + 1, kind=shapely.get_type_id(geoms[i]) and geoms[i].geom_type,
        )
    invalid = np.flatnonzero(~shapely.is_valid(geoms))
    out = geoms.copy()
    for i in invalid:
        fixed = shapely.make_valid(geoms[i])
        polys = [g for g in getattr(fixed, "geoms", [fixed]) if g.geom_type in ("Polygon", "MultiPolygon")]
        fixed = shapely.union_all(polys) if polys else shapely.Polygon()
        before, after = shapely.area(geoms[i].buffer(0)), shapely.area(fixed)
        if fixed.is_empty or (before > 0 and abs(after - before) / before > max_area_change):
            raise ValidationError(
                "{file}: feature {feature} has an invalid boundary ({reason}) that cannot be repaired without "
                "changing its area; fix it in a GIS and load it again.",
                file=source, feature=int(i) + 1, reason=shapely.is_valid_reason(geoms[i]),
            )
        out[i] = fixed
    out = np.array([g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g]) for g in out], dtype=object)
    return out, [int(i) for i in invalid]
