"""Reports: the ten-day township ranking over a million fire points and 200,000 tasks, and the county report page."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from benchmarks import Measurement, Result, Target, benchmark
from benchmarks.common import YICHUAN, copy_database, measure
from gridwatch import services
from gridwatch.audit import open_sealed
from gridwatch.periods import xun
from gridwatch.reports import build_report

N_POINTS = 1_000_000
N_TASKS = 200_000
XUN_DAY = dt.date(2024, 6, 15)          # the 旬 2024-06-11 … 06-20 (Beijing)
PASSES = ((2, 50), (5, 35), (14, 15), (18, 10))
FINDINGS = np.array(["confirmed_burning", "extinguished", "false_alarm", "industrial_heat_source"])


@cache
def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="gridwatch-bench-reports-"))


@cache
def demo_db() -> Path:
    """The demo county (14 townships, 132 villages, ≈1,900 cells, demo people, fires and tasks)."""
    path = _workdir() / "demo.duckdb"
    with open_sealed(str(path)) as store:
        services.init_region(store, services.CLI, region=YICHUAN, resolution=8, demo_data=True)
    return path


@cache
def big_db(seed: int = 20240611) -> Path:
    """The demo county plus 1,000,000 fire points (all in the 旬), 200,000 incidents with their fire-check tasks
    and ≈ 550,000 task events (arrival, report with a finding, some escalations), stored in bulk."""
    path = _workdir() / "big.duckdb"
    copy_database(demo_db(), path)
    rng = np.random.default_rng(seed)
    with open_sealed(str(path)) as store:
        cells = store.query_df("SELECT cell, lat, lng, county_code, township_code, village_code FROM cells")
        first, _ = xun(XUN_DAY).utc_bounds()
        day = rng.integers(0, 10, N_TASKS)
        hhmm = np.asarray(PASSES)[rng.integers(0, len(PASSES), N_TASKS)]
        acq = (np.datetime64(first + dt.timedelta(hours=8)) + day.astype("timedelta64[D]")
               + (hhmm[:, 0] * 60 + hhmm[:, 1]).astype("timedelta64[m]") - np.timedelta64(8, "h"))
        where = cells.iloc[rng.integers(0, len(cells), N_TASKS)].reset_index(drop=True)
        keys = np.arange(10_000_000, 10_000_000 + N_TASKS, dtype=np.int64)
        narrow = store.scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'fire_incidents'")
        incidents = {
            "key": keys, "cell": where.cell.to_numpy(), "acq_time": acq.astype("datetime64[us]"),
            "points": np.full(N_TASKS, 5, dtype=np.int32), "max_frp": rng.gamma(2, 6, N_TASKS),
            "in_no_burn_zone": np.zeros(N_TASKS, dtype=bool),
            "created_at": np.full(N_TASKS, np.datetime64("2024-06-21T00:00", "us"))}
        if narrow:  # migration 0008: incidents are a view over fire_incidents
            store.insert_arrow("fire_incidents", pa.table({**incidents, "satellite": np.ones(N_TASKS, dtype=np.int16)}))
        else:
            store.insert_arrow("incidents", pa.table({
                **incidents, "satellite": np.full(N_TASKS, "Aqua"),
                "township_code": where.township_code.to_numpy(), "village_code": where.village_code.to_numpy()}))
        of = rng.integers(0, N_TASKS, N_POINTS)
        dispatched = rng.random(N_POINTS) < 0.9
        _insert_points(store, where.iloc[of].reset_index(drop=True), acq[of], dispatched,
                       np.where(dispatched, keys[of], 0))
        base_id = int(store.scalar("SELECT coalesce(max(id), 0) FROM tasks")) + 1
        ids = np.arange(base_id, base_id + N_TASKS, dtype=np.int64)
        created = acq + np.timedelta64(20, "m")
        store.insert_arrow("tasks", pa.table({
            "id": ids, "kind": np.full(N_TASKS, "fire_check"), "cell": where.cell.to_numpy(),
            "source_kind": np.full(N_TASKS, "incident"), "source_key": keys.astype(str),
            "priority": np.full(N_TASKS, 3, dtype=np.int32), "state": np.full(N_TASKS, "closed"),
            "coverage_gap": np.zeros(N_TASKS, dtype=bool), "created_at": created.astype("datetime64[us]"),
            "due_at": (created + np.timedelta64(2, "h")).astype("datetime64[us]"),
            "title": np.full(N_TASKS, "bench")}))
        arrive = created + (rng.uniform(0.2, 6, N_TASKS) * 3600).astype("timedelta64[s]")
        report = arrive + (rng.uniform(0.2, 6, N_TASKS) * 3600).astype("timedelta64[s]")
        started = rng.random(N_TASKS) < 0.8
        escalated = rng.random(N_TASKS) < 0.05
        finding = FINDINGS[rng.integers(0, len(FINDINGS), N_TASKS)]
        events = pd.concat([
            pd.DataFrame({"task_id": ids, "happened_at": created, "from_state": None, "to_state": "assigned",
                          "detail": "{}"}),
            pd.DataFrame({"task_id": ids[escalated], "happened_at": created[escalated] + np.timedelta64(3, "h"),
                          "from_state": "assigned", "to_state": "escalated", "detail": '{"overdue": true}'}),
            pd.DataFrame({"task_id": ids[started], "happened_at": arrive[started], "from_state": "assigned",
                          "to_state": "in_progress", "detail": "{}"}),
            pd.DataFrame({"task_id": ids[started], "happened_at": report[started], "from_state": "in_progress",
                          "to_state": "reported",
                          "detail": pd.Series(finding[started]).map(lambda f: json.dumps({"finding": f})).to_numpy()}),
        ], ignore_index=True)
        events["id"] = np.arange(10_000_000, 10_000_000 + len(events), dtype=np.int64)
        events["actor"] = "bench"
        events["happened_at"] = events.happened_at.astype("datetime64[us]")
        store.insert_arrow("task_events", pa.Table.from_pandas(events, preserve_index=False))
        store.execute("CHECKPOINT")
    return path


def _insert_points(store, pts: pd.DataFrame, acq: np.ndarray, dispatched: np.ndarray, incident: np.ndarray) -> None:
    """Store detections in bulk: into the narrow ``fire_detections`` table behind the ``fire_points`` view when the
    schema has it (migration 0008), else into the ``fire_points`` table."""
    n = len(pts)
    if store.scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'fire_detections'"):
        store.execute("INSERT INTO fire_variants (batch_id, variant, source, version) VALUES (1, 9, 'BENCH', '6.1')")
        store.insert_arrow("fire_detections", pa.table({
            "key": np.arange(n, dtype=np.int64) + 50_000_000, "batch_id": np.ones(n, dtype=np.int64),
            "variant": np.full(n, 9, dtype=np.int16), "satellite": np.ones(n, dtype=np.int16),
            "latitude": pts.lat.to_numpy(), "longitude": pts.lng.to_numpy(), "acq_time": acq.astype("datetime64[us]"),
            "confidence": np.full(n, 80, dtype=np.int16), "confidence_class": np.ones(n, dtype=np.int16),
            "cell": pts.cell.to_numpy(), "outcome": np.where(dispatched, 0, 2).astype(np.int16),
            "in_no_burn_zone": np.zeros(n, dtype=bool),
            "incident_key": pa.array(incident, mask=~dispatched)}))
        return
    store.insert_arrow("fire_points", pa.table({
        "key": np.arange(n, dtype=np.int64) + 50_000_000, "batch_id": np.ones(n, dtype=np.int64),
        "source": np.full(n, "BENCH"), "satellite": np.full(n, "Aqua"),
        "instrument": np.full(n, "MODIS"), "latitude": pts.lat.to_numpy(), "longitude": pts.lng.to_numpy(),
        "acq_time": acq.astype("datetime64[us]"), "confidence": np.full(n, 80, dtype=np.int32),
        "confidence_class": np.full(n, "nominal"), "cell": pts.cell.to_numpy(),
        "in_region": np.ones(n, dtype=bool), "county_code": pts.county_code.to_numpy(),
        "township_code": pts.township_code.to_numpy(), "village_code": pts.village_code.to_numpy(),
        "dispatch": np.where(dispatched, "dispatched", "not_dispatched"),
        "reason": np.where(dispatched, "", "persistent_heat"),
        "incident_key": pa.array(incident, mask=~dispatched)}))


def _page_calls(store, user, *, date: str) -> dict:
    """What one run of the report page computes for a county head on its default tab set (the dossier waits for
    its toggle; downloads are made when clicked)."""
    units = services.report_units(store, user)
    services.report_latest_day(store, services.CLI)
    report = services.report_build(store, user, kind="xun", date=date, level="township", unit=str(units.code.iloc[0]))
    report.to_json()
    table = services.report_table(report)
    services.report_daily(report)
    services.report_response_histogram(store, services.CLI, report)
    svg, _ = services.report_map(store, services.CLI, report, "fire_points")
    services.report_bulletin(store, services.CLI, report, with_map=False)
    return {"rows": len(table), "svg_bytes": len(svg)}


@benchmark
def reports_xun_ranking_1m() -> Result:
    """The ten-day township ranking of the county (every metric, rank change) over 1 M points and 200 k tasks."""
    path = big_db()
    with open_sealed(str(path)) as store:
        period = xun(XUN_DAY)
        ours = measure("reports_xun_ranking_1m", lambda: build_report(store, period, level="township",
                                                                      unit=YICHUAN), repeats=5)
        first, after = period.utc_bounds()
        narrow = store.scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'fire_detections'")
        # the plainest count per township over the same rows: detections joined to their cell's township
        source = "fire_detections" if narrow else "fire_points"
        base = measure("plain_count_group_by_township", lambda: store.query_df(
            f"SELECT c.township_code, count(*) FROM {source} f JOIN cells c ON c.cell = f.cell"
            " WHERE f.acq_time >= ? AND f.acq_time < ? GROUP BY c.township_code", [first, after]), repeats=5)
        view = measure("count_through_fire_points_view", lambda: store.query_df(
            "SELECT township_code, count(*) FROM fire_points WHERE acq_time >= ? AND acq_time < ?"
            " GROUP BY township_code", [first, after]), repeats=1, warmup=False)
        facts = {"fire_points": int(store.scalar("SELECT count(*) FROM fire_points")),
                 "tasks": int(store.scalar("SELECT count(*) FROM tasks")),
                 "task_events": int(store.scalar("SELECT count(*) FROM task_events")),
                 "townships": int(len(ours.value.rows)),
                 "fire_points_in_ranking": int(ours.value.rows.fire_points.sum()),
                 "same_count_through_the_fire_points_view_seconds": round(view.seconds, 3)}
    return Result(Measurement(name=ours.name, seconds=ours.seconds, repeats=ours.repeats, samples=ours.samples,
                              cpu_seconds=ours.cpu_seconds), base, Target(max_seconds=1.0), details=facts)


@benchmark
def reports_page_county() -> Result:
    """Server time of the county report page: its services calls on the demo county, then with 1 M points;
    and the whole page script under Streamlit's AppTest."""
    from gridwatch import auth

    timings = {}
    for name, path, date in (("demo", demo_db(), "2026-06-19"), ("1m_points", big_db(), XUN_DAY.isoformat())):
        with open_sealed(str(path)) as store:
            user = auth.load_user(store, "county")
            m = measure(f"reports_page_services_{name}", lambda: _page_calls(store, user, date=date), repeats=5)
            timings[name] = (m, m.value)
    ours = timings["1m_points"][0]
    with open_sealed(str(demo_db())) as store:
        base = measure("fire_page_services_demo", lambda: (services.fire_summary(store, services.CLI),
                                                           services.fire_days(store, services.CLI),
                                                           services.fire_tasks(store, services.CLI)), repeats=5)
    with open_sealed(str(big_db())) as store:
        user = auth.load_user(store, "county")
        dossier = measure("dossier_one_township_1m", lambda: services.report_dossier(
            store, user, unit="410329-D01", kind="xun", date=XUN_DAY.isoformat()), repeats=3)
        excel = measure("excel_download_1m", lambda: services.report_xlsx(services.report_build(
            store, user, kind="xun", date=XUN_DAY.isoformat(), unit=YICHUAN)), repeats=3)
    apptest = _apptest_seconds(demo_db())
    details = {name: {"seconds": round(m.seconds, 4), **value} for name, (m, value) in timings.items()}
    details["apptest_page_run_demo_seconds"] = apptest
    details["dossier_toggle_1m_seconds"] = {"seconds": round(dossier.seconds, 3), "events": int(len(dossier.value))}
    details["excel_download_click_1m_seconds"] = round(excel.seconds, 3)
    return Result(Measurement(name="reports_page_county", seconds=ours.seconds, repeats=ours.repeats,
                              samples=ours.samples, cpu_seconds=ours.cpu_seconds), base,
                  Target(max_seconds=1.0, note="services of one page run, county with 1 M points"), details=details)


