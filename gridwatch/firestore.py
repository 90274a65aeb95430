"""Fire detections in the store: known keys, burn days, the rows and passes written, the counts screens read.

Every count is restricted by a scope condition the caller passes (a user's cells, or everything).

Services speak of fires through these functions; the SQL stays here, as the region's stays in
:mod:`gridwatch.regionstore` and the layers' in :mod:`gridwatch.layerstore`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gridwatch.fires import TriageResult, text_codes
from gridwatch.policy import DispatchPolicy
from gridwatch.storage import Store
from gridwatch.tasks import ACTIVE_STATES, Kind
from layers.fire_points import CONFIDENCE_CLASSES

__all__ = ["known_keys", "burn_days", "detection_rows", "record_passes", "new_batch", "finish_batch", "rejects",
           "counts_by_day", "passes_by_day", "outcome_counts", "task_state_counts", "incident_count",
           "heat_source_check_count",
           "coverage_gap_count", "has_demo", "newest_tasks", "dispatched_cells", "log_fetch", "fetch_log"]


def known_keys(store: Store, keys: np.ndarray) -> np.ndarray:
    """The subset of ``keys`` already stored (an anti-join input: one bulk insert, one hash join)."""
    if not len(keys) or not store.scalar("SELECT count(*) FROM fire_detections"):
        return np.zeros(0, dtype=np.int64)
    store.execute("DROP TABLE IF EXISTS incoming_keys")
    store.execute("CREATE TEMP TABLE incoming_keys (key BIGINT)")
    store.insert_arrow("incoming_keys", pa.table({"key": pa.array(np.asarray(keys, dtype=np.int64))}))
    found = store.query_df("SELECT f.key FROM fire_detections f JOIN incoming_keys i ON i.key = f.key")
    store.execute("DROP TABLE incoming_keys")
    return found.key.to_numpy(dtype=np.int64)

def burn_days(store: Store, policy: DispatchPolicy, now: dt.datetime):
    """``lookup(cells) -> DataFrame(cell, day)``: stored local days with detections in these cells, in the window.

    The window is the ``persistent_window_days`` before ``now`` (the ingest's clock, naive UTC), never anchored on
    the dates of a file. Nothing is looked up cell by cell while no stored detection lies in the window (a first
    ingest, a new season).
    """
    def lookup(cells: np.ndarray) -> pd.DataFrame:
        since = pd.Timestamp(now).tz_localize(None) - pd.Timedelta(days=policy.persistent_window_days)
        if not store.scalar("SELECT count(*) FROM fire_detections WHERE acq_time >= ?", [since.to_pydatetime()]):
            return pd.DataFrame({"cell": np.zeros(0, dtype=np.int64), "day": np.zeros(0, dtype="datetime64[D]")})
        store.execute("CREATE TEMP TABLE IF NOT EXISTS hot_cells (cell BIGINT)")
        store.execute("DELETE FROM hot_cells")
        store.insert_arrow("hot_cells", pa.table({"cell": pa.array(np.asarray(cells, dtype=np.int64))}))
        rows = store.query_df(
            "SELECT DISTINCT f.cell, f.acq_time FROM fire_detections f JOIN hot_cells h ON h.cell = f.cell"
            " WHERE f.acq_time >= ?", [since.to_pydatetime()])
        store.execute("DELETE FROM hot_cells")
        return pd.DataFrame({"cell": rows.cell.to_numpy(dtype=np.int64),
                             "day": policy.local_dates(rows.acq_time.to_numpy(dtype="datetime64[ns]"))})
    return lookup

def detection_rows(frame: pd.DataFrame, tri: TriageResult, *, batch: int,
               source_label: str | None) -> tuple[pa.Table, pa.Table]:
    """The new detections as ``fire_detections`` rows, and their batch's ``fire_variants`` (source, version).

    Everything stored per row is a number or a small code; the text of a row
    (source and version) is one variant of its batch.
    """
    rows = tri.points.row.to_numpy()
    every = len(rows) == len(frame)

    def new(column: str, dtype: Any, na: Any) -> np.ndarray:
        values = frame[column].to_numpy(dtype=dtype, na_value=na)
        return values if every else values[rows]

    source = pa.array(frame.source) if source_label is None else pa.repeat(source_label, len(frame))
    version = pa.array(frame.version, type=pa.large_string())
    if not every:
        take = pa.array(rows)
        source, version = source.take(take), version.take(take)
    # one code per distinct (source, version): the pair of their dictionary codes, factorised
    def codes(values: pa.Array | pa.ChunkedArray) -> pa.DictionaryArray:
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        return pc.dictionary_encode(values, null_encoding="encode")

    sources, versions = codes(source), codes(version)
    width = max(len(versions.dictionary), 1)
    variant, pairs = pd.factorize(sources.indices.to_numpy(zero_copy_only=False).astype(np.int64) * width
                                  + versions.indices.to_numpy(zero_copy_only=False))
    variants = (sources.dictionary.take(pa.array(pairs // width)), versions.dictionary.take(pa.array(pairs % width)))
    def small(values: np.ndarray) -> pa.Array:  # SMALLINT codes and values; missing where NaN or negative
        missing = ~(values >= 0)
        return pa.array(np.where(missing, 0, values).astype(np.int16), mask=missing)

    daynight = text_codes(frame.daynight, ("D", "N")).astype(np.float64)
    confidence_class = text_codes(frame.confidence_class, CONFIDENCE_CLASSES).astype(np.int16)
    points = tri.points
    table = pa.table({
        "key": points.key.to_numpy(),
        "batch_id": pa.repeat(pa.scalar(batch, pa.int64()), len(rows)),
        "variant": variant.astype(np.int16),
        "satellite": points.satellite.to_numpy().astype(np.int16),
        "latitude": points.latitude.to_numpy(),
        "longitude": points.longitude.to_numpy(),
        "acq_time": pa.array(points.acq_time.to_numpy().astype("datetime64[us]")),
        "confidence": small(new("confidence", np.float64, np.nan)),
        "confidence_class": confidence_class if every else confidence_class[rows],
        **{c: pa.array(new(c, np.float64, np.nan), from_pandas=True)  # NaN (empty) stored as NULL
           for c in ("brightness", "bright_t31", "frp", "scan", "track")},
        "daynight": small(daynight if every else daynight[rows]),
        "fire_type": small(new("fire_type", np.float64, np.nan)),
        "cell": points.cell.to_numpy(),
        "outcome": points.outcome.to_numpy().astype(np.int16),
        "in_no_burn_zone": points.in_no_burn_zone.to_numpy(),
        "incident_key": pa.array(points.incident_key.array, type=pa.int64()),
    })
    variant_table = pa.table({
        "batch_id": pa.repeat(pa.scalar(batch, pa.int64()), len(variants[0])),
        "variant": pa.array(np.arange(len(variants[0]), dtype=np.int16)),
        "source": variants[0].cast(pa.string()), "version": variants[1].cast(pa.string()),
    })
    return table, variant_table

def record_passes(store: Store, passes: pd.DataFrame, batch: int) -> int:
    """Add the passes the new detections show (:func:`observed_passes`) to the observation ledger.

    Returns how many passes the file showed.
    """
    if len(passes):
        store.execute("CREATE TEMP TABLE IF NOT EXISTS incoming_passes AS SELECT * FROM observations LIMIT 0")
        store.execute("DELETE FROM incoming_passes")
        store.insert_arrow("incoming_passes", pa.Table.from_pandas(passes.assign(batch_id=batch),
                                                                   preserve_index=False))
        store.execute(
            "INSERT INTO observations SELECT * FROM incoming_passes ON CONFLICT (satellite, acq_time)"
            " DO UPDATE SET detections = greatest(observations.detections, excluded.detections)")
        store.execute("DELETE FROM incoming_passes")
    return int(len(passes))


def new_batch(store: Store, *, source: str, sha256: str, actor: str) -> int:
    """Open an ingest batch of fire points and return its id."""
    return int(store.scalar(
        "INSERT INTO ingest_batches (kind, source, sha256, actor) VALUES ('fire_points', ?, ?, ?) RETURNING id",
        [source, sha256, actor]))


def finish_batch(store: Store, batch: int, summary_json: str, rejected: pd.DataFrame) -> None:
    """Keep a batch's summary and its rejected rows (line, reason, message, original text)."""
    if len(rejected):
        store.insert_arrow("ingest_rejects", pa.Table.from_pandas(
            rejected[["line", "reason", "message", "raw"]].assign(batch_id=batch), preserve_index=False))
    store.execute("UPDATE ingest_batches SET summary = ? WHERE id = ?", [summary_json, batch])


def rejects(store: Store, batch: int) -> pd.DataFrame:
    """Rows a batch could not give, with line, reason and the original text."""
    return store.query_df("SELECT line, reason, message, raw FROM ingest_rejects WHERE batch_id = ? ORDER BY line",
                          [batch])


def counts_by_day(store: Store, tz_hours: int, scope: str, params: list) -> pd.DataFrame:
    """Per local day (UTC shifted by ``tz_hours``): detections in the region, dispatched ones and incidents."""
    shift = f"INTERVAL '{int(tz_hours)} hours'"
    return store.query_df(
        f"SELECT CAST(acq_time + {shift} AS DATE) AS day, count(*) AS detections,"
        " count(*) FILTER (WHERE outcome = 0) AS dispatched,"  # outcome codes: gridwatch.fires.OUTCOMES
        f" count(DISTINCT incident_key) AS incidents FROM fire_detections WHERE outcome <> 4 AND {scope} GROUP BY 1",
        params)


def passes_by_day(store: Store, tz_hours: int) -> pd.DataFrame:
    """Per local day: satellite passes observed over the region."""
    shift = f"INTERVAL '{int(tz_hours)} hours'"
    return store.query_df(
        f"SELECT CAST(acq_time + {shift} AS DATE) AS day, count(*) AS passes FROM observations GROUP BY 1")


def outcome_counts(store: Store, scope: str, params: list) -> dict[int, int]:
    """Detections per triage outcome code."""
    return {int(r["outcome"]): int(r["n"]) for r in store.query(
        f"SELECT outcome, count(*) AS n FROM fire_detections WHERE {scope} GROUP BY 1 ORDER BY 1", params)}


def task_state_counts(store: Store, scope: str, params: list) -> dict[str, int]:
    """Fire-check tasks per state."""
    return {r["state"]: int(r["n"]) for r in store.query(
        f"SELECT state, count(*) AS n FROM tasks WHERE kind = 'fire_check' AND {scope} GROUP BY 1 ORDER BY 1",
        params)}


def heat_source_check_count(store: Store, scope: str, params: list) -> int:
    """Heat-source checks (疑似固定热源 — 请核实) still waiting for an answer."""
    states = [s.value for s in ACTIVE_STATES]
    return int(store.scalar(
        f"SELECT count(*) FROM tasks WHERE kind = ? AND state IN ({', '.join('?' * len(states))}) AND {scope}",
        [Kind.HEAT_SOURCE_CHECK.value, *states, *params]))


def incident_count(store: Store, scope: str, params: list) -> int:
    """Stored incidents (a cell's detections of one overpass)."""
    return int(store.scalar(f"SELECT count(*) FROM fire_incidents WHERE {scope}", params))


def coverage_gap_count(store: Store, scope: str, params: list) -> int:
    """Fire checks opened on cells nobody covers (sent up the chain)."""
    return int(store.scalar(f"SELECT count(*) FROM tasks WHERE kind = 'fire_check' AND coverage_gap AND {scope}",
                            params))


def has_demo(store: Store) -> bool:
    """Whether generated demo detections are stored."""
    return bool(store.scalar("SELECT count(*) FROM fire_variants WHERE source LIKE 'DEMO%'"))


def newest_tasks(store: Store, scope: str, params: list, *, limit: int) -> pd.DataFrame:
    """The newest fire-check tasks with their cell, place, assignee and due time (``scope`` on ``t.cell``)."""
    return store.query_df(
        "SELECT t.id, t.title, t.state, t.priority, t.cell, t.created_at, t.due_at, t.coverage_gap,"
        " t.title_key, t.title_args, p.name AS assignee, t.assigned_role, tw.name AS township, v.name AS village"
        " FROM tasks t LEFT JOIN people p ON p.id = t.assignee_id JOIN cells c ON c.cell = t.cell"
        " LEFT JOIN units tw ON tw.code = c.township_code LEFT JOIN units v ON v.code = c.village_code"
        f" WHERE t.kind = 'fire_check' AND {scope} ORDER BY t.priority DESC, t.id DESC LIMIT ?", [*params, limit])


def dispatched_cells(store: Store, scope: str, params: list) -> pd.DataFrame:
    """Cells with dispatched detections and their count."""
    return store.query_df("SELECT cell, count(*) AS detections FROM fire_detections WHERE outcome = 0"  # dispatched
                          f" AND {scope} GROUP BY cell", params)


def log_fetch(store: Store, fetched: Any, source: str, batch: int | None) -> None:
    """Record one FIRMS request and its outcome (the URL with its key redacted), in a transaction of its own."""
    with store.transaction():
        store.execute(
            "INSERT INTO fetch_log (started_at, finished_at, source, url, status, rows, message, batch_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [fetched.started_at.replace(tzinfo=None), fetched.finished_at.replace(tzinfo=None), source,
             fetched.url_redacted, fetched.status, fetched.rows, fetched.message, batch])


def fetch_log(store: Store, *, limit: int) -> pd.DataFrame:
    """The latest FIRMS fetches with their outcome."""
    return store.query_df("SELECT started_at, source, status, rows, message, batch_id FROM fetch_log"
                          " ORDER BY id DESC LIMIT ?", [limit])
