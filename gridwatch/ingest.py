"""Readers that turn files GIS staff have into checked WGS84 geometries and attributes.

A file's CRS is never guessed: it comes from the file, or from the user when
the file has none; a user's CRS that contradicts the file's is refused, except
GCJ-02, which files cannot declare (it looks like EPSG:4326).
"""

from __future__ import annotations

import codecs
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import shapely

from gridwatch.crs import CRSSpec, resolve_crs, to_wgs84
from gridwatch.errors import CRSError, ValidationError
from gridwatch.i18n import N_

__all__ = ["VectorData", "RawVector", "read_vector", "read_raw", "decide_crs", "repair_polygons", "zip_member_names"]

VECTOR_SUFFIXES = (".geojson", ".json", ".zip", ".shp", ".gpkg", ".kml", ".kmz", ".fgb")


@dataclass
class VectorData:
    """Features read from a file: WGS84 geometries, their attributes, and what was done."""

    source: str
    geoms: np.ndarray
    attributes: pd.DataFrame
    crs: str
    repaired: list[int] = field(default_factory=list)


def zip_member_names(path: Path) -> list[str]:
    """The files in a zip archive, refusing archives with absolute or ``..`` paths."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
    except zipfile.BadZipFile as exc:
        raise ValidationError("{file} is not a readable zip archive.", file=path.name) from exc
    unsafe = [n for n in names if n.startswith("/") or ".." in Path(n).parts]
    if unsafe:
        raise ValidationError("{file} holds unsafe paths ({names}); it is refused.", file=path.name,
                              names=", ".join(unsafe[:3]))
    return names


def _dataset_path(path: Path) -> str:
    if path.suffix.lower() != ".zip":
        return str(path)
    names = zip_member_names(path)
    shapefiles = [n for n in names if n.lower().endswith(".shp")]
    if len(shapefiles) != 1:
        raise ValidationError(
            "{file} must hold exactly one Shapefile (.shp with its .dbf, .shx and .prj); found {count}.",
            file=path.name, count=len(shapefiles),
        )
    return f"/vsizip/{path}/{shapefiles[0]}"


@dataclass
class RawVector:
    """Features as a file holds them: geometries in the file's own CRS, attributes, and what the file says.

    Attributes
    ----------
    source : str
        The file name.
    geoms : ndarray of shapely geometries (None where a feature has no geometry)
    attributes : DataFrame
    file_crs : str or None
        The CRS the file declares (WKT or authority string), None when it declares none.
    layer : str or None
        The layer read.
    encoding : str or None
        The attribute encoding used for a Shapefile without a ``.cpg`` (``UTF-8`` or ``GBK``).
    warnings : list of str
        English remarks (network links not followed, encoding chosen, ...).
    """

    source: str
    geoms: np.ndarray
    attributes: pd.DataFrame
    file_crs: str | None
    layer: str | None = None
    encoding: str | None = None
    warnings: list[str] = field(default_factory=list)


_NETWORK_LINK = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?NetworkLink\b.*?</(?:[A-Za-z_][\w.-]*:)?NetworkLink\s*>", re.S)


def _strip_network_links(kml: bytes) -> tuple[bytes, int]:
    """Remove every ``<NetworkLink>`` element: gridwatch never fetches what a KML file points to."""
    return _NETWORK_LINK.subn(b"", kml)


def _kml_bytes(path: Path) -> bytes:
    if path.suffix.lower() != ".kmz":
        return path.read_bytes()
    names = zip_member_names(path)
    kmls = [n for n in names if n.lower().endswith(".kml")]
    if not kmls:
        raise ValidationError("{file} holds no .kml document.", file=path.name)
    main = "doc.kml" if "doc.kml" in kmls else sorted(kmls, key=lambda n: (n.count("/"), n))[0]
    with zipfile.ZipFile(path) as archive:
        return archive.read(main)


def _shapefile_encoding(path: Path) -> str | None:
    """``UTF-8`` or ``GBK`` for a Shapefile without a ``.cpg`` whose attributes are not plain ASCII, else None.

    GDAL would read such a ``.dbf`` as Latin-1 (or by its language byte); Chinese attributes are UTF-8 or GBK,
    and GBK text is almost never valid UTF-8, so a strict UTF-8 decode decides.
    """
    if path.suffix.lower() == ".zip":
        names = zip_member_names(path)
        if any(n.lower().endswith(".cpg") for n in names):
            return None
        dbfs = [n for n in names if n.lower().endswith(".dbf")]
        if len(dbfs) != 1:
            return None
        with zipfile.ZipFile(path) as archive:
            data = archive.read(dbfs[0])
    elif path.suffix.lower() == ".shp":
        if path.with_suffix(".cpg").exists() or path.with_suffix(".CPG").exists():
            return None
        dbf = next((p for p in (path.with_suffix(".dbf"), path.with_suffix(".DBF")) if p.exists()), None)
        if dbf is None:
            return None
        data = dbf.read_bytes()
    else:
        return None
    return _dbf_text_encoding(data)


def _dbf_text_encoding(data: bytes) -> str | None:
    """UTF-8 or GBK for the text of a ``.dbf`` (field names and records, not the binary header), None if ASCII.

    Strings cut at a field's width may end in half a character, so the encoding with fewer undecodable
    bytes wins, UTF-8 when it decodes cleanly.
    """
    if len(data) < 32:
        return None
    header = int.from_bytes(data[8:10], "little")
    names = [data[i:i + 11].split(b"\0")[0] for i in range(32, max(header - 32, 32), 32)]
    records = data[header:].rstrip(b"\x1a")
    if records.isascii() and all(n.isascii() for n in names):
        return None

    def bad(encoding: str) -> int:
        # a field name cut at 11 bytes may end in half a character: decode names as incomplete streams
        count = 0
        for name in names:
            try:
                codecs.getincrementaldecoder(encoding)().decode(name, final=False)
            except UnicodeDecodeError:
                count += 1
        return count + records.decode(encoding, errors="replace").count("\ufffd")

    utf8_bad = bad("utf-8")
    return "UTF-8" if utf8_bad == 0 or utf8_bad < bad("gb18030") else "GBK"


def _choose_layer(dataset: str, name: str, layer: str | None, *, non_empty_only: bool) -> str | None:
    try:
        layers = pyogrio.list_layers(dataset)
    except pyogrio.errors.DataSourceError as exc:
        raise ValidationError("{file} is not a vector file gridwatch can read ({formats}).", file=name,
                              formats=", ".join(VECTOR_SUFFIXES)) from exc
    layer_names = [str(n) for n in layers[:, 0]]
    if non_empty_only and layer is None:
        layer_names = [n for n in layer_names if pyogrio.read_info(dataset, layer=n)["features"] > 0] or layer_names
        if len(layer_names) == 1:
            return layer_names[0]
    if layer is None and len(layer_names) > 1:
        raise ValidationError("{file} has several layers ({layers}); choose one.", file=name,
                              layers=", ".join(layer_names))
    if layer is not None and layer not in layer_names:
        raise ValidationError("{file} has no layer {layer!r}; its layers are {layers}.", file=name, layer=layer,
                              layers=", ".join(layer_names))
    return layer


def list_layers(path: str | Path) -> list[str]:
    """The layer names of a vector file (a GeoPackage's tables, a KML's folders), for a layer picker."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="gridwatch-vector-") as tmp:
        dataset = _prepared_dataset(path, Path(tmp))[0]
        try:
            return [str(n) for n in pyogrio.list_layers(dataset)[:, 0]]
        except pyogrio.errors.DataSourceError as exc:
            raise ValidationError("{file} is not a vector file gridwatch can read ({formats}).", file=path.name,
                                  formats=", ".join(VECTOR_SUFFIXES)) from exc


