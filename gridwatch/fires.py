"""Triage of satellite fire points: jurisdiction, duplicates, filters with reasons, incidents (pure, vectorised).

A detection's jurisdiction is its cell's owner. Detections are merged when
they repeat (same latitude, longitude, acquisition time and satellite), kept
but not dispatched when they are low-confidence or static heat sources (FIRMS
type 2, or a cell on the published static heat source layer), and grouped into
one incident per cell and overpass (satellite and acquisition time). In a key
period nothing is suppressed on farmland: a static-source detection there is
dispatched (flagged ``static_source_in_key_period``). A cell burning on many
separate days within the window ending *now* and not on the layer is flagged as
a possible static heat source, never set aside: repeated burning is still
burning, counted and dispatched (and checked, :attr:`TriageResult.repeated_cells`).

Every stage works on whole numpy columns: satellites, confidence classes and
outcomes are small integer codes (:data:`SATELLITE_NAMES`, :data:`OUTCOMES`),
duplicate and group tests are hash-based (pandas factorize / duplicated), and
counts per group are ``bincount``; no Python loop runs over points or cells.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gridwatch.grid import Grid
from gridwatch.i18n import N_
from gridwatch.policy import DispatchPolicy
from layers.fire_points import CONFIDENCE_CLASSES, SATELLITE_NAMES

__all__ = ["REASONS", "FLAGS", "FLAG_LABELS", "OUTCOMES", "StageClock", "TriageResult", "FireColumns", "fire_columns",
           "fire_keys", "incident_keys", "triage", "observed_passes", "hash_columns", "satellite_codes",
           "satellite_codes_of", "satellite_names", "text_codes", "utc_datetimes"]

#: why a detection inside the region is not dispatched; ``persistent_heat`` is no longer given (repeated burning is
#: dispatched and flagged, see :data:`FLAGS`) and stays so that rows stored by earlier versions keep their code
REASONS = ("static_source", "persistent_heat", "low_confidence")
#: flags of detections: their cell burned on ``persistent_days`` or more days within the window and is not on the
#: static heat source layer; or they lie on a static source, on farmland, in a key period, and were dispatched
FLAGS = ("possible_static_source", "static_source_in_key_period")
#: what a flag means, as shown (translated through the catalog)
FLAG_LABELS = MappingProxyType({
    "possible_static_source": N_("possible static heat source — please verify"),
    "static_source_in_key_period": N_("on a static heat source, on farmland in a key period: dispatched"),
})
#: a detection's stored outcome code -> name: dispatched, one of :data:`REASONS`, or outside the region
OUTCOMES = ("dispatched", *REASONS, "outside_region")
DISPATCHED, STATIC_SOURCE, PERSISTENT_HEAT, LOW_CONFIDENCE, OUTSIDE_REGION = range(len(OUTCOMES))
FIRE_TYPE_STATIC = 2
#: detections within this many degrees of the region show that a pass covered it (MODIS swath ≈ 2,330 km)
PASS_MARGIN_DEG = 5.0

ZoneTest = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
CellTest = Callable[[np.ndarray], np.ndarray]


@dataclass
class StageClock:
    """Wall seconds of a pipeline's named stages, to show where an ingest's time goes.

    Examples
    --------
    >>> clock = StageClock()
    >>> with clock("read"):
    ...     pass
    >>> list(clock.seconds)
    ['read']
    """

    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        stop = self.start(stage)
        try:
            yield
        finally:
            stop()

    def start(self, stage: str) -> Callable[[], None]:
        """Start timing ``stage`` by hand (one that ends outside a block, such as a commit); call the result to stop."""
        begin = time.perf_counter()

        def stop() -> None:
            self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - begin, 4)
        return stop


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


def _stable_code(name: str) -> int:
    """A satellite name's hash input: its first 8 UTF-8 bytes as an integer (stable across runs and files)."""
    return int.from_bytes(str(name).encode()[:8].ljust(8, b"\0"), "little") & 0x7FFFFFFFFFFFFFFF