def _apptest_seconds(db: Path) -> list[float]:
    """Wall time of full AppTest runs of the report page (signed in as the county head), after a warm-up."""
    import os

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from gridwatch.config import REPO_ROOT

    copy = _workdir() / "app.duckdb"
    copy_database(db, copy)
    old = os.environ.get("GRIDWATCH_DB")
    os.environ["GRIDWATCH_DB"] = str(copy)
    cwd = os.getcwd()
    os.chdir(REPO_ROOT)
    try:
        st.cache_resource.clear()
        with open_sealed(str(copy)) as store:
            token = services.sign_in(store, "county", services.DEMO_PASSWORD).token
        times = []
        for _ in range(4):
            at = AppTest.from_file(str(REPO_ROOT / "pages" / "reports.py"), default_timeout=120)
            at.session_state["token"] = token
            t0 = time.perf_counter()
            at.run()
            times.append(round(time.perf_counter() - t0, 3))
            assert not at.exception, at.exception
        return times[1:]
    finally:
        st.cache_resource.clear()
        os.chdir(cwd)
        if old is None:
            os.environ.pop("GRIDWATCH_DB", None)
        else:
            os.environ["GRIDWATCH_DB"] = old


N_PROBLEMS = 100_000
N_COMPLAINTS = 20_000


