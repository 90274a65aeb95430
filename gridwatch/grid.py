"""The H3 grid over administrative boundaries and each cell's owning units.

This is the only module that turns GeoJSON's lng/lat order into H3's lat/lng.

Ownership rule (DESIGN §1, refined in ``DESIGN.md`` of this repository):

* the grid holds every H3 cell whose hexagon overlaps the region's boundary
  or a unit below it, so every point inside the region lies in exactly one cell;
* at the deepest level where every unit above has children with boundaries
  (the *base* level: counties for the province, villages for the demo county),
  a cell belongs to the unit whose boundary it overlaps most, ties going to the
  lower code; a cell of the region that overlaps no unit (a sliver between
  boundaries) goes to the nearest unit;
* levels above the base follow the unit tree (a cell's city is its county's
  city), so owners always nest;
* levels below the base, loaded for some areas only, are decided the same way
  among the children of the cell's owner at the level above.

Overlaps are computed exactly, but only for the cells a boundary passes
through: every other cell lies wholly inside one unit, where its centre is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import h3
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from h3ronpy import ContainmentMode, grid_disk
from h3ronpy.vector import cells_to_coordinates, coordinates_to_cells, wkb_to_cells

from gridwatch.errors import NotFound, ValidationError
from gridwatch.overlap import cells_to_convex_xy, convex_overlap_areas

__all__ = [
    "LEVELS",
    "Units",
    "Grid",
    "build_grid",
    "latlng_to_cells",
    "cells_to_latlng",
    "cells_to_polygons",
    "GridChange",
    "compare_grids",
]

#: administrative levels from the top; cells sit below the last one
LEVELS: tuple[str, ...] = ("province", "city", "county", "township", "village")
#: point batches at least this large are converted to cells in two threads
_PARALLEL_POINTS = 200_000
#: levels that own cells (stored as columns of the ``cells`` table)
OWNER_LEVELS: tuple[str, ...] = ("city", "county", "township", "village")


@dataclass(frozen=True)
class Units:
    """Administrative units as parallel arrays, sorted by code.

    Parameters
    ----------
    codes, names, levels, parents : sequences of str
        ``parents`` holds ``""`` for a unit without a parent.
    geoms : sequence of shapely geometries or None
        WGS84 boundaries (lng/lat); None for a unit defined by its cells only.
    """

    codes: np.ndarray
    names: np.ndarray
    levels: np.ndarray
    parents: np.ndarray
    geoms: np.ndarray

    @classmethod
    def from_records(cls, records: Sequence[dict]) -> "Units":
        """Build from dicts with ``code, name, level, parent_code, geom``."""
        ordered = sorted(records, key=lambda r: r["code"])
        geoms = np.empty(len(ordered), dtype=object)
        geoms[:] = [r.get("geom") for r in ordered]
        return cls(
            codes=np.array([r["code"] for r in ordered], dtype=object),
            names=np.array([r["name"] for r in ordered], dtype=object),
            levels=np.array([r["level"] for r in ordered], dtype=object),
            parents=np.array([r.get("parent_code") or "" for r in ordered], dtype=object),
            geoms=geoms,
        )

    def __len__(self) -> int:
        return len(self.codes)

    def index_of(self, code: str) -> int:
        """Position of ``code``; raises NotFound."""
        i = int(np.searchsorted(self.codes, code))
        if i >= len(self.codes) or self.codes[i] != code:
            raise NotFound("No administrative unit with code {code}.", code=code)
        return i

    def parent_index(self) -> np.ndarray:
        """Index of each unit's parent, -1 where there is none or it is unknown."""
        idx = np.searchsorted(self.codes, self.parents)
        idx = np.minimum(idx, len(self.codes) - 1)
        ok = (self.parents != "") & (self.codes[idx] == self.parents)
        return np.where(ok, idx, -1)