#: :func:`_stable_code` of each canonical satellite, by code
_SATELLITE_STABLE = np.array([_stable_code(n) for n in SATELLITE_NAMES], dtype=np.int64)


def text_codes(values: pd.Series | np.ndarray | pa.Array, names: tuple[str, ...]) -> np.ndarray:
    """Each value's index in ``names`` as int8 (-1 for a value not among them or missing), via arrow's hash lookup.

    Examples
    --------
    >>> text_codes(np.array(["Aqua", "Terra", "x"], dtype=object), SATELLITE_NAMES).tolist()
    [1, 0, -1]
    """
    array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=pa.large_string())
    return pc.fill_null(pc.index_in(array, value_set=pa.array(names, pa.large_string())), -1).to_numpy(
        zero_copy_only=False).astype(np.int8)


def satellite_codes(satellite: pd.Series | np.ndarray) -> np.ndarray:
    """Index of each satellite in :data:`SATELLITE_NAMES` (int8, -1 for another name)."""
    return text_codes(satellite, SATELLITE_NAMES)


def _satellite_hash_inputs(satellite: pd.Series | np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
    """The stable integer of each row's satellite name (canonical names by table, others one by one per name)."""
    codes = satellite_codes(satellite) if codes is None else codes
    if (codes >= 0).all():
        return _SATELLITE_STABLE[codes]
    found, names = pd.factorize(np.asarray(satellite, dtype=object))
    return np.array([_stable_code(n) for n in names], dtype=np.int64)[found]


def satellite_names(codes: np.ndarray) -> pd.Categorical:
    """Satellite names of codes in :data:`SATELLITE_NAMES`, as a categorical over them (no string per row)."""
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int8), categories=list(SATELLITE_NAMES))


def satellite_codes_of(names: pd.Series) -> np.ndarray:
    """:func:`satellite_codes` of a column, read off its categories when it is :func:`satellite_names`."""
    if isinstance(names.dtype, pd.CategoricalDtype) and list(names.cat.categories) == list(SATELLITE_NAMES):
        return names.cat.codes.to_numpy().astype(np.int8, copy=False)
    return satellite_codes(names.to_numpy(dtype=object))


def utc_datetimes(times: pd.Series | np.ndarray) -> np.ndarray:
    """Naive UTC ``datetime64[ns]`` of timestamps (aware ones converted, naive ones taken as UTC)."""
    index = pd.DatetimeIndex(pd.to_datetime(times, utc=True)).tz_convert(None)
    return index.to_numpy().astype("datetime64[ns]", copy=False)


def _minutes(utc: np.ndarray) -> np.ndarray:
    """Whole minutes since the epoch of naive UTC datetime64 values."""
    return utc.astype("datetime64[m]").astype(np.int64)


@dataclass(frozen=True)
class FireColumns:
    """What the duplicate keys and triage both need of every row read, worked out once (:func:`fire_columns`)."""

    satellite: np.ndarray  # code in SATELLITE_NAMES (int8, -1 for another name)
    stable: np.ndarray  # the satellite's hash input (:func:`_stable_code`)
    utc: np.ndarray  # naive UTC datetime64[ns]
    minutes: np.ndarray  # whole minutes since the epoch
    keys: np.ndarray  # :func:`fire_keys`


def fire_columns(frame: pd.DataFrame) -> FireColumns:
    """Satellite codes, UTC times and duplicate keys of a FIRMS frame (:func:`layers.fire_points.read_firms`)."""
    sat = satellite_codes(frame.satellite)
    stable = _satellite_hash_inputs(frame.satellite, sat)
    utc = utc_datetimes(frame.acq_time)
    minutes = _minutes(utc)
    keys = _fire_keys(frame.latitude.to_numpy(dtype=np.float64), frame.longitude.to_numpy(dtype=np.float64),
                      minutes, stable)
    return FireColumns(sat, stable, utc, minutes, keys)


