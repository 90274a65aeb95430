"""Administrative boundaries: the shipped Henan set, loading new ones, and storing them.

Loading is all or nothing: every feature is checked (codes, names, parents,
geometry, overlaps) before anything is written, and the write is one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from gridwatch.config import REPO_ROOT
from gridwatch.crs import geodesic_area_m2
from gridwatch.errors import ValidationError
from gridwatch.grid import LEVELS
from gridwatch.ingest import read_vector, repair_polygons
from gridwatch.storage import Store

__all__ = ["SHIPPED_BOUNDARIES", "UnitBatch", "load_shipped", "prepare_units", "read_boundary_file",
           "store_units"]

SHIPPED_BOUNDARIES = REPO_ROOT / "data" / "boundaries" / "henan_admin_wgs84.geojson"
#: share of the smaller unit two units of one level may overlap before the load is refused
OVERLAP_TOLERANCE = 0.01


@dataclass
class UnitBatch:
    """Checked units ready to store (WGS84 MultiPolygons)."""

    source: str
    frame: pd.DataFrame  # code, name, level, parent_code, is_demo
    geoms: np.ndarray
    repaired: list[str] = field(default_factory=list)
    crs: str = "EPSG:4326"
    #: stored units this batch replaces (with their descendants and the roles on them)
    removes: list[str] = field(default_factory=list)


def read_boundary_file(
    path: str | Path,
    *,
    level: str,
    code_field: str,
    name_field: str,
    parent_field: str | None = None,
    crs: str | None = None,
    layer: str | None = None,
) -> UnitBatch:
    """Read a boundary file and check its fields; geometry and parents are checked by :func:`prepare_units`."""
    if level not in LEVELS[1:]:
        raise ValidationError("Unknown level {level!r}; use one of {levels}.", level=level,
                              levels=", ".join(LEVELS[1:]))
    data = read_vector(path, crs=crs, layer=layer)
    for option, fld in (("--code-field", code_field), ("--name-field", name_field), ("--parent-field", parent_field)):
        if fld is not None and fld not in data.attributes.columns:
            raise ValidationError(
                "{file} has no field {field!r} (given as {option}); its fields are {fields}.",
                file=data.source, field=fld, option=option, fields=", ".join(map(str, data.attributes.columns)),
            )
    attrs = data.attributes
    frame = pd.DataFrame({
        "code": attrs[code_field].map(_text),
        "name": attrs[name_field].map(_text),
        "level": level,
        "parent_code": attrs[parent_field].map(_text) if parent_field else "",
        "is_demo": False,
    })
    return UnitBatch(source=data.source, frame=frame, geoms=data.geoms, crs=data.crs)


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def prepare_units(store: Store, batch: UnitBatch, *, replace: bool = False) -> UnitBatch:
    """Check a batch against itself and the stored units; repair geometry; fill parents.

    Parameters
    ----------
    replace : bool
        The batch replaces every stored unit of its level under the same
        parents (those units, their descendants and the roles held on them
        are removed when stored); otherwise new units must not overlap stored
        ones of their level, except units they replace by code.

    Raises
    ------
    ValidationError
        Empty or duplicate codes, empty names, unknown parents, a parent at the
        wrong level, invalid geometry beyond repair, overlapping units.
    """
    f = batch.frame.reset_index(drop=True)
    src = batch.source
    for col, what in (("code", "code"), ("name", "name")):
        empty = np.flatnonzero(f[col].eq("").to_numpy())
        if len(empty):
            raise ValidationError("{file}: feature {feature} has an empty {what}.", file=src,
                                  feature=int(empty[0]) + 1, what=what)
    dup = f.code[f.code.duplicated()]
    if len(dup):
        raise ValidationError("{file}: the code {code} appears more than once; codes must be unique.", file=src,
                              code=dup.iloc[0])
    geoms, repaired = repair_polygons(batch.geoms, source=src)
    stored = store.query_df("SELECT code, level, name FROM units")
    known_level = dict(zip(stored.code, stored.level)) | dict(zip(f.code, f.level))
    top = f.level.eq(LEVELS[0]).to_numpy()
    no_parent = f.parent_code.eq("").to_numpy() & ~top
    if no_parent.any():
        f.loc[no_parent, "parent_code"] = _parents_by_location(store, f[no_parent], geoms[no_parent], src)
    for i, row in f.iterrows():
        level_idx = LEVELS.index(row.level)
        if level_idx == 0:
            continue
        parent_level = known_level.get(row.parent_code)
        if parent_level is None:
            raise ValidationError(
                "{file}: feature {feature} ({code} {name}) names parent {parent}, which does not exist; "
                "load the parent units first or correct the parent field.",
                file=src, feature=i + 1, code=row.code, name=row["name"], parent=row.parent_code,
            )
        if LEVELS.index(parent_level) != level_idx - 1:
            raise ValidationError(
                "{file}: feature {feature} ({code}) is a {level} but its parent {parent} is a {parent_level}; "
                "a {level}'s parent must be a {expected}.",
                file=src, feature=i + 1, code=row.code, level=row.level, parent=row.parent_code,
                parent_level=parent_level, expected=LEVELS[level_idx - 1],
            )
    _check_overlaps(f, geoms, src)
    removed = _siblings_replaced(store, f) if replace else []
    _check_overlaps_with_stored(store, f, geoms, src, ignore=set(f.code) | set(removed))
    return UnitBatch(source=src, frame=f, geoms=geoms, repaired=[f.code[i] for i in repaired], crs=batch.crs,
                     removes=removed)


def _siblings_replaced(store: Store, f: pd.DataFrame) -> list[str]:
    """Stored units of the batch's levels under its parents that the batch does not name."""
    out: list[str] = []
    for level, group in f.groupby("level"):
        parents = sorted(set(group.parent_code))
        rows = store.query(
            f"SELECT code FROM units WHERE level = ? AND parent_code IN ({', '.join('?' * len(parents))})",
            [level, *parents],
        )
        out += [r["code"] for r in rows if r["code"] not in set(group.code)]
    return sorted(out)