@dataclass
class Grid:
    """The region's cells (sorted) and each cell's owning unit per level.

    ``owner[level]`` holds, per cell, the index into ``units`` of the owning
    unit, or -1 where the level has no unit there.
    """

    region_code: str
    resolution: int
    units: Units
    cells: np.ndarray
    owner: dict[str, np.ndarray] = field(default_factory=dict)
    _index: pd.Index | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.cells)

    def locate_cells(self, cells: np.ndarray) -> np.ndarray:
        """Position of each cell in the grid, -1 for cells outside it (a hash lookup)."""
        if self._index is None:
            self._index = pd.Index(self.cells.view(np.int64))
        return self._index.get_indexer(np.asarray(cells, dtype=np.uint64).view(np.int64))

    def locate(self, lat: np.ndarray, lng: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cells of the points and their positions in the grid (-1 outside).

        Parameters
        ----------
        lat, lng : array_like
            WGS84 degrees.
        """
        cells = latlng_to_cells(lat, lng, self.resolution)
        return cells, self.locate_cells(cells)

    def owner_codes(self, level: str, positions: np.ndarray | None = None) -> np.ndarray:
        """Codes of the owning units at ``level`` ('' where none) for grid positions."""
        idx = self.owner[level] if positions is None else np.where(positions >= 0, self.owner[level][positions], -1)
        codes = np.append(self.units.codes, "")
        return codes[idx]

    def unit_counts(self) -> dict[str, int]:
        """How many distinct units own cells at each level."""
        return {lvl: int(np.unique(o[o >= 0]).size) for lvl, o in self.owner.items() if (o >= 0).any()}


def latlng_to_cells(lat: np.ndarray, lng: np.ndarray, resolution: int) -> np.ndarray:
    """H3 cells of points, vectorised.

    Examples
    --------
    >>> int(latlng_to_cells([34.4], [112.4], 8)[0]) == h3.str_to_int(h3.latlng_to_cell(34.4, 112.4, 8))
    True
    """
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    lng = np.ascontiguousarray(lng, dtype=np.float64)
    bad = ~(np.isfinite(lat) & np.isfinite(lng) & (np.abs(lat) <= 90) & (np.abs(lng) <= 180))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValidationError(
            "Coordinate {index} (lat {lat}, lng {lng}) is not a valid WGS84 position; "
            "latitude must lie within ±90 and longitude within ±180.",
            index=first,
            lat=lat[first],
            lng=lng[first],
        )
    if len(lat) < _PARALLEL_POINTS:
        return np.asarray(coordinates_to_cells(lat, lng, resolution), dtype=np.uint64)
    # h3ronpy releases the GIL: convert the two halves on two cores.
    half = len(lat) // 2
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = pool.map(lambda sl: np.asarray(coordinates_to_cells(lat[sl], lng[sl], resolution), dtype=np.uint64),
                         (slice(0, half), slice(half, None)))
        return np.concatenate(list(parts))


def cells_to_latlng(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of cells as (lat, lng) arrays."""
    batch = cells_to_coordinates(pa.array(np.asarray(cells, dtype=np.uint64)))
    table = pa.record_batch(batch)
    return table.column("lat").to_numpy(), table.column("lng").to_numpy()


def cells_to_polygons(cells: np.ndarray) -> np.ndarray:
    """Hexagons of cells as shapely polygons in lng/lat."""
    xy = cells_to_convex_xy(np.asarray(cells, dtype=np.uint64))
    return shapely.polygons(np.concatenate([xy, xy[:, :1]], axis=1))


def _boundary_spacing_deg(resolution: int) -> float:
    # A boundary whose path inside a hexagon is shorter than a quarter edge cuts
    # off less than 0.5 % of it, far from its centre: the owner by largest
    # overlap is then the owner of the centre, so such cells need no overlap.
    return h3.average_hexagon_edge_length(resolution, unit="km") * 0.25 / 111.32


def _fill_centroids(geoms: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(cell, geometry index) for every cell whose centre lies inside a geometry."""
    lists = pa.array(
        wkb_to_cells(
            pa.array(shapely.to_wkb(geoms)),
            resolution,
            containment_mode=ContainmentMode.ContainsCentroid,
            flatten=False,
        )
    )
    cells = lists.flatten().to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)
    counts = np.diff(lists.offsets.to_numpy())
    return cells, np.repeat(np.arange(len(geoms)), counts)


def _boundary_hits(geoms: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique (cell, geometry index) pairs for cells a geometry's boundary passes through."""
    lines = shapely.segmentize(shapely.boundary(geoms), _boundary_spacing_deg(resolution))
    xy, which = shapely.get_coordinates(lines, return_index=True)
    cells = latlng_to_cells(xy[:, 1], xy[:, 0], resolution)
    return _unique_pairs(cells, which)


def _member(sorted_unique: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values in sorted_unique (both uint64), by binary search instead of np.isin."""
    if len(sorted_unique) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.searchsorted(sorted_unique, values)
    pos = np.minimum(pos, len(sorted_unique) - 1)
    return sorted_unique[pos] == values


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    a = np.sort(a)
    keep = np.ones(len(a), dtype=bool)
    keep[1:] = a[1:] != a[:-1]
    return a[keep]


def _unique_pairs(cells: np.ndarray, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((which, cells))
    cells, which = cells[order], which[order]
    keep = np.ones(len(cells), dtype=bool)
    keep[1:] = (cells[1:] != cells[:-1]) | (which[1:] != which[:-1])
    return cells[keep], which[keep]


def _first_per_cell(cells: np.ndarray, unit: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each distinct cell, the unit with the highest score, ties to the lower unit index."""
    order = np.lexsort((unit, -score, cells))
    cells, unit = cells[order], unit[order]
    first = np.ones(len(cells), dtype=bool)
    first[1:] = cells[1:] != cells[:-1]
    return cells[first], unit[first]


def _assign(
    geoms: np.ndarray,
    resolution: int,
    *,
    allowed: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    weak: int | None = None,
    gap: Callable[[], shapely.Geometry] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Largest-overlap owner among ``geoms`` for every cell that overlaps one of them.

    Returns the cells, sorted, with the index of the winning geometry.
    ``allowed(cells, geom_index) -> bool array`` filters candidate pairs (used to
    keep a township among the children of the cell's county). The geometry
    ``weak`` (the region outline) wins a cell only where no other overlaps it;
    only the part ``gap()`` returns (what the others leave uncovered) is filled by centre.

    The boundary sampling and the gap run in a second thread (GEOS releases the
    GIL) while h3ronpy fills the units.
    """
    with ThreadPoolExecutor(max_workers=2) as pool:
        hits = pool.submit(_boundary_hits, geoms, resolution)
        uncovered = pool.submit(gap) if gap is not None else None
        fill = geoms if weak is None else np.delete(geoms, weak)
        c_cells, c_geom = _fill_centroids(fill, resolution)
        if weak is not None:
            c_geom[c_geom >= weak] += 1
            g_cells, _ = _fill_centroids(np.array([uncovered.result() if uncovered else geoms[weak]]), resolution)
            c_cells = np.concatenate([c_cells, g_cells])
            c_geom = np.concatenate([c_geom, np.full(len(g_cells), weak, dtype=c_geom.dtype)])
        b_cells, b_geom = hits.result()
    border = _sorted_unique(b_cells)
    # Centre owners of border cells are candidates too.
    in_border = _member(border, c_cells)
    cand_cells = np.concatenate([b_cells, c_cells[in_border]])
    cand_geom = np.concatenate([b_geom, c_geom[in_border]])
    cand_cells, cand_geom = _unique_pairs(cand_cells, cand_geom)
    if allowed is not None:
        ok = allowed(cand_cells, cand_geom)
        cand_cells, cand_geom = cand_cells[ok], cand_geom[ok]
    hex_pos = np.searchsorted(border, cand_cells)
    areas = convex_overlap_areas(cells_to_convex_xy(border), geoms, hex_pos, cand_geom)
    positive = areas > 0
    if weak is not None:
        areas = np.where(cand_geom == weak, np.finfo(np.float64).tiny, areas)
    won_cells, won_geom = _first_per_cell(cand_cells[positive], cand_geom[positive], areas[positive])
    # Interior cells: centre inside exactly one geometry and no boundary through them.
    inner = ~in_border
    i_cells, i_geom = c_cells[inner], c_geom[inner]
    if allowed is not None:
        ok = allowed(i_cells, i_geom)
        i_cells, i_geom = i_cells[ok], i_geom[ok]
    i_cells, i_geom = _first_per_cell(i_cells, i_geom, np.zeros(len(i_cells)))
    cells = np.concatenate([won_cells, i_cells])
    owner = np.concatenate([won_geom, i_geom])
    order = np.argsort(cells, kind="stable")
    return cells[order], owner[order]


def _uncovered(region: shapely.Geometry, units: np.ndarray) -> shapely.Geometry:
    """The part of the region no unit covers (slivers between boundaries that do not quite meet)."""
    return shapely.difference(region, shapely.union_all(units))


def _complete_outline(
    cells: np.ndarray, slot: np.ndarray, outline: shapely.Geometry, outline_slot: int, resolution: int
) -> tuple[np.ndarray, np.ndarray]:
    """Add the cells the outline only grazes (a corner shorter than the boundary spacing).

    Such a cell overlaps the region by a sliver and has neither its centre
    inside nor a boundary vertex in it, so the fill misses it; it always
    neighbours a cell the outline does pass through.
    """
    hit, _ = _boundary_hits(np.array([outline], dtype=object), resolution)
    ring = _sorted_unique(np.asarray(grid_disk(pa.array(_sorted_unique(hit)), 1, flatten=True), dtype=np.uint64))
    ring = ring[~_member(cells, ring)]
    if not len(ring):
        return cells, slot
    areas = convex_overlap_areas(
        cells_to_convex_xy(ring), np.array([outline], dtype=object), np.arange(len(ring)), np.zeros(len(ring), int)
    )
    extra = ring[areas > 0]
    at = np.searchsorted(cells, extra)
    return np.insert(cells, at, extra), np.insert(slot, at, outline_slot)


def _largest_or_nearest(geoms: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """For cells the fill left without owner: the geometry overlapping most, else the nearest."""
    hexes = cells_to_polygons(cells)
    h, g = shapely.STRtree(geoms).query(hexes, predicate="intersects")
    areas = convex_overlap_areas(cells_to_convex_xy(cells), geoms, h, g)
    out = _nearest(geoms, cells)
    won_h, won_g = _first_per_cell(h[areas > 0], g[areas > 0], areas[areas > 0])
    out[won_h] = won_g
    return out


def _nearest(geoms: np.ndarray, cells: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
    """Index into ``geoms`` (or into ``candidates``) of the geometry nearest each cell's centre."""
    if len(cells) == 0:
        return np.zeros(0, dtype=np.int64)
    pool = np.arange(len(geoms)) if candidates is None else np.asarray(candidates)
    lat, lng = cells_to_latlng(cells)
    tree = shapely.STRtree(geoms[pool])
    src, dst = tree.query_nearest(shapely.points(lng, lat), all_matches=True)
    # all_matches returns equidistant ties: keep the lowest (lowest code) per point.
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    first = np.ones(len(src), dtype=bool)
    first[1:] = src[1:] != src[:-1]
    out = np.empty(len(cells), dtype=np.int64)
    out[src[first]] = pool[dst[first]]
    return out


def build_grid(units: Units, region_code: str, resolution: int = 8) -> Grid:
    """Build the H3 grid of a region and decide every cell's owners.

    Parameters
    ----------
    units : Units
        All known units; those below ``region_code`` with boundaries take part.
    region_code : str
        The region (a unit with a boundary).
    resolution : int
        H3 resolution.

    Returns
    -------
    Grid

    Raises
    ------
    NotFound
        The region code is unknown.
    ValidationError
        The region has no boundary.
    """
    r = units.index_of(region_code)
    region_geom = units.geoms[r]
    if region_geom is None or shapely.is_empty(region_geom):
        raise ValidationError(
            "The region {code} ({name}) has no boundary; load one before building the grid.",
            code=region_code,
            name=units.names[r],
        )
    parent = units.parent_index()
    has_geom = np.array([g is not None and not shapely.is_empty(g) for g in units.geoms], dtype=bool)
    region_level = LEVELS.index(units.levels[r])
    below = LEVELS[region_level + 1 :]

    # children[i] = indices of units whose parent is i and that have a boundary
    children: dict[int, list[int]] = {}
    for i in np.flatnonzero(has_geom & (parent >= 0)):
        children.setdefault(int(parent[i]), []).append(int(i))

    # The base level: the deepest one where every unit above has children with boundaries.
    frontier = [r]
    base_levels: list[str] = []
    for level in below:
        nxt = [c for u in frontier for c in children.get(u, []) if units.levels[c] == level]
        if not nxt or any(not any(units.levels[c] == level for c in children.get(u, [])) for u in frontier):
            break
        base_levels.append(level)
        frontier = nxt

    base = np.array(frontier if base_levels else [r], dtype=np.int64)
    geoms = np.append(units.geoms[base], region_geom) if base_levels else np.array([region_geom], dtype=object)
    region_slot = len(geoms) - 1
    cells, slot = _assign(
        geoms, resolution, weak=region_slot if base_levels else None,
        gap=(lambda: _uncovered(region_geom, geoms[:region_slot])) if base_levels else None,
    )
    cells, slot = _complete_outline(cells, slot, region_geom, region_slot, resolution)
    if base_levels:
        # Cells won by the region outline alone lie in a sliver no base unit covers.
        stray = np.flatnonzero(slot == region_slot)
        if len(stray):
            slot[stray] = _largest_or_nearest(geoms[:region_slot], cells[stray])
        base_owner = base[slot]
    else:
        base_owner = np.full(len(cells), r, dtype=np.int64)

    owner: dict[str, np.ndarray] = {}
    if base_levels:
        owner[base_levels[-1]] = base_owner
        walk = base_owner
        for level in reversed(base_levels[:-1]):
            walk = parent[walk]
            owner[level] = walk
    for level in [lvl for lvl in OWNER_LEVELS if lvl not in owner and LEVELS.index(lvl) <= region_level]:
        # Levels at or above the region: the region's own ancestors.
        anc = r
        while anc >= 0 and units.levels[anc] != level:
            anc = int(parent[anc])
        owner[level] = np.full(len(cells), anc, dtype=np.int64)

    # Partial levels below the base.
    upper = base_levels[-1] if base_levels else units.levels[r]
    for level in below[len(base_levels) :]:
        members = np.flatnonzero(has_geom & (units.levels == level) & (parent >= 0))
        upper_owner = owner.get(upper, base_owner)
        members = members[np.isin(parent[members], _sorted_unique(upper_owner))]
        result = np.full(len(cells), -1, dtype=np.int64)
        if len(members):
            lookup_parent = parent[members]

            def allowed(c: np.ndarray, g: np.ndarray, _lp: np.ndarray = lookup_parent) -> np.ndarray:
                pos = np.searchsorted(cells, c)
                pos = np.minimum(pos, len(cells) - 1)
                inside = cells[pos] == c
                return inside & (upper_owner[pos] == _lp[g])

            sub_cells, sub_slot = _assign(units.geoms[members], resolution, allowed=allowed)
            pos = np.searchsorted(cells, sub_cells)
            result[pos] = members[sub_slot]
            # Cells of a parent that has children at this level but none overlapping them.
            parents_with_kids = _sorted_unique(lookup_parent)
            missing = np.flatnonzero((result < 0) & _member(parents_with_kids, upper_owner))
            for p in np.unique(upper_owner[missing]):
                these = missing[upper_owner[missing] == p]
                kids = members[lookup_parent == p]
                result[these] = _nearest(units.geoms, cells[these], kids)
        owner[level] = result
        if not (result >= 0).any():
            del owner[level]
            break
        upper = level
    return Grid(region_code=region_code, resolution=resolution, units=units, cells=cells, owner=owner)


@dataclass(frozen=True)
class GridChange:
    """What a rebuild changed: cells added and removed, and moves per level."""

    added: int
    removed: int
    moved: dict[str, int]
    examples: list[dict]

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"added": self.added, "removed": self.removed, "moved": self.moved, "examples": self.examples}


def compare_grids(
    old_cells: np.ndarray, old_owner: dict[str, np.ndarray], new: Grid, *, examples: int = 20
) -> GridChange:
    """Compare a stored grid (cells and owner codes per level) with a new one."""
    old_cells = np.asarray(old_cells, dtype=np.uint64)
    common, i_old, i_new = np.intersect1d(old_cells, new.cells, assume_unique=True, return_indices=True)
    moved: dict[str, int] = {}
    sample: list[dict] = []
    for level in OWNER_LEVELS:
        before = np.asarray(old_owner.get(level, np.full(len(old_cells), "", dtype=object)), dtype=object)[i_old]
        after = new.owner_codes(level, i_new) if level in new.owner else np.full(len(common), "", dtype=object)
        before = np.where(before == None, "", before)  # noqa: E711
        diff = np.flatnonzero(before != after)
        if len(diff):
            moved[level] = int(len(diff))
            for j in diff[: max(0, examples - len(sample))]:
                sample.append(
                    {"cell": h3.int_to_str(int(common[j])), "level": level, "from": before[j], "to": after[j]}
                )
    return GridChange(
        added=int(len(new.cells) - len(common)),
        removed=int(len(old_cells) - len(common)),
        moved=moved,
        examples=sample,
    )
