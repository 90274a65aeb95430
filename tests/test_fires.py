"""Fire points end to end: ingest of real FIRMS files, triage, incidents, dispatch, idempotence, the ledger."""

from __future__ import annotations

import datetime as dt
import json

import h3
import numpy as np
import pandas as pd
import pytest
import shapely

from gridwatch import regionstore, services
from gridwatch.cli import main
from gridwatch.fires import fire_keys, triage
from gridwatch.audit import open_sealed
from gridwatch.storage import open_store
from gridwatch.policy import DispatchPolicy

from conftest import SHARED_DATA, copy_db, needs_shared

FIRES = SHARED_DATA / "fires"
FEB_2022 = FIRES / "modis_c61_nrt_global24h_2022-02-26_27_henan_bbox.csv"
ALL_FILES = sorted(FIRES.glob("*.csv")) if FIRES.is_dir() else []


@pytest.fixture(scope="module")
def province_db(tmp_path_factory):
    """Henan at resolution 7 with no people (every task is a coverage gap)."""
    path = tmp_path_factory.mktemp("prov") / "henan.duckdb"
    with open_sealed(str(path)) as s:
        services.init_region(s, services.CLI, region="410000", resolution=7)
    return path


@pytest.fixture
def province(province_db, tmp_path):
    path = copy_db(province_db, tmp_path, "henan.duckdb")  # with its audit key and head
    with open_sealed(str(path)) as s:
        yield s


def _province_geom(store):
    return shapely.from_wkb(bytes(store.scalar("SELECT ST_AsWKB(geom) FROM units WHERE code = '410000'")))


@needs_shared()
@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_shared_file_ingests_with_counts_matching_an_independent_check(province, path):
    result = services.ingest_fires(province, services.CLI, [path])
    frame = pd.read_csv(path)
    assert result["read"] == len(frame)
    assert result["rejected"] == 0
    # Independent check: a point is in the region when its H3 cell overlaps the province polygon.
    geom = _province_geom(province)
    shapely.prepare(geom)
    uniq = frame.drop_duplicates(["latitude", "longitude", "acq_date", "acq_time", "satellite"])
    inside = [geom.intersects(shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(
        h3.latlng_to_cell(la, ln, 7))])) for la, ln in zip(uniq.latitude, uniq.longitude)]
    assert result["accepted"] == len(uniq)
    assert result["outside_region"] == len(uniq) - sum(inside)
    in_region = province.scalar("SELECT count(*) FROM fire_points WHERE in_region")
    assert in_region == sum(inside)
    # Points well inside a county (≥ 2 km from its border) carry that county.
    pts = province.query_df("SELECT latitude, longitude, county_code FROM fire_points WHERE in_region")
    counties = province.query_df("SELECT code, ST_AsWKB(geom) AS wkb FROM units WHERE level = 'county'")
    cores = shapely.buffer(shapely.from_wkb([bytes(w) for w in counties.wkb]), -0.02)
    for lat, lng, code in pts.itertuples(index=False):
        holders = counties.code[shapely.contains_xy(cores, lng, lat)].tolist()
        if holders:
            assert holders == [code]


@needs_shared()
def test_reingest_and_overlapping_files_create_nothing_new(province):
    first = services.ingest_fires(province, services.CLI, [FIRES / "modis_c61_nrt_global24h_2025-04-22_23_henan_bbox.csv"])
    tasks = province.scalar("SELECT count(*) FROM tasks")
    again = services.ingest_fires(province, services.CLI, [FIRES / "modis_c61_nrt_global24h_2025-04-22_23_henan_bbox.csv"])
    assert again["accepted"] == 0 and again["duplicates"] == first["read"] and again["tasks_created"] == 0
    assert province.scalar("SELECT count(*) FROM tasks") == tasks
    # The next day's file repeats the 2025-04-23 detections: those merge.
    overlap = services.ingest_fires(province, services.CLI, [FIRES / "modis_c61_nrt_global24h_2025-04-23_24_henan_bbox.csv"])
    a = pd.read_csv(FIRES / "modis_c61_nrt_global24h_2025-04-22_23_henan_bbox.csv")
    b = pd.read_csv(FIRES / "modis_c61_nrt_global24h_2025-04-23_24_henan_bbox.csv")
    key = ["latitude", "longitude", "acq_date", "acq_time", "satellite"]
    shared = len(b.merge(a, on=key))
    assert shared > 0 and overlap["duplicates"] == shared
    assert province.scalar("SELECT count(*) FROM fire_points") == first["accepted"] + overlap["accepted"]