def fire_keys(lat: np.ndarray, lng: np.ndarray, acq_time: pd.Series, satellite: np.ndarray) -> np.ndarray:
    """The duplicate key of detections: latitude and longitude to 1e-5°, minute of acquisition, satellite."""
    return _fire_keys(np.asarray(lat), np.asarray(lng), _minutes(utc_datetimes(acq_time)),
                      _satellite_hash_inputs(satellite))


def _fire_keys(lat: np.ndarray, lng: np.ndarray, minutes: np.ndarray, satellite_stable: np.ndarray) -> np.ndarray:
    return hash_columns(np.round(lat * 1e5), np.round(lng * 1e5), minutes, satellite_stable)


def incident_keys(cell: np.ndarray, acq_time: pd.Series, satellite: np.ndarray) -> np.ndarray:
    """The key of an incident: one per cell and overpass."""
    return hash_columns(np.asarray(cell).view(np.int64), _minutes(utc_datetimes(acq_time)),
                        _satellite_hash_inputs(satellite))


@dataclass
class TriageResult:
    """Detections with everything decided, and the counts the user sees.

    ``points`` holds one row per new detection (duplicates removed), in file
    order, as numpy-backed columns:

    ====================  ==========================================================
    ``row``               position of the detection in the triaged frame
    ``key``               duplicate key (:func:`fire_keys`)
    ``satellite``         code in :data:`SATELLITE_NAMES` (int8)
    ``acq_time``          naive UTC datetime64[ns]
    ``latitude``, ``longitude``
    ``cell``              H3 cell (int64)
    ``position``          the cell's position in the grid (-1 outside the region)
    ``in_region``         bool
    ``in_no_burn_zone``   bool (the zone test, inside the region only)
    ``outcome``           code in :data:`OUTCOMES` (int8)
    ``possible_static_source``  bool: the cell keeps burning and is not on the layer (flagged, still dispatched)
    ``on_static_source``  bool: the cell is on the published static heat source layer
    ``incident_key``      Int64, <NA> unless dispatched
    ====================  ==========================================================

    ``incidents`` holds one row per incident among the dispatched detections:
    ``key, cell, satellite, acq_time, points, max_frp, in_no_burn_zone, possible_static_source`` (its
    units are its cell's; ``satellite`` is :func:`satellite_names`, a categorical).

    ``repeated_cells`` holds the cells flagged ``possible_static_source``: ``cell``, ``days`` (burn days in the
    window), one row per cell, for the heat-source checks.
    """

    points: pd.DataFrame
    incidents: pd.DataFrame
    duplicates: int
    outside_region: int
    not_dispatched: dict[str, int]
    flagged: dict[str, int] = field(default_factory=dict)
    repeated_cells: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"cell": np.zeros(0, dtype=np.int64), "days": np.zeros(0, dtype=np.int64)}))

    def summary(self) -> dict:
        """The counts of the ingest report."""
        return {
            "accepted": int(len(self.points)),
            "duplicates": self.duplicates,
            "outside_region": self.outside_region,
            "not_dispatched": self.not_dispatched,
            "flagged": self.flagged,
            "incidents": int(len(self.incidents)),
        }

    def dispatch(self) -> np.ndarray:
        """``dispatched``, ``not_dispatched`` or ``outside_region`` per point (object array)."""
        names = np.array(["dispatched", *["not_dispatched"] * len(REASONS), "outside_region"], dtype=object)
        return names[self.points.outcome.to_numpy()]

    def reason(self) -> np.ndarray:
        """Why each point is not dispatched (``""`` when it is, or lies outside the region)."""
        names = np.array(["", *REASONS, ""], dtype=object)
        return names[self.points.outcome.to_numpy()]


