"""Satellite fire points: ingest, triage, dispatch, the FIRMS fetch and what the screens show of them."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from h3ronpy import cells_to_string

from gridwatch import workflow
from gridwatch.config import Settings
from gridwatch.dispatch import dispatch_fire_incidents, plan_fire_dispatch
from gridwatch.errors import ValidationError
from gridwatch.fires import (
    OUTCOMES,
    REASONS,
    StageClock,
    TriageResult,
    fire_columns,
    observed_passes,
    text_codes,
    triage,
)
from gridwatch.firms import FirmsClient, region_bbox
from gridwatch.layerstore import sha256_of
from gridwatch.services import _common
from gridwatch.services._common import SYSTEM, _region_bounds, audit, check_upload_size, stored_grid
from gridwatch.storage import Store
from gridwatch.policy import DispatchPolicy
from gridwatch.tasks import naive_utc
from layers.fire_points import CONFIDENCE_CLASSES, read_firms


def _known_fire_keys(store: Store, keys: np.ndarray) -> np.ndarray:
    """The subset of ``keys`` already stored (an anti-join input: one bulk insert, one hash join)."""
    if not len(keys) or not store.scalar("SELECT count(*) FROM fire_detections"):
        return np.zeros(0, dtype=np.int64)
    store.execute("DROP TABLE IF EXISTS incoming_keys")
    store.execute("CREATE TEMP TABLE incoming_keys (key BIGINT)")
    store.insert_arrow("incoming_keys", pa.table({"key": pa.array(np.asarray(keys, dtype=np.int64))}))
    found = store.query_df("SELECT f.key FROM fire_detections f JOIN incoming_keys i ON i.key = f.key")
    store.execute("DROP TABLE incoming_keys")
    return found.key.to_numpy(dtype=np.int64)


def _burn_days(store: Store, policy: DispatchPolicy, latest: pd.Timestamp):
    """``lookup(cells) -> DataFrame(cell, day)``: stored local days with detections in these cells, in the window.

    Nothing is looked up cell by cell while no stored detection lies in the window (a first ingest, a new season).
    """
    def lookup(cells: np.ndarray) -> pd.DataFrame:
        since = (latest - pd.Timedelta(days=policy.persistent_window_days)).tz_localize(None)
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


def _fire_rows(frame: pd.DataFrame, tri: TriageResult, *, batch: int,
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


def _record_passes(store: Store, passes: pd.DataFrame, batch: int) -> int:
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


def _zone_test(store: Store):
    """The exact point-in-zone test of the published no-burn zones (None while none are published)."""
    from gridwatch import zones

    return zones.zone_test_for(store)


def ingest_fire_file(store: Store, path: str | Path, *, actor: str = SYSTEM, policy: DispatchPolicy | None = None,
                     source_label: str | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Read, triage, store and dispatch one FIRMS file, all or nothing.

    The stages, each timed in ``stage_seconds``: ``read`` (``read_firms``: parse and check the CSV),
    ``checksum`` (the rest of the file's SHA-256, computed in a thread during the read), ``known`` (duplicate
    keys and the anti-join against stored keys), ``triage`` (cells, outcomes, incidents;
    :func:`gridwatch.fires.triage`), ``dispatch`` (incidents, and their tasks with first events, while threads lay
    out the detections' rows), ``store`` (one bulk insert of the new detections, the rejects, the observation
    ledger) and ``commit``. Everything from ``known`` on is one transaction, which no other ingest runs beside
    (:meth:`Store.exclusive`): stored detections and incidents are found by anti-joins, so two ingests of one
    file must not interleave.

    Returns ``{"file", "batch", "read", "accepted", "rejected", "duplicates", "outside_region",
    "not_dispatched", "incidents", "tasks_created", "coverage_gaps", "passes", "stage_seconds"}``: ``accepted``
    counts new valid detections stored; ``read = accepted + rejected + duplicates``.
    """
    check_upload_size(path)
    path = Path(path)
    policy = policy or _common.policy(store).dispatch
    clock = StageClock()
    with ThreadPoolExecutor(max_workers=1) as hasher:
        checksum = hasher.submit(sha256_of, path)  # hashed while the file is parsed (hashlib releases the GIL)
        with clock("read"):
            result = read_firms(path)
            frame = result.frame
        with clock("checksum"):
            sha256 = checksum.result()
    grid = stored_grid(store)
    # one ingest at a time: duplicates of stored detections and incidents are found by anti-joins, not indexes
    with store.exclusive("fires.ingest"):
        batch = int(store.scalar(
            "INSERT INTO ingest_batches (kind, source, sha256, actor) VALUES ('fire_points', ?, ?, ?) RETURNING id",
            [path.name, sha256, actor]))
        with clock("known"):
            columns = fire_columns(frame)
            known = _known_fire_keys(store, columns.keys)
        with clock("triage"):
            latest = pd.Timestamp(frame.acq_time.max()) if len(frame) else pd.Timestamp.now(tz="UTC")
            tri = triage(frame, grid, policy=policy, known_keys=known,
                         burn_days=_burn_days(store, policy, latest), columns=columns, zone_test=_zone_test(store))
        # While the incidents, tasks and events are written (DuckDB releases the GIL), two threads work out the
        # tasks' priorities, due times and titles, lay out the new detections' rows and find the passes seen.
        bounds = _region_bounds(store)
        now = naive_utc(now)  # the same moment for the plan made meanwhile and the rows stored
        with ThreadPoolExecutor(max_workers=2) as helpers:
            plan = helpers.submit(plan_fire_dispatch, tri.incidents, policy=policy, now=now)
            laid_out = (helpers.submit(_fire_rows, frame, tri, batch=batch, source_label=source_label)
                        if len(tri.points) else None)
            passes_seen = helpers.submit(observed_passes, tri.points, bounds)
            with clock("dispatch"):
                dispatched = dispatch_fire_incidents(store, tri.incidents, policy=policy, now=now, plan=plan)
            with clock("store"):
                if laid_out is not None:
                    rows, variants = laid_out.result()
                    store.insert_arrow("fire_variants", variants)
                    store.insert_arrow("fire_detections", rows)
                if len(result.rejected):
                    store.insert_arrow("ingest_rejects", pa.Table.from_pandas(
                        result.rejected[["line", "reason", "message", "raw"]].assign(batch_id=batch),
                        preserve_index=False))
                passes = _record_passes(store, passes_seen.result(), batch)
        summary = {
            "file": path.name,
            "batch": batch,
            "read": int(result.read),
            "rejected": int(len(result.rejected)),
            **tri.summary(),
            "incidents": dispatched["incidents"],
            "tasks_created": dispatched["tasks_created"],
            "coverage_gaps": dispatched["coverage_gaps"],
            "passes": passes,
        }
        store.execute("UPDATE ingest_batches SET summary = ? WHERE id = ?",
                      [json.dumps(summary, ensure_ascii=False), batch])
        audit(store, actor=actor, action="fires.ingest", subject=path.name, detail=summary)
        committed = clock.start("commit")  # the commit seals the new task events (gridwatch.audit)
    committed()
    return {**summary, "stage_seconds": clock.seconds}