def _prepared_dataset(path: Path, tmp: Path) -> tuple[str, list[str]]:
    """The GDAL dataset name for ``path``; KML/KMZ are copied to ``tmp`` without their network links."""
    if path.suffix.lower() in (".kml", ".kmz"):
        text, links = _strip_network_links(_kml_bytes(path))
        clean = tmp / (path.stem + ".kml")
        clean.write_bytes(text)
        notes = [N_("{count} network link(s) in {file} were not followed.").format(count=links, file=path.name)
                 ] if links else []
        return str(clean), notes
    return _dataset_path(path), []


def read_raw(path: str | Path, /, *, layer: str | None = None, encoding: str | None = None) -> RawVector:
    """Read a vector file's features as they are (no reprojection, no checks on geometries).

    GeoJSON, zipped Shapefile (``.cpg`` honoured; without one, UTF-8 or GBK attributes detected), GeoPackage
    and KML/KMZ (a layer must be chosen when several hold features; network links are removed before GDAL sees
    the file, so nothing is fetched).

    Parameters
    ----------
    path : path
        The file.
    layer : str, optional
        The layer of a multi-layer file.
    encoding : str, optional
        The attribute encoding of a Shapefile, overriding detection.

    Raises
    ------
    ValidationError
        Missing or unreadable file, several layers and none chosen, unknown layer, unsafe zip.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise ValidationError("File {file} does not exist.", file=str(path))
    warnings: list[str] = []
    if encoding is None:
        encoding = _shapefile_encoding(path)
        if encoding:
            warnings.append(N_("{file} has no .cpg file; its attributes were read as {encoding}.").format(
                file=name, encoding=encoding))
    with tempfile.TemporaryDirectory(prefix="gridwatch-vector-") as tmp:
        dataset, notes = _prepared_dataset(path, Path(tmp))
        warnings += notes
        chosen = _choose_layer(dataset, name, layer, non_empty_only=path.suffix.lower() in (".kml", ".kmz"))
        try:
            meta, _, geometry, field_data = pyogrio.raw.read(dataset, layer=chosen, encoding=encoding)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise ValidationError("{file} cannot be read: {reason}", file=name, reason=str(exc)) from exc
        except IndexError as exc:  # GDAL found the file but no layer in it (e.g. a KML of network links only)
            raise ValidationError("{file} holds no features gridwatch can read (network links are never followed).",
                                  file=name) from exc
    n = len(field_data[0]) if len(field_data) else (0 if geometry is None else len(geometry))
    geoms = shapely.from_wkb(geometry) if geometry is not None else np.full(n, None, dtype=object)
    attributes = pd.DataFrame({f: d for f, d in zip(meta["fields"], field_data)}, index=range(len(geoms)))
    return RawVector(source=name, geoms=np.asarray(geoms, dtype=object), attributes=attributes,
                     file_crs=meta.get("crs") or None, layer=chosen, encoding=encoding, warnings=warnings)


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
    raw = read_raw(path, layer=layer)
    name = raw.source
    if len(raw.geoms) == 0:
        raise ValidationError("{file} holds no features.", file=name)
    geoms, attributes = raw.geoms, raw.attributes
    spec = _decide_crs(raw.file_crs, crs, name)
    missing = np.flatnonzero(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if len(missing):
        raise ValidationError(
            "{file}: feature {feature} has no geometry; remove it or draw its boundary.",
            file=name, feature=int(missing[0]) + 1,
        )
    return VectorData(source=name, geoms=to_wgs84(geoms, spec, source=name), attributes=attributes, crs=spec.name)


def decide_crs(file_crs: str | None, user_crs: str | None, name: str) -> CRSSpec:
    """The CRS to read a file in: the file's, the user's when the file has none, GCJ-02 over a geographic one.

    Raises
    ------
    CRSError
        Neither the file nor the user gives one, or the user's contradicts the file's.
    """
    return _decide_crs(file_crs, user_crs, name)


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
