"""No-burn zones and coal sale points: reading their features, the zones' cells, and the exact point-in-zone test.

Zone types: ``high_polluting_fuel`` (高污染燃料禁燃区, where coal and other high-polluting fuels may not be burnt or
sold loose) and ``straw_burning`` (秸秆禁烧区). Henan bans open straw burning province-wide, so the core treats the
whole region as the straw zone when no straw zones are published.

:class:`ZoneIndex` answers "is this point inside a zone" exactly and fast: cells wholly inside a zone decide their
points by the cell alone; only points in cells a zone boundary crosses are tested against the exact polygons
(prepared, vectorised ``shapely.contains_xy`` over point–zone pairs).

Examples
--------
>>> import shapely
>>> index = ZoneIndex.build(np.array([shapely.box(112.30, 34.30, 112.40, 34.40)]), resolution=8)
>>> lat, lng = np.array([34.35, 34.30001, 34.45]), np.array([112.35, 112.35, 112.35])
>>> index.contains(lat, lng).tolist()
[True, True, False]
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from h3ronpy import grid_disk

from gridwatch.errors import ValidationError
from gridwatch.grid import _boundary_hits, _fill_centroids, cells_to_polygons, latlng_to_cells
from layers.base import LayerRead, attribute_column, rejected_frame

__all__ = ["ZONE_TYPES", "ZONE_TYPE_NAMES", "zone_type_of", "zones_from_features", "coal_points_from_features",
           "zone_cells", "ZoneIndex"]

#: the zone types, in the order the plans name them
ZONE_TYPES = ("high_polluting_fuel", "straw_burning")

#: what files call each zone type (compared after removing spaces, case-insensitively; substrings count)
ZONE_TYPE_NAMES: dict[str, tuple[str, ...]] = {
    "high_polluting_fuel": ("high_polluting_fuel", "高污染燃料禁燃区", "高污染燃料", "禁燃区", "禁煤区",
                            "high-polluting-fuel", "high polluting fuel", "fuel"),
    "straw_burning": ("straw_burning", "秸秆禁烧区", "秸秆禁烧", "禁烧区", "straw"),
}

#: column names recognised as a zone's type, a feature's name, and a sale point's kind of coal
TYPE_FIELDS = ("zone_type", "type", "类型", "禁燃类型", "zone", "kind")
NAME_FIELDS = ("name", "名称", "zone_name", "区名", "点位名称", "商户名称", "title")
LOOSE_FIELDS = ("loose_coal", "loose", "散煤", "是否散煤", "coal_type", "煤炭类型")

#: buffer (degrees, ≈ 0.2 m) around a hexagon drawn with straight lng/lat edges, covering H3's own cell outline
_HEX_MARGIN = 2e-6


def zone_type_of(values: np.ndarray) -> np.ndarray:
    """The zone type named by each value (``""`` when none is recognised); exact names first, then substrings."""
    text = pd.Series(np.asarray(values, dtype=object)).fillna("").astype(str).str.replace(r"\s+", "", regex=True)
    lowered = text.str.lower()
    out = np.full(len(text), "", dtype=object)
    for zone_type, names in ZONE_TYPE_NAMES.items():  # exact names
        out[(out == "") & lowered.isin([n.replace(" ", "").lower() for n in names]).to_numpy()] = zone_type
    for name in ("高污染燃料", "禁煤", "秸秆", "禁烧", "禁燃", "fuel", "straw"):  # then substrings, specific first
        zone_type = "straw_burning" if name in ("秸秆", "禁烧", "straw") else "high_polluting_fuel"
        out[(out == "") & lowered.str.contains(name, regex=False).to_numpy()] = zone_type
    return out


def _names(attributes: pd.DataFrame, name_field: str | None, feature_no: np.ndarray) -> np.ndarray:
    column = attribute_column(attributes, name_field, NAME_FIELDS)
    if column is None:
        return np.array([f"#{n}" for n in feature_no], dtype=object)
    names = attributes[column].fillna("").astype(str).str.strip().to_numpy(dtype=object)
    return np.where(names == "", np.array([f"#{n}" for n in feature_no], dtype=object), names)


def _raw(attributes: pd.DataFrame, rows: np.ndarray) -> list[str]:
    if not len(rows) or attributes.shape[1] == 0:
        return [""] * len(rows)
    sub = attributes.iloc[rows]
    return sub.astype(object).where(sub.notna(), "").astype(str).agg(" | ".join, axis=1).tolist()


def zones_from_features(geoms: np.ndarray, attributes: pd.DataFrame, *, source: str, feature_no: np.ndarray,
                        zone_type: str | None = None, type_field: str | None = None,
                        name_field: str | None = None) -> LayerRead:
    """Turn WGS84 polygons and their attributes into the no-burn zone frame.

    Parameters
    ----------
    geoms : ndarray of shapely (Multi)Polygons, WGS84
    attributes : DataFrame
    source : str
        File name.
    feature_no : ndarray of int
        1-based feature numbers in the file (reported with rejected rows).
    zone_type : str, optional
        One type for every feature (``high_polluting_fuel`` or ``straw_burning``); else read per feature from
        ``type_field`` (or a column named like ``zone_type``/``类型``), recognising Chinese names such as
        高污染燃料禁燃区 and 秸秆禁烧区.
    type_field, name_field : str, optional
        Columns holding the type and the name.

    Returns
    -------
    LayerRead
        Frame columns ``geometry``, ``zone_type``, ``name``, ``feature_no``; features whose type is not
        recognised are rejected (``unknown_zone_type``).
    """
    n = len(geoms)
    if zone_type is not None:
        types = np.full(n, zone_type if zone_type in ZONE_TYPES else "", dtype=object)
        if zone_type not in ZONE_TYPES:
            raise ValidationError("Unknown zone type {zone_type!r}; use one of {types}.", zone_type=zone_type,
                                  types=", ".join(ZONE_TYPES))
        column = None
    else:
        column = attribute_column(attributes, type_field, TYPE_FIELDS)
        if column is None:
            raise ValidationError(
                "{file} has no zone type column (looked for {names}); choose the column or one type for all "
                "features ({types}).", file=source, names=", ".join(TYPE_FIELDS), types=", ".join(ZONE_TYPES))
        types = zone_type_of(attributes[column].to_numpy(dtype=object))
    bad = types == ""
    frame = pd.DataFrame({
        "geometry": np.asarray(geoms, dtype=object)[~bad],
        "zone_type": pd.array(types[~bad].tolist(), dtype="str"),
        "name": pd.array(_names(attributes, name_field, feature_no)[~bad].tolist(), dtype="str"),
        "feature_no": np.asarray(feature_no, dtype=np.int64)[~bad],
    })
    rows = np.flatnonzero(bad)
    values = attributes[column].astype(str).to_numpy()[rows] if column is not None else [""] * len(rows)
    rejected = rejected_frame(np.asarray(feature_no)[rows], ["unknown_zone_type"] * len(rows),
                              [f"The zone type {v!r} is neither high_polluting_fuel (高污染燃料禁燃区) nor "
                               f"straw_burning (秸秆禁烧区)." for v in values], _raw(attributes, rows))
    return LayerRead(source=source, frame=frame, rejected=rejected, read=n)


_TRUE = ("1", "true", "yes", "y", "t", "是", "散煤", "loose", "loose_coal")
_FALSE = ("0", "false", "no", "n", "f", "否", "")


def coal_points_from_features(geoms: np.ndarray, attributes: pd.DataFrame, *, source: str, feature_no: np.ndarray,
                              name_field: str | None = None, loose_field: str | None = None) -> LayerRead:
    """Turn WGS84 points into the coal sale point frame.

    Every point is a loose-coal (散煤) sale point unless a loose-coal column (``loose_field`` or one named like
    ``loose_coal``/``散煤``) says otherwise (是/否, yes/no, 1/0, or a coal type containing 散煤).

    Returns
    -------
    LayerRead
        Frame columns ``geometry``, ``name``, ``loose_coal`` (bool), ``feature_no``.
    """
    n = len(geoms)
    column = attribute_column(attributes, loose_field, LOOSE_FIELDS)
    if column is None:
        loose = np.ones(n, dtype=bool)
    else:
        text = attributes[column].fillna("").astype(str).str.strip().str.lower()
        loose = (text.isin(_TRUE) | text.str.contains("散煤", regex=False)).to_numpy()
    frame = pd.DataFrame({
        "geometry": np.asarray(geoms, dtype=object),
        "name": pd.array(_names(attributes, name_field, feature_no).tolist(), dtype="str"),
        "loose_coal": loose,
        "feature_no": np.asarray(feature_no, dtype=np.int64),
    })
    return LayerRead(source=source, frame=frame, rejected=rejected_frame([], [], [], []), read=n)


# -- cells and the exact test ----------------------------------------------------------------------------------

def zone_cells(geoms: np.ndarray, resolution: int) -> pd.DataFrame:
    """Every (cell, zone) pair where the cell lies inside or touches the zone, with ``border`` when the zone's
    boundary crosses the cell.

    Candidates are the cells whose centre lies in a zone plus the ring around every cell the zone's boundary
    passes (sampled every quarter edge: a boundary clipping a hexagon passes within a quarter edge of it, so
    the ring catches it); candidates near the boundary are classified exactly with shapely against the hexagon
    widened by ≈ 0.2 m, so every cell holding a point of the zone is listed and an interior cell holds only
    points strictly inside.

    Returns
    -------
    DataFrame
        ``cell`` (uint64), ``zone`` (int, position in ``geoms``), ``border`` (bool), sorted by cell and zone.
    """
    geoms = np.asarray(geoms, dtype=object)
    if not len(geoms):
        return pd.DataFrame({"cell": np.array([], dtype=np.uint64), "zone": np.array([], dtype=np.int64),
                             "border": np.array([], dtype=bool)})
    fill_cells, fill_zone = _fill_centroids(geoms, resolution)
    hit_cells, hit_zone = _boundary_hits(geoms, resolution)
    rings = pa.array(grid_disk(pa.array(hit_cells.astype(np.uint64)), 1, flatten=False))
    ring_cells = rings.flatten().to_numpy(zero_copy_only=False).astype(np.uint64)
    ring_zone = np.repeat(hit_zone, np.diff(rings.offsets.to_numpy()))
    near = pd.DataFrame({"cell": ring_cells, "zone": ring_zone}).drop_duplicates(ignore_index=True)
    near_key = pd.MultiIndex.from_arrays([near.cell.to_numpy(), near.zone.to_numpy()])
    fill_key = pd.MultiIndex.from_arrays([fill_cells, fill_zone])
    far = ~fill_key.isin(near_key)
    shapely.prepare(geoms)
    hexes = shapely.buffer(cells_to_polygons(near.cell.to_numpy()), _HEX_MARGIN, quad_segs=1)
    zones = geoms[near.zone.to_numpy()]
    touches = shapely.intersects(zones, hexes)
    covered = touches & shapely.covers(zones, hexes)
    out = pd.concat([
        pd.DataFrame({"cell": fill_cells[far], "zone": fill_zone[far], "border": False}),
        pd.DataFrame({"cell": near.cell.to_numpy()[touches], "zone": near.zone.to_numpy()[touches],
                      "border": ~covered[touches]}),
    ], ignore_index=True)
    out["cell"] = out.cell.astype(np.uint64)
    out["zone"] = out.zone.astype(np.int64)
    return out.sort_values(["cell", "zone"], ignore_index=True)


#: pairs from which the exact test is split over two threads (shapely releases the GIL)
_PARALLEL_PAIRS = 50_000


def _contains_pairs(geoms: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``shapely.contains_xy`` element by element, on two cores when there are many pairs."""
    if len(geoms) < _PARALLEL_PAIRS:
        return shapely.contains_xy(geoms, x, y)
    half = len(geoms) // 2
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = pool.map(lambda sl: shapely.contains_xy(geoms[sl], x[sl], y[sl]),
                         (slice(0, half), slice(half, None)))
        return np.concatenate(list(parts))