@needs_shared()
def test_demo_county_february_2022_file_dispatches_two_fire_checks(demo_store):
    before = demo_store.scalar("SELECT count(*) FROM tasks")
    result = services.ingest_fires(demo_store, services.CLI, [FEB_2022])
    assert result["read"] == 122
    assert result["outside_region"] == 120
    assert result["incidents"] == 2 and result["tasks_created"] == 2
    new = demo_store.query_df(
        "SELECT t.*, p.person_key FROM tasks t LEFT JOIN people p ON p.id = t.assignee_id"
        " WHERE t.kind = 'fire_check' ORDER BY t.id DESC LIMIT 2")
    assert demo_store.scalar("SELECT count(*) FROM tasks") == before + 2
    for task in new.itertuples():
        chain = services.responsible_at(demo_store, services.CLI, **_cell_centre(task.cell))["chain"]
        inspectors = [c["person_key"] for c in chain if c["role"] == "inspector"]
        if inspectors:
            assert task.person_key == inspectors[0] and task.assigned_role == "inspector"
            assert not task.coverage_gap
        else:
            assert task.coverage_gap
        assert task.state in ("assigned", "open")
        events = demo_store.query("SELECT * FROM task_events WHERE task_id = ?", [task.id])
        assert len(events) == 1 and events[0]["to_state"] == task.state
    # 2022-02-26 lies in the demo's autumn-and-winter key period (秋冬季节, 10-01..03-31, a demo setting): the
    # key-period priority and the two-hour SLA
    assert (new.priority == 3).all()
    hours = (new.due_at - new.created_at).dt.total_seconds() / 3600
    assert (hours == 2).all()


def test_without_key_periods_configured_a_county_has_none(county):
    """The plans give no dates for their key periods: a database that sets none dispatches at normal priority."""
    result = services.ingest_fires(county, services.CLI, [FEB_2022])
    assert result["tasks_created"] == 2
    new = county.query_df("SELECT priority, due_at, created_at FROM tasks WHERE kind = 'fire_check'")
    assert (new.priority == 2).all()
    assert ((new.due_at - new.created_at).dt.total_seconds() / 3600 == 24).all()


def _cell_centre(cell: int) -> dict:
    lat, lng = h3.cell_to_latlng(h3.int_to_str(int(cell)))
    return {"lat": lat, "lng": lng}


def test_the_demo_database_carries_labelled_demo_detections_and_sets_the_plant_aside(demo_store):
    sources = {r["source"] for r in demo_store.query("SELECT DISTINCT source FROM fire_points")}
    assert sources == {"DEMO（演示火点）"}
    n = demo_store.scalar("SELECT count(*) FROM fire_points")
    assert 60 < n < 400
    reasons = {r["reason"]: r["n"] for r in demo_store.query(
        "SELECT reason, count(*) AS n FROM fire_points GROUP BY reason")}
    # the plant's repeated heat is counted and dispatched, never set aside as persistent heat
    assert reasons.get("persistent_heat", 0) == 0
    assert demo_store.scalar("SELECT count(*) FROM tasks WHERE kind = 'fire_check'") == demo_store.scalar(
        "SELECT count(*) FROM incidents")
    # the summer harvest is a key period: 2-hour SLA, raised priority
    assert demo_store.scalar("SELECT min(priority) FROM tasks WHERE kind = 'fire_check'") == 3