def ingest_fires(store: Store, paths: list[str | Path], *, actor: str = SYSTEM,
                 policy: DispatchPolicy | None = None) -> dict[str, Any]:
    """Ingest several FIRMS files (each all or nothing) and add up the counts."""
    files = [ingest_fire_file(store, p, actor=actor, policy=policy) for p in paths]
    total: dict[str, Any] = {k: 0 for k in ("read", "accepted", "rejected", "duplicates", "outside_region",
                                             "incidents", "tasks_created", "coverage_gaps")}
    reasons: dict[str, int] = {}
    for f in files:
        for k in total:
            total[k] += f[k]
        for r, n in f["not_dispatched"].items():
            reasons[r] = reasons.get(r, 0) + n
    return {**total, "not_dispatched": reasons, "files": files}


def fire_rejects(store: Store, batch: int) -> pd.DataFrame:
    """Rows a file could not give, with line, reason and the original text."""
    return store.query_df("SELECT line, reason, message, raw FROM ingest_rejects WHERE batch_id = ? ORDER BY line",
                          [batch])


def fire_days(store: Store, *, policy: DispatchPolicy | None = None) -> pd.DataFrame:
    """Per local day: detections in the region, incidents, passes observed, and the day's status.

    ``status`` is ``fire`` (detections dispatched), ``observed`` (a satellite
    passed over the region, no fire to dispatch) or ``not_observed`` (no pass
    known): a quiet day is never confused with a day nobody looked.
    """
    policy = policy or _common.policy(store).dispatch
    tz_hours = int(pd.Timestamp("2024-01-01", tz=policy.timezone).utcoffset().total_seconds() // 3600)
    shift = f"INTERVAL '{tz_hours} hours'"
    points = store.query_df(
        f"SELECT CAST(acq_time + {shift} AS DATE) AS day, count(*) AS detections,"
        " count(*) FILTER (WHERE outcome = 0) AS dispatched,"  # outcome codes: gridwatch.fires.OUTCOMES
        " count(DISTINCT incident_key) AS incidents FROM fire_detections WHERE outcome <> 4 GROUP BY 1")
    passes = store.query_df(
        f"SELECT CAST(acq_time + {shift} AS DATE) AS day, count(*) AS passes FROM observations GROUP BY 1")
    if points.empty and passes.empty:
        return pd.DataFrame(columns=["day", "detections", "dispatched", "incidents", "passes", "status"])
    points["day"] = pd.to_datetime(points.day)
    passes["day"] = pd.to_datetime(passes.day)
    known = pd.concat([points.day, passes.day])
    days = pd.DataFrame({"day": pd.date_range(known.min(), known.max(), freq="D").astype(points.day.dtype)})
    out = days.merge(points, on="day", how="left").merge(passes, on="day", how="left").fillna(0)
    for col in ("detections", "dispatched", "incidents", "passes"):
        out[col] = out[col].astype(int)
    out["status"] = np.select([out.dispatched > 0, (out.passes > 0) | (out.detections > 0)],
                              ["fire", "observed"], "not_observed")
    return out


def fire_summary(store: Store) -> dict[str, Any]:
    """Counts for the fire page: detections by outcome and reason, incidents, tasks by state."""
    by = {OUTCOMES[r["outcome"]]: r["n"] for r in store.query(
        "SELECT outcome, count(*) AS n FROM fire_detections GROUP BY 1 ORDER BY 1")}
    tasks = store.query("SELECT state, count(*) AS n FROM tasks WHERE kind = 'fire_check' GROUP BY 1 ORDER BY 1")
    return {
        "detections": sum(by.values()),
        "in_region": sum(n for outcome, n in by.items() if outcome != "outside_region"),
        "dispatched": by.get("dispatched", 0),
        "not_dispatched": {r: by[r] for r in REASONS if r in by},
        "incidents": int(store.scalar("SELECT count(*) FROM fire_incidents")),
        "tasks": {r["state"]: r["n"] for r in tasks},
        "coverage_gaps": int(store.scalar("SELECT count(*) FROM tasks WHERE kind = 'fire_check' AND coverage_gap")),
        "demo": bool(store.scalar("SELECT count(*) FROM fire_variants WHERE source LIKE 'DEMO%'")),
    }


def fire_tasks(store: Store, *, limit: int = 200) -> pd.DataFrame:
    """The newest fire-check tasks with their cell, place, assignee and due time."""
    df = store.query_df(
        "SELECT t.id, t.title, t.state, t.priority, t.cell, t.created_at, t.due_at, t.coverage_gap,"
        " p.name AS assignee, t.assigned_role, tw.name AS township, v.name AS village"
        " FROM tasks t LEFT JOIN people p ON p.id = t.assignee_id JOIN cells c ON c.cell = t.cell"
        " LEFT JOIN units tw ON tw.code = c.township_code LEFT JOIN units v ON v.code = c.village_code"
        " WHERE t.kind = 'fire_check' ORDER BY t.priority DESC, t.id DESC LIMIT ?", [limit])
    df["cell"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df


def fire_cells(store: Store) -> pd.DataFrame:
    """Cells with dispatched detections (hex id, count), for the map."""
    df = store.query_df("SELECT cell, count(*) AS detections FROM fire_detections WHERE outcome = 0"  # dispatched
                        " GROUP BY cell")
    df["cell"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df


def fetch_fires(store: Store, settings: Settings, *, days: int | None = None, client: FirmsClient | None = None,
                actor: str = "firms-fetch") -> dict[str, Any]:
    """Fetch the region's last ``days`` of detections from the FIRMS area API and ingest them.

    Every request is logged in ``fetch_log`` with its outcome; a header-only
    answer is zero fires, not an error. Returns the per-source outcomes and the
    added-up ingest counts.
    """
    if client is None:
        if not settings.firms_map_key:
            raise ValidationError("No FIRMS MAP_KEY is configured; set GRIDWATCH_FIRMS_MAP_KEY or firms_map_key "
                                  "in gridwatch.toml.")
        client = FirmsClient(settings.firms_map_key, base_url=settings.firms_base_url)
    bbox = region_bbox(_region_bounds(store))
    days = int(days or settings.firms_days)
    end = dt.datetime.now(dt.UTC).date()
    outcomes, ingested = [], []
    for source in [s.strip() for s in settings.firms_sources.split(",") if s.strip()]:
        for fetched in client.fetch_days(source, bbox, days, end):
            batch = None
            if fetched.status == "ok":
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / f"firms_{source}_{fetched.started_at:%Y%m%dT%H%M%S}.csv"
                    path.write_bytes(fetched.csv_bytes)
                    summary = ingest_fire_file(store, path, actor=actor)
                batch = summary["batch"]
                ingested.append(summary)
            with store.transaction():
                store.execute(
                    "INSERT INTO fetch_log (started_at, finished_at, source, url, status, rows, message, batch_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [fetched.started_at.replace(tzinfo=None), fetched.finished_at.replace(tzinfo=None), source,
                     fetched.url_redacted, fetched.status, fetched.rows, fetched.message, batch])
            outcomes.append({"source": source, "status": fetched.status, "rows": fetched.rows,
                             "message": fetched.message, "batch": batch})
    totals = {k: sum(s[k] for s in ingested) for k in ("read", "accepted", "duplicates", "outside_region",
                                                        "incidents", "tasks_created")}
    return {"fetches": outcomes, **totals}


def fetch_log(store: Store, *, limit: int = 50) -> pd.DataFrame:
    """The latest FIRMS fetches with their outcome."""
    return store.query_df("SELECT started_at, source, status, rows, message, batch_id FROM fetch_log"
                          " ORDER BY id DESC LIMIT ?", [limit])


#: a GPS position from the device (re-exported for the screens)
Fix = workflow.Fix
