"""Repeated heat handled honestly: a field that burns again and again is counted and dispatched (and checked once);
a known static heat source is counted and not dispatched; the check's answer grows the layer or keeps dispatching;
in a key period nothing on farmland is suppressed; key periods are local settings (across the new year, on 02-29)."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gridwatch import auth, heatsources, layerstore, regionstore, services
from gridwatch.cli import main
from gridwatch.config import Settings
from gridwatch.errors import ValidationError
from gridwatch.fires import DISPATCHED, LOW_CONFIDENCE, STATIC_SOURCE, triage
from gridwatch.policy import Period, Policy, parse_key_periods, rules_in_force
from gridwatch.services._common import policy as policy_of
from gridwatch.workflow import Fix

HEADER = ("latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,"
          "daynight")
#: a field in 伊川县 (the demo county), and another place well away from it
FIELD = (34.30, 112.30)
OTHER = (34.45, 112.40)
#: outside every key period of the demo settings (07-01 … 09-14)
NOW = dt.datetime(2024, 8, 10, 12, 0)
DAYS = ["2024-07-01", "2024-07-10", "2024-07-20", "2024-07-28", "2024-08-05"]
#: the ingest's clock in the summer harvest, and five burn days before it
HARVEST_NOW = dt.datetime(2024, 6, 25, 12, 0)
HARVEST_DAYS = ["2024-06-01", "2024-06-05", "2024-06-10", "2024-06-15", "2024-06-20"]
KEY_PERIODS = {"summer_harvest": "05-25..06-30", "autumn_harvest": "09-15..11-15",
               "spring_ploughing": "03-01..04-30", "autumn_winter": "10-01..03-31"}


def _row(lat: float, lng: float, day: str, hhmm: str = "0535", sat: str = "A") -> str:
    return f"{lat},{lng},320.1,1.0,1.0,{day},{hhmm},{sat},80,6.1NRT,295.0,10.0,D"


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def _ingest(store, path: Path, *, now: dt.datetime, key_periods: dict | None = None) -> dict:
    policy = None
    if key_periods is not None:
        policy = Policy.from_settings(Settings.load(env={}, config_path=None, key_periods=key_periods)).dispatch
    return services.ingest_fire_file(store, services.CLI, path, now=now, policy=policy)


def _geojson(path: Path, features: list[tuple[dict, dict]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": geometry, "properties": properties} for geometry, properties in features]},
        ensure_ascii=False), encoding="utf-8")
    return path


def _point(lat: float, lng: float) -> dict:
    return {"type": "Point", "coordinates": [lng, lat]}


def _square(lat: float, lng: float, half: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[lng - half, lat - half], [lng + half, lat - half],
                                                [lng + half, lat + half], [lng - half, lat + half],
                                                [lng - half, lat - half]]]}


def _publish_source(store, tmp_path: Path, lat: float, lng: float) -> dict:
    path = _geojson(tmp_path / "sources.geojson", [(_point(lat, lng), {"名称": "某砖窑厂", "类型": "砖窑"})])
    return services.layer_load(store, services.CLI, heatsources.STATIC_SOURCES, path, publish=True, crs="EPSG:4326")


def _cell(lat: float, lng: float) -> int:
    return h3.str_to_int(h3.latlng_to_cell(lat, lng, 8))


def _checks(store, cell: int | None = None) -> list[dict]:
    where, params = ("AND cell = ?", [cell]) if cell is not None else ("", [])
    return store.query(f"SELECT id, cell, state, title_key, title_args, source_kind FROM tasks"
                       f" WHERE kind = 'heat_source_check' {where} ORDER BY id", params)


def _fire_tasks(store, cell: int) -> int:
    return int(store.scalar("SELECT count(*) FROM tasks WHERE kind = 'fire_check' AND cell = ?", [cell]))


# -- repeated burning in one field -----------------------------------------------------------------------------

def test_a_field_burning_again_and_again_is_counted_dispatched_and_checked_once(county, tmp_path):
    rows = [_row(*FIELD, d) for d in DAYS] + [_row(*OTHER, "2024-08-01", "0250", "T")]
    result = _ingest(county, _write(tmp_path / "field.csv", rows), now=NOW)
    assert result["accepted"] == 6 and result["not_dispatched"] == {}
    assert result["tasks_created"] == 6 and result["flagged"] == {"possible_static_source": 5}
    assert result["checks_opened"] == 1
    cell = _cell(*FIELD)
    [check] = _checks(county)
    assert check["cell"] == cell and check["state"] == "open" and check["title_key"] == "heat_source_check"
    assert json.loads(check["title_args"]) == {"days": "5", "window": "60"}
    # the field burns again: counted, dispatched, and no second check while the first is open
    again = _ingest(county, _write(tmp_path / "again.csv", [_row(*FIELD, "2024-08-08")]), now=NOW)
    assert again["tasks_created"] == 1 and again["checks_opened"] == 0
    assert len(_checks(county)) == 1 and _fire_tasks(county, cell) == 6
    summary = services.fire_summary(county, services.CLI)
    assert summary["in_region"] == summary["dispatched"] == 7 and summary["heat_source_checks"] == 1


def test_the_check_has_its_own_service_level_hours(county, tmp_path):
    policy = Policy.from_settings(Settings.load(env={}, config_path=None, sla_hours={"heat_source_check": 120}))
    assert policy.sla_hours("heat_source_check") == 120
    rows = [_row(*FIELD, d) for d in DAYS]
    services.ingest_fire_file(county, services.CLI, _write(tmp_path / "f.csv", rows), now=NOW,
                              policy=policy.dispatch)
    [due] = county.query("SELECT due_at - created_at AS span FROM tasks WHERE kind = 'heat_source_check'")
    assert due["span"] == dt.timedelta(hours=120)


# -- a known static heat source ----------------------------------------------------------------------------------

def test_a_known_static_source_is_counted_not_dispatched_and_never_checked(county, tmp_path):
    published = _publish_source(county, tmp_path, *FIELD)
    assert published["published"] and published["differences"]["cells_added"] == 1
    frame = layerstore.frame_of(county, heatsources.STATIC_SOURCES, published["version"])
    assert frame[["name", "source_kind", "added_by"]].values.tolist() == [["某砖窑厂", "kiln", "system:cli"]]
    rows = [_row(*FIELD, d) for d in DAYS] + [_row(*OTHER, "2024-08-01", "0250", "T")]
    result = _ingest(county, _write(tmp_path / "field.csv", rows), now=NOW)
    assert result["accepted"] == 6
    assert result["not_dispatched"] == {"static_source": 5}
    assert result["tasks_created"] == 1 and result["flagged"] == {} and result["checks_opened"] == 0
    assert _fire_tasks(county, _cell(*FIELD)) == 0 and _checks(county) == []
    summary = services.fire_summary(county, services.CLI)  # every detection counted, reported as what it is
    assert summary["in_region"] == 6 and summary["dispatched"] == 1
    assert summary["not_dispatched"] == {"static_source": 5}
    days = services.fire_days(county, services.CLI)
    assert int(days.detections.sum()) == 6 and int(days.dispatched.sum()) == 1


def test_publishing_a_source_withdraws_the_open_check_of_its_cell(county, tmp_path):
    _ingest(county, _write(tmp_path / "field.csv", [_row(*FIELD, d) for d in DAYS]), now=NOW)
    assert [c["state"] for c in _checks(county)] == ["open"]
    published = _publish_source(county, tmp_path, *FIELD)
    assert published["differences"]["tasks_closed"] == 1
    assert [c["state"] for c in _checks(county)] == ["withdrawn"]


def test_a_polygon_source_covers_every_cell_it_touches_and_bad_features_are_refused_one_by_one(county, tmp_path):
    path = _geojson(tmp_path / "mixed.geojson", [
        (_square(*FIELD, 0.004), {"name": "化工厂", "kind": "factory"}),
        (_point(*OTHER), {"name": "?", "kind": "wind farm"}),
        ({"type": "LineString", "coordinates": [[112.3, 34.3], [112.31, 34.31]]}, {"name": "pipe", "kind": "flare"}),
    ])
    loaded = services.layer_load(county, services.CLI, heatsources.STATIC_SOURCES, path, publish=True,
                                 crs="EPSG:4326")
    assert loaded["rows"] == 1 and loaded["rejected"] == 2
    info = layerstore.version_info(county, heatsources.STATIC_SOURCES, loaded["version"])
    assert sorted(r["reason"] for r in info["rejects"]) == ["not_point_or_polygon", "unknown_source_kind"]
    assert loaded["differences"]["cells_added"] >= 4  # a 900 m square touches several 0.7 km² cells
    test = heatsources.static_test_for(county)
    assert test(np.array([_cell(*FIELD), _cell(*OTHER)], dtype=np.int64)).tolist() == [True, False]


def test_a_file_without_a_kind_column_is_refused_naming_the_fix(county, tmp_path):
    path = _geojson(tmp_path / "nokind.geojson", [(_point(*FIELD), {"name": "某厂"})])
    with pytest.raises(ValidationError, match="no heat source kind column"):
        services.layer_load(county, services.CLI, heatsources.STATIC_SOURCES, path, crs="EPSG:4326")
    assert layerstore.versions(county, heatsources.STATIC_SOURCES).empty


# -- key periods and farmland ----------------------------------------------------------------------------------

def test_in_a_key_period_nothing_on_farmland_is_suppressed(county, tmp_path):
    _publish_source(county, tmp_path, *FIELD)
    rows = [_row(*FIELD, d) for d in HARVEST_DAYS]
    # no farmland layer: every cell counts as farmland, so the harvest's detections are dispatched as straw burning
    result = _ingest(county, _write(tmp_path / "harvest.csv", rows), now=HARVEST_NOW, key_periods=KEY_PERIODS)
    assert result["not_dispatched"] == {} and result["tasks_created"] == 5
    assert result["flagged"] == {"static_source_in_key_period": 5}
    tasks = county.query_df("SELECT priority FROM tasks WHERE kind = 'fire_check'")
    assert (tasks.priority >= 3).all()  # key-period priority
    # the same place outside the key period: the known source is not dispatched
    late = _ingest(county, _write(tmp_path / "late.csv", [_row(*FIELD, "2024-07-05")]),
                   now=dt.datetime(2024, 7, 6), key_periods=KEY_PERIODS)
    assert late["not_dispatched"] == {"static_source": 1} and late["tasks_created"] == 0
    # with no key period configured (a fresh county), the harvest is no key period either
    plain = _ingest(county, _write(tmp_path / "plain.csv", [_row(*FIELD, "2024-06-21")]), now=HARVEST_NOW)
    assert plain["not_dispatched"] == {"static_source": 1}


def test_a_farmland_layer_decides_where_the_key_period_lifts_suppression(county, tmp_path):
    _publish_source(county, tmp_path, *FIELD)
    # farmland elsewhere: the source's cell is no field, so even in the harvest it is not dispatched
    elsewhere = _geojson(tmp_path / "farm1.geojson", [(_square(*OTHER, 0.01), {"name": "麦田"})])
    services.layer_load(county, services.CLI, heatsources.FARMLAND, elsewhere, publish=True, crs="EPSG:4326")
    first = _ingest(county, _write(tmp_path / "a.csv", [_row(*FIELD, "2024-06-01")]), now=HARVEST_NOW,
                    key_periods=KEY_PERIODS)
    assert first["not_dispatched"] == {"static_source": 1} and first["tasks_created"] == 0
    # a new farmland version covering the field: the harvest's detection there is dispatched
    around = _geojson(tmp_path / "farm2.geojson", [(_square(*FIELD, 0.01), {"name": "玉米地"})])
    services.layer_load(county, services.CLI, heatsources.FARMLAND, around, publish=True, crs="EPSG:4326")
    second = _ingest(county, _write(tmp_path / "b.csv", [_row(*FIELD, "2024-06-02")]), now=HARVEST_NOW,
                     key_periods=KEY_PERIODS)
    assert second["not_dispatched"] == {} and second["tasks_created"] == 1


def test_key_periods_are_local_settings_off_until_configured(tmp_path):
    plain = {r.key: r for r in rules_in_force(Policy.from_settings(Settings.load(env={}, config_path=None)))}
    assert plain["key_periods"].off and plain["key_periods"].value == ""
    toml = tmp_path / "gridwatch.toml"
    toml.write_text('[gridwatch]\nkey_periods = {summer_harvest = "05-25..06-30", autumn_winter = "10-01..03-31"}\n'
                    'rule_documents = {key_periods = "伊政办〔2025〕7号"}\n', encoding="utf-8")
    policy = Policy.from_settings(Settings.load(env={}, config_path=toml))
    assert [p.name for p in policy.dispatch.key_periods] == ["summer_harvest", "autumn_winter"]
    rule = {r.key: r for r in rules_in_force(policy)}["key_periods"]
    assert (rule.source, rule.document, rule.off) == ("local", "伊政办〔2025〕7号", False)
    assert rule.value == "summer_harvest=05-25..06-30,autumn_winter=10-01..03-31"
    env = Settings.load(env={"GRIDWATCH_KEY_PERIODS": "spring_ploughing=03-01..04-30"}, config_path=None)
    assert Policy.from_settings(env).dispatch.key_periods == (Period("spring_ploughing", (3, 1), (4, 30)),)
    for bad in ("summer=05-25", "summer=13-01..06-30", "05-25..06-30", "a=01-01..01-02,a=02-01..02-02"):
        with pytest.raises(ValidationError):
            Policy.from_settings(Settings.load(env={}, config_path=None, key_periods=bad))


def test_the_demo_database_sets_its_key_periods_as_demo_settings(demo_store):
    rules = {r["key"]: r for r in services.rules(demo_store, services.CLI)}
    assert rules["key_periods"]["source"] == "demo" and "autumn_winter=10-01..03-31" in rules["key_periods"]["value"]
    assert len(policy_of(demo_store).dispatch.key_periods) == 4


def _oracle(period: Period, day: dt.date) -> bool:
    """Whether ``day`` lies in the period, by walking calendar dates (02-29 exists in leap years only)."""
    def on(year: int, month: int, d: int) -> dt.date | None:
        try:
            return dt.date(year, month, d)
        except ValueError:
            return None
    for year in (day.year - 1, day.year):
        start = on(year, *period.start) or dt.date(year, 3, 1)  # a period from 02-29 starts 03-01 in common years
        end_year = year if period.end >= period.start else year + 1
        end = on(end_year, *period.end) or dt.date(end_year, 2, 28)  # … and one ending 02-29 ends 02-28
        if start <= day <= end:
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(start=st.dates(dt.date(2024, 1, 1), dt.date(2024, 12, 31)), end=st.dates(dt.date(2024, 1, 1),
                                                                                  dt.date(2024, 12, 31)),
       day=st.dates(dt.date(2019, 1, 1), dt.date(2030, 12, 31)))
def test_a_key_period_holds_exactly_its_calendar_days_across_the_new_year_and_on_02_29(start, end, day):
    period = Period("p", (start.month, start.day), (end.month, end.day))
    got = bool(period.contains(np.array([np.datetime64(day, "D")]))[0])
    assert got == _oracle(period, day)


def test_02_29_and_beijing_midnight():
    leap = Period("leap", (2, 29), (3, 1))
    days = np.array(["2024-02-28", "2024-02-29", "2024-03-01", "2025-02-28", "2025-03-01"], dtype="datetime64[D]")
    assert leap.contains(days).tolist() == [False, True, True, False, True]
    policy = Policy.from_settings(Settings.load(env={}, config_path=None,
                                                key_periods="autumn_winter=10-01..03-31"))
    # 2024-03-31 16:00 UTC is 04-01 in Beijing: the period has ended; 15:59 UTC is still 03-31
    utc = np.array(["2024-03-31T15:59", "2024-03-31T16:00", "2023-12-31T16:00"], dtype="datetime64[ns]")
    assert policy.dispatch.in_key_period(utc).tolist() == [True, False, True]
    assert parse_key_periods({"winter": "12-01..02-29"})[0].contains(
        np.array(["2025-02-28", "2024-02-29", "2024-03-01"], dtype="datetime64[D]")).tolist() == [True, True, False]


# -- the check and its answer --------------------------------------------------------------------------------------

def _inspector_cell(store) -> tuple[int, float, float]:
    """A cell of the demo inspector's village, and its centre."""
    cell = int(store.scalar("SELECT cell FROM cells WHERE village_code = '410329-D01-01' ORDER BY cell LIMIT 1"))
    lat, lng = h3.cell_to_latlng(h3.int_to_str(cell))
    return cell, lat, lng