def triage(
    frame: pd.DataFrame,
    grid: Grid,
    *,
    policy: DispatchPolicy,
    known_keys: np.ndarray,
    burn_days: Callable[[np.ndarray], pd.DataFrame] | None = None,
    zone_test: ZoneTest | None = None,
    columns: FireColumns | None = None,
    now: dt.datetime | None = None,
    static_test: CellTest | None = None,
    farmland_test: ZoneTest | None = None,
) -> TriageResult:
    """Decide jurisdiction, duplicates, filters and incidents for detections read from a file.

    The stages: new rows (:func:`_new_rows`), cells and positions in the grid,
    the no-burn-zone flag, outcomes (:func:`_outcomes`), incidents
    (:func:`_incidents`).

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
        detections in these cells within the persistence window (ending at ``now``).
    zone_test : callable, optional
        ``zone_test(lat, lng, cells) -> bool array``: inside a no-burn zone
        (``cells`` as uint64 H3 indexes of the new detections).
    columns : FireColumns, optional
        :func:`fire_columns` of ``frame``, when the caller has them already (for the duplicate keys).
    now : datetime, optional
        The ingest's clock (naive means UTC; default: this machine's): the persistence window is the
        ``persistent_window_days`` before it, never anchored on the detections' own dates.
    static_test : callable, optional
        ``static_test(cells) -> bool array`` (int64 cells): the cell is on the published static heat source layer.
    farmland_test : callable, optional
        ``farmland_test(lat, lng, cells) -> bool array``: on farmland; None means every cell is farmland.
    """
    if columns is None:
        columns = fire_columns(frame)
    sat, stable, utc, minutes, keys = columns.satellite, columns.stable, columns.utc, columns.minutes, columns.keys
    lat_all, lng_all = frame.latitude.to_numpy(dtype=np.float64), frame.longitude.to_numpy(dtype=np.float64)
    rows = _new_rows(keys, known_keys)
    every = len(rows) == len(frame)

    def new(a: np.ndarray) -> np.ndarray:
        return a if every else a[rows]

    lat, lng = new(lat_all), new(lng_all)
    cells, pos = grid.locate(lat, lng)
    inside = pos >= 0
    zone = zone_test(lat, lng, cells) if zone_test is not None else np.zeros(len(rows), dtype=bool)
    zone = np.asarray(zone, dtype=bool) & inside
    cell = cells.view(np.int64)
    fire_type = new(frame.fire_type.to_numpy(dtype=np.float64, na_value=-1.0))
    low = new(text_codes(frame.confidence_class, CONFIDENCE_CLASSES) == 0) & (not policy.dispatch_low_confidence)
    on_source = (np.asarray(static_test(cell), dtype=bool) & inside if static_test is not None and inside.any()
                 else np.zeros(len(rows), dtype=bool))
    static = inside & ((fire_type == FIRE_TYPE_STATIC) | on_source)
    kept = _straw_season(static, new(utc), lat, lng, cells, policy, farmland_test)
    outcome = _outcomes(inside, static & ~kept, low)
    repeated, days = _persistent(cell, new(utc), inside, policy, burn_days, _naive_utc64(now))
    flagged = repeated & ~on_source
    frp = new(frame.frp.to_numpy(dtype=np.float64, na_value=np.nan))
    incident_key, incidents = _incidents(cell, new(sat), new(minutes), new(stable), new(utc), frp, zone,
                                         outcome == DISPATCHED, flagged)
    points = pd.DataFrame({
        "row": rows, "key": new(keys), "satellite": new(sat), "acq_time": new(utc), "latitude": lat, "longitude": lng,
        "cell": cell, "position": pos, "in_region": inside, "in_no_burn_zone": zone, "outcome": outcome,
        "possible_static_source": flagged, "on_static_source": on_source, "incident_key": incident_key,
    }, copy=False)
    counts = np.bincount(outcome, minlength=len(OUTCOMES))
    return TriageResult(
        points=points,
        incidents=incidents,
        duplicates=int(len(frame) - len(rows)),
        outside_region=int(counts[OUTSIDE_REGION]),
        not_dispatched={r: int(counts[OUTCOMES.index(r)]) for r in REASONS if counts[OUTCOMES.index(r)]},
        flagged={name: int(n) for name, n in (("possible_static_source", flagged.sum()),
                                               ("static_source_in_key_period", kept.sum())) if n},
        repeated_cells=_repeated_cells(cell, flagged, days),
    )