def _check_overlaps_with_stored(store: Store, f: pd.DataFrame, geoms: np.ndarray, src: str, *,
                                ignore: set[str]) -> None:
    for level in f.level.unique():
        rows = [r for r in store.query(
            f"SELECT code, name, {store.geom_to_wkb_sql('geom')} AS wkb FROM units"
            " WHERE level = ? AND geom IS NOT NULL ORDER BY code", [level]) if r["code"] not in ignore]
        if not rows:
            continue
        stored = shapely.from_wkb([bytes(r["wkb"]) for r in rows])
        these = np.flatnonzero(f.level.to_numpy() == level)
        new, old = shapely.STRtree(stored).query(geoms[these], predicate="intersects")
        if not len(new):
            continue
        shared = shapely.area(shapely.intersection(geoms[these][new], stored[old]))
        smaller = np.minimum(shapely.area(geoms[these][new]), shapely.area(stored[old]))
        bad = np.flatnonzero(shared > OVERLAP_TOLERANCE * smaller)
        if len(bad):
            i, j = int(these[new[bad[0]]]), int(old[bad[0]])
            raise ValidationError(
                "{file}: unit {code} ({name}) overlaps the stored unit {other} ({other_name}) by {share:.0%} of the "
                "smaller one. Load it with the same code to replace that unit, or replace all units of this level "
                "under the same parent (--replace).",
                file=src, code=f.code[i], name=f["name"][i], other=rows[j]["code"], other_name=rows[j]["name"],
                share=float(shared[bad[0]] / smaller[bad[0]]),
            )


def _parents_by_location(store: Store, f: pd.DataFrame, geoms: np.ndarray, src: str) -> list[str]:
    """For units given without a parent: the stored unit one level up that holds most of each."""
    out = []
    for level in f.level.unique():
        parent_level = LEVELS[LEVELS.index(level) - 1]
        rows = store.query(
            f"SELECT code, {store.geom_to_wkb_sql('geom')} AS wkb FROM units WHERE level = ? AND geom IS NOT NULL"
            " ORDER BY code",
            [parent_level],
        )
        if not rows:
            raise ValidationError(
                "{file}: no {level} is stored to hold these units; give a parent field or load the {level} first.",
                file=src, level=parent_level,
            )
        parents = shapely.from_wkb([bytes(r["wkb"]) for r in rows])
        codes = np.array([r["code"] for r in rows], dtype=object)
        these = np.flatnonzero(f.level.to_numpy() == level)
        child, par = shapely.STRtree(parents).query(geoms[these], predicate="intersects")
        shared = shapely.area(shapely.intersection(geoms[these][child], parents[par]))
        best = np.full(len(these), -1)
        best_area = np.zeros(len(these))
        order = np.lexsort((par, -shared, child))  # per child: largest share first, ties to the lower code
        first = np.ones(len(order), dtype=bool)
        first[1:] = child[order][1:] != child[order][:-1]
        best[child[order][first]] = par[order][first]
        best_area[child[order][first]] = shared[order][first]
        for k, i in enumerate(these):
            if best[k] < 0 or best_area[k] < 0.5 * shapely.area(geoms[i]):
                raise ValidationError(
                    "{file}: feature {feature} ({code}) lies in no stored {level}; give a parent field or load "
                    "the {level} first.", file=src, feature=int(f.index[i]) + 1, code=f.code.iloc[i],
                    level=parent_level,
                )
        out.extend(zip(these, codes[best]))
    return [code for _, code in sorted(out)]


