"""Generate the bad-input files the tests feed to every reader (nothing here is checked in as data).

Each function writes one file into ``folder`` and returns its path. The files are built to be hostile or broken
in one specific way each: wrong encodings, wrong or missing CRS, broken geometry, archive tricks, XML tricks, a
raster header that lies about its size, a file whose content does not match its name, an oversized upload.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

FIRMS_HEADER = ("latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,"
                "frp,daynight")
FIRMS_ROW = "34.42,112.43,320.5,1.0,1.0,2026-06-01,0530,A,80,6.1NRT,295.1,12.3,D"
#: a square inside 伊川县 (WGS84)
SQUARE = [[112.40, 34.40], [112.46, 34.40], [112.46, 34.45], [112.40, 34.45], [112.40, 34.40]]


def _feature_collection(geometry: dict, **props: object) -> str:
    return json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "测试区", "zone_type": "high_polluting_fuel", **props},
         "geometry": geometry}]}, ensure_ascii=False)


def firms_utf16(folder: Path) -> Path:
    path = folder / "firms_utf16.csv"
    path.write_bytes(("\n".join([FIRMS_HEADER, FIRMS_ROW]) + "\n").encode("utf-16"))
    return path


def firms_gbk_garbage(folder: Path) -> Path:
    """A FIRMS header followed by GBK-encoded Chinese text where numbers belong."""
    path = folder / "firms_gbk.csv"
    path.write_bytes((FIRMS_HEADER + "\n" + "纬度,经度,亮温,1,1,二〇二六年,五点,A,高,6.1NRT,1,1,D\n").encode("gbk"))
    return path


def firms_missing_columns(folder: Path) -> Path:
    path = folder / "firms_missing.csv"
    path.write_text("latitude,longitude\n34.4,112.4\n", encoding="utf-8")
    return path


def firms_is_really_a_zip(folder: Path) -> Path:
    """A file named .csv whose content is a zip archive."""
    path = folder / "fires.csv"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("fires.csv", FIRMS_HEADER + "\n" + FIRMS_ROW + "\n")
    return path


def people_gbk(folder: Path) -> Path:
    """A people CSV saved by a spreadsheet in GBK (the usual Excel export on Chinese Windows)."""
    path = folder / "people_gbk.csv"
    path.write_bytes("person_key,name,phone,role,unit_code,cell\np-gbk,王小明,13800000000,inspector,410329,\n"
                     .encode("gbk"))
    return path


def people_with_html(folder: Path) -> Path:
    path = folder / "people_html.csv"
    path.write_text("person_key,name,phone,role,unit_code,cell\n"
                    "p-html,<script>alert(1)</script>张三,13800000000,inspector,410329,\n", encoding="utf-8")
    return path


def zone_geojson_without_crs_in_metres(folder: Path) -> Path:
    """Projected coordinates (Gauss-Kruger metres) in a GeoJSON, which by definition is in degrees."""
    path = folder / "zone_metres.geojson"
    ring = [[38_536_000 + dx, 3_810_000 + dy] for dx, dy in ((0, 0), (5000, 0), (5000, 5000), (0, 5000), (0, 0))]
    path.write_text(_feature_collection({"type": "Polygon", "coordinates": [ring]}), encoding="utf-8")
    return path


def zone_self_intersecting(folder: Path) -> Path:
    """A bow-tie: repairing it changes the area far beyond any tolerance."""
    path = folder / "zone_bowtie.geojson"
    bowtie = [[112.40, 34.40], [112.46, 34.45], [112.46, 34.40], [112.40, 34.45], [112.40, 34.40]]
    path.write_text(_feature_collection({"type": "Polygon", "coordinates": [bowtie]}), encoding="utf-8")
    return path


def zone_empty(folder: Path) -> Path:
    path = folder / "zone_empty.geojson"
    path.write_text(_feature_collection({"type": "Polygon", "coordinates": []}), encoding="utf-8")
    return path


def zip_slip(folder: Path) -> Path:
    path = folder / "zones_slip.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("../../evil.geojson", _feature_collection({"type": "Polygon", "coordinates": [SQUARE]}))
    return path


def zip_bomb(folder: Path) -> Path:
    """A small zip whose one member inflates to 2 GB of zeros."""
    path = folder / "zones_bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("zones.geojson", "w", force_zip64=True) as member:
            block = b"\0" * (1 << 20)
            for _ in range(2048):
                member.write(block)
    return path


def kml_network_link(folder: Path) -> Path:
    path = folder / "zones_link.kml"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
        "<NetworkLink><name>remote</name><Link><href>http://192.0.2.1/zones.kml</href></Link></NetworkLink>"
        "</Document></kml>", encoding="utf-8")
    return path


def kml_xml_bomb(folder: Path) -> Path:
    """The "billion laughs": nested entities that expand to gigabytes."""
    path = folder / "zones_bomb.kml"
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    path.write_text(f'<?xml version="1.0"?><!DOCTYPE kml [{entities}]>'
                    '<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Placemark><name>&lol9;</name>'
                    f"<Polygon><outerBoundaryIs><LinearRing><coordinates>"
                    f"{' '.join(f'{x},{y}' for x, y in SQUARE)}</coordinates></LinearRing></outerBoundaryIs>"
                    "</Polygon></Placemark></Document></kml>", encoding="utf-8")
    return path


def geotiff_huge_header(folder: Path) -> Path:
    """A valid little TIFF header whose IFD claims 100,000 × 100,000 float pixels (no pixel data)."""
    path = folder / "bare_huge.tif"
    entries = [  # tag, type, count, value
        (256, 4, 1, 100_000), (257, 4, 1, 100_000), (258, 3, 1, 32), (259, 3, 1, 1), (262, 3, 1, 1),
        (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, 100_000), (279, 4, 1, 40_000_000), (339, 3, 1, 3),
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        ifd += struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3
                                                         else struct.pack("<I", value))
    ifd += struct.pack("<I", 0)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd)
    return path


def oversized(folder: Path, megabytes: int) -> Path:
    """A zone GeoJSON padded past the upload limit (a sparse file: no disk is used for the padding)."""
    path = folder / "zones_big.geojson"
    with path.open("wb") as handle:
        handle.write(_feature_collection({"type": "Polygon", "coordinates": [SQUARE]}).encode())
        handle.truncate(megabytes * (1 << 20) + 1)
    return path