def _straw_season(static: np.ndarray, utc: np.ndarray, lat: np.ndarray, lng: np.ndarray, cells: np.ndarray,
                  policy: DispatchPolicy, farmland_test: ZoneTest | None) -> np.ndarray:
    """Static-source detections dispatched all the same: in a key period, on farmland (every cell while no farmland
    layer is published). Only the static-source detections are tested (few), so the rest cost nothing."""
    kept = np.zeros(len(static), dtype=bool)
    if not policy.key_periods or not static.any():
        return kept
    where = np.flatnonzero(static)
    season = policy.in_key_period(utc[where])
    if farmland_test is not None and season.any():
        where, season = where[season], np.ones(int(season.sum()), dtype=bool)
        season &= np.asarray(farmland_test(lat[where], lng[where], cells[where]), dtype=bool)
    kept[where[season]] = True
    return kept


def _repeated_cells(cell: np.ndarray, flagged: np.ndarray, days: np.ndarray) -> pd.DataFrame:
    """One row per flagged cell with its burn days in the window (the most any of its detections saw)."""
    where = np.flatnonzero(flagged)
    frame = pd.DataFrame({"cell": cell[where], "days": days[where].astype(np.int64)})
    return frame.groupby("cell", sort=True).days.max().reset_index()


def _naive_utc64(now: dt.datetime | None) -> np.datetime64:
    """``now`` (default: the clock) as a naive UTC datetime64[ns]."""
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is not None:
        now = now.astimezone(dt.UTC).replace(tzinfo=None)
    return np.datetime64(now, "ns")


def _new_rows(keys: np.ndarray, known_keys: np.ndarray) -> np.ndarray:
    """Positions of the rows that are neither repeats within the file nor already stored (hash-based)."""
    index = pd.Index(keys)
    new = ~index.duplicated(keep="first")
    if len(known_keys):
        new &= ~index.isin(known_keys)
    return np.flatnonzero(new)