@dataclass
class ZoneIndex:
    """Cells of a set of zones, for the exact point-in-zone test.

    Attributes
    ----------
    resolution : int
        H3 resolution of the cells.
    geoms : ndarray of shapely polygons (prepared), WGS84
    cells : ndarray of uint64
        Sorted cells inside or touching any zone.
    interior : ndarray of bool
        Per cell: wholly inside some zone (every point of it is in a zone).
    offsets, pair_zone : ndarray of int
        For cell ``i`` that is not interior, the zones whose boundary crosses it are
        ``pair_zone[offsets[i]:offsets[i + 1]]``.
    """

    resolution: int
    geoms: np.ndarray
    cells: np.ndarray
    interior: np.ndarray
    offsets: np.ndarray
    pair_zone: np.ndarray
    #: per H3 base cell (0–121): its row in the bitmaps, or -1 when no zone cell lies in it
    base_row: np.ndarray | None = None
    #: packed bits per (base cell row, the cell's digits below the base cell): any zone cell / an interior one
    flagged_bits: np.ndarray | None = None
    interior_bits: np.ndarray | None = None

    @classmethod
    def build(cls, geoms: np.ndarray, resolution: int, pairs: pd.DataFrame | None = None) -> "ZoneIndex":
        """Index ``geoms`` (WGS84 polygons) at ``resolution``; ``pairs`` from :func:`zone_cells` if known."""
        geoms = np.asarray(geoms, dtype=object)
        pairs = zone_cells(geoms, resolution) if pairs is None else pairs
        cell = pairs.cell.to_numpy(dtype=np.uint64)
        border = pairs.border.to_numpy(dtype=bool)
        first = np.ones(len(cell), dtype=bool)
        first[1:] = cell[1:] != cell[:-1]
        starts = np.flatnonzero(first)
        cells = cell[starts]
        interior = np.zeros(len(cells), dtype=bool)
        group = np.cumsum(first) - 1
        np.logical_or.at(interior, group, ~border)
        # zones to test for cells that are not interior: the border pairs of those cells
        keep = border & ~interior[group]
        pair_zone = pairs.zone.to_numpy(dtype=np.int64)[keep]
        counts = np.bincount(group[keep], minlength=len(cells))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        shapely.prepare(geoms)
        index = cls(resolution, geoms, cells, interior, offsets, pair_zone)
        index._build_bitmaps()
        return index

    def _key(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(bitmap row, bit position) of cells: the base cell's row and the cell's ``3 × resolution`` digit bits."""
        digits = (cells >> np.uint64(3 * (15 - self.resolution))) & np.uint64((1 << (3 * self.resolution)) - 1)
        row = self.base_row[((cells >> np.uint64(45)) & np.uint64(127)).astype(np.intp)]
        return row, digits.astype(np.int64)

    def _build_bitmaps(self) -> None:
        """Two bit arrays per base cell holding zone cells (``2^(3 × resolution)`` bits each, 2 MiB at
        resolution 8), so a point's cell is looked up by address instead of a binary search."""
        if self.resolution > 9 or not len(self.cells):
            return  # larger bitmaps would cost more memory than the binary search costs time
        bases = np.unique((self.cells >> np.uint64(45)) & np.uint64(127)).astype(np.intp)
        self.base_row = np.full(128, -1, dtype=np.int64)
        self.base_row[bases] = np.arange(len(bases))
        row, digits = self._key(self.cells)
        width = 1 << (3 * self.resolution)
        flat = row * width + digits
        flagged = np.zeros(len(bases) * width, dtype=bool)
        flagged[flat] = True
        inner = np.zeros(len(bases) * width, dtype=bool)
        inner[flat[self.interior]] = True
        self.flagged_bits = np.packbits(flagged, bitorder="little")
        self.interior_bits = np.packbits(inner, bitorder="little")

    def contains(self, lat: np.ndarray, lng: np.ndarray, cells: np.ndarray | None = None) -> np.ndarray:
        """Whether each point lies inside a zone (exactly: points on a zone's boundary are outside).

        Parameters
        ----------
        lat, lng : ndarray of float
            WGS84 positions.
        cells : ndarray of uint64 or int64, optional
            Their H3 cells at this index's resolution, when known (computed otherwise).
        """
        lat = np.asarray(lat, dtype=np.float64)
        lng = np.asarray(lng, dtype=np.float64)
        out = np.zeros(len(lat), dtype=bool)
        if not len(self.cells) or not len(lat):
            return out
        if cells is None:
            cells = latlng_to_cells(lat, lng, self.resolution)
        cells = np.asarray(cells).view(np.uint64) if np.asarray(cells).dtype == np.int64 else np.asarray(
            cells, dtype=np.uint64)
        if self.flagged_bits is not None:
            row, digits = self._key(cells)
            known = row >= 0
            flat = np.where(known, row, 0) * (1 << (3 * self.resolution)) + digits
            byte, bit = flat >> 3, (flat & 7).astype(np.uint8)
            hit = known & ((self.flagged_bits[byte] >> bit) & 1).astype(bool)
            inner = known & ((self.interior_bits[byte] >> bit) & 1).astype(bool)
            out[inner] = True
            border = np.flatnonzero(hit & ~inner)
            pos = np.zeros(len(cells), dtype=np.intp)
            pos[border] = np.searchsorted(self.cells, cells[border])
        else:
            pos = np.searchsorted(self.cells, cells)
            np.minimum(pos, len(self.cells) - 1, out=pos)
            hit = self.cells[pos] == cells
            inner = self.interior[pos]
            out[hit & inner] = True
            border = np.flatnonzero(hit & ~inner)
        if len(border):
            p = pos[border]
            start = self.offsets[p]
            counts = self.offsets[p + 1] - start
            total = int(counts.sum())
            point = np.repeat(border, counts)
            within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
            zone = self.pair_zone[np.repeat(start, counts) + within]
            inside = _contains_pairs(self.geoms[zone], lng[point], lat[point])
            out[point[inside]] = True
        return out

    __call__ = contains