def _chimney() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 120, 120)).save(buffer, "JPEG")
    return buffer.getvalue()


def _answer(store, task_id: int, finding: str, *, fix: Fix | None, note: str, started: bool = False) -> None:
    inspector, leader = auth.load_user(store, "inspector"), auth.load_user(store, "leader")
    if not started:
        services.work_on(store, inspector, task_id, "in_progress")
    services.work_on(store, inspector, task_id, "reported", finding=finding, note=note, fix=fix,
                     photos=[("chimney.jpg", _chimney())])
    services.verify(store, leader, task_id, accept=True)


def test_a_check_answered_static_source_adds_the_place_to_the_layer(demo_store, tmp_path):
    cell, lat, lng = _inspector_cell(demo_store)
    first = _ingest(demo_store, _write(tmp_path / "a.csv", [_row(lat, lng, d) for d in DAYS]), now=NOW)
    assert first["tasks_created"] == 5 and first["checks_opened"] == 1
    [check] = _checks(demo_store, cell)
    assert demo_store.scalar("SELECT p.person_key FROM tasks t JOIN people p ON p.id = t.assignee_id"
                             " WHERE t.id = ?", [check["id"]]) is not None  # to the cell's inspector
    before = layerstore.published_version(demo_store, heatsources.STATIC_SOURCES)
    inspector = auth.load_user(demo_store, "inspector")
    services.work_on(demo_store, inspector, check["id"], "in_progress")
    with pytest.raises(ValidationError, match="at least one photo"):  # it takes the place off dispatch: evidence
        services.work_on(demo_store, inspector, check["id"], "reported", finding="static_source_confirmed",
                         note="砖厂", fix=Fix(lat, lng, 8.0))
    _answer(demo_store, check["id"], "static_source_confirmed", fix=Fix(lat + 0.0005, lng, 8.0),
            note="砖厂烟囱，已拍照", started=True)
    version = layerstore.published_version(demo_store, heatsources.STATIC_SOURCES)
    assert version is not None and version != before
    info = layerstore.version_info(demo_store, heatsources.STATIC_SOURCES, version)
    assert info["uploaded_by"] == "inspector" and info["published_by"] == "leader"
    frame = layerstore.frame_of(demo_store, heatsources.STATIC_SOURCES, version)
    added = frame[frame.task_id == str(check["id"])]
    assert added[["name", "source_kind", "added_by"]].values.tolist() == [["砖厂烟囱，已拍照", "other", "inspector"]]
    assert added.geometry.iloc[0].y == pytest.approx(lat + 0.0005)  # the inspector's position, in the cell
    assert demo_store.query("SELECT task_id, cell, version, added_by, verified_by FROM static_source_additions") == [
        {"task_id": check["id"], "cell": cell, "version": version, "added_by": "inspector", "verified_by": "leader"}]
    # applied once
    assert heatsources.apply_check_findings(demo_store, policy=policy_of(demo_store)) is None
    # the next ingest no longer dispatches there, and asks no more
    tasks = _fire_tasks(demo_store, cell)
    later = _ingest(demo_store, _write(tmp_path / "b.csv", [_row(lat, lng, "2024-08-09")]), now=NOW)
    assert later["not_dispatched"] == {"static_source": 1} and later["checks_opened"] == 0
    assert _fire_tasks(demo_store, cell) == tasks
    assert services.fire_summary(demo_store, services.CLI)["not_dispatched"]["static_source"] >= 1