def _frame(rows):
    base = dict(line=2, latitude=34.4, longitude=112.4, acq_time=pd.Timestamp("2024-06-01 05:30", tz="UTC"),
                satellite="Aqua", instrument="MODIS", confidence=80, confidence_class="high", brightness=320.0,
                bright_t31=295.0, frp=10.0, scan=1.0, track=1.0, daynight="D", version="6.1NRT", fire_type=pd.NA,
                source="FIRMS")
    return pd.DataFrame([{**base, **r} for r in rows]).astype({"confidence": "Int64", "fire_type": "Int64"})


def test_triage_reasons_incidents_and_duplicates(demo_store):
    grid = regionstore.grid(demo_store)
    lat, lng = 34.42, 112.42
    frame = _frame([
        {"latitude": lat, "longitude": lng},                            # dispatched
        {"latitude": lat + 0.0005, "longitude": lng},                   # same cell and pass: same incident
        {"latitude": lat, "longitude": lng},                            # exact duplicate in the file
        {"latitude": lat, "longitude": lng, "satellite": "Terra",
         "acq_time": pd.Timestamp("2024-06-01 02:50", tz="UTC")},        # another pass: another incident
        {"latitude": lat + 0.05, "longitude": lng, "confidence": 10, "confidence_class": "low"},
        {"latitude": lat - 0.05, "longitude": lng, "fire_type": 2},
        {"latitude": 30.0, "longitude": 112.4},                          # outside the county
    ])
    result = triage(frame, grid, policy=DispatchPolicy(), known_keys=np.zeros(0, dtype=np.int64))
    assert result.duplicates == 1
    assert result.outside_region == 1
    assert result.not_dispatched == {"static_source": 1, "low_confidence": 1}
    assert len(result.incidents) == 2
    assert sorted(result.incidents.points) == [1, 2]
    known = fire_keys(frame.latitude.to_numpy(), frame.longitude.to_numpy(), frame.acq_time,
                      frame.satellite.to_numpy())[:1]
    again = triage(frame, grid, policy=DispatchPolicy(), known_keys=known)
    assert again.duplicates == 2


def test_a_cell_burning_on_many_days_is_flagged_and_still_dispatched(demo_store):
    grid = regionstore.grid(demo_store)
    days = pd.date_range("2024-03-01 05:30", periods=5, freq="D", tz="UTC")
    frame = _frame([{"latitude": 34.3, "longitude": 112.3, "acq_time": d} for d in days])
    now = dt.datetime(2024, 3, 6, 12, 0)
    result = triage(frame, grid, policy=DispatchPolicy(persistent_days=4), known_keys=np.zeros(0, np.int64), now=now)
    assert result.not_dispatched == {}
    assert result.flagged == {"possible_static_source": 5}
    assert len(result.incidents) == 5 and result.incidents.possible_static_source.all()
    # the window ends at now: long after, the same days flag nothing (and are still dispatched)
    later = triage(frame, grid, policy=DispatchPolicy(persistent_days=4), known_keys=np.zeros(0, np.int64),
                   now=now + dt.timedelta(days=120))
    assert later.flagged == {} and len(later.incidents) == 5


@needs_shared()
def test_cli_fires_ingest_json_and_rejects_csv(demo_copy, tmp_path, capsys):
    db = demo_copy
    bad = tmp_path / "bad.csv"
    text = FEB_2022.read_text(encoding="utf-8").splitlines()
    bad.write_text("\n".join(text[:3] + ["34.4,112.4,oops"] + [text[3].replace("2022-02-26", "2022-13-45")] + text[4:])
                   + "\n", encoding="utf-8")
    lines: list[str] = []
    rejects = tmp_path / "rejects.csv"
    assert main(["fires", "ingest", str(bad), "--db", str(db), "--json", "--rejects-csv", str(rejects)],
                out=lines.append) == 0
    result = json.loads(lines[0])
    for key in ("read", "accepted", "rejected", "duplicates", "outside_region", "not_dispatched", "incidents",
                "tasks_created"):
        assert key in result
    assert result["rejected"] == 2 and result["read"] == 123
    rows = pd.read_csv(rejects, encoding="utf-8-sig")
    assert sorted(rows.line) == [4, 5] and set(rows.columns) >= {"line", "reason", "raw"}