def _outcomes(inside: np.ndarray, static: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Outcome code per detection; the first that applies wins: outside, static source, low confidence.

    Repeated burning is no outcome: it is a flag of dispatched detections (:func:`_persistent`).
    """
    outcome = np.full(len(inside), DISPATCHED, dtype=np.int8)
    outcome[low] = LOW_CONFIDENCE
    outcome[static] = STATIC_SOURCE
    outcome[~inside] = OUTSIDE_REGION
    return outcome


def _persistent(cell: np.ndarray, utc: np.ndarray, inside: np.ndarray, policy: DispatchPolicy,
                burn_days: Callable[[np.ndarray], pd.DataFrame] | None,
                now: np.datetime64) -> tuple[np.ndarray, np.ndarray]:
    """Detections in cells that burn on ``persistent_days`` or more separate local days in the window ending at
    ``now`` (counting stored ones), and each detection's cell's burn days; only detections within the window
    count, so a stray date moves nothing.
    """
    nothing = np.zeros(len(cell), dtype=bool), np.zeros(len(cell), dtype=np.int64)
    if not inside.any() or policy.persistent_days <= 0:
        return nothing
    since = now - np.timedelta64(policy.persistent_window_days, "D")
    where = np.flatnonzero(inside & (utc >= since))  # the reader refused rows later than now
    if not len(where):
        return nothing
    codes, cells = pd.factorize(cell[where])  # each inside detection's cell as 0..k-1
    days = policy.local_dates(utc[where]).astype(np.int64)
    if burn_days is not None:
        stored = burn_days(np.asarray(cells, dtype=np.int64))
        if len(stored):
            stored_codes = pd.Index(cells).get_indexer(stored.cell.to_numpy(dtype=np.int64))
            known = stored_codes >= 0
            codes = np.concatenate([codes, stored_codes[known]])
            days = np.concatenate([days, np.asarray(stored.day, dtype="datetime64[D]").astype(np.int64)[known]])
    # one entry per (cell, day): the day offset fits in the low 20 bits of the pair
    first_day = days.min()
    span = np.int64(1 << 20)
    pairs = pd.unique(codes.astype(np.int64) * span + (days - first_day))
    days_per_cell = np.bincount(pairs // span, minlength=len(cells))
    out = np.zeros(len(cell), dtype=np.int64)
    out[where] = days_per_cell[codes[:len(where)]]
    return out >= policy.persistent_days, out


def _incidents(cell: np.ndarray, sat: np.ndarray, minutes: np.ndarray, stable: np.ndarray, utc: np.ndarray,
               frp: np.ndarray, zone: np.ndarray, go: np.ndarray,
               flagged: np.ndarray) -> tuple[pd.arrays.IntegerArray, pd.DataFrame]:
    """Each dispatched detection's incident key, and one row per incident (first detection's cell and pass)."""
    take = np.flatnonzero(go)
    keys = hash_columns(cell[take], minutes[take], stable[take])
    values = np.zeros(len(cell), dtype=np.int64)
    values[take] = keys
    per_point = pd.arrays.IntegerArray(values, ~go)
    codes, uniq = pd.factorize(keys)
    k = len(uniq)
    first = np.empty(k, dtype=np.int64)
    first[codes[::-1]] = take[::-1]  # the last write wins: each incident's first detection
    max_frp = np.full(k, np.nan)
    np.fmax.at(max_frp, codes, frp[take])
    incidents = pd.DataFrame({
        "key": np.asarray(uniq, dtype=np.int64),
        "cell": cell[first],
        "satellite": satellite_names(sat[first]),
        "acq_time": pd.DatetimeIndex(utc[first]).tz_localize("UTC"),
        "points": np.bincount(codes, minlength=k).astype(np.int64),
        "max_frp": max_frp,
        "in_no_burn_zone": np.bincount(codes, weights=zone[take], minlength=k) > 0,
        "possible_static_source": np.bincount(codes, weights=flagged[take], minlength=k) > 0,
    })
    return per_point, incidents


def observed_passes(points: pd.DataFrame, bounds: tuple[float, float, float, float]) -> pd.DataFrame:
    """Satellite passes the new detections show over the region: (satellite, acq_time, detections in the region).

    A FIRMS file lists detections only, so a pass is known from its detections:
    any detection within :data:`PASS_MARGIN_DEG` of the region shows the pass
    covered it, even when none fell inside. ``points`` are
    :attr:`TriageResult.points` (satellite codes, naive UTC times, ``in_region``);
    duplicates of stored ones were recorded when first seen.
    """
    west, south, east, north = bounds
    lat, lng = points.latitude.to_numpy(), points.longitude.to_numpy()
    near = np.flatnonzero((lat >= south - PASS_MARGIN_DEG) & (lat <= north + PASS_MARGIN_DEG)
                          & (lng >= west - PASS_MARGIN_DEG) & (lng <= east + PASS_MARGIN_DEG))
    sat = points.satellite.to_numpy()[near].astype(np.int64)
    utc = points.acq_time.to_numpy()[near]
    codes, uniq = pd.factorize(utc.astype("datetime64[s]").view(np.int64) * 8 + sat)
    first = np.empty(len(uniq), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    out = pd.DataFrame({
        "satellite": np.asarray(SATELLITE_NAMES, dtype=object)[sat[first]] if len(uniq) else np.zeros(0, object),
        "acq_time": utc[first],
        "detections": np.bincount(codes, weights=points.in_region.to_numpy()[near], minlength=len(uniq))
        .astype(np.int64),
    })
    return out.sort_values(["satellite", "acq_time"], ignore_index=True)