def test_a_check_answered_field_burning_keeps_dispatching(demo_store, tmp_path):
    cell, lat, lng = _inspector_cell(demo_store)
    _ingest(demo_store, _write(tmp_path / "a.csv", [_row(lat, lng, d) for d in DAYS]), now=NOW)
    [check] = _checks(demo_store, cell)
    versions = len(layerstore.versions(demo_store, heatsources.STATIC_SOURCES))
    _answer(demo_store, check["id"], "field_burning", fix=Fix(lat, lng, 5.0), note="秸秆焚烧")
    assert len(layerstore.versions(demo_store, heatsources.STATIC_SOURCES)) == versions
    tasks = _fire_tasks(demo_store, cell)
    later = _ingest(demo_store, _write(tmp_path / "b.csv", [_row(lat, lng, "2024-08-09")]), now=NOW)
    assert later["not_dispatched"] == {} and later["flagged"] == {"possible_static_source": 1}
    assert _fire_tasks(demo_store, cell) == tasks + 1
    assert later["checks_opened"] == 0  # answered within the window: not asked again
    assert [c["state"] for c in _checks(demo_store, cell)] == ["closed"]


def test_the_layer_loads_from_the_command_line_with_one_kind_for_every_feature(db_path, tmp_path):
    path = _geojson(tmp_path / "kilns.geojson", [(_point(*FIELD), {"name": "一号窑"}),
                                                 (_point(*OTHER), {"name": "二号窑"})])
    lines: list[str] = []
    status = main(["layers", "load", "static_heat_sources", str(path), "--crs", "EPSG:4326", "--option",
                   "source_kind=kiln", "--publish", "--json", "--db", db_path], out=lines.append)
    assert status == 0
    loaded = json.loads("\n".join(lines))
    assert loaded["rows"] == 2 and loaded["published"] and loaded["differences"]["sources"]["kiln"] == 2


