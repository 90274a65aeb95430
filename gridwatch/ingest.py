"""Readers that turn files GIS staff have into checked WGS84 geometries and attributes.

A file's CRS is never guessed: it comes from the file, or from the user when
the file has none; a user's CRS that contradicts the file's is refused, except
GCJ-02, which files cannot declare (it looks like EPSG:4326).

Reading an upload is bounded and never reaches the network. An archive (a
zipped Shapefile, a KMZ) is checked on its directory (how many files, the total
they unpack to, their paths) before anything is unpacked, and gridwatch unpacks
what GDAL needs itself, under the same limits (``archive_max_entries``,
``archive_max_unpacked_mb``), so GDAL only ever opens plain files; a KML, which
GDAL holds whole in memory, may have ``kml_max_mb``. A file whose text asks for
other data (a GeoJSON ``crs`` link, a ``/vsicurl/`` path, a VRT or GDALG
document, a KML ``<NetworkLink>``) is refused before GDAL opens it, and GDAL
runs under :data:`layers.untrusted.GDAL_NO_NETWORK`, without the drivers that
fetch or open other datasets (set for the whole process when this module is
imported).
"""

from __future__ import annotations

import codecs
import struct
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import shapely

from gridwatch.config import Settings
from gridwatch.crs import CRSSpec, resolve_crs, to_wgs84
from gridwatch.errors import CRSError, ValidationError
from gridwatch.i18n import N_
from layers.untrusted import GDAL_NO_NETWORK, GDAL_SKIP_DRIVERS, file_network_reference

__all__ = ["VectorData", "RawVector", "read_vector", "read_raw", "decide_crs", "repair_polygons", "zip_member_names",
           "list_layers"]

VECTOR_SUFFIXES = (".geojson", ".json", ".zip", ".shp", ".gpkg", ".kml", ".kmz", ".fgb")


def _gdal_without_network() -> None:
    """Set pyogrio's GDAL (for the whole process) so that no read reaches the network or opens other datasets.

    The settings of :data:`layers.untrusted.GDAL_NO_NETWORK` apply at once; the drivers of
    :data:`layers.untrusted.GDAL_SKIP_DRIVERS` go when the drivers are registered again with them in ``GDAL_SKIP``.
    """
    skipped = str(pyogrio.get_gdal_config_option("GDAL_SKIP") or "").replace(",", " ").split()
    pyogrio.set_gdal_config_options({**GDAL_NO_NETWORK,
                                     "GDAL_SKIP": " ".join(dict.fromkeys([*skipped, *GDAL_SKIP_DRIVERS]))})
    try:
        from pyogrio._ogr import _register_drivers  # noqa: PLC0415 - registering again applies GDAL_SKIP
    except ImportError:  # pragma: no cover - another pyogrio: the settings and the checks before reading remain
        return
    with warnings.catch_warnings():  # GDAL names the drivers of the list this build lacks
        warnings.simplefilter("ignore", RuntimeWarning)
        _register_drivers()


_gdal_without_network()


@dataclass
class VectorData:
    """Features read from a file: WGS84 geometries, their attributes, and what was done."""

    source: str
    geoms: np.ndarray
    attributes: pd.DataFrame
    crs: str
    repaired: list[int] = field(default_factory=list)


# -- archives ----------------------------------------------------------------------------------------------------

#: the end record of a zip archive's directory, and the zip64 one and its locator
_END = b"PK\x05\x06"
_END64 = b"PK\x06\x06"
_END64_LOCATOR = b"PK\x06\x07"
#: directory bytes allowed per file an archive may hold (a directory entry is 46 bytes and the file's name)
_DIRECTORY_BYTES_PER_ENTRY = 1024
_COPY_CHUNK = 1 << 20