def test_fetch_ingests_and_logs_every_outcome(demo_store):
    from urllib.parse import urlsplit

    from firms_standin import serve

    from gridwatch.config import Settings
    from gridwatch.firms import FirmsClient

    secret = "0123456789abcdef0123456789abcdef"
    with serve(flaky_failures=0) as standin:
        assert urlsplit(standin.base_url).hostname == "127.0.0.1"
        settings = Settings.load(env={}, config_path=None, firms_sources="MODIS_NRT")
        runs = {}
        for behaviour in ("good", "empty", "limited", "badkey"):
            client = FirmsClient(f"{behaviour}-{secret}", base_url=standin.base_url, retries=0, backoff_s=0)
            runs[behaviour] = services.fetch_fires(demo_store, services.CLI, settings, days=2, client=client)
    assert runs["good"]["fetches"][0]["status"] == "ok" and runs["good"]["read"] == 20
    assert runs["empty"]["fetches"][0]["status"] == "empty" and runs["empty"]["read"] == 0
    assert runs["limited"]["fetches"][0]["status"] == "rate_limited"
    assert runs["badkey"]["fetches"][0]["status"] == "bad_key"
    log = services.fetch_log(demo_store, services.CLI)
    assert list(log.status[::-1]) == ["ok", "empty", "rate_limited", "bad_key"]
    assert not log.message.str.contains(secret).any()
    assert demo_store.scalar("SELECT count(*) FROM fetch_log WHERE url LIKE ?", [f"%{secret}%"]) == 0
    # a service that cannot be reached is logged as such, not raised
    down = services.fetch_fires(demo_store, services.CLI, settings, days=2, client=FirmsClient(
        f"good-{secret}", base_url="http://127.0.0.1:9", retries=0, backoff_s=0, timeout_s=0.5))
    assert down["fetches"][0]["status"] in ("error", "timeout")
    assert services.fetch_log(demo_store, services.CLI).status.iloc[0] == down["fetches"][0]["status"]


def test_fetch_without_a_map_key_says_how_to_set_one(demo_store):
    from gridwatch.config import Settings
    from gridwatch.errors import ValidationError

    with pytest.raises(ValidationError, match="GRIDWATCH_FIRMS_MAP_KEY"):
        services.fetch_fires(demo_store, services.CLI, Settings.load(env={}, config_path=None))


def test_days_are_fire_observed_or_not_observed(demo_store):
    days = services.fire_days(demo_store, services.CLI)
    assert set(days.status) <= {"fire", "observed", "not_observed"}
    assert (days.status == "fire").sum() > 10
    assert ((days.status == "fire") == (days.dispatched > 0)).all()
    assert ((days.status == "not_observed") <= ((days.passes == 0) & (days.detections == 0))).all()
    # consecutive calendar days, none missing
    assert (pd.to_datetime(days.day).diff().dropna() == pd.Timedelta(days=1)).all()


# -- storage of detections (migration 0008) ---------------------------------------------------------------------

_OLD_ROWS = [
    # key, batch, source, satellite, instrument, lat, lng, time, confidence, class, brightness, t31, frp, scan,
    # track, daynight, version, type, cell, in_region, county, township, village, zone, dispatch, reason, incident
    (11, 1, "FIRMS", "Aqua", "MODIS", 34.42, 112.42, "2024-06-01 05:30:00", 85, "high", 320.5, 295.1, 12.5, 1.0,
     1.0, "D", "6.1NRT", None, 1001, True, "410329", "41032901", "4103290101", False, "dispatched", "", 77),
    (12, 1, "FIRMS", "NOAA-20", "VIIRS", 34.43, 112.43, "2024-06-01 05:31:00", None, "low", 330.0, 290.0, 3.5,
     0.4, 0.4, "N", "2.0NRT", None, 1001, True, "410329", "41032901", "4103290101", True, "not_dispatched",
     "low_confidence", None),
    (13, 2, "DEMO（演示火点）", "Terra", "MODIS", 30.0, 112.4, "2024-06-02 02:50:00", 40, "nominal", 310.0,
     None, None, None, None, None, None, 2, 2002, False, None, None, None, False, "outside_region", "", None),
]