def _check_overlaps(f: pd.DataFrame, geoms: np.ndarray, src: str) -> None:
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    levels = f.level.to_numpy()
    keep = (a < b) & (levels[a] == levels[b])
    a, b = a[keep], b[keep]
    if not len(a):
        return
    shared = shapely.area(shapely.intersection(geoms[a], geoms[b]))
    smaller = np.minimum(shapely.area(geoms[a]), shapely.area(geoms[b]))
    bad = np.flatnonzero(shared > OVERLAP_TOLERANCE * smaller)
    if len(bad):
        i, j = int(a[bad[0]]), int(b[bad[0]])
        raise ValidationError(
            "{file}: units {first} ({first_name}) and {second} ({second_name}) overlap by {share:.0%} of the "
            "smaller one; units of one level must not overlap. Fix the boundaries and load again.",
            file=src, first=f.code[i], first_name=f["name"][i], second=f.code[j], second_name=f["name"][j],
            share=float(shared[bad[0]] / smaller[bad[0]]),
        )


def store_units(store: Store, batch: UnitBatch, *, source_label: str | None = None) -> dict[str, int]:
    """Insert or replace the batch's units (call inside a transaction). Returns counts."""
    areas = geodesic_area_m2(batch.geoms) / 1e6
    wkb = shapely.to_wkb(batch.geoms)
    existing = {r["code"] for r in store.query("SELECT code FROM units")}
    f = batch.frame
    replaced = int(f.code.isin(existing).sum())
    with store.transaction():
        removed = _remove_units(store, batch.removes)
        if replaced:
            codes = list(f.code[f.code.isin(existing)])
            store.execute(f"DELETE FROM units WHERE code IN ({', '.join('?' * len(codes))})", codes)
        store.executemany(
            "INSERT INTO units (code, name, level, parent_code, source, is_demo, area_km2, geom)"
            f" VALUES (?, ?, ?, ?, ?, ?, ?, {store.geom_from_wkb_sql()})",
            [
                (r.code, r.name, r.level, r.parent_code or None, source_label or batch.source, bool(r.is_demo),
                 float(areas[i]), wkb[i])
                for i, r in enumerate(f.itertuples())
            ],
        )
    return {"units": int(len(f)), "replaced": replaced, "repaired": len(batch.repaired), **removed}


def _remove_units(store: Store, codes: list[str]) -> dict[str, int]:
    """Delete units, their descendants and the roles held on them (inside the caller's transaction)."""
    if not codes:
        return {"removed_units": 0, "removed_roles": 0}
    units = store.query_df("SELECT code, parent_code FROM units")
    children = units.groupby("parent_code")["code"].apply(list).to_dict()
    doomed, frontier = set(codes), set(codes)
    while frontier:
        frontier = {c for p in frontier for c in children.get(p, [])} - doomed
        doomed |= frontier
    marks = ", ".join("?" * len(doomed))
    roles = int(store.scalar(f"SELECT count(*) FROM assignments WHERE unit_code IN ({marks})", list(doomed)))
    store.execute(f"DELETE FROM assignments WHERE unit_code IN ({marks})", list(doomed))
    store.execute(f"DELETE FROM units WHERE code IN ({marks})", list(doomed))
    return {"removed_units": len(doomed), "removed_roles": roles}


def load_shipped(path: Path = SHIPPED_BOUNDARIES) -> UnitBatch:
    """The shipped province, cities and counties of Henan (WGS84)."""
    if not path.is_file():
        raise ValidationError("The shipped boundary file {file} is missing; run scripts/build_boundaries.py.",
                              file=str(path))
    doc = json.loads(path.read_text(encoding="utf-8"))
    feats = doc["features"]
    frame = pd.DataFrame({
        "code": [f["properties"]["code"] for f in feats],
        "name": [f["properties"]["name"] for f in feats],
        "level": [f["properties"]["level"] for f in feats],
        "parent_code": [f["properties"]["parent_code"] or "" for f in feats],
        "is_demo": False,
    })
    geoms = shapely.from_geojson([json.dumps(f["geometry"]) for f in feats])
    return UnitBatch(source=path.name, frame=frame, geoms=np.asarray(geoms, dtype=object))
