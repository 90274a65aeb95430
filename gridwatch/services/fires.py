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
from h3ronpy import cells_to_string

from gridwatch import firestore, regionstore, workflow
from gridwatch.config import Settings
from gridwatch.dispatch import dispatch_fire_incidents, plan_fire_dispatch
from gridwatch.errors import ValidationError
from gridwatch.fires import (
    OUTCOMES,
    REASONS,
    StageClock,
    fire_columns,
    observed_passes,
    triage,
)
from gridwatch.firms import FirmsClient, region_bbox
from gridwatch.layerstore import sha256_of
from gridwatch.policy import EARLIEST_DATA, DispatchPolicy
from gridwatch.services._common import (
    Actor,
    actor_name,
    audit,
    check_upload_size,
    require,
    require_system,
    scope_sql,
)
from gridwatch.services._common import policy as policy_of
from gridwatch.storage import Store
from gridwatch.tasks import naive_utc
from layers.fire_points import read_firms


def _zone_test(store: Store):
    """The exact point-in-zone test of the published no-burn zones (None while none are published)."""
    from gridwatch import zones

    return zones.zone_test_for(store)


def _heat_source_tests(store: Store):
    """The static heat source cell test and the farmland test of the published layers (None while unpublished)."""
    from gridwatch import heatsources

    return heatsources.static_test_for(store), heatsources.farmland_test_for(store)