def test_migration_0008_keeps_stored_detections_and_tasks_behind_the_same_columns():
    from gridwatch.storage import list_migrations, split_sql

    store = open_store(":memory:", migrate=False)
    store.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                  " applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)")
    for number, name, sql in list_migrations():
        if number < 8:
            for statement in split_sql(sql):
                store.execute(statement)
            store.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [number, name])
    store.execute("INSERT INTO cells VALUES (1001, 34.42, 112.42, '410300', '410329', '41032901', '4103290101')")
    store.executemany(f"INSERT INTO fire_points VALUES ({', '.join(['?'] * 27)})", _OLD_ROWS)
    store.execute("INSERT INTO tasks (kind, cell, source_kind, source_key, priority, state, created_at, due_at, title)"
                  " VALUES ('fire_check', 1001, 'incident', '77', 3, 'open', '2024-06-01 06:00', '2024-06-01 08:00',"
                  " 't')")
    store.execute("INSERT INTO incidents VALUES (77, 1001, 'Aqua', '2024-06-01 05:30', 1, 12.5, FALSE, '41032901',"
                  " '4103290101', '2024-06-01 06:00')")
    before = store.query_df("SELECT * FROM fire_points ORDER BY key")
    tasks_before = store.query_df("SELECT * FROM tasks")
    incidents_before = store.query_df("SELECT * FROM incidents")
    assert store.migrate()[0] == "0008_fire_ingest_speed"
    after = store.query_df("SELECT * FROM fire_points ORDER BY key")
    assert list(after.columns) == list(before.columns)
    pd.testing.assert_frame_equal(after, before, check_dtype=False)
    assert after.source.tolist() == ["FIRMS", "FIRMS", "DEMO（演示火点）"]
    assert after.version.tolist()[:2] == ["6.1NRT", "2.0NRT"] and pd.isna(after.version[2])
    tasks_after = store.query_df("SELECT * FROM tasks")
    pd.testing.assert_frame_equal(tasks_after[tasks_before.columns], tasks_before)
    assert tasks_after[["title_key", "title_args"]].values.tolist() == [["", "{}"]]  # 0014: no key read from 't'
    pd.testing.assert_frame_equal(store.query_df("SELECT * FROM incidents"), incidents_before)
    # tasks keep drawing ids from their sequence
    store.execute("INSERT INTO tasks (kind, cell, source_kind, source_key, priority, state, created_at, due_at)"
                  " VALUES ('manual', 1001, 'x', '1', 2, 'open', '2024-06-01 06:00', '2024-06-01 08:00')")
    assert store.query_df("SELECT id FROM tasks ORDER BY id").id.tolist() == [1, 2]