@pytest.fixture
def db_path(county_db, tmp_path) -> str:
    from conftest import copy_db, drop_db
    path = copy_db(county_db, tmp_path, "cli.duckdb")
    yield path
    drop_db(path)


# -- the rule itself, as a property of triage ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def county_grid(county_db):
    from gridwatch.audit import open_sealed
    with open_sealed(str(county_db)) as store:
        return regionstore.grid(store)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_on_a_known_source_a_detection_is_suppressed_exactly_outside_key_periods_or_off_farmland(county_grid, data):
    n = data.draw(st.integers(1, 40))
    days = data.draw(st.lists(st.dates(dt.date(2023, 1, 1), dt.date(2024, 12, 31)), min_size=n, max_size=n))
    on_source = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    farm = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    low = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    lat = FIELD[0] + np.arange(n) * 1e-3
    frame = pd.DataFrame({
        "latitude": lat, "longitude": np.full(n, FIELD[1]),
        "acq_time": pd.to_datetime([f"{d}T03:00:00" for d in days], utc=True),
        "satellite": ["Aqua"] * n, "confidence_class": np.where(low, "low", "nominal"),
        "fire_type": np.full(n, np.nan), "frp": np.full(n, 5.0),
    })
    policy = Policy.from_settings(Settings.load(env={}, config_path=None, key_periods=KEY_PERIODS)).dispatch
    cells, _ = county_grid.locate(lat, np.full(n, FIELD[1]))
    by_cell = dict(zip(cells.view(np.int64).tolist(), on_source.tolist(), strict=False))
    by_lat = dict(zip(lat.tolist(), farm.tolist(), strict=True))
    result = triage(frame, county_grid, policy=policy, known_keys=np.zeros(0, dtype=np.int64),
                    now=dt.datetime(2025, 1, 1),
                    static_test=lambda c: np.array([by_cell[int(x)] for x in c], dtype=bool),
                    farmland_test=lambda la, lg, c: np.array([by_lat[float(x)] for x in la], dtype=bool))
    outcome = result.points.outcome.to_numpy()
    source = np.array([by_cell[int(c)] for c in result.points.cell])
    season = policy.in_key_period(frame.acq_time)
    lifted = season & farm
    assert (result.points.in_region.all() and len(outcome) == n)  # every detection counted
    assert ((outcome == STATIC_SOURCE) == (source & ~lifted)).all()
    assert ((outcome == LOW_CONFIDENCE) == (low & ~(source & ~lifted))).all()
    assert ((outcome == DISPATCHED) == (~low & ~(source & ~lifted))).all()
    assert result.flagged.get("static_source_in_key_period", 0) == int((source & lifted).sum())