def ingest_fire_file(store: Store, actor: Actor, path: str | Path, *, policy: DispatchPolicy | None = None,
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
    "not_dispatched", "flagged", "incidents", "tasks_created", "coverage_gaps", "checks_opened", "passes",
    "stage_seconds"}``: ``flagged`` counts detections flagged as possible static heat sources (cells that keep
    burning and are not on the static heat source layer; each such cell gets one ``heat_source_check`` while none
    is open, counted in ``checks_opened``) or as dispatched on a static source in a key period; ``accepted``
    counts new valid detections stored; ``read = accepted + rejected + duplicates``. Detections concern the whole
    region, so only a job or the command line ingests them (``policy`` defaults to the store's).
    """
    require_system(actor, "fires.ingest")
    check_upload_size(path)
    path = Path(path)
    policy = policy or policy_of(store).dispatch
    clock = StageClock()
    now = naive_utc(now)  # the ingest's clock: rows acquired after it are refused, the persistence window ends at it
    with ThreadPoolExecutor(max_workers=1) as hasher:
        checksum = hasher.submit(sha256_of, path)  # hashed while the file is parsed (hashlib releases the GIL)
        with clock("read"):
            result = read_firms(path, now=now, earliest=EARLIEST_DATA)
            frame = result.frame
        with clock("checksum"):
            sha256 = checksum.result()
    grid = regionstore.grid(store)
    # one ingest at a time: duplicates of stored detections and incidents are found by anti-joins, not indexes
    with store.exclusive("fires.ingest"):
        batch = firestore.new_batch(store, source=path.name, sha256=sha256, actor=actor_name(actor))
        with clock("known"):
            columns = fire_columns(frame)
            known = firestore.known_keys(store, columns.keys)
        with clock("triage"):
            static_test, farmland_test = _heat_source_tests(store)
            tri = triage(frame, grid, policy=policy, known_keys=known,
                         burn_days=firestore.burn_days(store, policy, now), columns=columns,
                         zone_test=_zone_test(store), now=now, static_test=static_test,
                         farmland_test=farmland_test)
        # While the incidents, tasks and events are written (DuckDB releases the GIL), two threads work out the
        # tasks' priorities, due times and titles, lay out the new detections' rows and find the passes seen.
        bounds = regionstore.bounds(store)
        with ThreadPoolExecutor(max_workers=2) as helpers:
            plan = helpers.submit(plan_fire_dispatch, tri.incidents, policy=policy, now=now)
            laid_out = (helpers.submit(firestore.detection_rows, frame, tri, batch=batch,
                                       source_label=source_label) if len(tri.points) else None)
            passes_seen = helpers.submit(observed_passes, tri.points, bounds)
            with clock("dispatch"):
                dispatched = dispatch_fire_incidents(store, tri.incidents, policy=policy, now=now, plan=plan)
                checks = _open_checks(store, tri.repeated_cells, policy=policy, now=now)
            with clock("store"):
                if laid_out is not None:
                    rows, variants = laid_out.result()
                    store.insert_arrow("fire_variants", variants)
                    store.insert_arrow("fire_detections", rows)
                passes = firestore.record_passes(store, passes_seen.result(), batch)
        summary = {
            "file": path.name,
            "batch": batch,
            "read": int(result.read),
            "rejected": int(len(result.rejected)),
            **tri.summary(),
            "incidents": dispatched["incidents"],
            "tasks_created": dispatched["tasks_created"],
            "coverage_gaps": dispatched["coverage_gaps"],
            "checks_opened": checks,
            "passes": passes,
        }
        firestore.finish_batch(store, batch, json.dumps(summary, ensure_ascii=False), result.rejected)
        audit(store, actor=actor_name(actor), action="fires.ingest", subject=path.name, detail=summary)
        committed = clock.start("commit")  # the commit seals the new task events (gridwatch.audit)
    committed()
    return {**summary, "stage_seconds": clock.seconds}


def _open_checks(store: Store, cells: pd.DataFrame, *, policy: DispatchPolicy, now: dt.datetime) -> int:
    """One 疑似固定热源 — 请核实 check per cell that keeps burning, while none is open (nothing when none does)."""
    if not len(cells):
        return 0
    from gridwatch import heatsources

    return heatsources.open_heat_source_checks(store, cells, policy=policy, now=now)


def ingest_fires(store: Store, actor: Actor, paths: list[str | Path], *,
                 policy: DispatchPolicy | None = None) -> dict[str, Any]:
    """Ingest several FIRMS files (each all or nothing) and add up the counts."""
    files = [ingest_fire_file(store, actor, p, policy=policy) for p in paths]
    total: dict[str, Any] = {k: 0 for k in ("read", "accepted", "rejected", "duplicates", "outside_region",
                                             "incidents", "tasks_created", "coverage_gaps", "checks_opened")}
    reasons: dict[str, int] = {}
    for f in files:
        for k in total:
            total[k] += f[k]
        for r, n in f["not_dispatched"].items():
            reasons[r] = reasons.get(r, 0) + n
    return {**total, "not_dispatched": reasons, "files": files}


def fire_rejects(store: Store, actor: Actor, batch: int) -> pd.DataFrame:
    """Rows a file could not give, with line, reason and the original text (for whoever may ingest)."""
    require_system(actor, "fires.rejects")
    return firestore.rejects(store, batch)


def fire_days(store: Store, actor: Actor, *, policy: DispatchPolicy | None = None) -> pd.DataFrame:
    """Per local day: detections in the region, incidents, passes observed, and the day's status.

    ``status`` is ``fire`` (detections dispatched), ``observed`` (a satellite
    passed over the region, no fire to dispatch) or ``not_observed`` (no pass
    known): a quiet day is never confused with a day nobody looked. Detections count on the cells the actor may
    see; passes over the region are facts of the whole region.
    """
    require(store, actor, "cell.view")
    policy = policy or policy_of(store).dispatch
    scope, params = scope_sql(actor)
    tz_hours = int(pd.Timestamp("2024-01-01", tz=policy.timezone).utcoffset().total_seconds() // 3600)
    points = firestore.counts_by_day(store, tz_hours, scope, params)
    passes = firestore.passes_by_day(store, tz_hours)
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


def fire_summary(store: Store, actor: Actor) -> dict[str, Any]:
    """Counts for the fire page on the cells the actor may see: detections by outcome and reason, incidents,
    tasks by state, heat-source checks waiting for an answer (detections outside the region count for system
    actors only)."""
    require(store, actor, "cell.view")
    scope, params = scope_sql(actor)
    by = {OUTCOMES[code]: n for code, n in firestore.outcome_counts(store, scope, params).items()}
    return {
        "detections": sum(by.values()),
        "in_region": sum(n for outcome, n in by.items() if outcome != "outside_region"),
        "dispatched": by.get("dispatched", 0),
        "not_dispatched": {r: by[r] for r in REASONS if r in by},
        "incidents": firestore.incident_count(store, scope, params),
        "tasks": firestore.task_state_counts(store, scope, params),
        "coverage_gaps": firestore.coverage_gap_count(store, scope, params),
        "heat_source_checks": firestore.heat_source_check_count(store, scope, params),
        "demo": firestore.has_demo(store),
    }


def fire_tasks(store: Store, actor: Actor, *, limit: int = 200) -> pd.DataFrame:
    """The newest fire-check tasks on the cells the actor may see, with their cell, place, assignee and due time."""
    require(store, actor, "cell.view")
    scope, params = scope_sql(actor, "t.cell")
    df = firestore.newest_tasks(store, scope, params, limit=limit)
    df["cell"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df


def fire_cells(store: Store, actor: Actor) -> pd.DataFrame:
    """Cells the actor may see with dispatched detections (hex id, count), for the map."""
    require(store, actor, "cell.view")
    scope, params = scope_sql(actor)
    df = firestore.dispatched_cells(store, scope, params)
    df["cell"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df


def fetch_fires(store: Store, actor: Actor, settings: Settings, *, days: int | None = None,
                client: FirmsClient | None = None) -> dict[str, Any]:
    """Fetch the region's last ``days`` of detections from the FIRMS area API and ingest them.

    Every request is logged in ``fetch_log`` with its outcome; a header-only
    answer is zero fires, not an error. Returns the per-source outcomes and the
    added-up ingest counts. A job or the command line fetches.
    """
    require_system(actor, "fires.fetch")
    if client is None:
        if not settings.firms_map_key:
            raise ValidationError("No FIRMS MAP_KEY is configured; set GRIDWATCH_FIRMS_MAP_KEY or firms_map_key "
                                  "in gridwatch.toml.")
        client = FirmsClient(settings.firms_map_key, base_url=settings.firms_base_url)
    bbox = region_bbox(regionstore.bounds(store))
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
                    summary = ingest_fire_file(store, actor, path)
                batch = summary["batch"]
                ingested.append(summary)
            firestore.log_fetch(store, fetched, source, batch)
            outcomes.append({"source": source, "status": fetched.status, "rows": fetched.rows,
                             "message": fetched.message, "batch": batch})
    totals = {k: sum(s[k] for s in ingested) for k in ("read", "accepted", "duplicates", "outside_region",
                                                        "incidents", "tasks_created")}
    return {"fetches": outcomes, **totals}


def fetch_log(store: Store, actor: Actor, *, limit: int = 50) -> pd.DataFrame:
    """The latest FIRMS fetches with their outcome (facts of the whole region, for anyone who sees cells)."""
    require(store, actor, "cell.view")
    return firestore.fetch_log(store, limit=limit)


#: a GPS position from the device (re-exported for the screens)
Fix = workflow.Fix