@benchmark
def reports_loop_metrics_100k() -> Result:
    """The closed-loop columns of the ten-day township ranking (problems found, closed, 闭环率, overdue, without a
    deadline, repeats; hotline complaints answered) over 100,000 problems and 20,000 complaints."""
    from gridwatch.reports import ReportRules, _context, _units, compute_metrics  # the engine the ranking runs

    path = _workdir() / "loop.duckdb"
    shutil.copy(demo_db(), path)
    rng = np.random.default_rng(20240611)
    with open_sealed(str(path)) as store:
        period = xun(XUN_DAY)
        first, _ = period.utc_bounds()
        cells = store.query_df("SELECT cell FROM cells").cell.to_numpy(dtype=np.int64)
        found = np.datetime64(first) + rng.integers(-20 * 24 * 60, 10 * 24 * 60, N_PROBLEMS).astype("timedelta64[m]")
        days = rng.choice([3, 7, 30, -1], N_PROBLEMS)  # -1: no deadline configured for the category
        deadline = np.where(days > 0, found + (np.maximum(days, 0) * 24 * 60).astype("timedelta64[m]"),
                            np.datetime64("NaT"))
        closed = rng.random(N_PROBLEMS) < 0.6
        closed_at = np.where(closed, found + rng.integers(60, 40 * 24 * 60, N_PROBLEMS).astype("timedelta64[m]"),
                             np.datetime64("NaT"))
        ids = np.arange(1, N_PROBLEMS + 1, dtype=np.int64)
        store.insert_arrow("problems", pa.table({
            "id": ids, "category": rng.choice(["bare_land", "coal_boiler", "other"], N_PROBLEMS),
            "cell": cells[rng.integers(0, len(cells), N_PROBLEMS)], "object_key": np.full(N_PROBLEMS, ""),
            "finding_task_id": ids + 10**9, "finding": np.full(N_PROBLEMS, "bench"),
            "state": np.where(closed, "closed", "rectifying"), "found_at": found.astype("datetime64[us]"),
            "deadline_at": pa.array(deadline.astype("datetime64[us]"), from_pandas=True),
            "closed_at": pa.array(closed_at.astype("datetime64[us]"), from_pandas=True),
            "repeat_of": pa.array(np.where(rng.random(N_PROBLEMS) < 0.1, np.maximum(ids - 50, 1), None),
                                  type=pa.int64(), from_pandas=True)}))
        store.execute("INSERT INTO integrations (id, name, source, unit_code, token_hash, rate_per_minute,"
                      " created_at, created_by) VALUES (1, 'bench-hotline', 'hotline', ?, 'x', 600, now(), 'bench')",
                      [YICHUAN])
        received = np.datetime64(first) + rng.integers(0, 10 * 24 * 60, N_COMPLAINTS).astype("timedelta64[m]")
        store.insert_arrow("alarms", pa.table({
            "id": np.arange(1, N_COMPLAINTS + 1, dtype=np.int64), "integration_id": np.ones(N_COMPLAINTS, np.int64),
            "external_id": [f"B-{k}" for k in range(N_COMPLAINTS)], "source": np.full(N_COMPLAINTS, "hotline"),
            "category": np.full(N_COMPLAINTS, "other"), "lat": np.zeros(N_COMPLAINTS), "lng": np.zeros(N_COMPLAINTS),
            "crs": np.full(N_COMPLAINTS, "wgs84"), "cell": cells[rng.integers(0, len(cells), N_COMPLAINTS)],
            "observed_at": received.astype("datetime64[us]"), "received_at": received.astype("datetime64[us]")}))
        ctx = _context(store, period, level="township", unit=YICHUAN, rules=ReportRules(), now=None, cropland=None)
        units = _units(ctx)
        loop = {"problems_found", "closure_rate", "complaints"}
        ours = measure("reports_loop_metrics_100k", lambda: compute_metrics(ctx, units, only=loop), repeats=5)
        base = measure("plain_count_of_problems_by_township", lambda: store.query_df(
            "SELECT c.township_code, count(*) FROM problems p JOIN cells c ON c.cell = p.cell"
            " WHERE p.found_at >= ? GROUP BY 1", [first]), repeats=5)
        facts = {"problems": N_PROBLEMS, "complaints": N_COMPLAINTS, "townships": int(len(ours.value)),
                 "problems_found_in_xun": int(ours.value.problems_found.sum()),
                 "settled_in_xun": int(ours.value.loop_due.sum())}
    return Result(ours, base, Target(max_seconds=0.5), details=facts)