def _declared_directory(path: Path) -> tuple[int, int] | None:
    """Read the number of files and the directory size an archive's end record declares; None without one."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        length = min(size, 22 + 0xFFFF + 20)
        handle.seek(size - length)
        tail = handle.read(length)
        at = tail.rfind(_END)
        if at < 0 or len(tail) - at < 22:
            return None
        entries, directory = struct.unpack("<HI", tail[at + 10:at + 16])
        if (entries == 0xFFFF or directory == 0xFFFFFFFF) and at >= 20 and tail[at - 20:at - 16] == _END64_LOCATOR:
            (offset,) = struct.unpack("<Q", tail[at - 12:at - 4])
            if offset + 56 <= size:
                handle.seek(offset)
                record = handle.read(56)
                if record[:4] == _END64:
                    entries, directory = struct.unpack("<QQ", record[32:48])
    return entries, directory


def _archive_directory(path: Path, name: str, settings: Settings) -> list[zipfile.ZipInfo]:
    """List the files of a zip archive, checked before anything is unpacked.

    The end record's counts are checked before the directory is read (so a directory of millions of entries is
    never parsed), then the directory itself: entries, the total they unpack to, and their paths.

    Raises
    ------
    ValidationError
        Not a zip archive, more files than ``archive_max_entries``, more than ``archive_max_unpacked_mb`` unpacked,
        absolute or ``..`` paths.
    """
    limit = int(settings.archive_max_entries)
    declared = _declared_directory(path)
    if declared is None:
        raise ValidationError("{file} is not a readable zip archive.", file=name)
    entries, directory = declared
    if entries > limit:
        raise ValidationError("{file} holds {count} files; an archive may hold {limit} (the setting "
                              "archive_max_entries).", file=name, count=entries, limit=limit)
    if directory > limit * _DIRECTORY_BYTES_PER_ENTRY:
        raise ValidationError("The directory of {file} takes {size} KB, more than {limit} files need; it is refused "
                              "(the setting archive_max_entries).", file=name, size=directory // 1024, limit=limit)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ValidationError("{file} is not a readable zip archive.", file=name) from exc
    if len(infos) > limit:
        raise ValidationError("{file} holds {count} files; an archive may hold {limit} (the setting "
                              "archive_max_entries).", file=name, count=len(infos), limit=limit)
    total = sum(i.file_size for i in infos)
    budget = float(settings.archive_max_unpacked_mb)
    if total > budget * 2**20:
        raise ValidationError("{file} would unpack to {size:.0f} MB; an archive may unpack to {limit:g} MB (the "
                              "setting archive_max_unpacked_mb).", file=name, size=total / 2**20, limit=budget)
    unsafe = [i.filename for i in infos if i.filename.startswith("/") or ".." in Path(i.filename).parts]
    if unsafe:
        raise ValidationError("{file} holds unsafe paths ({names}); it is refused.", file=name,
                              names=", ".join(unsafe[:3]))
    return [i for i in infos if not i.is_dir()]


def zip_member_names(path: str | Path, *, settings: Settings | None = None) -> list[str]:
    """The files in a zip archive, refusing archives with too many files, too much to unpack, or unsafe paths."""
    path = Path(path)
    return [i.filename for i in _archive_directory(path, path.name, settings or Settings.load())]


def _unpack(path: Path, members: list[zipfile.ZipInfo], folder: Path, name: str, settings: Settings) -> list[Path]:
    """Unpack ``members`` of the archive into ``folder``, counting what they unpack to as they do.

    Raises
    ------
    ValidationError
        A member unpacks past ``archive_max_unpacked_mb``, does not match the size or checksum its directory
        gives (the directory lied), or uses a compression or encryption gridwatch cannot unpack.
    """
    budget = float(settings.archive_max_unpacked_mb)
    left = int(budget * 2**20)
    out: list[Path] = []
    with zipfile.ZipFile(path) as archive:
        for info in members:
            target = folder.joinpath(*Path(info.filename).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as source, target.open("wb") as sink:
                    while chunk := source.read(_COPY_CHUNK):
                        left -= len(chunk)
                        if left < 0:
                            raise ValidationError("{file} unpacks to more than {limit:g} MB; it is refused (the "
                                                  "setting archive_max_unpacked_mb).", file=name, limit=budget)
                        sink.write(chunk)
            except (zipfile.BadZipFile, EOFError) as exc:
                raise ValidationError("{file}: {member} does not match the size or checksum the archive's directory "
                                      "gives; the archive is damaged or forged.", file=name,
                                      member=info.filename) from exc
            except (NotImplementedError, RuntimeError) as exc:
                raise ValidationError("{file}: {member} is compressed or encrypted in a way gridwatch cannot unpack "
                                      "({reason}).", file=name, member=info.filename, reason=str(exc)) from exc
            out.append(target)
    return out


def _refuse_network_references(files: list[Path], name: str) -> None:
    """Refuse a file whose text asks GDAL for other data (a network source, another dataset) before GDAL opens it."""
    for path in files:
        found = file_network_reference(path)
        if found is not None:
            raise ValidationError("{file} refers to data elsewhere ({construct}); gridwatch reads only what a file "
                                  "holds itself and never fetches anything. Save the data into the file and load it "
                                  "again.", file=name, construct=found)


def _check_kml_size(size: int, name: str, settings: Settings) -> None:
    """Refuse a KML document past ``kml_max_mb``: GDAL holds a KML whole in memory, at about fifteen times its size."""
    limit = float(settings.kml_max_mb)
    if size > limit * 2**20:
        raise ValidationError("{file} holds a KML document of {size:.0f} MB; gridwatch reads KML of up to {limit:g} MB "
                              "(the setting kml_max_mb), since it is held whole in memory. Save the layer as GeoJSON, "
                              "a GeoPackage or a zipped Shapefile instead.", file=name, size=size / 2**20, limit=limit)


def _siblings(path: Path) -> list[Path]:
    """List a Shapefile's files: those beside it with its name (any case) and another extension."""
    stem = path.stem.lower() + "."
    return sorted(p for p in path.parent.iterdir() if p.is_file() and p.name.lower().startswith(stem))


@dataclass
class _Dataset:
    """What GDAL is given to read: a plain file (unpacked from an archive when it came in one)."""

    path: Path
    shapefile: bool = False