def test_stored_detections_read_back_with_their_text_units_and_outcomes(demo_store, tmp_path):
    grid = regionstore.grid(demo_store)
    lat, lng = 34.42, 112.42
    cell = int(h3.str_to_int(h3.latlng_to_cell(lat, lng, grid.resolution)))
    owners = demo_store.query("SELECT county_code, township_code, village_code FROM cells WHERE cell = ?", [cell])[0]
    text = ("latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,"
            "bright_ti5,frp,daynight\n"
            f"{lat},{lng},330.1,0.39,0.36,2024-03-02,0540,N20,VIIRS,n,2.0NRT,290.2,4.75,D\n"
            f"{lat},{lng + 0.0001},331.0,0.39,0.36,2024-03-02,0540,N20,VIIRS,l,2.0NRT,291.0,,N\n"
            "30.1,112.4,310.0,0.4,0.4,2024-03-02,0540,N,VIIRS,h,2.0NRT,280.0,1.0,D\n")
    path = tmp_path / "viirs.csv"
    path.write_text(text, encoding="utf-8")
    result = services.ingest_fire_file(demo_store, services.CLI, path)
    assert (result["accepted"], result["outside_region"], result["not_dispatched"]) == (3, 1, {"low_confidence": 1})
    assert list(result["stage_seconds"]) == ["read", "checksum", "known", "triage", "dispatch", "store", "commit"]
    rows = demo_store.query(
        "SELECT source, satellite, instrument, confidence, confidence_class, frp, daynight, version, fire_type, cell,"
        " in_region, county_code, township_code, village_code, dispatch, reason, incident_key IS NOT NULL AS inc"
        " FROM fire_points WHERE batch_id = ? ORDER BY latitude DESC, longitude", [result["batch"]])
    assert rows[0] == {"source": "FIRMS", "satellite": "NOAA-20", "instrument": "VIIRS", "confidence": None,
                       "confidence_class": "nominal", "frp": 4.75, "daynight": "D", "version": "2.0NRT",
                       "fire_type": None, "cell": cell, "in_region": True, **owners, "dispatch": "dispatched",
                       "reason": "", "inc": True}
    assert (rows[1]["confidence_class"], rows[1]["frp"], rows[1]["daynight"], rows[1]["dispatch"],
            rows[1]["reason"], rows[1]["inc"]) == ("low", None, "N", "not_dispatched", "low_confidence", False)
    assert (rows[2]["satellite"], rows[2]["in_region"], rows[2]["county_code"], rows[2]["dispatch"]) == (
        "S-NPP", False, None, "outside_region")
    # the dispatched one opened one task, with its first event
    task = demo_store.query("SELECT id, title, state FROM tasks WHERE kind = 'fire_check' ORDER BY id DESC LIMIT 1")[0]
    assert task["title"] == "卫星火点核查 03-02 13:40 NOAA-20 ×1"
    assert demo_store.query("SELECT to_state FROM task_events WHERE task_id = ?", [task["id"]]) == [
        {"to_state": task["state"]}]


def test_keys_stay_those_of_detections_stored_before():
    # the duplicate key of stored rows: splitmix64 over (lat·1e5, lng·1e5, UTC minute, first 8 bytes of the name)
    from gridwatch.fires import hash_columns

    times = pd.Series(pd.to_datetime(["2024-06-01 05:30", "2024-06-01 05:30"], utc=True))
    names = np.array(["NOAA-20", "Custom-Sat-9"], dtype=object)
    got = fire_keys(np.array([34.42, 34.42]), np.array([112.42, 112.42]), times, names)
    minute = 1717219800 // 60
    expected = [hash_columns(np.array([3442000]), np.array([11242000]), np.array([minute]),
                             np.array([int.from_bytes(n.encode()[:8], "little")]))[0] for n in names]
    assert got.tolist() == expected


@needs_shared()
def test_two_ingests_of_one_file_at_once_store_it_once(demo_store):
    """Stored detections and incidents are found by anti-joins, not unique indexes: ingests must take turns."""
    import threading

    before = {t: demo_store.scalar(f"SELECT count(*) FROM {t}") for t in ("fire_detections", "fire_incidents", "tasks")}
    results, failures = [], []
    start = threading.Barrier(2)

    def ingest():
        start.wait()
        try:
            results.append(services.ingest_fire_file(demo_store, services.CLI, FEB_2022))
        except Exception as exc:  # pragma: no cover - shown by the assertion below
            failures.append(exc)

    workers = [threading.Thread(target=ingest) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures
    assert sorted(r["accepted"] for r in results) == [0, 122]
    assert sorted(r["duplicates"] for r in results) == [0, 122]
    assert sum(r["tasks_created"] for r in results) == 2
    after = {t: demo_store.scalar(f"SELECT count(*) FROM {t}") for t in before}
    assert after == {"fire_detections": before["fire_detections"] + 122,
                     "fire_incidents": before["fire_incidents"] + 2, "tasks": before["tasks"] + 2}
