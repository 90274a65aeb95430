"""Triage of satellite fire points: jurisdiction, duplicates, filters with reasons, incidents (pure, vectorised).

A detection's jurisdiction is its cell's owner. Detections are merged when
they repeat (same latitude, longitude, acquisition time and satellite), kept
but not dispatched when they are low-confidence or likely static heat sources
(FIRMS type 2, or a cell burning on many separate days), and grouped into one
incident per cell and overpass (satellite and acquisition time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridwatch.grid import Grid
from gridwatch.tasks import DispatchPolicy

__all__ = ["REASONS", "TriageResult", "fire_keys", "incident_keys", "triage", "observed_passes", "hash_columns"]

#: why a detection inside the region is not dispatched
REASONS = ("static_source", "persistent_heat", "low_confidence")
FIRE_TYPE_STATIC = 2
#: detections within this many degrees of the region show that a pass covered it (MODIS swath ≈ 2,330 km)
PASS_MARGIN_DEG = 5.0

ZoneTest = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a well-spread 64-bit hash of uint64 values."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def hash_columns(*columns: np.ndarray) -> np.ndarray:
    """Combine integer columns into one signed 64-bit key per row.

    Examples
    --------
    >>> a = hash_columns(np.array([1, 2]), np.array([3, 3]))
    >>> a.dtype, a[0] != a[1]
    (dtype('int64'), np.True_)
    """
    h = np.zeros(len(columns[0]), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for col in columns:
            h = _mix(h ^ _mix(np.asarray(col).astype(np.int64).view(np.uint64)))
    return h.view(np.int64)


def _satellite_codes(satellite: np.ndarray) -> np.ndarray:
    """A stable integer per satellite name (its first 8 UTF-8 bytes), via a hash factorisation."""
    codes, names = pd.factorize(np.asarray(satellite, dtype=object))
    stable = np.array([int.from_bytes(str(n).encode()[:8].ljust(8, b"\0"), "little") & 0x7FFFFFFFFFFFFFFF
                       for n in names], dtype=np.int64)
    return stable[codes]


def _utc_minutes(times: pd.Series | np.ndarray) -> np.ndarray:
    """Whole UTC minutes since the epoch."""
    naive = pd.DatetimeIndex(pd.to_datetime(times, utc=True)).tz_convert(None)
    return naive.to_numpy().astype("datetime64[m]").astype(np.int64)


def fire_keys(lat: np.ndarray, lng: np.ndarray, acq_time: pd.Series, satellite: np.ndarray) -> np.ndarray:
    """The duplicate key of detections: latitude and longitude to 1e-5°, minute of acquisition, satellite."""
    minutes = _utc_minutes(acq_time)
    return hash_columns(np.round(np.asarray(lat) * 1e5), np.round(np.asarray(lng) * 1e5), minutes,
                        _satellite_codes(satellite))


def incident_keys(cell: np.ndarray, acq_time: pd.Series, satellite: np.ndarray) -> np.ndarray:
    """The key of an incident: one per cell and overpass."""
    minutes = _utc_minutes(acq_time)
    return hash_columns(np.asarray(cell).view(np.int64), minutes, _satellite_codes(satellite))


@dataclass
class TriageResult:
    """Detections with everything decided, and the counts the user sees."""

    points: pd.DataFrame  # new detections (duplicates removed) with cell, owners, flags, dispatch, reason
    incidents: pd.DataFrame  # one row per new incident among the dispatched detections
    duplicates: int
    outside_region: int
    not_dispatched: dict[str, int]

    def summary(self) -> dict:
        """The counts of the ingest report."""
        return {
            "accepted": int(len(self.points)),
            "duplicates": self.duplicates,
            "outside_region": self.outside_region,
            "not_dispatched": self.not_dispatched,
            "incidents": int(len(self.incidents)),
        }


def triage(
    frame: pd.DataFrame,
    grid: Grid,
    *,
    policy: DispatchPolicy,
    known_keys: np.ndarray,
    burn_days: Callable[[np.ndarray], pd.DataFrame] | None = None,
    zone_test: ZoneTest | None = None,
    keys: np.ndarray | None = None,
) -> TriageResult:
    """Decide jurisdiction, duplicates, filters and incidents for detections read from a file.

    Parameters
    ----------
    frame : DataFrame
        Accepted rows of the FIRMS reader.
    grid : Grid
        The region's grid.
    policy : DispatchPolicy
        Thresholds and key periods.
    known_keys : ndarray of int64
        Keys of detections already stored (duplicates of these are dropped).
    burn_days : callable, optional
        ``burn_days(cells) -> DataFrame(cell, day)``: stored local days with
        detections in these cells within the persistence window.
    zone_test : callable, optional
        ``zone_test(lat, lng, cells) -> bool array``: inside a no-burn zone.
    keys : ndarray of int64, optional
        The rows' :func:`fire_keys`, when the caller has them already.
    """
    keys = keys if keys is not None else fire_keys(frame.latitude.to_numpy(), frame.longitude.to_numpy(), frame.acq_time,
                     frame.satellite.to_numpy())
    # hash-based (pandas) rather than sort-based (np.unique) duplicate tests: this runs on millions of rows
    new = ~pd.Index(keys).duplicated(keep="first")
    if len(known_keys):
        new &= ~pd.Index(keys).isin(known_keys)
    fresh = np.flatnonzero(new)
    duplicates = int(len(frame) - len(fresh))
    pts = frame.iloc[fresh].reset_index(drop=True).copy()
    pts["key"] = keys[fresh]
    lat, lng = pts.latitude.to_numpy(), pts.longitude.to_numpy()
    cells, pos = grid.locate(lat, lng)
    pts["cell"] = cells.view(np.int64)
    inside = pos >= 0
    pts["in_region"] = inside
    for level in ("county", "township", "village"):
        codes = grid.owner_codes(level, pos) if level in grid.owner else np.full(len(pts), "", dtype=object)
        pts[f"{level}_code"] = np.where(codes == "", None, codes)
    zone = zone_test(lat, lng, cells) if zone_test is not None else np.zeros(len(pts), dtype=bool)
    pts["in_no_burn_zone"] = np.asarray(zone, dtype=bool) & inside

    reason = np.full(len(pts), "", dtype=object)
    static = pts.fire_type.fillna(-1).to_numpy() == FIRE_TYPE_STATIC
    persistent = _persistent(pts, inside, policy, burn_days)
    low = (pts.confidence_class.to_numpy() == "low") & (not policy.dispatch_low_confidence)
    reason[low] = "low_confidence"
    reason[persistent] = "persistent_heat"
    reason[static] = "static_source"
    reason[~inside] = ""
    pts["reason"] = reason
    pts["dispatch"] = np.where(~inside, "outside_region", np.where(reason != "", "not_dispatched", "dispatched"))

    go = (pts.dispatch == "dispatched").to_numpy()
    pts["incident_key"] = pd.array(
        np.where(go, incident_keys(cells, pts.acq_time, pts.satellite.to_numpy()), 0), dtype="Int64")
    pts.loc[~go, "incident_key"] = pd.NA
    incidents = (
        pts[go].groupby("incident_key", sort=True)
        .agg(cell=("cell", "first"), satellite=("satellite", "first"), acq_time=("acq_time", "first"),
             points=("key", "size"), max_frp=("frp", "max"), in_no_burn_zone=("in_no_burn_zone", "any"),
             township_code=("township_code", "first"), village_code=("village_code", "first"))
        .reset_index().rename(columns={"incident_key": "key"})
    )
    counts = pd.Series(reason[inside & (reason != "")]).value_counts()
    return TriageResult(
        points=pts,
        incidents=incidents,
        duplicates=duplicates,
        outside_region=int((~inside).sum()),
        not_dispatched={r: int(counts.get(r, 0)) for r in REASONS if counts.get(r, 0)},
    )


def _persistent(pts: pd.DataFrame, inside: np.ndarray, policy: DispatchPolicy,
                burn_days: Callable[[np.ndarray], pd.DataFrame] | None) -> np.ndarray:
    """Detections in cells that burn on ``persistent_days`` or more separate local days."""
    if not inside.any() or policy.persistent_days <= 0:
        return np.zeros(len(pts), dtype=bool)
    days = pd.DataFrame({"cell": pts.cell.to_numpy()[inside],
                         "day": policy.local_dates(pts.acq_time[inside])})
    if burn_days is not None:
        days = pd.concat([days, burn_days(np.unique(days.cell.to_numpy()))], ignore_index=True)
    per_cell = days.drop_duplicates().groupby("cell").size()
    hot = per_cell.index[per_cell.to_numpy() >= policy.persistent_days].to_numpy()
    return inside & pd.Index(pts.cell.to_numpy()).isin(hot)


def observed_passes(points: pd.DataFrame, bounds: tuple[float, float, float, float]) -> pd.DataFrame:
    """Satellite passes the new detections show over the region: (satellite, acq_time, detections in the region).

    A FIRMS file lists detections only, so a pass is known from its detections:
    any detection within :data:`PASS_MARGIN_DEG` of the region shows the pass
    covered it, even when none fell inside. ``points`` are triaged detections
    (with ``in_region``); duplicates of stored ones were recorded when first seen.
    """
    columns = {"satellite": [], "acq_time": [], "detections": []}
    if points.empty:
        return pd.DataFrame(columns)
    west, south, east, north = bounds
    lat, lng = points.latitude.to_numpy(), points.longitude.to_numpy()
    near = ((lat >= south - PASS_MARGIN_DEG) & (lat <= north + PASS_MARGIN_DEG)
            & (lng >= west - PASS_MARGIN_DEG) & (lng <= east + PASS_MARGIN_DEG))
    sub = points[near]
    if sub.empty:
        return pd.DataFrame(columns)
    return (sub.groupby(["satellite", "acq_time"], sort=True)["in_region"].sum().astype(int)
            .rename("detections").reset_index())