def _prepared_dataset(path: Path, tmp: Path, settings: Settings) -> _Dataset:
    """Give the plain file GDAL reads for ``path`` (archives unpacked into ``tmp``); refuse requests for other data.

    A zip must hold exactly one Shapefile (its files are unpacked); a KMZ its main ``.kml`` (``doc.kml``, else the
    shallowest). Every file GDAL will see is checked with :func:`layers.untrusted.file_network_reference`.
    """
    name = path.name
    suffix = path.suffix.lower()
    if suffix == ".zip":
        members = _archive_directory(path, name, settings)
        shapefiles = [i for i in members if i.filename.lower().endswith(".shp")]
        if len(shapefiles) != 1:
            raise ValidationError(
                "{file} must hold exactly one Shapefile (.shp with its .dbf, .shx and .prj); found {count}.",
                file=name, count=len(shapefiles),
            )
        stem = shapefiles[0].filename[:-4].lower() + "."
        files = _unpack(path, [i for i in members if i.filename.lower().startswith(stem)], tmp, name, settings)
        dataset = _Dataset(tmp.joinpath(*Path(shapefiles[0].filename).parts), shapefile=True)
    elif suffix == ".kmz":
        members = _archive_directory(path, name, settings)
        kmls = [i for i in members if i.filename.lower().endswith(".kml")]
        if not kmls:
            raise ValidationError("{file} holds no .kml document.", file=name)
        main = next((i for i in kmls if i.filename == "doc.kml"), None) or min(
            kmls, key=lambda i: (i.filename.count("/"), i.filename))
        _check_kml_size(main.file_size, name, settings)
        files = _unpack(path, [main], tmp, name, settings)
        dataset = _Dataset(files[0])
    elif suffix == ".kml":
        _check_kml_size(path.stat().st_size, name, settings)
        files = [path]
        dataset = _Dataset(path)
    elif suffix == ".shp":
        files = _siblings(path)
        dataset = _Dataset(path, shapefile=True)
    else:
        files = [path]
        dataset = _Dataset(path)
    _refuse_network_references(files, name)
    return dataset


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
        English remarks (the encoding chosen, ...).
    """

    source: str
    geoms: np.ndarray
    attributes: pd.DataFrame
    file_crs: str | None
    layer: str | None = None
    encoding: str | None = None
    warnings: list[str] = field(default_factory=list)


#: the most of a ``.dbf`` read to tell its text encoding
_DBF_SAMPLE = 32 << 20


def _shapefile_encoding(shp: Path) -> str | None:
    """``UTF-8`` or ``GBK`` for a Shapefile without a ``.cpg`` whose attributes are not plain ASCII, else None.

    GDAL would read such a ``.dbf`` as Latin-1 (or by its language byte); Chinese attributes are UTF-8 or GBK,
    and GBK text is almost never valid UTF-8, so a strict UTF-8 decode decides (on the first 32 MB of records).
    """
    siblings = {p.suffix.lower(): p for p in _siblings(shp)}
    if ".cpg" in siblings or ".dbf" not in siblings:
        return None
    with siblings[".dbf"].open("rb") as handle:
        data = handle.read(_DBF_SAMPLE)
    if len(data) == _DBF_SAMPLE and len(data) >= 12:  # a sample: keep whole records
        header, record = int.from_bytes(data[8:10], "little"), int.from_bytes(data[10:12], "little")
        if record and len(data) > header:
            data = data[:header + (len(data) - header) // record * record]
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
    if not path.is_file():
        raise ValidationError("File {file} does not exist.", file=str(path))
    with tempfile.TemporaryDirectory(prefix="gridwatch-vector-") as tmp:
        dataset = _prepared_dataset(path, Path(tmp), Settings.load())
        try:
            return [str(n) for n in pyogrio.list_layers(str(dataset.path))[:, 0]]
        except pyogrio.errors.DataSourceError as exc:
            raise ValidationError("{file} is not a vector file gridwatch can read ({formats}).", file=path.name,
                                  formats=", ".join(VECTOR_SUFFIXES)) from exc


def read_raw(path: str | Path, /, *, layer: str | None = None, encoding: str | None = None) -> RawVector:
    """Read a vector file's features as they are (no reprojection, no checks on geometries).

    GeoJSON, zipped Shapefile (``.cpg`` honoured; without one, UTF-8 or GBK attributes detected), GeoPackage
    and KML/KMZ (a layer must be chosen when several hold features). Archives are checked and unpacked under the
    ``archive_*`` settings, and a file that asks for data elsewhere (a network source, another dataset) is refused
    before GDAL opens it, so nothing is fetched.

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
        Missing or unreadable file, several layers and none chosen, unknown layer, unsafe zip, an archive past
        ``archive_max_entries`` or ``archive_max_unpacked_mb``, a KML past ``kml_max_mb``, a request for data
        elsewhere.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise ValidationError("File {file} does not exist.", file=str(path))
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gridwatch-vector-") as tmp:
        prepared = _prepared_dataset(path, Path(tmp), Settings.load())
        dataset = str(prepared.path)
        if encoding is None and prepared.shapefile:
            encoding = _shapefile_encoding(prepared.path)
            if encoding:
                warnings.append(N_("{file} has no .cpg file; its attributes were read as {encoding}.").format(
                    file=name, encoding=encoding))
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
